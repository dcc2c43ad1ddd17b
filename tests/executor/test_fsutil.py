"""Path helpers: clean_abs, resolve_in_root (symlinks never leave the root), makedirs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pykaniko.errors import BuildError
from pykaniko.executor.fsutil import clean_abs, makedirs_in_root, resolve_in_root


@pytest.mark.parametrize(
    ("path", "cwd", "expected"),
    [
        ("/a/b", "/", "/a/b"),
        ("a/b", "/", "/a/b"),
        ("a/b", "/work", "/work/a/b"),
        ("a/b", "/work/", "/work/a/b"),
        ("./a/./b/", "/w", "/w/a/b"),
        ("../../..", "/w/x", "/"),
        ("/../etc", "/", "/etc"),
        ("a/../b", "/w", "/w/b"),
        ("", "/w", "/w"),
        (".", "/", "/"),
        ("//a//b//", "/", "/a/b"),
    ],
)
def test_clean_abs(path: str, cwd: str, expected: str) -> None:
    assert clean_abs(path, cwd) == expected


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "usr" / "lib").mkdir(parents=True)
    (r / "etc").mkdir()
    (r / "etc" / "passwd").write_text("root")
    os.symlink("/usr/lib", r / "lib")  # absolute
    os.symlink("usr/lib", r / "lib2")  # relative
    os.symlink("../../../../..", r / "usr" / "up")  # tries to climb out
    os.symlink("/../../../etc", r / "abs_up")
    os.symlink("loop2", r / "loop1")
    os.symlink("loop1", r / "loop2")
    return r


def test_plain_path(root: Path) -> None:
    assert resolve_in_root(root, "/etc/passwd") == root / "etc" / "passwd"
    assert resolve_in_root(root, "/") == root


def test_absolute_symlink_is_taken_from_the_root(root: Path) -> None:
    assert resolve_in_root(root, "/lib/x.so") == root / "usr" / "lib" / "x.so"


def test_relative_symlink(root: Path) -> None:
    assert resolve_in_root(root, "/lib2/x.so") == root / "usr" / "lib" / "x.so"


def test_final_symlink_follow_or_not(root: Path) -> None:
    assert resolve_in_root(root, "/lib") == root / "usr" / "lib"
    assert resolve_in_root(root, "/lib", follow_final=False) == root / "lib"


def test_dotdot_in_link_never_escapes(root: Path) -> None:
    assert resolve_in_root(root, "/usr/up/etc/passwd") == root / "etc" / "passwd"
    assert resolve_in_root(root, "/abs_up/passwd") == root / "etc" / "passwd"


def test_dotdot_in_path_never_escapes(root: Path) -> None:
    assert resolve_in_root(root, "/../../etc/passwd") == root / "etc" / "passwd"
    assert resolve_in_root(root, "../../..") == root


def test_symlink_loop_is_an_error(root: Path) -> None:
    with pytest.raises(BuildError, match="symbolic links"):
        resolve_in_root(root, "/loop1/x")


def test_makedirs_creates_with_owner_and_mode(root: Path) -> None:
    created = makedirs_in_root(root, "/opt/a/b", uid=12, gid=34, mode=0o750)
    assert created == ["/opt", "/opt/a", "/opt/a/b"]
    for rel in ("opt", "opt/a", "opt/a/b"):
        st = (root / rel).stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (12, 34, 0o750)


def test_makedirs_existing_returns_nothing_and_keeps_owner(root: Path) -> None:
    before = (root / "usr").stat()
    assert makedirs_in_root(root, "/usr/lib", uid=5, gid=5) == []
    assert (root / "usr").stat().st_uid == before.st_uid


def test_makedirs_through_symlink_stays_inside(root: Path) -> None:
    created = makedirs_in_root(root, "/lib/sub")
    assert created == ["/lib/sub"]
    assert (root / "usr" / "lib" / "sub").is_dir()
    created = makedirs_in_root(root, "/usr/up/newtop")
    assert (root / "newtop").is_dir()
    assert created == ["/usr/up/newtop"]


def test_makedirs_file_in_the_way(root: Path) -> None:
    with pytest.raises(BuildError, match="in the way"):
        makedirs_in_root(root, "/etc/passwd/x")


def test_makedirs_through_dangling_symlink_creates_its_target(root: Path) -> None:
    os.symlink("/nowhere/at/all", root / "dangling")
    created = makedirs_in_root(root, "/dangling/x")
    # Docker follows the link and creates its target inside the rootfs
    assert (root / "nowhere" / "at" / "all" / "x").is_dir()
    assert created == ["/nowhere", "/nowhere/at", "/dangling", "/dangling/x"]
