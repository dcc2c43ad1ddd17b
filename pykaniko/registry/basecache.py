"""The base-image cache (``--cache-dir``): pulled base images kept on disk by digest, so
a build goes on when the registry is slow or down, within ``--cache-ttl``.

Layout (not Kaniko's ``<digest>`` tarball + ``<digest>.json``: blobs are stored once
however many images share them, and land in a build's blob store by a hard link)::

    <dir>/blobs/sha256/<hex>   manifests, configs and layers, verified when written
    <dir>/index/<key>.json     one record per way of asking for an image: by the
                               reference as written (tag) and by digest, per platform
    <dir>/tmp/                 files being written

Writers (``pykaniko warmer``) put every blob in place (a temp file, renamed once its
digest is verified), then the records, each a temp file renamed over the old one. So
readers never see a torn record, a record never names a missing blob, and any number
of builds and warmers can share the directory; nothing is ever deleted by readers.
Builds only read it, as Kaniko's executor does.

Lookups: a reference pinned by digest is served from the cache without asking the
registry (content addresses do not go stale). A tag is resolved by the registry when
it answers (a quick HEAD): the cache serves it when the digest is the one it holds;
when the registry does not answer (down, busy, too slow), the cache's own record of
the tag is used. A record older than the TTL is a miss.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pykaniko.errors import AuthError, NotFoundError, RegistryError
from pykaniko.image.blobstore import BlobStore
from pykaniko.image.config import ImageConfig
from pykaniko.image.digest import CHUNK, check_digest
from pykaniko.image.manifest import Manifest
from pykaniko.image.platform import Platform
from pykaniko.image.reference import Reference, parse_reference
from pykaniko.registry.options import RegistryOptions
from pykaniko.registry.pull import PulledImage, candidates_for, pull_image

if TYPE_CHECKING:
    from pykaniko.registry.api import RegistryAPI

__all__ = ["BaseImageCache", "CacheEntry", "current_digest", "pull_through_cache"]

_VERSION = 1
_QUICK_TIMEOUT = 5.0
"""Seconds a tag's registry gets to answer when the cache could answer instead."""


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """One cached image as a reference (``reference``) resolved on ``platform``."""

    reference: str
    platform: str
    resolved: str
    digest: str
    media_type: str
    config_digest: str
    layers: tuple[str, ...]
    source: str
    written: float

    def age(self, now: float) -> float:
        return max(0.0, now - self.written)


def _keys(ref: Reference, platform: Platform) -> list[str]:
    """Record names a lookup of ``ref`` tries, most specific first."""
    keys = [f"ref:{ref}|{platform}"]
    if ref.digest:
        keys.append(f"digest:{ref.digest}|{platform}")
    return keys


