"""No raw OS error reaches the user: a full kaniko dir (a tmpfs of a few MB), a
read-only output directory and names the kernel refuses each give one line naming the
operation, the path inside the image and the Dockerfile step; no traceback, no host
work-dir path, and the work dir is cleaned either way."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import CliResult, run_pykaniko
from tests.support.cliout import assert_clean_output

pytestmark = [pytest.mark.e2e, pytest.mark.root]

Mounter = Callable[..., Path]


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Mounter]:
    """Mounts small tmpfs file systems (read-only on request); unmounted afterwards."""
    mounted: list[Path] = []

    def mount(name: str, size_mb: int, *, readonly: bool = False) -> Path:
        where = tmp_path / name
        where.mkdir()
        opts = f"size={size_mb}m" + (",ro" if readonly else "")
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], check=False)


def _build(ctx: Path, kaniko_dir: Path, *extra: str) -> CliResult:
    return run_pykaniko(
        [
            "--context", str(ctx), "--dockerfile", str(ctx / "Dockerfile"), "--no-push",
            "--insecure-pull", "--kaniko-dir", str(kaniko_dir), *extra,
        ]
    )  # fmt: skip


def _context(tmp_path: Path, dockerfile: str) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    return ctx


def _failed(result: CliResult, kaniko_dir: Path) -> str:
    assert result.status != 0, result.stderr
    assert_clean_output(result.stdout + result.stderr, kaniko_dirs=[kaniko_dir])
    assert not list(kaniko_dir.glob("build-*")), "the work dir was not cleaned"
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_a_full_kaniko_dir_during_copy(busybox_image: str, tmp_path: Path, tmpfs: Mounter) -> None:
    kaniko = tmpfs("kaniko", 8)
    ctx = _context(tmp_path, f"FROM {busybox_image}\nCOPY big.bin /data/big.bin\n")
    with open(ctx / "big.bin", "wb") as f:
        f.write(os.urandom(12 << 20))
    line = _failed(_build(ctx, kaniko), kaniko)
    assert line.startswith(
        "error: Dockerfile:2: COPY big.bin /data/big.bin: no space left on the device "
        f"holding --kaniko-dir={kaniko} (8.4 MB, "
    ), line
    assert "; the build needed more than the " in line
    assert "(hint: give --kaniko-dir=" in line


def test_a_full_kaniko_dir_while_writing_the_layer(
    busybox_image: str, tmp_path: Path, tmpfs: Mounter
) -> None:
    kaniko = tmpfs("kaniko", 12)
    # the file takes 60% of what is free: it fits in the rootfs, its layer (random
    # bytes do not compress) does not
    ctx = _context(
        tmp_path,
        f"FROM {busybox_image}\n"
        "RUN free=$(df -k / | tail -1 | awk '{print $4}') && "
        "head -c $((free * 1024 * 6 / 10)) /dev/urandom > /r && echo wrote\n",
    )
    line = _failed(_build(ctx, kaniko), kaniko)
    assert line.startswith(
        "error: Dockerfile:2: writing the layer: no space left on the device holding "
        f"--kaniko-dir={kaniko}"
    ), line


def test_a_run_that_fills_the_disk_says_so(
    busybox_image: str, tmp_path: Path, tmpfs: Mounter
) -> None:
    kaniko = tmpfs("kaniko", 8)
    ctx = _context(tmp_path, f"FROM {busybox_image}\nRUN head -c 20000000 /dev/zero > /z\n")
    line = _failed(_build(ctx, kaniko), kaniko)
    assert "Dockerfile:2: RUN head -c 20000000 /dev/zero > /z: the command returned a" in line
    assert f"(hint: the filesystem of --kaniko-dir={kaniko} is full" in line


@pytest.mark.parametrize(
    "flag",
    ["--tar-path={}/image.tar", "--digest-file={}/digest", "--oci-layout-path={}/layout"],
)
def test_a_read_only_output_dir(
    busybox_image: str, tmp_path: Path, tmpfs: Mounter, kaniko_dir: Path, flag: str
) -> None:
    out = tmpfs("out", 1, readonly=True)
    ctx = _context(tmp_path, f"FROM {busybox_image}\nRUN echo hi > /hi\n")
    option = flag.format(out)
    line = _failed(_build(ctx, kaniko_dir, option), kaniko_dir)
    assert line == f"error: cannot write {option}: Read-only file system", line


def test_a_full_output_dir_says_how_much_is_needed(
    busybox_image: str, tmp_path: Path, tmpfs: Mounter, kaniko_dir: Path
) -> None:
    out = tmpfs("out", 1)
    ctx = _context(tmp_path, f"FROM {busybox_image}\nRUN echo hi > /hi\n")
    line = _failed(_build(ctx, kaniko_dir, f"--tar-path={out}/image.tar"), kaniko_dir)
    assert line.startswith(
        f"error: writing --tar-path={out}/image.tar: no space left on the device holding "
        f"--tar-path={out}/image.tar (1.0 MB, "
    ), line
    assert "; it needs about 1.1 MB" in line


def test_names_the_kernel_refuses_are_shown_as_image_paths(
    busybox_image: str, tmp_path: Path, kaniko_dir: Path
) -> None:
    long = "n" * 300
    ctx = _context(tmp_path, f"FROM {busybox_image}\nCOPY f /srv/{long}\n")
    (ctx / "f").write_text("x")
    line = _failed(_build(ctx, kaniko_dir), kaniko_dir)
    assert line.startswith("error: Dockerfile:2: COPY f …: "), line
    assert line.endswith(f": File name too long (/srv/{long})"), line

    (ctx / "Dockerfile").write_text(f"FROM {busybox_image}\nWORKDIR /w/{long}/x\n")
    line = _failed(_build(ctx, kaniko_dir), kaniko_dir)
    assert line.startswith("error: Dockerfile:2: WORKDIR"), line
    assert "File name too long" in line
