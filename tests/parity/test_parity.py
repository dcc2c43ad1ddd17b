"""Parity with buildah: each Dockerfile under ``cases/`` is built by buildah and by the
pykaniko CLI from the same busybox base, both are pushed to the session registry, and
the flattened images must not differ (buildah's own noise left out: see
``tests.support.imagediff.BUILDAH_NOISE``).

A case is a directory holding a ``Dockerfile`` that starts ``ARG BASE`` + ``FROM
${BASE}`` and its context files; optional ``target`` (the stage to build) and
``build-args`` (``NAME=VALUE`` lines) files. Cases stay clear of the places where
buildah 1.28 departs from Docker (heredocs, ARG in ``COPY --from``, stage ARG
inheritance, ``SHELL`` with shell-form CMD, VOLUME directories).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import pytest

from tests.parity.cli import run_pykaniko
from tests.parity.conftest import ParityBase
from tests.support.buildah import BuildahStore, buildah_build
from tests.support.imagediff import ImageSnapshot, buildah_noise, diff_images, snapshot_image
from tests.support.registry import RegistryServer

pytestmark = [pytest.mark.parity, pytest.mark.e2e]

CASES_DIR: Final = Path(__file__).parent / "cases"
CASES: Final = sorted(p.name for p in CASES_DIR.iterdir() if (p / "Dockerfile").is_file())


def _build_args(case_dir: Path) -> dict[str, str]:
    path = case_dir / "build-args"
    if not path.is_file():
        return {}
    lines = (line.partition("=") for line in path.read_text().splitlines() if line.strip())
    return {name: value for name, _, value in lines}


def _target(case_dir: Path) -> str | None:
    path = case_dir / "target"
    return path.read_text().strip() if path.is_file() else None


def _assert_same(oracle: ImageSnapshot, ours: ImageSnapshot) -> None:
    differences = diff_images(oracle, ours, ignore=buildah_noise(), names=("buildah", "pykaniko"))
    assert not differences, "images differ:\n" + "\n".join(differences)


def test_base_image_parity(
    parity_base: ParityBase, registry: RegistryServer, buildah_store: BuildahStore
) -> None:
    """``FROM scratch`` + ``ADD rootfs.tar /``: the base every case builds on."""
    oracle_ref = f"{registry.host}/parity/busybox-base:buildah"
    buildah_build(
        parity_base.context, parity_base.context / "Dockerfile", oracle_ref, store=buildah_store
    )
    _assert_same(snapshot_image(oracle_ref), snapshot_image(parity_base.ref))


@pytest.mark.parametrize("case", CASES)
def test_case_parity(
    case: str,
    parity_base: ParityBase,
    registry: RegistryServer,
    buildah_store: BuildahStore,
    kaniko_root: Path,
) -> None:
    context = CASES_DIR / case
    dockerfile = context / "Dockerfile"
    build_args = {"BASE": parity_base.ref, **_build_args(context)}
    target = _target(context)
    oracle_ref = f"{registry.host}/parity/{case}:buildah"
    ours_ref = f"{registry.host}/parity/{case}:pykaniko"

    buildah_build(
        context,
        dockerfile,
        oracle_ref,
        store=buildah_store,
        target=target,
        build_args=build_args,
    )
    run_pykaniko(
        context,
        dockerfile,
        ours_ref,
        kaniko_dir=kaniko_root / case,
        build_args=build_args,
        target=target,
    )
    _assert_same(snapshot_image(oracle_ref), snapshot_image(ours_ref))
