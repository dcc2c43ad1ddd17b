"""Pushing an image to one or more destinations: blobs first (HEAD, cross-repository
mount or upload, each blob once per repository), the manifest last, then every tag.
A tag therefore never points at a manifest whose blobs are missing."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from pykaniko.errors import ImageError, RegistryError
from pykaniko.image.blobstore import BlobStore
from pykaniko.image.manifest import Descriptor, Manifest
from pykaniko.image.reference import Reference
from pykaniko.registry.api import RegistryAPI
from pykaniko.registry.options import RegistryOptions
from pykaniko.registry.pull import PulledImage

__all__ = ["push_image"]


def _ensure_blob(
    api: RegistryAPI,
    registry: str,
    *,
    repository: str,
    desc: Descriptor,
    store: BlobStore,
    sources: Sequence[PulledImage],
    pushed_to: Sequence[str],
) -> None:
    digest = desc.digest
    if api.blob_exists(registry, repository, digest, mode="push"):
        return
    holders = [s for s in sources if s.holds(digest)]
    mountable = [
        *(s.source.repository for s in holders if s.source.registry == registry),
        *pushed_to,
    ]
    for source_repository in dict.fromkeys(mountable):
        if source_repository == repository:
            continue
        try:
            if api.mount_blob(registry, repository, digest, source_repository):
                return
        except RegistryError:
            pass  # no pull access to the source: fall back to uploading
    if not store.has(digest):
        if not holders:
            raise ImageError(
                f"blob {digest} is neither in the local store nor in a pulled base image"
            )
        src = holders[0].source
        api.fetch_blob(src.registry, src.repository, digest, store, size=desc.size)
    api.upload_blob(registry, repository, digest, store)


def _push_repository(
    api: RegistryAPI,
    manifest: Manifest,
    refs: Sequence[Reference],
    store: BlobStore,
    *,
    sources: Sequence[PulledImage],
    pushed_to: Sequence[str],
    threads: int,
) -> None:
    registry, repository = refs[0].registry, refs[0].repository
    blobs: dict[str, Descriptor] = {}
    for desc in (*manifest.layers, manifest.config):
        blobs.setdefault(desc.digest, desc)

    def one(desc: Descriptor) -> None:
        _ensure_blob(
            api,
            registry,
            repository=repository,
            desc=desc,
            store=store,
            sources=sources,
            pushed_to=pushed_to,
        )

    if threads > 1 and len(blobs) > 1:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(one, blobs.values()))
    else:
        for desc in blobs.values():
            one(desc)
    tags = [r for r in refs if r.tag]
    targets = [r.with_tag(r.tag) for r in tags if r.tag] or [refs[0].with_digest(manifest.digest)]
    for target in targets:
        api.put_manifest(target, manifest.raw, manifest.media_type)


def push_image(
    api: RegistryAPI,
    manifest: Manifest,
    refs: Sequence[Reference],
    store: BlobStore,
    options: RegistryOptions,
    *,
    sources: Sequence[PulledImage] = (),
) -> str:
    """Push to every destination in order; returns the manifest digest.

    Each repository is attempted ``1 + push_retry`` times with exponential backoff;
    permanent errors (denied, bad manifest) are not retried. A later destination on
    the same registry mounts blobs from an earlier one instead of uploading again.
    """
    if not refs:
        raise ImageError("no destination to push to")
    groups: dict[tuple[str, str], list[Reference]] = {}
    for ref in refs:
        if ref.digest and ref.digest != manifest.digest and not ref.tag:
            raise ImageError(
                f"destination {ref} names a digest other than the image's {manifest.digest}"
            )
        groups.setdefault((ref.registry, ref.repository), []).append(ref)
    threads = max(1, min(options.download_threads, 4))
    done: dict[str, list[str]] = {}
    for (registry, repository), group in groups.items():
        for attempt in range(1 + options.push_retry):
            try:
                _push_repository(
                    api,
                    manifest,
                    group,
                    store,
                    sources=sources,
                    pushed_to=done.get(registry, []),
                    threads=threads,
                )
                done.setdefault(registry, []).append(repository)
                break
            except RegistryError as exc:
                if not exc.temporary or attempt >= options.push_retry:
                    raise
                api.transport.notify(f"{exc.message}; retrying the push to {registry}/{repository}")
                time.sleep(options.retry_backoff * (2**attempt))
    return manifest.digest
