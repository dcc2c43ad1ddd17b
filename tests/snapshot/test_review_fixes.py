"""Regressions found in review: scoped diffs never walk through a symlink to the host,
extracted hardlinks do not make ``stat`` see unchanged files, an opaque guess never
hides ignored paths, and sparse members do not fill the disk."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from pykaniko.snapshot import IgnoreList, SnapshotMode, Snapshotter, extract_layer


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    buf.seek(0)
    return buf


def _entry(
    name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", link: str = ""
) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.linkname = link
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        return info, data
    return info, None


def test_scoped_diff_never_follows_a_parent_symlink(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "opt").mkdir(parents=True)
    os.symlink("/", root / "opt" / "link")  # inside the image: the image's own root
    snap = Snapshotter(root, mode=SnapshotMode.STAT, ignore=IgnoreList.of())
    snap.take_baseline()
    changes = snap.diff(["/opt/link/etc", "/opt/link/etc/passwd"])
    assert not any(p.startswith("/opt/link/") for p in changes.entries), changes.entries


@pytest.mark.parametrize("mode", list(SnapshotMode))
def test_extracted_hardlinks_leave_no_phantom_changes(tmp_path: Path, mode: SnapshotMode) -> None:
    root = tmp_path / "root"
    root.mkdir()
    snap = Snapshotter(root, mode=mode, ignore=IgnoreList.of())
    layers = [
        [_entry("usr", tarfile.DIRTYPE), _entry("usr/a", data=b"a"), _entry("usr/c", data=b"c")],
        [_entry("usr/b", tarfile.LNKTYPE, link="usr/a")],
        [_entry("usr/e", tarfile.LNKTYPE, link="usr/c")],
        [_entry("usr/.wh.e")],
    ]
    for layer in layers:
        snap.extract(_tar(layer), what="layer")
    snap.settle()
    assert snap.diff().is_empty
    (root / "usr" / "new").write_text("a change after settling is still seen")
    assert "/usr/new" in snap.diff().entries


def test_opaque_guess_keeps_ignored_children(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "var" / "lib" / "x").mkdir(parents=True)
    os.symlink("/run", root / "var" / "run")
    ignore = IgnoreList.of(exact=["/var/run"])
    snap = Snapshotter(root, mode=SnapshotMode.STAT, ignore=ignore)
    snap.take_baseline()
    (root / "var" / "lib" / "x").rmdir()
    (root / "var" / "lib").rmdir()
    (root / "var" / "cache").mkdir()
    changes = snap.diff()
    assert "/var" not in changes.opaque
    assert changes.whiteouts == ("/var/lib",)


def test_sparse_members_keep_their_holes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "big", "wb") as f:
        f.truncate(1 << 30)
        f.seek(4096)
        f.write(b"hello")
        f.seek((1 << 30) - 4)
        f.write(b"tail")
    archive = tmp_path / "sparse.tar"
    subprocess.run(["tar", "--sparse", "-C", str(src), "-cf", str(archive), "big"], check=True)
    root = tmp_path / "root"
    root.mkdir()
    with open(archive, "rb") as stream:
        extract_layer(stream, root, ignore=IgnoreList.of())
    st = os.stat(root / "big")
    assert st.st_size == 1 << 30
    assert st.st_blocks * 512 < 1 << 20
    with open(root / "big", "rb") as f:
        f.seek(4096)
        assert f.read(5) == b"hello"
