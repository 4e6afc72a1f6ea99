"""Turning validated policy documents into compiled, ordered policy sets.

Every expression is compiled here, when policies load, so a typo is an error with a file position
before any job is evaluated, never a surprise on the hundredth job. Ordering and name replacement are
decided here too, once, so evaluation is a straight walk over a tuple.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from engine.core.expressions import (
    CompiledExpression,
    ExpressionError,
    HelperRegistry,
    compile_expression,
    referenced_variables,
)
from engine.core.kube_validation import patch_field_problems, pointer_problems
from engine.core.templates import Template, TemplateCompileError, compile_template
from engine.model.decision import ENGINE_POLICY
from engine.model.jsonvalue import Path
from engine.model.policy import (
    PHASE_ORDER,
    AppendRule,
    DefaultsRule,
    DenyRule,
    JsonPatchRule,
    PatchRule,
    Phase,
    PolicyDocument,
    RuleBase,
    WarnRule,
    rule_kind,
)

Locator = Callable[[Path], tuple[int, int]]


class PolicyError(ValueError):
    """Policies that cannot be used. ``problems`` holds one ``FILE:LINE:COL: message`` line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a policy document came from, to turn a path inside it into ``FILE:LINE:COL``."""

    file: str
    locate: Locator
    digest: str
    """The document's content digest (``engine.core.finish.policy_digest`` of its parsed YAML)."""
    locate_key: Locator | None = None
    """Where the *key* of a map entry starts (for "unknown field" problems); ``locate`` if None."""

    def where_key(self, path: Path) -> str:
        """``FILE:LINE:COL`` of the key of the map entry at ``path``."""
        line, column = (self.locate_key or self.locate)(path)
        return f"{self.file}:{line}:{column}"

    def where(self, path: Path, line_offset: int = 0, column_offset: int = 0) -> str:
        line, column = self.locate(path)
        if line_offset:
            line += line_offset
            column = column_offset + 1
        else:
            column += column_offset
        return f"{self.file}:{line}:{column}"


@dataclass(frozen=True, slots=True)
class CompiledJsonPatchOp:
    op: str
    path: str
    value: Template | None
    from_: str | None


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """One rule, ready to apply. ``body`` depends on ``kind`` (a Template, ops, or a message)."""

    name: str
    kind: str
    when: CompiledExpression | None
    target: str | None
    warning: Template | None
    body: Template | None = None
    json_patch: tuple[CompiledJsonPatchOp, ...] = ()
    condition: CompiledExpression | None = None
    append_path: str = ""
    append_role: str | None = None
    where: str = ""


@dataclass(frozen=True, slots=True)
class CompiledVariable:
    name: str
    value: Template
    where: str


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    name: str
    description: str
    phase: Phase
    match: CompiledExpression | None
    variables: tuple[CompiledVariable, ...]
    rules: tuple[CompiledRule, ...]
    where: str
    digest: str
    """The short content hash the changed-by annotation names it by (``engine.core.finish``)."""


class _Problems:
    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.lines: list[str] = []

    def expression(
        self, source: str | None, path: Path, registry: HelperRegistry
    ) -> CompiledExpression | None:
        if source is None:
            return None
        try:
            return compile_expression(source, registry)
        except ExpressionError as exc:
            self.lines.append(f"{self.origin.where(path, exc.line - 1, exc.column - 1)}: {exc.message}")
            return None

    def template(self, value: object, path: Path, registry: HelperRegistry) -> Template | None:
        try:
            return compile_template(value, lambda src: compile_expression(src, registry), path)
        except TemplateCompileError as exc:
            self.lines.append(f"{self.origin.where(exc.path)}: {exc.error.message}")
            return None


