"""The layer cache as the build sees it: probes in parallel, verified hits, and pushes in
the background, over any :class:`~pykaniko.executor.cache.store.CacheStore`.

* **Probes** start for every cacheable key as soon as the keys are known (they no
  longer depend on results, so all of them are known before the first step runs) and
  run on a bounded pool; a step waits only for its own probe.
* **A hit is only known good once its blob is verified**: a probe fetches the layer
  into the build's blob store, its digest checked as it streams, before it reports a
  hit, so a missing, truncated or corrupt blob is a miss and never reaches a rootfs or
  the image. (Its diff_id, which only a faulty writer could get wrong, is checked when
  the layer is unpacked, as every layer's is; checking it here too would cost a second
  full decompression of every hit, most of which are never unpacked.) A dry run probes
  without fetching: it predicts, it does not use.
* **A bad entry is a miss, never a failed build**: a missing, truncated or corrupt
  blob, a manifest that is not an entry, a registry that answers 500 or is down: one
  warning naming the entry, and the step runs (its new entry then replaces the bad one).
* **Pushes** of new entries run in the background while the build goes on, as Kaniko
  does; :meth:`LayerCache.finish` waits for them before the build returns, and a failed
  push is a warning.

Warnings are returned to the caller's thread (probes) or by ``finish`` (pushes): this
module never calls the build's event callback from a worker thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from pykaniko.errors import PykanikoError
from pykaniko.executor.cache.store import CacheEntry, CacheStore, cache_image
from pykaniko.image.blobstore import BlobStore
from pykaniko.image.manifest import Descriptor
from pykaniko.image.platform import Platform

__all__ = ["LayerCache", "Probe"]

# What reading or writing a damaged or unreachable entry raises: our errors, file
# errors (an oci: store), malformed JSON.
_DAMAGE = (PykanikoError, OSError, ValueError)


@dataclass(frozen=True, slots=True)
class Probe:
    """A probe's answer: the entry (None: a miss) and a warning for the user."""

    entry: CacheEntry | None
    warning: str | None = None


def _expired(created: str, ttl_seconds: float) -> bool:
    try:
        when = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return True
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (datetime.now(UTC) - when).total_seconds() > ttl_seconds


class LayerCache:
    """One build's view of one cache store. Thread-safe; call :meth:`finish` once."""

    def __init__(
        self,
        store: CacheStore,
        blobs: BlobStore,
        *,
        platform: Platform,
        ttl_seconds: float,
        push: bool = True,
        workers: int = 8,
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.platform = platform
        self.ttl_seconds = ttl_seconds
        self.push = push
        self._probes: dict[str, Future[Probe]] = {}
        self._puts: list[tuple[str, Future[None]]] = []
        self._stale: set[str] = set()  # damaged or expired: a push replaces them
        self._lock = threading.Lock()
        self._probe_pool = ThreadPoolExecutor(workers, thread_name_prefix="cache-probe")
        self._put_pool = ThreadPoolExecutor(2, thread_name_prefix="cache-push")

    def describe(self, key: str) -> str:
        return self.store.describe(key)

    def probe(self, keys: Iterable[str], *, fetch: bool = True) -> None:
        """Start looking ``keys`` up (each once), without waiting."""
        with self._lock:
            for key in keys:
                if key not in self._probes:
                    self._probes[key] = self._probe_pool.submit(self._probe, key, fetch)

    def get(self, key: str) -> Probe:
        """The verified answer for ``key`` (starting its probe if needed)."""
        self.probe([key])
        with self._lock:
            future = self._probes[key]
        return future.result()

    def _probe(self, key: str, fetch: bool) -> Probe:
        try:
            entry = self.store.lookup(key, self.blobs)
            if entry is None:
                return Probe(None)
            if _expired(entry.created, self.ttl_seconds):
                with self._lock:
                    self._stale.add(key)  # the next push replaces it
                return Probe(None)
            if fetch:
                self.store.fetch(entry, self.blobs)
            return Probe(entry)
        except _DAMAGE as exc:
            with self._lock:
                self._stale.add(key)
            reason = (
                exc.message if isinstance(exc, PykanikoError) else str(exc) or type(exc).__name__
            )
            return Probe(
                None,
                f"cache entry {self.describe(key)} is unusable ({reason}); the step runs instead",
            )

    def put(
        self,
        key: str,
        layers: Sequence[Descriptor],
        diff_ids: Sequence[str],
        created_by: str,
        *,
        docker: bool,
    ) -> None:
        """Store the entry for ``key`` in the background (layers are in the blob store
        already and stay there until :meth:`finish` returns)."""
        if not self.push:
            return
        with self._lock:
            replace = key in self._stale

        def work() -> None:
            manifest = cache_image(
                self.blobs, self.platform, layers, diff_ids, created_by, docker=docker
            )
            self.store.put(key, manifest, self.blobs, replace=replace)

        self._puts.append((key, self._put_pool.submit(work)))

    def finish(self) -> list[str]:
        """Wait for every push (probes still running are dropped); one warning for all
        that failed (a cache that is down fails them all, for one reason)."""
        self._probe_pool.shutdown(wait=True, cancel_futures=True)
        failed: list[tuple[str, str]] = []
        for key, future in self._puts:
            try:
                future.result()
            except _DAMAGE as exc:
                failed.append((key, exc.message if isinstance(exc, PykanikoError) else str(exc)))
        self._put_pool.shutdown(wait=True)
        if not failed:
            return []
        key, reason = failed[0]
        more = f" and {len(failed) - 1} more" if len(failed) > 1 else ""
        return [f"cache push of {self.describe(key)}{more} failed: {reason}"]
