"""Change sets and the layers written from them: whiteouts, opaque directories,
replacements, hardlinks, special files, xattrs, ignore list, scoped diffs."""

from __future__ import annotations

import io
import os
import shutil
import stat
import struct
import tarfile
from pathlib import Path

import pytest

from pykaniko.snapshot import (
    ChangeSet,
    IgnoreList,
    SnapshotMode,
    Snapshotter,
    build_ignore_list,
    write_layer,
)

CAP = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown, mknod)")


def _snap(root: Path, mode: SnapshotMode = SnapshotMode.STAT, **kw: object) -> Snapshotter:
    ignore = kw.pop("ignore", IgnoreList())
    assert isinstance(ignore, IgnoreList)
    s = Snapshotter(root, mode=mode, ignore=ignore)
    s.take_baseline()
    return s


def _members(cs: ChangeSet, root: Path, **kw: int | None) -> list[tarfile.TarInfo]:
    buf = io.BytesIO()
    n = write_layer(cs, root, buf, **kw)
    buf.seek(0)
    with tarfile.open(fileobj=buf, mode="r:") as tf:
        members = list(tf)
    assert len(members) == n
    return members


def _names(cs: ChangeSet, root: Path) -> list[str]:
    return [m.name for m in _members(cs, root)]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "a/b/c").mkdir(parents=True)
    (r / "a/b/c/f").write_text("f")
    (r / "a/b/g").write_text("g")
    (r / "etc").mkdir()
    (r / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    return r


def test_deleted_subtree_gives_one_whiteout(root: Path) -> None:
    s = _snap(root)
    shutil.rmtree(root / "a/b")
    cs = s.diff()
    assert cs.whiteouts == ("/a/b",)
    assert set(cs.deleted) == {"/a/b", "/a/b/c", "/a/b/c/f", "/a/b/g"}
    assert _names(cs, root) == ["a", "a/.wh.b"]


def test_dir_replaced_by_file_needs_no_whiteouts(root: Path) -> None:
    s = _snap(root)
    shutil.rmtree(root / "a/b")
    (root / "a/b").write_text("now a file")
    cs = s.diff()
    assert not cs.whiteouts
    assert not cs.opaque
    members = _members(cs, root)
    assert [(m.name, m.isfile()) for m in members] == [("a", False), ("a/b", True)]


def test_dir_replaced_by_symlink_needs_no_whiteouts(root: Path) -> None:
    s = _snap(root)
    shutil.rmtree(root / "a/b")
    os.symlink("/etc", root / "a/b")
    cs = s.diff()
    assert not cs.whiteouts
    assert "/a/b" in cs.entries


def test_file_replaced_by_dir(root: Path) -> None:
    s = _snap(root)
    os.unlink(root / "etc/passwd")
    (root / "etc/passwd").mkdir()
    (root / "etc/passwd/x").write_text("x")
    cs = s.diff()
    assert not cs.whiteouts
    assert not cs.opaque
    assert _names(cs, root) == ["etc", "etc/passwd", "etc/passwd/x"]


def test_recreated_dir_is_opaque_and_ordered(root: Path) -> None:
    s = _snap(root)
    shutil.rmtree(root / "a/b")
    (root / "a/b").mkdir()
    (root / "a/b/new").write_text("n")
    os.unlink(root / "etc/passwd")
    cs = s.diff()
    assert cs.opaque == ("/a/b",)
    assert cs.whiteouts == ("/etc/passwd",)
    assert _names(cs, root) == [
        "a",
        "a/b",
        "a/b/.wh..wh..opq",
        "a/b/new",
        "etc",
        "etc/.wh.passwd",
    ]


def test_all_children_replaced_in_place_is_opaque(root: Path) -> None:
    """Same directory inode, every old child gone, new ones present: replace whole."""
    s = _snap(root)
    shutil.rmtree(root / "a/b/c")
    os.unlink(root / "a/b/g")
    (root / "a/b/z").write_text("z")
    cs = s.diff()
    assert cs.opaque == ("/a/b",)
    assert not cs.whiteouts


def test_emptied_dir_gets_whiteouts(root: Path) -> None:
    s = _snap(root)
    os.unlink(root / "etc/passwd")
    cs = s.diff()
    assert cs.whiteouts == ("/etc/passwd",)
    assert not cs.opaque


def test_parents_are_included_as_they_are(root: Path) -> None:
    os.chmod(root / "a/b", 0o700)
    s = _snap(root)
    (root / "a/b/c/new").write_text("n")
    members = {m.name: m for m in _members(s.diff(), root)}
    assert list(members) == ["a", "a/b", "a/b/c", "a/b/c/new"]
    assert members["a/b"].isdir()
    assert members["a/b"].mode == 0o700


def test_hardlinks_grouped_by_inode(root: Path) -> None:
    s = _snap(root, SnapshotMode.REDO)
    (root / "h").mkdir()
    (root / "h/one").write_text("data")
    os.link(root / "h/one", root / "h/two")
    os.link(root / "h/one", root / "h/three")
    os.link(root / "etc/passwd", root / "h/pw")  # first name in a lower layer
    members = {m.name: m for m in _members(s.diff(), root)}
    assert members["h/one"].isfile()
    assert members["h/one"].size == 4
    assert members["h/three"].islnk()
    assert members["h/three"].linkname == "h/one"
    assert members["h/two"].linkname == "h/one"
    # the lower name comes along (overlayfs copy-up) and carries the data
    assert members["etc/passwd"].isfile()
    assert members["h/pw"].islnk()
    assert members["h/pw"].linkname == "etc/passwd"


@needs_root
def test_special_files_and_mode_bits(root: Path) -> None:
    s = _snap(root)
    sp = root / "sp"
    sp.mkdir()
    os.mkfifo(sp / "fifo")
    os.mknod(sp / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(sp / "blk", 0o660 | stat.S_IFBLK, os.makedev(7, 0))
    (sp / "suid").write_text("#!/bin/sh\n")
    os.chmod(sp / "suid", 0o4755)
    (sp / "sgid").mkdir()
    os.chmod(sp / "sgid", 0o2775)
    (sp / "tmp").mkdir()
    os.chmod(sp / "tmp", 0o1777)
    (sp / "owned").write_text("x")
    os.chown(sp / "owned", 1000, 2000)
    members = {m.name: m for m in _members(s.diff(), root)}
    assert members["sp/fifo"].isfifo()
    assert members["sp/null"].ischr()
    assert (members["sp/null"].devmajor, members["sp/null"].devminor) == (1, 3)
    assert members["sp/blk"].isblk()
    assert members["sp/suid"].mode == 0o4755
    assert members["sp/sgid/"[:-1]].mode == 0o2775
    assert members["sp/tmp"].mode == 0o1777
    assert (members["sp/owned"].uid, members["sp/owned"].gid) == (1000, 2000)
    assert all(m.uname == "" and m.gname == "" for m in members.values())


def test_xattrs_carried(root: Path) -> None:
    s = _snap(root)
    f = root / "bin"
    f.write_text("elf")
    os.setxattr(f, "security.capability", CAP)
    os.setxattr(f, "user.a", b"1")
    os.setxattr(f, "trusted.b", b"\xff\x00")
    (m,) = [m for m in _members(s.diff(), root) if m.name == "bin"]
    got = {
        k.removeprefix("SCHILY.xattr."): v.encode("utf-8", "surrogateescape")
        for k, v in m.pax_headers.items()
        if k.startswith("SCHILY.xattr.")
    }
    assert got == {"security.capability": CAP, "user.a": b"1", "trusted.b": b"\xff\x00"}


def test_headers_are_minimal_and_deterministic(root: Path) -> None:
    cs = Snapshotter(root, mode=SnapshotMode.TIME, ignore=IgnoreList()).diff()
    a, b = io.BytesIO(), io.BytesIO()
    write_layer(cs, root, a)
    write_layer(cs, root, b)
    assert a.getvalue() == b.getvalue()
    with tarfile.open(fileobj=io.BytesIO(a.getvalue())) as tf:
        for m in tf:
            assert not m.pax_headers, "no PAX records for short names and small ids"
            assert isinstance(m.mtime, int)


def test_long_names_and_big_ids_use_pax(root: Path) -> None:
    s = _snap(root)
    long = root / ("n" * 150)
    long.write_text("x")
    os.chown(long, 3_000_000, 3_000_000)
    (m,) = [m for m in _members(s.diff(), root) if m.name.startswith("nnn")]
    assert m.name == "n" * 150
    assert (m.uid, m.gid) == (3_000_000, 3_000_000)
    assert set(m.pax_headers) >= {"path", "uid", "gid"}


def test_mtime_clamp(root: Path) -> None:
    cs = Snapshotter(root, mode=SnapshotMode.TIME, ignore=IgnoreList()).diff()
    assert {m.mtime for m in _members(cs, root, mtime_clamp=0)} == {0}
    os.utime(root / "a/b/g", (100, 100))
    clamped = {m.name: m.mtime for m in _members(cs, root, mtime_clamp=1000)}
    assert clamped["a/b/g"] == 100
    assert clamped["etc/passwd"] == 1000


def test_empty_change_set_writes_nothing(root: Path) -> None:
    s = _snap(root)
    cs = s.diff()
    assert cs.is_empty
    sink = io.BytesIO()
    assert write_layer(cs, root, sink) == 0
    assert sink.getvalue() == b""


def test_ignore_list_keeps_runtime_paths_out(tmp_path: Path, root: Path) -> None:
    mountinfo = (
        f"36 35 98:0 /mnt1 {root}/mnt/secret rw,noatime master:1 - ext3 /dev/root rw\n"
        f"37 35 98:0 / {tmp_path}/elsewhere rw - ext3 /dev/root rw\n"
    )
    ignore = build_ignore_list(
        rootfs=root,
        mountinfo=mountinfo,
        extra_paths=["/skip"],
        work_dir=root / "kaniko",
    )
    s = _snap(root, ignore=ignore)
    for p in ("proc/1", "sys/x", "dev/x", "var/run/x", "mnt/secret/x", "skip/x", "kaniko/x"):
        (root / p).parent.mkdir(parents=True, exist_ok=True)
        (root / p).write_text("x")
    for p in ("etc/hosts", "etc/resolv.conf", "etc/hostname", "kept"):
        (root / p).write_text("x")
    cs = s.diff()
    assert set(cs.entries) == {"/etc", "/kept", "/mnt", "/var"}


def test_volume_contents_ignored_after_declaration(root: Path) -> None:
    s = _snap(root, SnapshotMode.TIME)
    (root / "data").mkdir()
    (root / "data/before").write_text("b")
    assert set(s.diff().entries) == {"/data", "/data/before"}
    s.set_ignore(s.ignore.with_volumes(["/data"]))
    (root / "data/after").write_text("a")
    os.unlink(root / "data/before")
    cs = s.diff()
    assert "/data/after" not in cs.entries
    assert not cs.whiteouts, "ignored paths never get whiteouts"


def test_scoped_diff_sees_only_its_paths(root: Path) -> None:
    (root / "a/b/c/keep").write_text("k")
    s = _snap(root)
    (root / "a/b/c/copied").write_text("c")
    os.unlink(root / "a/b/c/f")
    (root / "etc/unrelated").write_text("u")
    cs = s.diff(["/a/b/c/"])
    assert "/a/b/c/copied" in cs.entries
    assert cs.whiteouts == ("/a/b/c/f",)
    assert "/etc/unrelated" not in cs.entries
    assert _names(cs, root)[:3] == ["a", "a/b", "a/b/c"]
    later = s.diff()
    assert later.entries == ("/etc", "/etc/unrelated")
    assert not later.whiteouts


def test_scoped_diff_of_missing_path_is_empty(root: Path) -> None:
    s = _snap(root)
    assert s.diff(["/nope"]).is_empty


def test_base_file_deleted_after_extraction_gives_whiteout(tmp_path: Path, root: Path) -> None:
    """Unlike Kaniko's --use-new-run: the baseline comes from the extracted layer."""
    layer = io.BytesIO()
    write_layer(Snapshotter(root, mode=SnapshotMode.STAT, ignore=IgnoreList()).diff(), root, layer)
    target = tmp_path / "target"
    target.mkdir()
    for mode in SnapshotMode:
        shutil.rmtree(target)
        target.mkdir()
        s = Snapshotter(target, mode=mode, ignore=IgnoreList())
        layer.seek(0)
        s.extract(layer, what="base")
        os.unlink(target / "etc/passwd")
        cs = s.diff()
        assert cs.whiteouts == ("/etc/passwd",), mode
        assert cs.entries == ("/etc",), mode


def test_single_snapshot_collects_a_whole_stage(root: Path) -> None:
    s = _snap(root, SnapshotMode.REDO)
    (root / "x").write_text("1")
    (root / "y").mkdir()
    os.unlink(root / "a/b/g")
    (root / "x").write_text("22")
    cs = s.diff()
    assert cs.entries == ("/a/b", "/x", "/y")
    assert cs.whiteouts == ("/a/b/g",)
    assert cs.added == ("/x", "/y")
    assert cs.modified == ("/a/b",)


def test_clone_diffs_without_moving_the_original(root: Path) -> None:
    s = _snap(root)
    (root / "new").write_text("n")
    assert s.clone().diff().added == ("/new",)
    assert s.diff().added == ("/new",)
    assert s.diff().is_empty


def test_full_mode_rereads_only_when_stat_moves(root: Path) -> None:
    s = _snap(root, SnapshotMode.FULL)
    os.chmod(root / "etc/passwd", 0o600)
    os.chmod(root / "etc/passwd", 0o644)  # ctime moved, nothing else did
    assert s.diff().is_empty
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/bash")
    assert s.diff().modified == ("/etc/passwd",)


def test_deletions_and_type_changes_in_one_walk(root: Path) -> None:
    s = _snap(root, SnapshotMode.TIME)
    shutil.rmtree(root / "a/b/c")
    os.unlink(root / "etc/passwd")
    (root / "etc").rmdir()
    (root / "etc").write_text("now a file")
    cs = s.diff()
    assert cs.whiteouts == ("/a/b/c",)
    assert set(cs.deleted) == {"/a/b/c", "/a/b/c/f", "/etc/passwd"}
    assert "/etc" in cs.modified
    (root / "etc").unlink()
    (root / "etc").mkdir()
    (root / "etc/passwd").write_text("back")
    cs = s.diff()
    assert cs.added == ("/etc/passwd",)
    assert not cs.whiteouts
    assert not cs.opaque


@pytest.mark.parametrize("mode", list(SnapshotMode))
def test_deletion_behind_a_restored_dir_mtime(root: Path, mode: SnapshotMode) -> None:
    """The directory looks untouched (mtime put back): the fallback walk still finds it."""
    s = _snap(root, mode)
    st = (root / "a/b/c").stat()
    os.unlink(root / "a/b/c/f")
    (root / "a/b/c/other").write_text("o")
    os.utime(root / "a/b/c", ns=(st.st_atime_ns, st.st_mtime_ns))
    cs = s.diff()
    assert "/a/b/c/f" in cs.deleted
    assert cs.opaque == ("/a/b/c",), "every old child gone, a new one there"


def test_paths_ignored_later_leave_quietly(root: Path) -> None:
    s = _snap(root)
    s.set_ignore(s.ignore.with_paths(["/a/b"]))
    shutil.rmtree(root / "a/b")
    cs = s.diff()
    assert cs.entries == ("/a",), "the parent changed; nothing below it is reported"
    assert not cs.whiteouts
    assert s.diff().is_empty


def test_scoped_diff_of_replaced_and_vanished_paths(root: Path) -> None:
    s = _snap(root)
    shutil.rmtree(root / "a/b/c")
    (root / "a/b/c").write_text("file now")
    os.unlink(root / "a/b/g")
    cs = s.diff(["/a/b/c", "/a/b/g"])
    assert "/a/b/c" in cs.entries
    assert cs.whiteouts == ("/a/b/g",)
    assert "/a/b/c/f" in cs.deleted
    assert s.diff().is_empty
