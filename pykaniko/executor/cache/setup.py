"""From flags to a layer cache: ``--cache-repo`` (a registry repository or
``oci:/dir``), ``--cache-ttl``, ``--no-push-cache``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from pykaniko.errors import ConfigError, PykanikoError
from pykaniko.executor.cache.layer_cache import LayerCache
from pykaniko.executor.cache.layout_store import LayoutCacheStore
from pykaniko.executor.cache.store import CacheStore, RegistryCacheStore
from pykaniko.image.blobstore import BlobStore
from pykaniko.image.platform import Platform
from pykaniko.image.reference import Reference, parse_reference
from pykaniko.registry import RegistryClient

__all__ = ["cache_repository", "open_layer_cache", "parse_ttl"]

_TTL = re.compile(r"(\d+(?:\.\d+)?)(h|m|s)")


def parse_ttl(text: str) -> float:
    """``--cache-ttl`` in Go duration syntax (``336h``, ``90m``, ``1h30m``) -> seconds."""
    spec = text.strip()
    pos = 0
    total = 0.0
    for m in _TTL.finditer(spec):
        if m.start() != pos:
            break
        total += float(m.group(1)) * {"h": 3600, "m": 60, "s": 1}[m.group(2)]
        pos = m.end()
    if pos != len(spec) or not spec:
        raise ConfigError(f"--cache-ttl={text}: expected a duration such as 336h or 90m")
    return total


def cache_repository(
    cache_repo: str, destinations: Sequence[Reference], *, no_push: bool
) -> Reference | Path:
    """``--cache-repo``: a repository, ``oci:/dir``, or ``<first destination's
    repository>/cache`` as Kaniko does."""
    if cache_repo.startswith("oci:"):
        path = cache_repo.removeprefix("oci:")
        if not path:
            raise ConfigError("--cache-repo=oci:DIR: the directory is missing")
        return Path(path)
    if cache_repo:
        try:
            return parse_reference(cache_repo)
        except PykanikoError as exc:
            raise ConfigError(f"--cache-repo={cache_repo}: {exc.message}") from exc
    if no_push or not destinations:
        raise ConfigError("--cache with --no-push needs --cache-repo")
    first = destinations[0]
    return Reference(first.registry, f"{first.repository}/cache", None, None)


def open_layer_cache(
    *,
    cache_repo: str,
    destinations: Sequence[Reference],
    no_push: bool,
    registry: RegistryClient,
    platform: Platform,
    blobs: BlobStore,
    ttl: str,
    push: bool,
) -> LayerCache:
    where = cache_repository(cache_repo, destinations, no_push=no_push)
    store: CacheStore
    if isinstance(where, Path):
        store = LayoutCacheStore(where)
    else:
        store = RegistryCacheStore(registry, where, platform)
    return LayerCache(store, blobs, platform=platform, ttl_seconds=parse_ttl(ttl), push=push)
