"""A real, throw-away Kubernetes control plane (etcd + kube-apiserver + kube-controller-manager).

Why a real one: the stack's behaviour depends on what the API server accepts, defaults and rejects,
and on the job, TTL and garbage-collector controllers reacting to our Jobs. A fake would only echo
our own assumptions back. There is no kubelet and no scheduler: tests play the kubelet by patching
``pods/status`` (see ``tests.harness.kubelet``).

The binaries come from ``scripts/build-kube.sh`` (cached outside the repo) and etcd from Debian's
``etcd-server``. Everything listens on 127.0.0.1 on free ports and lives in a temporary directory,
so several clusters (e.g. parallel test sessions) never collide.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from kubernetes import client as k8s_client

KUBE_VERSION = "v1.20.2"
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0
_LOG_TAIL_LINES = 25
# Without this gate v1.20 silently drops ttlSecondsAfterFinished and skips the TTL controller.
_FEATURE_GATES = "TTLAfterFinished=true"
_KCM_CONTROLLERS = "job,ttl-after-finished,garbagecollector,namespace"
# kube-controller-manager's /healthz turns OK before its informers sync; this line means Jobs work.
_KCM_SYNCED_MARKER = "Caches are synced for job"
_AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  users: {users}
- level: None
"""


class KubeBinariesMissingError(RuntimeError):
    """A binary the cluster needs is not installed; the message says which and how to get it."""


class ClusterStartError(RuntimeError):
    """A component did not become ready; the message carries the tail of its log."""


def kube_cache_dir() -> Path:
    """Where ``scripts/build-kube.sh`` caches the binaries (``AGENT_STACK_CACHE`` overrides the root)."""
    root = os.environ.get("AGENT_STACK_CACHE") or str(Path.home() / ".cache" / "agent-stack-policy")
    return Path(root) / f"kube-{KUBE_VERSION}" / "bin"


@dataclass(frozen=True)
class KubeBinaries:
    """Absolute paths of the executables a cluster runs."""

    apiserver: Path
    controller_manager: Path
    etcd: Path


def locate_binaries() -> KubeBinaries:
    """Find the binaries, or raise ``KubeBinariesMissingError`` naming every missing one."""
    cache = kube_cache_dir()
    apiserver = cache / "kube-apiserver"
    controller_manager = cache / "kube-controller-manager"
    etcd_on_path = shutil.which("etcd")
    etcd = Path(etcd_on_path) if etcd_on_path else Path("/usr/bin/etcd")
    missing = [str(p) for p in (apiserver, controller_manager, etcd) if not os.access(p, os.X_OK)]
    if not _can_make_rsa_keys():
        missing.append("openssl (or the Python 'cryptography' package)")
    if missing:
        raise KubeBinariesMissingError(
            f"Kubernetes test binaries missing: {', '.join(missing)}; run scripts/build-kube.sh"
        )
    return KubeBinaries(apiserver=apiserver, controller_manager=controller_manager, etcd=etcd)


def _can_make_rsa_keys() -> bool:
    if shutil.which("openssl"):
        return True
    try:
        importlib.import_module("cryptography.hazmat.primitives.asymmetric.rsa")
    except ImportError:
        return False
    return True


