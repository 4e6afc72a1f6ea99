"""Log formatting for the controller: human text or one JSON object per line, with secrets scrubbed.

Text is for a terminal; JSON is for log collectors (each line parses on its own and carries the level,
logger and message as fields). Whatever the format, a :class:`SecretScrubber` replaces every
configured secret (the Buildkite API token, agent tokens read at run time) with ``[REDACTED]`` in the
final line, as a last line of defence: the code never logs a token on purpose, and this makes sure a
token inside some library's exception text cannot leak either.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Literal, TextIO

LogFormat = Literal["text", "json"]
REDACTED = "[REDACTED]"

_HANDLER_NAME = "agent-stack-controller"
_MIN_SECRET_LENGTH = 4
"""Shorter 'secrets' would blank out ordinary words; no real token is that short."""


class SecretScrubber:
    """A set of secret strings to blank out of log lines; thread-safe, grows at run time."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        if len(secret) < _MIN_SECRET_LENGTH:
            return
        with self._lock:
            if secret not in self._secrets:
                # longest first, so a secret containing another is replaced whole
                self._secrets = tuple(sorted((*self._secrets, secret), key=len, reverse=True))

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


class TextFormatter(logging.Formatter):
    """``2025-01-01T12:00:00.000Z INFO  engine.controller.monitor: message``."""

    def __init__(self, scrubber: SecretScrubber) -> None:
        super().__init__()
        self._scrubber = scrubber

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname:<5} {record.name}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return self._scrubber.scrub(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time``, ``level``, ``logger``, ``message`` (+ ``error``)."""

    def __init__(self, scrubber: SecretScrubber) -> None:
        super().__init__()
        self._scrubber = scrubber

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return self._scrubber.scrub(json.dumps(entry, ensure_ascii=False))


def configure_logging(
    log_format: LogFormat,
    *,
    debug: bool = False,
    level: str = "info",
    scrubber: SecretScrubber | None = None,
    stream: TextIO | None = None,
) -> SecretScrubber:
    """Route all logging to ``stream`` (stderr) in ``log_format``; debug level when ``debug``, else
    ``level`` (config ``log-level``: debug, info, warn, error).

    Replaces a handler installed by an earlier call (so ``engine run`` can set the format first and
    the level once the config is read). Returns the scrubber, to which secrets learnt later are added.
    """
    scrubber = scrubber or SecretScrubber()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter(scrubber) if log_format == "json" else TextFormatter(scrubber))
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
    root.addHandler(handler)
    levels = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}
    root.setLevel(logging.DEBUG if debug else levels.get(level, logging.INFO))
    for noisy in ("aiohttp.access", "gql.transport.aiohttp", "kubernetes.client.rest", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return scrubber


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
