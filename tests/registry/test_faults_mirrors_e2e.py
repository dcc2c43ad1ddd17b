"""Pushing and pulling through a proxy that injects faults, and pulling through
mirrors and registry maps that are dead, missing the image, or good."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pykaniko.errors import NotFoundError, RegistryError
from pykaniko.image.blobstore import BlobStore
from pykaniko.image.manifest import Manifest
from pykaniko.image.platform import Platform
from pykaniko.image.reference import parse_reference
from pykaniko.registry import RegistryClient, RegistryOptions, StaticKeychain
from tests.registry.imagegen import make_image
from tests.support.registry import FaultProxy, RegistryServer, free_port

pytestmark = pytest.mark.e2e
LINUX = Platform("linux", "amd64")


def _fast(**changes: Any) -> RegistryOptions:
    """Options with short backoffs so fault tests stay quick."""
    return replace(RegistryOptions(transport_backoff=0.01, retry_backoff=0.02), **changes)


def _tags_are_complete(registry: RegistryServer, repository: str) -> int:
    """Every tag's manifest and blobs exist (read straight from the registry)."""
    import json

    with urllib.request.urlopen(f"{registry.url}/v2/{repository}/tags/list") as resp:
        tags = json.load(resp).get("tags") or []
    for tag in tags:
        req = urllib.request.Request(
            f"{registry.url}/v2/{repository}/manifests/{tag}",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        )
        with urllib.request.urlopen(req) as resp:
            manifest = Manifest.parse(resp.read())
        for desc in (manifest.config, *manifest.layers):
            head = urllib.request.Request(
                f"{registry.url}/v2/{repository}/blobs/{desc.digest}", method="HEAD"
            )
            with urllib.request.urlopen(head) as resp:
                assert resp.status == 200
    return len(tags)


def test_push_and_pull_through_faults(
    registry: RegistryServer, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    fault_proxy.configure(rate=0.2)
    notices: list[str] = []
    client = RegistryClient(
        _fast(push_retry=3, image_download_retry=3), StaticKeychain(), notify=notices.append
    )
    pushed: list[Manifest] = []
    for i in range(4):
        store = BlobStore(tmp_path / f"s{i}")
        manifest, _ = make_image(
            store, [{"n": str(i).encode() * 5000}, {"m": bytes(range(256)) * 40 + bytes([i])}]
        )
        ref = parse_reference(f"{fault_proxy.host}/faulty/app:t{i}")
        assert client.push(manifest, [ref], store) == manifest.digest
        pushed.append(manifest)
    for i, manifest in enumerate(pushed):
        dst = BlobStore(tmp_path / f"d{i}")
        pulled = client.pull(parse_reference(f"{fault_proxy.host}/faulty/app:t{i}"), LINUX, dst)
        assert pulled.digest == manifest.digest
        for path, desc in zip(
            client.fetch_layers(pulled, pulled.manifest.layers, dst), manifest.layers, strict=True
        ):
            assert path.stat().st_size == desc.size
    assert len(fault_proxy.faults) >= 3, fault_proxy.faults
    assert {k for k, _m, _p in fault_proxy.faults} & {"truncate", "corrupt", "reset", "503"}
    assert any("retrying" in n for n in notices)
    fault_proxy.configure(rate=0.0)
    assert _tags_are_complete(registry, "faulty/app") == 4


def test_failed_push_leaves_no_dangling_tag(
    registry: RegistryServer, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    fault_proxy.configure(rate=1.0, kinds=("503",))
    client = RegistryClient(_fast(transport_retries=1), StaticKeychain())
    store = BlobStore(tmp_path)
    manifest, _ = make_image(store, [{"x": b"never"}])
    with pytest.raises(RegistryError) as info:
        client.push(manifest, [parse_reference(f"{fault_proxy.host}/faulty/never:1")], store)
    assert info.value.status == 503 or info.value.temporary
    fault_proxy.configure(rate=0.0)
    req = urllib.request.Request(f"{registry.url}/v2/faulty/never/manifests/1", method="HEAD")
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(req)


@pytest.fixture(scope="module")
def original(registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    """An image at REGISTRY/orig/app:1 and a different one at REGISTRY/mirror/orig/app:1."""
    store = BlobStore(tmp_path_factory.mktemp("orig"))
    manifest, _ = make_image(store, [{"who": b"original"}])
    client = RegistryClient(RegistryOptions(), StaticKeychain())
    client.push(manifest, [parse_reference(f"{registry.host}/orig/app:1")], store)
    mirrored, _ = make_image(store, [{"who": b"mirror"}])
    client.push(mirrored, [parse_reference(f"{registry.host}/mirror/orig/app:1")], store)
    return manifest


def _pull_with(
    registry: RegistryServer, tmp_path: Path, maps: tuple[str, ...], *, fallback: bool = True
) -> str:
    options = _fast(
        registry_maps={registry.host: maps},
        skip_default_registry_fallback=not fallback,
    )
    pulled = RegistryClient(options, StaticKeychain()).pull(
        parse_reference(f"{registry.host}/orig/app:1"), LINUX, BlobStore(tmp_path)
    )
    return pulled.source.name


def test_map_good_mirror_is_used(
    registry: RegistryServer, original: Manifest, tmp_path: Path
) -> None:
    assert (
        _pull_with(registry, tmp_path, (f"{registry.host}/mirror",))
        == f"{registry.host}/mirror/orig/app"
    )


def test_map_dead_mirror_falls_back_fast(
    registry: RegistryServer, original: Manifest, tmp_path: Path
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    start = time.monotonic()
    assert _pull_with(registry, tmp_path, (dead,)) == f"{registry.host}/orig/app"
    assert time.monotonic() - start < 5


def test_map_missing_image_falls_back(
    registry: RegistryServer, original: Manifest, tmp_path: Path
) -> None:
    assert (
        _pull_with(registry, tmp_path, (f"{registry.host}/elsewhere",))
        == f"{registry.host}/orig/app"
    )


def test_no_fallback_lists_every_registry_tried(
    registry: RegistryServer, original: Manifest, tmp_path: Path
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    with pytest.raises(RegistryError) as info:
        _pull_with(registry, tmp_path, (dead, f"{registry.host}/elsewhere"), fallback=False)
    text = str(info.value)
    assert dead in text
    assert "Connection refused" in text
    assert f"{registry.host}/elsewhere/orig/app" in text
    assert "fallback" in (info.value.hint or "")


def test_docker_hub_mirror(registry: RegistryServer, tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "s")
    manifest, _ = make_image(store, [{"bin/busybox": b"not really"}])
    RegistryClient(RegistryOptions(), StaticKeychain()).push(
        manifest, [parse_reference(f"{registry.host}/library/busybox:1.36")], store
    )
    options = RegistryOptions(mirrors=(registry.host,), skip_default_registry_fallback=True)
    client = RegistryClient(options, StaticKeychain())
    pulled = client.pull(parse_reference("busybox:1.36"), LINUX, BlobStore(tmp_path / "d"))
    assert pulled.digest == manifest.digest
    assert pulled.ref == parse_reference("docker.io/library/busybox:1.36")
    with pytest.raises(NotFoundError):
        client.pull(parse_reference("busybox:nope"), LINUX, BlobStore(tmp_path / "e"))
