"""RUN mounts without mount(2), for the in-place mode.

Each target is put in place before the RUN and taken away after it, before the
snapshot, so nothing of it reaches a layer. What was at a target before is moved aside
(into the RUN's private scratch directory, in the kaniko dir) and moved back exactly as
it was; missing parents are made and removed again; a parent's times are restored
unless the RUN itself changed the directory. Per type:

* ``secret``: a copy of the private file the step wrote (mode 0400 or the mount's
  mode, uid, gid). A secret is small and its source must stay where it is. When the
  target *is* the source file (``dst=/kaniko/NAME`` in the kaniko dir, which in-place
  builds never touch), nothing is done: it is simply there.
* ``cache``: the cache directory (``<kaniko-dir>/caches/<id>``) is *moved* in with
  rename(2): O(1) whatever its size, the RUN sees a real directory as under a mount,
  and what it writes persists for later RUNs and builds when it is moved back. Across
  filesystems a symlink to it stands in (a rename cannot cross them; a copy would cost
  the whole cache twice per RUN).
* ``bind``: a copy of the source (the context, a stage or an image root). Writes are
  thrown away with it, as BuildKit does for ``rw`` binds; ``readonly`` cannot be
  enforced without a mount, but nothing written there survives the RUN.
* ``tmpfs``: an empty directory, mode 1777 as a fresh tmpfs.

A target that is one of the container's own paths (kept: its mount points, the kaniko
dir) or a directory holding them (``/etc`` holds ``/etc/hosts``) is refused: those are
never moved. Below a kept directory (``/kaniko/NAME``) a target is put like any other.
"""

from __future__ import annotations

import contextlib
import errno
import os
from dataclasses import dataclass
from pathlib import Path

from pykaniko.errors import SandboxError
from pykaniko.executor.fsutil import clean_abs, resolve_in_root
from pykaniko.executor.isolation import BindMount
from pykaniko.executor.isolation.mountpoint import Created, ensure_parents, remove_created
from pykaniko.executor.isolation.treeops import copy_exact, holders, move_entry, remove_entry
from pykaniko.snapshot import IgnoreList

__all__ = ["MountEmulation"]

_NOTHING = IgnoreList.of()


@dataclass(frozen=True, slots=True)
class _Placed:
    """One target put in place, and what to undo."""

    mount: BindMount
    host: Path
    how: str  # "copy", "moved", "linked", "dir"
    stash: Path | None
    parent_times: tuple[int, int]
    parent_mtime_after: int
    source_stat: os.stat_result | None


class MountEmulation:
    """Puts a RUN's mount targets in place (:meth:`put`) and takes them away
    (:meth:`take_away`, always called, also after a failed :meth:`put`)."""

    def __init__(self, root: Path, scratch: Path, keep: IgnoreList = _NOTHING) -> None:
        self.root = root
        self.scratch = scratch
        self.keep = keep
        self._holders = holders(keep)
        self._placed: list[_Placed] = []
        self._created: list[Created] = []

    def put(self, mounts: tuple[BindMount, ...]) -> None:
        for m in mounts:
            self._put(m)

    def _put(self, m: BindMount) -> None:
        target = clean_abs(m.target)
        if target == "/":
            raise SandboxError("RUN --mount with target / cannot be emulated in-place")
        ensure_parents(self.root, target, self._created)
        host = resolve_in_root(self.root, target)
        if m.kind == "secret" and m.origin is not None and _same_file(host, Path(m.origin)):
            return  # the secret file itself, in the kaniko dir: simply there
        real = "/" + host.relative_to(self.root).as_posix() if host != self.root else "/"
        if real == "/" or real in self._holders or real in self.keep.exact:
            raise SandboxError(
                f"RUN --mount target {target}: in-place builds cannot put a mount on the "
                "container's own paths (its mount points, the kaniko dir) or a directory "
                "holding them"
            )
        if not host.parent.is_dir():
            raise SandboxError(f"RUN --mount target {target}: its directory cannot be made")
        pst = os.lstat(host.parent)
        stash: Path | None = None
        if os.path.lexists(host):
            stash = self.scratch / f"stash-{len(self._placed)}"
            move_entry(host, stash)
        source_stat = os.lstat(m.source) if m.kind == "cache" else None
        try:
            how = _place(m, host)
        except BaseException:
            if stash is not None:
                with contextlib.suppress(OSError):
                    remove_entry(host)
                move_entry(stash, host)
            raise
        self._placed.append(
            _Placed(
                mount=m,
                host=host,
                how=how,
                stash=stash,
                parent_times=(pst.st_atime_ns, pst.st_mtime_ns),
                parent_mtime_after=os.lstat(host.parent).st_mtime_ns,
                source_stat=source_stat,
            )
        )

    def take_away(self) -> None:
        """Undo everything :meth:`put` did, newest first. Raises after trying all when
        something that was there before could not be put back."""
        observed = {}
        for item in self._placed:
            with contextlib.suppress(OSError):
                observed[item.host.parent] = os.lstat(item.host.parent).st_mtime_ns
        failures: list[str] = []
        for item in reversed(self._placed):
            try:
                _remove(item)
                if item.stash is not None:
                    move_entry(item.stash, item.host)
            except OSError as exc:
                failures.append(f"{item.mount.target}: {exc.strerror or exc}")
                continue
            if observed.get(item.host.parent) == item.parent_mtime_after:
                with contextlib.suppress(OSError):
                    os.utime(item.host.parent, ns=item.parent_times, follow_symlinks=False)
        self._placed = []
        remove_created(self._created)
        self._created = []
        if failures:
            raise SandboxError("RUN mounts could not be taken away: " + "; ".join(failures))


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samestat(os.stat(a), os.stat(b))
    except OSError:
        return False


def _place(m: BindMount, host: Path) -> str:
    match m.kind:
        case "tmpfs":
            os.mkdir(host)
            os.chmod(host, 0o1777)
            return "dir"
        case "cache":
            try:
                os.rename(m.source, host)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                os.symlink(m.source, host)
                return "linked"
            return "moved"
        case "secret" | "bind":
            copy_exact(Path(m.source), host)
            return "copy"


def _remove(item: _Placed) -> None:
    """Take one target away; a moved cache goes back to the cache dir (an empty one
    when the RUN deleted it)."""
    host = item.host
    if item.how == "moved":
        source = Path(item.mount.source)
        if _is_real_dir(host):
            os.rename(host, source)
            return
        if os.path.lexists(host):
            remove_entry(host)
        st = item.source_stat
        assert st is not None
        os.mkdir(source)
        os.chown(source, st.st_uid, st.st_gid)
        os.chmod(source, st.st_mode & 0o7777)
        return
    if os.path.lexists(host):
        remove_entry(host)


def _is_real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()
