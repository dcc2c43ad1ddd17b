"""Fixtures of the container suite: the executor images, built once per session from
this checkout by ``scripts/executor_image.py`` and unpacked once, and the base images
the builds inside the containers start from (pushed by the host's pykaniko CLI).

``PYKANIKO_EXECUTOR_IMAGE_DIR=dist`` reuses tarballs made by ``make executor-image``
instead of building them (for quick local runs; CI always builds).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.parity.cli import run_pykaniko
from tests.support.baseimages import (
    busybox_available,
    busybox_dockerfile,
    make_busybox_rootfs_tar,
)
from tests.support.container import UnpackedImage, container_tools_missing, remove_tree
from tests.support.readers import readers_available, run_tool
from tests.support.registry import RegistryServer

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "executor_image.py"
IMAGE_DIR_ENV = "PYKANIKO_EXECUTOR_IMAGE_DIR"


@dataclass(frozen=True)
class ExecutorTars:
    latest: Path
    debug: Path
    build_seconds: float | None  # None when reused from PYKANIKO_EXECUTOR_IMAGE_DIR


@dataclass(frozen=True)
class Bases:
    """Base images in the session registry: ``busybox`` (busybox-only, no ``/lib``),
    ``trap`` (busybox plus a ``/lib`` whose glibc files are garbage: anything that
    loads the base's libraries instead of ``/kaniko``'s breaks), and ``hub``, the
    Docker Hub name the mirror serves (``{host}/library/busybox:1``)."""

    busybox: str
    trap: str
    hub_name: str


def _fast_dir(prefix: str) -> Path:
    shm = Path("/dev/shm")
    return Path(tempfile.mkdtemp(prefix=prefix, dir=shm if shm.is_dir() else None))


@pytest.fixture(scope="session")
def container_tools() -> None:
    missing = container_tools_missing()
    if not readers_available():
        missing.append("skopeo/umoci")
    if not busybox_available():
        missing.append("busybox-static")
    if missing:
        pytest.skip(f"containers need {', '.join(missing)}")


@pytest.fixture(scope="session")
def container_scratch(container_tools: None) -> Iterator[Path]:
    """Parent of every unpacked image and throw-away root of the session (tmpfs)."""
    scratch = _fast_dir("pykaniko-containers-")
    try:
        yield scratch
    finally:
        remove_tree(scratch)


@pytest.fixture(scope="session")
def executor_tars(container_scratch: Path) -> ExecutorTars:
    reuse = os.environ.get(IMAGE_DIR_ENV)
    if reuse:
        out = Path(reuse).resolve()
        tars = ExecutorTars(out / "executor-image.tar", out / "executor-image-debug.tar", None)
        assert tars.latest.is_file(), f"{IMAGE_DIR_ENV}={reuse}: no executor-image.tar"
        assert tars.debug.is_file(), f"{IMAGE_DIR_ENV}={reuse}: no executor-image-debug.tar"
        return tars
    out = container_scratch / "dist"
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), "--work", str(container_scratch / "work")],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, f"make executor-image failed:\n{proc.stdout}\n{proc.stderr}"
    seconds = time.monotonic() - started
    return ExecutorTars(out / "executor-image.tar", out / "executor-image-debug.tar", seconds)


@pytest.fixture(scope="session")
def executor_image(executor_tars: ExecutorTars, container_scratch: Path) -> UnpackedImage:
    """``pykaniko/executor:latest`` unpacked (shared, read-only lower dir of every root)."""
    return UnpackedImage.from_archive(executor_tars.latest, container_scratch / "img-latest")


@pytest.fixture(scope="session")
def debug_image(executor_tars: ExecutorTars, container_scratch: Path) -> UnpackedImage:
    """``pykaniko/executor:debug`` unpacked."""
    return UnpackedImage.from_archive(executor_tars.debug, container_scratch / "img-debug")


def _trap_tar(dest: Path) -> None:
    """``lib.tar``: a ``/lib`` holding files named as glibc's that are not ELF."""
    with tarfile.open(dest, "w") as tar:
        for name in ("lib", "lib/x86_64-linux-gnu", "lib64"):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1577836800
            tar.addfile(info)
        for name in ("lib/ld-musl-x86_64.so.1", "lib/x86_64-linux-gnu/libc.so.6",
                     "lib/x86_64-linux-gnu/libssl.so.3", "lib64/ld-linux-x86-64.so.2"):  # fmt: skip
            data = b"not a library\n"
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o755, 1577836800
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="session")
def bases(registry: RegistryServer, container_tools: None) -> Iterator[Bases]:
    work = _fast_dir("container-bases-")
    try:
        ctx = work / "busybox"
        make_busybox_rootfs_tar(ctx)
        (ctx / "Dockerfile").write_text(busybox_dockerfile())
        busybox = f"{registry.host}/container/busybox:1"
        run_pykaniko(ctx, ctx / "Dockerfile", busybox, kaniko_dir=work / "kaniko")
        trap_ctx = work / "trap"
        trap_ctx.mkdir()
        _trap_tar(trap_ctx / "lib.tar")
        (trap_ctx / "Dockerfile").write_text(f"FROM {busybox}\nADD lib.tar /\n")
        trap = f"{registry.host}/container/trap:1"
        run_pykaniko(trap_ctx, trap_ctx / "Dockerfile", trap, kaniko_dir=work / "kaniko")
        run_tool(
            ["skopeo", "copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false",
             f"docker://{busybox}", f"docker://{registry.host}/library/busybox:1"]
        )  # fmt: skip
        yield Bases(busybox=busybox, trap=trap, hub_name="busybox:1")
    finally:
        remove_tree(work)
