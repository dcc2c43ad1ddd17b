"""End-to-end fixtures: the busybox base image, built offline by pykaniko itself and
pushed to the session's real registry, and a helper that runs the pykaniko command."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.baseimages import busybox_available, busybox_dockerfile, make_busybox_rootfs_tar
from tests.support.readers import readers_available
from tests.support.registry import RegistryServer

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class CliResult:
    status: int
    stdout: str
    stderr: str


def run_pykaniko(args: Sequence[str], *, env: dict[str, str] | None = None) -> CliResult:
    """Run ``python -m pykaniko`` as a user would; never raises on a non-zero status."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "pykaniko", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="session")
def kaniko_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kaniko-dir")


@pytest.fixture(scope="session")
def busybox_image(
    registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory, kaniko_dir: Path
) -> str:
    """``HOST/busybox:1``: FROM scratch + ADD rootfs.tar /, built and pushed by pykaniko."""
    if os.geteuid() != 0:
        pytest.skip("building images needs root (chroot, chown)")
    if not busybox_available() or not readers_available():
        pytest.skip("busybox-static, skopeo or umoci missing")
    ctx = tmp_path_factory.mktemp("busybox-ctx")
    make_busybox_rootfs_tar(ctx)
    (ctx / "Dockerfile").write_text(busybox_dockerfile())
    ref = f"{registry.host}/busybox:1"
    result = run_pykaniko(
        [
            "--context", str(ctx), "--dockerfile", str(ctx / "Dockerfile"),
            "--destination", ref, "--insecure", "--insecure-pull",
            "--kaniko-dir", str(kaniko_dir),
        ]
    )  # fmt: skip
    assert result.status == 0, result.stderr
    return ref