def _write_rsa_private_key(path: Path) -> None:
    """Service-account signing key. openssl first; ``cryptography`` only where openssl is absent."""
    openssl = shutil.which("openssl")
    if openssl:
        subprocess.run(
            [openssl, "genrsa", "-out", str(path), "2048"],
            check=True,
            capture_output=True,
        )
        return
    rsa = importlib.import_module("cryptography.hazmat.primitives.asymmetric.rsa")
    serialization = importlib.import_module("cryptography.hazmat.primitives.serialization")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _http_status(url: str, token: str | None) -> int | None:
    """Status code of a GET, or None when nothing answers. Skips TLS checks and ignores proxies."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with opener.open(request, timeout=2) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return None


@dataclass
class _Component:
    """One running control-plane process, in its own process group, logging to a file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def is_running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM the whole group, SIGKILL it if it lingers; never raises."""
        for sig, wait_seconds in ((signal.SIGTERM, STOP_TIMEOUT_SECONDS), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=wait_seconds)
            except subprocess.TimeoutExpired:
                continue
            return

    def rss_megabytes(self) -> float:
        """Resident memory of the process (0.0 once it has exited)."""
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return 0.0
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0


def _spawn(name: str, argv: Sequence[str], work_dir: Path) -> _Component:
    """Start ``argv`` in a new session so ``stop`` can kill everything it forks.

    ``setpriv --pdeathsig`` makes the kernel kill the component if the test process dies without
    running its cleanup (e.g. SIGKILL), so no orphaned apiserver keeps ports and memory.
    """
    log_path = work_dir / f"{name}.log"
    setpriv = shutil.which("setpriv")
    command = [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv else list(argv)
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=work_dir,
            start_new_session=True,
        )
    return _Component(name=name, process=process, log_path=log_path)


def _write_kubeconfig(path: Path, server: str, user: str, token: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "harness", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "harness", "context": {"cluster": "harness", "user": user}}],
        "current-context": "harness",
        "preferences": {},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


class KubeCluster:
    """etcd, kube-apiserver and kube-controller-manager on 127.0.0.1, started on demand.

    Use as a context manager (or call ``start``/``stop``). ``stop`` is also registered with
    ``atexit`` so an aborted test run does not leave the processes behind.
    """

    def __init__(
        self,
        binaries: KubeBinaries | None = None,
        *,
        start_timeout: float = START_TIMEOUT_SECONDS,
        extra_users: Sequence[str] = (),
        audit_users: Sequence[str] = (),
    ):
        """``extra_users``: more ``system:masters`` users, each with its own token, so a measurement
        can tell their requests apart. ``audit_users``: users whose requests the API server writes to
        its audit log (Metadata level; off by default, since it slows every request down)."""
        self._binaries = binaries
        self._start_timeout = start_timeout
        self._user_tokens = {user: f"{user}-{secrets.token_hex(16)}" for user in extra_users}
        self._audit_users = tuple(audit_users)
        self._audit_log: Path | None = None
        self._components: list[_Component] = []
        self._work_dir: Path | None = None
        self._server: str | None = None
        self._kubeconfig_path: Path | None = None
        self._ca_path: Path | None = None
        self._sa_key: Path | None = None
        self._apiserver_argv: list[str] = []
        self.token = f"admin-{secrets.token_hex(16)}"
        self._kcm_token = f"kcm-{secrets.token_hex(16)}"
        self.startup_seconds: float | None = None

    # ---- public surface ---------------------------------------------------------------------------

    @property
    def server(self) -> str:
        """``https://127.0.0.1:<port>`` of the API server."""
        if self._server is None:
            raise RuntimeError("KubeCluster is not started")
        return self._server

    @property
    def kubeconfig_path(self) -> Path:
        """Kubeconfig for the admin user (``system:masters``), TLS verification skipped."""
        if self._kubeconfig_path is None:
            raise RuntimeError("KubeCluster is not started")
        return self._kubeconfig_path

    @property
    def ca_cert_path(self) -> Path:
        """The API server's self-signed serving certificate (names 127.0.0.1), for clients that want
        to verify TLS instead of using the kubeconfig's insecure-skip-tls-verify."""
        if self._ca_path is None:
            raise RuntimeError("KubeCluster is not started")
        return self._ca_path

    def api_client(self) -> k8s_client.ApiClient:
        """A fresh, admin-authenticated client; the caller closes it.

        It verifies TLS against the API server's self-signed certificate (which names 127.0.0.1),
        so tests get no insecure-request warnings.
        """
        configuration = k8s_client.Configuration(
            host=self.server,
            api_key={"BearerToken": self.token},
            api_key_prefix={"BearerToken": "Bearer"},
        )
        if self._ca_path is not None and self._ca_path.exists():
            configuration.ssl_ca_cert = str(self._ca_path)
        else:
            configuration.verify_ssl = False
        return k8s_client.ApiClient(configuration)

    def rss_megabytes(self) -> dict[str, float]:
        """Resident memory of each running component, for measurements."""
        return {component.name: component.rss_megabytes() for component in self._components}

    def pids(self) -> dict[str, int]:
        """Process id of each running component (for CPU measurements from ``/proc``)."""
        return {component.name: component.process.pid for component in self._components}

    def write_kubeconfig(self, path: Path, user: str = "admin") -> Path:
        """A kubeconfig for ``user`` (``admin`` or one of ``extra_users``) that verifies the API
        server's certificate; returns ``path``."""
        token = self.token if user == "admin" else self._user_tokens[user]
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "harness",
                    "cluster": {"server": self.server, "certificate-authority": str(self.ca_cert_path)},
                }
            ],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": "harness", "context": {"cluster": "harness", "user": user}}],
            "current-context": "harness",
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def audit_events(self) -> Iterator[dict[str, Any]]:
        """The audit log's events so far (``audit_users`` only), oldest first."""
        if self._audit_log is None:
            raise RuntimeError("the audit log is off: start the cluster with audit_users")
        with contextlib.suppress(FileNotFoundError), self._audit_log.open() as log:
            for line in log:
                if line.endswith("\n") and line.strip():  # a last line without one is still being written
                    yield json.loads(line)

    def __enter__(self) -> KubeCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> KubeCluster:
        """Start all three components and wait until Jobs are actually handled."""
        if self._work_dir is not None:
            raise RuntimeError("KubeCluster is already started")
        binaries = self._binaries or locate_binaries()
        began = time.monotonic()
        self._work_dir = Path(tempfile.mkdtemp(prefix="kube-harness-"))
        atexit.register(self.stop)
        try:
            etcd_url = self._start_etcd(binaries.etcd)
            self._start_apiserver(binaries.apiserver, etcd_url)
            self._start_controller_manager(binaries.controller_manager)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Stop controller-manager, then apiserver, then etcd, and delete the temp dir. Idempotent.

        The apiserver goes before etcd: with etcd gone first its shutdown hangs for about a minute.
        """
        atexit.unregister(self.stop)
        for component in reversed(self._components):
            component.stop()
        self._components.clear()
        if self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)
        self._work_dir = None
        self._server = None
        self._kubeconfig_path = None
        self._ca_path = None

    # ---- faults -----------------------------------------------------------------------------------

    def kill_apiserver(self) -> None:
        """SIGKILL the API server (etcd and the controller-manager keep running), as a crash would."""
        component = self._apiserver()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(component.process.pid, signal.SIGKILL)
        component.process.wait(timeout=STOP_TIMEOUT_SECONDS)

    def restart_apiserver(self) -> None:
        """Start the API server again on the same port, certificates and etcd; return once ready."""
        old = self._apiserver()
        if old.is_running():
            raise RuntimeError("the API server is still running; kill_apiserver() first")
        assert self._work_dir is not None
        component = _spawn("kube-apiserver", self._apiserver_argv, self._work_dir)
        self._components[self._components.index(old)] = component
        self._wait_until(component, lambda: _http_status(f"{self.server}/readyz", self.token) == 200)

    def _apiserver(self) -> _Component:
        return next(c for c in self._components if c.name == "kube-apiserver")

    # ---- components -------------------------------------------------------------------------------

    def _dir(self, name: str) -> Path:
        assert self._work_dir is not None
        path = self._work_dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _launch(self, name: str, argv: Sequence[str]) -> _Component:
        assert self._work_dir is not None
        component = _spawn(name, argv, self._work_dir)
        self._components.append(component)
        return component

    def _start_etcd(self, etcd: Path) -> str:
        client_url = f"http://127.0.0.1:{_free_port()}"
        peer_url = f"http://127.0.0.1:{_free_port()}"
        component = self._launch(
            "etcd",
            [
                str(etcd),
                "--name=harness",
                f"--data-dir={self._dir('etcd-data')}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=harness={peer_url}",
                "--initial-cluster-state=new",
                "--logger=zap",
            ],
        )
        self._wait_until(component, lambda: _http_status(f"{client_url}/health", None) == 200)
        return client_url

    def _start_apiserver(self, apiserver: Path, etcd_url: str) -> None:
        assert self._work_dir is not None
        sa_key = self._work_dir / "sa.key"
        _write_rsa_private_key(sa_key)
        self._sa_key = sa_key
        token_file = self._work_dir / "tokens.csv"
        token_file.write_text(
            f'{self.token},admin,admin,"system:masters"\n'
            f'{self._kcm_token},system:kube-controller-manager,kcm,"system:masters"\n'
            + "".join(
                f'{token},{user},{user},"system:masters"\n' for user, token in self._user_tokens.items()
            )
        )
        port = _free_port()
        cert_dir = self._dir("apiserver-certs")
        audit_flags: list[str] = []
        if self._audit_users:
            policy = self._work_dir / "audit-policy.yaml"
            policy.write_text(_AUDIT_POLICY.format(users=json.dumps(list(self._audit_users))))
            self._audit_log = self._work_dir / "audit.log"
            audit_flags = [
                f"--audit-policy-file={policy}",
                f"--audit-log-path={self._audit_log}",
                "--audit-log-format=json",
                "--audit-log-maxsize=0",
            ]
        self._apiserver_argv = [
            str(apiserver),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={cert_dir}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={sa_key}",
            f"--service-account-signing-key-file={sa_key}",
            f"--token-auth-file={token_file}",
            "--authorization-mode=RBAC",
            "--disable-admission-plugins=ServiceAccount",
            "--allow-privileged=true",
            f"--feature-gates={_FEATURE_GATES}",
            *audit_flags,
        ]
        component = self._launch("kube-apiserver", self._apiserver_argv)
        server = f"https://127.0.0.1:{port}"
        self._wait_until(component, lambda: _http_status(f"{server}/readyz", self.token) == 200)
        self._server = server
        self._ca_path = cert_dir / "apiserver.crt"
        self._kubeconfig_path = self._work_dir / "kubeconfig"
        _write_kubeconfig(self._kubeconfig_path, server, "admin", self.token)

    def _start_controller_manager(self, controller_manager: Path) -> None:
        assert self._work_dir is not None
        assert self._sa_key is not None
        kubeconfig = self._work_dir / "kcm.kubeconfig"
        _write_kubeconfig(kubeconfig, self.server, "kcm", self._kcm_token)
        port = _free_port()
        component = self._launch(
            "kube-controller-manager",
            [
                str(controller_manager),
                f"--kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                "--port=0",
                f"--cert-dir={self._dir('kcm-certs')}",
                "--leader-elect=false",
                f"--controllers={_KCM_CONTROLLERS}",
                "--use-service-account-credentials=false",
                f"--service-account-private-key-file={self._sa_key}",
                f"--feature-gates={_FEATURE_GATES}",
                "--kube-api-qps=300",
                "--kube-api-burst=600",
            ],
        )

        def ready() -> bool:
            if _http_status(f"https://127.0.0.1:{port}/healthz", self.token) != 200:
                return False
            return _KCM_SYNCED_MARKER in component.log_path.read_text(errors="replace")

        self._wait_until(component, ready)

    def _wait_until(self, component: _Component, ready: Callable[[], bool]) -> None:
        """Poll ``ready`` until true; fail fast if the process exits, or after the start timeout."""
        deadline = time.monotonic() + self._start_timeout
        while True:
            if not component.is_running():
                raise ClusterStartError(
                    f"{component.name} exited with code {component.process.returncode} while starting; "
                    f"last log lines:\n{_log_tail(component.log_path)}"
                )
            if ready():
                return
            if time.monotonic() > deadline:
                raise ClusterStartError(
                    f"{component.name} was not ready within {self._start_timeout:.0f}s; "
                    f"last log lines:\n{_log_tail(component.log_path)}"
                )
            time.sleep(0.1)
