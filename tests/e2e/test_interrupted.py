"""Interrupted builds lose nothing. A push killed (SIGKILL) or stopped (SIGTERM) in the
middle of a large layer upload, slowed down by a throttling relay, leaves the tag on the
previous image (blobs go first, the manifest last), as skopeo sees it; the next build in
the same kaniko dir removes the dead build's work dir, pushes the complete new image,
and never touches the work dir of a build still running beside it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, run_pykaniko
from tests.support.cliout import assert_clean_output
from tests.support.readers import pull_to_oci, skopeo_inspect
from tests.support.registry import RegistryServer
from tests.support.slowproxy import SlowProxy

pytestmark = [pytest.mark.e2e, pytest.mark.root]

BIG = 24_000_000  # random bytes: the layer does not compress


@pytest.fixture
def dest_registry(tmp_path: Path) -> Iterator[RegistryServer]:
    server = RegistryServer(tmp_path / "dest-registry")
    yield server
    server.stop()


def _args(ctx: Path, dest: str, kaniko_dir: Path) -> list[str]:
    return [
        "--context", str(ctx), "--dockerfile", str(ctx / "Dockerfile"),
        "--destination", dest, "--insecure", "--insecure-pull", "--kaniko-dir", str(kaniko_dir),
    ]  # fmt: skip


def _start(args: Sequence[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pykaniko", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _context(root: Path, name: str, dockerfile: str) -> Path:
    ctx = root / name
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    return ctx


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_push_interrupted_mid_layer_keeps_the_previous_image(
    busybox_image: str,
    dest_registry: RegistryServer,
    tmp_path: Path,
    sig: signal.Signals,
) -> None:
    kaniko = tmp_path / "kaniko"
    tag = "app/interrupted:1"
    v1 = _context(tmp_path, "v1", f"FROM {busybox_image}\nRUN echo v1 > /version\n")
    first = run_pykaniko(_args(v1, f"{dest_registry.host}/{tag}", kaniko))
    assert first.status == 0, first.stderr
    before = skopeo_inspect(f"{dest_registry.host}/{tag}")

    proxy = SlowProxy(dest_registry.host, rate=3_000_000)
    try:
        v2 = _context(
            tmp_path,
            "v2",
            f"FROM {busybox_image}\nRUN head -c {BIG} /dev/urandom > /big && echo v2 > /version\n",
        )
        proc = _start(_args(v2, f"{proxy.host}/{tag}", kaniko))
        try:
            # the base layer (1 MB) and the config go first or beside it: 6 MB in, the
            # big layer is on its way
            assert proxy.wait_sent(6_000_000, timeout=120), "the push never started"
            proc.send_signal(sig)
            at_signal = proxy.sent
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert at_signal < BIG, "the whole layer went through before the signal"
        if sig == signal.SIGKILL:
            assert proxy.sent < BIG
    finally:
        proxy.stop()

    assert proc.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 128 + sig)
    after = skopeo_inspect(f"{dest_registry.host}/{tag}")
    assert after["Digest"] == before["Digest"], "the tag moved to an incomplete image"
    assert after["Layers"] == before["Layers"]
    left = list(kaniko.glob("build-*"))
    if sig == signal.SIGTERM:
        assert "error: stopped by signal 15" in err
        assert_clean_output(out + err, kaniko_dirs=[kaniko])
        assert left == [], "SIGTERM cleans the work dir up"
    else:
        assert len(left) == 1, "SIGKILL leaves the work dir behind"

    again = run_pykaniko(_args(v2, f"{dest_registry.host}/{tag}", kaniko))
    assert again.status == 0, again.stderr
    if sig == signal.SIGKILL:
        assert "removed 1 work directory of interrupted builds" in again.stderr
    assert not list(kaniko.glob("build-*"))
    new = skopeo_inspect(f"{dest_registry.host}/{tag}")
    assert new["Digest"] != before["Digest"]
    assert len(new["Layers"]) == len(before["Layers"])
    pull_to_oci(f"{dest_registry.host}/{tag}", tmp_path / "pulled")  # every blob verifies


def test_stale_work_dirs_go_live_ones_stay(busybox_image: str, tmp_path: Path) -> None:
    kaniko = tmp_path / "kaniko"
    kaniko.mkdir()

    def running(dockerfile: str, name: str) -> tuple[subprocess.Popen[str], Path]:
        known = set(kaniko.glob("build-*"))
        ctx = _context(tmp_path, name, dockerfile)
        proc = _start([*_args(ctx, "unused/none:1", kaniko), "--no-push"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            new = set(kaniko.glob("build-*")) - known
            if new and any((d / "stages").is_dir() for d in new):
                return proc, new.pop()
            time.sleep(0.05)
        proc.kill()
        raise AssertionError("the build never made its work dir")

    live, live_dir = running(f"FROM {busybox_image}\nRUN sleep 8 && echo slept\n", "live")
    dead, dead_dir = running(f"FROM {busybox_image}\nRUN sleep 60\n", "dead")
    try:
        time.sleep(1)  # both are inside their RUN now
        os.kill(dead.pid, signal.SIGKILL)
        dead.communicate(timeout=30)
        assert dead_dir.is_dir()

        ctx = _context(tmp_path, "third", f"FROM {busybox_image}\nRUN echo third > /t\n")
        third = run_pykaniko([*_args(ctx, "unused/none:1", kaniko), "--no-push"])
        assert third.status == 0, third.stderr
        assert "removed 1 work directory of interrupted builds" in third.stderr
        assert not dead_dir.exists()
        assert live_dir.is_dir(), "a running build's work dir was removed"
        assert live.poll() is None, "the concurrent build was disturbed"

        out, err = live.communicate(timeout=120)
        assert live.returncode == 0, err
        assert "slept" in out
        assert_clean_output(out + err + third.stdout + third.stderr, kaniko_dirs=[kaniko])
        assert not list(kaniko.glob("build-*"))
    finally:
        for proc in (live, dead):
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
