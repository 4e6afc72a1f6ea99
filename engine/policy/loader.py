"""Loading policy files: read, parse with positions, validate against the policy schema, compile.

Every problem in every file is collected before giving up, so an admin fixes a bad ConfigMap in one
round, and each problem is one ``FILE:LINE:COL: message`` line. Directories are read in file-name
order, non-recursively, skipping hidden entries (a mounted ConfigMap keeps its real files in hidden
``..data`` directories and exposes them through symlinks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from pydantic import ValidationError

from engine.core.compiler import CompiledPolicy, Origin, PolicyError, PolicySet, compile_policy
from engine.core.finish import policy_digest
from engine.core.function_registry import REGISTRY
from engine.model.plugin import describe_value
from engine.model.policy import RULE_KINDS, PolicyDocument
from engine.model.profiles import DEFAULT_PROFILE
from engine.policy.yaml_source import SourceDocument, YamlSourceError, load_documents
from engine.resources import default_policies_dir, profile_policy_dirs

POLICY_SUFFIXES = (".yaml", ".yml")
NO_DOCUMENTS = "the file holds no policy document (only comments or nothing); remove it or write a policy"


def policy_files(paths: Iterable[Path]) -> tuple[list[Path], list[str]]:
    """Expand directories; return the files in evaluation order and problems (missing paths)."""
    files: list[Path] = []
    problems: list[str] = []
    for path in paths:
        if path.is_dir():
            entries = sorted(
                p
                for p in path.iterdir()
                if not p.name.startswith(".") and p.suffix in POLICY_SUFFIXES and p.is_file()
            )
            files.extend(entries)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(f"{path}: no such file or directory")
    return files, problems


def policy_sources(
    paths: Sequence[Path], *, include_defaults: bool = True, profile: str = DEFAULT_PROFILE
) -> list[Path]:
    """What to load, in order: the default set and the profile's policies (unless defaults are
    excluded), then ``paths``."""
    shipped = [default_policies_dir(), *profile_policy_dirs(profile)] if include_defaults else []
    return shipped + list(paths)


def load_policies(
    paths: Sequence[Path], *, include_defaults: bool = True, profile: str = DEFAULT_PROFILE
) -> PolicySet:
    """Load the default policy set and the ``profile``'s policies (unless defaults are excluded) and
    then ``paths``; raise :class:`PolicyError`."""
    sources = policy_sources(paths, include_defaults=include_defaults, profile=profile)
    files, problems = policy_files(sources)
    compiled: list[CompiledPolicy] = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{file}: cannot read: {exc}")
            continue
        try:
            compiled.extend(compile_source(text, str(file)))
        except PolicyError as exc:
            problems.extend(exc.problems)
    if problems:
        raise PolicyError(problems)
    return PolicySet.build(compiled)


def load_policy_texts(
    texts: Sequence[tuple[str, str]], *, include_defaults: bool = True, profile: str = DEFAULT_PROFILE
) -> PolicySet:
    """Like :func:`load_policies`, for policy files given as ``(label, text)`` (a ConfigMap's keys):
    the default set and the profile's policies first (unless excluded), then ``texts`` in order."""
    compiled: list[CompiledPolicy] = []
    problems: list[str] = []
    if include_defaults:
        compiled.extend(load_policies([], profile=profile).policies)
    for label, text in texts:
        try:
            compiled.extend(compile_source(text, label))
        except PolicyError as exc:
            problems.extend(exc.problems)
    if problems:
        raise PolicyError(problems)
    return PolicySet.build(compiled)


def compile_source(text: str, file: str) -> list[CompiledPolicy]:
    """Compile every policy document in one file's text."""
    try:
        documents = load_documents(text, file)
    except YamlSourceError as exc:
        raise PolicyError([str(exc)]) from None
    if not documents:
        raise PolicyError([f"{file}: {NO_DOCUMENTS}"])
    problems: list[str] = []
    compiled: list[CompiledPolicy] = []
    for document in documents:
        if not isinstance(document.value, dict):
            problems.append(_not_a_map(document))
            continue
        try:
            parsed = PolicyDocument.model_validate(document.value)
        except ValidationError as exc:
            problems.extend(validation_problems(exc, document))
            continue
        try:
            origin = Origin(file, document.locate, policy_digest(document.value), document.locate_key)
            compiled.append(compile_policy(parsed, origin, REGISTRY))
        except PolicyError as exc:
            problems.extend(exc.problems)
    if problems:
        raise PolicyError(problems)
    return compiled


def _not_a_map(document: SourceDocument) -> str:
    if isinstance(document.value, list):
        got = "a list; put each policy in its own document, separated by lines of ---"
    else:
        got = describe_value(document.value)
    where = f"{document.file}:{document.line}:1"
    return f"{where}: a policy document must be a map (apiVersion, kind, metadata, spec), got {got}"


def validation_problems(
    error: ValidationError,
    document: SourceDocument,
    clean_loc: Callable[[tuple[int | str, ...]], tuple[int | str, ...]] | None = None,
) -> list[str]:
    """One ``FILE:LINE:COL: path: message`` line per problem pydantic found in ``document`` (policies
    and suites alike); ``clean_loc`` drops the union tags pydantic puts into a location (by default a
    rule's kind, as policies have them)."""
    clean = clean_loc or _without_union_tags
    out: list[str] = []
    for item in error.errors(include_url=False):
        loc = clean(tuple(item["loc"]))
        if item["type"] == "extra_forbidden":
            line, column = document.locate_key(loc)
            message = f"unknown field '{loc[-1]}'"
        elif item["type"] == "missing":
            line, column = document.locate(loc[:-1])
            message = f"missing required field '{loc[-1]}'"
        else:
            line, column = document.locate(loc)
            reason = item.get("ctx", {}).get("error") if item["type"] == "value_error" else None
            message = str(reason) if reason is not None else item["msg"]
        shown = render_loc(loc)
        out.append(f"{document.file}:{line}:{column}: {shown + ': ' if shown else ''}{message}")
    return out


def _without_union_tags(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """Drop the discriminator tag pydantic inserts after a rule's index."""
    out: list[int | str] = []
    for i, part in enumerate(loc):
        if (
            part in RULE_KINDS
            and i >= 2
            and isinstance(loc[i - 1], int)
            and loc[i - 2] == "rules"
            and i + 1 < len(loc)
        ):
            continue
        out.append(part)
    return tuple(out)


def render_loc(loc: tuple[int | str, ...]) -> str:
    """``spec.rules[0].patch``: a pydantic location as the problem lines show it."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
