"""A step's ``plugins`` as Buildkite serialises them into the job's ``BUILDKITE_PLUGINS``.

Facts from Buildkite's pipeline library (``go-pipeline``), which canonicalises plugins for upload and
signing:

* each plugin becomes a one-key object ``{"<full source>": <config>}``, in step order; a plugin given
  as a plain string, or with an empty map or list as config, gets ``null``;
* a source is expanded: ``docker#v5.0.0`` → ``github.com/buildkite-plugins/docker-buildkite-plugin#v5.0.0``,
  ``org/thing#v1`` → ``github.com/org/thing-buildkite-plugin#v1``; file paths, URLs with a scheme and
  longer paths are kept as written. So ``kubernetes`` becomes
  ``github.com/buildkite-plugins/kubernetes-buildkite-plugin``, the key the controller looks for;
* the JSON is Go's ``encoding/json`` output: compact, object keys sorted, and ``<``, ``>``, ``&``,
  U+2028 and U+2029 written as ``\\u`` escapes.

The ``plugins`` value may be a list (items: a source string, or a map with exactly one source key) or
a map of source → config.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from engine.model.jsonvalue import JSON, JSONObject

_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


class PluginsError(ValueError):
    """A ``plugins`` value Buildkite would not accept; the message names the entry."""


def full_source(source: str) -> str:
    """The canonical source of a plugin reference (see the module docstring)."""
    if source == "" or source.startswith(("/", ".", "\\")):
        return source
    try:
        parts = urlsplit(source)
    except ValueError:
        return source
    if parts.scheme or (parts.netloc and not parts.path):
        return source
    if ":" in source.split("#", 1)[0]:  # scp-like git@host:org/repo or a Windows drive: meant as is
        return source
    path, _, fragment = source.partition("#")
    segments = path.strip("/").split("/")

    def last(name: str) -> str:
        name += "-buildkite-plugin"
        return f"{name}#{fragment}" if fragment else name

    if len(segments) == 1:
        return f"github.com/buildkite-plugins/{last(segments[0])}"
    if len(segments) == 2:
        return f"github.com/{segments[0]}/{last(segments[1])}"
    return source


def canonical_plugins(value: JSON, where: str = "plugins") -> list[JSONObject]:
    """The step's plugins as a list of one-key objects with full sources."""
    if value is None:
        return []
    entries: list[tuple[str, JSON]] = []
    if isinstance(value, dict):
        entries = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, str):
                entries.append((item, None))
            elif isinstance(item, dict) and len(item) == 1:
                ((key, config),) = item.items()
                entries.append((str(key), config))
            else:
                count = f"{len(item)} keys" if isinstance(item, dict) else type(item).__name__
                raise PluginsError(
                    f"{where}[{index}]: a plugin entry must be a source or a map with exactly one "
                    f"source key, got {count}"
                )
    else:
        raise PluginsError(f"{where}: expected a list or a map of plugins, got {type(value).__name__}")
    out: list[JSONObject] = []
    for source, config in entries:
        empty = isinstance(config, dict | list) and not config
        out.append({full_source(source): None if empty else config})
    return out


def plugins_env(plugins: list[JSONObject]) -> str:
    """``BUILDKITE_PLUGINS`` for these plugins, byte for byte as Go's JSON encoder writes it."""
    text = json.dumps(plugins, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escape in _GO_ESCAPES.items():
        text = text.replace(char, escape)
    return text
