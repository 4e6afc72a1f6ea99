"""Image references for expressions: what agent-stack-k8s v0.21+ reads from a container's image
(whether it parses, whether it is pinned by a digest), on top of :mod:`engine.model.image_ref`."""

from __future__ import annotations

from engine.model.image_ref import parse_image_reference
from engine.model.jsonvalue import JSON


def image_ref(image: JSON) -> dict[str, JSON]:
    """``{valid, error, name, tag, digest}`` of an image reference; ``error`` is the parser's words
    (``invalid reference format``) and empty when it parses. Anything but a string is invalid."""
    parsed = parse_image_reference(image) if isinstance(image, str) else parse_image_reference("")
    return {
        "valid": parsed.valid,
        "error": parsed.error,
        "name": parsed.name,
        "tag": parsed.tag,
        "digest": parsed.digest,
    }
