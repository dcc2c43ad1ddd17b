"""The safe extractor: layer semantics, and a malicious corpus that must leave the host
untouched (a sentinel directory next to the root is checked after every case)."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from pykaniko.errors import ImageError, UnsafeLayerError
from pykaniko.image.layerfile import LayerWriter, open_uncompressed
from pykaniko.snapshot import (
    ExtractReport,
    IgnoreList,
    SnapshotMode,
    Snapshotter,
    build_ignore_list,
    extract_layer,
)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown, mknod)")

Entry = tuple[str, str, dict[str, object]]  # (kind, name, fields)


def _tar(*entries: Entry) -> io.BytesIO:
    """A layer from (kind, name, fields); kind: file dir sym link fifo chr wh."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for kind, name, fields in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_000_000
            info.mode = 0o644
            data = b""
            if kind == "file":
                data = bytes(str(fields.get("data", "x")), "utf-8")
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
            elif kind == "sym":
                info.type = tarfile.SYMTYPE
            elif kind == "link":
                info.type = tarfile.LNKTYPE
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
            elif kind == "chr":
                info.type = tarfile.CHRTYPE
            for k, v in fields.items():
                if k != "data":
                    setattr(info, k, v)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def _extract(root: Path, layer: io.BytesIO, ignore: IgnoreList | None = None) -> ExtractReport:
    return extract_layer(layer, root, ignore=ignore or IgnoreList(), what="test").report


def _state(path: Path) -> list[tuple[str, int, int, bytes]]:
    out = []
    for dirpath, dirnames, filenames in os.walk(path):
        for n in sorted(dirnames + filenames):
            p = Path(dirpath, n)
            st = p.lstat()
            data = p.read_bytes() if stat.S_ISREG(st.st_mode) else b""
            out.append((str(p), st.st_mode, st.st_nlink, data))
    return sorted(out)


@pytest.fixture
def host(tmp_path: Path) -> tuple[Path, Path]:
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    (sentinel / "keep").write_text("safe")
    (sentinel / "dir").mkdir()
    (sentinel / "dir/inner").write_text("inner")
    root = tmp_path / "root"
    root.mkdir()
    return root, sentinel


def _cases(sentinel: Path) -> dict[str, tuple[list[Entry], bool]]:
    """name -> (entries, refused)."""
    s = str(sentinel)
    rel_out = "../sentinel"
    return {
        "dotdot": ([("file", "../sentinel/keep", {"data": "pwned"})], True),
        "dotdot-inside": ([("file", "a/../../sentinel/x", {})], True),
        "absolute-name": ([("file", f"{s}/keep", {"data": "pwned"})], False),
        "symlink-out-then-write": (
            [("sym", "out", {"linkname": rel_out}), ("file", "out/pwned", {})],
            False,
        ),
        "deep-relative-symlink": (
            [("sym", "out", {"linkname": "../../../../../../../.." + s}), ("file", "out/p", {})],
            False,
        ),
        "absolute-symlink-then-write": (
            [("sym", "abs", {"linkname": s}), ("file", "abs/keep", {"data": "pwned"})],
            False,
        ),
        "symlink-then-dir-entry": (
            [("sym", "d", {"linkname": s}), ("dir", "d", {"mode": 0o777})],
            False,
        ),
        "symlink-then-file-entry": (
            [("sym", "f", {"linkname": f"{s}/keep"}), ("file", "f", {"data": "pwned"})],
            False,
        ),
        "symlink-loop": (
            [("sym", "a", {"linkname": "b"}), ("sym", "b", {"linkname": "a"}), ("file", "a/x", {})],
            True,
        ),
        "hardlink-absolute": ([("link", "pw", {"linkname": "/etc/passwd"})], True),
        "hardlink-dotdot": ([("link", "k", {"linkname": "../sentinel/keep"})], True),
        "hardlink-through-symlink": (
            [("sym", "s", {"linkname": s}), ("link", "k", {"linkname": "s/keep"})],
            False,
        ),
        "whiteout-through-symlink": (
            [("sym", "s", {"linkname": s}), ("file", "s/.wh.keep", {})],
            False,
        ),
        "opaque-through-symlink": (
            [("sym", "s", {"linkname": s}), ("file", "s/.wh..wh..opq", {})],
            False,
        ),
        "whiteout-of-dotdot": ([("file", "a/.wh...", {})], True),
        "whiteout-of-dot": ([("file", ".wh..", {})], True),
        "whiteout-dotdot-path": ([("file", "../.wh.sentinel", {})], True),
        "device-then-file": (
            [("chr", "mem", {"devmajor": 1, "devminor": 1}), ("file", "mem", {"data": "x"})],
            False,
        ),
        "device-in-ignored-dev": ([("chr", "dev/kmsg", {"devmajor": 1, "devminor": 11})], False),
        "huge-uid": ([("file", "u", {"uid": 2**40})], True),
        "uid-minus-one": ([("file", "u", {"uid": 2**32 - 1})], True),
    }


