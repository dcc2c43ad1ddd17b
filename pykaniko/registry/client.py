"""The facade the executor uses: pull (through the base-image cache when there is
one), fetch layers, push (at once or pipelined), check push permission and download,
over one transport with shared sessions and token cache.

The HTTP stack (``requests``, ``urllib3``) is imported on the first network use, not
when this module is: ``--help``, ``--dry-run`` and a build served from caches never
pay for it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from pykaniko.image.blobstore import BlobStore
from pykaniko.image.manifest import Descriptor, Manifest
from pykaniko.image.platform import Platform
from pykaniko.image.reference import Reference
from pykaniko.registry import pull, push
from pykaniko.registry.auth import Credential, Keychain, RecordingKeychain
from pykaniko.registry.basecache import BaseImageCache, pull_through_cache
from pykaniko.registry.events import Notify, ProgressSink
from pykaniko.registry.mirrors import split_mirror
from pykaniko.registry.options import RegistryOptions
from pykaniko.registry.pull import LocalBlobs, PulledImage
from pykaniko.registry.uploader import BlobUploader

if TYPE_CHECKING:
    from pykaniko.registry.api import RegistryAPI
    from pykaniko.registry.http import DownloadResult
    from pykaniko.registry.transport import Transport

__all__ = ["RegistryClient"]

_PullKey = tuple[str, str, str]


class RegistryClient:
    """One client per build; thread-safe. Holds no global state.

    ``notify`` receives one-line notices (retries, mirror fallbacks) to log;
    ``progress`` receives per-blob transfer progress (pulls and pushes), throttled;
    ``base_cache`` (default: one made from ``options.base_cache_dir`` when set) is
    read by :meth:`pull` and :meth:`fetch_layers`.
    """

    def __init__(
        self,
        options: RegistryOptions,
        keychain: Keychain,
        *,
        user_agent: str = "pykaniko/0.1",
        notify: Notify | None = None,
        progress: ProgressSink | None = None,
        base_cache: BaseImageCache | None = None,
    ) -> None:
        self.options = options
        self._keychain = RecordingKeychain(keychain)
        self._user_agent = user_agent
        self._notify = notify
        self._progress = progress
        if base_cache is None and options.base_cache_dir is not None:
            base_cache = BaseImageCache(options.base_cache_dir, options.base_cache_ttl)
        self.base_cache = base_cache
        self._lock = threading.Lock()
        self._api: RegistryAPI | None = None
        self._prefetch_pool: ThreadPoolExecutor | None = None
        self._prefetched: dict[_PullKey, Future[PulledImage]] = {}

    # -- the HTTP stack, made on first use ------------------------------------------------

    @property
    def api(self) -> RegistryAPI:
        with self._lock:
            if self._api is None:
                from pykaniko.registry.api import RegistryAPI
                from pykaniko.registry.transport import Transport

                plain_mirrors = [
                    host
                    for spec in (
                        *self.options.mirrors,
                        *(v for vs in self.options.registry_maps.values() for v in vs),
                    )
                    for host, _prefix, plain in [split_mirror(spec)]
                    if plain
                ]
                transport = Transport(
                    self.options,
                    self._keychain,
                    user_agent=self._user_agent,
                    extra_insecure=plain_mirrors,
                    notify=self._notify,
                )
                self._api = RegistryAPI(transport, progress=self._progress)
            return self._api

    @property
    def transport(self) -> Transport:
        return self.api.transport

    # -- pulling -----------------------------------------------------------------------

    def pull(
        self,
        ref: Reference,
        platform: Platform,
        store: BlobStore,
        *,
        attempts: int | None = None,
    ) -> PulledImage:
        """Resolve ``ref`` (mirrors and maps applied) to a platform manifest; its
        config blob is fetched into ``store`` and verified. Layers are not fetched.
        A :meth:`prefetch` of the same image is waited for instead of asked again.
        ``attempts`` overrides ``1 + image_download_retry`` per request (a cache
        probe that may simply miss can ask for 1)."""
        with self._lock:
            started = self._prefetched.pop(_key(ref, platform, store), None)
        if started is not None:
            try:
                return started.result()
            except Exception:  # noqa: S110  asked again below, so the error is current
                pass
        return self._pull(ref, platform, store, attempts=attempts)

    def _pull(
        self, ref: Reference, platform: Platform, store: BlobStore, *, attempts: int | None = None
    ) -> PulledImage:
        if self.base_cache is not None:
            return pull_through_cache(
                self.api,
                self.base_cache,
                ref,
                platform,
                store,
                options=self.options,
                attempts=attempts,
            )
        return pull.pull_image(self.api, ref, platform, store, self.options, attempts=attempts)

    def prefetch(
        self, ref: Reference, platform: Platform, store: BlobStore, *, layers: bool = False
    ) -> Future[PulledImage]:
        """Start resolving ``ref`` (manifest and config; with ``layers``, the layer
        blobs too) in the background; a later :meth:`pull` of it takes the result.
        Lets a build resolve its bases while it parses and plans."""
        key = _key(ref, platform, store)
        with self._lock:
            known = self._prefetched.get(key)
            if known is not None:
                return known
            if self._prefetch_pool is None:
                self._prefetch_pool = ThreadPoolExecutor(4, thread_name_prefix="prefetch")
            future = self._prefetch_pool.submit(self._prefetch_one, ref, platform, store, layers)
            self._prefetched[key] = future
        return future

    def _prefetch_one(
        self, ref: Reference, platform: Platform, store: BlobStore, layers: bool
    ) -> PulledImage:
        pulled = self._pull(ref, platform, store)
        if layers:
            self.fetch_layers(pulled, pulled.manifest.layers, store)
        return pulled

    def resolve_all(
        self, wanted: Sequence[tuple[Reference, Platform]], store: BlobStore
    ) -> list[Future[PulledImage]]:
        """:meth:`prefetch` for several base images at once (same order)."""
        return [self.prefetch(ref, platform, store) for ref, platform in wanted]

    def fetch_layers(
        self, pulled: PulledImage, layers: Sequence[Descriptor], store: BlobStore
    ) -> list[Path]:
        """Paths of ``layers`` in ``store`` (same order), fetching those missing from
        the base-image cache or the registry (the next mirror when one keeps failing)."""
        return pull.fetch_layers(
            self.api, pulled, layers, store, self.options, local=self._local(store)
        )

    def _local(self, store: BlobStore) -> LocalBlobs | None:
        cache = self.base_cache
        if cache is None:
            return None
        return lambda digest: cache.copy_into(digest, store)

    # -- pushing -----------------------------------------------------------------------

    def push(
        self,
        manifest: Manifest,
        refs: Sequence[Reference],
        store: BlobStore,
        *,
        sources: Sequence[PulledImage] = (),
    ) -> str:
        """Push to every ref (blobs, then the manifest, then tags); the manifest digest."""
        return push.push_image(
            self.api,
            manifest,
            refs,
            store,
            self.options,
            sources=sources,
            local=self._local(store),
        )

    def uploader(
        self,
        refs: Sequence[Reference],
        store: BlobStore,
        *,
        sources: Sequence[PulledImage] = (),
    ) -> BlobUploader:
        """A pipelined push to the repositories of ``refs`` (destinations and the
        cache repository): ``submit(digest)`` each layer when it is written, then
        ``push(manifest)``; use it as a context manager so a failure cancels it."""
        return push.new_uploader(
            self.api, refs, store, self.options, sources=sources, local=self._local(store)
        )

    def used_credentials(self) -> list[tuple[str, Credential]]:
        """(registry, credential) for every credential this client has resolved: the
        passwords and tokens the secret-leak check searches the image for."""
        return self._keychain.resolved()

    def check_push_permission(self, refs: Sequence[Reference]) -> None:
        """Fail before the build when a destination refuses pushes."""
        if self.options.skip_push_permission_check:
            return
        seen: set[str] = set()
        for ref in refs:
            if ref.name not in seen:
                seen.add(ref.name)
                self.api.check_push(ref)

    def download(self, url: str, dest: Path, *, checksum: str | None = None) -> DownloadResult:
        """Fetch ``url`` to ``dest`` for ``ADD <url>`` (no registry auth is sent)."""
        from pykaniko.registry.http import download

        return download(self.transport, url, dest, checksum=checksum)

    def close(self) -> None:
        """Close pooled connections; the client must not be used afterwards."""
        with self._lock:
            pool, self._prefetch_pool = self._prefetch_pool, None
            api = self._api
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if api is not None:
            api.transport.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _key(ref: Reference, platform: Platform, store: BlobStore) -> _PullKey:
    return (str(ref), str(platform), str(store.root))
