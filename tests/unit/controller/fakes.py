"""Stand-ins for the Kubernetes side in controller unit tests (the Buildkite side is the real fake)."""

from __future__ import annotations

from engine.kube.errors import KubeAPIError
from engine.model.jsonvalue import JSONObject


class SecretStore:
    """Answers ``read_agent_token`` like ``KubeClient``: the token, or the error a missing Secret gives."""

    def __init__(self, tokens: dict[tuple[str, str], str]) -> None:
        self.tokens = tokens
        self.reads: list[tuple[str, str | None]] = []

    async def read_agent_token(self, secret_name: str, namespace: str | None = None) -> str:
        self.reads.append((secret_name, namespace))
        key = (namespace or "", secret_name)
        if key not in self.tokens:
            raise KubeAPIError(
                f'read Secret {namespace}/{secret_name}: secrets "{secret_name}" not found',
                status=404,
                reason="NotFound",
            )
        return self.tokens[key]


class JobStore:
    """Answers ``create_job`` like the API server would for these tests: stores the Job, or raises a
    scripted error once."""

    def __init__(self) -> None:
        self.created: list[JSONObject] = []
        self.next_error: Exception | None = None

    async def create_job(self, manifest: JSONObject) -> JSONObject:
        if self.next_error is not None:
            error, self.next_error = self.next_error, None
            raise error
        self.created.append(manifest)
        return manifest