def compile_policy(document: PolicyDocument, origin: Origin, registry: HelperRegistry) -> CompiledPolicy:
    """Compile one document; raise :class:`PolicyError` listing every problem in it."""
    problems = _Problems(origin)
    spec = document.spec
    if document.metadata.name == ENGINE_POLICY:
        problems.lines.append(
            f"{origin.where(('metadata', 'name'))}: the policy name '{ENGINE_POLICY}' is reserved for the "
            "engine's own steps (stack/finish, stack/kubernetes-api); choose another name"
        )
    match = problems.expression(spec.match, ("spec", "match"), registry)
    variables: list[CompiledVariable] = []
    for index, variable in enumerate(spec.variables):
        path: Path = ("spec", "variables", index, "value")
        template = problems.template(variable.value, path, registry)
        if template is not None:
            variables.append(CompiledVariable(variable.name, template, origin.where(path)))
    rules: list[CompiledRule] = []
    seen: set[str] = set()
    for index, rule in enumerate(spec.rules):
        name = rule.name or f"rule-{index + 1}"
        if name in seen:
            problems.lines.append(
                f"{origin.where(('spec', 'rules', index, 'name'))}: duplicate rule name '{name}'"
            )
        seen.add(name)
        compiled = _compile_rule(rule, name, ("spec", "rules", index), problems, registry)
        if compiled is not None:
            rules.append(compiled)
    if problems.lines:
        raise PolicyError(problems.lines)
    return CompiledPolicy(
        name=document.metadata.name,
        description=document.metadata.description or "",
        phase=spec.phase,
        match=match,
        variables=tuple(variables),
        rules=tuple(rules),
        where=origin.where(()),
        digest=origin.digest,
    )


def _compile_rule(
    rule: RuleBase, name: str, path: Path, problems: _Problems, registry: HelperRegistry
) -> CompiledRule | None:
    kind = rule_kind(rule)
    before = len(problems.lines)
    when = problems.expression(rule.when, (*path, "when"), registry)
    warning = None if rule.warning is None else problems.template(rule.warning, (*path, "warning"), registry)
    where = problems.origin.where(path)
    base = CompiledRule(name=name, kind=kind, when=when, target=rule.target, warning=warning, where=where)
    compiled: CompiledRule | None = None
    if isinstance(rule, PatchRule | DefaultsRule):
        value = rule.patch if isinstance(rule, PatchRule) else rule.defaults
        body = problems.template(value, (*path, kind), registry)
        if not isinstance(value, dict) and not (isinstance(value, str) and "${{" in value):
            problems.lines.append(f"{problems.origin.where((*path, kind))}: {kind} must be a map")
        compiled = replace(base, body=body)
    elif isinstance(rule, JsonPatchRule):
        ops: list[CompiledJsonPatchOp] = []
        for op_index, op in enumerate(rule.json_patch):
            op_path: Path = (*path, "jsonPatch", op_index)
            value_template = None
            if op.op in ("add", "replace", "test"):
                value_template = problems.template(op.value, (*op_path, "value"), registry)
            if op.op in ("move", "copy") and op.from_ is None:
                problems.lines.append(f"{problems.origin.where(op_path)}: '{op.op}' needs 'from'")
            if not (op.path == "" or op.path.startswith("/")):
                problems.lines.append(
                    f"{problems.origin.where((*op_path, 'path'))}: path must be a JSON pointer"
                )
            ops.append(CompiledJsonPatchOp(op.op, op.path, value_template, op.from_))
        compiled = replace(base, json_patch=tuple(ops))
    elif isinstance(rule, DenyRule | WarnRule):
        spec = rule.deny if isinstance(rule, DenyRule) else rule.warn
        condition = problems.expression(spec.when, (*path, kind, "when"), registry)
        message = problems.template(spec.message, (*path, kind, "message"), registry)
        compiled = replace(base, body=message, condition=condition)
    elif isinstance(rule, AppendRule):
        if rule.append.role is not None and rule.target is not None:
            problems.lines.append(f"{where}: an append with a role adds containers; it cannot have a target")
        items = problems.template(rule.append.items, (*path, "append", "items"), registry)
        compiled = replace(base, body=items, append_path=rule.append.path, append_role=rule.append.role)
    if compiled is not None and len(problems.lines) == before:
        _check_fields(rule, kind, path, problems)
    if len(problems.lines) > before:
        return None
    return compiled


def _check_fields(rule: RuleBase, kind: str, path: Path, problems: _Problems) -> None:
    """Unknown Kubernetes fields in what a rule spells out, where the rule says what it writes to: a
    patch or defaults of the Job (or of the targeted container), a JSON patch's paths and values, an
    append's path and items. Computed values are checked on the built Job instead."""
    base = "Job" if rule.target is None else "Container"
    found: list[tuple[Path, str]] = []
    if isinstance(rule, PatchRule | DefaultsRule):
        value = rule.patch if isinstance(rule, PatchRule) else rule.defaults
        found = [((kind, *sub), message) for sub, message in patch_field_problems(value, base)]
    elif isinstance(rule, JsonPatchRule):
        for index, op in enumerate(rule.json_patch):
            reached, problem = pointer_problems(op.path, base)
            if problem is not None:
                found.append((("jsonPatch", index, "path"), f"{op.path}: {problem}"))
            elif reached is not None and op.op in ("add", "replace"):
                found += [
                    (("jsonPatch", index, "value", *sub), message)
                    for sub, message in patch_field_problems(op.value, reached)
                ]
    elif isinstance(rule, AppendRule):
        reached, problem = pointer_problems(rule.append.path, base)
        if problem is not None:
            found.append((("append", "path"), f"{rule.append.path}: {problem}"))
        elif reached is not None and reached.startswith("[") and isinstance(rule.append.items, list):
            found += [
                (("append", "items", *sub), message)
                for sub, message in patch_field_problems(rule.append.items, reached)
            ]
    for sub, message in found:
        problems.lines.append(f"{problems.origin.where_key((*path, *sub))}: {message}")


