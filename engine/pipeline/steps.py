"""The steps of a pipeline document, flattened, and picking the command step a dry run uses.

A pipeline is a list of steps or a map with ``steps`` (plus pipeline-level ``env`` and ``agents``), as
``engine lint`` reads it. Group steps contribute their ``steps`` in place, so steps are numbered in
document order with groups opened (``--step-index``, 0-based); a step is also found by its ``key``
(or the older ``id``/``identifier``). Only command steps become jobs an agent runs; choosing a wait,
block, input or trigger step is an error that says what kind of step it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.model.jsonvalue import JSON, JSONObject, Path, render_path

_KEY_FIELDS = ("key", "identifier", "id")
_STRING_STEPS = {"wait": "wait", "waiter": "wait", "block": "block", "input": "input"}
_TYPED_KEYS = ("wait", "waiter", "block", "input", "trigger")


class StepError(ValueError):
    """No usable command step; the message says why and lists the command steps there are."""


@dataclass(frozen=True, slots=True)
class PipelineStep:
    """One step of the flattened pipeline."""

    index: int
    path: Path
    kind: str
    value: JSON

    @property
    def key(self) -> str | None:
        if isinstance(self.value, dict):
            for name in _KEY_FIELDS:
                key = self.value.get(name)
                if isinstance(key, str | int) and not isinstance(key, bool):
                    return str(key)
        return None

    @property
    def label(self) -> str | None:
        if isinstance(self.value, dict):
            for name in ("label", "name"):
                label = self.value.get(name)
                if isinstance(label, str):
                    return label
        return None

    def describe(self) -> str:
        parts = [f"{self.index}"]
        if self.key is not None:
            parts.append(f"key {self.key!r}")
        if self.label is not None:
            parts.append(f"label {self.label!r}")
        parts.append(f"at {render_path(self.path)}")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Pipeline:
    """A pipeline document's steps and its pipeline-level ``env``, ``agents`` and ``image``."""

    steps: tuple[PipelineStep, ...]
    env: JSON = None
    agents: JSON = None
    image: JSON = None


def read_pipeline_document(document: JSON) -> Pipeline:
    """The flattened steps of a parsed pipeline; :class:`StepError` when it has no ``steps`` list."""
    if isinstance(document, list):
        return Pipeline(tuple(_flatten(document, ())))
    if isinstance(document, dict):
        steps = document.get("steps")
        if not isinstance(steps, list):
            raise StepError("the pipeline has no 'steps' list")
        flattened = tuple(_flatten(steps, ("steps",)))
        return Pipeline(flattened, document.get("env"), document.get("agents"), document.get("image"))
    raise StepError("a pipeline is a list of steps or a map with 'steps'")


def _flatten(steps: list[JSON], path: Path, counter: list[int] | None = None) -> list[PipelineStep]:
    counter = counter if counter is not None else [0]
    out: list[PipelineStep] = []
    for position, step in enumerate(steps):
        step_path = (*path, position)
        kind = step_kind(step)
        if kind == "group" and isinstance(step, dict) and isinstance(step.get("steps"), list):
            out.extend(_flatten(step["steps"], (*step_path, "steps"), counter))
            continue
        out.append(PipelineStep(counter[0], step_path, kind, step))
        counter[0] += 1
    return out


def step_kind(step: JSON) -> str:
    """``command``, ``wait``, ``block``, ``input``, ``trigger``, ``group`` or ``unknown``."""
    if isinstance(step, str):
        return _STRING_STEPS.get(step, "unknown")
    if not isinstance(step, dict):
        return "unknown"
    if "group" in step and "steps" in step:
        return "group"
    for key in _TYPED_KEYS:
        if key in step:
            return _STRING_STEPS.get(key, key)
    declared = step.get("type")
    if declared in ("script", "command", "commands"):
        return "command"
    if isinstance(declared, str):
        return _STRING_STEPS.get(declared, declared)
    if any(key in step for key in ("command", "commands", "plugins")):
        return "command"
    return "unknown"


def choose_step(pipeline: Pipeline, key: str | None = None, index: int | None = None) -> PipelineStep:
    """The command step selected by ``key`` or ``index``, or the only command step there is."""
    commands = [step for step in pipeline.steps if step.kind == "command"]
    listing = "; ".join(step.describe() for step in commands) or "none"
    if key is not None and index is not None:
        raise StepError("choose a step by key or by index, not both")
    if key is not None:
        found = [step for step in pipeline.steps if step.key == key]
        if not found:
            raise StepError(f"no step has key {key!r} (command steps: {listing})")
        chosen = found[0]
    elif index is not None:
        if not 0 <= index < len(pipeline.steps):
            raise StepError(
                f"step index {index} is out of range: the pipeline has {len(pipeline.steps)} steps, "
                f"numbered from 0 with group steps opened (command steps: {listing})"
            )
        chosen = pipeline.steps[index]
    else:
        if len(commands) != 1:
            raise StepError(
                f"the pipeline has {len(commands)} command steps: choose one with --step KEY or "
                f"--step-index N (command steps: {listing})"
            )
        chosen = commands[0]
    if chosen.kind != "command":
        article = "an" if chosen.kind[:1] in "aeiou" else "a"
        raise StepError(
            f"step {chosen.describe()} is {article} {chosen.kind} step, not a command step: only "
            f"command steps run on an agent (command steps: {listing})"
        )
    if isinstance(chosen.value, dict) and chosen.value.get("matrix") is not None:
        raise StepError(f"step {chosen.describe()} has a matrix, which dry runs do not expand yet")
    return chosen


def step_map(step: PipelineStep) -> JSONObject:
    """The step's fields (a command step is always a map once chosen)."""
    return step.value if isinstance(step.value, dict) else {}
