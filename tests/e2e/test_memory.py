"""A build that makes a big layer stays flat in memory.

``RUN dd`` writes 512 MiB of zeros; pykaniko snapshots, tars, compresses and pushes it
while this test polls ``VmHWM`` (the kernel's resident high-water mark) of the pykaniko
process itself and of every process below it. ``ru_maxrss`` is not used: a forked child
starts with its parent's figure, so it would measure the test runner, not the build.
"""

from __future__ import annotations

import gzip
import http.client
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from isal import igzip

from pykaniko.image import mediatypes as mt
from pykaniko.image.manifest import Manifest
from tests.e2e.conftest import ROOT
from tests.support.readers import skopeo_inspect
from tests.support.registry import RegistryServer

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.slow]

SIZE_MB = 512
LIMIT_MB = 150
MIB = 1 << 20


def _vm_hwm_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None  # a zombie has no memory figures any more


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(c) for c in f.read().split())
        except FileNotFoundError:
            continue
    return out


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except FileNotFoundError:
        return "?"


@dataclass
class Watch:
    """Peak VmHWM (KiB) of one process and of each of its descendants, by pid."""

    pid: int
    main_kb: int = 0
    others: dict[int, tuple[str, int]] = field(default_factory=dict)
    samples: int = 0

    def poll(self) -> None:
        hwm = _vm_hwm_kb(self.pid)
        if hwm is not None:
            self.main_kb = max(self.main_kb, hwm)
        todo = _children(self.pid)
        while todo:
            child = todo.pop()
            todo.extend(_children(child))
            kb = _vm_hwm_kb(child)
            if kb is not None:
                name, old = self.others.get(child, (_comm(child), 0))
                self.others[child] = (name, max(old, kb))
        self.samples += 1


def _run_watched(args: list[str], timeout: float) -> tuple[int, str, Watch]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pykaniko", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    watch = Watch(proc.pid)
    stderr: list[str] = []
    reader = threading.Thread(
        target=lambda: stderr.append(proc.stderr.read() if proc.stderr else ""), daemon=True
    )
    reader.start()
    deadline = time.monotonic() + timeout
    try:
        # os.waitid with WNOWAIT leaves the process a zombie whose status we could no
        # longer read, so poll until it exits: VmHWM only grows, the last sample wins
        while proc.poll() is None:
            watch.poll()
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                pytest.fail(f"pykaniko did not finish within {timeout:.0f}s")
            time.sleep(0.02)
    finally:
        reader.join(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()
    return proc.returncode, "".join(stderr), watch


def _http_get(url: str, accept: str | None = None) -> http.client.HTTPResponse:
    headers = {"Accept": accept} if accept else {}
    resp: http.client.HTTPResponse = urllib.request.urlopen(
        urllib.request.Request(url, headers=headers), timeout=60
    )
    return resp


def _gzip_of_zeros(size: int) -> int:
    """Compressed size of ``size`` zero bytes at pykaniko's default level (isal 1)."""

    class Count:
        n = 0

        def write(self, data: bytes) -> int:
            self.n += len(data)
            return len(data)

        def flush(self) -> None:
            pass

    sink = Count()
    zeros = bytes(MIB)
    with igzip.IGzipFile(fileobj=sink, mode="wb", compresslevel=1, mtime=0) as f:  # type: ignore[no-untyped-call]
        for _ in range(size // MIB):
            f.write(zeros)  # type: ignore[no-untyped-call]
    return sink.n


@pytest.fixture
def shm_kaniko_dir() -> Iterator[Path]:
    shm = Path("/dev/shm")
    if not shm.is_dir():
        pytest.skip("/dev/shm is missing")
    path = Path(tempfile.mkdtemp(prefix="pykaniko-mem-", dir=shm))
    try:
        yield path
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False)


def test_big_layer_build_stays_flat_in_memory(
    busybox_image: str, registry: RegistryServer, tmp_path: Path, shm_kaniko_dir: Path
) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM {busybox_image}\nRUN dd if=/dev/zero of=/big bs=1M count={SIZE_MB} 2>/dev/null\n"
    )
    dest = f"{registry.host}/e2e/memory:1"
    started = time.monotonic()
    status, stderr, watch = _run_watched(
        [
            "--context", str(ctx), "--dockerfile", str(ctx / "Dockerfile"),
            "--destination", dest, "--insecure", "--insecure-pull",
            "--kaniko-dir", str(shm_kaniko_dir),
        ],
        timeout=120,
    )  # fmt: skip
    wall = time.monotonic() - started
    assert status == 0, stderr[-3000:]
    peak_mb = watch.main_kb / 1024
    others = {f"{name}[{pid}]": kb / 1024 for pid, (name, kb) in watch.others.items()}
    print(
        f"\nbuild {wall:.1f}s, {watch.samples} samples, pykaniko VmHWM {peak_mb:.1f} MB, "
        f"children {others}"
    )
    assert watch.samples > 10
    assert 0 < peak_mb < LIMIT_MB, f"pykaniko peaked at {peak_mb:.1f} MB"
    for who, mb in others.items():
        assert mb < LIMIT_MB, f"{who} peaked at {mb:.1f} MB"

    # what any other client sees: two layers, the second one tiny (zeros compress well)
    assert len(skopeo_inspect(dest)["Layers"]) == 2
    accept = f"{mt.DOCKER_MANIFEST}, {mt.OCI_MANIFEST}"
    with _http_get(f"http://{registry.host}/v2/e2e/memory/manifests/1", accept) as resp:
        manifest = Manifest.parse(resp.read(), resp.headers.get("Content-Type", ""))
    assert len(manifest.layers) == 2
    top = manifest.layers[-1]
    reference = _gzip_of_zeros(SIZE_MB * MIB)
    assert top.size < 2 * reference + 64 * 1024, (top.size, reference)
    assert top.size < 2 * MIB

    # and it really holds the 512 MiB file, read back as a stream
    url = f"http://{registry.host}/v2/e2e/memory/blobs/{top.digest}"
    with (
        _http_get(url) as resp,
        gzip.GzipFile(fileobj=resp) as plain,
        tarfile.open(fileobj=plain, mode="r|") as tf,
    ):
        sizes = {m.name.removeprefix("./"): m.size for m in tf if m.isreg()}
    assert sizes.get("big") == SIZE_MB * MIB, sizes
