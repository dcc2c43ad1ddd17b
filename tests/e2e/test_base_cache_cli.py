"""``pykaniko warmer`` and ``--cache-dir`` through the command line: warm from a
Dockerfile, take the registry away, and the build still succeeds from the cache;
past ``--cache-ttl`` it does not; several warmers share one directory at once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, run_pykaniko
from tests.registry.test_basecache_e2e import assert_cache_consistent
from tests.support.readers import skopeo_inspect
from tests.support.registry import FaultProxy, RegistryServer

pytestmark = [pytest.mark.e2e, pytest.mark.root]


@pytest.fixture
def proxy(registry: RegistryServer) -> Iterator[FaultProxy]:
    """The base image's registry as the build sees it; ``stop()`` takes it down."""
    p = FaultProxy(registry.host)
    try:
        yield p
    finally:
        p.stop()


def _context(tmp_path: Path, base: str) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    name = base.rpartition(":")[0]
    (ctx / "Dockerfile").write_text(
        f"ARG TAG=nope\nFROM {name}:${{TAG}}\nRUN echo from-cache > /x\n"
    )
    return ctx


def _build(ctx: Path, registry: RegistryServer, tmp_path: Path, *extra: str) -> tuple[int, str]:
    result = run_pykaniko(
        [
            "--context", str(ctx), "--dockerfile", str(ctx / "Dockerfile"),
            "--build-arg", "TAG=1",
            "--destination", f"{registry.host}/basecache/app:1",
            "--cache", "--cache-repo", f"{registry.host}/basecache/layers",
            "--cache-dir", str(tmp_path / "cache"),
            "--kaniko-dir", str(tmp_path / f"kaniko{time.monotonic_ns()}"),
            *extra,
        ]
    )  # fmt: skip
    return result.status, result.stderr


def test_warm_then_build_with_the_registry_down(
    busybox_image: str, registry: RegistryServer, proxy: FaultProxy, tmp_path: Path
) -> None:
    base = busybox_image.replace(registry.host, proxy.host, 1)
    ctx = _context(tmp_path, base)
    warmed = run_pykaniko(
        [
            "warmer", "--dockerfile", str(ctx / "Dockerfile"), "--build-arg", "TAG=1",
            "--cache-dir", str(tmp_path / "cache"),
        ]
    )  # fmt: skip
    assert warmed.status == 0, warmed.stderr
    assert f"Cached {base}" in warmed.stderr
    again = run_pykaniko(["warmer", "-i", base, "-c", str(tmp_path / "cache")])
    assert again.status == 0, again.stderr
    assert "Already cached" in again.stderr
    assert_cache_consistent(tmp_path / "cache")

    proxy.stop()
    status, stderr = _build(ctx, registry, tmp_path)
    assert status == 0, stderr
    assert "base-image cache" in stderr
    assert "Traceback" not in stderr
    info = skopeo_inspect(f"{registry.host}/basecache/app:1")
    assert len(info["Layers"]) == 2

    # without --cache the cache directory is not read, as Kaniko
    nocache = run_pykaniko(
        [
            "--context", str(ctx), "--dockerfile", str(ctx / "Dockerfile"),
            "--build-arg", "TAG=1", "--no-push", "--cache-dir", str(tmp_path / "cache"),
            "--kaniko-dir", str(tmp_path / "kaniko-nocache"),
        ]
    )  # fmt: skip
    assert nocache.status == 1
    assert proxy.host in nocache.stderr


def test_an_expired_cache_is_not_used(
    busybox_image: str, registry: RegistryServer, proxy: FaultProxy, tmp_path: Path
) -> None:
    base = busybox_image.replace(registry.host, proxy.host, 1)
    ctx = _context(tmp_path, base)
    warmed = run_pykaniko(["warmer", "-i", base, "-c", str(tmp_path / "cache")])
    assert warmed.status == 0, warmed.stderr
    proxy.stop()
    time.sleep(1.2)
    status, stderr = _build(ctx, registry, tmp_path, "--cache-ttl=1s")
    assert status == 1
    assert proxy.host in stderr
    assert "Traceback" not in stderr


def test_concurrent_warmers_share_one_directory(
    busybox_image: str, registry: RegistryServer, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    digest = skopeo_inspect(busybox_image)["Digest"]
    other = busybox_image.rsplit(":", 1)[0] + "@" + digest

    def warmer(force: bool) -> subprocess.Popen[str]:
        argv = ["-m", "pykaniko", "warmer", "-c", str(cache), "-i", busybox_image, "-i", other]
        return subprocess.Popen(
            [sys.executable, *argv, *(["--force"] if force else [])],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ},
        )  # fmt: skip

    procs = [warmer(force=i % 2 == 1) for i in range(4)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    assert_cache_consistent(cache)
    assert not list((cache / "tmp").iterdir())
