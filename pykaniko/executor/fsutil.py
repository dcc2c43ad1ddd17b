"""Path helpers for writing into a rootfs: every join resolves symlinks *inside* the
root, so a symlinked destination or parent can never lead a step outside it."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from pykaniko.errors import BuildError

__all__ = ["clean_abs", "makedirs_in_root", "resolve_in_root"]

_MAX_HOPS = 40


def clean_abs(path: str, cwd: str = "/") -> str:
    """An absolute, normalised rootfs path; relative paths are taken from ``cwd``."""
    joined = path if path.startswith("/") else f"{cwd.rstrip('/')}/{path}"
    parts: list[str] = []
    for part in joined.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)


def resolve_in_root(root: Path, path: str, *, follow_final: bool = True) -> Path:
    """The host path for rootfs path ``path``, following symlinks as if ``root`` were
    ``/``; ``..`` and absolute link targets never climb above ``root``."""
    parts = list(PurePosixPath(clean_abs(path)).parts[1:])
    current = root
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            current = current.parent if current != root else root
            continue
        candidate = current / part
        if (parts or follow_final) and candidate.is_symlink():
            hops += 1
            if hops > _MAX_HOPS:
                raise BuildError(f"too many levels of symbolic links resolving {path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = root
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        current = candidate
    return current


def makedirs_in_root(
    root: Path, path: str, *, uid: int = 0, gid: int = 0, mode: int = 0o755
) -> list[str]:
    """``mkdir -p`` inside the root; returns the rootfs paths it created so a snapshot of
    known paths can include them."""
    created: list[str] = []
    current = "/"
    for part in PurePosixPath(clean_abs(path)).parts[1:]:
        current = clean_abs(part, current)
        host = resolve_in_root(root, current)
        if host.is_dir():
            continue
        if host.exists() or host.is_symlink():
            raise BuildError(f"cannot create directory {current}: a file is in the way")
        if not host.parent.is_dir():  # a dangling symlink: create its target's parents
            parent = "/" + host.parent.relative_to(root).as_posix()
            created += makedirs_in_root(root, parent, uid=uid, gid=gid, mode=mode)
        host.mkdir()
        os.chown(host, uid, gid)
        os.chmod(host, mode)
        created.append(current)
    return created