CASE_NAMES = list(_cases(Path("/x")))


@pytest.mark.parametrize("case", CASE_NAMES)
def test_malicious_layer_cannot_touch_host(host: tuple[Path, Path], case: str) -> None:
    root, sentinel = host
    entries, refused = _cases(sentinel)[case]
    before = _state(sentinel)
    top_before = sorted(os.listdir(root.parent))
    layer = _tar(*entries)
    ignore = build_ignore_list(rootfs=root)
    if refused:
        with pytest.raises(UnsafeLayerError):
            _extract(root, layer, ignore)
    else:
        _extract(root, layer, ignore)
    assert _state(sentinel) == before
    assert sorted(os.listdir(root.parent)) == top_before
    assert Path("/etc/passwd").stat().st_nlink == 1


def test_contained_writes_land_inside_root(host: tuple[Path, Path]) -> None:
    root, sentinel = host
    layer = _tar(
        ("sym", "abs", {"linkname": str(sentinel)}),
        ("file", "abs/new", {"data": "in"}),
        ("file", "/top", {"data": "t"}),
    )
    report = _extract(root, layer)
    assert (root / str(sentinel).lstrip("/") / "new").read_text() == "in"
    assert (root / "top").read_text() == "t"
    assert any("absolute name" in w for w in report.warnings)


