"""The metadata of one extracted entry: owner, mode, the xattrs layers carry, mtime.

Set-id bits stay only on a file whose owner could be set (never on a file of the
builder's ids); what cannot be set is a warning, not an error: a layer applied by an
unprivileged builder still gives a usable tree.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Callable
from typing import Final

__all__ = ["EntryMetadata", "mtime_ns", "xattr_carried"]

_XATTR: Final = "SCHILY.xattr."


def xattr_carried(name: str) -> bool:
    """The xattrs layers carry: file capabilities plus the user and trusted namespaces."""
    return name == "security.capability" or name.startswith(("user.", "trusted."))


def mtime_ns(m: tarfile.TarInfo) -> int:
    """A member's mtime in nanoseconds (PAX headers may carry fractions)."""
    t = m.mtime
    if isinstance(t, int):
        return t * 1_000_000_000
    return round(float(t) * 1_000_000_000)


class EntryMetadata:
    """Applies members' metadata to paths or open descriptors; warns through ``warn``."""

    def __init__(self, warn: Callable[[str], None]) -> None:
        self.warn = warn
        self.chown_ok = True

    def chown(self, target: str | int, m: tarfile.TarInfo) -> bool:
        try:
            if isinstance(target, int):
                os.fchown(target, m.uid, m.gid)
            else:
                os.chown(target, m.uid, m.gid, follow_symlinks=False)
        except PermissionError:
            if self.chown_ok:
                self.warn("cannot change ownership (not root?): files keep the builder's ids")
                self.chown_ok = False
            return False
        return True

    def owner_mode(self, target: str | int, m: tarfile.TarInfo) -> None:
        mode = m.mode & 0o7777
        if not self.chown(target, m):
            mode &= ~0o6000  # never leave a set-id bit on a file of the wrong owner
        if isinstance(target, int):
            os.fchmod(target, mode)
        else:
            os.chmod(target, mode)

    def xattrs(self, target: str | int, m: tarfile.TarInfo) -> None:
        for key, value in m.pax_headers.items():
            if not key.startswith(_XATTR):
                continue
            name = key[len(_XATTR) :]
            if not xattr_carried(name):
                self.warn(f"{m.name!r}: xattr {name} not carried")
                continue
            raw = value.encode("utf-8", "surrogateescape")
            try:
                if isinstance(target, int):
                    os.setxattr(target, name, raw)
                else:
                    os.setxattr(target, name, raw, follow_symlinks=False)
            except OSError as e:
                self.warn(f"{m.name!r}: xattr {name} not set: {e.strerror}")

    def utime(self, target: str | int, m: tarfile.TarInfo) -> None:
        ns = mtime_ns(m)
        try:
            if isinstance(target, int):
                os.utime(target, ns=(ns, ns))
            else:
                os.utime(target, ns=(ns, ns), follow_symlinks=False)
        except (OverflowError, OSError) as e:
            self.warn(f"{m.name!r}: mtime not set: {getattr(e, 'strerror', None) or e}")
