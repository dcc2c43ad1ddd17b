"""Content digests of what a COPY/ADD reads from the build context, or what a RUN bind
mount shows: the inputs of their cache keys.

A digest covers what reaches the image: every entry's relative name and type, its mode
(unless ``--chmod`` replaces it), a file's content (sha256), a symlink's target, a
device's numbers; after ``.dockerignore`` and ``--exclude``, through the very matcher
the copy uses (:func:`pykaniko.executor.copy.match_sources`), so the key sees exactly
the files the copy reads. Owners are left out (a context copy is owned by root or by
``--chown``, which is in the instruction text) and so are timestamps: see
:mod:`pykaniko.executor.cache.keys`. Content is hashed with sha256, not the faster
xxh3: with a hash whose collisions can be made, one branch's build could fill the
shared cache with an entry that another branch's different sources then hit.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

from pykaniko.executor.copy import (
    CopyRequest,
    SourceTree,
    match_sources,
    source_path,
    walk_source,
)

__all__ = ["context_digest", "file_digest", "tree_digest"]

_KINDS = (
    (stat.S_ISDIR, "dir"),
    (stat.S_ISREG, "file"),
    (stat.S_ISLNK, "symlink"),
    (stat.S_ISCHR, "char"),
    (stat.S_ISBLK, "block"),
    (stat.S_ISFIFO, "fifo"),
)


def file_digest(path: Path) -> str:
    with open(path, "rb") as f:
        return "sha256:" + hashlib.file_digest(f, "sha256").hexdigest()


def _entry(
    h: hashlib._Hash, rel: str, path: Path, st: os.stat_result, *, chmod: int | None
) -> None:
    kind = next((name for test, name in _KINDS if test(st.st_mode)), "socket")
    payload = ""
    if kind == "file":
        payload = file_digest(path)
    elif kind == "symlink":
        payload = os.readlink(path)
    elif kind in ("char", "block"):
        payload = f"{os.major(st.st_rdev)},{os.minor(st.st_rdev)}"
    mode = None if kind == "symlink" or chmod is not None else stat.S_IMODE(st.st_mode)
    h.update(json.dumps([rel, kind, mode, payload], ensure_ascii=False).encode() + b"\n")


def context_digest(tree: SourceTree, req: CopyRequest) -> str:
    """One digest over every source of a COPY/ADD from the build context (``req``'s
    sources), in the order the copy visits them."""
    h = hashlib.sha256()
    for match in match_sources(tree, req):
        src = source_path(tree, match.rel)
        st = src.stat()  # a symlinked source is copied as what it points to
        _entry(h, match.rel, src, st, chmod=req.chmod)
        h.update(json.dumps(["pivot", match.pivot]).encode() + b"\n")
        if stat.S_ISDIR(st.st_mode):
            for child, child_rel, child_st in walk_source(src, match.rel, match.tree):
                _entry(h, child_rel, child, child_st, chmod=req.chmod)
                if stat.S_ISDIR(child_st.st_mode) and not match.tree.visible(child_rel):
                    # kept only as the parent of re-included files: made 0755
                    h.update(b"made-parent\n")
    return "sha256:" + h.hexdigest()


def tree_digest(path: Path) -> str:
    """A file or a directory as a bind mount shows it (no ignore rules)."""
    h = hashlib.sha256()
    st = path.stat()
    _entry(h, ".", path, st, chmod=None)
    if stat.S_ISDIR(st.st_mode):
        for child, rel, child_st in walk_source(path, "", SourceTree(root=path)):
            _entry(h, rel, child, child_st, chmod=None)
    return "sha256:" + h.hexdigest()
