"""Write schema/suite.schema.json from the suite models (run after changing engine/suite/model.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from engine.suite.model import suite_json_schema

TARGET = Path(__file__).resolve().parent.parent / "schema" / "suite.schema.json"


def render() -> str:
    return json.dumps(suite_json_schema(), indent=2, sort_keys=True) + "\n"


def main() -> int:
    TARGET.write_text(render(), encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
