"""A stage's state while it is built: its image parts, its rootfs (made lazily), the
snapshotter, and the cache chain key.

The rootfs is extracted on the first step that needs a filesystem, so a metadata-only
stage never unpacks its base. Every filesystem step ends with :meth:`StageState.add_layer`:
a diff against the snapshotter's baseline (which came from the extraction itself) and,
when something changed, a layer written once to the blob store with both digests.
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

from pykaniko.dockerfile import Dockerfile, ImageBase, Instruction, StageBase, StageScope
from pykaniko.errors import BuildError, ImageError, Location, StorageError
from pykaniko.executor.cache import LayerCache
from pykaniko.executor.events import EventSink, LayerCreated, Notice
from pykaniko.executor.fsutil import resolve_in_root
from pykaniko.executor.isolation import Isolation
from pykaniko.executor.leakcheck import LeakGuard, Origin, ScanningSink
from pykaniko.executor.options import BuildOptions
from pykaniko.executor.oserrors import PathMap, from_os_error, os_cause
from pykaniko.executor.workspace import Workspace
from pykaniko.image import mediatypes as mt
from pykaniko.image.config import History, ImageConfig
from pykaniko.image.digest import HashingReader
from pykaniko.image.layerfile import LayerWriter, open_uncompressed
from pykaniko.image.manifest import Descriptor
from pykaniko.registry import PulledImage, RegistryClient
from pykaniko.snapshot import (
    ExtractReport,
    IgnoreList,
    Snapshotter,
    build_ignore_list,
    write_layer,
)

__all__ = [
    "StageContext",
    "StageOutput",
    "StageState",
    "empty_config",
    "extract_verified",
    "step_text",
]

log = logging.getLogger(__name__)

_HISTORY_COMMENT = "buildkit.dockerfile.v0"
_NOWHERE = Location("", 0, 0)


@dataclass
class StageOutput:
    """A finished stage: its image parts and, while someone still needs it, its rootfs."""

    index: int
    name: str | None
    config: ImageConfig
    layers: list[Descriptor]
    docker: bool
    sources: list[PulledImage]
    scope: StageScope | None
    rootfs: Path | None = None
    snapshotter: Snapshotter | None = None
    pending: list[tuple[Descriptor, PulledImage | None]] = field(default_factory=list)
    key: str = ""


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
    cache: LayerCache | None = None
    leaks: LeakGuard | None = None


def empty_config(options: BuildOptions) -> ImageConfig:
    p = options.platform
    return ImageConfig(architecture=p.architecture, os=p.os, variant=p.variant)


class StageState:
    """One stage being built: the steps read and change it through these methods."""

    def __init__(self, ctx: StageContext, index: int, out: StageOutput) -> None:
        self.ctx = ctx
        self.index = index
        self.out = out
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
        """Extract whatever base layers are still pending, once."""
        if self.out.snapshotter is None:
            self.out.snapshotter = Snapshotter(
                self.fs_root, mode=self.ctx.options.snapshot_mode, ignore=self.ignore_list()
            )
            if not self.out.pending:
                self.out.snapshotter.take_baseline()
        snap = self.out.snapshotter
        by_source: dict[int, tuple[PulledImage | None, list[Descriptor]]] = {}
        for desc, source in self.out.pending:
            by_source.setdefault(id(source), (source, []))[1].append(desc)
        for source, descs in by_source.values():
            if source is not None:
                self.ctx.registry.fetch_layers(source, descs, self.ctx.workspace.store)
        diff_ids = self.out.config.diff_ids
        if len(diff_ids) < len(self.out.pending):
            raise ImageError(
                f"the base image config lists {len(diff_ids)} diff_ids "
                f"for {len(self.out.pending)} layers"
            )
        for (desc, source), diff_id in zip(self.out.pending, diff_ids, strict=False):
            what = f"{source.ref if source else 'base'} layer {desc.digest[:19]}"
            report = extract_verified(
                self.extract_into(snap),
                self.ctx.workspace.store.path(desc.digest),
                desc,
                diff_id,
                what,
            )
            for warning in report.warnings[:20]:
                self.ctx.events(Notice("warning", f"{what}: {warning}"))
        if self.out.pending:
            snap.settle()
            own = self.ctx.isolation.host_dirs()
            if own:
                snap.diff(own)  # into the baseline as they are: they are not the image's
        self.out.pending = []
        return snap

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


def step_text(instr: Instruction) -> str:
    """An instruction as its cache key sees it: every expanded field, no line number."""
    return repr(replace(instr, location=_NOWHERE))


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
