"""Snapshot modes end to end: every mode builds the same image contents (whiteouts and
opaque directories included), ``--single-snapshot`` gives one layer per stage, and
``--reproducible`` gives identical digests for identical inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import run_pykaniko
from tests.support.imagediff import diff_images, snapshot_image
from tests.support.readers import skopeo_inspect
from tests.support.registry import RegistryServer

pytestmark = [pytest.mark.e2e, pytest.mark.root]

DOCKERFILE = """\
FROM {base}
RUN mkdir -p /work/keep /work/gone && echo 1 > /work/keep/a && echo 2 > /work/gone/b \\
 && ln /work/keep/a /work/keep/a-link && ln -s ../keep/a /work/gone/sym
RUN rm -rf /work/gone && mkdir /work/gone && echo new > /work/gone/c \\
 && rm /etc/os-release && chmod 0600 /work/keep/a && echo changed > /work/keep/a
COPY data.txt /work/
RUN rm /work/data.txt
"""


def _build(ctx: Path, dest: str, kaniko_dir: Path, *extra: str) -> None:
    result = run_pykaniko(
        [
            "--context", str(ctx), "--dockerfile", str(ctx / "Dockerfile"),
            "--destination", dest, "--insecure", "--insecure-pull",
            "--kaniko-dir", str(kaniko_dir), *extra,
        ]
    )  # fmt: skip
    assert result.status == 0, result.stderr


@pytest.fixture
def context(tmp_path: Path, busybox_image: str) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "data.txt").write_text("data\n")
    (ctx / "Dockerfile").write_text(DOCKERFILE.format(base=busybox_image))
    return ctx


def test_every_mode_builds_the_same_image(
    context: Path, registry: RegistryServer, kaniko_dir: Path
) -> None:
    refs = {}
    for mode in ("full", "redo", "time", "stat"):
        refs[mode] = f"{registry.host}/e2e/modes:{mode}"
        _build(context, refs[mode], kaniko_dir, f"--snapshot-mode={mode}", "--use-new-run")
    reference = snapshot_image(refs["full"])
    files = reference.files
    assert "/work/gone/b" not in files
    assert "/work/gone/c" in files
    assert "/etc/os-release" not in files
    assert "/work/data.txt" not in files
    assert files["/work/keep/a"].mode & 0o7777 == 0o600
    for mode in ("redo", "time", "stat"):
        assert diff_images(reference, snapshot_image(refs[mode]), names=("full", mode)) == []


def test_single_snapshot_and_reproducible(
    context: Path, registry: RegistryServer, kaniko_dir: Path
) -> None:
    single = f"{registry.host}/e2e/single:1"
    _build(context, single, kaniko_dir, "--single-snapshot")
    assert len(skopeo_inspect(single)["Layers"]) == 2  # the base and one for the stage
    digests = []
    for n in (1, 2):
        ref = f"{registry.host}/e2e/repro:{n}"
        _build(context, ref, kaniko_dir, "--reproducible")
        digests.append(skopeo_inspect(ref)["Digest"])
    assert digests[0] == digests[1]
    config = skopeo_inspect(f"{registry.host}/e2e/repro:1", config=True)
    assert config["created"] == "1970-01-01T00:00:00Z"
