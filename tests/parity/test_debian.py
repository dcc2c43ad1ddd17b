"""Parity with buildah on a real Debian base that runs apt-get (issue #4).

The base is the session's ``debian_base`` (``tests/conftest.py``, made by
:mod:`tests.support.debian`), offline except for the Debian mirror the host already
uses: ``debootstrap --variant=minbase bookworm`` into tmpfs, tarred, and turned into
``{registry.host}/debian:bookworm`` by the pykaniko CLI (``FROM scratch`` + ``ADD
rootfs.tar /``). The same base is built by buildah too and the two must match
(``test_debian_base_parity``): the apt test's oracle builds ``FROM`` pykaniko's base,
so a path pykaniko loses there would be lost on both sides of that test.

``debian/apt/Dockerfile`` is then built on the base by buildah and by pykaniko; both RUN
``apt-get update && apt-get install`` against that mirror, and the flattened images must
not differ once the files that record *when* a build ran are left out
(:func:`_debian_noise`).

Slow (debootstrap ~40 s, two apt-get builds): marked ``slow``. Skipped, never failed,
when debootstrap is missing, the test is not root, or the mirror cannot be reached.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Final

import pytest

from tests.parity.cli import run_pykaniko
from tests.support.buildah import BuildahStore, buildah_build
from tests.support.debian import DebianBase
from tests.support.imagediff import DiffIgnore, buildah_noise, diff_images, snapshot_image
from tests.support.registry import RegistryServer

pytestmark = [pytest.mark.slow, pytest.mark.parity, pytest.mark.e2e, pytest.mark.root]

DEBIAN_DIR: Final = Path(__file__).parent / "debian"


# ---------------------------------------------------------------- the test


def _utc_day() -> int:
    return int(time.time()) // 86400


def _debian_noise(*, days: set[int]) -> DiffIgnore:
    """What two apt-get builds legitimately differ in, beyond :data:`BUILDAH_NOISE`
    (which already drops ``/var/cache/apt/*.bin``, ``/var/cache/ldconfig/aux-cache`` and
    ``/var/log/*``: apt's binary caches and logs carry timestamps).

    ``/etc/shadow``: ``useradd`` writes the day of the last password change (days since
    the epoch, UTC). Both builds write the same bytes on the same day; only a run that
    crosses midnight between the two useradd calls gets two different files, so the
    path is dropped then and only then.
    """
    if len(days) > 1:
        return DiffIgnore(paths=frozenset({"/etc/shadow"}))
    return DiffIgnore()


def test_debian_base_parity(
    debian_base: DebianBase, registry: RegistryServer, buildah_store: BuildahStore
) -> None:
    """``FROM scratch`` + ``ADD rootfs.tar /`` of the debootstrapped tree: the base the
    apt test builds on, so that test's oracle does not inherit pykaniko's own base."""
    oracle_ref = f"{registry.host}/parity/debian-base:buildah"
    context = debian_base.context
    buildah_build(context, context / "Dockerfile", oracle_ref, store=buildah_store)
    oracle, ours = snapshot_image(oracle_ref), snapshot_image(debian_base.ref)
    differences = diff_images(oracle, ours, ignore=buildah_noise(), names=("buildah", "pykaniko"))
    assert not differences, "images differ:\n" + "\n".join(differences)


def test_debian_apt_parity(
    debian_base: DebianBase,
    registry: RegistryServer,
    buildah_store: BuildahStore,
    kaniko_root: Path,
) -> None:
    """apt-get update + install, useradd, USER/WORKDIR and a file the user owns."""
    context = DEBIAN_DIR / "apt"
    dockerfile = context / "Dockerfile"
    build_args = {"BASE": debian_base.ref}
    oracle_ref = f"{registry.host}/parity/debian-apt:buildah"
    ours_ref = f"{registry.host}/parity/debian-apt:pykaniko"

    days = {_utc_day()}
    buildah_build(context, dockerfile, oracle_ref, store=buildah_store, build_args=build_args)
    run_pykaniko(
        context,
        dockerfile,
        ours_ref,
        kaniko_dir=kaniko_root / "debian-apt",
        build_args=build_args,
    )
    days.add(_utc_day())

    oracle, ours = snapshot_image(oracle_ref), snapshot_image(ours_ref)
    # The build did what the Dockerfile says (so an empty diff is not two empty images).
    assert "/usr/bin/hello" in ours.files
    assert ours.files["/home/app/mine"].uid == 1001
    assert ours.config.user == "app"
    assert ours.config.working_dir == "/home/app"
    assert ours.config.cmd == ("hello",)

    ignore = buildah_noise() | _debian_noise(days=days)
    differences = diff_images(oracle, ours, ignore=ignore, names=("buildah", "pykaniko"))
    assert not differences, "images differ:\n" + "\n".join(differences)
