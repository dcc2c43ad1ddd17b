"""Pushing an image to one or more destinations: blobs first (mounted across
repositories where a copy is on the registry, else HEAD and upload; each blob once per
repository), the manifest last, then every tag. A tag therefore never points at a
manifest whose blobs are missing. The work is done by :class:`BlobUploader`, which a
build can also feed layer by layer while it runs (a pipelined push)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pykaniko.image.blobstore import BlobStore
from pykaniko.image.manifest import Manifest
from pykaniko.image.reference import Reference
from pykaniko.registry.options import RegistryOptions
from pykaniko.registry.pull import LocalBlobs, PulledImage
from pykaniko.registry.uploader import BlobUploader

if TYPE_CHECKING:
    from pykaniko.registry.api import RegistryAPI

__all__ = ["new_uploader", "push_image"]


def new_uploader(
    api: RegistryAPI,
    refs: Sequence[Reference],
    store: BlobStore,
    options: RegistryOptions,
    *,
    sources: Sequence[PulledImage] = (),
    local: LocalBlobs | None = None,
) -> BlobUploader:
    """An uploader with the options' thread count and push retries."""
    return BlobUploader(
        api,
        refs,
        store,
        sources=sources,
        threads=max(1, min(options.download_threads, 4)),
        push_retry=options.push_retry,
        retry_backoff=options.retry_backoff,
        local=local,
    )


def push_image(
    api: RegistryAPI,
    manifest: Manifest,
    refs: Sequence[Reference],
    store: BlobStore,
    options: RegistryOptions,
    *,
    sources: Sequence[PulledImage] = (),
    local: LocalBlobs | None = None,
) -> str:
    """Push to every destination; returns the manifest digest.

    Each blob and each manifest gets ``1 + push_retry`` attempts with exponential
    backoff; permanent errors (denied, bad manifest) are not retried. A later
    destination on the same registry mounts blobs from an earlier one instead of
    uploading them again.
    """
    with new_uploader(api, refs, store, options, sources=sources, local=local) as uploader:
        return uploader.push(manifest)
