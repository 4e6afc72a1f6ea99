"""Kubernetes label key and value validation, as the API server applies it.

Upstream turns every agent tag into a Job label (``tag.buildkite.com/<key>: <value>``), and a single
invalid label makes the API server reject the whole Job. The policies therefore check each label with
these functions first and leave out (and warn about) those Kubernetes would refuse, e.g. ``os=*``.

A label key is a *qualified name*: an optional prefix that is a DNS-1123 subdomain (lower case, at
most 253 characters) followed by ``/``, then a name of 1-63 characters from ``[A-Za-z0-9-_.]`` that
starts and ends with a letter or digit. A label value is empty, or 1-63 characters of the same form.
"""

from __future__ import annotations

import json
import re

NAME_MAX_LENGTH = 63
PREFIX_MAX_LENGTH = 253
VALUE_MAX_LENGTH = 63

_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = re.compile(rf"{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*")
_NAME_RULE = "alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric character"


def is_label_key(key: object) -> bool:
    """True when ``key`` is a valid Kubernetes label (qualified name) key."""
    return isinstance(key, str) and not _key_problems(key)


def is_label_value(value: object) -> bool:
    """True when ``value`` is a valid Kubernetes label value (the empty string is valid)."""
    return isinstance(value, str) and not _value_problems(value)


def label_problems(key: str, value: str) -> list[str]:
    """One line per reason the API server would reject the label ``key: value``; ``[]`` if valid."""
    quoted_key = json.dumps(key, ensure_ascii=False)
    problems = [f"label key {quoted_key}: {problem}" for problem in _key_problems(key)]
    quoted_value = json.dumps(value, ensure_ascii=False)
    problems += [f"label {quoted_key} value {quoted_value}: {problem}" for problem in _value_problems(value)]
    return problems


def _key_problems(key: str) -> list[str]:
    parts = key.split("/")
    if len(parts) > 2:
        return ["must be a name with an optional DNS subdomain prefix and '/' (e.g. 'example.com/name')"]
    name = parts[-1]
    problems = [f"name part {problem}" for problem in _name_problems(name)]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            problems.insert(0, "prefix part must not be empty")
        elif len(prefix) > PREFIX_MAX_LENGTH:
            problems.insert(0, f"prefix part must be no more than {PREFIX_MAX_LENGTH} characters")
        elif not _DNS1123_SUBDOMAIN.fullmatch(prefix):
            problems.insert(
                0,
                "prefix part must be a lower-case DNS subdomain: alphanumeric characters, '-' or '.', "
                "starting and ending with an alphanumeric character (e.g. 'example.com')",
            )
    return problems


def _name_problems(name: str) -> list[str]:
    if not name:
        return ["must not be empty"]
    problems = []
    if len(name) > NAME_MAX_LENGTH:
        problems.append(f"must be no more than {NAME_MAX_LENGTH} characters")
    if not _NAME.fullmatch(name):
        problems.append(f"must consist of {_NAME_RULE}")
    return problems


def _value_problems(value: str) -> list[str]:
    if not value:
        return []
    problems = []
    if len(value) > VALUE_MAX_LENGTH:
        problems.append(f"must be no more than {VALUE_MAX_LENGTH} characters")
    if not _NAME.fullmatch(value):
        problems.append(f"must be empty or consist of {_NAME_RULE}")
    return problems
