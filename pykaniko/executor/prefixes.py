"""Selectors for partial extraction: which files of a layer a reader needs, by path
prefix (``COPY --from`` sources, a COPY's destination)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pykaniko.errors import BuildError
from pykaniko.executor.fsutil import clean_abs, resolve_in_root

__all__ = ["fixed_prefix", "literal_prefixes", "real_prefixes", "under_prefixes"]


def fixed_prefix(source: str) -> str:
    """The part of a COPY source before its first wildcard, as a rootfs path."""
    fixed: list[str] = []
    for part in clean_abs(source).split("/")[1:]:
        if any(c in part for c in "*?["):
            break
        fixed.append(part)
    return "/" + "/".join(fixed)


def under_prefixes(root: Path, prefixes: tuple[str, ...]) -> Callable[[str], bool]:
    """``select`` for a partial extraction: a path is wanted when it lies below one of
    ``prefixes``, taken literally or through the symlinks already extracted."""

    def wanted(path: str) -> bool:
        for prefix in prefixes:
            host = resolve_in_root(root, prefix)
            real = "/" + host.relative_to(root).as_posix() if host != root else "/"
            for p in (prefix, real):
                if p in ("/", path) or path.startswith(p + "/"):
                    return True
        return False

    return wanted


def real_prefixes(root: Path, prefixes: tuple[str, ...]) -> tuple[str, ...]:
    """``prefixes`` and, for those reached through symlinks already in ``root``, the
    paths they really are."""
    out = set(prefixes)
    for prefix in prefixes:
        try:
            host = resolve_in_root(root, prefix)
        except BuildError:  # a symlink loop: the literal path is all there is
            continue
        out.add("/" + host.relative_to(root).as_posix() if host != root else "/")
    return tuple(sorted(out))


def literal_prefixes(prefixes: tuple[str, ...]) -> Callable[[str], bool]:
    """``select``: a path is wanted when it is one of ``prefixes`` or below one (a
    string test per entry: no file system lookups while a layer streams)."""
    if "/" in prefixes:
        return lambda path: True
    below = tuple(p + "/" for p in prefixes)
    exact = frozenset(prefixes)
    return lambda path: path in exact or path.startswith(below)
