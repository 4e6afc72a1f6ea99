"""Write schema/policy.schema.json from the policy models (run after changing engine/model/policy.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from engine.model.policy import policy_json_schema

TARGET = Path(__file__).resolve().parent.parent / "schema" / "policy.schema.json"


def render() -> str:
    return json.dumps(policy_json_schema(), indent=2, sort_keys=True) + "\n"


def main() -> int:
    TARGET.write_text(render(), encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
