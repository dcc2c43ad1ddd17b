"""Where to pull an image from: ``--registry-mirror`` and ``--registry-map`` turned into
an ordered list of candidates (pure; no I/O)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from pykaniko.errors import ConfigError
from pykaniko.image.reference import DOCKER_HUB, Reference, normalize_registry

__all__ = ["PullCandidate", "parse_registry_maps", "pull_candidates", "split_mirror"]


@dataclass(frozen=True, slots=True)
class PullCandidate:
    """One place to try; ``original`` marks the reference as written by the user."""

    ref: Reference
    original: bool
    insecure: bool = False


def split_mirror(spec: str) -> tuple[str, str, bool]:
    """``[http[s]://]host[/prefix]`` -> (host, prefix, plain_http)."""
    text = spec.strip()
    plain = text.startswith("http://")
    for scheme in ("http://", "https://"):
        if text.startswith(scheme):
            text = text[len(scheme) :]
    text = text.strip("/")
    host, _, prefix = text.partition("/")
    if not host:
        raise ConfigError(f"bad registry mirror {spec!r}: no host")
    return host, prefix, plain


def parse_registry_maps(entries: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Parse ``orig=new[/prefix]`` entries (each may hold several, ``;``-separated)."""
    out: dict[str, list[str]] = {}
    for entry in entries:
        for item in entry.split(";"):
            if not item.strip():
                continue
            orig, sep, new = item.partition("=")
            if not sep or not orig.strip() or not new.strip():
                raise ConfigError(
                    f"bad --registry-map entry {item!r}", hint="write orig=new[/prefix]"
                )
            out.setdefault(normalize_registry(orig.strip()), []).append(new.strip())
    return {k: tuple(v) for k, v in out.items()}


def pull_candidates(
    ref: Reference,
    *,
    mirrors: Sequence[str] = (),
    registry_maps: Mapping[str, tuple[str, ...]] | None = None,
    skip_default_registry_fallback: bool = False,
) -> list[PullCandidate]:
    """Every registry to try for ``ref``, in order.

    Map entries for the reference's registry come first, then ``--registry-mirror``
    entries (Docker Hub images only), then the original unless fallback is off. A
    mapped location is ``host/prefix/`` + the original repository (``library/``
    kept for Hub images, as Kaniko does). With no entry at all the original is kept
    even if fallback is off: there is nothing else to try.
    """
    specs: list[str] = []
    for key, values in (registry_maps or {}).items():
        if normalize_registry(key) == ref.registry:
            specs.extend(values)
    if ref.registry == DOCKER_HUB:
        specs.extend(mirrors)
    out: list[PullCandidate] = []
    seen: set[str] = set()
    for spec in specs:
        host, prefix, plain = split_mirror(spec)
        repo = f"{prefix}/{ref.repository}" if prefix else ref.repository
        candidate = ref.with_location(host, repo)
        if candidate.name in seen:
            continue
        seen.add(candidate.name)
        out.append(PullCandidate(candidate, original=candidate.name == ref.name, insecure=plain))
    if (not skip_default_registry_fallback or not out) and ref.name not in seen:
        out.append(PullCandidate(ref, original=True))
    return out
