"""Pipelined pushes: blobs upload in the background as they become ready, to every
destination repository at once, while the build goes on; manifests go last.

A stage calls :meth:`BlobUploader.submit` with each finished layer's digest; the final
:meth:`BlobUploader.push` submits what is left (the config, base layers), waits for
the manifest's blobs in each repository and only then PUTs the manifest and its tags.
The first repository on a registry to need a blob uploads it; the others mount it from
there once that upload is done (one POST instead of a second upload). A blob a pulled
base image holds on the same registry is mounted from its repository straight away.

If anything failed, or :meth:`BlobUploader.cancel` was called, no manifest is pushed:
a tag never points at an image with missing blobs, and the error surfaces from
``push``/``wait``. A bounded thread pool does the work; uploads being sent when the
uploader is cancelled stop at their next read.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pykaniko.errors import ImageError, RegistryError
from pykaniko.image.blobstore import BlobStore
from pykaniko.image.manifest import Manifest
from pykaniko.image.reference import Reference
from pykaniko.registry.pull import LocalBlobs, PulledImage

if TYPE_CHECKING:
    from pykaniko.registry.api import RegistryAPI

__all__ = ["BlobUploader", "PushCancelled"]


class PushCancelled(RegistryError):
    """The push was cancelled before it finished; nothing was tagged."""

    default_code = "registry-push-cancelled"


@dataclass(frozen=True, slots=True)
class _Repo:
    registry: str
    repository: str

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}"


def _repo(ref: Reference) -> _Repo:
    return _Repo(ref.registry, ref.repository)


class BlobUploader:
    """Background uploads of store blobs to the repositories of ``refs``.

    ``sources`` are the pulled images the blobs may come from (mounted, or fetched
    into the store when they must be uploaded; ``local`` is asked first for those).
    ``push_retry`` extra attempts per blob and per manifest, backing off from
    ``retry_backoff`` seconds. Thread-safe; use it as a context manager, which
    cancels on an exception and always releases the threads.
    """

    def __init__(
        self,
        api: RegistryAPI,
        refs: Sequence[Reference],
        store: BlobStore,
        *,
        sources: Sequence[PulledImage] = (),
        threads: int = 4,
        push_retry: int = 0,
        retry_backoff: float = 1.0,
        local: LocalBlobs | None = None,
    ) -> None:
        if not refs:
            raise ImageError("no destination to push to")
        self.api = api
        self.refs = tuple(refs)
        self.store = store
        self.sources = list(sources)
        self.push_retry = push_retry
        self.retry_backoff = retry_backoff
        self._local = local
        self._repos = tuple(dict.fromkeys(_repo(r) for r in refs))
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="push")
        self._manifest_pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._tasks: dict[tuple[_Repo, str], Future[None]] = {}
        self._leads: dict[tuple[str, str], tuple[_Repo, Future[None]]] = {}
        self._manifests: list[Future[str]] = []
        self._abort = threading.Event()
        self._first_error: BaseException | None = None

    # -- submitting ------------------------------------------------------------------

    @property
    def repositories(self) -> tuple[str, ...]:
        return tuple(str(r) for r in self._repos)

    def add_sources(self, sources: Sequence[PulledImage]) -> None:
        """More images blobs may be mounted or fetched from (a stage's base)."""
        with self._lock:
            self.sources.extend(s for s in sources if s not in self.sources)

    def submit(self, digest: str, *, to: Sequence[Reference] | None = None) -> None:
        """Start putting blob ``digest`` into every repository (or those of ``to``).
        Returns at once; a blob already submitted to a repository is not sent twice."""
        for repo in self._targets(to):
            self._schedule(repo, digest)

    def failed(self) -> BaseException | None:
        """The first error of any upload so far (None while all is well)."""
        with self._lock:
            return self._first_error

    def _targets(self, refs: Sequence[Reference] | None) -> tuple[_Repo, ...]:
        if refs is None:
            return self._repos
        return tuple(dict.fromkeys(_repo(r) for r in refs))

    def _schedule(self, repo: _Repo, digest: str) -> Future[None]:
        with self._lock:
            known = self._tasks.get((repo, digest))
            if known is not None:
                return known
            future: Future[None] = Future()
            self._tasks[(repo, digest)] = future
            lead = self._leads.get((repo.registry, digest))
            if lead is None:
                self._leads[(repo.registry, digest)] = (repo, future)
        if self._abort.is_set():
            future.set_exception(PushCancelled("the push was cancelled"))
            return future
        if lead is None:
            self._start(future, repo, digest, None)
        else:
            lead_repo, lead_future = lead

            def after_lead(done: Future[None]) -> None:
                ok = not done.cancelled() and done.exception() is None
                self._start(future, repo, digest, lead_repo if ok else None)

            lead_future.add_done_callback(after_lead)
        return future

    def _start(self, future: Future[None], repo: _Repo, digest: str, mount: _Repo | None) -> None:
        try:
            self._pool.submit(self._run, future, repo, digest, mount)
        except RuntimeError:  # the pool is shut down: cancelled or closed
            if not future.done():
                future.set_exception(PushCancelled("the push was cancelled"))

    def _run(self, future: Future[None], repo: _Repo, digest: str, mount: _Repo | None) -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            self._with_retries(
                lambda: self._ensure(repo, digest, mount), f"push blob {digest[:19]} to {repo}"
            )
        except BaseException as exc:
            with self._lock:
                if self._first_error is None and not isinstance(exc, PushCancelled):
                    self._first_error = exc
            future.set_exception(exc)
        else:
            future.set_result(None)

    def _with_retries(self, action: Callable[[], object], what: str) -> None:
        for attempt in range(1 + self.push_retry):
            if self._abort.is_set():
                raise PushCancelled(f"{what}: the push was cancelled")
            try:
                action()
            except RegistryError as exc:
                if isinstance(exc, PushCancelled) or self._abort.is_set():
                    raise PushCancelled(f"{what}: the push was cancelled") from exc
                if not exc.temporary or attempt >= self.push_retry:
                    raise
                self.api.transport.notify(f"{exc.message}; retrying")
                self._abort.wait(self.retry_backoff * (2**attempt))
            else:
                return

    def _ensure(self, repo: _Repo, digest: str, mount: _Repo | None) -> None:
        """Make ``digest`` present in ``repo``: mount it from a base image's or an
        earlier upload's repository, else HEAD, else upload it."""
        with self._lock:
            holders = [s for s in self.sources if s.holds(digest)]
        mountable = [
            *(s.source.repository for s in holders if s.source.registry == repo.registry),
            *([mount.repository] if mount is not None else []),
        ]
        for source_repository in dict.fromkeys(mountable):
            if source_repository == repo.repository:
                continue
            try:
                if self.api.mount_blob(repo.registry, repo.repository, digest, source_repository):
                    return
            except RegistryError:
                pass  # no pull access to the source: fall back to uploading
        if self.api.blob_exists(repo.registry, repo.repository, digest, mode="push"):
            return
        if not self.store.has(digest):
            self._bring(digest, holders)
        self.api.upload_blob(repo.registry, repo.repository, digest, self.store, abort=self._abort)

    def _bring(self, digest: str, holders: Sequence[PulledImage]) -> None:
        """A base layer that has to be uploaded but was never fetched: get it."""
        if self._local is not None and self._local(digest) is not None:
            return
        if not holders:
            raise ImageError(
                f"blob {digest} is neither in the local store nor in a pulled base image"
            )
        src = holders[0]
        size = next(
            (d.size for d in (*src.manifest.layers, src.manifest.config) if d.digest == digest),
            None,
        )
        self.api.fetch_blob(
            src.source.registry, src.source.repository, digest, self.store, size=size
        )

    # -- manifests -------------------------------------------------------------------

    def push(self, manifest: Manifest, refs: Sequence[Reference] | None = None) -> str:
        """Blobs of ``manifest`` into the repositories of ``refs`` (default: all),
        then the manifest under each tag (or by digest when a repository has no tag).
        Raises, pushing no manifest, when a blob failed or the push was cancelled."""
        targets = list(refs if refs is not None else self.refs)
        for ref in targets:
            if ref.digest and ref.digest != manifest.digest and not ref.tag:
                raise ImageError(
                    f"destination {ref} names a digest other than the image's {manifest.digest}"
                )
        groups: dict[_Repo, list[Reference]] = {}
        for ref in targets:
            groups.setdefault(_repo(ref), []).append(ref)
        blobs = list(dict.fromkeys(d.digest for d in (*manifest.layers, manifest.config)))
        futures = [self._schedule(repo, d) for repo in groups for d in blobs]
        for future in futures:
            exc = _error_of(future)
            if exc is not None:
                raise exc
        if self._abort.is_set():
            raise PushCancelled("the push was cancelled; no manifest was pushed")
        for group in groups.values():
            tags = [r.with_tag(r.tag) for r in group if r.tag]
            for target in tags or [group[0].with_digest(manifest.digest)]:
                self._with_retries(
                    functools.partial(
                        self.api.put_manifest, target, manifest.raw, manifest.media_type
                    ),
                    f"push manifest {target}",
                )
        return manifest.digest

    def push_async(
        self, manifest: Manifest, refs: Sequence[Reference] | None = None
    ) -> Future[str]:
        """:meth:`push` in the background (e.g. a cache image while the build goes on);
        :meth:`wait` waits for it too."""
        with self._lock:
            if self._manifest_pool is None:
                self._manifest_pool = ThreadPoolExecutor(1, thread_name_prefix="push-manifest")
            future = self._manifest_pool.submit(self.push, manifest, refs)
            self._manifests.append(future)
        return future

    # -- waiting and stopping --------------------------------------------------------

    def wait(self) -> None:
        """Wait for every submitted blob and background manifest; raise the first error."""
        with self._lock:
            pending: list[Future[None] | Future[str]] = [*self._tasks.values(), *self._manifests]
        first: BaseException | None = None
        for future in pending:
            exc = _error_of(future)
            if exc is not None and first is None:
                first = exc
        if first is not None:
            raise first

    def cancel(self) -> None:
        """Stop: pending uploads never start, running ones stop at their next read,
        no further manifest is pushed. Returns without waiting (``close`` waits)."""
        self._abort.set()
        with self._lock:
            tasks = list(self._tasks.values())
        for future in tasks:
            future.cancel()

    def close(self) -> None:
        """Release the threads, waiting for what is running."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            manifests = self._manifest_pool
        if manifests is not None:
            manifests.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            tasks = list(self._tasks.values())
        for future in tasks:  # leads cancelled before a follower was chained
            if not future.done():
                future.set_exception(PushCancelled("the push was cancelled"))

    def __enter__(self) -> BlobUploader:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc is not None:
            self.cancel()
        self.close()


def _error_of(future: Future[None] | Future[str]) -> BaseException | None:
    """The future's exception once it is done; a cancelled one is a cancelled push."""
    if future.cancelled():
        return PushCancelled("the push was cancelled")
    try:
        return future.exception()
    except CancelledError:  # cancelled while we waited
        return PushCancelled("the push was cancelled")
