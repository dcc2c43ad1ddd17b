"""RUN mounts emulated without mount(2), on a temporary root: put in place, taken away,
and what was there before restored exactly."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pykaniko.errors import SandboxError
from pykaniko.executor.isolation import BindMount
from pykaniko.executor.isolation.emulate import MountEmulation
from pykaniko.snapshot import IgnoreList

pytestmark = pytest.mark.root

T0 = 1_600_000_000_000_000_000


@pytest.fixture
def root(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        pytest.skip("needs root (chown)")
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    conf = r / "etc" / "app.conf"
    conf.write_text("original\n")
    os.chown(conf, 1000, 1001)
    os.chmod(conf, 0o640)
    (r / "var" / "cache" / "apt").mkdir(parents=True)
    (r / "var" / "cache" / "apt" / "orig").write_text("image content")
    (r / "kaniko").mkdir()
    for p in [conf, *r.rglob("*"), r]:
        os.utime(p, ns=(T0, T0))
    return r


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    s = tmp_path / "scratch"
    s.mkdir(mode=0o700)
    return s


def _secret(tmp_path: Path, value: str = "tok3n") -> Path:
    path = tmp_path / "secret-copy"
    path.write_text(value)
    os.chmod(path, 0o400)
    return path


def _stat(path: Path) -> tuple[int, int, int, int, int]:
    st = os.lstat(path)
    return (st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns)


def test_secret_with_missing_parents_leaves_no_trace(
    root: Path, scratch: Path, tmp_path: Path
) -> None:
    em = MountEmulation(root, scratch)
    em.put((BindMount(str(_secret(tmp_path)), "/run/secrets/tok", True, "secret"),))
    target = root / "run" / "secrets" / "tok"
    assert target.read_text() == "tok3n"
    assert target.stat().st_mode & 0o777 == 0o400
    em.take_away()
    assert not (root / "run").exists()
    assert os.lstat(root).st_mtime_ns == T0  # the root's own mtime is back
    assert (tmp_path / "secret-copy").exists()  # the source stays


def test_existing_target_is_restored_exactly(root: Path, scratch: Path, tmp_path: Path) -> None:
    conf = root / "etc" / "app.conf"
    before = _stat(conf)
    em = MountEmulation(root, scratch)
    em.put((BindMount(str(_secret(tmp_path)), "/etc/app.conf", True, "secret"),))
    assert conf.read_text() == "tok3n"
    em.take_away()
    assert conf.read_text() == "original\n"
    assert _stat(conf) == before  # same inode, mode, owner, mtime
    assert os.lstat(root / "etc").st_mtime_ns == T0
    assert list(scratch.iterdir()) == []


def test_a_parent_the_run_changed_keeps_its_new_mtime(
    root: Path, scratch: Path, tmp_path: Path
) -> None:
    em = MountEmulation(root, scratch)
    em.put((BindMount(str(_secret(tmp_path)), "/etc/app.conf", True, "secret"),))
    (root / "etc" / "made-by-run").write_text("x")
    em.take_away()
    assert os.lstat(root / "etc").st_mtime_ns != T0


def test_secret_that_is_its_own_source_is_left_alone(root: Path, scratch: Path) -> None:
    cred = root / "kaniko" / "cred"
    cred.write_text("from the job")
    before = _stat(cred)
    em = MountEmulation(root, scratch)
    em.put((BindMount("/elsewhere", "/kaniko/cred", True, "secret", origin=str(cred)),))
    em.take_away()
    assert cred.read_text() == "from the job"
    assert _stat(cred) == before


def test_cache_is_moved_in_and_out_and_persists(root: Path, scratch: Path, tmp_path: Path) -> None:
    cache = tmp_path / "kaniko-caches" / "k"
    cache.mkdir(parents=True)
    (cache / "pkg.deb").write_text("cached")
    ino = os.lstat(cache).st_ino
    em = MountEmulation(root, scratch)
    em.put((BindMount(str(cache), "/var/cache/apt", kind="cache"),))
    apt = root / "var" / "cache" / "apt"
    assert os.lstat(apt).st_ino == ino  # moved, not copied
    assert sorted(p.name for p in apt.iterdir()) == ["pkg.deb"]
    assert not cache.exists()
    (apt / "new.deb").write_text("written by the RUN")
    em.take_away()
    assert sorted(p.name for p in cache.iterdir()) == ["new.deb", "pkg.deb"]
    assert sorted(p.name for p in apt.iterdir()) == ["orig"]  # the image's dir is back


def test_cache_deleted_by_the_run_comes_back_empty(
    root: Path, scratch: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "caches" / "k"
    cache.mkdir(parents=True, mode=0o750)
    os.chmod(cache, 0o750)
    em = MountEmulation(root, scratch)
    em.put((BindMount(str(cache), "/work/cache", kind="cache"),))
    shutil.rmtree(root / "work" / "cache")
    em.take_away()
    assert cache.is_dir()
    assert cache.stat().st_mode & 0o777 == 0o750
    assert not (root / "work").exists()


@pytest.fixture
def other_fs() -> Iterator[Path]:
    if not Path("/dev/shm").is_dir():
        pytest.skip("no /dev/shm")
    path = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="pykaniko-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_cache_on_another_filesystem_is_linked(root: Path, scratch: Path, other_fs: Path) -> None:
    if os.stat(root).st_dev == os.stat(other_fs).st_dev:
        pytest.skip("/dev/shm is on the same filesystem here")
    em = MountEmulation(root, scratch)
    em.put((BindMount(str(other_fs), "/cache", kind="cache"),))
    assert os.readlink(root / "cache") == str(other_fs)
    (root / "cache" / "f").write_text("x")
    em.take_away()
    assert not os.path.lexists(root / "cache")
    assert (other_fs / "f").read_text() == "x"


def test_bind_is_a_copy_and_writes_are_thrown_away(
    root: Path, scratch: Path, tmp_path: Path
) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "sub").mkdir(parents=True)
    (ctx / "sub" / "a.txt").write_text("a")
    em = MountEmulation(root, scratch)
    em.put((BindMount(str(ctx), "/src", readonly=False),))
    assert (root / "src" / "sub" / "a.txt").read_text() == "a"
    (root / "src" / "sub" / "a.txt").write_text("changed")
    em.take_away()
    assert (ctx / "sub" / "a.txt").read_text() == "a"
    assert not (root / "src").exists()


def test_tmpfs_is_an_empty_sticky_directory(root: Path, scratch: Path) -> None:
    em = MountEmulation(root, scratch)
    em.put((BindMount("tmpfs", "/var/cache/apt", kind="tmpfs"),))
    tmp = root / "var" / "cache" / "apt"
    assert list(tmp.iterdir()) == []
    assert tmp.stat().st_mode & 0o7777 == 0o1777
    em.take_away()
    assert sorted(p.name for p in tmp.iterdir()) == ["orig"]


def test_nested_targets_unwind_in_order(root: Path, scratch: Path, tmp_path: Path) -> None:
    em = MountEmulation(root, scratch)
    em.put(
        (
            BindMount("tmpfs", "/opt", kind="tmpfs"),
            BindMount(str(_secret(tmp_path)), "/opt/inner/tok", True, "secret"),
        )
    )
    assert (root / "opt" / "inner" / "tok").read_text() == "tok3n"
    em.take_away()
    assert not (root / "opt").exists()


def test_target_root_is_refused(root: Path, scratch: Path) -> None:
    em = MountEmulation(root, scratch)
    with pytest.raises(SandboxError, match="target /"):
        em.put((BindMount("tmpfs", "/", kind="tmpfs"),))
    em.take_away()


def test_targets_on_the_containers_own_paths_are_refused(
    root: Path, scratch: Path, tmp_path: Path
) -> None:
    (root / "etc" / "hosts").write_text("mounted")
    keep = IgnoreList.of(exact=["/etc/hosts", "/kaniko"])
    for target in ("/etc", "/etc/hosts", "/kaniko"):
        em = MountEmulation(root, scratch, keep)
        with pytest.raises(SandboxError, match="container's own paths"):
            em.put((BindMount("tmpfs", target, kind="tmpfs"),))
        em.take_away()
    assert (root / "etc" / "hosts").read_text() == "mounted"
    assert (root / "etc" / "app.conf").exists()
    em = MountEmulation(root, scratch, keep)  # below a kept directory: fine
    em.put((BindMount(str(_secret(tmp_path)), "/kaniko/other", True, "secret"),))
    assert (root / "kaniko" / "other").read_text() == "tok3n"
    em.take_away()
    assert not (root / "kaniko" / "other").exists()
