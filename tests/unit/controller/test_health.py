"""Health server: liveness, readiness with reasons, and Prometheus metrics on one or two ports."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest

from engine.controller.health import HealthServer, Status
from engine.controller.metrics import ControllerMetrics


class Probes:
    def __init__(self) -> None:
        self.live = Status(True)
        self.ready = Status(False, ("informers not synced yet",))


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get(http: aiohttp.ClientSession, port: int, path: str) -> tuple[int, str]:
    async with http.get(f"http://127.0.0.1:{port}{path}") as response:
        return response.status, await response.text()


def server(
    probes: Probes, metrics: ControllerMetrics, health: int | None, prometheus: int | None
) -> HealthServer:
    return HealthServer(
        liveness=lambda: probes.live,
        readiness=lambda: probes.ready,
        registry=metrics.registry,
        health_port=health,
        prometheus_port=prometheus,
        host="127.0.0.1",
    )


async def test_probes_answer_from_the_current_state(http: aiohttp.ClientSession) -> None:
    probes, metrics = Probes(), ControllerMetrics()
    health = server(probes, metrics, 0, None)
    await health.start()
    try:
        port = health.ports["health"]
        assert await get(http, port, "/healthz") == (200, "ok\n")
        assert await get(http, port, "/readyz") == (503, "not ok\ninformers not synced yet\n")
        probes.ready = Status(True)
        assert await get(http, port, "/readyz") == (200, "ok\n")
        probes.ready = Status(False, ("policy reload rejected:", "p.yaml:3:1: unknown field 'x'"))
        status, text = await get(http, port, "/readyz")
        assert status == 503
        assert "p.yaml:3:1: unknown field 'x'" in text
        probes.live = Status(False, ("monitor stopped",))
        assert (await get(http, port, "/healthz"))[0] == 503
        assert (await get(http, port, "/metrics"))[0] == 404  # no prometheus port configured
        assert "metrics" not in health.ports
    finally:
        await health.stop()


async def test_metrics_on_their_own_port(http: aiohttp.ClientSession) -> None:
    probes, metrics = Probes(), ControllerMetrics()
    metrics.limiter.max_in_flight.set(7)
    health = server(probes, metrics, 0, 0)
    await health.start()
    try:
        assert health.ports["metrics"] != health.ports["health"]
        status, text = await get(http, health.ports["metrics"], "/metrics")
        assert status == 200
        assert "buildkite_limiter_max_in_flight 7.0" in text
        assert "buildkite_monitor_job_queries_total" in text
        assert (await get(http, health.ports["metrics"], "/healthz"))[0] == 404
    finally:
        await health.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_one_server_when_the_ports_coincide(http: aiohttp.ClientSession) -> None:
    probes, metrics = Probes(), ControllerMetrics()
    port = free_port()
    health = server(probes, metrics, port, port)
    await health.start()
    try:
        assert health.ports == {"health": port, "metrics": port}
        assert (await get(http, port, "/metrics"))[0] == 200
        assert (await get(http, port, "/healthz"))[0] == 200
    finally:
        await health.stop()


async def test_no_ports_no_servers() -> None:
    health = server(Probes(), ControllerMetrics(), None, None)
    await health.start()
    assert health.ports == {}
    await health.stop()


async def test_a_taken_port_is_an_os_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        health = server(Probes(), ControllerMetrics(), sock.getsockname()[1], None)
        with pytest.raises(OSError, match="address already in use"):
            await health.start()
        await health.stop()
