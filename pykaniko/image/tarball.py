"""``docker save``-format tarballs (``--tar-path``), readable by ``docker load``,
``podman load`` and ``skopeo docker-archive:``.

Layers are written uncompressed under their diff_id, as ``docker save`` does, so every
reader accepts them; each layer is decompressed to a temporary file first (a tar
member needs its size up front) with its digest verified on the way, so nothing is
held in memory. ``compressed=True`` stores the blobs as they are instead (smaller;
``docker load`` and skopeo accept gzip layers too). OS errors are a
:class:`StorageError` naming the archive (or the layer being decompressed in the work
dir); a full disk says how big the image is.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from pykaniko.errors import ImageError, StorageError
from pykaniko.image.blobstore import BlobStore
from pykaniko.image.config import ImageConfig
from pykaniko.image.digest import CHUNK, HashingWriter
from pykaniko.image.layerfile import open_uncompressed
from pykaniko.image.manifest import Manifest
from pykaniko.image.reference import DOCKER_HUB, parse_reference

__all__ = ["familiar_tag", "write_docker_archive"]


def familiar_tag(text: str) -> str:
    """``docker.io/library/busybox:latest`` -> ``busybox:latest``, as ``docker save``
    writes RepoTags; other registries keep their host."""
    ref = parse_reference(text)
    name = ref.name
    if ref.registry == DOCKER_HUB:
        name = ref.repository.removeprefix("library/")
    return f"{name}:{ref.tag or 'latest'}"


def _file_info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    return info


def _add_file(tar: tarfile.TarFile, name: str, path: Path) -> None:
    with open(path, "rb") as f:
        tar.addfile(_file_info(name, os.fstat(f.fileno()).st_size), f)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_file_info(name, len(data)), io.BytesIO(data))


def _decompress(store: BlobStore, digest: str, expected_diff_id: str | None) -> Path:
    tmp = store.temp_path(".tar")
    try:
        with open_uncompressed(store.path(digest), digest=digest) as src, open(tmp, "wb") as out:
            sink = HashingWriter(out)
            reader: BinaryIO = src
            while block := reader.read(CHUNK):
                sink.write(block)
        if expected_diff_id and sink.digest != expected_diff_id:
            raise ImageError(
                f"layer {digest[:19]}: uncompressed digest {sink.digest[:19]} does not match "
                f"the config's diff_id {expected_diff_id[:19]}"
            )
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise StorageError.from_os(
                e, operation=f"decompress layer {digest[:19]} for the docker archive"
            ) from e
        raise
    return tmp


def write_docker_archive(
    path: Path,
    manifest: Manifest,
    config_raw: bytes,
    store: BlobStore,
    tags: Sequence[str],
    *,
    compressed: bool = False,
) -> None:
    """Write the image to ``path`` (via a temporary name, renamed when complete)."""
    for desc in manifest.layers:
        if not store.has(desc.digest):
            raise ImageError(f"cannot write {path}: layer {desc.digest} is not in the local store")
    diff_ids = ImageConfig.parse(config_raw).diff_ids
    if len(diff_ids) != len(manifest.layers):
        raise ImageError(
            f"cannot write {path}: the config lists {len(diff_ids)} diff_ids "
            f"for {len(manifest.layers)} layers"
        )
    config_name = manifest.config.digest.split(":", 1)[1] + ".json"
    tmp = path.with_name(f".{path.name}.tmp")
    layer_names: list[str] = []
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            _add_bytes(tar, config_name, config_raw)
            written: set[str] = set()
            for desc, diff_id in zip(manifest.layers, diff_ids, strict=True):
                if compressed:
                    name = desc.digest.split(":", 1)[1] + ".tar.gz"
                else:
                    name = diff_id.split(":", 1)[1] + "/layer.tar"
                layer_names.append(name)
                if name in written:
                    continue
                written.add(name)
                if compressed:
                    _add_file(tar, name, store.path(desc.digest))
                else:
                    plain = _decompress(store, desc.digest, diff_id)
                    try:
                        _add_file(tar, name, plain)
                    finally:
                        plain.unlink(missing_ok=True)
            entry = {
                "Config": config_name,
                "RepoTags": [familiar_tag(t) for t in tags],
                "Layers": layer_names,
            }
            _add_bytes(tar, "manifest.json", json.dumps([entry]).encode())
        os.replace(tmp, path)
    except OSError as e:
        size = sum(d.size for d in manifest.layers) + len(config_raw)
        raise StorageError.from_os(
            e,
            operation="write docker archive",
            path=str(path),
            needed=size,
            detail="the image compressed" if compressed else "at least: the layers compressed",
        ) from e
    finally:
        tmp.unlink(missing_ok=True)
