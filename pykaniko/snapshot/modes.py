"""Snapshot modes and the per-file fingerprints they compare.

The walk compares one cheap *quick key* per path, built in C by ``attrgetter`` from the
``lstat`` result, so per-file Python work stays a dict store. ``full`` adds a second,
content-aware *semantic* fingerprint that is only recomputed when the quick key moved.
"""

from __future__ import annotations

import enum
import os
import stat
from collections.abc import Callable
from operator import attrgetter
from typing import Final

import xxhash

from pykaniko.errors import ConfigError

__all__ = ["SnapshotMode", "file_hash", "quick_key", "semantic_key"]

_BLOCK: Final = 1 << 20
_SMALL: Final = 1 << 16
CAPABILITY: Final = "security.capability"

QuickKey = Callable[[os.stat_result], object]

# The kernel moves ctime on every inode change (content, mode, owner, link count,
# xattrs, and every utime call), and neither ctime nor the inode number can be set from
# user space: (dev, ino, ctime) therefore sees everything the whole lstat tuple would,
# cp -p, touch -d and tar -x rewrites included, with a four-field compare. mtime stays
# for filesystems whose ctime is coarser than their mtime.
_STAT_FIELDS: Final = ("st_ino", "st_dev", "st_ctime_ns", "st_mtime_ns")


class SnapshotMode(enum.Enum):
    """What a snapshot compares to decide that a path changed (``--snapshot-mode``)."""

    FULL = "full"
    REDO = "redo"
    TIME = "time"
    STAT = "stat"

    @classmethod
    def parse(cls, text: str) -> SnapshotMode:
        """Parse a ``--snapshot-mode`` value, naming the choices when it is wrong."""
        try:
            return cls(text.strip().lower())
        except ValueError:
            choices = ", ".join(m.value for m in cls)
            raise ConfigError(
                f"unknown snapshot mode {text!r}", hint=f"use one of {choices}"
            ) from None


def quick_key(mode: SnapshotMode) -> QuickKey:
    """The C-level key function the walk stores per path for ``mode``."""
    if mode is SnapshotMode.TIME:
        return attrgetter("st_mtime_ns")
    if mode is SnapshotMode.REDO:
        return attrgetter("st_mode", "st_uid", "st_gid", "st_size", "st_mtime_ns")
    # STAT and FULL: FULL re-reads content only when this tuple moved.
    return attrgetter(*_STAT_FIELDS)


def file_hash(path: str | bytes) -> int:
    """xxh3-128 of a file's bytes: small files in one read, big ones in 1 MiB blocks."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        head = os.read(fd, _SMALL)
        if len(head) < _SMALL:
            return int(xxhash.xxh3_128_intdigest(head))
        h = xxhash.xxh3_128(head)
        buf = bytearray(_BLOCK)
        view = memoryview(buf)
        while n := os.readv(fd, [buf]):
            h.update(view[:n])
        return int(h.intdigest())
    finally:
        os.close(fd)


def _capability(path: str) -> bytes | None:
    try:
        return os.getxattr(path, CAPABILITY, follow_symlinks=False)
    except OSError:
        return None


def semantic_key(path: str, st: os.stat_result, content: int | None = None) -> tuple[object, ...]:
    """``full`` mode's fingerprint: metadata plus content hash, link target or device.

    ``content`` is the hash already computed while the file was written (extraction).
    A file that vanished or cannot be read gets a fingerprint that never matches.
    """
    m = st.st_mode
    if stat.S_ISDIR(m):
        return (m, st.st_uid, st.st_gid, st.st_mtime_ns)
    data: object
    cap: bytes | None = None
    try:
        if stat.S_ISREG(m):
            data = file_hash(path) if content is None else content
            cap = _capability(path)
        elif stat.S_ISLNK(m):
            data = os.readlink(path)
        else:
            data = st.st_rdev
    except OSError:
        data = object()
    return (m, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, data, cap)
