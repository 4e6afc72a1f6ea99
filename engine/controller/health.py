"""HTTP endpoints for Kubernetes probes and Prometheus: ``/healthz``, ``/readyz`` and ``/metrics``.

* ``/healthz`` (liveness) answers 200 while the process is healthy: the event loop is serving the
  request, which is the real question (a wedged loop would schedule nothing). It answers 503 when the
  liveness check reports a dead component, so Kubernetes restarts the pod.
* ``/readyz`` (readiness) answers 200 once the controller is up (informers synced, polling) **and** the
  policy files on disk are the ones in use. After a rejected policy reload it answers 503 with the
  problems, so a rollout of a broken policy ConfigMap is visible in ``kubectl get pods`` while the last
  good set keeps scheduling.
* ``/metrics`` serves the controller's own registry (``ControllerMetrics.registry``) in the Prometheus
  text format.

The health port and the Prometheus port may coincide (one server serves all three paths, as upstream
did for pprof and metrics); ``/metrics`` is only served when a Prometheus port is configured. Port 0
asks the OS for a free port (tests read :attr:`HealthServer.ports`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Status:
    """A probe's answer: ``ok`` and a few human-readable lines explaining it."""

    ok: bool
    detail: tuple[str, ...] = ()


Probe = Callable[[], Status]


class HealthServer:
    """One or two aiohttp servers: probes on ``health_port``, metrics on ``prometheus_port``."""

    def __init__(
        self,
        *,
        liveness: Probe,
        readiness: Probe,
        registry: CollectorRegistry,
        health_port: int | None,
        prometheus_port: int | None,
        host: str = "0.0.0.0",
    ) -> None:
        """``None`` disables a port; ``0`` binds a free one."""
        self._liveness = liveness
        self._readiness = readiness
        self._registry = registry
        self._health_port = health_port
        self._prometheus_port = prometheus_port
        self._host = host
        self._runners: list[web.AppRunner] = []
        self.ports: dict[str, int] = {}

    async def start(self) -> None:
        """Bind and serve. Raises ``OSError`` when a port is taken (the caller reports it)."""
        servers: list[tuple[int, list[str]]] = []
        if self._health_port is not None:
            servers.append((self._health_port, ["health"]))
        if self._prometheus_port is not None:
            if servers and self._prometheus_port == self._health_port != 0:
                servers[0][1].append("metrics")  # same port: one server serves everything
            else:
                servers.append((self._prometheus_port, ["metrics"]))
        for port, roles in servers:
            app = web.Application()
            if "health" in roles:
                app.router.add_get("/healthz", self._healthz)
                app.router.add_get("/readyz", self._readyz)
            if "metrics" in roles:
                app.router.add_get("/metrics", self._metrics)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, self._host, port)
            await site.start()
            self._runners.append(runner)
            bound = int(runner.addresses[0][1])
            for role in roles:
                self.ports[role] = bound
            _log.info("serving %s on port %d", " and ".join(_paths(roles)), bound)

    async def stop(self) -> None:
        runners, self._runners = self._runners, []
        for runner in runners:
            await runner.cleanup()

    async def _healthz(self, _request: web.Request) -> web.Response:
        return _status_response(self._liveness())

    async def _readyz(self, _request: web.Request) -> web.Response:
        return _status_response(self._readiness())

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _status_response(status: Status) -> web.Response:
    text = "\n".join(("ok" if status.ok else "not ok", *status.detail)) + "\n"
    return web.Response(text=text, status=200 if status.ok else 503)


def _paths(roles: list[str]) -> list[str]:
    return ["/healthz, /readyz" if role == "health" else "/metrics" for role in roles]
