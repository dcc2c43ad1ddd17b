"""Image references (``[host[:port]/]path[:tag][@digest]``) normalised the way Docker
does it, so ``busybox``, ``docker.io/library/busybox:latest`` and
``index.docker.io/library/busybox`` all name the same image and find the same
credentials."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Final

from pykaniko.errors import ImageError

__all__ = [
    "DOCKER_HUB",
    "DOCKER_HUB_API",
    "Reference",
    "normalize_registry",
    "parse_reference",
]

DOCKER_HUB: Final = "docker.io"
DOCKER_HUB_API: Final = "registry-1.docker.io"
_HUB_ALIASES: Final = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})

_COMPONENT: Final = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST: Final = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[0-9a-fA-F]{32,}$")
_HOST: Final = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?$"
)
_SHA256_HEX: Final = re.compile(r"^[0-9a-f]{64}$")


def normalize_registry(host: str) -> str:
    """Docker Hub's several host names collapse to ``docker.io``."""
    lowered = host.lower()
    return DOCKER_HUB if lowered in _HUB_ALIASES else host


@dataclass(frozen=True, slots=True)
class Reference:
    """A fully qualified reference; at least one of ``tag`` and ``digest`` is set
    when made by :func:`parse_reference`."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """``registry/repository``: the repository without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def api_host(self) -> str:
        """The host the Registry API is actually served from."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def identifier(self) -> str:
        """What goes after ``/manifests/``: the digest if pinned, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def is_docker_hub(self) -> bool:
        return self.registry == DOCKER_HUB

    def with_tag(self, tag: str) -> Reference:
        if not _TAG.match(tag):
            raise ImageError(f"invalid tag {tag!r}")
        return replace(self, tag=tag, digest=None)

    def with_digest(self, digest: str) -> Reference:
        if not _DIGEST.match(digest):
            raise ImageError(f"invalid digest {digest!r}")
        return replace(self, digest=digest)

    def with_location(self, registry: str, repository: str) -> Reference:
        """The same tag/digest in another registry or repository (mirrors, maps)."""
        return replace(self, registry=normalize_registry(registry), repository=repository)

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def _split_host(text: str) -> tuple[str, str]:
    first, sep, rest = text.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        return first, rest
    return DOCKER_HUB, text


def parse_reference(text: str) -> Reference:
    """Parse and normalise an image reference, raising ``ImageError`` when malformed.

    ``busybox`` becomes ``docker.io/library/busybox:latest``; a reference with only a
    digest keeps ``tag=None``; ``name:tag@digest`` keeps both (the digest wins on pull).
    """
    original = text
    text = text.strip()
    if not text:
        raise ImageError("empty image reference")
    if "://" in text:
        raise ImageError(
            f"invalid image reference {original!r}: a reference has no URL scheme",
            hint="write host[:port]/repository[:tag], e.g. registry.example.com/app:1.0",
        )
    digest: str | None = None
    if "@" in text:
        text, _, digest = text.partition("@")
        if not _DIGEST.match(digest):
            raise ImageError(f"invalid image reference {original!r}: bad digest {digest!r}")
        algo, _, hexpart = digest.partition(":")
        if algo == "sha256" and not _SHA256_HEX.match(hexpart):
            raise ImageError(
                f"invalid image reference {original!r}: a sha256 digest has 64 lowercase hex digits"
            )
    host, path = _split_host(text)
    tag: str | None = None
    last_slash = path.rfind("/")
    colon = path.rfind(":")
    if colon > last_slash:
        path, tag = path[:colon], path[colon + 1 :]
        if not _TAG.match(tag):
            raise ImageError(f"invalid image reference {original!r}: bad tag {tag!r}")
    if not _HOST.match(host):
        raise ImageError(f"invalid image reference {original!r}: bad registry host {host!r}")
    if not path:
        raise ImageError(f"invalid image reference {original!r}: no repository name")
    for component in path.split("/"):
        if not _COMPONENT.match(component):
            hint = (
                "repository names are lowercase"
                if component.lower() != component
                else "components are lowercase letters, digits and . _ - separators"
            )
            raise ImageError(
                f"invalid image reference {original!r}: bad repository component {component!r}",
                hint=hint,
            )
    registry = normalize_registry(host)
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if len(registry) + 1 + len(path) > 255:
        raise ImageError(f"invalid image reference {original!r}: name longer than 255 characters")
    if tag is None and digest is None:
        tag = "latest"
    return Reference(registry=registry, repository=path, tag=tag, digest=digest)
