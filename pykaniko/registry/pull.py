"""Pulling: resolve a reference through mirrors and maps to a platform manifest and
its config; fetch layers concurrently, streamed and verified, into the blob store."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pykaniko.errors import AuthError, BuildError, ImageError, NotFoundError, RegistryError
from pykaniko.image import mediatypes as mt
from pykaniko.image.blobstore import BlobStore
from pykaniko.image.config import ImageConfig
from pykaniko.image.manifest import Descriptor, Index, Manifest
from pykaniko.image.platform import Platform
from pykaniko.image.reference import Reference
from pykaniko.registry.api import RegistryAPI
from pykaniko.registry.http import download
from pykaniko.registry.mirrors import PullCandidate, pull_candidates
from pykaniko.registry.options import RegistryOptions

__all__ = ["PulledImage", "fetch_layers", "pull_image"]


@dataclass(frozen=True, slots=True)
class PulledImage:
    """A resolved image: ``ref`` as asked, ``source`` where it was found (registry and
    repository actually used, pinned to the manifest digest)."""

    ref: Reference
    source: Reference
    manifest: Manifest
    config_raw: bytes
    config: ImageConfig
    digest: str

    def holds(self, digest: str) -> bool:
        return digest == self.manifest.config.digest or any(
            d.digest == digest for d in self.manifest.layers
        )


def _is_index(raw: bytes, media_type: str) -> bool:
    """By Content-Type, or by the body when a registry sends a generic type."""
    if mt.is_index(media_type):
        return True
    if mt.is_manifest(media_type):
        return False
    try:
        data = json.loads(raw)
    except ValueError:
        return False
    return isinstance(data, dict) and (
        mt.is_index(str(data.get("mediaType") or "")) or "manifests" in data
    )


def _resolve(
    api: RegistryAPI, ref: Reference, source: Reference, platform: Platform, store: BlobStore
) -> PulledImage:
    fetched = api.get_manifest(source)
    raw, media_type = fetched.raw, fetched.media_type
    digest = fetched.digest
    if _is_index(raw, media_type):
        index = Index.parse(raw, media_type)
        chosen = index.select(platform)
        if chosen is None:
            have = sorted({str(d.platform) for d in index.manifests if d.platform is not None})
            raise ImageError(
                f"{ref} has no image for platform {platform}",
                hint=f"available: {', '.join(have) or 'none'}; use --custom-platform",
            )
        child = api.get_manifest(source.with_digest(chosen.digest))
        raw, media_type, digest = child.raw, child.media_type, child.digest
    manifest = Manifest.parse(raw, media_type)
    store.put_bytes(raw)
    config_path = api.fetch_blob(
        source.registry,
        source.repository,
        manifest.config.digest,
        store,
        size=manifest.config.size,
    )
    config_raw = config_path.read_bytes()
    return PulledImage(
        ref=ref,
        source=source.with_digest(digest),
        manifest=manifest,
        config_raw=config_raw,
        config=ImageConfig.parse(config_raw),
        digest=digest,
    )


def _describe(candidate: PullCandidate, exc: Exception) -> str:
    reason = exc.message if isinstance(exc, RegistryError) else str(exc)
    return f"{candidate.ref.name} ({reason})"


def pull_image(
    api: RegistryAPI,
    ref: Reference,
    platform: Platform,
    store: BlobStore,
    options: RegistryOptions,
) -> PulledImage:
    """Try each candidate registry in order; each gets ``image_download_retry`` extra
    attempts for temporary failures. A failure names every registry tried and why."""
    candidates = pull_candidates(
        ref,
        mirrors=options.mirrors,
        registry_maps=options.registry_maps,
        skip_default_registry_fallback=options.skip_default_registry_fallback,
    )
    failures: list[tuple[PullCandidate, RegistryError]] = []
    for candidate in candidates:
        for attempt in range(1 + options.image_download_retry):
            try:
                return _resolve(api, ref, candidate.ref, platform, store)
            except (NotFoundError, AuthError) as exc:
                failures.append((candidate, exc))
                break
            except ImageError as exc:  # a mirror serving garbage: try the next registry
                if candidate is candidates[-1]:
                    raise
                failures.append(
                    (
                        candidate,
                        RegistryError(
                            exc.message,
                            registry=candidate.ref.registry,
                            repository=candidate.ref.repository,
                        ),
                    )
                )
                break
            except RegistryError as exc:
                if attempt < options.image_download_retry:
                    api.transport.notify(f"{exc.message}; retrying")
                    time.sleep(options.retry_backoff * (2**attempt))
                    continue
                failures.append((candidate, exc))
        if failures and failures[-1][0] is candidate and candidate is not candidates[-1]:
            api.transport.notify(
                f"{_describe(candidate, failures[-1][1])}; trying the next registry"
            )
    if len(failures) == 1 and failures[0][0].ref == ref:
        raise failures[0][1]
    errors = [e for _c, e in failures]
    kind: type[RegistryError] = RegistryError
    if all(isinstance(e, NotFoundError) for e in errors):
        kind = NotFoundError
    elif all(isinstance(e, AuthError) for e in errors):
        kind = AuthError
    tried = "; ".join(_describe(c, e) for c, e in failures)
    last = errors[-1]
    raise kind(
        f"cannot pull {ref}: tried {tried}",
        registry=last.registry,
        repository=last.repository,
        status=last.status,
        hint=None
        if not options.skip_default_registry_fallback
        else "--skip-default-registry-fallback is set, so the original registry was not tried",
    )


def _fetch_foreign(api: RegistryAPI, desc: Descriptor, store: BlobStore) -> Path:
    """A foreign layer (Windows base images) the registry does not hold: try its URLs."""
    errors: list[str] = []
    for url in desc.urls:
        tmp = store.temp_path(".foreign")
        try:
            result = download(api.transport, url, tmp, checksum=desc.digest)
            return store.adopt(result.path, desc.digest)
        except (RegistryError, BuildError) as exc:
            errors.append(exc.message)
        finally:
            tmp.unlink(missing_ok=True)
    raise NotFoundError(
        f"foreign layer {desc.digest[:19]} is not in the registry and its URLs failed: "
        + "; ".join(errors)
    )


def fetch_layers(
    api: RegistryAPI,
    pulled: PulledImage,
    layers: Sequence[Descriptor],
    store: BlobStore,
    options: RegistryOptions,
) -> list[Path]:
    """Blobs of ``layers`` in the store, fetched concurrently when missing; retried on
    temporary failures (truncated or corrupted bodies included)."""
    attempts = 1 + options.image_download_retry

    def one(desc: Descriptor) -> Path:
        for attempt in range(attempts):
            if store.has(desc.digest):
                return store.path(desc.digest)
            try:
                return api.fetch_blob(
                    pulled.source.registry,
                    pulled.source.repository,
                    desc.digest,
                    store,
                    size=desc.size,
                )
            except NotFoundError:
                if not desc.urls:
                    raise
                return _fetch_foreign(api, desc, store)
            except RegistryError as exc:
                if not exc.temporary or attempt + 1 >= attempts:
                    raise
                api.transport.notify(f"{exc.message}; retrying")
                time.sleep(options.retry_backoff * (2**attempt))
        raise AssertionError("unreachable")

    missing = [d for d in layers if not store.has(d.digest)]
    if len(missing) <= 1:
        return [one(d) for d in layers]
    with ThreadPoolExecutor(max_workers=max(1, options.download_threads)) as pool:
        return list(pool.map(one, layers))
