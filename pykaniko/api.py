"""The embeddable library: ``build(options, on_event=..., cancel=...) -> BuildResult``.

Wires the default collaborators (registry client with the Docker config keychain, the
isolation ``options.isolation`` asks for) and leaves every one of them replaceable by
keyword. Around the
executor it adds what needs no executor change: the closing summary (collected from
the event stream), phase times for registry work, and cancellation from another thread.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from pykaniko.errors import BuildCancelledError, PykanikoError
from pykaniko.executor import (
    BuildOptions,
    BuildResult,
    Event,
    EventSink,
    Isolation,
    Notice,
)
from pykaniko.executor import build as _run_build
from pykaniko.executor.cache import cache_repository
from pykaniko.executor.events import BlobProgress, BuildFinished, ImagePushed, PhaseTimed
from pykaniko.executor.isolation import RunSpec
from pykaniko.executor.options import absolute_paths
from pykaniko.executor.state import StageOutput
from pykaniko.executor.summary import SummaryCollector
from pykaniko.executor.workspace import Workspace
from pykaniko.image.blobstore import BlobStore
from pykaniko.image.manifest import Descriptor, Manifest
from pykaniko.image.platform import Platform
from pykaniko.image.reference import Reference, parse_reference
from pykaniko.registry import Keychain, PulledImage, RegistryClient, default_keychain
from pykaniko.registry.options import RegistryOptions
from pykaniko.snapshot import IgnoreList

__all__ = ["Cancellation", "build"]


class Cancellation(Protocol):
    """Anything with ``is_set()``: a :class:`threading.Event` is the usual token."""

    def is_set(self) -> bool: ...


def _ignore(event: Event) -> None:
    del event


def build(
    options: BuildOptions,
    *,
    on_event: EventSink | None = None,
    registry: RegistryClient | None = None,
    isolation: Isolation | None = None,
    env: Mapping[str, str] | None = None,
    cancel: Cancellation | None = None,
) -> BuildResult:
    """Build (and push, unless ``options.outputs.no_push``) the image ``options`` describe.

    ``env`` is where credentials are looked up (``DOCKER_CONFIG``, GitLab CI variables);
    it defaults to the process environment, read here and nowhere else. Setting
    ``cancel`` (from any thread) stops the build at the next check: a running RUN is
    killed, the work directory is removed and :class:`BuildCancelledError` is raised.
    The result's ``summary`` is made from the same events ``on_event`` receives.
    ``isolation`` replaces the one ``options.isolation`` would choose.
    """
    environ = dict(os.environ if env is None else env)
    options = absolute_paths(options)  # an in-place build works from /
    user_sink = on_event or _ignore
    collector = SummaryCollector()
    guard = _Guard(cancel)

    def events(event: Event) -> None:
        collector(event)
        user_sink(event)
        if not isinstance(event, ImagePushed | BuildFinished):
            guard.check()

    guard.check()
    client = registry or _TimedRegistry(
        options.registry,
        default_keychain(environ),
        notify=lambda message: events(Notice("warning", message)),
        events=events,
        guard=guard,
        cache_repo=_cache_repo(options),
    )
    wrap = None if cancel is None else (lambda inner: _CancellableIsolation(inner, guard))
    watcher = guard.watch()
    try:
        result = _run_build(
            options,
            registry=client,
            isolation=isolation,
            wrap_isolation=wrap,
            events=events,
            env=environ,
        )
    finally:
        watcher.stop()
        if registry is None:
            client.close()
    if result.manifest is None:  # a dry run
        return result
    destinations = () if options.outputs.no_push else options.outputs.destinations
    summary = collector.summary(
        digest=result.digest, manifest=result.manifest, destinations=destinations
    )
    return replace(result, summary=summary)


def _cache_repo(options: BuildOptions) -> str | None:
    """The cache repository's name, to tell cache traffic from base pulls and pushes."""
    if not options.cache:
        return None
    try:
        refs = [parse_reference(d) for d in options.outputs.destinations]
        return cache_repository(options.cache_repo, refs, no_push=options.outputs.no_push).name
    except PykanikoError:
        return None  # the executor reports the same problem in its own words


