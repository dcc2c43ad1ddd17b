"""One stage: resolve the base, walk the instructions, snapshot what changed into layers.

The stage's rootfs is extracted lazily, on the first step that needs a filesystem, so
a metadata-only stage never unpacks its base. Every filesystem step ends with a diff
against the snapshotter's baseline (which came from the extraction itself) and, when
something changed, a layer written once to the blob store with both digests.
"""

from __future__ import annotations

import hashlib
import logging
import lzma
import os
import posixpath
import shutil
import tarfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO, assert_never, cast
from urllib.parse import urlsplit

import zstandard

from pykaniko.dockerfile import (
    Add,
    Arg,
    Cmd,
    Copy,
    Dockerfile,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Heredoc,
    ImageBase,
    Instruction,
    Label,
    Maintainer,
    Mount,
    Onbuild,
    Run,
    Shell,
    StageBase,
    StageScope,
    StopSignal,
    User,
    Volume,
    Workdir,
    parse_instruction,
)
from pykaniko.errors import BuildError, ImageError, Location, PykanikoError, RunError
from pykaniko.executor.cache import LayerCache, seed_key, step_key
from pykaniko.executor.copy import (
    CopyRequest,
    SourceTree,
    copy_sources,
    escape_pattern,
    expand_sources,
    extract_archive,
    open_archive,
    source_path,
)
from pykaniko.executor.events import (
    CacheChecked,
    EventSink,
    LayerCreated,
    Notice,
    StepFinished,
    StepOutput,
    StepStarted,
)
from pykaniko.executor.fsutil import clean_abs, makedirs_in_root, resolve_in_root
from pykaniko.executor.metadata import (
    DEFAULT_PATH,
    DEFAULT_SHELL,
    MetadataInstruction,
    apply_metadata,
    created_by_metadata,
    run_created_by,
)
from pykaniko.executor.options import BuildOptions
from pykaniko.executor.sandbox import BindMount, RunSpec, Sandbox
from pykaniko.executor.users import Identity, resolve_chown, resolve_user
from pykaniko.executor.workspace import Workspace
from pykaniko.image import mediatypes as mt
from pykaniko.image.config import ContainerConfig, History, ImageConfig
from pykaniko.image.digest import HashingReader
from pykaniko.image.layerfile import LayerWriter, open_uncompressed
from pykaniko.image.manifest import Descriptor
from pykaniko.image.mediatypes import layer_compression
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
    "build_stage",
    "ensure_rootfs",
    "extract_verified",
]

log = logging.getLogger(__name__)

_HISTORY_COMMENT = "buildkit.dockerfile.v0"


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
    sandbox: Sandbox
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


def empty_config(options: BuildOptions) -> ImageConfig:
    p = options.platform
    return ImageConfig(architecture=p.architecture, os=p.os, variant=p.variant)


