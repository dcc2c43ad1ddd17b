"""One-off faults on the wire are survived, through a proxy in front of a real
registry: a body that breaks off (resumed with ``Range``), one that arrives with one
byte flipped (fetched again), an upload the registry got wrong (sent again from a new
session). Only content that stays wrong fails, with a code a cache reader can tell."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pykaniko.errors import RegistryError
from pykaniko.image.blobstore import BlobStore
from pykaniko.image.digest import sha256_file
from pykaniko.image.manifest import Manifest
from pykaniko.image.platform import Platform
from pykaniko.image.reference import parse_reference
from pykaniko.registry import RegistryClient, RegistryOptions, StaticKeychain, is_bad_blob
from tests.registry.imagegen import make_image
from tests.support.registry import FaultProxy, RegistryServer

pytestmark = pytest.mark.e2e
LINUX = Platform("linux", "amd64")
BLOB = r"/blobs/sha256:"


def _fast(**changes: Any) -> RegistryOptions:
    return replace(RegistryOptions(transport_backoff=0.01, retry_backoff=0.02), **changes)


@pytest.fixture(scope="module")
def image(registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    """``faults/base:1``: one layer of 3 MB (so a cut body has a middle to resume
    from), pushed straight to the registry."""
    store = BlobStore(tmp_path_factory.mktemp("faults-base"))
    big = bytes(range(256)) * 12000
    manifest, _ = make_image(store, [{"big": big + b"tail"}, {"small": b"x"}])
    client = RegistryClient(RegistryOptions(), StaticKeychain())
    client.push(manifest, [parse_reference(f"{registry.host}/faults/base:1")], store)
    return manifest


def _pull_all(client: RegistryClient, host: str, store: BlobStore) -> Manifest:
    pulled = client.pull(parse_reference(f"{host}/faults/base:1"), LINUX, store)
    for path, desc in zip(
        client.fetch_layers(pulled, pulled.manifest.layers, store),
        pulled.manifest.layers,
        strict=True,
    ):
        assert sha256_file(str(path)) == (desc.digest, desc.size)
    return pulled.manifest


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("truncate", BLOB),
        ("reset-mid-body", BLOB),
        ("corrupt", BLOB),
        ("reset", BLOB),
        ("503", BLOB),
        ("truncate", "/manifests/"),
        ("reset-mid-body", "/manifests/"),
        ("corrupt", "/manifests/"),
    ],
)
def test_one_off_pull_fault_is_survived(
    kind: str, path: str, image: Manifest, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    fault_proxy.add_rule(kind, "GET", path)
    notices: list[str] = []
    client = RegistryClient(_fast(), StaticKeychain(), notify=notices.append)
    assert _pull_all(client, fault_proxy.host, BlobStore(tmp_path)).digest == image.digest
    assert [f[0] for f in fault_proxy.faults] == [kind]
    assert notices, "the retry was not reported"


def test_a_cut_blob_is_resumed_with_range(
    image: Manifest, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    big = image.layers[0]
    fault_proxy.add_rule("reset-mid-body", "GET", big.digest)
    notices: list[str] = []
    client = RegistryClient(_fast(), StaticKeychain(), notify=notices.append)
    _pull_all(client, fault_proxy.host, BlobStore(tmp_path))
    gets = [s for m, p, s in fault_proxy.log if m == "GET" and p.endswith(big.digest)]
    assert gets == [200, 206], fault_proxy.log
    assert any("resuming at byte" in n for n in notices), notices


def test_a_blob_that_stays_wrong_fails_with_a_code(
    image: Manifest, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    small = image.layers[1]
    fault_proxy.add_rule("corrupt", "GET", small.digest, times=100)
    client = RegistryClient(_fast(image_download_retry=2), StaticKeychain())
    with pytest.raises(RegistryError) as info:
        _pull_all(client, fault_proxy.host, BlobStore(tmp_path))
    err = info.value
    assert is_bad_blob(err)
    assert err.code == "registry-digest-mismatch"
    assert f"pull blob {small.digest[:19]}" in err.message
    assert f"expected {small.size} bytes with {small.digest[:19]}" in err.message
    assert fault_proxy.host in err.message
    assert sum(1 for _k, _m, p in fault_proxy.faults if p.endswith(small.digest)) == 3


def test_no_retry_when_asked_for_none(
    image: Manifest, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    fault_proxy.add_rule("corrupt", "GET", image.layers[1].digest)
    client = RegistryClient(_fast(image_download_retry=0), StaticKeychain())
    with pytest.raises(RegistryError) as info:
        _pull_all(client, fault_proxy.host, BlobStore(tmp_path))
    assert is_bad_blob(info.value)


def test_a_blob_wrong_at_a_mirror_comes_from_the_next(
    registry: RegistryServer, image: Manifest, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    """The map sends pulls to the proxy, which keeps corrupting one blob: after its
    retries there, the blob comes from the original registry."""
    small = image.layers[1]
    fault_proxy.add_rule("corrupt", "GET", small.digest, times=100)
    notices: list[str] = []
    options = _fast(image_download_retry=1, registry_maps={registry.host: (fault_proxy.host,)})
    client = RegistryClient(options, StaticKeychain(), notify=notices.append)
    store = BlobStore(tmp_path)
    pulled = client.pull(parse_reference(f"{registry.host}/faults/base:1"), LINUX, store)
    assert pulled.source.registry == fault_proxy.host
    client.fetch_layers(pulled, pulled.manifest.layers, store)
    assert sha256_file(str(store.path(small.digest)))[0] == small.digest
    assert any(f"trying {registry.host}/faults/base" in n for n in notices), notices


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("corrupt-request", r"/blobs/uploads/"),
        ("truncate-request", r"/blobs/uploads/"),
        ("reset-request", r"/blobs/uploads/"),
        ("reset", r"/blobs/uploads/"),
        ("503", r"/blobs/uploads/"),
        ("corrupt-request", r"/manifests/"),
        ("truncate-request", r"/manifests/"),
        ("reset-request", r"/manifests/"),
    ],
)
def test_one_off_push_fault_is_survived(
    kind: str, path: str, registry: RegistryServer, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    store = BlobStore(tmp_path)
    manifest, _ = make_image(store, [{"p": kind.encode() * 40000}])
    fault_proxy.add_rule(kind, "PUT", path)
    notices: list[str] = []
    client = RegistryClient(_fast(), StaticKeychain(), notify=notices.append)
    ref = parse_reference(f"{fault_proxy.host}/faults/push-{kind}:1")
    assert client.push(manifest, [ref], store) == manifest.digest
    assert [f[0] for f in fault_proxy.faults] == [kind]
    # what the registry holds is right: pull it back past the proxy
    back = RegistryClient(RegistryOptions(), StaticKeychain())
    direct = parse_reference(f"{registry.host}/faults/push-{kind}:1")
    pulled = back.pull(direct, LINUX, BlobStore(tmp_path / "back"))
    assert pulled.digest == manifest.digest
    back.fetch_layers(pulled, pulled.manifest.layers, BlobStore(tmp_path / "back"))


def test_an_upload_that_stays_wrong_fails(
    registry: RegistryServer, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    store = BlobStore(tmp_path)
    manifest, _ = make_image(store, [{"q": b"always wrong" * 100}])
    layer_hex = manifest.layers[0].digest.split(":")[1]
    fault_proxy.add_rule("corrupt-request", "PUT", r"/blobs/uploads/.*" + layer_hex, times=100)
    client = RegistryClient(_fast(transport_retries=2), StaticKeychain())
    with pytest.raises(RegistryError) as info:
        client.push(manifest, [parse_reference(f"{fault_proxy.host}/faults/never:1")], store)
    assert info.value.code == "registry-digest-invalid"
    assert "HTTP 400" in info.value.message
    assert f"{fault_proxy.host}/faults/never" in info.value.message
    puts = [p for _k, m, p in fault_proxy.faults if m == "PUT"]
    assert len(puts) == 3
    assert not any("/manifests/" in p for _m, p, _s in fault_proxy.log)


def test_a_probe_can_ask_for_one_attempt(
    image: Manifest, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    """A layer-cache probe passes ``attempts=1``: a busy registry is a quick miss."""
    fault_proxy.add_rule("503", "GET", "/manifests/", times=100)
    client = RegistryClient(_fast(transport_retries=0), StaticKeychain())
    ref = parse_reference(f"{fault_proxy.host}/faults/base:1")
    with pytest.raises(RegistryError) as info:
        client.pull(ref, LINUX, BlobStore(tmp_path), attempts=1)
    assert info.value.status == 503
    assert len(fault_proxy.faults) == 1
