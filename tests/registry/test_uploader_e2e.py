"""The pipelined push against a real registry: layers submitted as they are written
upload in the background to every destination (one upload per blob, mounts for the
other repositories), manifests go last, and a failure tags nothing anywhere."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pykaniko.errors import RegistryError
from pykaniko.image import mediatypes as mt
from pykaniko.image.blobstore import BlobStore
from pykaniko.image.config import ImageConfig
from pykaniko.image.manifest import Descriptor, Manifest
from pykaniko.image.reference import parse_reference
from pykaniko.registry import RegistryClient, RegistryOptions, StaticKeychain
from tests.registry.imagegen import make_layer
from tests.support.readers import skopeo_inspect
from tests.support.registry import FaultProxy, RegistryServer

pytestmark = pytest.mark.e2e


def _manifest(store: BlobStore, layers: list[tuple[Descriptor, str]]) -> Manifest:
    config = ImageConfig(architecture="amd64", os="linux", diff_ids=tuple(d for _l, d in layers))
    raw = config.to_json()
    digest = store.put_bytes(raw)
    return Manifest.build(
        media_type=mt.OCI_MANIFEST,
        config=Descriptor(mt.OCI_CONFIG, digest, len(raw)),
        layers=tuple(desc for desc, _d in layers),
    )


def _tagged(registry: RegistryServer, repository: str, tag: str) -> bool:
    req = urllib.request.Request(
        f"{registry.url}/v2/{repository}/manifests/{tag}",
        method="HEAD",
        headers={"Accept": mt.OCI_MANIFEST},
    )
    try:
        with urllib.request.urlopen(req, timeout=10):
            return True
    except urllib.error.HTTPError:
        return False


def test_layers_upload_while_the_build_goes_on(
    registry: RegistryServer, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    store = BlobStore(tmp_path)
    host = fault_proxy.host
    dests = [parse_reference(f"{host}/pipe/app:1"), parse_reference(f"{host}/pipe/app-copy:1")]
    cache = parse_reference(f"{host}/pipe/app/cache:k1")
    client = RegistryClient(RegistryOptions(), StaticKeychain())
    layers: list[tuple[Descriptor, str]] = []
    with client.uploader([*dests, cache], store) as up:
        for i in range(3):  # "steps": each layer is submitted as soon as it is written
            layer = make_layer(store, {f"step{i}": bytes([i]) * 200_000})
            layers.append(layer)
            up.submit(layer[0].digest)
        cache_image = _manifest(store, layers[-1:])
        cached = up.push_async(cache_image, [cache])
        image = _manifest(store, layers)
        assert up.push(image, dests) == image.digest
        assert cached.result() == cache_image.digest
        up.wait()
    for ref in (*dests, cache):
        info = skopeo_inspect(f"{registry.host}/{ref.repository}:{ref.tag}")
        assert len(info["Layers"]) == (1 if ref is cache else 3)
    puts = [p for m, p, s in fault_proxy.log if m == "PUT" and "/blobs/uploads/" in p]
    mounts = [p for m, p, s in fault_proxy.log if m == "POST" and "mount=" in p and s == 201]
    # every layer uploaded once (to one repository), the config of each image once
    assert len(puts) == 3 + 2, fault_proxy.log
    # the other two repositories mount the layers they need
    assert len(mounts) >= 3 + 1, fault_proxy.log
    assert client.transport is not None
    client.close()


def test_a_failed_upload_tags_nothing(
    registry: RegistryServer, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    store = BlobStore(tmp_path)
    host = fault_proxy.host
    dests = [
        parse_reference(f"{host}/pipe/fail-a:1"),
        parse_reference(f"{registry.host}/pipe/fail-b:1"),
    ]
    fault_proxy.add_rule("503", "PUT", r"/blobs/uploads/", times=1000)
    fault_proxy.add_rule("503", "POST", r"mount=", times=1000)
    options = RegistryOptions(transport_retries=1, transport_backoff=0.01)
    client = RegistryClient(options, StaticKeychain())
    layers = []

    def build_and_push() -> None:
        with client.uploader(dests, store) as up:
            for i in range(2):
                layer = make_layer(store, {f"f{i}": bytes([i]) * 1000})
                layers.append(layer)
                up.submit(layer[0].digest)
            up.push(_manifest(store, layers))

    with pytest.raises(RegistryError) as info:
        build_and_push()
    assert info.value.status == 503 or info.value.temporary
    assert host in str(info.value)
    assert not _tagged(registry, "pipe/fail-a", "1")
    assert not _tagged(registry, "pipe/fail-b", "1")
    client.close()
