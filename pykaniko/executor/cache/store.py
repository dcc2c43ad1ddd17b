"""Where cache entries live: one interface (:class:`CacheStore`), two implementations
(a registry repository here, an OCI layout directory in :mod:`.layout_store`), so the
layer cache and the steps never ask which one they have.

An entry is a small image per key, as Kaniko lays it out: a manifest with the step's
layer (or none, for a step that changed nothing: a warm build must not run it again
just to find that out), a config whose ``created`` is checked against ``--cache-ttl``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from pykaniko.errors import ImageError, NotFoundError
from pykaniko.image import mediatypes as mt
from pykaniko.image.blobstore import BlobStore
from pykaniko.image.config import History, ImageConfig
from pykaniko.image.manifest import Descriptor, Manifest
from pykaniko.image.platform import Platform
from pykaniko.image.reference import Reference
from pykaniko.registry import PulledImage, RegistryClient

__all__ = ["CacheEntry", "CacheStore", "RegistryCacheStore", "cache_image", "entry_of"]


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """What a store holds for one key: at most one layer, its diff_id, when it was
    made, and the registry image holding the blob (for cross-repository mounts when
    the final image is pushed), if the store is a registry."""

    key: str
    layers: tuple[Descriptor, ...]
    diff_ids: tuple[str, ...]
    created: str
    source: PulledImage | None = None


class CacheStore(Protocol):
    """A place for cache entries. ``lookup`` returns None when there is no entry and
    raises :class:`pykaniko.errors.PykanikoError` when it cannot tell or the entry is
    damaged; ``fetch`` puts an entry's blobs into the build's blob store, digests
    verified. All methods are called from worker threads."""

    def describe(self, key: str) -> str: ...

    def lookup(self, key: str, blobs: BlobStore) -> CacheEntry | None: ...

    def fetch(self, entry: CacheEntry, blobs: BlobStore) -> None: ...

    def put(self, key: str, manifest: Manifest, blobs: BlobStore, *, replace: bool) -> None: ...


def cache_image(
    blobs: BlobStore,
    platform: Platform,
    layers: Sequence[Descriptor],
    diff_ids: Sequence[str],
    created_by: str,
    *,
    docker: bool,
) -> Manifest:
    """The entry image for one step (config and manifest written to ``blobs``)."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    config = ImageConfig(
        architecture=platform.architecture,
        os=platform.os,
        variant=platform.variant,
        created=now,
        diff_ids=tuple(diff_ids),
        history=(History(created=now, created_by=created_by, empty_layer=not layers),),
    )
    raw = config.to_json()
    digest = blobs.put_bytes(raw)
    manifest = Manifest.build(
        media_type=mt.DOCKER_MANIFEST if docker else mt.OCI_MANIFEST,
        config=Descriptor(mt.DOCKER_CONFIG if docker else mt.OCI_CONFIG, digest, len(raw)),
        layers=tuple(layers),
    )
    blobs.put_bytes(manifest.raw)
    return manifest


def entry_of(
    key: str, manifest: Manifest, config: ImageConfig, source: PulledImage | None = None
) -> CacheEntry:
    """A parsed entry, refused when it is not what :func:`cache_image` makes."""
    layers, diff_ids = tuple(manifest.layers), tuple(config.diff_ids)
    if len(layers) > 1 or len(layers) != len(diff_ids):
        raise ImageError(f"not a cache entry: {len(layers)} layers and {len(diff_ids)} diff_ids")
    return CacheEntry(key, layers, diff_ids, config.created, source)


@dataclass(frozen=True)
class RegistryCacheStore:
    """``<repo>:<key>`` images in a registry repository (``--cache-repo``)."""

    registry: RegistryClient
    repo: Reference
    platform: Platform

    def describe(self, key: str) -> str:
        return f"{self.repo.registry}/{self.repo.repository}:{key}"

    def lookup(self, key: str, blobs: BlobStore) -> CacheEntry | None:
        try:  # one attempt: most probes of a new key simply miss
            image = self.registry.pull(self.repo.with_tag(key), self.platform, blobs, attempts=1)
        except NotFoundError:
            return None
        return entry_of(key, image.manifest, image.config, image)

    def fetch(self, entry: CacheEntry, blobs: BlobStore) -> None:
        assert entry.source is not None
        self.registry.fetch_layers(entry.source, entry.layers, blobs)

    def put(self, key: str, manifest: Manifest, blobs: BlobStore, *, replace: bool) -> None:
        del replace  # a tag simply moves to the new manifest
        self.registry.push(manifest, [self.repo.with_tag(key)], blobs)
