"""``evaluate(policies, job, config) -> Decision``: the only door between the controller and the engine.

The CLI's ``engine test`` goes through this same function, so a dry run and production cannot
disagree. Evaluation is a walk over the ordered policy set:

1. a policy runs when its ``match`` is true; its ``variables`` are computed in order;
2. each rule runs when its ``when`` is true, on the Job or, with a ``target``, on each targeted
   container in turn (``container`` and ``index`` in scope); every expression in a rule is evaluated
   against the document *before* the rule changes it;
3. denials are collected until the end of the phase in which the first one happened; later phases do
   not run for a denied job;
4. an expression or patch that fails stops evaluation with an ``error`` denial naming the policy and
   rule: a broken rule must not produce a half-built pod;
5. in the ``enforce`` phase, a rule owns exactly the leaf values it set (:mod:`engine.core.ownership`):
   a later rule that would change one of them is skipped with a warning, so an enforcement cannot be
   undone by a policy that happens to run after it, while a rule setting a different key inside a map
   another rule added is not blocked;
6. a container keeps the role it was added with when a rule replaces or recreates it under the same
   name (:func:`engine.core.targets.keep_roles`), so every container stays reachable by its target;
7. the engine's finishing step (``engine.core.finish``, traced as ``stack/finish``) puts the namespace,
   the controller-id label and the job-log warnings hook in place *before* the enforce phase, so
   enforce rules see the pod exactly as it will be created; after it, an admitted Job gets only the
   record of its evaluation (the changed-by annotation, the hook's final text), its role markers are
   stripped, and it is checked against the Kubernetes API of ``config.kubernetesVersion``
   (``engine.core.kube_validation``): a Job the API would refuse or prune is denied with kind
   ``invalid``, naming the policy and rule that last wrote the offending field.

Nothing changes the pod after the enforce phase but those two annotations, and the result is the
Decision.

Warnings about the job itself come first: every field of the job's kubernetes plugin that upstream's
decoder would silently ignore (``stack/kubernetes-plugin``, with "did you mean").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NoReturn

from engine import __version__
from engine.core.compiler import CompiledPolicy, CompiledRule, PolicySet
from engine.core.documents import POD_SPEC_PATH, get_in, resolve_path, set_in
from engine.core.expressions import (
    CONTEXT_ROOTS,
    Activation,
    CompiledExpression,
    EvaluationError,
    var_root,
)
from engine.core.finish import FINISH_POLICY, FINISH_RULE, prepare_job, record_job
from engine.core.function_registry import REGISTRY, ROLE_KEY
from engine.core.kube_validation import validate_job
from engine.core.ownership import Lock, first_conflict, locks_for
from engine.core.patch.defaults import apply_defaults
from engine.core.patch.json_patch import JsonPatchError, apply_json_patch
from engine.core.patch.schema import CONTAINER, JOB, TypeSchema
from engine.core.patch.strategic import PatchError, strategic_merge
from engine.core.targets import keep_role, keep_roles, resolve_targets, strip_roles
from engine.core.templates import to_text
from engine.core.violations import violation_denials
from engine.model.decision import (
    Decision,
    Denial,
    PolicyWarning,
    TraceRecord,
    UnmatchedPolicy,
    VariableValue,
)
from engine.model.job import BuildkiteJob, job_facts
from engine.model.jsonvalue import JSON, Change, JSONObject, Path, render_path
from engine.model.kube_api import DEFAULT_KUBERNETES_VERSION
from engine.model.policy import Phase
from engine.model.profiles import DEFAULT_PROFILE, PROFILES

FINISH_OWNER = f"{FINISH_POLICY}/{FINISH_RULE}"
"""The owner of what the finishing step sets before the enforce phase, in the enforce locks."""
PLUGIN_CHECK_RULE = "kubernetes-plugin"
"""The rule name of the run-time plugin warnings (under the pseudo-policy ``stack``)."""


class _RuleFailedError(Exception):
    """A rule could not be applied; carries the one-line reason."""


@dataclass
class _Run:
    activation: Activation
    manifest: JSONObject = field(default_factory=dict)
    trace: list[TraceRecord] = field(default_factory=list)
    denials: list[Denial] = field(default_factory=list)
    warnings: list[PolicyWarning] = field(default_factory=list)
    locks: list[Lock] = field(default_factory=list)
    unmatched: list[UnmatchedPolicy] = field(default_factory=list)
    variables: list[VariableValue] = field(default_factory=list)

    def set_manifest(self, manifest: JSONObject) -> None:
        self.manifest = manifest
        self.activation.set("manifest", manifest)
        self.activation.set("pod", get_in(manifest, POD_SPEC_PATH, {}))


def evaluate(
    policies: PolicySet,
    job: BuildkiteJob,
    config: Mapping[str, JSON],
    *,
    pod_templates: Mapping[str, JSON] | None = None,
) -> Decision:
    """Evaluate ``job`` through ``policies``; ``config`` is the controller config's expression view.

    ``pod_templates`` is what the caller read from the cluster for the job: PodTemplate name -> its
    ``template`` (``metadata`` and ``spec``), for the templates the job names (a step's ``podTemplate``);
    a name the cluster does not have is absent. Policies read it as ``podTemplates``. The engine reads
    nothing itself: the controller gets the template from its namespace, ``engine test`` from
    ``--pod-template NAME=FILE``."""
    profile = PROFILES.get(str(config.get("profile", DEFAULT_PROFILE)))
    facts = job_facts(job, head=profile is not None and profile.head_plugin_fields)
    stack = {"version": __version__}
    roots = {**facts, "config": dict(config), "stack": stack, "manifest": {}, "pod": {}}
    roots["podTemplates"] = dict(pod_templates or {})
    activation = Activation(roots, REGISTRY)
    run = _Run(activation)
    run.warnings.extend(
        PolicyWarning(FINISH_POLICY, PLUGIN_CHECK_RULE, message)
        for message in facts["job"].get("kubernetesPluginWarnings", ())
    )
    failed = False
    for phase in (Phase.BUILD, Phase.CUSTOMIZE, Phase.ENFORCE):
        if phase is Phase.ENFORCE:
            _prepare(run, policies, config)
        for policy in policies.policies:
            if policy.phase is not phase:
                continue
            try:
                _run_policy(run, policy)
            except _RuleFailedError:
                failed = True
                break
        if failed or run.denials:
            break
    if not run.denials:
        _record_evaluation(run, policies)
    manifest = run.manifest
    pod_spec = get_in(manifest, POD_SPEC_PATH)
    if isinstance(pod_spec, dict):
        manifest = set_in(manifest, POD_SPEC_PATH, strip_roles(pod_spec))
    if not run.denials:
        violations = validate_job(manifest, str(config.get("kubernetesVersion", DEFAULT_KUBERNETES_VERSION)))
        run.denials.extend(violation_denials(violations, run.trace))
    return Decision(
        admitted=not run.denials,
        manifest=manifest,
        denials=tuple(run.denials),
        warnings=tuple(run.warnings),
        trace=tuple(run.trace),
        unmatched=tuple(run.unmatched),
        variables=tuple(run.variables),
    )


def _prepare(run: _Run, policies: PolicySet, config: Mapping[str, JSON]) -> None:
    """The finishing step's changes to the pod, before the enforce phase sees it."""
    more = any(_may_match(run, policy) for policy in policies.enforce_warners)
    prepared, changes, owned_paths = prepare_job(
        run.manifest, config, run.warnings, more_warnings_possible=more
    )
    before = run.manifest
    absolute = [(change, change.path) for change in changes]
    if changes:
        run.set_manifest(prepared)
        _record(run, FINISH_POLICY, FINISH_RULE, absolute)
    # owned like an enforce rule's values: an enforce rule may not move the Job out of the
    # controller's namespace, relabel it away from the controller, or undo the hook
    changed = {path for _, path in absolute}
    owned = [
        (Change("add", path, None, get_in(prepared, path)), path)
        for path in owned_paths
        if path not in changed  # a changed path is locked through its change already
    ]
    run.locks.extend(locks_for(before, prepared, [*absolute, *owned], FINISH_OWNER))


_ROOTS_FIXED_BEFORE_ENFORCE = frozenset(CONTEXT_ROOTS) - {"pod", "manifest", "container", "index", "vars"}
"""Roots the finishing step does not change (all but the Job and what is bound while a policy runs):
a ``match`` reading only these is decided before it."""


def _may_match(run: _Run, policy: CompiledPolicy) -> bool:
    """Whether ``policy`` could run for this job: its ``match`` is true now, or cannot be decided
    before the enforce phase (it reads the pod or variables, or fails; the phase reports that)."""
    match = policy.match
    if match is None or not _ROOTS_FIXED_BEFORE_ENFORCE.issuperset(match.roots):
        return True
    try:
        return run.activation.evaluate(match) is not False
    except EvaluationError:
        return True


def _owner_text(owner: str) -> str:
    return "the finishing step (stack/finish)" if owner == FINISH_OWNER else f"enforce rule {owner}"


def _record_evaluation(run: _Run, policies: PolicySet) -> None:
    """After the enforce phase, only the record of the evaluation (annotations) is written."""
    recorded, changes = record_job(run.manifest, run.trace, policies.digests, run.warnings, __version__)
    run.set_manifest(recorded)
    _record(run, FINISH_POLICY, FINISH_RULE, [(change, change.path) for change in changes])


def _record(run: _Run, policy: str, rule: str, changes: list[tuple[Change, Path]]) -> None:
    for change, path in changes:
        run.trace.append(
            TraceRecord(policy, rule, change.op, render_path(path), change.old, change.new, path)
        )


def _run_policy(run: _Run, policy: CompiledPolicy) -> None:
    if policy.match is not None and not _condition(run, policy, None, policy.match, "match"):
        run.unmatched.append(UnmatchedPolicy(policy.name, policy.match.source, policy.where))
        return
    for variable in policy.variables:
        try:
            value = variable.value.render(run.activation)
        except EvaluationError as exc:
            _fail(run, policy, f"variables.{variable.name}", str(exc), variable.where)
        run.activation.set(var_root(variable.name), value)
        run.variables.append(VariableValue(policy.name, variable.name, value))
    for rule in policy.rules:
        if rule.target is None:
            _run_rule_on(run, policy, rule, None)
        else:
            pod_spec = get_in(run.manifest, POD_SPEC_PATH, {})
            targets = resolve_targets(pod_spec, rule.target)
            run.activation.set("index", None)
            for position, (list_key, list_index) in enumerate(targets):
                _run_rule_on(run, policy, rule, (list_key, list_index, position))


def _run_rule_on(
    run: _Run, policy: CompiledPolicy, rule: CompiledRule, target: tuple[str, int, int] | None
) -> None:
    prefix: Path = ()
    if target is not None:
        list_key, list_index, position = target
        prefix = (*POD_SPEC_PATH, list_key, list_index)
        document = get_in(run.manifest, prefix)
        run.activation.set("container", document)
        run.activation.set("index", position)
    else:
        document = run.manifest
    if rule.when is not None and not _condition(run, policy, rule, rule.when, "when"):
        return
    if rule.kind in ("deny", "warn"):
        _deny_or_warn(run, policy, rule)
        return
    schema = JOB if target is None else CONTAINER
    try:
        updated, changes = _apply(run.activation, rule, document, schema)
    except (EvaluationError, PatchError, JsonPatchError, ValueError) as exc:
        _fail(run, policy, rule.name, str(exc), rule.where)
    if not changes:
        return
    updated = _with_roles_kept(document, updated) if target is None else keep_role(document, updated)
    absolute = [(change, (*prefix, *change.path)) for change in changes]
    owner = f"{policy.name}/{rule.name}"
    before = run.manifest
    candidate = set_in(before, prefix, updated) if prefix else updated
    conflict = first_conflict(run.locks, before, candidate, absolute, owner) if run.locks else None
    if conflict is not None:
        run.warnings.append(
            PolicyWarning(
                policy.name,
                rule.name,
                f"skipped: it would change {conflict[0]}, which {_owner_text(conflict[1])} already set",
            )
        )
        return
    run.set_manifest(candidate)
    _record(run, policy.name, rule.name, absolute)
    if policy.phase is Phase.ENFORCE:
        run.locks.extend(locks_for(before, candidate, absolute, owner))
    if rule.warning is not None:
        try:
            message = rule.warning.render(run.activation)
        except EvaluationError as exc:
            _fail(run, policy, rule.name, str(exc), rule.where)
        run.warnings.append(PolicyWarning(policy.name, rule.name, _text(message)))


def _apply(
    activation: Activation, rule: CompiledRule, document: JSON, schema: TypeSchema
) -> tuple[JSON, list[Change]]:
    if rule.kind == "patch":
        assert rule.body is not None
        return strategic_merge(document, _require_map(rule.body.render(activation), "patch"), schema)
    if rule.kind == "defaults":
        assert rule.body is not None
        return apply_defaults(document, _require_map(rule.body.render(activation), "defaults"))
    if rule.kind == "jsonPatch":
        operations: list[dict[str, JSON]] = []
        for op in rule.json_patch:
            operation: dict[str, JSON] = {"op": op.op, "path": op.path}
            if op.value is not None:
                value = op.value.render(activation)
                if value is None and not op.value.static:
                    continue  # a computed null means "nothing to set": the operation is skipped
                operation["value"] = value
            if op.from_ is not None:
                operation["from"] = op.from_
            operations.append(operation)
        return apply_json_patch(document, operations)
    assert rule.kind == "append"
    assert rule.body is not None
    return _append(document, rule.append_path, rule.body.render(activation), rule.append_role)


def _append(document: JSON, pointer: str, items: JSON, role: str | None) -> tuple[JSON, list[Change]]:
    if items is None:
        return document, []
    if not isinstance(items, list):
        raise ValueError(f"append items must be a list, got {type(items).__name__}")
    path = resolve_path(document, pointer)
    existing = get_in(document, path)
    if existing is None:
        existing = []
    if not isinstance(existing, list):
        raise ValueError(f"append path {pointer} is not a list")
    added: list[JSON] = []
    for item in items:
        if role is None:
            added.append(item)
            continue
        if not isinstance(item, dict):
            raise ValueError(f"append with role '{role}' needs container maps, got {type(item).__name__}")
        added.append({**item, ROLE_KEY: role})
    if not added:
        return document, []
    changes = [Change("add", (*path, len(existing) + i), None, item) for i, item in enumerate(added)]
    return set_in(document, path, [*existing, *added]), changes


def _deny_or_warn(run: _Run, policy: CompiledPolicy, rule: CompiledRule) -> None:
    if rule.condition is not None and not _condition(run, policy, rule, rule.condition, f"{rule.kind}.when"):
        return
    assert rule.body is not None
    try:
        message = _text(rule.body.render(run.activation))
    except EvaluationError as exc:
        _fail(run, policy, rule.name, str(exc), rule.where)
    if rule.kind == "deny":
        run.denials.append(Denial(policy.name, rule.name, message))
    else:
        run.warnings.append(PolicyWarning(policy.name, rule.name, message))


def _condition(
    run: _Run, policy: CompiledPolicy, rule: CompiledRule | None, expression: CompiledExpression, what: str
) -> bool:
    rule_name = rule.name if rule is not None else what
    where = rule.where if rule is not None else policy.where
    try:
        value = run.activation.evaluate(expression)
    except EvaluationError as exc:
        _fail(run, policy, rule_name, f"{what}: {exc}", where)
    if not isinstance(value, bool):
        _fail(run, policy, rule_name, f"{what} must be true or false, got {_text(value)!r}", where)
    return value


def _fail(run: _Run, policy: CompiledPolicy, rule: str, reason: str, where: str) -> NoReturn:
    """Stop with an ``error`` denial; ``where`` is the failing rule's (or variable's) own position."""
    message = f"policy {policy.name} ({where.rsplit(':', 1)[0]}) rule {rule} failed: {reason}"
    run.denials.append(Denial(policy.name, rule, message, kind="error"))
    raise _RuleFailedError(message)


def _with_roles_kept(before: JSON, after: JSON) -> JSON:
    """A Job-level rule's result with container roles kept by name (see the module docstring)."""
    old_pod = get_in(before, POD_SPEC_PATH)
    new_pod = get_in(after, POD_SPEC_PATH)
    if old_pod is new_pod:
        return after
    kept = keep_roles(old_pod, new_pod)
    return after if kept is new_pod else set_in(after, POD_SPEC_PATH, kept)


def _require_map(value: JSON, what: str) -> JSONObject:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a map, got {type(value).__name__}")
    return value


def _text(value: JSON) -> str:
    return to_text(value)
