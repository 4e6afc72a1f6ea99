"""Log formatting: text or JSON lines, secrets scrubbed whatever the format."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from engine.controller.logging_setup import SecretScrubber, configure_logging

TOKEN = "bkua_0123456789abcdef"


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_parse_and_carry_level_logger_and_message() -> None:
    stream = io.StringIO()
    configure_logging("json", stream=stream)
    logging.getLogger("engine.controller.monitor").warning("polled %d jobs", 3)
    logging.getLogger("engine.controller.monitor").debug("not at info level")
    [line] = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["level"] == "warning"
    assert entry["logger"] == "engine.controller.monitor"
    assert entry["message"] == "polled 3 jobs"
    assert entry["time"].endswith("Z")


def test_debug_level_and_text_format() -> None:
    stream = io.StringIO()
    configure_logging("text", debug=True, stream=stream)
    logging.getLogger("x").debug("details")
    assert stream.getvalue().rstrip().endswith("DEBUG x: details")


def test_reconfiguring_replaces_the_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("text", stream=first)
    configure_logging("json", stream=second)
    logging.getLogger("x").info("once")
    assert first.getvalue() == ""
    assert json.loads(second.getvalue())["message"] == "once"


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_secrets_are_scrubbed_even_inside_exceptions(log_format: str) -> None:
    stream = io.StringIO()
    scrubber = configure_logging("json" if log_format == "json" else "text", stream=stream)
    scrubber.add(TOKEN)
    logger = logging.getLogger("x")
    logger.info("token is %s", TOKEN)
    try:
        raise RuntimeError(f"request with Bearer {TOKEN} failed")
    except RuntimeError:
        logger.exception("boom")
    assert TOKEN not in stream.getvalue()
    assert "[REDACTED]" in stream.getvalue()


def test_the_scrubber_replaces_the_longest_secret_first_and_ignores_tiny_ones() -> None:
    scrubber = SecretScrubber(["abcd", "abcdefgh", "x"])
    assert scrubber.scrub("abcdefgh abcd x") == "[REDACTED] [REDACTED] x"
