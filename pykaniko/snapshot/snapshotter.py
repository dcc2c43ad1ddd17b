"""The snapshotter: keeps the baseline of a stage's rootfs and turns changes into sets.

The baseline is what the rootfs looked like after the last snapshot. It is seeded from
what extraction wrote (never by re-reading the base image), or by a full walk for
``FROM scratch``; ``diff`` compares the rootfs against it and then advances it. Because
the base image's files are in the baseline from the start, deleting one of them always
gives a whiteout (Kaniko's ``--use-new-run`` misses those).

The ignore list is an immutable value the snapshotter holds; ``set_ignore`` swaps it
(VOLUME adds prefix entries mid-stage) and applies from the next walk on.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence, Set
from pathlib import Path
from typing import BinaryIO

from pykaniko.errors import SnapshotError
from pykaniko.snapshot.changes import ChangeSet
from pykaniko.snapshot.extract import ExtractReport, extract_layer
from pykaniko.snapshot.ignore import IgnoreList, normalize
from pykaniko.snapshot.modes import SnapshotMode, quick_key, semantic_key
from pykaniko.snapshot.walk import Baseline, Update, paths, scan, split, walk

__all__ = ["Snapshotter"]


_NOTHING = IgnoreList.of()


def _ancestors(path: str) -> Iterable[str]:
    """``/a/b/c`` -> ``/a/b``, ``/a`` (never the root)."""
    p = path.rpartition("/")[0]
    while p:
        yield p
        p = p.rpartition("/")[0]


def _under_any(path: str, tops: Set[str]) -> bool:
    """True when ``path`` or one of its ancestors is in ``tops``."""
    p = path
    while p:
        if p in tops:
            return True
        p = p.rpartition("/")[0]
    return False


def _minimal(paths: Iterable[str]) -> list[str]:
    """Drop paths that lie below another path of the set."""
    tops: set[str] = set()
    for p in sorted(paths, key=len):
        if not _under_any(p, tops):
            tops.add(p)
    return sorted(tops)


class Snapshotter:
    """Baseline plus ignore list for one stage rootfs; not thread-safe."""

    def __init__(self, root: Path, *, mode: SnapshotMode, ignore: IgnoreList) -> None:
        self._root = Path(os.path.abspath(root))
        self._rootstr = str(self._root).rstrip("/")
        self._mode = mode
        self._ignore = ignore
        self._key = quick_key(mode)
        self._stale = False
        self._tree: Baseline = {}
        self._dirs: dict[str, tuple[int, int]] = {}
        self._sem: dict[str, tuple[object, ...]] = {}

    @property
    def root(self) -> Path:
        return self._root

    @property
    def mode(self) -> SnapshotMode:
        return self._mode

    @property
    def ignore(self) -> IgnoreList:
        return self._ignore

    @property
    def baseline_size(self) -> int:
        """Number of paths in the baseline (for logs)."""
        return sum(len(sub) for sub in self._tree.values())

    def clone(self) -> Snapshotter:
        """An independent copy of this baseline: a speculative ``diff`` (dry runs,
        benchmarks) on the copy leaves this one where it is."""
        other = Snapshotter(self._root, mode=self._mode, ignore=self._ignore)
        other._tree = {d: dict(sub) for d, sub in self._tree.items()}
        other._dirs = dict(self._dirs)
        other._sem = dict(self._sem)
        other._stale = self._stale
        return other

    def set_ignore(self, ignore: IgnoreList) -> None:
        """Use ``ignore`` from the next walk on (VOLUME declared mid-stage)."""
        self._ignore = ignore

    def settle(self) -> None:
        """Call after the last extracted layer, before anything runs: when extraction
        changed the ctime of paths it did not write (other names of a hardlink group),
        every quick key is read again once, so ``stat`` does not see them as moved.
        Content fingerprints stay: no content changed."""
        if self._stale:
            self._tree, self._dirs = walk(self._rootstr, self._key, self._ignore)
            self._stale = False

    def take_baseline(self) -> None:
        """Replace the baseline by a full walk of the rootfs now (``full`` reads all)."""
        self._tree, self._dirs = walk(self._rootstr, self._key, self._ignore)
        self._sem = {}
        if self._mode is SnapshotMode.FULL:
            self._sem = {p: self._semantic(p) for p in paths(self._tree)}

    def extract(
        self, stream: BinaryIO, *, what: str, ignore: IgnoreList = _NOTHING
    ) -> ExtractReport:
        """Apply one uncompressed layer onto the rootfs and record it in the baseline.

        By default a layer is applied whole (its /dev, /proc, /var/run included), as
        Docker does into a rootfs directory of its own; ``ignore`` is for a rootfs that is
        the builder's own ``/`` (in-place builds), where ignored paths are the container's
        and are neither written nor removed (Kaniko).
        """
        full = self._mode is SnapshotMode.FULL
        result = extract_layer(stream, self._root, ignore=ignore, what=what, hashes=full)
        self._forget(result.removed)
        if result.removed:
            self._stale = True  # a removed name of a hardlink group moved its peers' ctime
        root = self._rootstr
        key = self._key
        for p in sorted(result.touched):
            try:
                st = os.lstat(root + p)
            except FileNotFoundError:
                self._forget([p])
                continue
            if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
                self._stale = True  # a new link moved the ctime of names not in this layer
            parent, name = split(p)
            self._tree.setdefault(parent, {})[name] = key(st)
            if stat.S_ISDIR(st.st_mode):
                self._dirs[p] = (st.st_dev, st.st_ino)
                self._tree.setdefault(p, {})
            elif self._dirs.pop(p, None) is not None:
                self._forget_below(p)
            if full:
                self._sem[p] = semantic_key(root + p, st, result.hashes.get(p))
        return result.report

    def diff(
        self, paths: Sequence[str] | None = None, *, ignore: IgnoreList | None = None
    ) -> ChangeSet:
        """Changes since the baseline, which then moves to the current state.

        ``ignore`` replaces the ignore list for this diff only: COPY and ADD write what
        they are told to, ``/dev`` or ``/var/run`` included, while a RUN's changes there
        are the sandbox's and stay out.
        """
        if ignore is None:
            return self._diff(paths)
        held, self._ignore = self._ignore, ignore
        try:
            return self._diff(paths)
        finally:
            self._ignore = held

    def _diff(self, paths: Sequence[str] | None) -> ChangeSet:
        """Changes since the baseline, which then moves to the current state.

        ``paths`` limits the walk to those rootfs paths and their subtrees (plus their
        ancestors, looked at alone); ``None`` walks the whole rootfs.
        """
        starts, ancestors = self._scope(paths)
        if starts == ["/"]:
            up = scan(
                self._rootstr,
                key=self._key,
                ignore=self._ignore,
                tree=self._tree,
                dirs=self._dirs,
                starts=[""],
            )
        else:
            up = self._detect_scoped(starts, ancestors)
        changed = up.changed
        added = up.added
        for p in up.gone:
            self._sem.pop(p, None)
        ignore = self._ignore
        deleted = sorted(p for p in up.gone if not ignore.ignored(p))

        if self._mode is SnapshotMode.FULL:
            kept = []
            for p in changed:
                sem = self._semantic(p)
                if self._sem.get(p) != sem:
                    kept.append(p)
                self._sem[p] = sem
            changed = kept

        opaque = self._opaque(up.replaced, deleted, added)
        deleted_set = set(deleted)
        dirs = self._dirs
        whiteouts = []
        for p in deleted:
            parent = p.rpartition("/")[0]
            if parent in deleted_set or (parent and parent not in dirs):
                continue  # covered by the parent's whiteout, or the parent is no dir now
            if opaque and _under_any(parent, opaque):
                continue
            whiteouts.append(p)

        entries = set(changed)
        entries |= self._link_partners(entries)
        if opaque:
            entries.update(opaque)
            below = tuple(d + "/" for d in opaque)
            for d, sub in self._tree.items():
                if d in opaque or d.startswith(below):
                    entries.update(d + "/" + n for n in sub)
        return ChangeSet(
            entries=tuple(sorted(entries)),
            whiteouts=tuple(whiteouts),
            opaque=tuple(sorted(opaque)),
            added=tuple(sorted(p for p in entries if p in added)),
            modified=tuple(sorted(p for p in entries if p not in added)),
            deleted=tuple(deleted),
        )

    # -- internals -------------------------------------------------------------------

    def _link_partners(self, entries: set[str]) -> set[str]:
        """Other names of multiply-linked files in ``entries``.

        Linking to a file of a lower layer copies it up under overlayfs, so Docker's
        layer holds every name of the inode as one hardlink group. Only when some name
        is missing from the layer do we look through the known paths for it: rare, and
        a stat per path at worst.
        """
        wanted: dict[tuple[int, int], int] = {}
        for p in entries:
            try:
                st = os.lstat(self._rootstr + p)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                wanted[key] = wanted.get(key, st.st_nlink) - 1
        if not any(n > 0 for n in wanted.values()):
            return set()
        found: set[str] = set()
        for p in paths(self._tree):
            if p in entries:
                continue
            try:
                st = os.lstat(self._rootstr + p)
            except OSError:
                continue
            if st.st_nlink > 1 and wanted.get((st.st_dev, st.st_ino), 0) > 0:
                found.add(p)
                wanted[(st.st_dev, st.st_ino)] -= 1
                if not any(n > 0 for n in wanted.values()):
                    break
        return found

    def _detect_scoped(self, starts: list[str], ancestors: list[str]) -> Update:
        """Detection below ``starts`` only (COPY, WORKDIR: the caller knows the paths)."""
        changed: list[str] = []
        added: set[str] = set()
        replaced: list[str] = []
        gone: list[str] = []
        scan_dirs: list[str] = []
        for p in [*ancestors, *starts]:
            if not self._real_parents(p):
                continue  # reached through a symlink: its real path is scanned instead
            if self._ignore.ignored(p):
                continue
            parent, name = split(p)
            sub = self._tree.setdefault(parent, {})
            try:
                st = os.lstat(self._rootstr + p)
            except FileNotFoundError:
                gone.extend(self._forget([p]))
                continue
            k = self._key(st)
            old = sub.get(name)
            if old != k:
                sub[name] = k
                changed.append(p)
                if old is None:
                    added.add(p)
            if stat.S_ISDIR(st.st_mode):
                ident = (st.st_dev, st.st_ino)
                od = self._dirs.get(p)
                if od is not None and od != ident:
                    replaced.append(p)
                self._dirs[p] = ident
                if p in starts and p not in self._ignore.prefix:
                    scan_dirs.append(p)
            elif self._dirs.pop(p, None) is not None:
                gone.extend(self._forget_below(p))
        if scan_dirs:
            up = scan(
                self._rootstr,
                key=self._key,
                ignore=self._ignore,
                tree=self._tree,
                dirs=self._dirs,
                starts=scan_dirs,
            )
            changed += up.changed
            added |= up.added
            replaced += up.replaced
            gone += up.gone
        return Update(changed, frozenset(added), replaced, gone)

    def _scope(self, paths: Sequence[str] | None) -> tuple[list[str], list[str]]:
        if paths is None:
            return ["/"], []
        norm = {normalize(p) for p in paths}
        if "/" in norm:
            return ["/"], []
        starts = _minimal(norm)
        ancestors = sorted({a for s in starts for a in _ancestors(s)} - set(starts))
        return starts, ancestors

    def _semantic(self, path: str) -> tuple[object, ...]:
        full = self._rootstr + path
        try:
            st = os.lstat(full)
        except OSError as e:
            if isinstance(e, FileNotFoundError):
                return (object(),)
            raise SnapshotError(f"cannot stat {path}: {e.strerror}") from e
        return semantic_key(full, st)

    def _real_parents(self, path: str) -> bool:
        """Whether every parent of ``path`` is a real directory in the rootfs (lstat
        follows no symlink, so a path through a link never reaches the host)."""
        parts = path.strip("/").split("/")[:-1]
        current = self._rootstr
        for part in parts:
            current += "/" + part
            try:
                if not stat.S_ISDIR(os.lstat(current).st_mode):
                    return False
            except OSError:
                return False
        return True

    def _opaque(self, replaced: list[str], deleted: list[str], added: Set[str]) -> set[str]:
        """Directories that were deleted and made again.

        Either the directory's identity changed, or (the inode was reused) every child
        it had is gone while it holds only new children: both mean "replace whole".
        """
        found = set(replaced)
        if deleted:
            parents = {p.rpartition("/")[0] for p in deleted} - found
            for d in parents:
                if not d or d not in self._dirs:
                    continue
                kids = self._children(d)
                if any(self._ignore.ignored(k) for k in kids):
                    continue  # an opaque marker would also hide what we may not look at
                if kids and all(k in added for k in kids):
                    found.add(d)
        return set(_minimal(found))

    def _children(self, d: str) -> list[str]:
        try:
            return [d + "/" + n for n in os.listdir(self._rootstr + d)]
        except OSError:
            return []

    def _forget(self, tops: Iterable[str]) -> list[str]:
        """Drop paths and their subtrees from the baseline; returns what was known."""
        top_set = set(tops)
        out: list[str] = []
        if not top_set:
            return out
        for t in top_set:
            parent, name = split(t)
            sub = self._tree.get(parent)
            if sub is not None and sub.pop(name, None) is not None:
                out.append(t)
            self._dirs.pop(t, None)
        if len(top_set) <= 64:
            below = tuple(t + "/" for t in top_set)

            def inside(k: str) -> bool:
                return k in top_set or k.startswith(below)
        else:

            def inside(k: str) -> bool:
                return _under_any(k, top_set)

        for d in [d for d in self._tree if inside(d)]:
            base = d + "/"
            out.extend(base + n for n in self._tree.pop(d))
        for d in [d for d in self._dirs if inside(d)]:
            del self._dirs[d]
        if self._sem:
            for k in [k for k in self._sem if inside(k)]:
                del self._sem[k]
        return out

    def _forget_below(self, path: str) -> list[str]:
        """Drop what the baseline knew below ``path`` (it is no directory any more)."""
        sub = self._tree.pop(path, None)
        if not sub:
            return []
        kids = [path + "/" + n for n in sub]
        return kids + self._forget(kids)  # _forget finds the deeper ones
