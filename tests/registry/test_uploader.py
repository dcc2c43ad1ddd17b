"""The pipelined uploader against a small fake API: background uploads, one upload per
registry then mounts, bounded concurrency, and no manifest after a failure or a cancel."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, cast

import pytest

from pykaniko.errors import RegistryError
from pykaniko.image.blobstore import BlobStore
from pykaniko.image.manifest import Manifest
from pykaniko.image.reference import Reference, parse_reference
from pykaniko.registry import BlobUploader, PushCancelled
from pykaniko.registry.api import RegistryAPI
from tests.registry.imagegen import make_image


class _Transport:
    def __init__(self) -> None:
        self.notices: list[str] = []

    def notify(self, message: str) -> None:
        self.notices.append(message)


class FakeAPI:
    """Records calls; ``uploads`` can be slowed down or made to fail per digest."""

    def __init__(self, *, delay: float = 0.0) -> None:
        self.transport = _Transport()
        self.delay = delay
        self.calls: list[tuple[str, ...]] = []
        self.present: set[tuple[str, str]] = set()
        self.fail: dict[str, RegistryError] = {}
        self.running = 0
        self.peak = 0
        self._lock = threading.Lock()
        self.release = threading.Event()
        self.release.set()

    def _log(self, *call: str) -> None:
        with self._lock:
            self.calls.append(call)

    def mount_blob(self, registry: str, repository: str, digest: str, source: str) -> bool:
        self._log("mount", repository, digest, source)
        with self._lock:
            if (source, digest) in self.present:
                self.present.add((repository, digest))
                return True
        return False

    def blob_exists(self, registry: str, repository: str, digest: str, *, mode: str) -> bool:
        self._log("head", repository, digest)
        with self._lock:
            return (repository, digest) in self.present

    def upload_blob(
        self,
        registry: str,
        repository: str,
        digest: str,
        store: BlobStore,
        *,
        abort: threading.Event | None = None,
    ) -> None:
        assert store.has(digest)
        with self._lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            self._log("upload", repository, digest)
            self.release.wait(10)
            time.sleep(self.delay)
            if digest in self.fail:
                raise self.fail[digest]
            with self._lock:
                self.present.add((repository, digest))
        finally:
            with self._lock:
                self.running -= 1

    def put_manifest(self, ref: Reference, raw: bytes, media_type: str) -> str:
        self._log("manifest", ref.repository, ref.tag or "")
        return "sha256:" + "0" * 64

    def fetch_blob(self, *args: Any, **kwargs: Any) -> Path:
        raise AssertionError("not expected")


def _uploader(api: FakeAPI, refs: list[Reference], store: BlobStore, **kw: Any) -> BlobUploader:
    return BlobUploader(cast(RegistryAPI, api), refs, store, **kw)


def _image(tmp_path: Path, layers: int = 3) -> tuple[Manifest, BlobStore]:
    store = BlobStore(tmp_path)
    manifest, _ = make_image(store, [{f"f{i}": bytes([i]) * 100} for i in range(layers)])
    return manifest, store


REFS = [parse_reference("reg.example/app:1"), parse_reference("reg.example/app-mirror:1")]


def test_submitted_layers_upload_before_push_and_others_mount(tmp_path: Path) -> None:
    manifest, store = _image(tmp_path)
    api = FakeAPI()
    with _uploader(api, REFS, store) as up:
        for layer in manifest.layers:
            up.submit(layer.digest)
        deadline = time.monotonic() + 5
        while len([c for c in api.calls if c[0] == "upload"]) < 3:
            assert time.monotonic() < deadline, api.calls
            time.sleep(0.01)
        assert not [c for c in api.calls if c[0] == "manifest"]
        assert up.push(manifest) == manifest.digest
    uploads = [c for c in api.calls if c[0] == "upload"]
    assert {c[1] for c in uploads} == {"app"}  # one upload per blob, to the first repo
    assert len(uploads) == 4  # three layers, then the config
    mounts = [c for c in api.calls if c[0] == "mount" and c[1] == "app-mirror"]
    assert {c[2] for c in mounts} == {*(d.digest for d in manifest.layers), manifest.config.digest}
    assert all(c[3] == "app" for c in mounts)
    manifests = [c for c in api.calls if c[0] == "manifest"]
    assert sorted(manifests) == [("manifest", "app", "1"), ("manifest", "app-mirror", "1")]
    assert api.calls.index(manifests[0]) > max(api.calls.index(c) for c in uploads)


def test_concurrency_is_bounded(tmp_path: Path) -> None:
    manifest, store = _image(tmp_path, layers=6)
    api = FakeAPI(delay=0.05)
    with _uploader(api, REFS[:1], store, threads=2) as up:
        up.push(manifest)
    assert api.peak == 2


def test_a_failed_upload_pushes_no_manifest(tmp_path: Path) -> None:
    manifest, store = _image(tmp_path)
    api = FakeAPI()
    api.fail[manifest.layers[1].digest] = RegistryError(
        "push blob failed: reg.example/app: HTTP 400", registry="reg.example", status=400
    )
    with _uploader(api, REFS, store) as up:
        up.submit(manifest.layers[1].digest)
        with pytest.raises(RegistryError, match="HTTP 400"):
            up.push(manifest)
        assert up.failed() is not None
        with pytest.raises(RegistryError):
            up.wait()
    assert not [c for c in api.calls if c[0] == "manifest"]


def test_temporary_failures_get_push_retries(tmp_path: Path) -> None:
    manifest, store = _image(tmp_path, layers=1)
    api = FakeAPI()
    digest = manifest.layers[0].digest
    api.fail[digest] = RegistryError("busy", status=503, temporary=True)
    original = api.upload_blob

    def once(registry: str, repository: str, blob: str, *args: Any, **kwargs: Any) -> None:
        try:
            original(registry, repository, blob, *args, **kwargs)
        finally:
            if blob == digest:  # fails the first time only
                api.fail.pop(digest, None)

    api.upload_blob = once  # type: ignore[method-assign,assignment]
    with _uploader(api, REFS[:1], store, push_retry=1, retry_backoff=0.01) as up:
        up.push(manifest)
    assert len([c for c in api.calls if c[0] == "upload" and c[2] == digest]) == 2
    assert any("retrying" in n for n in api.transport.notices)


def test_cancel_stops_pending_work_and_pushes_no_manifest(tmp_path: Path) -> None:
    manifest, store = _image(tmp_path, layers=5)
    api = FakeAPI()
    api.release.clear()  # uploads hang until released
    up = _uploader(api, REFS, store, threads=1)
    for layer in manifest.layers:
        up.submit(layer.digest)
    up.cancel()
    api.release.set()
    with pytest.raises(PushCancelled):
        up.push(manifest)
    up.close()
    assert len([c for c in api.calls if c[0] == "upload"]) <= 1
    assert not [c for c in api.calls if c[0] == "manifest"]


def test_an_exception_in_the_with_block_cancels(tmp_path: Path) -> None:
    manifest, store = _image(tmp_path, layers=2)
    api = FakeAPI()
    up = _uploader(api, REFS, store)

    def failing_stage() -> None:
        with up:
            up.submit(manifest.layers[0].digest)
            raise RuntimeError("the build failed")

    with pytest.raises(RuntimeError):
        failing_stage()
    with pytest.raises(PushCancelled):
        up.push(manifest)
    assert not [c for c in api.calls if c[0] == "manifest"]


def test_push_async_and_wait(tmp_path: Path) -> None:
    manifest, store = _image(tmp_path, layers=2)
    api = FakeAPI()
    cache = parse_reference("reg.example/app/cache:abc")
    with _uploader(api, [*REFS, cache], store) as up:
        up.submit(manifest.layers[0].digest)
        future = up.push_async(manifest, [cache])
        up.wait()
        assert future.result() == manifest.digest
        assert [c for c in api.calls if c[0] == "manifest"] == [("manifest", "app/cache", "abc")]
        up.push(manifest, REFS)


def test_a_digest_destination_must_match(tmp_path: Path) -> None:
    manifest, store = _image(tmp_path, layers=1)
    other = parse_reference("reg.example/app@sha256:" + "1" * 64)
    with _uploader(FakeAPI(), [other], store) as up, pytest.raises(Exception, match="digest"):
        up.push(manifest)
