"""``engine run``: check everything the controller needs, then run it until SIGTERM/SIGINT.

Start-up validation happens before anything connects anywhere, and each problem is one line on
stderr with exit status 2 (the CLI's "unusable input"):

* the config file (``--config``/``-f``, else env ``CONFIG``) must be readable YAML;
* the merged config (flag > env > file > default, :func:`engine.model.config.resolve_config`) must be
  valid, and the keys the controller cannot run without must be set (one line per missing key);
* every policy (the defaults, then env ``POLICY_DIRS`` (``:``-separated), then each ``--policies``)
  must load: ``FILE:LINE:COL: message`` lines.

No token is ever printed: config problems name keys, never secret values, and the logged config is
``ControllerConfig.redacted()``.

Then the controller runs (:class:`engine.controller.runtime.ControllerRuntime`). SIGTERM or SIGINT
stops it gracefully (exit 0); a second signal exits at once. A controller that cannot work (invalid
organization, no Kubernetes configuration) prints one line and exits 1.

Every config key that has a flag (:data:`engine.model.config.FLAG_KEYS`) is a ``--<key>`` option of
this command, generated from the config model so the two can never drift apart.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.controller.logging_setup import configure_logging
from engine.core.compiler import PolicyError, PolicySet
from engine.inputs import InputError, read_config_yaml
from engine.model.config import FLAG_KEYS, ConfigError, ControllerConfig, env_var_name, resolve_config
from engine.policy.loader import load_policies
from engine.resources import profile_policy_dirs

EXIT_OK = 0
EXIT_FATAL = 1
EXIT_INVALID = 2
CONFIG_ENV = "CONFIG"
POLICY_DIRS_ENV = "POLICY_DIRS"

_log = logging.getLogger(__name__)


def run_command(**options: Any) -> None:
    """Run the controller: poll Buildkite, create Kubernetes Jobs, fail jobs that cannot run."""
    flags = {key: options.pop(_parameter_name(key)) for key in FLAG_KEYS}
    config_path: Path | None = options.pop("config")
    policy_flags: list[Path] = options.pop("policies") or []
    kubeconfig: str | None = options.pop("kubeconfig")
    health_port: int = options.pop("health_port")
    if options:
        raise TypeError(f"unexpected options: {', '.join(sorted(options))}")

    if not 0 <= health_port <= 65535:
        raise _invalid([f"--health-port: expected a port number 0-65535 (0 = off), got {health_port}"])
    config = load_controller_config(config_path, flags, os.environ)
    policy_paths = profile_policy_dirs(config.profile) + policy_directories(policy_flags, os.environ)
    policies = load_policy_set(policy_paths)

    scrubber = configure_logging(
        "json" if config.log_format == "json" else "text",
        debug=config.debug or config.log_level == "debug",
        level=config.log_level,
    )
    scrubber.add(config.buildkite_token)
    scrubber.add(config.integration_test_buildkite_token)
    _log.info("config: %s", json.dumps(config.redacted(), sort_keys=True))
    for notice in config.notices():
        _log.warning("config: %s", notice)
    _log.info("policies: %d loaded from the defaults and %s", len(policies), [str(p) for p in policy_paths])

    from engine.controller.runtime import (  # noqa: PLC0415 - keeps `engine test` free of client imports
        ControllerFatalError,
        ControllerRuntime,
        RuntimeOptions,
    )

    runtime = ControllerRuntime(
        config,
        policies,
        RuntimeOptions(
            policy_paths=tuple(policy_paths),
            kubeconfig=kubeconfig,
            health_port=health_port or None,
        ),
        scrubber=scrubber,
    )
    try:
        asyncio.run(_run_until_signalled(runtime.run, runtime.stop))
    except ControllerFatalError as exc:
        typer.echo(f"engine run: {scrubber.scrub(str(exc))}", err=True)
        raise typer.Exit(EXIT_FATAL) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    raise typer.Exit(EXIT_OK)


async def _run_until_signalled(run: Callable[[], Awaitable[None]], stop: Callable[[], None]) -> None:
    """Run ``run()``; the first SIGTERM/SIGINT calls ``stop()``, a second one kills at once."""
    loop = asyncio.get_running_loop()

    def first_signal(number: signal.Signals) -> None:
        _log.info("received %s: shutting down (send it again to exit at once)", number.name)
        for each in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(each)
            loop.add_signal_handler(each, os._exit, 128 + each.value)
        stop()

    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, first_signal, number)
    await run()


# ---- start-up validation ---------------------------------------------------------------------------


def load_controller_config(
    path: Path | None, flags: dict[str, Any], env: Mapping[str, str]
) -> ControllerConfig:
    """The validated config, or :class:`typer.Exit` (2) after printing one line per problem."""
    config_file = path or (Path(env[CONFIG_ENV]) if env.get(CONFIG_ENV) else None)
    file_data = None
    source = str(config_file) if config_file else "defaults"
    if config_file is not None:
        try:
            text = config_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise _invalid([f"{config_file}: cannot read the config file: {reason}"]) from None
        try:
            file_data = read_config_yaml(text, source)
        except InputError as exc:
            raise _invalid(exc.problems) from None
    given = {key: value for key, value in flags.items() if value is not None}
    try:
        config = resolve_config(file_data, env, given, source)
    except ConfigError as exc:
        raise _invalid(exc.problems) from None
    missing = config.missing_required_for_controller()
    if missing:
        raise _invalid(missing)
    return config


def policy_directories(flags: list[Path], env: Mapping[str, str]) -> list[Path]:
    """``POLICY_DIRS`` entries, then ``--policies`` ones (a later policy of the same name wins). The
    config's profile directory goes before them (``run_command``), after the default set."""
    from_env = [Path(part) for part in env.get(POLICY_DIRS_ENV, "").split(":") if part]
    return [*from_env, *flags]


