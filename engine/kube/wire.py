"""JSON to and from the API server, with ``orjson``.

Every Job the controller creates is serialised once and every watch event decoded once, so this is
the controller's hottest code after policy evaluation: ``orjson`` does both several times faster than
the standard library (and shares the strings of repeated short keys), for the same JSON.
"""

from __future__ import annotations

from typing import Any

import orjson

DecodeError = orjson.JSONDecodeError
"""Raised by :func:`decode` for text that is not JSON (a ``ValueError``)."""
EncodeError = orjson.JSONEncodeError
"""Raised by :func:`encode` for a value that is not JSON (a ``TypeError``)."""


def encode(value: Any) -> bytes:
    """``value`` (plain dicts, lists, strings, numbers, booleans, None) as compact JSON bytes."""
    return orjson.dumps(value)


def decode(data: bytes | str) -> Any:
    """The JSON value ``data`` holds."""
    return orjson.loads(data)
