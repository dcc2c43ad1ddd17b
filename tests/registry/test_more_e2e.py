"""Index platform selection, chunked uploads, several destinations, the push
permission probe and ``ADD <url>`` downloads."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pykaniko.errors import BuildError, ImageError, NotFoundError, RegistryError
from pykaniko.image import mediatypes as mt
from pykaniko.image.blobstore import BlobStore
from pykaniko.image.manifest import Descriptor, Index
from pykaniko.image.platform import Platform
from pykaniko.image.reference import parse_reference
from pykaniko.registry import RegistryClient, RegistryOptions, StaticKeychain
from tests.registry.imagegen import make_image
from tests.support.registry import FaultProxy, RegistryServer

pytestmark = pytest.mark.e2e


def _client(**changes: Any) -> RegistryClient:
    from dataclasses import replace

    return RegistryClient(
        replace(RegistryOptions(transport_backoff=0.01), **changes), StaticKeychain()
    )


def test_index_selects_platform(registry: RegistryServer, tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "s")
    amd, _ = make_image(store, [{"arch": b"amd64"}])
    arm, _ = make_image(store, [{"arch": b"arm64"}])
    client = _client()
    base = parse_reference(f"{registry.host}/multi/app:1")
    for m in (amd, arm):
        client.push(m, [base.with_digest(m.digest)], store)
    entries = (
        Descriptor(mt.OCI_MANIFEST, amd.digest, len(amd.raw), platform=Platform("linux", "amd64")),
        Descriptor(
            mt.OCI_MANIFEST, arm.digest, len(arm.raw), platform=Platform("linux", "arm64", "v8")
        ),
    )
    index = Index.build(entries)
    client.api.put_manifest(base, index.raw, mt.OCI_INDEX)
    pulled = client.pull(base, Platform.parse("linux/arm64"), BlobStore(tmp_path / "d"))
    assert pulled.digest == arm.digest
    assert pulled.source.digest == arm.digest
    assert (
        client.pull(base, Platform("linux", "amd64"), BlobStore(tmp_path / "e")).digest
        == amd.digest
    )
    with pytest.raises(ImageError) as info:
        client.pull(base, Platform("linux", "s390x"), BlobStore(tmp_path / "f"))
    assert "linux/arm64" in (info.value.hint or "")


def test_chunked_upload_and_second_destination_mounts(
    registry: RegistryServer, tmp_path: Path
) -> None:
    store = BlobStore(tmp_path / "s")
    manifest, _ = make_image(store, [{"big": os.urandom(300_000)}])
    first = parse_reference(f"{registry.host}/chunk/one:1")
    second = parse_reference(f"{registry.host}/chunk/two:1")
    client = _client(upload_chunk_size=64 * 1024)
    assert client.push(manifest, [first, second, first.with_tag("2")], store) == manifest.digest
    for ref in (first, second, first.with_tag("2")):
        pulled = client.pull(ref, Platform("linux", "amd64"), BlobStore(tmp_path / "p"))
        [path] = client.fetch_layers(
            pulled, pulled.manifest.layers, BlobStore(tmp_path / str(ref.tag) / ref.repository)
        )
        assert path.read_bytes() == store.path(manifest.layers[0].digest).read_bytes()


def test_push_permission_probe(registry: RegistryServer, fault_proxy: FaultProxy) -> None:
    ref = parse_reference(f"{registry.host}/probe/app:1")
    _client().check_push_permission([ref, ref.with_tag("2")])
    fault_proxy.configure(rate=1.0, kinds=("503",))
    dead = parse_reference(f"{fault_proxy.host}/probe/app:1")
    with pytest.raises(RegistryError):
        _client(transport_retries=0).check_push_permission([dead])
    _client(skip_push_permission_check=True).check_push_permission([dead])


class _Files(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Files, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}", root
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_download(file_server: tuple[str, Path], tmp_path: Path) -> None:
    host, root = file_server
    data = os.urandom(200_000)
    (root / "f.bin").write_bytes(data)
    os.utime(root / "f.bin", (1_600_000_000, 1_600_000_000))
    good = "sha256:" + hashlib.sha256(data).hexdigest()
    client = _client()
    result = client.download(f"http://{host}/f.bin", tmp_path / "out" / "f.bin", checksum=good)
    assert result.path.read_bytes() == data
    assert result.digest == good
    assert result.size == len(data)
    assert result.last_modified == 1_600_000_000
    with pytest.raises(BuildError) as info:
        client.download(f"http://{host}/f.bin", tmp_path / "bad", checksum="sha256:" + "0" * 64)
    assert "checksum mismatch" in str(info.value)
    assert not (tmp_path / "bad").exists()
    with pytest.raises(RegistryError) as err:
        client.download(f"http://{host}/missing", tmp_path / "m")
    assert err.value.status == 404
    with pytest.raises(BuildError):
        client.download("ftp://example.com/x", tmp_path / "x")


def test_download_through_faults(file_server: tuple[str, Path], tmp_path: Path) -> None:
    host, root = file_server
    data = os.urandom(100_000)
    (root / "f.bin").write_bytes(data)
    proxy = FaultProxy(host, rate=0.5, kinds=("truncate", "reset", "503"), seed=7, max_faults=3)
    try:
        result = _client().download(f"http://{proxy.host}/f.bin", tmp_path / "f.bin")
    finally:
        proxy.stop()
    assert result.path.read_bytes() == data
    assert proxy.faults


def test_missing_manifest_names_everything(registry: RegistryServer, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError) as info:
        _client().pull(
            parse_reference(f"{registry.host}/nope/x@sha256:{'1' * 64}"),
            Platform("linux", "amd64"),
            BlobStore(tmp_path),
        )
    assert info.value.registry == registry.host
    assert info.value.repository == "nope/x"
