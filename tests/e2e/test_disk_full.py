"""A full disk under --kaniko-dir: one clean error line that says so, names the path
inside the image and how much was needed, never the host work dir; nothing is left."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from tests.e2e.conftest import run_pykaniko
from tests.e2e.test_replacing_layers import push_image
from tests.support.faults import tmpfs
from tests.support.registry import RegistryServer

pytestmark = [pytest.mark.e2e, pytest.mark.root]


def _big_layer(size: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        ti = tarfile.TarInfo("opt/big.bin")
        ti.size, ti.mode, ti.mtime = size, 0o644, 1_700_000_000
        tf.addfile(ti, io.BytesIO(os.urandom(size)))
    return buf.getvalue()


def test_base_extraction_on_a_full_disk(
    registry: RegistryServer, busybox_image: str, tmp_path: Path
) -> None:
    ref = push_image(registry, busybox_image, "diskfull/base", [_big_layer(6 << 20)], tmp_path)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {ref}\nRUN true\n")
    with tmpfs("12m") as kaniko_dir:
        result = run_pykaniko(
            [
                "--context", str(ctx), "--dockerfile", str(ctx / "Dockerfile"),
                "--destination", f"{registry.host}/diskfull/out:1",
                "--insecure", "--insecure-pull", "--kaniko-dir", str(kaniko_dir),
            ]
        )  # fmt: skip
        leftovers = [p.name for p in kaniko_dir.iterdir()]
    assert result.status != 0
    assert "Traceback" not in result.stderr
    assert str(kaniko_dir) not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    line = errors[0]
    assert "no space left on device" in line, line
    assert "/opt/big.bin" in line
    assert "6.0 MiB" in line
    assert not [n for n in leftovers if n.startswith("build-")], leftovers