class BaseImageCache:
    """A base-image cache directory; reading it never creates or changes anything."""

    def __init__(
        self, root: Path, ttl_seconds: float, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.root = root
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._store: BlobStore | None = None

    # -- reading ---------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path | None:
        algo, _, hexpart = check_digest(digest).partition(":")
        path = self.root / "blobs" / algo / hexpart
        return path if path.is_file() else None

    def lookup(self, ref: Reference, platform: Platform) -> CacheEntry | None:
        """A fresh, complete entry for ``ref`` on ``platform``, or None."""
        now = self._clock()
        for key in _keys(ref, platform):
            entry = self._read(key)
            if entry is None or entry.age(now) > self.ttl_seconds:
                continue
            blobs = (entry.digest, entry.config_digest, *entry.layers)
            if all(self.blob_path(d) is not None for d in blobs):
                return entry
        return None

    def _read(self, key: str) -> CacheEntry | None:
        try:
            data: Any = json.loads(self._record_path(key).read_bytes())
            if data.get("version") != _VERSION:
                return None
            fields = {k: data[k] for k in CacheEntry.__dataclass_fields__}
            fields["layers"] = tuple(fields["layers"])
            return CacheEntry(**fields)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None  # absent, unreadable or from another version: a miss

    def _record_path(self, key: str) -> Path:
        return self.root / "index" / (hashlib.sha256(key.encode()).hexdigest() + ".json")

    def load(
        self,
        entry: CacheEntry,
        ref: Reference,
        store: BlobStore,
        *,
        source: Reference | None = None,
    ) -> PulledImage:
        """The cached image as a pull would have returned it; manifest and config are
        put into ``store`` (layers come with :meth:`copy_into` when needed)."""
        manifest_path = self.copy_into(entry.digest, store)
        config_path = self.copy_into(entry.config_digest, store)
        if manifest_path is None or config_path is None:
            raise NotFoundError(f"the base-image cache lost {ref} while it was read")
        manifest = Manifest.parse(manifest_path.read_bytes(), entry.media_type)
        config_raw = config_path.read_bytes()
        return PulledImage(
            ref=ref,
            source=source or parse_reference(entry.source).with_digest(entry.digest),
            manifest=manifest,
            config_raw=config_raw,
            config=ImageConfig.parse(config_raw),
            digest=entry.digest,
            resolved=entry.resolved,
        )

    def copy_into(self, digest: str, store: BlobStore) -> Path | None:
        """Put a cached blob into ``store`` (a hard link where the two share a file
        system, else a copy checked against its digest); its path there, or None."""
        if store.has(digest):
            return store.path(digest)
        src = self.blob_path(digest)
        if src is None:
            return None
        tmp = store.temp_path(".cached")
        try:
            tmp.unlink()
            try:
                os.link(src, tmp)
            except OSError:  # another file system, or links refused: copy and check
                if not _copy_verified(src, tmp, digest):
                    return None
            return store.adopt(tmp, digest)
        except OSError:
            return None
        finally:
            tmp.unlink(missing_ok=True)

    # -- writing ---------------------------------------------------------------------

    @property
    def store(self) -> BlobStore:
        """The cache's blobs as a store writers pull into (creates the directories)."""
        if self._store is None:
            self._store = BlobStore(self.root)
        return self._store

    def record(self, ref: Reference, platform: Platform, pulled: PulledImage) -> CacheEntry:
        """Record ``pulled`` (whose blobs are all in :attr:`store`) under ``ref`` and
        its digests. Each record is replaced atomically."""
        entry = CacheEntry(
            reference=str(ref),
            platform=str(platform),
            resolved=pulled.resolved or pulled.digest,
            digest=pulled.digest,
            media_type=pulled.manifest.media_type,
            config_digest=pulled.manifest.config.digest,
            layers=tuple(d.digest for d in pulled.manifest.layers),
            source=pulled.source.name,
            written=self._clock(),
        )
        missing = [
            d
            for d in (entry.digest, entry.config_digest, *entry.layers)
            if self.blob_path(d) is None
        ]
        if missing:
            raise RegistryError(f"cannot cache {ref}: blob {missing[0][:19]} is not in the cache")
        raw = json.dumps({"version": _VERSION, **asdict(entry)}, sort_keys=True).encode()
        keys = dict.fromkeys(
            [
                *_keys(ref, platform),
                f"digest:{entry.digest}|{platform}",
                f"digest:{entry.resolved}|{platform}",
            ]
        )
        (self.root / "index").mkdir(parents=True, exist_ok=True)
        for key in keys:
            tmp = self.store.temp_path(".record")
            tmp.write_bytes(raw)
            os.replace(tmp, self._record_path(key))
        return entry


def _copy_verified(src: Path, dest: Path, digest: str) -> bool:
    algo = digest.split(":", 1)[0]
    h = hashlib.new(algo)
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        while block := fin.read(CHUNK):
            h.update(block)
            fout.write(block)
    return f"{algo}:{h.hexdigest()}" == digest


def current_digest(
    api: RegistryAPI, ref: Reference, options: RegistryOptions
) -> tuple[str, Reference]:
    """Where ``ref`` points now, asking each candidate registry with a short timeout:
    (digest, the candidate pinned to it); ``""`` when the registry sends no digest."""
    errors: list[RegistryError] = []
    for candidate in candidates_for(ref, options):
        try:
            digest = api.head_manifest(candidate.ref, retries=0, read_timeout=_QUICK_TIMEOUT)
        except RegistryError as exc:
            errors.append(exc)
            continue
        if digest is None:
            errors.append(
                NotFoundError(
                    f"check manifest {candidate.ref} failed: "
                    f"{candidate.ref.name}: HTTP 404 MANIFEST_UNKNOWN",
                    registry=candidate.ref.registry,
                    repository=candidate.ref.repository,
                    status=404,
                )
            )
            continue
        return digest, candidate.ref
    if errors and all(isinstance(e, NotFoundError | AuthError) for e in errors):
        raise errors[-1]
    raise errors[-1] if errors else RegistryError(f"no registry to ask for {ref}")


def pull_through_cache(
    api: RegistryAPI,
    cache: BaseImageCache,
    ref: Reference,
    platform: Platform,
    store: BlobStore,
    *,
    options: RegistryOptions,
    attempts: int | None = None,
) -> PulledImage:
    """:func:`pull_image` with the cache in front, as the module doc says."""
    hit = cache.lookup(ref, platform)
    if hit is None:
        return pull_image(api, ref, platform, store, options, attempts=attempts)
    if ref.digest:
        return cache.load(hit, ref, store)
    try:
        current, where = current_digest(api, ref, options)
    except (NotFoundError, AuthError):
        raise  # the registry answered: the tag is gone, or we may not see it
    except RegistryError as exc:
        age = hit.age(time.time()) / 3600
        api.transport.notify(
            f"{exc.message}; using {ref} from the base-image cache "
            f"({hit.digest[:19]}, cached {age:.1f}h ago)"
        )
        return cache.load(hit, ref, store)
    if current and current in (hit.resolved, hit.digest):
        return cache.load(hit, ref, store, source=where.with_digest(hit.digest))
    # the tag moved (or the registry does not say where it points): pull it; layers
    # the cache holds still come from there
    return pull_image(api, ref, platform, store, options, attempts=attempts)
