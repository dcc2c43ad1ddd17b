"""docker-archive tarballs and OCI layouts, read back by skopeo and umoci."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from pykaniko.errors import ImageError
from pykaniko.image.blobstore import BlobStore
from pykaniko.image.layout import REF_NAME_ANNOTATION, write_oci_layout
from pykaniko.image.tarball import familiar_tag, write_docker_archive
from tests.registry.imagegen import make_image

needs_skopeo = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo missing")
LAYERS = [
    {"etc/hello": b"hello\n"},
    {"app/data.bin": bytes(range(256)) * 64},
    {"etc/hello": b"hello\n"},
]


def _skopeo(*args: str) -> str:
    proc = subprocess.run(
        ["skopeo", *args], capture_output=True, text=True, check=False, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_familiar_tag() -> None:
    assert familiar_tag("docker.io/library/busybox:1") == "busybox:1"
    assert familiar_tag("user/app") == "user/app:latest"
    assert familiar_tag("localhost:5000/a/b:c") == "localhost:5000/a/b:c"


@pytest.mark.parametrize("compressed", [False, True])
def test_docker_archive_layout(tmp_path: Path, compressed: bool) -> None:
    store = BlobStore(tmp_path / "store")
    manifest, config_raw = make_image(store, LAYERS, docker=True)
    out = tmp_path / "out" / "image.tar"
    write_docker_archive(
        out,
        manifest,
        config_raw,
        store,
        ["docker.io/library/app:1", "app:2"],
        compressed=compressed,
    )
    with tarfile.open(out) as tar:
        names = tar.getnames()
        entry = json.load(tar.extractfile("manifest.json"))[0]  # type: ignore[arg-type]
    assert entry["RepoTags"] == ["app:1", "app:2"]
    assert len(entry["Layers"]) == 3
    assert entry["Layers"][0] == entry["Layers"][2]  # a repeated layer is stored once
    assert len([n for n in names if n.endswith((".tar", ".tar.gz"))]) == 2
    assert not list(out.parent.glob(".*tmp"))


@needs_skopeo
@pytest.mark.e2e
@pytest.mark.parametrize("compressed", [False, True])
def test_docker_archive_read_by_skopeo(tmp_path: Path, compressed: bool) -> None:
    store = BlobStore(tmp_path / "store")
    manifest, config_raw = make_image(store, LAYERS, docker=True)
    out = tmp_path / "image.tar"
    write_docker_archive(
        out, manifest, config_raw, store, ["localhost/app:1"], compressed=compressed
    )
    info = json.loads(_skopeo("inspect", f"docker-archive:{out}"))
    assert len(info["Layers"]) == 3
    cfg = json.loads(_skopeo("inspect", "--config", f"docker-archive:{out}"))
    assert cfg["rootfs"]["diff_ids"] == json.loads(config_raw)["rootfs"]["diff_ids"]
    # and through to an OCI layout umoci can unpack
    layout = tmp_path / "copied"
    _skopeo("copy", f"docker-archive:{out}", f"oci:{layout}:x")
    assert (layout / "index.json").exists()


def test_docker_archive_refuses_missing_layer(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "store")
    manifest, config_raw = make_image(store, LAYERS[:1])
    store.path(manifest.layers[0].digest).unlink()
    with pytest.raises(ImageError):
        write_docker_archive(tmp_path / "x.tar", manifest, config_raw, store, ["a:b"])
    assert not (tmp_path / "x.tar").exists()


def test_oci_layout_files(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "store")
    manifest, _ = make_image(store, LAYERS)
    root = tmp_path / "layout"
    write_oci_layout(root, manifest, store, ref_name="v1")
    index = json.loads((root / "index.json").read_text())
    [entry] = index["manifests"]
    assert entry["digest"] == manifest.digest
    assert entry["annotations"] == {REF_NAME_ANNOTATION: "v1"}
    assert json.loads((root / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    for desc in (manifest.config, *manifest.layers):
        assert (root / "blobs" / "sha256" / desc.digest.split(":")[1]).exists()
    write_oci_layout(root, manifest, store, ref_name=None)  # rewriting is fine
    assert "annotations" not in json.loads((root / "index.json").read_text())["manifests"][0]


@needs_skopeo
@pytest.mark.e2e
def test_oci_layout_read_by_skopeo_and_umoci(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "store")
    manifest, _ = make_image(store, LAYERS)
    root = tmp_path / "layout"
    write_oci_layout(root, manifest, store, ref_name="v1")
    raw = _skopeo("inspect", "--raw", f"oci:{root}:v1")
    assert raw.encode() == manifest.raw
    if shutil.which("umoci"):
        bundle = tmp_path / "bundle"
        subprocess.run(
            ["umoci", "unpack", "--rootless", "--image", f"{root}:v1", str(bundle)],
            check=True,
            capture_output=True,
        )
        assert (bundle / "rootfs/etc/hello").read_bytes() == b"hello\n"
        assert (bundle / "rootfs/app/data.bin").stat().st_size == 256 * 64
