"""Small generated images for registry and output tests: one tar layer per dict of
files, written through ``LayerWriter`` into a ``BlobStore``."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Mapping, Sequence

from pykaniko.image import mediatypes as mt
from pykaniko.image.blobstore import BlobStore
from pykaniko.image.config import ImageConfig
from pykaniko.image.layerfile import LayerWriter
from pykaniko.image.manifest import Descriptor, Manifest, dump_json


def make_layer(
    store: BlobStore, files: Mapping[str, bytes], *, docker: bool = False
) -> tuple[Descriptor, str]:
    """A gzip layer holding ``files`` (parent directories included); its descriptor and diff_id."""
    path = store.temp_path(".layer")
    writer = LayerWriter(path, compression="gzip", threads=1)
    with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        dirs = sorted(
            {"/".join(name.split("/")[:i]) for name in files for i in range(1, name.count("/") + 1)}
        )
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    layer = writer.close()
    store.adopt(layer.path, layer.digest)
    media = mt.DOCKER_LAYER_GZIP if docker else mt.OCI_LAYER_GZIP
    return Descriptor(media, layer.digest, layer.size), layer.diff_id


def make_image(
    store: BlobStore,
    layers: Sequence[Mapping[str, bytes]],
    *,
    docker: bool = False,
    cmd: str = "true",
) -> tuple[Manifest, bytes]:
    """An image of ``layers``; its manifest and raw config, all blobs in ``store``."""
    descs: list[Descriptor] = []
    diff_ids: list[str] = []
    for files in layers:
        desc, diff_id = make_layer(store, files, docker=docker)
        descs.append(desc)
        diff_ids.append(diff_id)
    config = ImageConfig(architecture="amd64", os="linux", diff_ids=tuple(diff_ids))
    raw = config.to_json()
    data = dict(json.loads(raw))
    data["config"] = {"Cmd": [cmd]}
    raw = dump_json(data)
    config_digest = store.put_bytes(raw)
    config_desc = Descriptor(mt.DOCKER_CONFIG if docker else mt.OCI_CONFIG, config_digest, len(raw))
    manifest = Manifest.build(
        media_type=mt.DOCKER_MANIFEST if docker else mt.OCI_MANIFEST,
        config=config_desc,
        layers=tuple(descs),
    )
    store.put_bytes(manifest.raw)
    return manifest, raw
