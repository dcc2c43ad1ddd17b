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
from itertools import compress
from operator import ne
from pathlib import Path
from typing import BinaryIO

from pykaniko.errors import SnapshotError
from pykaniko.snapshot.changes import ChangeSet
from pykaniko.snapshot.extract import ExtractReport, extract_layer
from pykaniko.snapshot.ignore import IgnoreList, normalize
from pykaniko.snapshot.modes import SnapshotMode, quick_key, semantic_key
from pykaniko.snapshot.walk import Tree, walk, walk_names, walk_update

__all__ = ["Snapshotter"]


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
        self._keys: dict[str, object] = {}
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
        return len(self._keys)

    def clone(self) -> Snapshotter:
        """An independent copy of this baseline: a speculative ``diff`` (dry runs,
        benchmarks) on the copy leaves this one where it is."""
        other = Snapshotter(self._root, mode=self._mode, ignore=self._ignore)
        other._keys = dict(self._keys)
        other._dirs = dict(self._dirs)
        other._sem = dict(self._sem)
        return other

    def set_ignore(self, ignore: IgnoreList) -> None:
        """Use ``ignore`` from the next walk on (VOLUME declared mid-stage)."""
        self._ignore = ignore

    def take_baseline(self) -> None:
        """Replace the baseline by a full walk of the rootfs now (``full`` reads all)."""
        tree = walk(self._rootstr, ["/"], self._key, self._ignore)
        self._keys = tree.keys
        self._dirs = tree.dirs
        self._sem = {}
        if self._mode is SnapshotMode.FULL:
            self._sem = {p: self._semantic(p) for p in tree.keys}

    def extract(self, stream: BinaryIO, *, what: str) -> ExtractReport:
        """Apply one uncompressed layer onto the rootfs and record it in the baseline."""
        full = self._mode is SnapshotMode.FULL
        result = extract_layer(stream, self._root, ignore=self._ignore, what=what, hashes=full)
        if result.removed:
            self._forget(result.removed)
        root = self._rootstr
        key = self._key
        for p in sorted(result.touched):
            try:
                st = os.lstat(root + p)
            except FileNotFoundError:
                self._forget({p})
                continue
            self._keys[p] = key(st)
            if stat.S_ISDIR(st.st_mode):
                self._dirs[p] = (st.st_dev, st.st_ino)
            else:
                self._dirs.pop(p, None)
            if full:
                self._sem[p] = semantic_key(root + p, st, result.hashes.get(p))
        return result.report

    def diff(self, paths: Sequence[str] | None = None) -> ChangeSet:
        """Changes since the baseline, which then moves to the current state.

        ``paths`` limits the walk to those rootfs paths and their subtrees (plus their
        ancestors, looked at alone); ``None`` walks the whole rootfs.
        """
        starts, ancestors = self._scope(paths)
        if starts == ["/"]:
            changed, added, replaced, gone = self._detect_all()
        else:
            changed, added, replaced, gone = self._detect_scoped(starts, ancestors)
        for p in gone:
            self._keys.pop(p, None)
            self._dirs.pop(p, None)
            self._sem.pop(p, None)
        ignore = self._ignore
        deleted = sorted(p for p in gone if not ignore.ignored(p))

        if self._mode is SnapshotMode.FULL:
            kept = []
            for p in changed:
                sem = self._semantic(p)
                if self._sem.get(p) != sem:
                    kept.append(p)
                self._sem[p] = sem
            changed = kept

        opaque = self._opaque(replaced, deleted, added)
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
        if opaque:
            entries.update(opaque)
            tops = tuple(d + "/" for d in opaque)
            entries.update(p for p in self._keys if p.startswith(tops))
        return ChangeSet(
            entries=tuple(sorted(entries)),
            whiteouts=tuple(whiteouts),
            opaque=tuple(sorted(opaque)),
            added=tuple(sorted(p for p in entries if p in added)),
            modified=tuple(sorted(p for p in entries if p not in added)),
            deleted=tuple(deleted),
        )

    def _detect_all(self) -> tuple[list[str], frozenset[str], list[str], list[str]]:
        """Whole-tree detection, updating the baseline's keys in place as it walks."""
        before = len(self._keys)
        up = walk_update(self._rootstr, self._key, self._ignore, self._keys, self._dirs)
        gone: list[str] = []
        missing = before - (up.seen - len(up.added))
        if missing:
            found = self._gone_below(up.changed, up.added)
            if len(found) == missing:
                gone = found
            else:  # e.g. a directory's mtime was put back, or paths became ignored
                present = walk_names(self._rootstr, self._ignore)
                gone = [p for p in self._keys if p not in present]
        return up.changed, up.added, up.replaced, gone

    def _gone_below(self, changed: list[str], added: Set[str]) -> list[str]:
        """Baseline paths that vanished, found without a second walk.

        Removing a name moves its directory's mtime, so only the root and directories
        whose key moved need listing; a path that stopped being a directory lost its
        whole subtree. The caller checks the count against what the walk missed.
        """
        root = self._rootstr
        listing: dict[str, set[str]] = {"": set(os.listdir(root))}
        lost: list[str] = []
        for p in changed:
            if p in added:
                continue
            if p in self._dirs:
                try:
                    listing[p] = set(os.listdir(root + p))
                except OSError:
                    lost.append(p + "/")
            else:
                lost.append(p + "/")
        lost_prefixes = tuple(lost)
        tops: list[str] = []
        gone: set[str] = set()
        for k in self._keys:
            parent, _, name = k.rpartition("/")
            names = listing.get(parent)
            if names is not None:
                if name not in names:
                    tops.append(k)
            elif lost_prefixes and k.startswith(lost_prefixes):
                gone.add(k)
        if tops:
            gone.update(tops)
            below = tuple(t + "/" for t in tops)
            gone.update(k for k in self._keys if k.startswith(below))
        return list(gone)

    def _detect_scoped(
        self, starts: list[str], ancestors: list[str]
    ) -> tuple[list[str], frozenset[str], list[str], list[str]]:
        """Detection below ``starts`` only (COPY, WORKDIR: the caller knows the paths)."""
        tree = walk(self._rootstr, starts, self._key, self._ignore)
        for a in ancestors:
            self._stat_into(tree, a)
        old = self._keys
        new = tree.keys
        changed = list(compress(new, map(ne, new.values(), map(old.get, new))))
        added = frozenset(p for p in changed if p not in old)
        old_dirs = self._dirs
        replaced = [p for p, ident in tree.dirs.items() if old_dirs.get(p, ident) != ident]
        exact = set(starts) | set(ancestors)
        prefixes = tuple(s + "/" for s in starts)
        gone = [k for k in old if (k in exact or k.startswith(prefixes)) and k not in new]
        old.update(new)
        for p in new:
            if p not in tree.dirs:
                old_dirs.pop(p, None)
        old_dirs.update(tree.dirs)
        return changed, added, replaced, gone

    # -- internals -------------------------------------------------------------------

    def _scope(self, paths: Sequence[str] | None) -> tuple[list[str], list[str]]:
        if paths is None:
            return ["/"], []
        norm = {normalize(p) for p in paths}
        if "/" in norm:
            return ["/"], []
        starts = _minimal(norm)
        ancestors = sorted({a for s in starts for a in _ancestors(s)} - set(starts))
        return starts, ancestors

    def _stat_into(self, tree: Tree, path: str) -> None:
        if self._ignore.ignored(path):
            return
        try:
            st = os.lstat(self._rootstr + path)
        except FileNotFoundError:
            return
        tree.keys[path] = self._key(st)
        if stat.S_ISDIR(st.st_mode):
            tree.dirs[path] = (st.st_dev, st.st_ino)

    def _semantic(self, path: str) -> tuple[object, ...]:
        full = self._rootstr + path
        try:
            st = os.lstat(full)
        except OSError as e:
            if isinstance(e, FileNotFoundError):
                return (object(),)
            raise SnapshotError(f"cannot stat {path}: {e.strerror}") from e
        return semantic_key(full, st)

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
                kids = [p for p in self._children(d) if not self._ignore.ignored(p)]
                if kids and all(k in added for k in kids):
                    found.add(d)
        return set(_minimal(found))

    def _children(self, d: str) -> list[str]:
        try:
            return [d + "/" + n for n in os.listdir(self._rootstr + d)]
        except OSError:
            return []

    def _forget(self, tops: Set[str]) -> None:
        """Drop removed subtrees from the baseline."""
        if len(tops) <= 256:
            prefixes = tuple(t + "/" for t in tops)
            doomed = [k for k in self._keys if k in tops or k.startswith(prefixes)]
        else:
            doomed = [k for k in self._keys if _under_any(k, tops)]
        for k in doomed:
            del self._keys[k]
            self._dirs.pop(k, None)
            self._sem.pop(k, None)
