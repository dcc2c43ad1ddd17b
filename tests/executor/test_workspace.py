"""Work directories with real processes: a build holds an flock on its work dir while
it runs; the next build in the same kaniko dir removes the dirs of dead builds (killed
with SIGKILL: no cleanup ran) and leaves those of live ones alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pykaniko.executor.workspace import LOCK_NAME, Workspace, remove_stale

ROOT = Path(__file__).resolve().parents[2]
_HOLDER = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from pykaniko.executor.workspace import Workspace\n"
    "ws = Workspace.create(Path(sys.argv[1]))\n"
    "(ws.root / 'stages').mkdir()\n"
    "print(ws.root, flush=True)\n"
    "time.sleep(60)\n"
)


@pytest.fixture
def holders() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _hold(base: Path, procs: list[subprocess.Popen[str]]) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(base)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    procs.append(proc)
    assert proc.stdout is not None
    return proc, Path(proc.stdout.readline().strip())


def test_dead_builds_are_removed_live_ones_kept(
    tmp_path: Path, holders: list[subprocess.Popen[str]]
) -> None:
    live, live_dir = _hold(tmp_path, holders)
    dead, dead_dir = _hold(tmp_path, holders)
    dead.send_signal(signal.SIGKILL)
    dead.wait()
    assert dead_dir.is_dir()
    assert live_dir.is_dir()

    ws = Workspace.create(tmp_path)
    try:
        assert ws.stale_removed == (dead_dir.name,)
        assert not dead_dir.exists()
        assert live_dir.is_dir()
        assert (live_dir / "stages").is_dir()
        assert remove_stale(tmp_path) == (), "a second look removes nothing live"
    finally:
        ws.cleanup()
    assert not ws.root.exists()
    live.kill()
    live.wait()
    assert remove_stale(tmp_path) == (live_dir.name,)


def test_a_finished_build_lets_go_of_its_lock(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path)
    assert ws.root.name.startswith("build-")
    assert (ws.root / LOCK_NAME).is_file()
    assert remove_stale(tmp_path) == ()
    ws.release()  # kept (cleanup off): the next build takes it away
    assert remove_stale(tmp_path) == (ws.root.name,)


def test_dirs_without_a_lock(tmp_path: Path) -> None:
    old = tmp_path / "build-0ld0ld00"  # an older pykaniko's work dir: no lock file
    (old / "stages").mkdir(parents=True)
    fresh = tmp_path / ".new-build-abcd1234"  # a build between mkdtemp and its lock
    fresh.mkdir()
    other = tmp_path / "caches"  # RUN cache mounts live beside work dirs: never touched
    other.mkdir()
    assert remove_stale(tmp_path) == ("build-0ld0ld00",)
    assert fresh.is_dir()
    assert other.is_dir()
    stamp = time.time() - 3600
    os.utime(fresh, (stamp, stamp))
    assert remove_stale(tmp_path) == (".new-build-abcd1234",)
    assert other.is_dir()


def test_never_removes_through_a_mount(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting needs root")
    stale = tmp_path / "build-m0unted0"
    target = stale / "stages" / "0" / "rootfs" / "mnt"
    target.mkdir(parents=True)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep").write_text("keep")
    if subprocess.run(["mount", "--bind", str(precious), str(target)], check=False).returncode:
        pytest.skip("cannot bind-mount here")
    try:
        assert remove_stale(tmp_path) == ()
        assert (precious / "keep").read_text() == "keep"
    finally:
        subprocess.run(["umount", str(target)], check=True)
    assert remove_stale(tmp_path) == ("build-m0unted0",)
    assert (precious / "keep").is_file()
