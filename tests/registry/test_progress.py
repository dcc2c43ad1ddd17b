"""Per-blob progress from the registry client: a start and a finish per transfer,
bytes that add up, throttled calls in between, and nothing at all without a sink."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from pykaniko.image.blobstore import BlobStore
from pykaniko.image.platform import Platform
from pykaniko.image.reference import parse_reference
from pykaniko.registry import Progress, RegistryClient, RegistryOptions, StaticKeychain
from pykaniko.registry.events import ProgressMeter
from tests.registry.imagegen import make_image
from tests.support.registry import RegistryServer

LINUX = Platform("linux", "amd64")


def test_meter_throttles_and_finishes() -> None:
    seen: list[Progress] = []
    meter = ProgressMeter(seen.append, "push", "sha256:" + "a" * 64, 10_000, interval=60.0)
    for _ in range(1000):
        meter.add(10)
    meter.finish()
    assert [p.done for p in seen] == [0, 10_000]
    assert [p.finished for p in seen] == [False, True]
    assert seen[-1].ok
    assert seen[-1].direction == "push"
    assert seen[-1].total == 10_000


def test_meter_reports_in_between_when_time_passes() -> None:
    seen: list[Progress] = []
    meter = ProgressMeter(seen.append, "pull", "sha256:" + "b" * 64, 0, interval=0.0)
    meter.add(5)
    meter.add(5)
    meter.finish(ok=False)
    assert [p.done for p in seen] == [0, 5, 10, 10]
    assert seen[-1].finished
    assert not seen[-1].ok


@pytest.mark.e2e
def test_pull_and_push_report_every_blob(registry: RegistryServer, tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "src")
    manifest, _ = make_image(store, [{"a": b"a" * 300_000}, {"b": b"b" * 1000}])
    seen: list[Progress] = []
    lock = threading.Lock()

    def sink(p: Progress) -> None:
        with lock:
            seen.append(p)

    client = RegistryClient(RegistryOptions(), StaticKeychain(), progress=sink)
    ref = parse_reference(f"{registry.host}/progress/app:1")
    client.push(manifest, [ref], store)
    pushed = {p.digest: p for p in seen if p.finished and p.direction == "push"}
    blobs = {d.digest: d.size for d in (*manifest.layers, manifest.config)}
    assert {d: (p.done, p.total) for d, p in pushed.items()} == {
        d: (s, s) for d, s in blobs.items()
    }
    assert all(p.repository == "progress/app" for p in pushed.values())

    seen.clear()
    dst = BlobStore(tmp_path / "dst")
    pulled = client.pull(ref, LINUX, dst)
    client.fetch_layers(pulled, pulled.manifest.layers, dst)
    pulls = [p for p in seen if p.direction == "pull"]
    finished = {p.digest: p.done for p in pulls if p.finished}
    assert finished == blobs
    starts = [p for p in pulls if not p.finished and p.done == 0]
    assert {p.digest for p in starts} == set(blobs)
    client.close()
