"""A snapshot of ``/`` itself (in-place builds): the root's path string is ``""``.

Read-only: the real ``/`` is only listed, with every top-level entry but ``/etc``
ignored, and nothing is ever written.
"""

from __future__ import annotations

import os

from pykaniko.snapshot import IgnoreList, SnapshotMode
from pykaniko.snapshot.modes import quick_key
from pykaniko.snapshot.walk import walk


def test_walk_of_the_real_root_lists_it() -> None:
    others = [f"/{name}" for name in os.listdir("/") if name != "etc"]
    ignore = IgnoreList.of(exact=others)
    tree, dirs = walk("", quick_key(SnapshotMode.TIME), ignore)
    assert set(tree[""]) == {"etc"}
    assert "/etc" in dirs
    top = {e.name for e in os.scandir("/etc")}
    assert set(tree["/etc"]) == top
