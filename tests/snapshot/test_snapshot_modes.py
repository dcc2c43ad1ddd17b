"""Change-detection torture suite: which mode sees which change, on a real filesystem.

Each scenario builds a tiny tree, takes a baseline (a walk, or the extraction of a
layer made from the tree), makes one change and asks whether the next layer carries it.
The expected table is the one in ``pykaniko.snapshot``'s docstring.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pykaniko.snapshot import (
    ChangeSet,
    IgnoreList,
    SnapshotMode,
    Snapshotter,
    write_layer,
)

FULL, REDO, TIME, STAT = SnapshotMode.FULL, SnapshotMode.REDO, SnapshotMode.TIME, SnapshotMode.STAT
ALL = frozenset(SnapshotMode)
T0 = 1_600_000_000 * 10**9  # a fixed mtime (whole seconds, as tar keeps them)
CAP_NET_BIND = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)


def _base(root: Path) -> None:
    (root / "d").mkdir()
    (root / "d/f").write_bytes(b"abc")
    (root / "d/g").write_bytes(b"xyz")
    (root / "d/sub").mkdir()
    (root / "d/sub/child").write_bytes(b"c")
    os.symlink("aaaa", root / "d/l")
    for p in ("d/f", "d/g", "d/sub/child", "d/sub", "d"):
        os.utime(root / p, ns=(T0, T0))
    os.utime(root / "d/l", ns=(T0, T0), follow_symlinks=False)


def _rewrite_same_size_same_mtime(root: Path) -> None:
    (root / "d/f").write_bytes(b"ABC")
    os.utime(root / "d/f", ns=(T0, T0))


def _rewrite_moves_mtime(root: Path) -> None:
    (root / "d/f").write_bytes(b"longer content")
    os.utime(root / "d/f", ns=(T0 + 10**9, T0 + 10**9))


def _touch_d(root: Path) -> None:
    subprocess.run(["touch", "-d", "2001-01-01 00:00:00", str(root / "d/f")], check=True)


def _cp_p(root: Path) -> None:
    subprocess.run(["cp", "-p", str(root / "d/g"), str(root / "d/f")], check=True)


def _chmod(root: Path) -> None:
    os.chmod(root / "d/f", 0o600)


def _chown(root: Path) -> None:
    os.chown(root / "d/f", 1234, 4321)


def _xattr_cap(root: Path) -> None:
    os.setxattr(root / "d/f", "security.capability", CAP_NET_BIND)


def _xattr_user(root: Path) -> None:
    os.setxattr(root / "d/f", "user.note", b"hello")


def _hardlink(root: Path) -> None:
    os.link(root / "d/f", root / "d/h")


def _symlink_retarget(root: Path) -> None:
    os.unlink(root / "d/l")
    os.symlink("bbbb", root / "d/l")
    os.utime(root / "d/l", ns=(T0, T0), follow_symlinks=False)


def _delete(root: Path) -> None:
    os.unlink(root / "d/f")


def _dir_replaced(root: Path) -> None:
    shutil.rmtree(root / "d/sub")
    (root / "d/sub").mkdir()
    (root / "d/sub/other").write_bytes(b"o")


@dataclass(frozen=True)
class Scenario:
    name: str
    change: Callable[[Path], None]
    caught_by: frozenset[SnapshotMode]
    seen: Callable[[ChangeSet], bool]


def _entry(path: str) -> Callable[[ChangeSet], bool]:
    return lambda cs: path in cs.entries


SCENARIOS = [
    Scenario(
        "rewrite-same-size-same-mtime",
        _rewrite_same_size_same_mtime,
        frozenset({STAT, FULL}),
        _entry("/d/f"),
    ),
    Scenario("rewrite-moves-mtime", _rewrite_moves_mtime, ALL, _entry("/d/f")),
    Scenario("touch-d", _touch_d, ALL, _entry("/d/f")),
    Scenario("cp-p-same-size", _cp_p, frozenset({STAT, FULL}), _entry("/d/f")),
    Scenario("chmod", _chmod, frozenset({REDO, STAT, FULL}), _entry("/d/f")),
    Scenario("chown", _chown, frozenset({REDO, STAT, FULL}), _entry("/d/f")),
    Scenario("xattr-capability", _xattr_cap, frozenset({STAT, FULL}), _entry("/d/f")),
    Scenario("xattr-user", _xattr_user, frozenset({STAT}), _entry("/d/f")),
    Scenario("hardlink-new-name", _hardlink, ALL, _entry("/d/h")),
    # overlayfs copy-up: a new link to a lower file brings its first name along
    Scenario("hardlink-first-name", _hardlink, ALL, _entry("/d/f")),
    Scenario(
        "symlink-retarget-mtime-kept", _symlink_retarget, frozenset({STAT, FULL}), _entry("/d/l")
    ),
    Scenario("delete", _delete, ALL, lambda cs: cs.whiteouts == ("/d/f",)),
    Scenario(
        "dir-replaced",
        _dir_replaced,
        ALL,
        lambda cs: cs.opaque == ("/d/sub",) and "/d/sub/other" in cs.entries and not cs.whiteouts,
    ),
]

CASES = [
    pytest.param(s, m, id=f"{s.name}-{m.value}-{'caught' if m in s.caught_by else 'missed'}")
    for s in SCENARIOS
    for m in SnapshotMode
]


def _snapshotter(tmp_path: Path, mode: SnapshotMode, baseline: str) -> tuple[Snapshotter, Path]:
    src = tmp_path / "src"
    src.mkdir()
    _base(src)
    if baseline == "walk":
        snap = Snapshotter(src, mode=mode, ignore=IgnoreList())
        snap.take_baseline()
        return snap, src
    layer = io.BytesIO()
    write_layer(Snapshotter(src, mode=mode, ignore=IgnoreList()).diff(), src, layer)
    root = tmp_path / "root"
    root.mkdir()
    snap = Snapshotter(root, mode=mode, ignore=IgnoreList())
    layer.seek(0)
    snap.extract(layer, what="base")
    return snap, root


@pytest.mark.parametrize("baseline", ["walk", "extract"])
@pytest.mark.parametrize(("scenario", "mode"), CASES)
def test_mode_matrix(tmp_path: Path, scenario: Scenario, mode: SnapshotMode, baseline: str) -> None:
    snap, root = _snapshotter(tmp_path, mode, baseline)
    assert snap.diff().is_empty, "an untouched tree must give no layer"
    scenario.change(root)
    cs = snap.diff()
    assert scenario.seen(cs) is (mode in scenario.caught_by), cs
    assert snap.diff().is_empty, "diff advances the baseline"


@pytest.mark.parametrize("mode", list(SnapshotMode))
def test_untouched_extracted_tree_gives_no_layer(tmp_path: Path, mode: SnapshotMode) -> None:
    snap, _ = _snapshotter(tmp_path, mode, "extract")
    cs = snap.diff()
    assert cs.is_empty, cs
    assert write_layer(cs, snap.root, io.BytesIO()) == 0


def test_parse_mode() -> None:
    assert SnapshotMode.parse("Redo") is REDO
    assert SnapshotMode.parse("stat") is STAT
    from pykaniko.errors import ConfigError

    with pytest.raises(ConfigError):
        SnapshotMode.parse("fast")
