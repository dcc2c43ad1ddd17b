"""Behaviour that Distribution will not produce on demand, against a tiny scripted
registry on loopback: schema 1 manifests, foreign layers, generic content types."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pykaniko.errors import ImageError, RegistryError
from pykaniko.image import mediatypes as mt
from pykaniko.image.blobstore import BlobStore
from pykaniko.image.manifest import Descriptor, Manifest
from pykaniko.image.platform import Platform
from pykaniko.image.reference import parse_reference
from pykaniko.registry import RegistryClient, RegistryOptions, StaticKeychain
from tests.support.registry import FaultProxy

LINUX = Platform("linux", "amd64")


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class _Scripted:
    """path -> (status, content type, body)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, str, bytes]] = {"/v2/": (200, "application/json", b"{}")}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, ctype, body = owner.routes.get(
                    self.path, (404, "application/json", b'{"errors":[{"code":"BLOB_UNKNOWN"}]}')
                )
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def scripted() -> Iterator[_Scripted]:
    server = _Scripted()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


def test_schema1_is_refused_clearly(scripted: _Scripted, tmp_path: Path) -> None:
    scripted.routes["/v2/old/app/manifests/1"] = (
        200,
        mt.DOCKER_MANIFEST_V1_SIGNED,
        b'{"schemaVersion":1}',
    )
    client = RegistryClient(RegistryOptions(), StaticKeychain())
    with pytest.raises(ImageError) as info:
        client.pull(parse_reference(f"{scripted.host}/old/app:1"), LINUX, BlobStore(tmp_path))
    assert "schema 1" in str(info.value)


def test_foreign_layer_from_urls_and_generic_content_type(
    scripted: _Scripted, tmp_path: Path
) -> None:
    layer = b"\x1f\x8b pretend this is a gzip layer"
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    ).encode()
    url = f"http://{scripted.host}/files/layer.tgz"
    manifest = Manifest.build(
        media_type=mt.DOCKER_MANIFEST,
        config=Descriptor(mt.DOCKER_CONFIG, _digest(config), len(config)),
        layers=(Descriptor(mt.DOCKER_FOREIGN_LAYER, _digest(layer), len(layer), urls=(url,)),),
    )
    scripted.routes["/v2/win/app/manifests/1"] = (200, "text/plain", manifest.raw)
    scripted.routes[f"/v2/win/app/blobs/{_digest(config)}"] = (
        200,
        "application/octet-stream",
        config,
    )
    scripted.routes["/files/layer.tgz"] = (200, "application/octet-stream", layer)
    client = RegistryClient(RegistryOptions(), StaticKeychain())
    store = BlobStore(tmp_path)
    pulled = client.pull(parse_reference(f"{scripted.host}/win/app:1"), LINUX, store)
    assert pulled.manifest.media_type == mt.DOCKER_MANIFEST
    [path] = client.fetch_layers(pulled, pulled.manifest.layers, store)
    assert path.read_bytes() == layer


def test_wrong_blob_bytes_are_rejected(scripted: _Scripted, tmp_path: Path) -> None:
    config = b'{"architecture":"amd64","os":"linux"}'
    manifest = Manifest.build(
        media_type=mt.OCI_MANIFEST,
        config=Descriptor(mt.OCI_CONFIG, _digest(config), len(config)),
        layers=(),
    )
    scripted.routes["/v2/bad/app/manifests/1"] = (200, mt.OCI_MANIFEST, manifest.raw)
    scripted.routes[f"/v2/bad/app/blobs/{_digest(config)}"] = (
        200,
        "application/octet-stream",
        config + b" ",
    )
    client = RegistryClient(RegistryOptions(transport_backoff=0.01), StaticKeychain())
    store = BlobStore(tmp_path)
    with pytest.raises(RegistryError) as info:
        client.pull(parse_reference(f"{scripted.host}/bad/app:1"), LINUX, store)
    assert "digest" in str(info.value)
    assert not store.has(_digest(config))
    assert not list((tmp_path / "tmp").iterdir())


def test_a_registry_ignoring_range_gets_the_blob_fetched_whole(
    scripted: _Scripted, tmp_path: Path
) -> None:
    """The body breaks off mid-way; the registry answers the ranged retry with the
    whole blob (200): the partial bytes are dropped, not prepended."""
    layer = bytes(range(256)) * 400
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    ).encode()
    manifest = Manifest.build(
        media_type=mt.OCI_MANIFEST,
        config=Descriptor(mt.OCI_CONFIG, _digest(config), len(config)),
        layers=(Descriptor(mt.OCI_LAYER_GZIP, _digest(layer), len(layer)),),
    )
    scripted.routes["/v2/norange/app/manifests/1"] = (200, mt.OCI_MANIFEST, manifest.raw)
    for blob in (config, layer):
        scripted.routes[f"/v2/norange/app/blobs/{_digest(blob)}"] = (200, "x/y", blob)
    proxy = FaultProxy(scripted.host)
    try:
        proxy.add_rule("reset-mid-body", "GET", _digest(layer))
        client = RegistryClient(RegistryOptions(transport_backoff=0.01), StaticKeychain())
        store = BlobStore(tmp_path)
        pulled = client.pull(parse_reference(f"{proxy.host}/norange/app:1"), LINUX, store)
        [path] = client.fetch_layers(pulled, pulled.manifest.layers, store)
        assert path.read_bytes() == layer
        assert [s for m, p, s in proxy.log if p.endswith(_digest(layer))] == [200, 200]
    finally:
        proxy.stop()
