"""One stage: resolve the base, walk the instructions, hand each to its step.

RUN is :mod:`run_step`, COPY/ADD :mod:`copy_step`; WORKDIR, VOLUME and the metadata
instructions are short enough to live here. The stage's state (rootfs, layers, history,
cache chain) is :class:`pykaniko.executor.state.StageState`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import assert_never

from pykaniko.dockerfile import (
    Add,
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Instruction,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    StageScope,
    StopSignal,
    User,
    Volume,
    Workdir,
)
from pykaniko.errors import BuildCancelledError, BuildError, ImageError, PykanikoError
from pykaniko.executor.cache import StageKeys
from pykaniko.executor.copy_step import copy_step
from pykaniko.executor.events import StepFinished, StepStarted
from pykaniko.executor.fsutil import clean_abs, makedirs_in_root
from pykaniko.executor.leakcheck import short_step
from pykaniko.executor.metadata import (
    MetadataInstruction,
    apply_metadata,
    created_by_metadata,
)
from pykaniko.executor.oserrors import from_os_error
from pykaniko.executor.prepare import PreparedStage
from pykaniko.executor.run_step import run_step
from pykaniko.executor.state import (
    PendingLayer,
    StageContext,
    StageOutput,
    StageState,
    empty_config,
    extract_verified,
)
from pykaniko.executor.users import resolve_chown
from pykaniko.image import mediatypes as mt
from pykaniko.image.manifest import Descriptor
from pykaniko.registry import PulledImage

__all__ = [
    "StageContext",
    "StageOutput",
    "build_stage",
    "ensure_rootfs",
    "extract_verified",
]


def _run_all(state: StageState, prepared: PreparedStage) -> None:
    total = len(prepared.steps)
    for step in prepared.steps:
        instr = step.instr
        state.number = step.number
        state.later = prepared.steps[step.number :]
        state.last = step.number == total
        state.ctx.events(StepStarted(state.index, step.number, total, instr.original))
        state.step = instr
        began = time.monotonic()
        try:
            _step(state, instr, step.scope)
        except OSError as exc:
            operation = short_step(instr.original, 60)
            raise from_os_error(exc, operation, state.path_map(), location=instr.location) from exc
        except PykanikoError as exc:
            # from the layer, snapshot or registry code below; a cancellation is the
            # caller's, not the step's
            if exc.location is None and not isinstance(exc, BuildCancelledError):
                exc.location = instr.location
            raise
        state.ctx.events(StepFinished(state.index, step.number, time.monotonic() - began))


def _step(state: StageState, instr: Instruction, scope: StageScope) -> None:
    match instr:
        case Run():
            run_step(state, instr, scope)
        case Copy() | Add():
            copy_step(state, instr)
        case Workdir(path=path):
            _workdir(state, instr, path)
        case Volume(paths=paths):
            _volume(state, instr, paths)
        case Cmd():
            state.cmd_set = True
            state.out.config = apply_metadata(state.out.config, instr)
            _metadata_history(state, instr)
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
            state.out.config = apply_metadata(state.out.config, instr, cmd_set=state.cmd_set)
            _metadata_history(state, instr)
        case From():
            raise BuildError("FROM inside a stage", location=instr.location)
        case _:
            assert_never(instr)


def _workdir(state: StageState, instr: Workdir, path: str) -> None:
    cfg = state.out.config.config
    workdir = clean_abs(path, cfg.working_dir or "/")
    state.out.config = replace(state.out.config, config=replace(cfg, working_dir=workdir))
    created_by = f"WORKDIR {workdir}"
    hit = state.cached()
    if hit is not None:
        state.use_cached(hit, created_by)
        return
    before = len(state.out.layers)
    state.ensure_fs()
    # owned as by --chown=$USER (BuildKit's mkdir WithUser), not as a RUN
    user = cfg.user
    try:
        uid, gid = resolve_chown(state.fs_root, user, what=f"USER {user}") if user else (0, 0)
    except BuildError as exc:
        raise BuildError(exc.message, location=instr.location) from exc
    touched = makedirs_in_root(state.fs_root, workdir, uid=uid, gid=gid)
    state.add_layer(touched, created_by)
    state.remember(before, created_by)


def _volume(state: StageState, instr: Volume, paths: Sequence[str]) -> None:
    state.out.config = apply_metadata(state.out.config, instr)
    for p in paths:
        vol = clean_abs(p)
        if vol not in state.volumes:
            state.volumes.append(vol)
    single = state.ctx.options.single_snapshot  # one diff at the end sees all
    if not single and (state.out.snapshotter is not None or not state.out.pending):
        snap = state.ensure_fs()
        for p in paths:
            makedirs_in_root(state.fs_root, clean_abs(p))
        snap.diff([clean_abs(p) for p in paths])
        snap.set_ignore(state.ignore_list())
    _metadata_history(state, instr)


def _metadata_history(state: StageState, instr: MetadataInstruction) -> None:
    forced = state.ctx.options.force_build_metadata
    if (state.ctx.options.single_snapshot and state.last) or forced:
        state.add_layer(None, created_by_metadata(instr, state.out.config.config))
    elif not isinstance(instr, Arg):  # BuildKit records no history for ARG
        state.history(created_by_metadata(instr, state.out.config.config), empty=True)


def build_stage(
    ctx: StageContext,
    index: int,
    *,
    base: StageOutput | None,
    pulled: PulledImage | None,
    take_over: bool,
    prepared: PreparedStage,
    keys: StageKeys | None = None,
    needed_later: bool = True,
) -> StageOutput:
    """Build stage ``index`` on top of ``base`` (a finished stage), ``pulled`` (an image)
    or nothing (scratch): its prepared steps, with their cache keys if ``keys``.
    ``needed_later``: a later stage builds on it or reads its files."""
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
        held = base.pending
        if (
            take_over
            and base.rootfs is not None
            and ctx.isolation.take_over(base, out, ctx.workspace)
        ):
            out.pending, base.pending = held, []  # the layers its rootfs still lacked
        else:
            diff_ids = base.config.diff_ids
            out.pending = [
                PendingLayer(d, diff_id, _source_for(d, base))
                for d, diff_id in zip(base.layers, diff_ids, strict=True)
            ]
    elif pulled is not None:
        layers = pulled.manifest.layers
        if len(pulled.config.diff_ids) != len(layers):
            raise ImageError(
                f"the base image config lists {len(pulled.config.diff_ids)} diff_ids "
                f"for {len(layers)} layers"
            )
        out = StageOutput(
            index=index,
            name=None,
            config=pulled.config,
            layers=list(layers),
            docker=pulled.manifest.is_docker,
            sources=[pulled],
            scope=None,
            pending=[
                PendingLayer(d, diff_id, pulled)
                for d, diff_id in zip(layers, pulled.config.diff_ids, strict=True)
            ],
        )
    else:  # scratch
        out = StageOutput(
            index=index,
            name=None,
            config=empty_config(o),
            layers=[],
            docker=True,
            sources=[],
            scope=None,
        )
    out.key = keys.final if keys is not None else None
    if o.outputs.compression == "zstd" and out.docker:
        out.docker = False
        out.layers = [_to_oci(d) for d in out.layers]
    # labels, platform and ONBUILD triggers were applied when the stage was prepared
    out.config = replace(prepared.config, diff_ids=out.config.diff_ids, history=out.config.history)
    state = StageState(ctx, index, out, keys)
    state.needed_later = needed_later
    _run_all(state, prepared)
    out.scope = prepared.final_scope
    return out


def ensure_rootfs(ctx: StageContext, out: StageOutput) -> None:
    """Extract a finished stage's pending layers (a later stage reads its files)."""
    StageState(ctx, out.index, out).ensure_fs()


def _source_for(desc: Descriptor, base: StageOutput) -> PulledImage | None:
    for src in base.sources:
        if any(d.digest == desc.digest for d in src.manifest.layers):
            return src
    return None


def _to_oci(desc: Descriptor) -> Descriptor:
    if desc.media_type in (mt.DOCKER_LAYER_GZIP,):
        return replace(desc, media_type=mt.OCI_LAYER_GZIP)
    return desc
