"""In-place tree operations on a temporary root: clear, park, unpark, exact copies.

Never run against the real ``/``: every function takes its root as a parameter.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pykaniko.executor.isolation.treeops import (
    clear_root,
    copy_exact,
    holders,
    move_entry,
    park,
    unpark,
)
from pykaniko.snapshot import IgnoreList

pytestmark = pytest.mark.root

KEEP = IgnoreList.of(exact=["/etc/hosts", "/kaniko", "/var/run", "/proc"])
T0 = 1_600_000_000_000_000_000


def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (chown, mknod)")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    out = tmp_path / "outside"
    out.mkdir()
    (out / "precious").write_text("never touched")
    return out


@pytest.fixture
def root(tmp_path: Path, outside: Path) -> Path:
    """A small image-like tree with kept paths among image content."""
    _need_root()
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "hosts").write_text("127.0.0.1 container\n")  # the bind mount
    (r / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (r / "kaniko").mkdir()
    (r / "kaniko" / "executor").write_text("#!/bin/true\n")
    (r / "proc").mkdir()
    (r / "var" / "run").mkdir(parents=True)
    (r / "var" / "run" / "pid").write_text("1")
    (r / "var" / "lib").mkdir()
    (r / "usr" / "bin").mkdir(parents=True)
    tool = r / "usr" / "bin" / "tool"
    tool.write_bytes(b"\x7fELF tool")
    os.link(tool, r / "usr" / "bin" / "tool2")
    os.chown(tool, 1000, 1000)
    os.chmod(tool, 0o4755)
    os.mkfifo(r / "var" / "lib" / "fifo")
    os.mknod(r / "var" / "lib" / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.symlink(str(outside), r / "escape")  # absolute, pointing out of the root
    os.symlink("../outside", r / "var" / "up")
    os.setxattr(tool, "user.pykaniko", b"kept")
    for p in sorted(r.rglob("*"), key=lambda p: -len(p.parts)):
        os.utime(p, ns=(T0, T0), follow_symlinks=False)
    return r


def _tree(root: Path) -> dict[str, tuple[object, ...]]:
    """Everything that must survive a park and an unpark (ctime aside)."""
    out: dict[str, tuple[object, ...]] = {}
    inodes: dict[int, str] = {}
    for p in sorted(root.rglob("*")):
        st = os.lstat(p)
        rel = "/" + p.relative_to(root).as_posix()
        extra: object = None
        if stat.S_ISREG(st.st_mode):
            extra = (p.read_bytes(), inodes.setdefault(st.st_ino, rel))
        elif stat.S_ISLNK(st.st_mode):
            extra = os.readlink(p)
        elif stat.S_ISCHR(st.st_mode):
            extra = st.st_rdev
        xattrs = () if stat.S_ISLNK(st.st_mode) else tuple(sorted(os.listxattr(p)))
        mtime = None if stat.S_ISDIR(st.st_mode) and rel == "/" else st.st_mtime_ns
        out[rel] = (st.st_mode, st.st_uid, st.st_gid, mtime, extra, xattrs)
    return out


def test_holders_are_strict_ancestors() -> None:
    assert holders(KEEP) == {"/etc", "/var"}


def test_clear_keeps_only_kept_paths_and_their_parents(root: Path, outside: Path) -> None:
    assert clear_root(root, KEEP) == []
    left = sorted("/" + p.relative_to(root).as_posix() for p in root.rglob("*"))
    assert left == [
        "/etc",
        "/etc/hosts",
        "/kaniko",
        "/kaniko/executor",
        "/proc",
        "/var",
        "/var/run",
        "/var/run/pid",
    ]
    assert (outside / "precious").read_text() == "never touched"  # symlinks not followed


def test_park_then_unpark_restores_everything(root: Path, tmp_path: Path) -> None:
    before = _tree(root)
    dest = tmp_path / "park"
    dest.mkdir()
    park(root, KEEP, dest)
    assert sorted(p.name for p in root.iterdir()) == ["etc", "kaniko", "proc", "var"]
    assert sorted(p.name for p in (root / "etc").iterdir()) == ["hosts"]
    assert (dest / "etc" / "passwd").is_file()
    assert not (dest / "etc" / "hosts").exists()
    assert not (dest / "kaniko").exists()
    # another stage used the root meanwhile
    (root / "etc" / "other").write_text("stage 2")
    os.chmod(root / "etc", 0o700)
    clear_root(root, KEEP)
    unpark(dest, root)
    assert _tree(root) == before
    assert list(dest.iterdir()) == []


@pytest.fixture
def other_fs() -> Iterator[Path]:
    """A directory on another filesystem (/dev/shm), for the EXDEV paths."""
    if not Path("/dev/shm").is_dir():
        pytest.skip("no /dev/shm")
    path = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="pykaniko-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_park_across_filesystems_copies_exactly(root: Path, other_fs: Path) -> None:
    if os.stat(root).st_dev == os.stat(other_fs).st_dev:
        pytest.skip("/dev/shm is on the same filesystem here")
    before = _tree(root)
    park(root, KEEP, other_fs)
    tool, tool2 = other_fs / "usr/bin/tool", other_fs / "usr/bin/tool2"
    assert os.stat(tool).st_ino == os.stat(tool2).st_ino  # still one hardlink group
    assert os.stat(tool).st_mode & 0o7777 == 0o4755  # setuid survives the chown
    clear_root(root, KEEP)
    unpark(other_fs, root)
    assert _tree(root) == before


def test_copy_exact_keeps_metadata(root: Path, tmp_path: Path) -> None:
    copy_exact(root / "usr", tmp_path / "usr-copy")
    st = os.lstat(tmp_path / "usr-copy" / "bin" / "tool")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777, st.st_mtime_ns) == (1000, 1000, 0o4755, T0)
    assert os.getxattr(tmp_path / "usr-copy" / "bin" / "tool", "user.pykaniko") == b"kept"
    assert os.lstat(tmp_path / "usr-copy").st_mtime_ns == T0


def test_move_entry_renames_on_one_filesystem(root: Path, tmp_path: Path) -> None:
    ino = os.lstat(root / "usr").st_ino
    move_entry(root / "usr", tmp_path / "moved")
    assert os.lstat(tmp_path / "moved").st_ino == ino
    assert not (root / "usr").exists()
