"""Whole-tree operations of the in-place mode: clear the root, park a finished stage
away from it and bring it back, move or copy an entry keeping everything about it.

Every function takes the root as a parameter (``/`` in a build, a temporary directory
in tests) and the *keep* list: paths of the container itself (the kaniko dir, mount
points, ``/proc``...) that are never removed or moved. A directory holding a kept path
(``/etc`` holds the ``/etc/hosts`` bind mount) is never renamed or deleted: the walk
descends into it and deals with its other entries one by one. Symlinks are never
followed.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path

from pykaniko.snapshot import IgnoreList

__all__ = ["clear_root", "copy_exact", "holders", "move_entry", "park", "remove_entry", "unpark"]


def holders(keep: IgnoreList) -> frozenset[str]:
    """Every strict ancestor of a kept path (``/etc`` for ``/etc/hosts``), root excluded."""
    out: set[str] = set()
    for path in keep.exact:
        p = path.rpartition("/")[0]
        while p:
            out.add(p)
            p = p.rpartition("/")[0]
    return frozenset(out)


def _apply_meta(dst: Path, st: os.stat_result, xattr_from: Path | None) -> None:
    """Owner, mode, carried xattrs, then times (chown clears setuid bits and file
    capabilities, so it goes first)."""
    os.lchown(dst, st.st_uid, st.st_gid)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    if xattr_from is not None and not stat.S_ISLNK(st.st_mode):
        try:
            names = os.listxattr(xattr_from, follow_symlinks=False)
        except OSError:
            names = []
        for name in names:
            try:
                value = os.getxattr(xattr_from, name, follow_symlinks=False)
                os.setxattr(dst, name, value, follow_symlinks=False)
            except OSError:
                continue  # a namespace this filesystem or process cannot set
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def copy_exact(src: Path, dst: Path, links: dict[tuple[int, int], Path] | None = None) -> None:
    """Copy ``src`` (a tree when a directory) to the new path ``dst`` keeping type,
    content, mode, owner, times and xattrs; files linked together inside the copied
    tree stay linked (``links`` maps inodes already copied). Sockets are skipped."""
    links = {} if links is None else links
    st = os.lstat(src)
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        os.mkdir(dst, 0o700)
        with os.scandir(src) as it:
            names = sorted(e.name for e in it)
        for name in names:
            copy_exact(src / name, dst / name, links)
    elif stat.S_ISREG(mode):
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in links:
            os.link(links[key], dst)
            return
        shutil.copyfile(src, dst, follow_symlinks=False)
        links[key] = dst
    elif stat.S_ISLNK(mode):
        os.symlink(os.readlink(src), dst)
    elif stat.S_ISFIFO(mode):
        os.mkfifo(dst)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        os.mknod(dst, mode, st.st_rdev)
    else:
        return
    _apply_meta(dst, st, src)


def remove_entry(path: Path) -> None:
    """Remove ``path`` (a tree when a directory) without following symlinks or entering
    a directory of another filesystem (an unlisted mount point: EBUSY instead)."""
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode):
        _remove_dir(str(path), st.st_dev)
    else:
        os.unlink(path)


def _remove_dir(path: str, dev: int) -> None:
    with os.scandir(path) as it:
        entries = list(it)
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False):
            os.unlink(entry.path)
        elif entry.stat(follow_symlinks=False).st_dev != dev:
            raise OSError(errno.EBUSY, "a mount point", entry.path)
        else:
            _remove_dir(entry.path, dev)
    os.rmdir(path)


def move_entry(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst`` (O(1), everything kept); across filesystems, copy it
    exactly and remove the original."""
    try:
        os.rename(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        copy_exact(src, dst)
        remove_entry(src)


def _entries(directory: Path) -> list[str]:
    with os.scandir(directory) as it:
        return sorted(e.name for e in it)


def _is_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def clear_root(root: Path, keep: IgnoreList) -> list[str]:
    """Remove everything below ``root`` but the kept paths (the root itself stays);
    returns what could not be removed, one line each."""
    held = holders(keep)
    problems: list[str] = []

    def visit(directory: Path, rel_dir: str) -> None:
        for name in _entries(directory):
            rel = f"{rel_dir}/{name}"
            path = directory / name
            if keep.ignored(rel):
                continue
            if rel in held and _is_dir(path):
                visit(path, rel)
                continue
            try:
                remove_entry(path)
            except OSError as exc:
                problems.append(f"{rel}: {exc.strerror or exc}")

    visit(root, "")
    return problems


def park(root: Path, keep: IgnoreList, dest: Path) -> None:
    """Move every entry below ``root`` but the kept ones into the existing, empty
    directory ``dest``; a directory holding kept paths is mirrored there (its own
    metadata as it was) and only its other entries move."""
    held = holders(keep)

    def visit(directory: Path, target: Path, rel_dir: str) -> None:
        for name in _entries(directory):
            rel = f"{rel_dir}/{name}"
            path = directory / name
            if keep.ignored(rel):
                continue
            if rel in held and _is_dir(path):
                st = os.lstat(path)  # before its entries move: their leaving moves its mtime
                os.mkdir(target / name, 0o700)
                visit(path, target / name, rel)
                _apply_meta(target / name, st, path)
                continue
            move_entry(path, target / name)

    visit(root, dest, "")


def unpark(src: Path, root: Path) -> None:
    """Move a parked tree back below ``root`` (cleared before), merging the mirrored
    directories into those that stayed and giving them their parked metadata back."""
    for name in _entries(src):
        path = src / name
        target = root / name
        if _is_dir(path) and _is_dir(target):
            st = os.lstat(path)  # before its entries leave it
            unpark(path, target)
            _apply_meta(target, st, path)
            os.rmdir(path)
            continue
        if os.path.lexists(target):
            remove_entry(target)
        move_entry(path, target)
