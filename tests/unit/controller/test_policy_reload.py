"""Policy hot reload: valid changes swap atomically, invalid ones keep the last good set (and say why)."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pytest

from engine.controller.metrics import ControllerMetrics
from engine.controller.policy_reload import PolicyReloader, directory_fingerprint
from engine.controller.policy_store import PolicyStore
from engine.core.evaluate import evaluate
from engine.model.config import parse_config
from engine.model.job import parse_job
from engine.policy.loader import load_policies
from tests.unit.controller.builders import sample


def label_policy(name: str, value: str) -> str:
    return f"""\
apiVersion: policy.agent-stack.dev/v1
kind: Policy
metadata: {{name: {name}}}
spec:
  phase: customize
  rules:
  - name: label
    patch: {{metadata: {{labels: {{{name}: {value}}}}}}}
"""


BROKEN_POLICY = """\
apiVersion: policy.agent-stack.dev/v1
kind: Policy
metadata: {name: broken}
spec:
  phase: customize
  rules:
  - name: bad-expression
    deny:
      when: job.command.startsWith(
      message: never
"""

JOB = parse_job({"uuid": "6d3f8a52-3b84-4c1a-9a0e-1f2b3c4d5e6f", "command": "true", "agentQueryRules": []})
CONFIG_VIEW = parse_config({}, "test").expression_view()


def labels_from(store: PolicyStore) -> dict[str, str]:
    labels: dict[str, str] = evaluate(store.current, JOB, CONFIG_VIEW).manifest["metadata"]["labels"]
    return {key: value for key, value in labels.items() if key in ("team", "tier")}


def write(path: Path, text: str) -> None:
    """Replace a file the way editors and kubectl cp do (new inode), with a new mtime."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


async def started(directory: Path, metrics: ControllerMetrics) -> tuple[PolicyStore, PolicyReloader]:
    store = PolicyStore(load_policies([directory]))
    reloader = PolicyReloader(store, [directory], metrics.engine, interval=0.05)
    first = await reloader.check()
    assert first is not None
    assert first.loaded
    return store, reloader


async def test_a_valid_change_is_swapped_in_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = ControllerMetrics()
    write(tmp_path / "10-team.yaml", label_policy("team", "a"))
    store, reloader = await started(tmp_path, metrics)
    before = store.current
    assert labels_from(store) == {"team": "a"}
    assert await reloader.check() is None  # nothing changed on disk

    write(tmp_path / "10-team.yaml", label_policy("team", "b"))
    write(tmp_path / "20-tier.yaml", label_policy("tier", "gold"))
    with caplog.at_level(logging.INFO):
        result = await reloader.check()

    assert result is not None
    assert result.loaded
    assert result.changes is not None
    assert (result.changes.added, result.changes.removed, result.changes.changed) == (
        ("tier",),
        (),
        ("team",),
    )
    assert labels_from(store) == {"team": "b", "tier": "gold"}
    assert store.current is not before
    assert "added: tier; changed: team" in caplog.text
    assert sample(metrics, "buildkite_engine_policy_reloads_total", result="loaded") == 2
    assert sample(metrics, "buildkite_engine_policies_loaded") == len(store.current)

    (tmp_path / "20-tier.yaml").unlink()
    result = await reloader.check()
    assert result is not None
    assert result.changes is not None
    assert result.changes.removed == ("tier",)
    assert labels_from(store) == {"team": "b"}


async def test_an_invalid_change_keeps_the_last_good_set(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = ControllerMetrics()
    write(tmp_path / "10-team.yaml", label_policy("team", "a"))
    store, reloader = await started(tmp_path, metrics)
    good = store.current

    write(tmp_path / "10-team.yaml", label_policy("team", "b"))  # valid on its own...
    write(tmp_path / "20-broken.yaml", BROKEN_POLICY)  # ...but the set as a whole is not
    with caplog.at_level(logging.ERROR):
        result = await reloader.check()

    assert result is not None
    assert not result.loaded
    assert store.current is good  # all or nothing: not even the valid file's change
    assert labels_from(store) == {"team": "a"}
    assert not store.valid
    assert store.problems == result.problems
    assert all(problem.startswith(f"{tmp_path / '20-broken.yaml'}:") for problem in result.problems)
    assert re.match(r"^.*/20-broken\.yaml:9:\d+: Syntax error", result.problems[0])  # FILE:LINE:COL
    for problem in result.problems:
        assert problem in caplog.text
    assert sample(metrics, "buildkite_engine_policy_set_valid") == 0
    assert sample(metrics, "buildkite_engine_policy_reloads_total", result="invalid") == 1
    assert await reloader.check() is None  # still broken, unchanged: no reload storm

    (tmp_path / "20-broken.yaml").unlink()
    result = await reloader.check()
    assert result is not None
    assert result.loaded
    assert store.valid
    assert labels_from(store) == {"team": "b"}
    assert sample(metrics, "buildkite_engine_policy_set_valid") == 1


async def test_a_job_already_evaluating_keeps_its_set(tmp_path: Path) -> None:
    write(tmp_path / "10-team.yaml", label_policy("team", "a"))
    store, reloader = await started(tmp_path, ControllerMetrics())
    in_progress = store.current  # what the scheduler took for a job before the reload
    write(tmp_path / "10-team.yaml", label_policy("team", "b"))
    await reloader.check()
    assert evaluate(in_progress, JOB, CONFIG_VIEW).manifest["metadata"]["labels"]["team"] == "a"
    assert labels_from(store) == {"team": "b"}


def configmap_revision(directory: Path, revision: str, files: dict[str, str]) -> None:
    """Lay out ``files`` the way the kubelet mounts a ConfigMap: a hidden timestamped directory, an
    atomically swapped ``..data`` symlink to it, and visible symlinks through ``..data``."""
    target = directory / f"..{revision}"
    target.mkdir()
    for name, text in files.items():
        (target / name).write_text(text)
    link = directory / "..data_tmp"
    link.symlink_to(target.name)
    os.replace(link, directory / "..data")
    for name in files:
        visible = directory / name
        if not visible.is_symlink():
            visible.symlink_to(Path("..data") / name)


async def test_configmap_updates_through_the_data_symlink_are_picked_up(tmp_path: Path) -> None:
    metrics = ControllerMetrics()
    configmap_revision(tmp_path, "2025_01_01_00_00_00.1", {"team.yaml": label_policy("team", "a")})
    store, reloader = await started(tmp_path, metrics)
    assert labels_from(store) == {"team": "a"}
    defaults = len(load_policies([]))
    assert len(store.current) == defaults + 1  # the hidden directory's copy is not loaded again

    configmap_revision(tmp_path, "2025_01_01_00_05_00.2", {"team.yaml": label_policy("team", "b")})
    result = await reloader.check()
    assert result is not None
    assert result.changes is not None
    assert result.changes.changed == ("team",)
    assert labels_from(store) == {"team": "b"}
    assert len(store.current) == defaults + 1


def test_the_fingerprint_sees_content_size_and_files_but_not_hidden_ones(tmp_path: Path) -> None:
    policy = tmp_path / "a.yaml"
    policy.write_text("x: 1\n")
    first = directory_fingerprint([tmp_path])
    assert directory_fingerprint([tmp_path]) == first
    (tmp_path / ".hidden.yaml").write_text("ignored")
    (tmp_path / "notes.txt").write_text("not a policy file")
    assert directory_fingerprint([tmp_path]) == first
    stat = policy.stat()
    policy.write_text("x: 2\n")
    os.utime(policy, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size and mtime, new content
    assert directory_fingerprint([tmp_path]) != first
    assert directory_fingerprint([tmp_path / "missing"]) != directory_fingerprint([tmp_path])


async def test_a_missing_directory_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    write(tmp_path / "10-team.yaml", label_policy("team", "a"))
    store, reloader = await started(tmp_path, ControllerMetrics())
    (tmp_path / "10-team.yaml").unlink()
    tmp_path.rmdir()
    result = await reloader.check()
    assert result is not None
    assert result.problems == (f"{tmp_path}: no such file or directory",)
    assert labels_from(store) == {"team": "a"}
