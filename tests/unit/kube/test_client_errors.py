"""How failed requests become the adapter's errors, and client configuration problems, without a cluster."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException

from engine.kube.api_call import translate_api_exception
from engine.kube.client import KubeClient, load_api_client
from engine.kube.errors import AlreadyExistsError, InvalidObjectError, KubeAPIError, KubeConfigError


def api_exception(status: int, reason: str, message: str) -> ApiException:
    error = ApiException(status=status, reason="HTTP reason")
    error.body = json.dumps({"kind": "Status", "status": "Failure", "message": message, "reason": reason})
    return error


def test_already_exists_keeps_the_api_message() -> None:
    error = translate_api_exception(
        "create Job ns/x", api_exception(409, "AlreadyExists", 'jobs.batch "x" already exists')
    )
    assert isinstance(error, AlreadyExistsError)
    assert str(error) == 'jobs.batch "x" already exists'
    assert (error.status, error.reason) == (409, "AlreadyExists")


def test_a_conflict_is_not_already_exists() -> None:
    error = translate_api_exception("update", api_exception(409, "Conflict", "the object has been modified"))
    assert isinstance(error, KubeAPIError)
    assert str(error) == "update: the object has been modified (HTTP 409)"


def test_invalid_keeps_the_api_message_on_one_line() -> None:
    message = 'Job.batch "x" is invalid: [spec.template.spec.containers[0].image: Required value,\n  other]'
    error = translate_api_exception("create Job ns/x", api_exception(422, "Invalid", message))
    assert isinstance(error, InvalidObjectError)
    assert (
        str(error)
        == 'Job.batch "x" is invalid: [spec.template.spec.containers[0].image: Required value, other]'
    )


def test_other_failures_name_the_operation_and_status() -> None:
    error = translate_api_exception(
        "read Secret ns/s", api_exception(403, "Forbidden", 'secrets "s" is forbidden')
    )
    assert isinstance(error, KubeAPIError)
    assert str(error) == 'read Secret ns/s: secrets "s" is forbidden (HTTP 403)'
    assert (error.status, error.reason) == (403, "Forbidden")


def test_a_body_that_is_not_a_status_still_gives_a_message() -> None:
    error = ApiException(status=502, reason="Bad Gateway")
    error.body = "<html>proxy error</html>"
    assert str(translate_api_exception("get Job ns/x", error)) == "get Job ns/x: Bad Gateway (HTTP 502)"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_an_unreachable_api_server_is_a_connection_error() -> None:
    configuration = k8s_client.Configuration(host=f"https://127.0.0.1:{closed_port()}")
    configuration.retries = 0
    kube = KubeClient(k8s_client.ApiClient(configuration), "default")
    with pytest.raises(KubeAPIError) as caught:
        await kube.get_job("anything")
    assert caught.value.reason == "ConnectionError"
    assert caught.value.status == 0
    assert str(caught.value).startswith("get Job default/anything: ")
    assert "\n" not in str(caught.value)


def test_no_configuration_anywhere_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(
        KubeConfigError, match="no Kubernetes configuration: not running in a cluster"
    ) as caught:
        load_api_client()
    assert str(tmp_path / ".kube" / "config") in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        "apiVersion: v1\nkind: Config\ncurrent-context: nowhere\ncontexts: []\n",
        "key: [unclosed\n  - x: y: z\n",
    ],
    ids=["no-such-context", "not-yaml"],
)
def test_a_broken_kubeconfig_is_one_clear_line(tmp_path: Path, text: str) -> None:
    broken = tmp_path / "config"
    broken.write_text(text)
    with pytest.raises(KubeConfigError) as caught:
        load_api_client(str(broken))
    assert str(caught.value).startswith(f"cannot load Kubernetes configuration from {broken}: ")
    assert "\n" not in str(caught.value)


async def test_an_unreachable_api_server_is_a_connection_error_for_writes_too() -> None:
    configuration = k8s_client.Configuration(host=f"https://127.0.0.1:{closed_port()}")
    configuration.retries = 0
    kube = KubeClient(k8s_client.ApiClient(configuration), "default")
    manifest = {"metadata": {"name": "x"}, "spec": {}}
    with pytest.raises(KubeAPIError) as caught:
        await kube.create_job(manifest)
    assert caught.value.reason == "ConnectionError"
    assert str(caught.value).startswith("create Job default/x: ")
    assert "\n" not in str(caught.value)
    kube.close()


async def test_a_manifest_that_is_not_json_is_invalid_before_anything_is_sent() -> None:
    configuration = k8s_client.Configuration(host=f"https://127.0.0.1:{closed_port()}")
    kube = KubeClient(k8s_client.ApiClient(configuration), "default")
    with pytest.raises(InvalidObjectError, match=r"^create Job default/x: the Job is not JSON: "):
        await kube.create_job({"metadata": {"name": "x"}, "spec": {"when": object()}})
    kube.close()