class _Guard:
    """Cancellation checks: raise on the build's own thread, kill the RUN it waits for."""

    def __init__(self, cancel: Cancellation | None) -> None:
        self.cancel = cancel
        self.thread = threading.get_ident()
        self.native = threading.get_native_id()
        self._lock = threading.Lock()
        self._run_before: set[int] | None = None

    @property
    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def check(self) -> None:
        """Raise when cancelled, but only on the build thread: RUN output arrives on a
        reader thread that must keep draining the pipe."""
        if self.cancelled and threading.get_ident() == self.thread:
            raise BuildCancelledError("the build was cancelled")

    def watch(self) -> _Watcher:
        return _Watcher(self)

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Around one RUN: remember which children existed so only new ones are killed."""
        with self._lock:
            self._run_before = _children(self.native)
        try:
            yield
        finally:
            with self._lock:
                self._run_before = None

    def kill_run(self) -> None:
        """Kill the process groups a RUN started (the sandbox helper leads its group)."""
        with self._lock:
            if self._run_before is None:
                return
            for pid in _children(self.native) - self._run_before:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    if os.getpgid(pid) == pid:
                        os.killpg(pid, signal.SIGKILL)


class _Watcher:
    """Polls the token off the build thread, so a silent RUN can still be stopped."""

    def __init__(self, guard: _Guard) -> None:
        self._guard = guard
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        if guard.cancel is not None:
            self._thread = threading.Thread(target=self._loop, name="cancel-watch", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._done.wait(0.05):
            if self._guard.cancelled:
                self._guard.kill_run()
                return

    def stop(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()


def _children(tid: int) -> set[int]:
    """Live child processes started by thread ``tid`` of this process (Linux)."""
    try:
        text = Path(f"/proc/self/task/{tid}/children").read_text()
    except OSError:
        return set()
    return {int(pid) for pid in text.split()}


class _CancellableIsolation:
    """An isolation whose RUN the guard can kill (the chroot helper and the in-place
    command both lead a process group); a killed RUN reports the cancellation."""

    def __init__(self, inner: Isolation, guard: _Guard) -> None:
        self.inner = inner
        self.guard = guard

    @property
    def name(self) -> str:
        return self.inner.name

    def begin(self) -> None:
        self.inner.begin()

    def ignore_paths(self) -> tuple[str, ...]:
        return self.inner.ignore_paths()

    def extraction_ignore(self, ignore: IgnoreList) -> IgnoreList:
        return self.inner.extraction_ignore(ignore)

    def host_dirs(self) -> tuple[str, ...]:
        return self.inner.host_dirs()

    def acquire(self, out: StageOutput, workspace: Workspace) -> Path:
        return self.inner.acquire(out, workspace)

    def take_over(self, base: StageOutput, out: StageOutput, workspace: Workspace) -> bool:
        return self.inner.take_over(base, out, workspace)

    def release(self, out: StageOutput, workspace: Workspace) -> None:
        self.inner.release(out, workspace)

    def run(self, spec: RunSpec, *, output: Callable[[bytes], None] | None = None) -> int:
        self.guard.check()
        with self.guard.running():
            status = self.inner.run(spec, output=output)
        self.guard.check()
        return status


class _TimedRegistry(RegistryClient):
    """The default client, reporting how long registry work takes as phase events.

    Base-image manifests and configs are ``resolve``, layer blobs ``pull``, the final
    push ``push``; traffic to the layer cache's repository is ``cache``.
    """

    def __init__(
        self,
        options: RegistryOptions,
        keychain: Keychain,
        *,
        notify: Callable[[str], None],
        events: EventSink,
        guard: _Guard,
        cache_repo: str | None,
    ) -> None:
        super().__init__(
            options,
            keychain,
            notify=notify,
            progress=lambda p: events(
                BlobProgress(
                    direction=p.direction,
                    digest=p.digest,
                    done=p.done,
                    total=p.total,
                    finished=p.finished,
                    repository=p.repository,
                    ok=p.ok,
                )
            ),
        )
        self._events = events
        self._guard = guard
        self._cache_repo = cache_repo

    @contextlib.contextmanager
    def _timed(self, phase: str, detail: str) -> Iterator[None]:
        self._guard.check()
        started = time.monotonic()
        yield
        self._events(PhaseTimed(phase, time.monotonic() - started, detail=detail))

    def pull(
        self,
        ref: Reference,
        platform: Platform,
        store: BlobStore,
        *,
        attempts: int | None = None,
    ) -> PulledImage:
        phase = "cache" if ref.name == self._cache_repo else "resolve"
        with self._timed(phase, str(ref)):
            return super().pull(ref, platform, store, attempts=attempts)

    def fetch_layers(
        self, pulled: PulledImage, layers: Sequence[Descriptor], store: BlobStore
    ) -> list[Path]:
        if all(store.has(d.digest) for d in layers):
            return super().fetch_layers(pulled, layers, store)
        with self._timed("pull", str(pulled.ref)):
            return super().fetch_layers(pulled, layers, store)

    def push(
        self,
        manifest: Manifest,
        refs: Sequence[Reference],
        store: BlobStore,
        *,
        sources: Sequence[PulledImage] = (),
    ) -> str:
        to_cache = bool(refs) and all(r.name == self._cache_repo for r in refs)
        with self._timed("cache" if to_cache else "push", ", ".join(str(r) for r in refs)):
            return super().push(manifest, refs, store, sources=sources)
