"""utils/log-collector: usable unattended, clear on bad input, and it bundles what support needs.

The end-to-end test runs it with real kubectl against the test API server: a Job (whose Pod the real
job controller creates) and a controller Pod. There is no kubelet, so ``kubectl logs`` fails; the
script must record that in the tarball and carry on.
"""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import tarfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s_client

from tests.chart import REPO_ROOT, tool_or_skip
from tests.harness.cluster import KubeCluster

SCRIPT = REPO_ROOT / "utils" / "log-collector"
JOB_UUID_LABEL = "buildkite.com/job-uuid"
RUN_TIMEOUT_SECONDS = 120
POD_WAIT_SECONDS = 20.0
MISSING_NODE = "no-such-node"


def run_collector(
    args: list[str], env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the script with stdin not a terminal (as in CI or a pipe)."""
    return subprocess.run(
        [str(SCRIPT), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def test_script_is_executable_valid_bash() -> None:
    assert os.access(SCRIPT, os.X_OK)
    checked = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr


def test_script_is_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    checked = subprocess.run([shellcheck, str(SCRIPT)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout


def test_help_documents_every_flag() -> None:
    result = run_collector(["--help"])
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: log-collector ")
    for flag in ("-n", "-j", "-o", "--controller-selector", "--controller-namespace", "KUBECTL"):
        assert flag in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "missing -n"),
        (["-n", "ci"], "missing -j"),
        (["-n", "ci", "-j"], "-j needs a value"),
        (["-n", "Not_A_Namespace", "-j", "abc"], "not a valid Kubernetes namespace name"),
        (["-n", "ci", "-j", "not a uuid!"], "cannot be a label value"),
        (["-n", "ci", "-j", "abc", "--verbose"], "unknown argument: --verbose"),
    ],
)
def test_bad_usage_fails_with_one_clear_line_and_status_2(args: list[str], message: str) -> None:
    result = run_collector(args)
    assert result.returncode == 2
    first_line = result.stderr.splitlines()[0]
    assert first_line.startswith("log-collector: error: ")
    assert message in first_line


def test_a_missing_value_without_a_terminal_says_why_it_did_not_ask() -> None:
    result = run_collector(["-j", str(uuid.uuid4())])
    assert result.returncode == 2
    assert "missing -n" in result.stderr
    assert "stdin is not a terminal" in result.stderr


def test_missing_kubectl_is_reported() -> None:
    result = run_collector(["-n", "ci", "-j", str(uuid.uuid4())], env={"KUBECTL": "/nonexistent/kubectl"})
    assert result.returncode == 1
    assert "'/nonexistent/kubectl' not found" in result.stderr


def test_prompts_for_missing_values_on_a_terminal() -> None:
    """With a terminal on stdin it asks instead of failing; the answers are then used."""
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [str(SCRIPT)],
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "KUBECTL": "/nonexistent/kubectl"},
        )
        os.write(controller, b"ci\n" + str(uuid.uuid4()).encode() + b"\n")
        _, stderr = process.communicate(timeout=RUN_TIMEOUT_SECONDS)
    finally:
        os.close(controller)
        os.close(terminal)
    # Both answers were accepted (validation passed); it then stopped at the missing kubectl.
    assert "'/nonexistent/kubectl' not found" in stderr
    assert process.returncode == 1


def test_unreachable_namespace_fails_fast_with_kubectls_reason(tmp_path: Path) -> None:
    kubectl = tool_or_skip("kubectl")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
        "current-context: x\n"
    )
    result = run_collector(
        ["-n", "ci", "-j", str(uuid.uuid4()), "-o", str(tmp_path / "out.tar.gz")],
        env={"KUBECTL": str(kubectl), "KUBECONFIG": str(kubeconfig)},
    )
    assert result.returncode == 1
    assert "cannot read namespace 'ci'" in result.stderr
    assert not (tmp_path / "out.tar.gz").exists()


# --- against the real API server ------------------------------------------------------------------


def create_buildkite_job(batch: k8s_client.BatchV1Api, namespace: str, job_uuid: str) -> str:
    """A Kubernetes Job shaped like the ones the controller creates (labels on Job and pod)."""
    labels = {JOB_UUID_LABEL: job_uuid}
    name = f"buildkite-{job_uuid}"
    batch.create_namespaced_job(
        namespace,
        k8s_client.V1Job(
            metadata=k8s_client.V1ObjectMeta(name=name, labels=labels),
            spec=k8s_client.V1JobSpec(
                backoff_limit=0,
                template=k8s_client.V1PodTemplateSpec(
                    metadata=k8s_client.V1ObjectMeta(labels=labels),
                    spec=k8s_client.V1PodSpec(
                        restart_policy="Never",
                        containers=[
                            k8s_client.V1Container(name="agent", image="buildkite/agent:3"),
                            k8s_client.V1Container(name="container-0", image="alpine:3"),
                        ],
                    ),
                ),
            ),
        ),
    )
    return name


def wait_for_pod_names(core: k8s_client.CoreV1Api, namespace: str, selector: str) -> list[str]:
    """The job controller creates the Pod asynchronously."""
    deadline = time.monotonic() + POD_WAIT_SECONDS
    while time.monotonic() < deadline:
        pods = core.list_namespaced_pod(namespace, label_selector=selector).items
        names = [p.metadata.name for p in pods if p.metadata is not None and p.metadata.name]
        if names:
            return names
        time.sleep(0.1)
    raise AssertionError(f"no pod for {selector} after {POD_WAIT_SECONDS}s")


def bundle_files(tarball: Path) -> dict[str, str]:
    """Relative path -> text of every file in the tarball, below its single top directory."""
    with tarfile.open(tarball) as archive:
        members = [m for m in archive.getmembers() if m.isfile()]
        tops = {Path(m.name).parts[0] for m in archive.getmembers()}
        assert len(tops) == 1, tops
        files: dict[str, str] = {}
        for member in members:
            extracted = archive.extractfile(member)
            assert extracted is not None
            files[str(Path(*Path(member.name).parts[1:]))] = extracted.read().decode()
    return files


def bind_to_missing_node(core: k8s_client.CoreV1Api, namespace: str, pod: str) -> None:
    """Schedule ``pod`` onto a node that does not exist (as a scheduler would), so its logs cannot be read."""
    binding = k8s_client.V1Binding(
        metadata=k8s_client.V1ObjectMeta(name=pod),
        target=k8s_client.V1ObjectReference(api_version="v1", kind="Node", name=MISSING_NODE),
    )
    # The client cannot decode the Status this call answers with; the status code is all we need.
    response: Any = core.create_namespaced_pod_binding(pod, namespace, binding, _preload_content=False)
    assert response.status == 201


def force_delete(core: k8s_client.CoreV1Api, namespace: str, pods: list[str]) -> None:
    """Pods bound to a node wait for its kubelet to confirm deletion; with none, skip the wait."""
    for pod in pods:
        core.delete_namespaced_pod(pod, namespace, grace_period_seconds=0)


def test_collects_job_pod_controller_and_events_into_a_tarball(
    kube_cluster: KubeCluster, kube_api: k8s_client.ApiClient, kube_namespace: str, tmp_path: Path
) -> None:
    kubectl = tool_or_skip("kubectl")
    core = k8s_client.CoreV1Api(kube_api)
    job_uuid = str(uuid.uuid4())
    job_name = create_buildkite_job(k8s_client.BatchV1Api(kube_api), kube_namespace, job_uuid)
    (job_pod,) = wait_for_pod_names(core, kube_namespace, f"{JOB_UUID_LABEL}={job_uuid}")
    controller_pod = "agent-stack-k8s-0"
    core.create_namespaced_pod(
        kube_namespace,
        k8s_client.V1Pod(
            metadata=k8s_client.V1ObjectMeta(name=controller_pod, labels={"app": "agent-stack-k8s"}),
            spec=k8s_client.V1PodSpec(
                node_name=MISSING_NODE,
                containers=[k8s_client.V1Container(name="controller", image="controller:1")],
            ),
        ),
    )
    output = tmp_path / "support.tar.gz"
    try:
        bind_to_missing_node(core, kube_namespace, job_pod)
        result = run_collector(
            ["-n", kube_namespace, "-j", job_uuid, "-o", str(output)],
            env={"KUBECTL": str(kubectl), "KUBECONFIG": str(kube_cluster.kubeconfig_path)},
            cwd=tmp_path,
        )
    finally:
        force_delete(core, kube_namespace, [job_pod, controller_pod])

    assert result.returncode == 0, result.stderr
    files = bundle_files(output)
    expected = {
        "job/jobs.describe.txt",
        "job/jobs.yaml",
        f"job/pod-{job_pod}.describe.txt",
        f"job/pod-{job_pod}.yaml",
        f"job/pod-{job_pod}.logs.txt",
        "controller/pods.txt",
        f"controller/pod-{controller_pod}.describe.txt",
        f"controller/pod-{controller_pod}.yaml",
        f"controller/pod-{controller_pod}.logs.txt",
        f"controller/pod-{controller_pod}.previous-logs.txt",
        "events.txt",
        "errors.txt",
        "summary.txt",
        "versions.txt",
    }
    assert expected <= set(files), sorted(expected - set(files))
    assert f"name: {job_name}" in files["job/jobs.yaml"]
    assert job_pod in files["job/jobs.describe.txt"]  # the Job's events name the pod it created
    assert f"{JOB_UUID_LABEL}={job_uuid}" in files[f"job/pod-{job_pod}.describe.txt"]
    assert controller_pod in files["controller/pods.txt"]
    assert f"job-uuid: {job_uuid}" in files["summary.txt"]

    # No kubelet: logs cannot be read. The failure is kept with kubectl's reason, listed, and skipped past.
    for logs in (f"job/pod-{job_pod}.logs.txt", f"controller/pod-{controller_pod}.logs.txt"):
        assert "# kubectl exited with status 1" in files[logs]
        assert MISSING_NODE in files[logs]
        assert logs in files["errors.txt"]
    assert "job/jobs.yaml" not in files["errors.txt"]
    assert "kubectl call(s) failed" in result.stderr


def test_a_job_uuid_with_nothing_behind_it_still_yields_a_bundle(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path
) -> None:
    kubectl = tool_or_skip("kubectl")
    job_uuid = str(uuid.uuid4())
    result = run_collector(
        ["-n", kube_namespace, "-j", job_uuid],
        env={"KUBECTL": str(kubectl), "KUBECONFIG": str(kube_cluster.kubeconfig_path)},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert f"no Kubernetes Job or Pod labelled {JOB_UUID_LABEL}={job_uuid}" in result.stderr
    files = bundle_files(tmp_path / "logs.tar.gz")  # the default output, as upstream's script
    assert "no controller pod matches app=agent-stack-k8s" in files["errors.txt"]
