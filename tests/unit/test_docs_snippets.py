"""Every policy, config and values snippet in the docs loads, or says it is an elided sketch.

The snippets are what people copy. Each fenced ``yaml`` block of README.md, docs/*.md and the chart
README is loaded the way its reader would use it: a policy (documents with the policy apiVersion) is
compiled after the default set, a policy suite is validated by the suite model, chart values are
validated with the chart's values.schema.json (over the chart's defaults plus the tokens and
``config.org`` an install gives), a controller config is parsed by the config model. In values.yaml,
the commented blocks after ``# Example:`` are checked as values too. A block the docs mark with an
``<!-- sketch ... -->`` comment on the line before it is not loaded, but must show where it is elided
(``...``); any other block must load.
"""

from __future__ import annotations

import copy
import json
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from engine.model.config import ControllerConfig, parse_config
from engine.model.policy import API_VERSION
from engine.policy.loader import load_policy_texts
from engine.suite.model import PolicySuite

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "agent-stack-k8s"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), CHART / "README.md"]
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[A-Za-z]*)\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)
SKETCH = re.compile(r"<!--\s*sketch\b")
CONFIG_KEYS = {str(field.alias) for field in ControllerConfig.model_fields.values()}
INSTALL = {"agentToken": "a", "graphqlToken": "g", "config": {"org": "docs-org"}}


@dataclass(frozen=True)
class Snippet:
    where: str
    text: str
    sketch: bool


def fenced_snippets() -> list[Snippet]:
    found = []
    for doc in DOCS:
        content = doc.read_text(encoding="utf-8")
        for match in FENCE.finditer(content):
            if match["lang"] not in ("yaml", "yml"):
                continue
            before = content[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            line = content[: match.start()].count("\n") + 1
            body = textwrap.dedent(match["body"])
            found.append(Snippet(f"{doc.relative_to(ROOT)}:{line}", body, bool(SKETCH.search(before))))
    return found


def values_examples() -> list[Snippet]:
    """The ``# Example:`` blocks of values.yaml, uncommented, as values (a block whose keys are not
    top-level values is the value of the top-level key above it)."""
    lines = (CHART / "values.yaml").read_text(encoding="utf-8").splitlines()
    found = []
    parent = None
    for number, line in enumerate(lines):
        key = re.match(r"^([A-Za-z][\w-]*):", line)
        if key:
            parent = key[1]
        if line.strip() != "# Example:":
            continue
        block = []
        for following in lines[number + 1 :]:
            if not following.startswith("#  "):
                break
            block.append(following[1:])
        text = textwrap.dedent("\n".join(block)) + "\n"
        data = yaml.safe_load(text)
        properties = values_schema()["properties"]
        if not (isinstance(data, dict) and set(data) <= set(properties)):
            text = yaml.safe_dump({parent: data})
        found.append(Snippet(f"charts/agent-stack-k8s/values.yaml:{number + 1}", text, False))
    return found


def values_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    return schema


def merged(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = merged(base.get(key), value) if key in base else value
        return out
    return copy.deepcopy(over)


def check(snippet: Snippet) -> str:
    """Load the snippet as what it is; return what it was loaded as."""
    documents = [doc for doc in yaml.safe_load_all(snippet.text) if doc is not None]
    assert documents, f"{snippet.where}: an empty snippet"
    if any(isinstance(doc, dict) and doc.get("apiVersion") == API_VERSION for doc in documents):
        if all(isinstance(doc, dict) and doc.get("kind") == "PolicySuite" for doc in documents):
            for doc in documents:
                PolicySuite.model_validate(doc)  # the suite's own run is in tests/integration/test_readme.py
            return "suite"
        load_policy_texts([(snippet.where, snippet.text)])
        return "policy"
    [data] = documents
    assert isinstance(data, dict), f"{snippet.where}: not a map"
    schema = values_schema()
    if set(data) <= set(schema["properties"]) and not set(data) <= CONFIG_KEYS:
        defaults = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
        values = merged(merged(defaults, INSTALL), data)
        errors = [
            f"{list(e.absolute_path)}: {e.message}"
            for e in jsonschema.Draft7Validator(schema).iter_errors(values)
        ]
        assert errors == [], f"{snippet.where}: the chart refuses these values: {errors}"
        if isinstance(data.get("policies"), dict):
            texts = [
                (f"{snippet.where} {name}", text)
                for name, text in data["policies"].items()
                if isinstance(text, str)
            ]
            load_policy_texts(texts)
        parse_config(values["config"], snippet.where)
        return "values"
    if set(data) <= CONFIG_KEYS:
        parse_config(data, snippet.where)
        return "config"
    raise AssertionError(
        f"{snippet.where}: neither a policy, chart values nor a config; mark it <!-- sketch -->"
    )


SNIPPETS = fenced_snippets() + values_examples()


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.where for s in SNIPPETS])
def test_every_snippet_loads_or_is_a_marked_sketch(snippet: Snippet) -> None:
    if snippet.sketch:
        assert "..." in snippet.text, f"{snippet.where}: a sketch must show where it is elided (...)"
        return
    assert check(snippet) in {"policy", "suite", "values", "config"}


def test_the_docs_have_snippets_of_every_kind() -> None:
    kinds = {check(s) for s in SNIPPETS if not s.sketch}
    assert kinds >= {"policy", "values"}
    assert any(s.sketch for s in SNIPPETS)


def test_a_broken_snippet_is_caught() -> None:
    bad_policy = Snippet(
        "x", f"apiVersion: {API_VERSION}\nkind: Policy\nmetadata: {{name: x}}\nspec: {{phase: nope}}\n", False
    )
    with pytest.raises(Exception, match="phase"):
        check(bad_policy)
    with pytest.raises(AssertionError, match="the chart refuses"):
        check(Snippet("y", "config: {max-inflight: 3}\n", False))
