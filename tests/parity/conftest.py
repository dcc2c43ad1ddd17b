"""Fixtures of the parity suite: the busybox base, built and pushed by pykaniko
itself, and one buildah storage root for the whole session."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
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
from tests.support.buildah import BuildahStore, buildah_available, make_buildah_store
from tests.support.readers import readers_available
from tests.support.registry import RegistryServer


def _fast_tmp(prefix: str) -> Path:
    """A scratch directory on tmpfs when there is one (files cost 0.5 ms on disk)."""
    shm = Path("/dev/shm")
    return Path(tempfile.mkdtemp(prefix=prefix, dir=shm if shm.is_dir() else None))


@dataclass(frozen=True)
class ParityBase:
    """The busybox base: where it was pushed and the context it was built from."""

    ref: str
    context: Path


@pytest.fixture(scope="session")
def parity_tools() -> None:
    missing = [
        name
        for name, ok in (
            ("buildah", buildah_available()),
            ("skopeo and umoci", readers_available()),
            ("busybox-static", busybox_available()),
        )
        if not ok
    ]
    if missing:
        pytest.skip(f"parity needs {', '.join(missing)}")


@pytest.fixture(scope="session")
def kaniko_root(parity_tools: None) -> Iterator[Path]:
    """Parent of each pykaniko build's ``--kaniko-dir`` (tmpfs, like buildah's store)."""
    root = _fast_tmp("parity-kaniko-")
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def buildah_store(parity_tools: None) -> Iterator[BuildahStore]:
    """One buildah storage root per session: the base is pulled once."""
    root = _fast_tmp("parity-buildah-")
    store = make_buildah_store(root)
    try:
        yield store
    finally:
        for args in (("rm", "--all"), ("rmi", "--all", "--force")):
            with contextlib.suppress(AssertionError):
                store.run(*args)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def parity_base(
    registry: RegistryServer,
    kaniko_root: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> ParityBase:
    """``{registry.host}/busybox:1``, built by the pykaniko CLI from ``FROM scratch`` +
    ``ADD rootfs.tar /`` + ``ENV PATH`` + ``CMD ["sh"]``."""
    context = tmp_path_factory.mktemp("busybox-base")
    make_busybox_rootfs_tar(context)
    dockerfile = context / "Dockerfile"
    dockerfile.write_text(busybox_dockerfile())
    ref = f"{registry.host}/busybox:1"
    run_pykaniko(context, dockerfile, ref, kaniko_dir=kaniko_root / "busybox-base")
    return ParityBase(ref=ref, context=context)
