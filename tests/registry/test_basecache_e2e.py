"""The base-image cache with a real registry behind a proxy that can be stopped: warm,
then pull with the registry up (asked, cache used), down (cache used), after the tag
moved (registry used), past the TTL (a miss), and by digest (no question asked)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pykaniko.errors import RegistryError
from pykaniko.image.blobstore import BlobStore
from pykaniko.image.manifest import Manifest
from pykaniko.image.platform import Platform
from pykaniko.image.reference import parse_reference
from pykaniko.registry import BaseImageCache, RegistryClient, RegistryOptions, StaticKeychain
from pykaniko.warmer import WarmOptions, dockerfile_images, warm
from tests.registry.imagegen import make_image
from tests.support.registry import FaultProxy, RegistryServer

pytestmark = pytest.mark.e2e
LINUX = Platform("linux", "amd64")
DAY = 86400.0


@pytest.fixture
def proxy(registry: RegistryServer) -> Iterator[FaultProxy]:
    """A way to the registry that the test can take down (``stop``)."""
    p = FaultProxy(registry.host)
    try:
        yield p
    finally:
        p.stop()


def _push(registry: RegistryServer, tmp_path: Path, tag: str, payload: bytes) -> Manifest:
    store = BlobStore(tmp_path / f"src-{tag}")
    manifest, _ = make_image(store, [{"base": payload}, {"more": payload[::-1]}])
    RegistryClient(RegistryOptions(), StaticKeychain()).push(
        manifest, [parse_reference(f"{registry.host}/cached/base:{tag}")], store
    )
    return manifest


def _warm(cache_dir: Path, *images: str, force: bool = False) -> list[str]:
    results = warm(
        WarmOptions(cache_dir=cache_dir, images=images, force=force, platform=LINUX),
        env={},
    )
    return [r.status for r in results]


def _client(cache_dir: Path, ttl: float = DAY, **kw: object) -> tuple[RegistryClient, list[str]]:
    notices: list[str] = []
    options = RegistryOptions(transport_backoff=0.01, retry_backoff=0.01)
    cache = BaseImageCache(cache_dir, ttl, **kw)  # type: ignore[arg-type]
    client = RegistryClient(options, StaticKeychain(), notify=notices.append, base_cache=cache)
    return client, notices


def _pull_all(client: RegistryClient, ref: str, store: BlobStore) -> str:
    pulled = client.pull(parse_reference(ref), LINUX, store)
    for path, desc in zip(
        client.fetch_layers(pulled, pulled.manifest.layers, store),
        pulled.manifest.layers,
        strict=True,
    ):
        assert hashlib.sha256(path.read_bytes()).hexdigest() == desc.digest.split(":")[1]
    return pulled.digest


def test_registry_down_build_uses_the_cache(
    registry: RegistryServer, proxy: FaultProxy, tmp_path: Path
) -> None:
    manifest = _push(registry, tmp_path, "down", os.urandom(50_000))
    cache_dir = tmp_path / "cache"
    ref = f"{proxy.host}/cached/base:down"
    assert _warm(cache_dir, ref) == ["cached"]
    assert _warm(cache_dir, ref) == ["present"]

    client, _ = _client(cache_dir)
    before = len(proxy.log)
    assert _pull_all(client, ref, BlobStore(tmp_path / "up")) == manifest.digest
    asked = [(m, s) for m, _p, s in proxy.log[before:]]
    assert asked == [("GET", 200), ("HEAD", 200)], asked  # the ping and the tag: no blobs

    proxy.stop()
    client, notices = _client(cache_dir)
    assert _pull_all(client, ref, BlobStore(tmp_path / "down")) == manifest.digest
    assert any("base-image cache" in n for n in notices), notices


def test_a_stalled_registry_is_not_waited_for(
    registry: RegistryServer, proxy: FaultProxy, tmp_path: Path
) -> None:
    """The registry accepts connections but does not answer: after a short wait the
    cached image is used (measured in benchmarks/registry.py, not asserted here)."""
    manifest = _push(registry, tmp_path, "slow", os.urandom(20_000))
    cache_dir = tmp_path / "cache"
    ref = f"{proxy.host}/cached/base:slow"
    assert _warm(cache_dir, ref) == ["cached"]
    proxy.stall_seconds = 20.0
    proxy.add_rule("stall", "*", "", times=100)
    client, notices = _client(cache_dir)
    assert _pull_all(client, ref, BlobStore(tmp_path / "s")) == manifest.digest
    assert any("timed out" in n and "base-image cache" in n for n in notices), notices


def test_digest_references_never_ask(
    registry: RegistryServer, proxy: FaultProxy, tmp_path: Path
) -> None:
    manifest = _push(registry, tmp_path, "pinned", os.urandom(20_000))
    cache_dir = tmp_path / "cache"
    assert _warm(cache_dir, f"{proxy.host}/cached/base:pinned") == ["cached"]
    before = len(proxy.log)
    client, _ = _client(cache_dir)
    pinned = f"{proxy.host}/cached/base@{manifest.digest}"
    assert _pull_all(client, pinned, BlobStore(tmp_path / "s")) == manifest.digest
    assert proxy.log[before:] == []


def test_a_moved_tag_is_pulled_again(
    registry: RegistryServer, proxy: FaultProxy, tmp_path: Path
) -> None:
    payload = os.urandom(30_000)
    _push(registry, tmp_path, "moving", payload)
    cache_dir = tmp_path / "cache"
    ref = f"{proxy.host}/cached/base:moving"
    assert _warm(cache_dir, ref) == ["cached"]
    moved = _push(registry, tmp_path, "moving2", payload + b"v2")
    RegistryClient(RegistryOptions(), StaticKeychain()).push(
        moved,
        [parse_reference(f"{registry.host}/cached/base:moving")],
        BlobStore(tmp_path / "src-moving2"),
    )
    client, _ = _client(cache_dir)
    assert _pull_all(client, ref, BlobStore(tmp_path / "s")) == moved.digest
    assert _warm(cache_dir, ref) == ["cached"]  # the warmer notices the move too


def test_an_expired_entry_is_a_miss(
    registry: RegistryServer, proxy: FaultProxy, tmp_path: Path
) -> None:
    _push(registry, tmp_path, "old", os.urandom(10_000))
    cache_dir = tmp_path / "cache"
    ref = f"{proxy.host}/cached/base:old"
    assert _warm(cache_dir, ref) == ["cached"]
    proxy.stop()
    later = BaseImageCache(cache_dir, 3600.0).lookup(parse_reference(ref), LINUX)
    assert later is not None
    client, _ = _client(cache_dir, ttl=3600.0, clock=lambda: later.written + 3601)
    with pytest.raises(RegistryError) as info:
        client.pull(parse_reference(ref), LINUX, BlobStore(tmp_path / "s"))
    assert proxy.host in str(info.value)


def test_records_and_blobs_are_whole(
    registry: RegistryServer, proxy: FaultProxy, tmp_path: Path
) -> None:
    _push(registry, tmp_path, "whole", os.urandom(10_000))
    cache_dir = tmp_path / "cache"
    assert _warm(cache_dir, f"{proxy.host}/cached/base:whole") == ["cached"]
    assert_cache_consistent(cache_dir)
    assert not list((cache_dir / "tmp").iterdir())


def test_force_replaces_a_damaged_blob(
    registry: RegistryServer, proxy: FaultProxy, tmp_path: Path
) -> None:
    manifest = _push(registry, tmp_path, "damaged", os.urandom(10_000))
    cache_dir = tmp_path / "cache"
    ref = f"{proxy.host}/cached/base:damaged"
    assert _warm(cache_dir, ref) == ["cached"]
    blob = cache_dir / "blobs" / "sha256" / manifest.layers[0].digest.split(":")[1]
    blob.write_bytes(b"bit rot")
    assert _warm(cache_dir, ref, force=True) == ["cached"]
    assert_cache_consistent(cache_dir)


def test_copy_across_file_systems_is_checked(
    registry: RegistryServer, proxy: FaultProxy, tmp_path: Path
) -> None:
    if not Path("/dev/shm").is_dir() or os.stat("/dev/shm").st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on another file system")
    manifest = _push(registry, tmp_path, "xfs", os.urandom(10_000))
    cache_dir = tmp_path / "cache"
    assert _warm(cache_dir, f"{proxy.host}/cached/base:xfs") == ["cached"]
    cache = BaseImageCache(cache_dir, DAY)
    import tempfile

    with tempfile.TemporaryDirectory(dir="/dev/shm") as shm:
        store = BlobStore(Path(shm))
        digest = manifest.layers[0].digest
        path = cache.copy_into(digest, store)
        assert path is not None
        assert os.stat(path).st_ino != os.stat(cache.blob_path(digest) or "").st_ino
        (cache.blob_path(manifest.layers[1].digest) or Path()).write_bytes(b"rot")
        assert cache.copy_into(manifest.layers[1].digest, store) is None


def test_dockerfile_images_are_expanded_and_skip_stages() -> None:
    text = (
        "ARG BASE=busybox:1\n"
        "FROM ${BASE} AS build\n"
        "FROM scratch\n"
        "COPY --from=build /x /x\n"
        "COPY --from=alpine:3 /y /y\n"
        "FROM --platform=linux/arm64 debian:12 AS other\n"
        "FROM build\n"
    )
    found = dockerfile_images(text, build_args={"BASE": "busybox:2"}, platform=LINUX)
    assert found == [
        ("busybox:2", LINUX),
        ("alpine:3", LINUX),
        ("debian:12", Platform("linux", "arm64")),
    ]


def assert_cache_consistent(cache_dir: Path) -> None:
    """Every record parses and names blobs that exist with the right digest."""
    records = list((cache_dir / "index").glob("*.json"))
    assert records
    for record in records:
        data = json.loads(record.read_bytes())
        for digest in (data["digest"], data["config_digest"], *data["layers"]):
            blob = cache_dir / "blobs" / "sha256" / digest.split(":")[1]
            assert hashlib.sha256(blob.read_bytes()).hexdigest() == digest.split(":")[1]


def test_damaged_records_and_missing_blobs_are_misses(
    registry: RegistryServer, proxy: FaultProxy, tmp_path: Path
) -> None:
    manifest = _push(registry, tmp_path, "records", os.urandom(10_000))
    cache_dir = tmp_path / "cache"
    ref = parse_reference(f"{proxy.host}/cached/base:records")
    assert _warm(cache_dir, str(ref)) == ["cached"]
    cache = BaseImageCache(cache_dir, DAY)
    assert cache.lookup(ref, LINUX) is not None
    records = sorted((cache_dir / "index").glob("*.json"))
    saved = {r: r.read_bytes() for r in records}
    for record in records:
        record.write_bytes(saved[record][: len(saved[record]) // 2])  # torn
    assert cache.lookup(ref, LINUX) is None
    for record in records:
        record.write_bytes(saved[record].replace(b'"version": 1', b'"version": 99'))
    assert cache.lookup(ref, LINUX) is None
    for record in records:
        record.write_bytes(saved[record])
    (cache.blob_path(manifest.layers[1].digest) or Path()).unlink()
    assert cache.lookup(ref, LINUX) is None  # incomplete: not served
