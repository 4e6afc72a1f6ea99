"""Golden fixtures: Buildkite jobs and the exact Kubernetes Jobs (or denials) they must produce.

Each directory ``NN-name/`` holds ``job.json`` (the job as Buildkite's GraphQL API returns it), an
optional ``config.yaml`` (controller config) and ``policies/`` (policies after the defaults), and
either ``expected.yaml`` (the exact Job) or ``expected-denial.txt`` (the exact stderr). An admitted
fixture may add ``expected-warnings.txt``; without it ``engine test`` must print nothing on stderr.

The expectations were derived from agent-stack-k8s v0.20.2 (``agent-stack-k8s-behaviour.md`` and the
upstream source) with its [BUG]s fixed as later releases fixed them, never copied from this engine's
output. ``<stack-version>`` in an expected value stands for ``engine.__version__``, so a release does
not rewrite every golden file, and ``<name>@<digest>`` in the changed-by annotation stands for the
content digest of policy ``<name>`` (the first 8 hex digits of the SHA-256 of its YAML document as
canonical JSON), computed here from the policy files themselves, so editing a default policy does not
rewrite every golden file either.

This module loads the fixtures for ``tests/test_golden.py`` and the server-side validation test.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from engine import __version__

GOLDEN_DIR = Path(__file__).resolve().parent
DEFAULT_POLICIES_DIR = GOLDEN_DIR.parents[1] / "policies"
STACK_VERSION_PLACEHOLDER = "<stack-version>"
DIGEST_PLACEHOLDER = re.compile(r"(?P<name>[a-z0-9][-a-z0-9.]*)@<digest>")


@dataclass(frozen=True)
class GoldenFixture:
    """One fixture directory, with the paths ``engine test`` takes and what it must produce.

    ``profile_dirs``: the profile policies the fixture's config selects (loaded after the defaults),
    for the digests in the changed-by annotation. A fixture may hold ``pod-templates/NAME.yaml``: the
    PodTemplates its controller's namespace has (``engine test --pod-template NAME=FILE``)."""

    path: Path
    profile_dirs: tuple[Path, ...] = ()

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def job(self) -> Path:
        return self.path / "job.json"

    @property
    def config(self) -> Path | None:
        config = self.path / "config.yaml"
        return config if config.is_file() else None

    @property
    def policies(self) -> Path | None:
        policies = self.path / "policies"
        return policies if policies.is_dir() else None

    @property
    def expected_manifest_path(self) -> Path:
        return self.path / "expected.yaml"

    @property
    def expected_denial_path(self) -> Path:
        return self.path / "expected-denial.txt"

    @property
    def is_denial(self) -> bool:
        return self.expected_denial_path.is_file()

    def cli_args(self) -> list[str]:
        """Arguments for ``engine test`` (JSON output, so no YAML round trip hides a type)."""
        args = ["test", "--job", str(self.job), "-o", "json"]
        if self.config is not None:
            args += ["--config", str(self.config)]
        templates = self.path / "pod-templates"
        if templates.is_dir():
            for file in sorted(templates.glob("*.yaml")):
                args += ["--pod-template", f"{file.stem}={file}"]
        if self.policies is not None:
            args.append(str(self.policies))
        return args

    def expected_manifest(self) -> dict[str, Any]:
        """The expected Job with the stack version filled in."""
        manifest = yaml.safe_load(self.expected_manifest_path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict):
            raise ValueError(f"{self.expected_manifest_path}: expected a YAML map")
        filled = with_policy_digests(with_stack_version(manifest), self.policy_digests())
        assert isinstance(filled, dict)
        return filled

    def policy_digests(self) -> dict[str, str]:
        """Policy name -> digest for the default policies and then this fixture's own (a later
        document with the same name replaces an earlier one, as in the engine)."""
        files = sorted(DEFAULT_POLICIES_DIR.glob("*.yaml"))
        for directory in self.profile_dirs:
            files += sorted(directory.glob("*.yaml"))
        if self.policies is not None:
            files += sorted(p for p in self.policies.iterdir() if p.suffix in (".yaml", ".yml"))
        digests: dict[str, str] = {}
        for file in files:
            for document in yaml.safe_load_all(file.read_text(encoding="utf-8")):
                if isinstance(document, dict):
                    canonical = json.dumps(
                        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
                    )
                    digests[document["metadata"]["name"]] = hashlib.sha256(canonical.encode()).hexdigest()[:8]
        return digests

    def expected_denial(self) -> str:
        return self.expected_denial_path.read_text(encoding="utf-8")

    def expected_warnings(self) -> str:
        warnings = self.path / "expected-warnings.txt"
        return warnings.read_text(encoding="utf-8") if warnings.is_file() else ""

    def job_document(self) -> dict[str, Any]:
        document = json.loads(self.job.read_text(encoding="utf-8"))
        assert isinstance(document, dict)
        return document


def with_stack_version(value: Any) -> Any:
    """``value`` with the version placeholder in every string replaced by ``engine.__version__``."""
    if isinstance(value, str):
        return value.replace(STACK_VERSION_PLACEHOLDER, __version__)
    if isinstance(value, list):
        return [with_stack_version(item) for item in value]
    if isinstance(value, dict):
        return {key: with_stack_version(item) for key, item in value.items()}
    return value


def with_policy_digests(value: Any, digests: dict[str, str]) -> Any:
    """``value`` with every ``<name>@<digest>`` placeholder filled in from ``digests``."""
    if isinstance(value, str):
        return DIGEST_PLACEHOLDER.sub(lambda m: f"{m['name']}@{digests.get(m['name'], '?')}", value)
    if isinstance(value, list):
        return [with_policy_digests(item, digests) for item in value]
    if isinstance(value, dict):
        return {key: with_policy_digests(item, digests) for key, item in value.items()}
    return value


V047_DIR = GOLDEN_DIR.parent / "golden-v047"
V047_PROFILE_DIR = DEFAULT_POLICIES_DIR / "profiles" / "upstream-v0.47"


def golden_fixtures(root: Path = GOLDEN_DIR, profile_dirs: tuple[Path, ...] = ()) -> Iterator[GoldenFixture]:
    """Every fixture directory under ``root``, in name order."""
    for path in sorted(root.iterdir()):
        if path.is_dir() and (path / "job.json").is_file():
            yield GoldenFixture(path, profile_dirs)


def admitted_fixtures() -> list[GoldenFixture]:
    return [fixture for fixture in golden_fixtures() if not fixture.is_denial]


def denied_fixtures() -> list[GoldenFixture]:
    return [fixture for fixture in golden_fixtures() if fixture.is_denial]


def v047_fixtures() -> list[GoldenFixture]:
    """The upstream-v0.47 profile's fixtures (``tests/golden-v047``)."""
    return list(golden_fixtures(V047_DIR, (V047_PROFILE_DIR,)))
