"""Container image references, parsed the way the Docker distribution library (``reference.Parse``)
parses them, which is what agent-stack-k8s v0.21+ checks every container image with before it builds
a Job, and what a kubelet would fail on later.

Grammar (distribution/reference): ``[domain/]path[:tag][@digest]`` where the domain is a host name
(or IPv4, or a bracketed IPv6) with an optional port, the path is ``/``-separated lower-case
components joined by ``.``, ``_``, ``__`` or dashes, the tag is ``[\\w][\\w.-]{0,127}``, and the digest is
``algorithm:hex`` (``sha256`` with 64 hex digits, ``sha384`` with 96, ``sha512`` with 128). A name longer
than 255 characters is refused. Pure; no IO.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"^({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?$")
_NAME_MAX = 255
_TEXT_MAX = 4096
"""Longer text is refused before the regular expression sees it (a reference is at most a 255-character
name, a 128-character tag and a digest)."""
_DIGEST_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}

INVALID_FORMAT = "invalid reference format"


@dataclass(frozen=True, slots=True)
class ImageReference:
    """A parsed reference, or the reason it does not parse (``error``, the library's words)."""

    name: str = ""
    tag: str = ""
    digest: str = ""
    error: str = ""

    @property
    def valid(self) -> bool:
        return not self.error


def parse_image_reference(text: str) -> ImageReference:
    """Parse ``text``; never raises (an unusable reference has ``error`` set)."""
    if not isinstance(text, str) or text == "":
        return ImageReference(error="repository name must have at least one component")
    match = _REFERENCE.match(text) if len(text) <= _TEXT_MAX else None
    if match is None and len(text) <= _TEXT_MAX and _REFERENCE.match(text.lower()) is not None:
        return ImageReference(error="repository name must be lowercase")
    if match is None:
        return ImageReference(error=INVALID_FORMAT)
    name, tag, digest = match.group(1), match.group(2) or "", match.group(3) or ""
    if len(name) > _NAME_MAX:
        return ImageReference(error=f"repository name must not be more than {_NAME_MAX} characters")
    if digest:
        algorithm, _, hex_digits = digest.partition(":")
        expected = _DIGEST_LENGTHS.get(algorithm)
        if expected is None:
            return ImageReference(error="unsupported digest algorithm")
        if len(hex_digits) != expected:
            return ImageReference(error="invalid checksum digest length")
    return ImageReference(name=name, tag=tag, digest=digest)


def has_upper_case_name(text: str) -> bool:
    """Whether the repository part of ``text`` (before any tag or digest) has an upper-case letter:
    upstream refuses such images in the controller's pod-spec-patch at start-up."""
    name = text.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name = name[:colon]
    return name != name.lower()
