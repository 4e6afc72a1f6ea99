"""The explain view: who set each field, checked against the decision itself rather than against a
copy of the policy files, so the default policies can change without rewriting these tests."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from engine.cli import app
from engine.core.compiler import PolicySet
from engine.core.evaluate import evaluate
from engine.explain.blame import INTERNAL_KEYS, UNRECORDED, blame
from engine.explain.data import explain_data
from engine.explain.view import render_blame
from engine.inputs import load_config_file, load_job_file
from engine.model.decision import Decision
from engine.model.jsonvalue import JSON
from engine.model.jsonvalue import Path as JsonPath
from engine.policy.loader import load_policies
from engine.resources import default_policies_dir
from tests.golden import GoldenFixture, golden_fixtures

ROOT = Path(__file__).resolve().parents[3]
WORKED_EXAMPLE = ROOT / "tests" / "golden" / "01-worked-example" / "job.json"


@functools.cache
def policies_for(extra: Path | None) -> PolicySet:
    return load_policies([extra] if extra else [])


def decide(fixture: GoldenFixture) -> tuple[Decision, PolicySet]:
    policies = policies_for(fixture.policies)
    config = load_config_file(fixture.config)
    return evaluate(policies, load_job_file(fixture.job), config.expression_view()), policies


def keys_in(value: JSON) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys_in(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys_in(v)}
    return set()


@pytest.mark.parametrize("fixture", list(golden_fixtures()), ids=lambda f: f.name)
def test_the_trace_replays_to_exactly_the_job(fixture: GoldenFixture) -> None:
    decision, policies = decide(fixture)
    state = blame(decision)
    assert state.root.to_json() == decision.manifest
    unrecorded = [path for path, node in state.fields() if path and node.writers[-1].policy == UNRECORDED]
    assert unrecorded == [], "every field of the Job is explained by a trace record"
    for full in (False, True):
        view = render_blame(decision, policies.replacements, full=full)
        assert (yaml.safe_load(view) or {}) == decision.manifest, "the blame view is the Job, as YAML"
        assert not INTERNAL_KEYS & keys_in(yaml.safe_load(view) or {})
        assert "$role" not in view
    data = explain_data(decision, policies.replacements)
    assert "$role" not in json.dumps(data)


@pytest.fixture(scope="module")
def worked() -> tuple[Decision, PolicySet]:
    policies = load_policies([])
    job = load_job_file(WORKED_EXAMPLE)
    return evaluate(policies, job, load_config_file(None).expression_view()), policies


def default_policy_names() -> set[str]:
    return {p.name for p in load_policies([]).policies if p.where.startswith(str(default_policies_dir()))}


def test_worked_example_attributes_every_field_to_a_default_policy_that_wrote_it(
    worked: tuple[Decision, PolicySet],
) -> None:
    decision, _ = worked
    state = blame(decision)
    names = default_policy_names() | {"stack"}  # the engine's finishing step writes as stack/finish
    records: dict[tuple[str, str], list[JsonPath]] = {}
    for record in decision.trace:
        assert record.segments is not None
        records.setdefault((record.policy, record.rule), []).append(record.segments)
    fields = [(path, node) for path, node in state.fields() if path]
    assert len(fields) > 200
    for path, node in fields:
        last = node.writers[-1]
        assert last.policy in names, path
        # the rule it names really changed this field, something containing it, or (for a list an
        # append created) an item of it
        written = records[(last.policy, last.rule)]
        assert any(path[: len(p)] == p or p[: len(path)] == path for p in written), (path, last.label)


def test_worked_example_attributes_every_env_var_and_its_source_variable(
    worked: tuple[Decision, PolicySet],
) -> None:
    decision, _ = worked
    state = blame(decision)
    pod = decision.manifest["spec"]["template"]["spec"]
    first_holder: dict[int, tuple[str, str]] = {}
    for variable in decision.variables:
        if isinstance(variable.value, list):
            for item in variable.value:
                first_holder.setdefault(id(item), (variable.policy, variable.name))
    names = default_policy_names()
    checked = 0
    for list_key in ("containers", "initContainers"):
        for c_index, container in enumerate(pod.get(list_key, [])):
            for e_index, entry in enumerate(container.get("env", [])):
                node = state.node_at(("spec", "template", "spec", list_key, c_index, "env", e_index))
                assert node is not None
                assert node.writers, entry["name"]
                assert node.writers[-1].policy in names, entry["name"]
                checked += 1
    assert checked > 60
    # container-0's env came from the bootstrap rule; entries spliced from a variable say which one
    env_record = next(r for r in decision.trace if r.path == "spec.template.spec.containers[0].env")
    for index, item in enumerate(env_record.new):
        node = state.node_at(("spec", "template", "spec", "containers", 0, "env", index))
        assert node is not None
        writer = node.writers[-1]
        assert (writer.policy, writer.rule) == (env_record.policy, env_record.rule)
        expected = first_holder.get(id(item))
        got = (writer.via.policy, writer.via.variable) if writer.via else None
        assert got == expected, item["name"]
    shared = [w for _, n in state.fields() for w in n.writers if w.via and w.via.variable == "sharedEnv"]
    assert shared, "the shared env is attributed to the variable that states it"


def test_the_view_prints_values_whole_and_names_the_writer_beside_them(
    worked: tuple[Decision, PolicySet],
) -> None:
    decision, policies = worked
    view = render_blame(decision, policies.replacements)
    lines = view.splitlines()
    job_url = decision.manifest["metadata"]["annotations"]["buildkite.com/job-url"]
    assert len(job_url) > 60
    assert any(job_url in line for line in lines)
    agent_line = next(line for line in lines if line.strip().startswith("- name: agent"))
    assert agent_line.endswith("# agent-container/add-agent")
    checkout = next(
        c for c in decision.manifest["spec"]["template"]["spec"]["containers"] if c["name"] == "checkout"
    )
    script = checkout["args"][0]
    assert "\n" in script
    assert all(part in view for part in script.split("\n") if part)


def run_cli(*args: str | Path) -> Any:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.stdout + result.stderr
    return result


def test_full_mode_unmatched_and_replaced_policies(tmp_path: Path) -> None:
    (tmp_path / "10-image.yaml").write_text(
        "apiVersion: policy.agent-stack.dev/v1\nkind: Policy\nmetadata: {name: agent-image}\n"
        "spec:\n  phase: customize\n  rules:\n  - name: pin\n    target: $agent\n"
        "    patch: {image: registry.example.com/agent:1}\n"
        "---\napiVersion: policy.agent-stack.dev/v1\nkind: Policy\nmetadata: {name: gpu-only}\n"
        "spec:\n  phase: customize\n  match: tags.queue == 'gpu'\n  rules:\n  - name: r\n    patch: {}\n"
        "---\napiVersion: policy.agent-stack.dev/v1\nkind: Policy\n"
        "metadata: {name: controller-pod-spec-patch}\nspec:\n  phase: customize\n  rules: []\n",
        encoding="utf-8",
    )
    result = run_cli("test", tmp_path, "--job", WORKED_EXAMPLE, "--explain=full")
    assert result.exit_code == 0
    image_line = next(line for line in result.stdout.splitlines() if "registry.example.com/agent:1" in line)
    assert image_line.endswith("# agent-image/pin; before: agent-container/add-agent")
    assert "#   gpu-only (" in result.stdout
    assert "match: tags.queue == 'gpu'" in result.stdout
    assert "# replaced policies:" in result.stdout
    assert "#   controller-pod-spec-patch from " in result.stdout
    assert yaml.safe_load(result.stdout)["kind"] == "Job"
    last = run_cli("test", tmp_path, "--job", WORKED_EXAMPLE, "--explain")
    image_line = next(line for line in last.stdout.splitlines() if "registry.example.com/agent:1" in line)
    assert image_line.endswith("# agent-image/pin")
    # --explain alone is a flag: a policy path after it stays a policy path
    flag = run_cli("test", "--explain", tmp_path, "--job", WORKED_EXAMPLE)
    assert flag.exit_code == 0
    assert "agent-image/pin" in flag.stdout


def test_explain_as_json_maps_each_path_to_its_writers(tmp_path: Path) -> None:
    (tmp_path / "drop.yaml").write_text(
        "apiVersion: policy.agent-stack.dev/v1\nkind: Policy\nmetadata: {name: no-ttl}\n"
        "spec:\n  phase: customize\n  rules:\n  - name: drop\n"
        "    jsonPatch: [{op: remove, path: /spec/ttlSecondsAfterFinished}]\n",
        encoding="utf-8",
    )
    result = run_cli("test", tmp_path, "--job", WORKED_EXAMPLE, "--explain", "-o", "json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["admitted"] is True
    assert data["fields"]["kind"] == [{"policy": "job-metadata", "rule": "job", "op": "add"}]
    agent_image = data["fields"]["spec.template.spec.containers[1].image"]
    assert agent_image[-1]["policy"] == "agent-container"
    via = data["fields"]["spec.template.spec.containers[0].env[0]"][-1]["via"]
    assert via == {"policy": "shared-env-and-mounts", "variable": "sharedEnv"}
    assert set(data["fields"]) >= {"apiVersion", "metadata.labels", "spec.template.spec.volumes[0].name"}
    assert data["removed"] == [
        {
            "path": "spec.ttlSecondsAfterFinished",
            "writers": [{"policy": "job-metadata", "rule": "job", "op": "add"}],
            "removedBy": {"policy": "no-ttl", "rule": "drop", "op": "remove"},
        }
    ]
    unmatched = {entry["policy"]: entry["match"] for entry in data["unmatched"]}
    assert unmatched["controller-pod-spec-patch"] == "has(config.podSpecPatch)"
    assert data["manifest"]["kind"] == "Job"


def test_a_denied_job_is_explained_with_its_denial(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("prohibit-kubernetes-plugin: true\n", encoding="utf-8")
    job = ROOT / "tests" / "golden" / "93-deny-prohibited-plugin" / "job.json"
    result = run_cli("test", "--job", job, "--config", config, "--explain")
    assert result.exit_code == 1
    assert "# denied: plugin-problems/prohibit-kubernetes-plugin:" in result.stdout
    assert result.stderr.endswith("(denied by policy plugin-problems, rule prohibit-kubernetes-plugin)\n")
