"""Resolving base images in the background: ``prefetch``/``resolve_all`` run
concurrently, and a later ``pull`` takes their result without asking again."""

from __future__ import annotations

from pathlib import Path

import pytest

from pykaniko.errors import NotFoundError
from pykaniko.image.blobstore import BlobStore
from pykaniko.image.platform import Platform
from pykaniko.image.reference import parse_reference
from pykaniko.registry import RegistryClient, RegistryOptions, StaticKeychain
from tests.registry.imagegen import make_image
from tests.support.registry import FaultProxy, RegistryServer

pytestmark = pytest.mark.e2e
LINUX = Platform("linux", "amd64")


def test_prefetched_bases_are_not_asked_for_again(
    registry: RegistryServer, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    src = BlobStore(tmp_path / "src")
    pusher = RegistryClient(RegistryOptions(), StaticKeychain())
    digests = []
    for name in ("one", "two"):
        manifest, _ = make_image(src, [{name: name.encode() * 1000}])
        pusher.push(manifest, [parse_reference(f"{registry.host}/prefetch/{name}:1")], src)
        digests.append(manifest.digest)
    store = BlobStore(tmp_path / "dst")
    client = RegistryClient(RegistryOptions(), StaticKeychain())
    refs = [parse_reference(f"{fault_proxy.host}/prefetch/{n}:1") for n in ("one", "two")]
    futures = client.resolve_all([(r, LINUX) for r in refs], store)
    assert [f.result().digest for f in futures] == digests
    asked = len(fault_proxy.log)
    pulled = [client.pull(r, LINUX, store) for r in refs]
    assert [p.digest for p in pulled] == digests
    assert len(fault_proxy.log) == asked  # served from the prefetch

    layers = client.prefetch(refs[0], LINUX, store, layers=True).result()
    assert store.has(layers.manifest.layers[0].digest)

    missing = client.prefetch(parse_reference(f"{fault_proxy.host}/prefetch/none:1"), LINUX, store)
    with pytest.raises(NotFoundError):
        missing.result()
    with pytest.raises(NotFoundError):  # the pull asks again, and fails the same way
        client.pull(parse_reference(f"{fault_proxy.host}/prefetch/none:1"), LINUX, store)
    client.close()
