"""The lists the policy guide states match the one place each list is defined. (That every snippet of
the README and the guides loads is ``test_docs_snippets``.)"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_the_protected_env_list_in_the_guide_is_the_policies_list() -> None:
    policy = yaml.safe_load((ROOT / "policies" / "15-shared-env-and-mounts.yaml").read_text(encoding="utf-8"))
    (stated,) = [v["value"] for v in policy["spec"]["variables"] if v["name"] == "protectedEnv"]
    guide = (ROOT / "docs" / "policies.md").read_text(encoding="utf-8")
    section = guide.split("### Protected env", 1)[1].split("Everything else stays", 1)[0]
    assert re.findall(r"`(BUILDKITE_[A-Z0-9_]+)`", section) == stated