def rule_expressions(rule: CompiledRule) -> list[CompiledExpression]:
    """Every expression a rule evaluates."""
    found: list[CompiledExpression] = [e for e in (rule.when, rule.condition) if e is not None]
    for template in (rule.body, rule.warning):
        if template is not None:
            found.extend(template.expressions())
    for op in rule.json_patch:
        if op.value is not None:
            found.extend(op.value.expressions())
    return found


@dataclass(frozen=True, slots=True)
class Replacement:
    """A policy that replaced an earlier one with the same name (shown by ``engine test --explain``)."""

    name: str
    replaced: str
    by: str


@dataclass(frozen=True, slots=True)
class PolicySet:
    """Policies in evaluation order: phase, then load order, then document order.

    A policy whose name was loaded before replaces the earlier one *in the earlier one's place*, so an
    admin overriding a default build policy keeps the build sequence intact.
    """

    policies: tuple[CompiledPolicy, ...]
    replacements: tuple[Replacement, ...] = ()
    digests: Mapping[str, str] = field(init=False)
    """Policy name -> content digest, for the changed-by annotation."""
    enforce_warners: tuple[CompiledPolicy, ...] = field(init=False)
    """The enforce policies that could add a warning: with a ``warn`` rule, a rule with ``warning``, or
    any rule that changes the Job (it may be skipped, with a warning, for changing what an earlier one
    or the finishing step set). When one of them matches a job, the job-log warnings hook is put in
    place before the enforce phase even for a job without warnings yet, since nothing may change the
    pod after that phase."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "digests", {policy.name: policy.digest for policy in self.policies})
        warners = tuple(
            policy
            for policy in self.policies
            if policy.phase is Phase.ENFORCE
            and any(rule.kind != "deny" or rule.warning is not None for rule in policy.rules)
        )
        object.__setattr__(self, "enforce_warners", warners)

    @classmethod
    def build(cls, loaded: Sequence[CompiledPolicy]) -> PolicySet:
        slots: dict[str, int] = {}
        chosen: list[CompiledPolicy] = []
        replacements: list[Replacement] = []
        for policy in loaded:
            if policy.name in slots:
                slot = slots[policy.name]
                replacements.append(Replacement(policy.name, chosen[slot].where, policy.where))
                chosen[slot] = policy
            else:
                slots[policy.name] = len(chosen)
                chosen.append(policy)
        rank = {phase: i for i, phase in enumerate(PHASE_ORDER)}
        ordered = tuple(
            p for _, p in sorted(enumerate(chosen), key=lambda item: (rank[item[1].phase], item[0]))
        )
        _check_variables(ordered)
        return cls(ordered, tuple(replacements))

    def __len__(self) -> int:
        return len(self.policies)


def _check_variables(policies: Sequence[CompiledPolicy]) -> None:
    """Every ``vars.<name>`` must be defined by an earlier policy or earlier in the same one."""
    defined: set[str] = set()
    problems: list[str] = []

    def check(expressions: Sequence[CompiledExpression], where: str, owner: str) -> None:
        for expression in expressions:
            for name in referenced_variables(expression):
                if name not in defined:
                    problems.append(
                        f"{where}: vars.{name} is not defined by any policy before '{owner}' "
                        "(variables are visible to later expressions only)"
                    )

    for policy in policies:
        if policy.match is not None:
            check([policy.match], policy.where, policy.name)
        for variable in policy.variables:
            check(variable.value.expressions(), variable.where, policy.name)
            defined.add(variable.name)
        for rule in policy.rules:
            check(rule_expressions(rule), rule.where, policy.name)
    if problems:
        raise PolicyError(sorted(set(problems), key=problems.index))
