"""Pulling: resolve a reference through mirrors and maps to a platform manifest and
its config; fetch layers concurrently, streamed and verified, into the blob store.

Retries of broken or wrong bodies and of busy registries happen per request (see
``api``); here a registry that keeps failing hands over to the next candidate, for
manifests and for layer blobs alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pykaniko.errors import AuthError, BuildError, ImageError, NotFoundError, RegistryError
from pykaniko.image import mediatypes as mt
from pykaniko.image.blobstore import BlobStore
from pykaniko.image.config import ImageConfig
from pykaniko.image.manifest import Descriptor, Index, Manifest
from pykaniko.image.platform import Platform
from pykaniko.image.reference import Reference
from pykaniko.registry.mirrors import PullCandidate, pull_candidates
from pykaniko.registry.options import RegistryOptions

if TYPE_CHECKING:  # the HTTP stack is imported on first network use, not here
    from pykaniko.registry.api import RegistryAPI

__all__ = ["LocalBlobs", "PulledImage", "candidates_for", "fetch_layers", "pull_image"]

LocalBlobs = Callable[[str], Path | None]
"""Puts a blob into the build's store from somewhere local (the base-image cache);
its path there, or None when it has no copy."""


@dataclass(frozen=True, slots=True)
class PulledImage:
    """A resolved image: ``ref`` as asked, ``source`` where it was found (registry and
    repository actually used, pinned to the manifest digest). ``resolved`` is what the
    reference itself points at: the index's digest for a multi-platform image, else
    the manifest's (empty when unknown)."""

    ref: Reference
    source: Reference
    manifest: Manifest
    config_raw: bytes
    config: ImageConfig
    digest: str
    resolved: str = ""

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
    api: RegistryAPI,
    ref: Reference,
    source: Reference,
    platform: Platform,
    store: BlobStore,
    *,
    attempts: int | None = None,
) -> PulledImage:
    fetched = api.get_manifest(source, attempts=attempts)
    raw, media_type = fetched.raw, fetched.media_type
    digest = resolved = fetched.digest
    if _is_index(raw, media_type):
        index = Index.parse(raw, media_type)
        chosen = index.select(platform)
        if chosen is None:
            have = sorted({str(d.platform) for d in index.manifests if d.platform is not None})
            raise ImageError(
                f"{ref} has no image for platform {platform}",
                hint=f"available: {', '.join(have) or 'none'}; use --custom-platform",
            )
        child = api.get_manifest(source.with_digest(chosen.digest), attempts=attempts)
        raw, media_type, digest = child.raw, child.media_type, child.digest
    manifest = Manifest.parse(raw, media_type)
    store.put_bytes(raw)
    config_path = api.fetch_blob(
        source.registry,
        source.repository,
        manifest.config.digest,
        store,
        size=manifest.config.size,
        attempts=attempts,
    )
    config_raw = config_path.read_bytes()
    return PulledImage(
        ref=ref,
        source=source.with_digest(digest),
        manifest=manifest,
        config_raw=config_raw,
        config=ImageConfig.parse(config_raw),
        digest=digest,
        resolved=resolved,
    )


def _describe(candidate: PullCandidate, exc: Exception) -> str:
    reason = exc.message if isinstance(exc, RegistryError) else str(exc)
    return f"{candidate.ref.name} ({reason})"


def candidates_for(ref: Reference, options: RegistryOptions) -> list[PullCandidate]:
    return pull_candidates(
        ref,
        mirrors=options.mirrors,
        registry_maps=options.registry_maps,
        skip_default_registry_fallback=options.skip_default_registry_fallback,
    )


def pull_image(
    api: RegistryAPI,
    ref: Reference,
    platform: Platform,
    store: BlobStore,
    options: RegistryOptions,
    *,
    attempts: int | None = None,
) -> PulledImage:
    """Try each candidate registry in order; at each, a broken or wrong body and a
    busy registry get ``image_download_retry`` more attempts (``attempts`` overrides
    the total), a dead host none. A failure names every registry tried and why."""
    candidates = candidates_for(ref, options)
    failures: list[tuple[PullCandidate, RegistryError]] = []
    for candidate in candidates:
        try:
            return _resolve(api, ref, candidate.ref, platform, store, attempts=attempts)
        except (NotFoundError, AuthError) as exc:
            failures.append((candidate, exc))
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
        except RegistryError as exc:
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
    from pykaniko.registry.http import download

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
    *,
    local: LocalBlobs | None = None,
) -> list[Path]:
    """Blobs of ``layers`` in the store (same order), fetched concurrently when
    missing: from ``local`` first, then from the registry that served the manifest,
    then from the other candidates (mirrors, the original) when that one keeps
    failing or serving wrong bytes. Each registry retries as ``fetch_blob`` does."""
    others: list[Reference] | None = None

    def elsewhere() -> list[Reference]:
        nonlocal others
        if others is None:
            src = pulled.source
            others = [
                c.ref
                for c in candidates_for(pulled.ref, options)
                if (c.ref.registry, c.ref.repository) != (src.registry, src.repository)
            ]
        return others

    def one(desc: Descriptor) -> Path:
        if store.has(desc.digest):
            return store.path(desc.digest)
        if local is not None:
            found = local(desc.digest)
            if found is not None:
                return found
        try:
            return api.fetch_blob(
                pulled.source.registry,
                pulled.source.repository,
                desc.digest,
                store,
                size=desc.size,
            )
        except NotFoundError as exc:
            if desc.urls:
                return _fetch_foreign(api, desc, store)
            return from_elsewhere(desc, exc)
        except AuthError:
            raise
        except RegistryError as exc:
            if not exc.temporary:
                raise
            return from_elsewhere(desc, exc)

    def from_elsewhere(desc: Descriptor, exc: RegistryError) -> Path:
        """The blob from the next candidate that has it right; else the first error."""
        for other in elsewhere():
            api.transport.notify(f"{exc.message}; trying {other.registry}/{other.repository}")
            try:
                return api.fetch_blob(
                    other.registry, other.repository, desc.digest, store, size=desc.size
                )
            except RegistryError:
                continue
        raise exc

    missing = [d for d in layers if not store.has(d.digest)]
    if len(missing) <= 1:
        return [one(d) for d in layers]
    with ThreadPoolExecutor(max_workers=max(1, options.download_threads)) as pool:
        return list(pool.map(one, layers))
