"""``--cache-repo=oci:/dir``: cache entries on disk, one OCI image layout per key at
``/dir/<key>`` (``skopeo inspect oci:/dir/<key>`` reads one).

One layout per key, as Kaniko does, rather than one shared layout with an index of every
key: an entry is written whole into a temporary directory beside it and renamed into
place, so concurrent builds sharing the directory need no lock (``rename(2)`` is atomic;
a reader sees an entry whole or not at all, and two writers of one key leave one of
their identical entries). A shared ``index.json`` would need a lock around every
read-modify-write, which CI cache volumes (network file systems) do not always honour.
Kaniko names the layouts ``/dir:<key>`` beside the directory; here they live inside it,
so one directory (one CI cache volume) holds the whole cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pykaniko.errors import ImageError, NotFoundError
from pykaniko.executor.cache.store import CacheEntry, entry_of
from pykaniko.image.blobstore import BlobStore
from pykaniko.image.config import ImageConfig
from pykaniko.image.digest import CHUNK, check_digest, sha256_bytes
from pykaniko.image.layout import write_oci_layout
from pykaniko.image.manifest import Index, Manifest

__all__ = ["LayoutCacheStore"]

_SMALL = 4 << 20  # manifests and configs; anything bigger is not an entry of ours


@dataclass(frozen=True)
class LayoutCacheStore:
    root: Path

    def describe(self, key: str) -> str:
        return f"oci:{self.root / key}"

    def _blob(self, key: str, digest: str) -> Path:
        algo, _, hexpart = check_digest(digest).partition(":")
        return self.root / key / "blobs" / algo / hexpart

    def _small(self, key: str, digest: str) -> bytes:
        path = self._blob(key, digest)
        try:
            if path.stat().st_size > _SMALL:
                raise ImageError(f"{path}: too large for a manifest or config")
            raw = path.read_bytes()
        except FileNotFoundError as exc:
            raise NotFoundError(f"blob {digest[:19]} is missing from {self.root / key}") from exc
        if sha256_bytes(raw) != digest:
            raise ImageError(f"blob {digest[:19]} in {self.root / key} has another digest")
        return raw

    def lookup(self, key: str, blobs: BlobStore) -> CacheEntry | None:
        del blobs  # an entry is read in place
        try:
            index_raw = (self.root / key / "index.json").read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        index = Index.parse(index_raw)
        if not index.manifests:
            raise ImageError(f"{self.root / key}: index.json lists no manifest")
        desc = index.manifests[0]
        manifest = Manifest.parse(self._small(key, desc.digest), desc.media_type)
        config = ImageConfig.parse(self._small(key, manifest.config.digest))
        return entry_of(key, manifest, config)

    def fetch(self, entry: CacheEntry, blobs: BlobStore) -> None:
        """Copy each layer into the blob store, checking its digest on the way."""
        for desc in entry.layers:
            if blobs.has(desc.digest):
                continue
            tmp = blobs.temp_path(".cache")
            try:
                h = hashlib.sha256()
                try:
                    src = open(self._blob(entry.key, desc.digest), "rb")  # noqa: SIM115
                except FileNotFoundError as exc:
                    raise NotFoundError(
                        f"layer {desc.digest[:19]} is missing from {self.root / entry.key}"
                    ) from exc
                with src, open(tmp, "wb") as out:
                    while block := src.read(CHUNK):
                        h.update(block)
                        out.write(block)
                if "sha256:" + h.hexdigest() != desc.digest:
                    raise ImageError(
                        f"layer {desc.digest[:19]} in {self.root / entry.key} has another digest"
                    )
                blobs.adopt(tmp, desc.digest)
            finally:
                tmp.unlink(missing_ok=True)

    def put(self, key: str, manifest: Manifest, blobs: BlobStore, *, replace: bool) -> None:
        """Write the entry beside its place, then rename it in (see the module doc)."""
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.root / key
        if target.exists() and not replace:
            return
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key[:12]}-", dir=self.root))
        try:
            write_oci_layout(tmp, manifest, blobs, ref_name=key)
            os.chmod(tmp, 0o755)
            if replace and target.exists():
                trash = Path(tempfile.mkdtemp(prefix=f".old-{key[:12]}-", dir=self.root))
                with contextlib.suppress(FileNotFoundError):  # another writer was first
                    os.rename(target, trash / "entry")
                shutil.rmtree(trash, ignore_errors=True)
            with contextlib.suppress(OSError):  # another build wrote this key meanwhile
                os.rename(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
