"""Write schema/config.schema.json from the config model (run after changing engine/model/config.py).

The Kubernetes types the config embeds (PodSpec, Volume, ...) are copied from
schema/kubernetes-plugin.schema.json, which scripts/gen_k8s_schemas.py generates from Kubernetes' own
definitions, so both schemas describe those objects identically. ``--check`` exits 1 when the
checked-in file differs from what the generator would write.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.model.config import config_json_schema

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schema"
TARGET = SCHEMA_DIR / "config.schema.json"
KUBERNETES_SOURCE = SCHEMA_DIR / "kubernetes-plugin.schema.json"


def render() -> str:
    kubernetes = json.loads(KUBERNETES_SOURCE.read_text(encoding="utf-8"))
    schema = config_json_schema(kubernetes["$defs"])
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether the file is current")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET} is out of date: run scripts/gen_config_schema.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
