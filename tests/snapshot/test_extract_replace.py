"""A later layer entry for an existing path replaces it, as containerd and umoci apply
layers: one test per transition, in the same layer and across two layers, plus the
snapshotter's baseline after each (no phantom change, the whiteout when it goes)."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from pykaniko.errors import SnapshotError
from pykaniko.snapshot import IgnoreList, SnapshotMode, Snapshotter, extract_layer

Entry = tuple[str, str, str]  # (kind, name, data or link target)


def _tar(*entries: Entry, mode: int | None = None) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for kind, name, extra in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1_700_000_000
            ti.mode = 0o644
            data = b""
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755 if mode is None else mode
            elif kind == "file":
                data = extra.encode()
            elif kind == "sym":
                ti.type, ti.linkname = tarfile.SYMTYPE, extra
            elif kind == "link":
                ti.type, ti.linkname = tarfile.LNKTYPE, extra
            elif kind == "fifo":
                ti.type = tarfile.FIFOTYPE
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    buf.seek(0)
    return buf


# What the path was: its entries (the lower side of a transition). Every variant has
# /other (a hardlink target) and /keep (a directory a symlink may point at).
_COMMON: list[Entry] = [
    ("file", "other", "other data"),
    ("dir", "keep", ""),
    ("file", "keep/k", "k"),
]
_WAS: dict[str, list[Entry]] = {
    "dir": [
        ("dir", "p", ""),
        ("file", "p/child", "c"),
        ("dir", "p/sub", ""),
        ("file", "p/sub/x", "x"),
    ],
    "file": [("file", "p", "old file")],
    "symlink": [("sym", "p", "keep")],
    "hardlink": [("file", "p", "shared"), ("link", "peer", "p")],
    "fifo": [("fifo", "p", "")],
}
# What replaces it, and how to check the result.
_NOW: dict[str, tuple[list[Entry], Callable[[Path], None]]] = {}


def _is_file(data: str) -> Callable[[Path], None]:
    def check(p: Path) -> None:
        st = p.lstat()
        assert stat.S_ISREG(st.st_mode), oct(st.st_mode)
        assert p.read_text() == data

    return check


def _is_dir(p: Path) -> None:
    assert stat.S_ISDIR(p.lstat().st_mode)
    assert sorted(os.listdir(p)) == ["new"]


def _is_symlink(p: Path) -> None:
    assert stat.S_ISLNK(p.lstat().st_mode)
    assert os.readlink(p) == "other"


def _is_hardlink(p: Path) -> None:
    _is_file("other data")(p)
    assert p.lstat().st_ino == (p.parent / "other").lstat().st_ino


def _is_fifo(p: Path) -> None:
    assert stat.S_ISFIFO(p.lstat().st_mode)


_NOW = {
    "file": ([("file", "p", "new file")], _is_file("new file")),
    "dir": ([("dir", "p", ""), ("file", "p/new", "n")], _is_dir),
    "symlink": ([("sym", "p", "other")], _is_symlink),
    "hardlink": ([("link", "p", "other")], _is_hardlink),
    "fifo": ([("fifo", "p", "")], _is_fifo),
}

TRANSITIONS = [(a, b) for a in _WAS for b in _NOW if not (a == b == "dir")]


def _untouched_neighbours(root: Path, was: str, now: str) -> None:
    assert (root / "other").read_text() == "other data"
    assert sorted(os.listdir(root / "keep")) == ["k"], "nothing written through a symlink"
    if was == "hardlink":
        assert (root / "peer").read_text() == "shared", "the other name keeps its data"
        assert (root / "peer").lstat().st_nlink == 1


def _apply(root: Path, layers: list[list[Entry]], mode: SnapshotMode) -> Snapshotter:
    snap = Snapshotter(root, mode=mode, ignore=IgnoreList())
    for i, entries in enumerate(layers):
        snap.extract(_tar(*entries), what=f"layer {i}")
    snap.settle()
    return snap


@pytest.mark.parametrize("layout", ["one-layer", "two-layers"])
@pytest.mark.parametrize(("was", "now"), TRANSITIONS, ids=[f"{a}-to-{b}" for a, b in TRANSITIONS])
def test_transition(tmp_path: Path, was: str, now: str, layout: str) -> None:
    lower = _COMMON + _WAS[was]
    upper, check = _NOW[now]
    layers = [lower + upper] if layout == "one-layer" else [lower, list(upper)]
    for mode in SnapshotMode:
        root = tmp_path / mode.value
        root.mkdir()
        snap = _apply(root, layers, mode)
        check(root / "p")
        _untouched_neighbours(root, was, now)
        assert snap.diff().is_empty, f"{mode.value}: a phantom change after extraction"
        # the baseline knows the new path: removing it is one whiteout, nothing more
        if stat.S_ISDIR((root / "p").lstat().st_mode):
            for n in os.listdir(root / "p"):
                os.unlink(root / "p" / n)
            os.rmdir(root / "p")
        else:
            os.unlink(root / "p")
        changes = snap.diff()
        assert changes.whiteouts == ("/p",), (mode.value, changes)
        if now == "hardlink" and mode is SnapshotMode.STAT:
            # the other name's ctime moved with its link count: stat sees the inode change
            assert set(changes.entries) <= {"/other"}, changes
        else:
            assert changes.entries == (), (mode.value, changes)


def test_directory_over_directory_merges(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    snap = Snapshotter(root, mode=SnapshotMode.STAT, ignore=IgnoreList())
    snap.extract(_tar(("dir", "p", ""), ("file", "p/old", "o"), mode=0o700), what="lower")
    snap.extract(_tar(("dir", "p", ""), ("file", "p/new", "n"), mode=0o751), what="upper")
    snap.settle()
    assert sorted(os.listdir(root / "p")) == ["new", "old"]
    st = (root / "p").lstat()
    assert stat.S_IMODE(st.st_mode) == 0o751
    assert int(st.st_mtime) == 1_700_000_000, "the merged directory takes the new mtime"
    assert snap.diff().is_empty
    os.unlink(root / "p/old")
    assert snap.diff().whiteouts == ("/p/old",)


def test_issue_case_dir_then_file_then_hardlink(tmp_path: Path) -> None:
    """The base layer of issue 11: one path named three times, the last entry wins."""
    layer = [
        ("file", "other", "other data"),
        ("dir", "dup2", ""),
        ("file", "dup2/child", "c"),
        ("file", "dup2", "f"),
        ("link", "dup2", "other"),
    ]
    for mode in SnapshotMode:
        root = tmp_path / mode.value
        root.mkdir()
        snap = _apply(root, [layer], mode)
        _is_hardlink(root / "dup2")
        assert snap.diff().is_empty
        (root / "new").write_text("n")
        assert snap.diff().entries == ("/new",)


def test_replaced_directory_leaves_no_stale_mtime(tmp_path: Path) -> None:
    """A directory entry's mtime is set at the end of the layer: when a later entry
    replaced the directory, the replacement keeps its own mtime."""
    root = tmp_path / "r"
    root.mkdir()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        d = tarfile.TarInfo("p")
        d.type, d.mtime = tarfile.DIRTYPE, 1000
        tf.addfile(d)
        for kind in (tarfile.SYMTYPE, tarfile.REGTYPE):
            f = tarfile.TarInfo("p")
            f.type, f.mtime, f.linkname = kind, 1_700_000_000, "x"
            tf.addfile(f, io.BytesIO(b""))
    buf.seek(0)
    extract_layer(buf, root, ignore=IgnoreList())
    assert int((root / "p").lstat().st_mtime) == 1_700_000_000


def test_hardlink_whose_target_goes_with_the_replaced_directory(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    report = extract_layer(
        _tar(("dir", "p", ""), ("file", "p/x", "x"), ("link", "p", "p/x")),
        root,
        ignore=IgnoreList(),
    ).report
    assert (root / "p/x").read_text() == "x", "the entry is skipped, the tree kept"
    assert any("goes with the path it replaces" in w for w in report.warnings)


def test_entry_below_a_file_is_refused_cleanly(tmp_path: Path) -> None:
    """containerd and umoci refuse this too: a parent that is a file."""
    root = tmp_path / "r"
    root.mkdir()
    with pytest.raises(SnapshotError, match="not a directory"):
        extract_layer(_tar(("file", "f", "x"), ("file", "f/below", "y")), root, ignore=IgnoreList())


def test_other_names_of_an_overwritten_hardlink_do_not_look_changed(tmp_path: Path) -> None:
    """Overwriting one name of a lower hardlink group moves the other names' ctime:
    the ``stat`` baseline reads them again instead of reporting them."""
    root = tmp_path / "r"
    root.mkdir()
    snap = Snapshotter(root, mode=SnapshotMode.STAT, ignore=IgnoreList())
    snap.extract(_tar(("file", "a", "shared"), ("link", "b", "a")), what="lower")
    snap.extract(_tar(("file", "a", "new")), what="upper")
    snap.settle()
    assert (root / "b").read_text() == "shared"
    assert snap.diff().is_empty
