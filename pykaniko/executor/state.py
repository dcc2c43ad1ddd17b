"""A stage's state while it is built: its image parts, its rootfs (made lazily), the
snapshotter, and its cache keys.

The rootfs is made lazily: the base's layers and every cached layer wait in
``StageOutput.pending`` until a step truly needs the filesystem (a RUN or COPY that
misses the cache), so a stage whose steps all hit, or are metadata only, never unpacks
anything: its image is made of the layers' blobs alone, and a COPY that is the last
step to need files unpacks only its destination (:meth:`StageState.scoped_fs`). Every
filesystem step that runs ends with :meth:`StageState.add_layer`: a diff against the
snapshotter's baseline (which came from the extraction itself) and, when something
changed, a layer written once to the blob store with both digests.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import BinaryIO, cast

from pykaniko.dockerfile import (
    Add,
    Copy,
    Dockerfile,
    ImageBase,
    Instruction,
    Run,
    StageBase,
    StageScope,
    Workdir,
)
from pykaniko.errors import BuildError, ImageError, StorageError
from pykaniko.executor.cache import CacheEntry, LayerCache, StageKeys
from pykaniko.executor.events import CacheChecked, EventSink, LayerCreated, Notice
from pykaniko.executor.fsutil import resolve_in_root
from pykaniko.executor.isolation import Isolation
from pykaniko.executor.leakcheck import LeakGuard, Origin, ScanningSink
from pykaniko.executor.options import BuildOptions
from pykaniko.executor.oserrors import PathMap, from_os_error, os_cause
from pykaniko.executor.prefixes import literal_prefixes, real_prefixes
from pykaniko.executor.prepare import PreparedStep
from pykaniko.executor.workspace import Workspace
from pykaniko.image import mediatypes as mt
from pykaniko.image.config import History, ImageConfig
from pykaniko.image.digest import HashingReader
from pykaniko.image.layerfile import LayerWriter, open_uncompressed
from pykaniko.image.leakscan import scanning_reader
from pykaniko.image.manifest import Descriptor
from pykaniko.image.mediatypes import layer_compression
from pykaniko.registry import DownloadResult, PulledImage, RegistryClient
from pykaniko.snapshot import (
    ExtractReport,
    IgnoreList,
    Snapshotter,
    build_ignore_list,
    extract_layer,
    write_layer,
)

__all__ = [
    "PendingLayer",
    "StageContext",
    "StageOutput",
    "StageState",
    "empty_config",
    "extract_verified",
]

log = logging.getLogger(__name__)

_HISTORY_COMMENT = "buildkit.dockerfile.v0"


@dataclass(frozen=True, slots=True)
class PendingLayer:
    """A layer of the stage not yet applied to its rootfs, and where its blob is (a
    pulled image, or None: in the blob store already)."""

    desc: Descriptor
    diff_id: str
    source: PulledImage | None


@dataclass
class StageOutput:
    """A stage: its image parts, the layers its rootfs still lacks, and, while someone
    still needs it, its rootfs."""

    index: int
    name: str | None
    config: ImageConfig
    layers: list[Descriptor]
    docker: bool
    sources: list[PulledImage]
    scope: StageScope | None
    rootfs: Path | None = None
    snapshotter: Snapshotter | None = None
    pending: list[PendingLayer] = field(default_factory=list)
    key: str | None = None


@dataclass(frozen=True)
class StageContext:
    """What a stage needs from the build around it (collaborators are injected)."""

    options: BuildOptions
    dockerfile: Dockerfile
    workspace: Workspace
    registry: RegistryClient
    isolation: Isolation
    events: EventSink
    created: str
    mtime_clamp: int | None
    mountinfo: str
    context_ignored: Callable[[str], bool] | None
    context_has_exceptions: bool
    environ: Mapping[str, str]
    resolve_from: Callable[[int, str], StageBase | ImageBase]
    stage_output: Callable[[int], StageOutput]
    image_rootfs: Callable[[str, Sequence[str]], Path]
    stage_rootfs: Callable[[int, Sequence[str]], Path]
    download: Callable[[str, str | None], tuple[Path, DownloadResult]]
    cache: LayerCache | None = None
    leaks: LeakGuard | None = None


def empty_config(options: BuildOptions) -> ImageConfig:
    p = options.platform
    return ImageConfig(architecture=p.architecture, os=p.os, variant=p.variant)


class StageState:
    """One stage being built: the steps read and change it through these methods."""

    def __init__(
        self, ctx: StageContext, index: int, out: StageOutput, keys: StageKeys | None = None
    ) -> None:
        self.ctx = ctx
        self.index = index
        self.out = out
        self.keys = keys
        self.number = 0  # the step being run
        self.later: Sequence[PreparedStep] = ()  # the steps after it
        self.needed_later = True  # a later stage builds on this one or reads its files
        self._held: list[PendingLayer] | None = None  # what a scoped rootfs lacks
        self.cmd_set = False
        self.last = False
        self.step: Instruction | None = None  # the instruction being carried out
        self.volumes: list[str] = list(out.config.config.volumes)

    def ignore_list(self) -> IgnoreList:
        o = self.ctx.options
        return build_ignore_list(
            rootfs=self.fs_root,
            mountinfo=self.ctx.mountinfo,
            extra_paths=(*o.ignore_paths, *self.ctx.isolation.ignore_paths()),
            volumes=self.volumes,
            ignore_var_run=o.ignore_var_run,
            work_dir=self.ctx.workspace.root,
        )

    @property
    def fs_root(self) -> Path:
        if self.out.rootfs is None:
            self.out.rootfs = self.ctx.isolation.acquire(self.out, self.ctx.workspace)
        return self.out.rootfs

    def extract_into(self, snap: Snapshotter) -> Callable[..., ExtractReport]:
        """``snap.extract`` with what the isolation says extraction must leave alone."""
        return partial(snap.extract, ignore=self.ctx.isolation.extraction_ignore(snap.ignore))

    def ensure_fs(self) -> Snapshotter:
        """The rootfs, with every pending layer applied (each blob verified first)."""
        out = self.out
        if out.snapshotter is None:
            fresh = out.rootfs is None  # acquired empty: the extraction is the baseline
            out.snapshotter = Snapshotter(
                self.fs_root, mode=self.ctx.options.snapshot_mode, ignore=self.ignore_list()
            )
            if not out.pending or not fresh:  # a tree taken over as it is
                out.snapshotter.take_baseline()
        snap = out.snapshotter
        if out.pending:
            self._apply(out.pending, self.extract_into(snap))
            snap.settle()
            own = self.ctx.isolation.host_dirs()
            if own:
                snap.diff(own)  # into the baseline as they are: they are not the image's
            out.pending = []
        return snap

    def _apply(self, layers: Sequence[PendingLayer], apply: Callable[..., ExtractReport]) -> None:
        """Fetch what is missing of ``layers``, then unpack them in order, verified."""
        store = self.ctx.workspace.store
        by_source: dict[int, tuple[PulledImage | None, list[Descriptor]]] = {}
        for p in layers:
            by_source.setdefault(id(p.source), (p.source, []))[1].append(p.desc)
        for source, descs in by_source.values():
            if source is not None:
                self.ctx.registry.fetch_layers(source, descs, store)
        for p in layers:
            what = f"{p.source.ref if p.source else 'base'} layer {p.desc.digest[:19]}"
            report = extract_verified(apply, store.path(p.desc.digest), p.desc, p.diff_id, what)
            for warning in report.warnings[:20]:
                self.ctx.events(Notice("warning", f"{what}: {warning}"))

    def scoped_fs(self, paths: Sequence[str]) -> bool:
        """For a COPY/ADD writing below ``paths``: a rootfs holding only what it reads
        (every directory and symlink, the files below ``paths``, ``/etc/passwd`` and
        ``/etc/group`` for ``--chown``). Used when nothing is unpacked yet, no later step
        of the stage needs files (each hits the cache or is metadata) and no later stage
        reads this one, so the full unpack may never be needed: on a Debian-sized base it
        costs half the CPU of a full one (on busybox, mostly symlinks, which are always
        unpacked, about the same). The step writes and snapshots as usual (its diff
        against what was unpacked sees only what it changed); :meth:`unscope` then drops
        the partial tree, and every layer waits again, the step's own with them.
        False: use :meth:`ensure_fs`."""
        o, out = self.ctx.options, self.out
        if out.snapshotter is not None or not out.pending or self.needed_later:
            return False  # a later stage would unpack the same layers again
        if o.single_snapshot or o.force_build_metadata:
            return False
        wanted = tuple(sorted({*paths, "/etc/passwd", "/etc/group"}))
        if "/" in wanted or any(self._runs(step) for step in self.later):
            return False
        log.debug("stage %d step %d: unpacking only %s", self.index, self.number, wanted)
        root = self.fs_root
        keep = self.ctx.isolation.extraction_ignore(self.ignore_list())

        def apply(stream: BinaryIO, *, what: str) -> ExtractReport:
            # prefixes resolved once per layer, through the symlinks of the layers below
            # (a file missed through a link made in the same layer is merely invisible
            # to the step's diff, before and after alike: its layer stays right)
            select = literal_prefixes(real_prefixes(root, wanted))
            return extract_layer(stream, root, ignore=keep, what=what, select=select).report

        self._apply(out.pending, apply)
        out.snapshotter = Snapshotter(root, mode=o.snapshot_mode, ignore=self.ignore_list())
        out.snapshotter.take_baseline()
        self._held, out.pending = out.pending, []
        return True

    def unscope(self, before: int) -> None:
        """Drop a scoped rootfs (see :meth:`scoped_fs`); ``before`` is the layer count
        before the step."""
        out = self.out
        if self._held is None:
            return
        made = zip(out.layers[before:], out.config.diff_ids[before:], strict=True)
        out.pending = [*self._held, *(PendingLayer(d, diff_id, None) for d, diff_id in made)]
        self._held = None
        self.ctx.isolation.release(out, self.ctx.workspace)

    def _runs(self, step: PreparedStep) -> bool:
        """Whether a later step will need a filesystem: a RUN, WORKDIR, COPY or ADD that
        the cache does not answer (then one full unpack serves both: two partial ones
        of a small base cost more); metadata needs none."""
        if not isinstance(step.instr, Run | Workdir | Copy | Add):
            return False
        cache = self.ctx.cache
        key = self.keys.steps.get(step.number) if self.keys is not None else None
        if cache is None or key is None or not key.cached:
            return True
        return cache.get(key.key).entry is None

    # -- the layer cache -------------------------------------------------------------

    def cached(self) -> CacheEntry | None:
        """The verified cache entry of the step being run, if the cache holds one."""
        cache = self.ctx.cache
        step = self.keys.steps.get(self.number) if self.keys is not None else None
        if cache is None or step is None or not step.cached:
            return None
        probe = cache.get(step.key)
        if probe.warning:
            self.ctx.events(Notice("warning", probe.warning))
        entry = probe.entry
        digest = entry.layers[0].digest if entry is not None and entry.layers else ""
        self.ctx.events(CacheChecked(self.index, step.key, hit=entry is not None, digest=digest))
        return entry

    def use_cached(self, entry: CacheEntry, created_by: str) -> None:
        """Take a cache entry as the step's result: its blob goes into the image as is,
        and onto the rootfs only if a later step needs the filesystem."""
        out = self.out
        for desc, diff_id in zip(entry.layers, entry.diff_ids, strict=True):
            layer = _retyped(desc, docker=out.docker)
            out.layers.append(layer)
            out.pending.append(PendingLayer(layer, diff_id, entry.source))
            out.config = replace(out.config, diff_ids=(*out.config.diff_ids, diff_id))
        if entry.source is not None and entry.layers:
            out.sources.append(entry.source)  # the final push mounts the blob from there
        self.history(created_by, empty=not entry.layers)
        self._scan_cached(entry)

    def _scan_cached(self, entry: CacheEntry) -> None:
        """The secret check over a cached layer the image will carry: the build that
        made it may have run with ``--secret-check=warn`` or ``off``. (Layers of other
        stages never leave the machine; the blob was fetched when the probe checked it.)"""
        leaks = self.ctx.leaks
        if leaks is None or self.index not in leaks.shipped_stages:
            return
        for desc in entry.layers:
            scanner = leaks.scanner()
            if scanner is None:
                return
            path = self.ctx.workspace.store.path(desc.digest)
            with open_uncompressed(path, digest=desc.digest, what="cached layer") as raw:
                reader = scanning_reader(raw, scanner)
                while reader.read(1 << 20):
                    pass
            leaks.layer_done(desc.digest, scanner.close(), self.origin())

    def remember(self, before: int, created_by: str) -> None:
        """Give the cache what the step just run made: its layer, or none (then a warm
        build skips the step all the same). ``before`` is the layer count before it."""
        cache = self.ctx.cache
        step = self.keys.steps.get(self.number) if self.keys is not None else None
        if cache is None or step is None or not step.cached:
            return
        layers = self.out.layers[before:]
        leaks = self.ctx.leaks
        if leaks is not None and cache.push:  # a cache image leaves the machine too
            going = "the cache image"
            leaks.clear_for_push([d.digest for d in layers], going)
            fields = {"created_by": created_by}
            leaks.check_fields(fields, going, origin=self.origin(), going=going)
        cache.put(
            step.key, layers, self.out.config.diff_ids[before:], created_by, docker=self.out.docker
        )

    def add_layer(self, paths: Sequence[str] | None, created_by: str) -> None:
        """Snapshot (all or ``paths``), write a layer when something changed, record history."""
        started = time.monotonic()
        snap = self.ensure_fs()
        if self.ctx.options.single_snapshot and not self.last:
            self.history(created_by, empty=True)
            return
        if self.ctx.options.single_snapshot or paths is None:
            changes = snap.diff()  # a RUN: /dev, /proc, /var/run... are the sandbox's
        else:  # COPY, ADD, WORKDIR: their real paths, written where they were told to
            real = sorted({self.real_path(p) for p in paths})
            changes = snap.diff(real, ignore=_lift(snap.ignore, real))
        if changes.is_empty and not self.ctx.options.force_build_metadata:
            self.history(created_by, empty=True)
            return
        o = self.ctx.options.outputs
        store = self.ctx.workspace.store
        tmp = store.temp_path(".layer")
        writer = LayerWriter(tmp, compression=o.compression, level=o.compression_level)
        leaks = self.ctx.leaks
        scanner = leaks.scanner() if leaks is not None else None
        sink = writer if scanner is None else ScanningSink(writer, scanner)
        try:
            entries = write_layer(changes, self.fs_root, sink, mtime_clamp=self.ctx.mtime_clamp)
            layer = writer.close() if entries or self.ctx.options.force_build_metadata else None
        except (OSError, StorageError) as raised:
            _discard(writer)
            exc = os_cause(raised)
            if exc is None:
                raise
            shown = raised.path if isinstance(raised, StorageError) else ""
            needed = raised.needed if isinstance(raised, StorageError) else None
            raise from_os_error(
                exc, "writing the layer", self.path_map(), path=shown or None, needed=needed
            ) from raised
        except BaseException:
            _discard(writer)
            raise
        if layer is None:
            writer.abort()
            self.history(created_by, empty=True)
            return
        if leaks is not None and scanner is not None:
            try:  # before the blob store: a refused layer never gets a digest name
                leaks.layer_done(layer.digest, scanner.close(), self.origin())
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        store.adopt(tmp, layer.digest)
        media = mt.layer_media_type(docker=self.out.docker, compression=o.compression)
        self.out.layers.append(Descriptor(media, layer.digest, layer.size))
        cfg = self.out.config
        self.out.config = replace(cfg, diff_ids=(*cfg.diff_ids, layer.diff_id))
        self.history(created_by, empty=False)
        self.ctx.events(
            LayerCreated(self.index, layer.digest, layer.size, entries, time.monotonic() - started)
        )

    def check_destination(self, path: str, what: str) -> None:
        """Refuse to write below the build context or the kaniko dir through the rootfs.

        Only possible when those lie inside the rootfs, i.e. when the rootfs is the
        builder's own ``/`` (in-place): ``COPY . /workspace/`` with the context mounted
        at ``/workspace`` would copy files onto themselves in the user's checkout.
        """
        root = self.fs_root
        host = resolve_in_root(root, path)
        for own in (self.ctx.options.context, self.ctx.options.work_dir):
            mine = Path(os.path.realpath(own))
            if root not in mine.parents:
                continue
            if host == mine or mine in host.parents:
                raise BuildError(
                    f"{what} destination {path} lies in {mine}, which is the builder's own "
                    "(the build context or the kaniko dir), not the image's",
                    hint="copy to another directory of the image",
                )

    def path_map(self) -> PathMap:
        """How error messages show this stage's host paths (as image paths)."""
        ctx = self.ctx
        return PathMap(
            rootfs=[self.out.rootfs] if self.out.rootfs is not None else [],
            context=ctx.options.context,
            work_dir=ctx.workspace.root,
            kaniko_dir=ctx.options.work_dir,
        )

    def origin(self) -> Origin:
        """The step being carried out, as a leak report names it."""
        step = self.step
        if self.ctx.options.single_snapshot:  # one layer for the whole stage
            return Origin(self.index, None, f"the --single-snapshot layer of stage {self.index}")
        if step is None:
            return Origin(self.index)
        return Origin(self.index, step.location, step.original)

    def real_path(self, path: str) -> str:
        """``path`` with its parent symlinks resolved inside the rootfs."""
        host = resolve_in_root(self.fs_root, path, follow_final=False)
        return "/" + host.relative_to(self.fs_root).as_posix() if host != self.fs_root else "/"

    def history(self, created_by: str, *, empty: bool) -> None:
        entry = History(
            created=self.ctx.created,
            created_by=created_by,
            comment=_HISTORY_COMMENT,
            empty_layer=empty,
        )
        self.out.config = replace(self.out.config, history=(*self.out.config.history, entry))