class _StageRun:
    def __init__(self, ctx: StageContext, index: int, out: StageOutput) -> None:
        self.ctx = ctx
        self.index = index
        self.out = out
        self.cmd_set = False
        self._last = False
        self.volumes: list[str] = list(out.config.config.volumes)

    # -- filesystem -------------------------------------------------------------------------

    def _ignore(self) -> IgnoreList:
        o = self.ctx.options
        return build_ignore_list(
            rootfs=self.fs_root,
            mountinfo=self.ctx.mountinfo,
            extra_paths=o.ignore_paths,
            volumes=self.volumes,
            ignore_var_run=o.ignore_var_run,
            work_dir=self.ctx.workspace.root,
        )

    @property
    def fs_root(self) -> Path:
        if self.out.rootfs is None:
            self.out.rootfs = self.ctx.workspace.rootfs(self.index)
        return self.out.rootfs

    def ensure_fs(self) -> Snapshotter:
        """Extract whatever base layers are still pending, once."""
        if self.out.snapshotter is None:
            self.out.snapshotter = Snapshotter(
                self.fs_root, mode=self.ctx.options.snapshot_mode, ignore=self._ignore()
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
                snap.extract, self.ctx.workspace.store.path(desc.digest), desc, diff_id, what
            )
            for warning in report.warnings[:20]:
                self.ctx.events(Notice("warning", f"{what}: {warning}"))
        if self.out.pending:
            snap.settle()
        self.out.pending = []
        return snap

    def add_layer(self, paths: Sequence[str] | None, created_by: str) -> None:
        """Snapshot (all or ``paths``), write a layer when something changed, record history."""
        started = time.monotonic()
        snap = self.ensure_fs()
        if self.ctx.options.single_snapshot and not self._last:
            self._history(created_by, empty=True)
            return
        if self.ctx.options.single_snapshot or paths is None:
            changes = snap.diff()  # a RUN: /dev, /proc, /var/run... are the sandbox's
        else:  # COPY, ADD, WORKDIR: their real paths, written where they were told to
            real = sorted({self._real_path(p) for p in paths})
            changes = snap.diff(real, ignore=_lift(snap.ignore, real))
        if changes.is_empty and not self.ctx.options.force_build_metadata:
            self._history(created_by, empty=True)
            return
        o = self.ctx.options.outputs
        store = self.ctx.workspace.store
        tmp = store.temp_path(".layer")
        writer = LayerWriter(tmp, compression=o.compression, level=o.compression_level)
        try:
            entries = write_layer(changes, self.fs_root, writer, mtime_clamp=self.ctx.mtime_clamp)
        except BaseException:
            writer.abort()
            raise
        if entries == 0 and not self.ctx.options.force_build_metadata:
            writer.abort()
            self._history(created_by, empty=True)
            return
        layer = writer.close()
        store.adopt(tmp, layer.digest)
        media = mt.layer_media_type(docker=self.out.docker, compression=o.compression)
        self.out.layers.append(Descriptor(media, layer.digest, layer.size))
        cfg = self.out.config
        self.out.config = replace(cfg, diff_ids=(*cfg.diff_ids, layer.diff_id))
        self._history(created_by, empty=False)
        self.ctx.events(
            LayerCreated(self.index, layer.digest, layer.size, entries, time.monotonic() - started)
        )

    def _real_path(self, path: str) -> str:
        """``path`` with its parent symlinks resolved inside the rootfs."""
        host = resolve_in_root(self.fs_root, path, follow_final=False)
        return "/" + host.relative_to(self.fs_root).as_posix() if host != self.fs_root else "/"

    def _history(self, created_by: str, *, empty: bool) -> None:
        entry = History(
            created=self.ctx.created,
            created_by=created_by,
            comment=_HISTORY_COMMENT,
            empty_layer=empty,
        )
        self.out.config = replace(self.out.config, history=(*self.out.config.history, entry))

    # -- steps ------------------------------------------------------------------------------

    def run_all(self, instructions: Sequence[Instruction], scope: StageScope) -> StageScope:
        total = len(instructions)
        for number, raw in enumerate(instructions, start=1):
            self._last = number == total
            instr = scope.expand(raw)
            self.ctx.events(StepStarted(self.index, number, total, instr.original))
            before = len(self.out.config.diff_ids)
            began = time.monotonic()
            self.step(instr, scope)
            self.ctx.events(StepFinished(self.index, number, time.monotonic() - began))
            if not isinstance(instr, Run):
                # what a COPY/ADD/WORKDIR produced is part of the chain: a changed source
                # file changes every key after it, even though COPY itself is not cached
                made = self.out.config.diff_ids[before:]
                self.out.key = step_key(
                    self.out.key, _step_text(instr), inputs=[("layer", d) for d in made]
                )
            scope = scope.after(instr)
        return scope

    def step(self, instr: Instruction, scope: StageScope) -> None:
        match instr:
            case Run():
                self.run(instr, scope)
            case Copy() | Add():
                self.copy(instr)
            case Workdir(path=path):
                cfg = self.out.config.config
                workdir = clean_abs(path, cfg.working_dir or "/")
                self.out.config = replace(self.out.config, config=replace(cfg, working_dir=workdir))
                self.ensure_fs()
                # owned as by --chown=$USER (BuildKit's mkdir WithUser), not as a RUN
                user = cfg.user
                try:
                    uid, gid = (
                        resolve_chown(self.fs_root, user, what=f"USER {user}") if user else (0, 0)
                    )
                except BuildError as exc:
                    raise BuildError(exc.message, location=instr.location) from exc
                touched = makedirs_in_root(self.fs_root, workdir, uid=uid, gid=gid)
                self.add_layer(touched, f"WORKDIR {workdir}")
            case Volume(paths=paths):
                self.out.config = apply_metadata(self.out.config, instr)
                for p in paths:
                    vol = clean_abs(p)
                    if vol not in self.volumes:
                        self.volumes.append(vol)
                single = self.ctx.options.single_snapshot  # one diff at the end sees all
                if not single and (self.out.snapshotter is not None or not self.out.pending):
                    snap = self.ensure_fs()
                    for p in paths:
                        makedirs_in_root(self.fs_root, clean_abs(p))
                    snap.diff([clean_abs(p) for p in paths])
                    snap.set_ignore(self._ignore())
                self._metadata_history(instr)
            case Cmd():
                self.cmd_set = True
                self.out.config = apply_metadata(self.out.config, instr)
                self._metadata_history(instr)
            case (
                Env()
                | Arg()
                | Label()
                | Expose()
                | User()
                | Entrypoint()
                | Shell()
                | StopSignal()
                | Healthcheck()
                | Onbuild()
                | Maintainer()
            ):
                self.out.config = apply_metadata(self.out.config, instr, cmd_set=self.cmd_set)
                self._metadata_history(instr)
            case From():
                raise BuildError("FROM inside a stage", location=instr.location)
            case _:
                assert_never(instr)

    def _metadata_history(self, instr: MetadataInstruction) -> None:
        forced = self.ctx.options.force_build_metadata
        if (self.ctx.options.single_snapshot and self._last) or forced:
            self.add_layer(None, created_by_metadata(instr, self.out.config.config))
        elif not isinstance(instr, Arg):  # BuildKit records no history for ARG
            self._history(created_by_metadata(instr, self.out.config.config), empty=True)

    def _identity(self) -> Identity:
        user = self.out.config.config.user
        if not user:
            return Identity(uid=0, gid=0, groups=(0,), home="/root")
        return resolve_user(self.fs_root, user)

    def run(self, instr: Run, scope: StageScope) -> None:
        self.ensure_fs()
        cfg = self.out.config.config
        try:
            ident = self._identity()
        except BuildError as exc:
            raise BuildError(exc.message, location=instr.location) from exc
        env = scope.run_env(cfg.env)
        if not any(e.startswith("HOME=") for e in env):
            env.append(f"HOME={ident.home if ident.uid else '/root'}")
        if not any(e.startswith("PATH=") for e in env):
            env.append(f"PATH={DEFAULT_PATH}")
        declared = {k: v for k, v in scope.declared_args.items() if v is not None}
        key = step_key(
            self.out.key,
            _step_text(instr),
            env=[*env, f"pykaniko-user={cfg.user}", f"pykaniko-workdir={cfg.working_dir}"],
        )
        self.out.key = key
        cache = self.ctx.cache if self.ctx.options.cache_run_layers else None
        if cache is not None and self._apply_cached(cache, key, instr, declared):
            return
        before = len(self.out.config.diff_ids)
        self._execute(instr, cfg, ident, env)
        shown_argv = self._argv_shown(instr, cfg)
        created_by = run_created_by(shown_argv, declared)
        self.add_layer(None, created_by)
        if cache is not None and len(self.out.config.diff_ids) > before:
            try:
                cache.put(
                    key,
                    self.out.layers[-1],
                    self.out.config.diff_ids[-1],
                    created_by,
                    sources=self.out.sources,
                )
            except PykanikoError as exc:
                self.ctx.events(Notice("warning", f"cache push for {key[:12]} failed: {exc}"))

    def _argv_shown(self, instr: Run, cfg: ContainerConfig) -> list[str]:
        """The command as history records it (heredoc bodies are not repeated)."""
        if not instr.shell:
            return list(instr.args)
        if instr.script is not None:
            return [instr.original[4:]]
        if instr.heredocs:
            return [*(cfg.shell or DEFAULT_SHELL), instr.original[4:]]
        return [*(cfg.shell or DEFAULT_SHELL), instr.command_text]

    def _apply_cached(
        self, cache: LayerCache, key: str, instr: Run, declared: Mapping[str, str]
    ) -> bool:
        """Use the cached layer for ``key``: extracted onto the rootfs (the baseline
        follows) and its blob reused as is."""
        try:
            hit = cache.get(key)
        except PykanikoError as exc:
            self.ctx.events(Notice("warning", f"cache lookup for {key[:12]} failed: {exc}"))
            return False
        if hit is None:
            self.ctx.events(CacheChecked(self.index, key, hit=False))
            return False
        store = self.ctx.workspace.store
        self.ctx.registry.fetch_layers(hit.image, [hit.layer], store)
        snap = self.ensure_fs()
        what = f"cached layer {hit.layer.digest[:19]}"
        extract_verified(snap.extract, store.path(hit.layer.digest), hit.layer, hit.diff_id, what)
        layer = hit.layer
        if self.out.docker != (layer.media_type == mt.DOCKER_LAYER_GZIP):
            flavour = "gzip" if "gzip" in layer.media_type else layer_compression(layer.media_type)
            layer = replace(
                layer, media_type=mt.layer_media_type(docker=self.out.docker, compression=flavour)
            )
        self.out.layers.append(layer)
        self.out.sources.append(hit.image)
        cfg = self.out.config
        self.out.config = replace(cfg, diff_ids=(*cfg.diff_ids, hit.diff_id))
        shown_argv = self._argv_shown(instr, self.out.config.config)
        self._history(run_created_by(shown_argv, declared), empty=False)
        self.ctx.events(CacheChecked(self.index, key, hit=True, digest=hit.layer.digest))
        return True

    def _execute(self, instr: Run, cfg: ContainerConfig, ident: Identity, env: list[str]) -> None:
        workdir = cfg.working_dir or "/"
        makedirs_in_root(self.fs_root, workdir)
        holder = self.ctx.workspace.scratch("run")
        os.chmod(holder, 0o700)
        try:
            mounts = self._mounts(instr.mounts, holder, env)
            scripts: tuple[tuple[str, str], ...] = ()
            if not instr.shell:
                argv = list(instr.args)
            elif instr.script is not None:
                # a shebang heredoc is a file run directly, mounted at /dev/pipes (BuildKit)
                script = holder / "script"
                script.write_text(instr.script.content)
                script.chmod(0o755)
                name = instr.script.name.replace("/", "_") or "EOF"
                scripts = ((str(script), name),)
                argv = [f"/dev/pipes/{name}"]
            else:
                argv = [*(cfg.shell or DEFAULT_SHELL), instr.command_text]
            if not argv:
                raise BuildError("RUN with an empty command", location=instr.location)
            spec = RunSpec(
                rootfs=str(self.fs_root),
                argv=tuple(argv),
                env=tuple(env),
                scratch=str(holder),
                cwd=workdir,
                uid=ident.uid,
                gid=ident.gid,
                groups=ident.groups,
                mounts=tuple(mounts),
                scripts=scripts,
                network=instr.network or "default",
            )
            status = self.ctx.sandbox.run(
                spec,
                output=lambda line: self.ctx.events(
                    StepOutput(self.index, line.decode(errors="replace").rstrip("\n"))
                ),
            )
        finally:
            self.ctx.workspace.remove(holder)
        if status != 0:
            shown = instr.original if len(instr.original) < 200 else instr.original[:197] + "..."
            raise RunError(
                f"{shown}: the command returned a non-zero code: {status}",
                status=status,
                location=instr.location,
            )

    def _mounts(self, mounts: Sequence[Mount], holder: Path, env: list[str]) -> list[BindMount]:
        out: list[BindMount] = []
        for m in mounts:
            match m.type:
                case "tmpfs":
                    out.append(BindMount(source="tmpfs", target=m.target, kind="tmpfs"))
                case "secret":
                    mount = self._secret(m, holder, env)
                    if mount is not None:
                        out.append(mount)
                case "cache":
                    key = hashlib.sha256((m.id or m.target).encode()).hexdigest()[:32]
                    cache = self.ctx.options.work_dir / "caches" / key
                    if not cache.exists():
                        cache.mkdir(parents=True)
                        os.chown(cache, m.uid or 0, m.gid or 0)
                        os.chmod(cache, m.mode if m.mode is not None else 0o755)
                    out.append(BindMount(source=str(cache), target=m.target))
                case "bind":
                    out.append(self._bind(m, holder))
                case _:
                    raise BuildError(f"RUN --mount=type={m.type} is not supported")
        return out

    def _secret(self, m: Mount, holder: Path, env: list[str]) -> BindMount | None:
        """A secret is a file in the RUN's private scratch directory, mounted read-only
        (or an env value); it is never in the rootfs, a layer, the history or a log."""
        source = next((s for s in self.ctx.options.secrets if s.id == m.id), None)
        if source is None:
            if m.required:
                raise BuildError(
                    f"secret {m.id!r} is required but was not given",
                    hint=f"pass --secret id={m.id},src=FILE",
                )
            return None
        try:
            if source.env is not None:
                value = self.ctx.environ[source.env].encode()
            else:
                assert source.path is not None
                value = Path(source.path).read_bytes()
        except (KeyError, OSError) as exc:
            raise BuildError(f"secret {m.id!r} cannot be read") from exc
        if m.env:
            env.append(f"{m.env}={value.decode(errors='replace')}")
        if not m.target:
            return None
        path = holder / f"secret-{len(list(holder.iterdir()))}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(value)
        os.chown(path, m.uid or 0, m.gid or 0)
        os.chmod(path, m.mode if m.mode is not None else 0o400)
        return BindMount(source=str(path), target=m.target, readonly=True)

    def _bind(self, m: Mount, holder: Path) -> BindMount:
        """A bind mount; a ``rw`` one gets a copy, so writes are thrown away (BuildKit)."""
        if m.from_:
            ref = self.ctx.resolve_from(self.index, m.from_)
            root = (
                self.ctx.stage_output(ref.index).rootfs
                if isinstance(ref, StageBase)
                else self.ctx.image_rootfs(ref.reference, (m.source or "/",))
            )
            assert root is not None
            source = resolve_in_root(root, m.source or "/")
        else:
            ctx = self.ctx.options.context.resolve()
            source = (ctx / (m.source or ".").lstrip("/")).resolve()
            if source != ctx and ctx not in source.parents:
                raise BuildError(f"--mount source {m.source!r} is outside the build context")
        if not source.exists():
            raise BuildError(f"--mount source {m.source!r} does not exist")
        if not m.readonly:
            copy = holder / f"bind-{len(list(holder.iterdir()))}"
            if source.is_dir():
                shutil.copytree(source, copy, symlinks=True)
            else:
                shutil.copy2(source, copy)
            source = copy
        return BindMount(source=str(source), target=m.target, readonly=m.readonly)

    def copy(self, instr: Copy | Add) -> None:
        self.ensure_fs()
        root = self.fs_root
        try:
            uid, gid = resolve_chown(root, instr.chown) if instr.chown else (0, 0)
        except BuildError as exc:
            raise BuildError(exc.message, location=instr.location) from exc
        chmod = _parse_chmod(instr.chmod, instr)
        cfg = self.out.config.config
        workdir = cfg.working_dir or "/"
        what = "COPY" if isinstance(instr, Copy) else "ADD"
        req = CopyRequest(
            sources=(),
            dest=instr.dest,
            workdir=workdir,
            uid=uid,
            gid=gid,
            chown=instr.chown is not None,
            chmod=chmod,
            what=what,
            exclude=instr.exclude,
            parents=isinstance(instr, Copy) and instr.parents,
        )
        total = len(instr.sources) + len(instr.heredocs)
        if total > 1 and not instr.dest.endswith("/"):
            req = replace(req, dest=instr.dest + "/")
            if not resolve_in_root(root, clean_abs(instr.dest, workdir)).is_dir():
                raise BuildError(
                    f"{what} with more than one source: the destination must be a "
                    "directory and end with a /",
                    location=instr.location,
                )
        try:
            touched = self._copy_sources(instr, req)
            for doc in instr.heredocs:
                touched += self._heredoc_file(doc, req, total)
        except BuildError as exc:
            if exc.location is None:
                raise BuildError(exc.message, hint=exc.hint, location=instr.location) from exc
            raise
        except (OSError, EOFError, tarfile.TarError, lzma.LZMAError, zstandard.ZstdError) as exc:
            raise BuildError(f"{what} failed: {exc}", location=instr.location) from exc
        self.add_layer(touched, f"{instr.original} # buildkit")

    def _copy_sources(self, instr: Copy | Add, req: CopyRequest) -> list[str]:
        root = self.fs_root
        if not instr.sources:
            return []  # heredocs only
        if isinstance(instr, Copy) and instr.from_:
            target = self.ctx.resolve_from(self.index, instr.from_)
            if isinstance(target, StageBase):
                out = self.ctx.stage_output(target.index)
                if out.rootfs is None:
                    raise BuildError(f"stage {instr.from_!r} has no filesystem to copy from")
                tree = SourceTree(root=out.rootfs, is_rootfs=True)
                return copy_sources(root, tree, replace(req, sources=instr.sources))
            partial = SourceTree(
                root=self.ctx.image_rootfs(target.reference, instr.sources), is_rootfs=True
            )
            try:
                return copy_sources(root, partial, replace(req, sources=instr.sources))
            except BuildError:
                # a source reached through a symlink to a file outside the extracted
                # part: take the whole image and copy again (the copy is idempotent)
                whole = SourceTree(
                    root=self.ctx.image_rootfs(target.reference, ("/",)), is_rootfs=True
                )
                return copy_sources(root, whole, replace(req, sources=instr.sources))
        tree = SourceTree(
            root=self.ctx.options.context,
            ignored=self.ctx.context_ignored,
            descend_ignored=self.ctx.context_has_exceptions,
        )
        if isinstance(instr, Copy):
            return copy_sources(root, tree, replace(req, sources=instr.sources))
        touched: list[str] = []
        plain: list[str] = []
        for src in instr.sources:
            if src.startswith(("http://", "https://")):
                touched += self._add_url(src, instr, req)
            elif src.startswith(("git@", "git://")) or src.endswith(".git"):
                raise BuildError("ADD of git repositories is not supported yet")
            elif instr.unpack is False:
                plain.append(src)
            else:
                for rel in expand_sources(tree, src):
                    archive = open_archive(source_path(tree, rel))
                    if archive is None:
                        plain.append(escape_pattern(rel))
                        continue
                    with archive as stream:
                        dest = clean_abs(req.dest, req.workdir)
                        touched += extract_archive(stream, root, dest)
        if plain or not (touched or instr.heredocs):
            touched += copy_sources(root, tree, replace(req, sources=tuple(plain)))
        return touched

    def _heredoc_file(self, doc: Heredoc, req: CopyRequest, total: int) -> list[str]:
        """``COPY <<EOF dest``: a file named after the delimiter inside a directory
        destination, else the destination itself; never written through a symlink."""
        dest = clean_abs(req.dest, req.workdir)
        into_dir = (
            req.dest.endswith("/") or total > 1 or resolve_in_root(self.fs_root, dest).is_dir()
        )
        target = clean_abs(doc.name, dest) if into_dir else dest
        parent = target.rsplit("/", 1)[0] or "/"
        touched = makedirs_in_root(self.fs_root, parent, uid=req.uid, gid=req.gid)
        host = resolve_in_root(self.fs_root, target, follow_final=False)
        if host.is_symlink() or (host.exists() and not host.is_dir()):
            host.unlink()
        elif host.is_dir():
            raise BuildError(f"cannot write {target}: it is a directory")
        fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(doc.content)
            os.fchown(f.fileno(), req.uid, req.gid)
            os.fchmod(f.fileno(), req.chmod if req.chmod is not None else 0o644)
        return [*touched, target]

    def _add_url(self, url: str, instr: Add, req: CopyRequest) -> list[str]:
        """``ADD <url>``: downloaded (checksum verified), mode 0600 unless ``--chmod``,
        mtime from Last-Modified, named after the URL's last path segment."""
        holder = self.ctx.workspace.scratch("download")
        try:
            name = posixpath.basename(urlsplit(url).path) or "__unnamed__"
            path = holder / name
            result = self.ctx.registry.download(url, path, checksum=instr.checksum)
            path.chmod(req.chmod if req.chmod is not None else 0o600)
            if result.last_modified is not None:
                os.utime(path, (result.last_modified, result.last_modified))
            tree = SourceTree(root=holder)
            fetched = replace(req, sources=(escape_pattern(name),), chmod=None, exclude=())
            return copy_sources(self.fs_root, tree, fetched)
        finally:
            self.ctx.workspace.remove(holder)


