"""Mount points made for one RUN and taken away after it, leaving no trace.

A RUN mount whose target does not exist needs one (and its missing parents) in the
rootfs; each is remembered with the times its parent had, so removing it afterwards
restores the parent's mtime too and no snapshot mode sees a change.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from pykaniko.executor.fsutil import resolve_in_root

__all__ = ["Created", "ensure_mount_point", "ensure_parents", "make", "remove_created"]


@dataclass(frozen=True, slots=True)
class Created:
    """A path we had to make, and the times its parent had before."""

    path: Path
    parent_times: tuple[int, int]


def make(path: Path, created: list[Created], *, directory: bool, mode: int | None = None) -> None:
    """Create ``path`` (a resolved, non-existing path inside the rootfs), never
    following a symlink, and remember it with its parent's times."""
    st = os.stat(path.parent, follow_symlinks=False)
    if directory:
        os.mkdir(path, 0o755)
    else:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))
    if mode is not None:
        os.chmod(path, mode)
    created.append(Created(path, (st.st_atime_ns, st.st_mtime_ns)))


def ensure_parents(root: Path, rootfs_path: str, created: list[Created]) -> Path:
    """The host path of ``rootfs_path``'s parent inside the rootfs, made when missing."""
    parent = resolve_in_root(root, rootfs_path.rsplit("/", 1)[0] or "/")
    if not parent.is_dir():
        missing: list[Path] = []
        while not parent.exists() and not parent.is_symlink() and parent != root:
            missing.append(parent)
            parent = parent.parent
        for p in reversed(missing):
            make(p, created, directory=True)
    return parent


def ensure_mount_point(
    root: Path, rootfs_path: str, created: list[Created], *, directory: bool
) -> Path:
    """The host path of a mount point inside the rootfs, created when missing."""
    ensure_parents(root, rootfs_path, created)
    target = resolve_in_root(root, rootfs_path)
    if not (target.exists() or target.is_symlink()):
        make(target, created, directory=directory)
    return target


def remove_created(created: list[Created]) -> None:
    """Remove what :func:`make` made (newest first), restoring each parent's times."""
    for item in reversed(created):
        with contextlib.suppress(OSError):
            st = os.lstat(item.path)
            if stat.S_ISDIR(st.st_mode):
                os.rmdir(item.path)
            elif stat.S_ISREG(st.st_mode):
                os.unlink(item.path)
            os.utime(item.path.parent, ns=item.parent_times, follow_symlinks=False)
