#!/usr/bin/env python3
"""Generate the engine's tables of the batch/v1 Job API from Kubernetes' own OpenAPI definitions.

Why: the engine checks every Job it admits against the API it will be sent to (strict: unknown
fields, JSON types, required fields), so ``engine test`` never admits a Job the API server refuses or
silently prunes. Loading the 5 MB swagger document at run time would be slow and would put a build
artefact on the production path, so this script reduces it once to a compact Python literal that the
project checks in, one module per supported version: ``engine/model/kube_api_v1_20.py`` and so on
(struct -> field -> type expression, and the required fields of each struct), read by
``engine.core.kube_validation``.

Sources, per version (:data:`VERSIONS`):

* ``1.20``: ``api/openapi-spec/swagger.json`` of the Kubernetes v1.20.2 source tree that
  ``scripts/build-kube.sh`` unpacks into its cache (the same tree the test API server is built from),
  so the table describes exactly the API server the integration tests run. ``--swagger`` points
  elsewhere.
* ``1.29`` and ``1.34``: the per-version definitions the ``kubernetes-validate`` package ships
  (``kubernetes-json-schema/v1.NN.0-local/_definitions.json``, the same OpenAPI definitions converted
  to JSON schema), installed by ``scripts/install.sh`` as a dev dependency, so a fresh clone can
  regenerate and check them without a cluster. These are the versions with native sidecars (init
  containers with ``restartPolicy: Always``, 1.29) and pod-level resources (``spec.resources``, 1.34),
  which the upstream-v0.47 profile uses.

Re-run after changing this script: ``.venv/bin/python scripts/gen_kube_api.py`` (every version whose
source is there; ``--version 1.34`` for one); ``--check`` exits 1 when a checked-in file is stale (and
2 when a source is not there). Output is deterministic.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gen_k8s_schemas import PROPERTY_SCHEMA_KEYS, STRUCT_SCHEMA_KEYS, ref_target, referenced, short_name

REPO_ROOT = Path(__file__).resolve().parent.parent
KUBE_VERSION = "v1.20.2"
TARGET = Path("engine/model/kube_api_v1_20.py")
ROOT_DEFINITION = "io.k8s.api.batch.v1.Job"
VERSIONS: dict[str, str] = {"1.20": "v1.20.2", "1.29": "v1.29.0", "1.34": "v1.34.0"}
"""Supported minor version -> the exact release its table describes."""
SWAGGER_VERSION = "1.20"
"""The version read from the Kubernetes source tree; the others come from kubernetes-validate."""

# Types whose JSON form is not what their struct says: they become scalar kinds the validator knows.
SPECIAL_TYPES = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": "int-or-string",
    "io.k8s.apimachinery.pkg.api.resource.Quantity": "quantity",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Time": "time",
    "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime": "time",
    "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1": "any",
}


class GeneratorError(Exception):
    """The definitions have a shape this generator does not understand, or are missing."""


def default_swagger_path() -> Path:
    cache = os.environ.get("AGENT_STACK_CACHE") or str(Path.home() / ".cache" / "agent-stack-policy")
    return (
        Path(cache)
        / f"kube-{KUBE_VERSION}"
        / "build"
        / f"kubernetes-{KUBE_VERSION.removeprefix('v')}"
        / "api"
        / "openapi-spec"
        / "swagger.json"
    )


def load_definitions(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise GeneratorError(f"{path} is missing: run scripts/build-kube.sh (it unpacks the v1.20.2 tree)")
    definitions: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))["definitions"]
    return definitions


def kubernetes_validate_path(release: str) -> Path:
    """Where the installed ``kubernetes-validate`` package keeps the definitions of ``release``."""
    try:
        import kubernetes_validate  # noqa: PLC0415 - a dev dependency, only this script needs it
    except ImportError:
        raise GeneratorError("kubernetes-validate is not installed: run scripts/install.sh") from None
    package = Path(kubernetes_validate.__file__).resolve().parent
    return package / "kubernetes-json-schema" / f"{release}-local" / "_definitions.json"


def load_json_schema_definitions(path: Path) -> dict[str, Any]:
    """kubernetes-validate's JSON-schema ``$defs`` in the swagger shape the generator reads: nullable
    types (``["string", "null"]``) become their type, ``#/$defs/`` refs ``#/definitions/``, and the
    keys that carry no field information for the table (``enum``, ``oneOf`` of the scalar special
    types) are dropped."""
    if not path.is_file():
        raise GeneratorError(f"{path} is missing: run scripts/install.sh (kubernetes-validate ships it)")
    document = json.loads(path.read_text(encoding="utf-8"))
    return {name: _swagger_shape(definition) for name, definition in document["$defs"].items()}


def _swagger_shape(node: Any) -> Any:
    if isinstance(node, list):
        return [_swagger_shape(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("enum", "oneOf"):
            continue
        if key == "type" and isinstance(value, list):
            kinds = [kind for kind in value if kind != "null"]
            if len(kinds) != 1:
                raise GeneratorError(f"unsupported type list {value}")
            out[key] = kinds[0]
        elif key == "$ref" and isinstance(value, str):
            out[key] = value.replace("#/$defs/", "#/definitions/")
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: _swagger_shape(prop) for name, prop in value.items()}
        else:
            out[key] = _swagger_shape(value)
    return out


def closure(definitions: Mapping[str, Any]) -> dict[str, str]:
    """Qualified name -> short name of every definition a Job reaches (``status`` left out: a created
    Job never sets it, and the engine refuses it like any field it has no business writing)."""
    seen: set[str] = set()
    pending = [ROOT_DEFINITION]
    while pending:
        qualified = pending.pop()
        if qualified in seen:
            continue
        seen.add(qualified)
        if qualified in SPECIAL_TYPES:
            continue
        definition = definitions[qualified]
        properties = dict(definition.get("properties", {}))
        if qualified == ROOT_DEFINITION:
            properties.pop("status", None)
        pending.extend(referenced(properties))
    names = {q: short_name(q) for q in sorted(seen) if q not in SPECIAL_TYPES}
    values = list(names.values())
    clashes = sorted({name for name in values if values.count(name) > 1})
    if clashes:
        raise GeneratorError(f"short type names clash: {', '.join(clashes)}")
    return names


def type_expression(schema: Mapping[str, Any]) -> str:
    """A scalar kind, a struct name, ``[T]`` (list of T) or ``{T}`` (map of string to T)."""
    unknown = set(schema) - PROPERTY_SCHEMA_KEYS - {k for k in schema if k.startswith("x-kubernetes-")}
    if unknown:
        raise GeneratorError(f"unsupported property schema keys {sorted(unknown)}")
    if "$ref" in schema:
        target = ref_target(schema["$ref"])
        return SPECIAL_TYPES.get(target) or short_name(target)
    kind = schema["type"]
    if kind == "array":
        return f"[{type_expression(schema['items'])}]"
    if kind == "object":
        if "additionalProperties" not in schema:
            return "any"
        return "{" + type_expression(schema["additionalProperties"]) + "}"
    if kind == "integer":
        return str(schema.get("format", "int64"))
    if kind == "string":
        return "bytes" if schema.get("format") == "byte" else "string"
    if kind in ("boolean", "number"):
        return str(kind)
    raise GeneratorError(f"unsupported type {kind}")


def build_tables(
    definitions: Mapping[str, Any], names: Mapping[str, str]
) -> tuple[dict[str, dict[str, str]], dict[str, tuple[str, ...]]]:
    structs: dict[str, dict[str, str]] = {}
    required: dict[str, tuple[str, ...]] = {}
    for qualified, name in names.items():
        definition = definitions[qualified]
        unknown = (
            set(definition) - STRUCT_SCHEMA_KEYS - {k for k in definition if k.startswith("x-kubernetes-")}
        )
        if unknown or "properties" not in definition:
            raise GeneratorError(f"unsupported definition shape for {qualified}")
        properties = dict(definition["properties"])
        if qualified == ROOT_DEFINITION:
            properties.pop("status", None)
        structs[name] = {field: type_expression(prop) for field, prop in sorted(properties.items())}
        if definition.get("required"):
            required[name] = tuple(sorted(definition["required"]))
    return dict(sorted(structs.items())), dict(sorted(required.items()))


def _py(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def render(
    structs: Mapping[str, Mapping[str, str]],
    required: Mapping[str, tuple[str, ...]],
    release: str = KUBE_VERSION,
    source: str = "api/openapi-spec",
) -> str:
    lines = [
        f"# generated by scripts/gen_kube_api.py from Kubernetes {release} {source}; do not edit.",
        f'"""The batch/v1 Job API of Kubernetes {release}, reduced to what the engine validates.',
        "",
        "STRUCTS: struct name -> field -> type expression: a scalar kind (string, bytes, boolean, int32,",
        'int64, number, quantity, int-or-string, time, any), a struct name, "[T]" (list of T) or "{T}"',
        "(map of string to T). REQUIRED: the fields the API marks required. ROOT is the Job.",
        '"""',
        "",
        f"VERSION = {_py(release)}",
        f"ROOT = {_py(short_name(ROOT_DEFINITION))}",
        "",
        "REQUIRED: dict[str, tuple[str, ...]] = {",
    ]
    for name, fields in required.items():
        shown = ", ".join(_py(field) for field in fields) + ("," if len(fields) == 1 else "")
        lines.append(f"    {_py(name)}: ({shown}),")
    lines += ["}", "", "STRUCTS: dict[str, dict[str, str]] = {"]
    for name, fields in structs.items():
        lines.append(f"    {_py(name)}: {{")
        lines += [f"        {_py(field)}: {_py(expression)}," for field, expression in fields.items()]
        lines.append("    },")
    lines.append("}")
    return "\n".join(lines) + "\n"