_NOWHERE = Location("", 0, 0)


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


def _step_text(instr: Instruction) -> str:
    """An instruction as its cache key sees it: every expanded field, no line number."""
    return repr(replace(instr, location=_NOWHERE))


def _parse_chmod(value: str | None, instr: Instruction) -> int | None:
    if value is None:
        return None
    try:
        mode = int(value, 8)
    except ValueError:
        raise BuildError(
            f"--chmod={value}: expected an octal mode such as 0755", location=instr.location
        ) from None
    if not 0 <= mode <= 0o7777:
        raise BuildError(f"--chmod={value}: mode out of range", location=instr.location)
    return mode


def build_stage(
    ctx: StageContext,
    index: int,
    *,
    base: StageOutput | None,
    pulled: PulledImage | None,
    take_over: bool,
    instructions: Sequence[Instruction],
    scope: StageScope,
) -> StageOutput:
    """Build stage ``index`` on top of ``base`` (a finished stage), ``pulled`` (an image)
    or nothing (scratch)."""
    o = ctx.options
    if base is not None:
        out = StageOutput(
            index=index,
            name=None,
            config=base.config,
            layers=list(base.layers),
            docker=base.docker,
            sources=list(base.sources),
            scope=None,
        )
        if take_over and base.rootfs is not None and not base.pending:
            out.rootfs, out.snapshotter = base.rootfs, base.snapshotter
            base.rootfs, base.snapshotter = None, None
        else:
            out.pending = [(d, _source_for(d, base)) for d in base.layers]
    elif pulled is not None:
        out = StageOutput(
            index=index,
            name=None,
            config=pulled.config,
            layers=list(pulled.manifest.layers),
            docker=pulled.manifest.is_docker,
            sources=[pulled],
            scope=None,
            pending=[(d, pulled) for d in pulled.manifest.layers],
        )
    else:  # scratch: BuildKit's empty image carries the default PATH
        out = StageOutput(
            index=index,
            name=None,
            config=replace(
                empty_config(o),
                config=ContainerConfig(env=(f"PATH={DEFAULT_PATH}",)),
            ),
            layers=[],
            docker=True,
            sources=[],
            scope=None,
        )
    if base is not None:
        out.key = base.key
    else:
        out.key = seed_key(pulled.digest if pulled is not None else "scratch", o.platform)
    if o.outputs.compression == "zstd" and out.docker:
        out.docker = False
        out.layers = [_to_oci(d) for d in out.layers]
    cfg = out.config
    if o.labels:
        cfg = replace(cfg, config=replace(cfg.config, labels={**cfg.config.labels, **o.labels}))
    triggers = cfg.config.on_build
    cfg = replace(cfg, config=replace(cfg.config, on_build=()))
    p = o.platform
    out.config = replace(cfg, architecture=p.architecture, os=p.os, variant=p.variant)
    runner = _StageRun(ctx, index, out)
    steps = list(instructions)
    if triggers:
        loc = Location(f"ONBUILD trigger of the base of stage {index}", 1, 1)
        trig = [parse_instruction(t, loc, escape=ctx.dockerfile.escape) for t in triggers]
        steps = trig + steps
    out.scope = runner.run_all(steps, scope)
    return out


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


def ensure_rootfs(ctx: StageContext, out: StageOutput) -> None:
    """Extract a finished stage's pending layers (a later stage reads its files)."""
    _StageRun(ctx, out.index, out).ensure_fs()


def _source_for(desc: Descriptor, base: StageOutput) -> PulledImage | None:
    for src in base.sources:
        if any(d.digest == desc.digest for d in src.manifest.layers):
            return src
    return None


def _to_oci(desc: Descriptor) -> Descriptor:
    if desc.media_type in (mt.DOCKER_LAYER_GZIP,):
        return replace(desc, media_type=mt.OCI_LAYER_GZIP)
    return desc
