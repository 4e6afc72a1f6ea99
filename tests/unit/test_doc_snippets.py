"""What the README and the policy guide show is what the engine accepts, and the lists they state match
the one place each list is defined."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from engine.core.compiler import PolicySet
from engine.policy.loader import compile_source

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", ROOT / "docs" / "policies.md"]


def yaml_blocks(path: Path) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.DOTALL)


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_every_policy_snippet_loads(path: Path) -> None:
    blocks = yaml_blocks(path)
    assert blocks
    for block in blocks:
        documents = list(yaml.safe_load_all(block))
        assert all(d.get("kind") == "Policy" for d in documents), block
        assert len(PolicySet.build(compile_source(block, path.name))) == len(documents)


def test_the_protected_env_list_in_the_guide_is_the_policies_list() -> None:
    policy = yaml.safe_load((ROOT / "policies" / "15-shared-env-and-mounts.yaml").read_text(encoding="utf-8"))
    (stated,) = [v["value"] for v in policy["spec"]["variables"] if v["name"] == "protectedEnv"]
    guide = (ROOT / "docs" / "policies.md").read_text(encoding="utf-8")
    section = guide.split("### Protected env", 1)[1].split("Everything else stays", 1)[0]
    assert re.findall(r"`(BUILDKITE_[A-Z0-9_]+)`", section) == stated
