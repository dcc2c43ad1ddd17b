"""The layer cache over the OCI-layout store: entries round-trip, a damaged entry is a
miss with one warning (and is replaced by the next push), an expired one a plain miss,
failed pushes end in one warning, and concurrent writers of one key leave one entry."""

from __future__ import annotations

import json
import multiprocessing
import shutil
from pathlib import Path

import pytest

from pykaniko.errors import RegistryError
from pykaniko.executor.cache import CacheEntry, LayerCache, LayoutCacheStore
from pykaniko.image.blobstore import BlobStore
from pykaniko.image.layerfile import LayerWriter
from pykaniko.image.manifest import Descriptor, Manifest
from pykaniko.image.platform import Platform

AMD64 = Platform("linux", "amd64")
KEY = "a" * 64
DAY = 86400.0


def _layer(blobs: BlobStore, payload: bytes) -> tuple[Descriptor, str]:
    tmp = blobs.temp_path(".layer")
    with LayerWriter(tmp, compression="gzip") as writer:
        writer.write(payload)
    made = writer.close()
    blobs.adopt(tmp, made.digest)
    return Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", made.digest, made.size), (
        made.diff_id
    )


def _cache(root: Path, blobs: BlobStore, ttl: float = DAY) -> LayerCache:
    return LayerCache(LayoutCacheStore(root), blobs, platform=AMD64, ttl_seconds=ttl)


def _fill(tmp_path: Path, key: str = KEY, payload: bytes = b"x" * 1024) -> Descriptor:
    blobs = BlobStore(tmp_path / "writer")
    desc, diff_id = _layer(blobs, payload)
    cache = _cache(tmp_path / "cache", blobs)
    cache.put(key, [desc], [diff_id], "RUN make", docker=False)
    cache.put("b" * 64, [], [], "RUN true", docker=False)
    assert cache.finish() == []
    return desc


def test_round_trip_verifies_and_fetches(tmp_path: Path) -> None:
    desc = _fill(tmp_path)
    blobs = BlobStore(tmp_path / "reader")
    cache = _cache(tmp_path / "cache", blobs)
    probe = cache.get(KEY)
    assert probe.warning is None
    assert probe.entry is not None
    assert probe.entry.layers == (desc,)
    assert blobs.has(desc.digest)  # fetched (and checked) before it is called a hit
    empty = cache.get("b" * 64).entry
    assert empty is not None
    assert empty.layers == ()
    assert cache.get("c" * 64) == type(probe)(None)  # absent: a plain miss
    assert cache.finish() == []


@pytest.mark.parametrize("damage", ["deleted", "truncated", "corrupted", "index", "config"])
def test_a_damaged_entry_is_a_miss_with_one_warning(tmp_path: Path, damage: str) -> None:
    desc = _fill(tmp_path)
    entry = tmp_path / "cache" / KEY
    blob = entry / "blobs" / "sha256" / desc.digest.removeprefix("sha256:")
    match damage:
        case "deleted":
            blob.unlink()
        case "truncated":
            blob.write_bytes(blob.read_bytes()[:-10])
        case "corrupted":
            data = bytearray(blob.read_bytes())
            data[20] ^= 0xFF
            blob.write_bytes(bytes(data))
        case "index":
            (entry / "index.json").write_text("{not json")
        case "config":
            manifest_digest = json.loads((entry / "index.json").read_text())["manifests"][0]
            raw = (entry / "blobs" / "sha256" / manifest_digest["digest"][7:]).read_bytes()
            config = Manifest.parse(raw).config.digest
            (entry / "blobs" / "sha256" / config[7:]).write_text("{}")
        case _:
            raise AssertionError(damage)
    blobs = BlobStore(tmp_path / "reader")
    cache = _cache(tmp_path / "cache", blobs)
    probe = cache.get(KEY)
    assert probe.entry is None
    assert probe.warning is not None
    assert f"oci:{entry}" in probe.warning
    assert not blobs.has(desc.digest)  # a bad blob never reaches the build
    # the step runs, and its entry replaces the damaged one
    desc2, diff_id = _layer(blobs, b"y" * 1024)
    cache.put(KEY, [desc2], [diff_id], "RUN make", docker=False)
    assert cache.finish() == []
    again = _cache(tmp_path / "cache", BlobStore(tmp_path / "third")).get(KEY)
    assert again.entry is not None
    assert again.entry.layers == (desc2,)
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")]


def test_an_expired_entry_is_a_plain_miss_and_replaced(tmp_path: Path) -> None:
    _fill(tmp_path)
    blobs = BlobStore(tmp_path / "r")
    cache = _cache(tmp_path / "cache", blobs, ttl=0.0)
    probe = cache.get(KEY)
    assert probe.entry is None
    assert probe.warning is None
    desc, diff_id = _layer(blobs, b"new" * 100)
    cache.put(KEY, [desc], [diff_id], "RUN make", docker=False)
    assert cache.finish() == []
    fresh = _cache(tmp_path / "cache", BlobStore(tmp_path / "r2")).get(KEY).entry
    assert fresh is not None
    assert fresh.layers == (desc,)


class _DownStore:
    def describe(self, key: str) -> str:
        return f"reg.example/cache:{key}"

    def lookup(self, key: str, blobs: BlobStore) -> CacheEntry | None:
        raise RegistryError("connection refused", registry="reg.example")

    def fetch(self, entry: CacheEntry, blobs: BlobStore) -> None:
        raise AssertionError("not reached")

    def put(self, key: str, manifest: Manifest, blobs: BlobStore, *, replace: bool) -> None:
        raise RegistryError("connection refused", registry="reg.example")


def test_a_store_that_is_down_warns_per_entry_and_once_for_pushes(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    cache = LayerCache(_DownStore(), blobs, platform=AMD64, ttl_seconds=DAY)
    keys = [c * 64 for c in "abc"]
    cache.probe(keys)
    warnings = [cache.get(k).warning for k in keys]
    assert all(
        w is not None and f"reg.example/cache:{k}" in w for w, k in zip(warnings, keys, strict=True)
    )
    for key in keys:
        cache.put(key, [], [], "RUN x", docker=True)
    (warning,) = cache.finish()
    assert "and 2 more failed: connection refused" in warning


def test_no_push_means_no_entries(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    cache = LayerCache(
        LayoutCacheStore(tmp_path / "cache"), blobs, platform=AMD64, ttl_seconds=DAY, push=False
    )
    cache.put(KEY, [], [], "RUN x", docker=True)
    assert cache.finish() == []
    assert not (tmp_path / "cache").exists()


def _writer(root: str, n: int) -> None:
    base = Path(root)
    blobs = BlobStore(base / f"w{n}")
    desc, diff_id = _layer(blobs, b"same layer\n" * 100)
    cache = _cache(base / "cache", blobs)
    for _ in range(5):
        cache.put(KEY, [desc], [diff_id], "RUN same", docker=False)
    assert cache.finish() == []


def test_concurrent_writers_of_one_key_leave_one_entry(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), n)) for n in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * 4
    names = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert names == [KEY]
    assert _cache(tmp_path / "cache", BlobStore(tmp_path / "r")).get(KEY).entry is not None
    shutil.rmtree(tmp_path / "cache")
