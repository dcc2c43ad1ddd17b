"""Push generated images to a real registry, read them back with skopeo and umoci,
and pull them with pykaniko."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pykaniko.errors import NotFoundError
from pykaniko.image.blobstore import BlobStore
from pykaniko.image.platform import Platform
from pykaniko.image.reference import parse_reference
from pykaniko.registry import RegistryClient, RegistryOptions, StaticKeychain
from tests.registry.imagegen import make_image
from tests.support.registry import RegistryServer

pytestmark = pytest.mark.e2e
LINUX = Platform("linux", "amd64")


def _skopeo(*args: str) -> str:
    proc = subprocess.run(
        ["skopeo", *args], capture_output=True, text=True, check=False, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _client() -> RegistryClient:
    return RegistryClient(RegistryOptions(), StaticKeychain())


@pytest.mark.parametrize("docker", [False, True])
def test_push_then_skopeo_and_umoci_read_it(
    registry: RegistryServer, tmp_path: Path, docker: bool
) -> None:
    store = BlobStore(tmp_path / "store")
    manifest, _ = make_image(
        store, [{"etc/hello": b"hello\n"}, {"app/run.sh": b"echo hi\n"}], docker=docker
    )
    name = f"{registry.host}/push/{'docker' if docker else 'oci'}"
    refs = [parse_reference(f"{name}:v1"), parse_reference(f"{name}:latest")]
    digest = _client().push(manifest, refs, store)
    assert digest == manifest.digest
    raw = _skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{name}:v1")
    assert raw.encode() == manifest.raw
    info = json.loads(_skopeo("inspect", "--tls-verify=false", f"docker://{name}:latest"))
    assert info["Digest"] == digest
    assert len(info["Layers"]) == 2
    if shutil.which("umoci") and not docker:
        layout = tmp_path / "layout"
        _skopeo("copy", "--src-tls-verify=false", f"docker://{name}:v1", f"oci:{layout}:v1")
        bundle = tmp_path / "bundle"
        subprocess.run(
            ["umoci", "unpack", "--rootless", "--image", f"{layout}:v1", str(bundle)],
            check=True,
            capture_output=True,
        )
        assert (bundle / "rootfs/etc/hello").read_bytes() == b"hello\n"
        assert (bundle / "rootfs/app/run.sh").read_bytes() == b"echo hi\n"


def test_pull_back_and_fetch_layers(registry: RegistryServer, tmp_path: Path) -> None:
    src = BlobStore(tmp_path / "src")
    manifest, config_raw = make_image(src, [{"a": b"1"}, {"b": b"2"}, {"c": b"3"}])
    ref = parse_reference(f"{registry.host}/pull/back:1")
    client = _client()
    client.push(manifest, [ref], src)
    dst = BlobStore(tmp_path / "dst")
    pulled = client.pull(ref, LINUX, dst)
    assert pulled.digest == manifest.digest
    assert pulled.config_raw == config_raw
    assert pulled.manifest.raw == manifest.raw
    assert pulled.source.digest == manifest.digest
    paths = client.fetch_layers(pulled, pulled.manifest.layers, dst)
    assert [p.read_bytes() for p in paths] == [
        src.path(d.digest).read_bytes() for d in manifest.layers
    ]
    # by digest too
    again = client.pull(ref.with_digest(manifest.digest), LINUX, dst)
    assert again.digest == manifest.digest


def test_pull_missing_image_is_not_found(registry: RegistryServer, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError) as info:
        _client().pull(parse_reference(f"{registry.host}/no/such:tag"), LINUX, BlobStore(tmp_path))
    assert info.value.status == 404
    assert registry.host in str(info.value)
    assert "no/such" in str(info.value)