def test_whiteouts_and_opaque_apply_to_lower_layers(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    _extract(
        root,
        _tar(
            ("dir", "d", {}),
            ("file", "d/old1", {}),
            ("dir", "d/sub", {}),
            ("file", "d/sub/x", {}),
            ("file", "gone", {}),
            ("dir", "tree", {}),
            ("file", "tree/leaf", {}),
        ),
    )
    report = _extract(
        root,
        _tar(
            ("dir", "d", {}),
            ("file", "d/new", {}),  # before the marker: must survive it
            ("file", "d/.wh..wh..opq", {}),
            ("file", ".wh.gone", {}),
            ("file", ".wh.tree", {}),
            ("file", ".wh.never-existed", {}),
        ),
    )
    assert sorted(os.listdir(root)) == ["d"]
    assert sorted(os.listdir(root / "d")) == ["new"]
    assert report.whiteouts == 4
    assert not any(".wh." in n for _, _, files in os.walk(root) for n in files)


def test_replacements(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    _extract(
        root,
        _tar(
            ("dir", "was-dir", {}),
            ("file", "was-dir/x", {}),
            ("file", "was-file", {}),
            ("dir", "kept", {"mode": 0o700}),
            ("file", "kept/child", {}),
            ("sym", "was-link", {"linkname": "kept"}),
        ),
    )
    _extract(
        root,
        _tar(
            ("file", "was-dir", {"data": "now file"}),
            ("dir", "was-file", {}),
            ("dir", "kept", {"mode": 0o751}),
            ("dir", "was-link", {}),
        ),
    )
    assert (root / "was-dir").read_text() == "now file"
    assert (root / "was-file").is_dir()
    assert (root / "kept/child").exists(), "a directory entry keeps existing contents"
    assert stat.S_IMODE((root / "kept").stat().st_mode) == 0o751
    assert (root / "was-link").is_dir()
    assert not (root / "was-link").is_symlink()


@needs_root
def test_metadata_restored(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    cap = (0x02000001).to_bytes(4, "little") + (1 << 10).to_bytes(4, "little") + bytes(12)
    layer = _tar(
        ("dir", "bin", {"mtime": 5000, "mode": 0o711}),
        (
            "file",
            "bin/suid",
            {
                "uid": 1000,
                "gid": 1000,
                "mode": 0o4755,
                "pax_headers": {
                    "SCHILY.xattr.security.capability": cap.decode("utf-8", "surrogateescape"),
                    "SCHILY.xattr.user.k": "v",
                    "SCHILY.xattr.security.selinux": "nope",
                },
            },
        ),
        ("link", "bin/hard", {"linkname": "bin/suid"}),
        ("sym", "bin/sym", {"linkname": "/bin/suid", "uid": 7, "mtime": 4000}),
        ("fifo", "bin/fifo", {"mode": 0o600}),
        ("chr", "bin/null", {"devmajor": 1, "devminor": 3, "mode": 0o666}),
    )
    report = _extract(root, layer)
    st = (root / "bin/suid").lstat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1000, 0o4755)
    assert os.getxattr(root / "bin/suid", "security.capability") == cap
    assert os.getxattr(root / "bin/suid", "user.k") == b"v"
    assert any("security.selinux" in w for w in report.warnings)
    assert st.st_nlink == 2
    assert (root / "bin/hard").lstat().st_ino == st.st_ino
    sym = (root / "bin/sym").lstat()
    assert os.readlink(root / "bin/sym") == "/bin/suid"
    assert (sym.st_uid, int(sym.st_mtime)) == (7, 4000)
    assert stat.S_ISFIFO((root / "bin/fifo").lstat().st_mode)
    assert (root / "bin/null").lstat().st_rdev == os.makedev(1, 3)
    d = (root / "bin").lstat()
    assert (int(d.st_mtime), stat.S_IMODE(d.st_mode)) == (5000, 0o711), "dir mtime set last"


def test_ignored_entries_and_whiteouts_skipped(tmp_path: Path) -> None:
    root = tmp_path / "r"
    (root / "proc").mkdir(parents=True)
    (root / "proc/keep").write_text("k")
    ignore = build_ignore_list(rootfs=root)
    report = _extract(
        root,
        _tar(("file", "proc/new", {}), ("file", "proc/.wh.keep", {}), ("file", "etc/hosts", {})),
        ignore,
    )
    assert sorted(os.listdir(root / "proc")) == ["keep"]
    assert not (root / "etc/hosts").exists()
    assert report.skipped == 3


def _gz_layer(tmp_path: Path, layer: io.BytesIO) -> tuple[Path, str]:
    path = tmp_path / "layer.tar.gz"
    with LayerWriter(path, compression="gzip", threads=1) as w:
        w.write(layer.getvalue())
    return path, w.close().digest


def test_digest_checked_because_stream_is_drained(tmp_path: Path) -> None:
    path, digest = _gz_layer(tmp_path, _tar(("file", "a", {})))
    root = tmp_path / "r"
    root.mkdir()
    snap = Snapshotter(root, mode=SnapshotMode.FULL, ignore=IgnoreList())
    with open_uncompressed(path, digest=digest) as stream:
        snap.extract(stream, what="ok")
    bad = "sha256:" + "0" * 64
    with open_uncompressed(path, digest=bad) as stream, pytest.raises(ImageError):
        snap.extract(stream, what="bad")


@pytest.mark.parametrize(
    "mutate",
    [lambda b: b[:700], lambda b: b"garbage" * 100],
    ids=["truncated", "garbage"],
)
def test_broken_streams_raise_snapshot_errors(
    tmp_path: Path, mutate: Callable[[bytes], bytes]
) -> None:
    from pykaniko.errors import SnapshotError

    data = mutate(_tar(("file", "a", {"data": "x" * 2000})).getvalue())
    with pytest.raises(SnapshotError):
        _extract(tmp_path, io.BytesIO(data))


def test_full_baseline_hash_follows_the_last_entry_at_a_path(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    snap = Snapshotter(root, mode=SnapshotMode.FULL, ignore=IgnoreList())
    snap.extract(_tar(("file", "other", {"data": "zzz"})), what="lower")
    snap.extract(
        _tar(("file", "f", {"data": "first"}), ("link", "f", {"linkname": "other"})),
        what="upper",
    )
    assert (root / "f").read_text() == "zzz"
    os.chmod(root / "f", 0o600)
    os.chmod(root / "f", 0o644)  # the stat tuple moves: content is hashed again
    assert snap.diff().is_empty