def generate(swagger: Path) -> str:
    """The 1.20 table, from the v1.20.2 swagger document."""
    definitions = load_definitions(swagger)
    structs, required = build_tables(definitions, closure(definitions))
    return render(structs, required)


def generate_version(version: str, swagger: Path | None = None) -> str:
    """The table of one supported version, from its source (see the module docstring)."""
    release = VERSIONS[version]
    if version == SWAGGER_VERSION:
        return generate(swagger or default_swagger_path())
    definitions = load_json_schema_definitions(kubernetes_validate_path(release))
    structs, required = build_tables(definitions, closure(definitions))
    return render(structs, required, release, "definitions (kubernetes-validate)")


def target_path(version: str) -> Path:
    return Path(f"engine/model/kube_api_v{version.replace('.', '_')}.py")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--swagger", type=Path, default=None, help="the v1.20.2 swagger.json")
    parser.add_argument("--version", choices=sorted(VERSIONS), action="append", help="only this version")
    parser.add_argument("--check", action="store_true", help="only report whether the files are current")
    args = parser.parse_args(argv)
    status = 0
    for version in args.version or sorted(VERSIONS):
        try:
            text = generate_version(version, args.swagger)
        except GeneratorError as exc:
            print(f"gen_kube_api: {version}: {exc}", file=sys.stderr)
            status = max(status, 2)
            continue
        relative = target_path(version)
        target = REPO_ROOT / relative
        if args.check:
            current = target.read_text(encoding="utf-8") if target.is_file() else ""
            if current != text:
                print(f"{relative} is stale: run scripts/gen_kube_api.py", file=sys.stderr)
                status = max(status, 1)
            continue
        target.write_text(text, encoding="utf-8")
        print(f"wrote {relative}")
    return status


if __name__ == "__main__":
    sys.exit(main())
