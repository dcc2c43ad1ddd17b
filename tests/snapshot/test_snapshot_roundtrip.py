"""Round trip: tree -> write_layer -> compressed blob -> extract -> the same tree, and the
same layer bytes when written again from the copy. Plus flat memory on a big file."""

from __future__ import annotations

import os
import resource
import stat
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import xxhash

from pykaniko.image.layerfile import LayerWriter, open_uncompressed
from pykaniko.snapshot import IgnoreList, SnapshotMode, Snapshotter, write_layer

CAP = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)
is_root = os.geteuid() == 0


def _build(root: Path) -> None:
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/tool").write_bytes(b"\x7fELF" + bytes(3000))
    os.chmod(root / "usr/bin/tool", 0o4755)
    os.setxattr(root / "usr/bin/tool", "security.capability", CAP)
    os.setxattr(root / "usr/bin/tool", "user.origin", b"test")
    os.link(root / "usr/bin/tool", root / "usr/bin/tool-alias")
    os.symlink("tool", root / "usr/bin/rel")
    os.symlink("/usr/bin/tool", root / "usr/bin/abs")
    os.symlink("/nowhere", root / "usr/bin/dangling")
    (root / "tmp").mkdir()
    os.chmod(root / "tmp", 0o1777)
    (root / "home/user").mkdir(parents=True)
    (root / "home/user/.profile").write_text("export A=1\n")
    (root / "home/user/empty").write_bytes(b"")
    os.chmod(root / "home/user", 0o700)
    (root / "name with spaces é").write_text("unicode")
    (root / ("deep/" * 30)).mkdir(parents=True)
    (root / ("deep/" * 30) / "leaf").write_text("leaf")
    os.mkfifo(root / "fifo")
    os.symlink("t" * 150, root / "long-target")
    with open(os.path.join(os.fsencode(root), b"bad-\xff-name"), "wb") as f:
        f.write(b"not utf-8")
    if is_root:
        os.chown(root / "home/user", 1000, 1000)
        os.chown(root / "home/user/.profile", 1000, 1000)
        os.chown(root / "usr/bin/rel", 5, 6, follow_symlinks=False)
        os.mknod(root / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        (root / "srv").mkdir()
        os.chmod(root / "srv", 0o2775)
        os.chown(root / "srv", 0, 50)
    for i, (dirpath, dirnames, filenames) in enumerate(sorted(os.walk(root))):
        for n in dirnames + filenames:
            os.utime(Path(dirpath, n), ns=(10**18 + i * 10**9,) * 2, follow_symlinks=False)


def _tree(root: Path) -> dict[str, tuple[object, ...]]:
    """Everything a layer should keep, hardlinks as inode groups."""
    out: dict[str, tuple[object, ...]] = {}
    groups: dict[int, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath, n)
            st = p.lstat()
            rel = str(p.relative_to(root))
            extra: object = None
            if stat.S_ISREG(st.st_mode):
                extra = (
                    xxhash.xxh3_64_hexdigest(p.read_bytes()),
                    groups.setdefault(st.st_ino, rel),
                )
            elif stat.S_ISLNK(st.st_mode):
                extra = os.readlink(p)
            elif stat.S_ISCHR(st.st_mode):
                extra = st.st_rdev
            xattrs = {}
            if not stat.S_ISLNK(st.st_mode):
                xattrs = {k: os.getxattr(p, k) for k in sorted(os.listxattr(p))}
            mtime = int(st.st_mtime) if not stat.S_ISDIR(st.st_mode) or rel != "" else 0
            out[rel] = (st.st_mode, st.st_uid, st.st_gid, mtime, st.st_nlink, extra, xattrs)
    return out


def _layer(snap: Snapshotter, path: Path) -> tuple[str, int]:
    with LayerWriter(path, compression="zstd", threads=1) as w:
        n = write_layer(snap.diff(), snap.root, w)
    return w.close().diff_id, n


@pytest.mark.parametrize("mode", list(SnapshotMode))
def test_round_trip(tmp_path: Path, mode: SnapshotMode) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _build(src)
    first = Snapshotter(src, mode=mode, ignore=IgnoreList())
    diff_id, n = _layer(first, tmp_path / "one.tar.zst")
    assert n > 40

    dst = tmp_path / "dst"
    dst.mkdir()
    copy = Snapshotter(dst, mode=mode, ignore=IgnoreList())
    with open_uncompressed(tmp_path / "one.tar.zst") as stream:
        report = copy.extract(stream, what="one")
    assert report.warnings == ()
    assert _tree(dst) == _tree(src)
    assert copy.diff().is_empty, "the baseline is exactly what extraction wrote"

    again = Snapshotter(dst, mode=mode, ignore=IgnoreList())
    diff_id2, _ = _layer(again, tmp_path / "two.tar.zst")
    assert diff_id2 == diff_id, "the copy gives the same layer bytes"


def test_tar_readable_by_gnu_tar(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _build(src)
    with open(tmp_path / "l.tar", "wb") as f:
        write_layer(Snapshotter(src, mode=SnapshotMode.TIME, ignore=IgnoreList()).diff(), src, f)
    out = tmp_path / "gnu"
    out.mkdir()
    subprocess.run(
        ["tar", "-xpf", str(tmp_path / "l.tar"), "--xattrs", "--xattrs-include=*", "-C", str(out)],
        check=True,
    )
    assert (out / "usr/bin/tool").read_bytes() == (src / "usr/bin/tool").read_bytes()
    assert os.getxattr(out / "usr/bin/tool", "security.capability") == CAP
    assert (out / "usr/bin/tool-alias").stat().st_ino == (out / "usr/bin/tool").stat().st_ino


MEMORY_SCRIPT = textwrap.dedent(
    """
    import os, resource, sys
    from pathlib import Path
    from pykaniko.image.layerfile import LayerWriter, open_uncompressed
    from pykaniko.snapshot import IgnoreList, SnapshotMode, Snapshotter, write_layer

    scratch = Path(sys.argv[1])
    src = scratch / "src"
    src.mkdir()
    with open(src / "big", "wb") as f:
        f.truncate(256 << 20)
    snap = Snapshotter(src, mode=SnapshotMode.FULL, ignore=IgnoreList())
    with LayerWriter(scratch / "l.tar.gz", compression="gzip", threads=2) as w:
        write_layer(snap.diff(), src, w)
    os.unlink(src / "big")
    dst = scratch / "dst"
    dst.mkdir()
    with open_uncompressed(scratch / "l.tar.gz", digest=w.close().digest) as stream:
        Snapshotter(dst, mode=SnapshotMode.FULL, ignore=IgnoreList()).extract(stream, what="big")
    assert (dst / "big").stat().st_size == 256 << 20
    os.unlink(dst / "big")
    # VmHWM is this address space's peak; ru_maxrss would also carry the RSS the
    # forking pytest process had before exec, which grows with the suite
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")]
    print(hwm[0].split()[1])
    """
)


def test_memory_flat_for_a_256mb_file(tmp_path: Path) -> None:
    scratch = Path("/dev/shm") if Path("/dev/shm").is_dir() else tmp_path
    work = scratch / f"pykaniko-snapshot-mem-{os.getpid()}"
    work.mkdir()
    try:
        out = subprocess.run(
            [sys.executable, "-c", MEMORY_SCRIPT, str(work)],
            check=True,
            capture_output=True,
            text=True,
            cwd=Path(__file__).parents[2],
        )
    finally:
        subprocess.run(["rm", "-rf", str(work)], check=True)
    peak_kib = int(out.stdout.split()[-1])
    assert peak_kib < 100 * 1024, f"peak RSS {peak_kib} KiB"
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > 0