def _discard(writer: LayerWriter) -> None:
    """Drop a half-written layer; on a full disk its compressor's last flush fails too,
    which must not hide the error that got us here."""
    with contextlib.suppress(OSError):
        writer.abort()


def _lift(ignore: IgnoreList, paths: Sequence[str]) -> IgnoreList:
    """The ignore list for a COPY/ADD snapshot: an entry is lifted when the step wrote
    at or below it (``COPY null /dev/``), and kept for everything else (a RUN's
    leftovers in ``/var/run`` stay out even when ``COPY . /`` scans the whole root)."""

    def written(entry: str) -> bool:
        return any(p == entry or p.startswith(entry.rstrip("/") + "/") for p in paths)

    return IgnoreList.of(
        exact=[e for e in ignore.exact if not written(e)],
        prefix=[e for e in ignore.prefix if not written(e)],
    )


def _retyped(layer: Descriptor, *, docker: bool) -> Descriptor:
    """A cached layer under the media type family of the image it joins."""
    if docker == (layer.media_type == mt.DOCKER_LAYER_GZIP):
        return layer
    flavour = "gzip" if "gzip" in layer.media_type else layer_compression(layer.media_type)
    return replace(layer, media_type=mt.layer_media_type(docker=docker, compression=flavour))


def extract_verified(
    apply: Callable[..., ExtractReport],
    path: Path,
    desc: Descriptor,
    diff_id: str,
    what: str,
) -> ExtractReport:
    """Apply one layer blob, checking its digest (compressed bytes) and its diff_id
    (uncompressed bytes, as the image config lists it) while it streams."""
    with open_uncompressed(path, digest=desc.digest, what=what) as raw:
        hashed = HashingReader(raw)
        report = apply(cast(BinaryIO, hashed), what=what)
        hashed.drain()
    if hashed.digest != diff_id:
        raise ImageError(
            f"{what}: uncompressed content has digest {hashed.digest[:19]}, "
            f"but the image config says {diff_id[:19]}",
            hint="the base image is corrupt or was built wrongly",
        )
    return report
