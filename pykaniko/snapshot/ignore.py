"""Paths that never enter a layer and that extraction never writes.

Paths are rootfs-relative and absolute (``/etc/hosts``). Two kinds of entry:

* *exact* entries drop the path and everything below it (``/proc``, mount points,
  ``--ignore-path``);
* *prefix* entries keep the path itself but drop its contents (``VOLUME`` paths: the
  directory is part of the image, what RUN writes inside it after the declaration is
  not, as in Docker).
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

__all__ = ["ALWAYS_IGNORED", "IgnoreList", "build_ignore_list", "mount_points", "normalize"]

# The build's runtime plumbing: pseudo filesystems and the files the sandbox bind-mounts.
ALWAYS_IGNORED: Final = (
    "/proc",
    "/sys",
    "/dev",
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/hostname",
)
_OCTAL = re.compile(r"\\([0-7]{3})")


def normalize(path: str) -> str:
    """``a//b/`` -> ``/a/b``; ``..`` cannot climb above the root. The root is ``/``."""
    return posixpath.normpath("/" + path.lstrip("/"))


@dataclass(frozen=True, slots=True)
class IgnoreList:
    """An immutable set of ignored paths; ``with_volumes`` returns a new one."""

    exact: frozenset[str] = field(default_factory=frozenset)
    prefix: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, exact: Iterable[str] = (), prefix: Iterable[str] = ()) -> IgnoreList:
        """Build from raw paths, normalized; the root itself can never be ignored."""
        ex = frozenset(p for p in map(normalize, exact) if p != "/")
        pre = frozenset(p for p in map(normalize, prefix) if p != "/")
        return cls(exact=ex, prefix=pre)

    def with_volumes(self, paths: Iterable[str]) -> IgnoreList:
        """Add VOLUME paths (contents ignored from now on, the directory kept)."""
        return IgnoreList.of(self.exact, self.prefix | frozenset(paths))

    def with_paths(self, paths: Iterable[str]) -> IgnoreList:
        """Add exact entries (path and subtree ignored)."""
        return IgnoreList.of(self.exact | frozenset(paths), self.prefix)

    def ignored(self, path: str) -> bool:
        """True when ``path`` (normalized, rootfs-absolute) must stay out of layers."""
        exact = self.exact
        if path in exact:
            return True
        prefix = self.prefix
        p = path
        while True:
            p = p.rpartition("/")[0]
            if not p:
                return False
            if p in exact or p in prefix:
                return True


def _unescape(field_text: str) -> str:
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field_text)


def mount_points(mountinfo: str) -> list[str]:
    """Mount points (field 5) of ``/proc/self/mountinfo`` text, octal escapes undone."""
    points = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) >= 5:
            points.append(_unescape(fields[4]))
    return points


def _inside(path: str, root: str) -> str | None:
    """``path`` made rootfs-relative when it lies strictly below ``root``."""
    path = posixpath.normpath(path)
    if root == "/":
        return path if path != "/" else None
    if path.startswith(root + "/"):
        return path[len(root) :]
    return None


def build_ignore_list(
    *,
    rootfs: Path,
    mountinfo: str = "",
    extra_paths: Sequence[str] = (),
    volumes: Sequence[str] = (),
    ignore_var_run: bool = True,
    work_dir: Path | None = None,
) -> IgnoreList:
    """The ignore list of one stage; pure apart from normalizing ``rootfs``.

    ``mountinfo`` is the text of ``/proc/self/mountinfo``: every mount point below the
    rootfs (or every one but ``/`` when building in ``/``) is a volume or bind mount of
    the build's own environment, never image content.
    """
    root = posixpath.normpath(os.path.abspath(rootfs))
    exact: list[str] = list(ALWAYS_IGNORED)
    for point in mount_points(mountinfo):
        rel = _inside(point, root)
        if rel is not None:
            exact.append(rel)
    if work_dir is not None:
        rel = _inside(os.path.abspath(work_dir), root)
        if rel is not None:
            exact.append(rel)
    if ignore_var_run:
        exact.append("/var/run")
    exact.extend(extra_paths)
    return IgnoreList.of(exact, volumes)
