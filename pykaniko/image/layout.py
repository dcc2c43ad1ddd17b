"""OCI image layouts (``--oci-layout-path``), readable by ``skopeo oci:`` and ``umoci``.

Blobs are hard-linked from the blob store when on the same filesystem (copied
otherwise); ``index.json`` is written last and atomically, so a reader never sees an
index that points at a missing blob.

The manifest keeps its own media type (Docker schema 2 when the base image was a
Docker image, as Kaniko writes it), so the digest is the pushed one. skopeo 1.9 then
reads the layout as ``oci:PATH`` (its only image); it matches ``oci:PATH:TAG`` names
only on OCI-typed manifests. OS errors are a :class:`StorageError` naming the layout
(a full disk says how big the image is).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pykaniko.errors import ImageError, StorageError
from pykaniko.image import mediatypes as mt
from pykaniko.image.blobstore import BlobStore
from pykaniko.image.layerfile import link_or_copy
from pykaniko.image.manifest import Descriptor, Index, Manifest

__all__ = ["REF_NAME_ANNOTATION", "write_oci_layout"]

REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"


def _place(store: BlobStore, digest: str, root: Path) -> None:
    algo, _, hexpart = digest.partition(":")
    target = root / "blobs" / algo / hexpart
    if target.exists():
        return
    if not store.has(digest):
        raise ImageError(f"cannot write OCI layout {root}: blob {digest} is not in the local store")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{hexpart}.tmp")
    tmp.unlink(missing_ok=True)
    link_or_copy(store.path(digest), tmp)
    os.replace(tmp, target)


def write_oci_layout(
    path: Path, manifest: Manifest, store: BlobStore, *, ref_name: str | None
) -> None:
    """Write a fresh layout at ``path`` holding this one image (a new ``index.json``).

    ``ref_name`` becomes the ``org.opencontainers.image.ref.name`` annotation (the
    ``TAG`` of ``skopeo oci:PATH:TAG`` and ``umoci --image PATH:TAG``).
    """
    try:
        _write(path, manifest, store, ref_name)
    except OSError as e:
        size = sum(d.size for d in (*manifest.layers, manifest.config)) + len(manifest.raw)
        raise StorageError.from_os(
            e, operation="write OCI layout", path=str(path), needed=size, detail="the image"
        ) from e


def _write(path: Path, manifest: Manifest, store: BlobStore, ref_name: str | None) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    for desc in (*manifest.layers, manifest.config):
        _place(store, desc.digest, path)
    digest = store.put_bytes(manifest.raw)
    _place(store, digest, path)
    annotations = {REF_NAME_ANNOTATION: ref_name} if ref_name else {}
    entry = Descriptor(manifest.media_type, digest, len(manifest.raw), annotations=annotations)
    index = Index.build((entry,), media_type=mt.OCI_INDEX)
    tmp = path / ".index.json.tmp"
    tmp.write_bytes(index.raw)
    os.replace(tmp, path / "index.json")