def load_policy_set(paths: list[Path]) -> PolicySet:
    try:
        return load_policies(paths)
    except PolicyError as exc:
        raise _invalid(exc.problems) from None


def _invalid(lines: list[str]) -> typer.Exit:
    for line in lines:
        typer.echo(line, err=True)
    return typer.Exit(EXIT_INVALID)


# ---- the generated signature -----------------------------------------------------------------------


def _parameter_name(key: str) -> str:
    return key.replace("-", "_")


def _flag_parameter(key: str) -> inspect.Parameter:
    field = ControllerConfig.model_fields[_parameter_name(key)]
    help_text = f"{field.description or ''} (env {env_var_name(key)})"
    option: Any
    if field.annotation is bool:
        option = Annotated[
            bool | None, typer.Option(f"--{key}/--no-{key}", help=help_text, show_default=False)
        ]
    else:
        option = Annotated[str | None, typer.Option(f"--{key}", help=help_text, show_default=False)]
    return inspect.Parameter(
        _parameter_name(key), inspect.Parameter.KEYWORD_ONLY, default=None, annotation=option
    )


def _signature() -> inspect.Signature:
    fixed = [
        inspect.Parameter(
            "config",
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[
                Path | None,
                typer.Option(
                    "--config", "-f", help=f"Config file (YAML). (env {CONFIG_ENV})", show_default=False
                ),
            ],
        ),
        inspect.Parameter(
            "policies",
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[
                list[Path] | None,
                typer.Option(
                    "--policies",
                    help="Policy directory or file, after the defaults; repeatable. "
                    f"(env {POLICY_DIRS_ENV}: ':'-separated, loaded before these)",
                    show_default=False,
                ),
            ],
        ),
        inspect.Parameter(
            "kubeconfig",
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[
                str | None,
                typer.Option(
                    "--kubeconfig",
                    help="Kubeconfig file; default: KUBECONFIG, else in-cluster, else ~/.kube/config.",
                    show_default=False,
                ),
            ],
        ),
        inspect.Parameter(
            "health_port",
            inspect.Parameter.KEYWORD_ONLY,
            default=8080,
            annotation=Annotated[
                int, typer.Option("--health-port", help="Port of /healthz and /readyz; 0 turns them off.")
            ],
        ),
    ]
    return inspect.Signature([*fixed, *(_flag_parameter(key) for key in FLAG_KEYS)])


run_command.__signature__ = _signature()  # type: ignore[attr-defined]

run_app = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False)
"""The ``run`` command as its own app, so ``engine.cli`` imports this module only when ``run`` is used."""
run_app.command(
    "run",
    help="Run the controller: Buildkite jobs become Kubernetes Jobs through the policies.",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120},
)(run_command)
