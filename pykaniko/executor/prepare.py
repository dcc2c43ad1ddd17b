"""A stage's steps before anything runs: each instruction expanded in its scope, with
the container config it will see (env, user, working directory, shell).

Only metadata instructions and WORKDIR change the config, and none of them needs a
filesystem, so every step of every stage is known before the first one runs. The build
walks these steps, and the cache keys are computed from them up front (so the probes
can all start at once), from the very same expanded instructions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from pykaniko.dockerfile import (
    Add,
    Cmd,
    Copy,
    Dockerfile,
    From,
    Instruction,
    Run,
    StageScope,
    Workdir,
    parse_instruction,
)
from pykaniko.errors import Location
from pykaniko.executor.fsutil import clean_abs
from pykaniko.executor.metadata import DEFAULT_PATH, apply_metadata
from pykaniko.executor.options import BuildOptions
from pykaniko.image.config import ContainerConfig, ImageConfig

__all__ = ["PreparedStage", "PreparedStep", "prepare_stage", "scratch_config", "start_config"]


@dataclass(frozen=True, slots=True)
class PreparedStep:
    """Step ``number`` (1-based, ONBUILD triggers first) of a stage."""

    number: int
    instr: Instruction
    scope: StageScope
    config: ContainerConfig


@dataclass(frozen=True, slots=True)
class PreparedStage:
    """``config`` is the image config the stage starts from (labels and platform
    applied, ONBUILD triggers taken out); ``final_config``/``final_scope`` are what a
    stage built FROM this one starts from."""

    index: int
    config: ImageConfig
    steps: tuple[PreparedStep, ...]
    final_config: ImageConfig
    final_scope: StageScope


def scratch_config(options: BuildOptions) -> ImageConfig:
    """``FROM scratch``: BuildKit's empty image carries the default PATH."""
    p = options.platform
    return ImageConfig(
        architecture=p.architecture,
        os=p.os,
        variant=p.variant,
        config=ContainerConfig(env=(f"PATH={DEFAULT_PATH}",)),
    )


def start_config(options: BuildOptions, base: ImageConfig) -> tuple[ImageConfig, tuple[str, ...]]:
    """The config a stage starts from, and the base's ONBUILD triggers (which run first
    and are not inherited further)."""
    cfg = base
    if options.labels:
        cfg = replace(
            cfg, config=replace(cfg.config, labels={**cfg.config.labels, **options.labels})
        )
    triggers = cfg.config.on_build
    cfg = replace(cfg, config=replace(cfg.config, on_build=()))
    p = options.platform
    return replace(cfg, architecture=p.architecture, os=p.os, variant=p.variant), triggers


def prepare_stage(
    options: BuildOptions,
    dockerfile: Dockerfile,
    *,
    index: int,
    instructions: Sequence[Instruction],
    base: ImageConfig,
    scope: StageScope,
) -> PreparedStage:
    """Expand ``instructions`` (after the base's ONBUILD triggers) from ``scope`` on,
    following the config through metadata steps and WORKDIR."""
    config, triggers = start_config(options, base)
    steps = list(instructions)
    if triggers:
        loc = Location(f"ONBUILD trigger of the base of stage {index}", 1, 1)
        trig = [parse_instruction(t, loc, escape=dockerfile.escape) for t in triggers]
        steps = trig + steps
    cfg = config
    cmd_set = False
    out: list[PreparedStep] = []
    for number, raw in enumerate(steps, start=1):
        instr = scope.expand(raw)
        out.append(PreparedStep(number, instr, scope, cfg.config))
        match instr:
            case Workdir(path=path):
                workdir = clean_abs(path, cfg.config.working_dir or "/")
                cfg = replace(cfg, config=replace(cfg.config, working_dir=workdir))
            case Run() | Copy() | Add() | From():
                pass
            case Cmd():
                cmd_set = True
                cfg = apply_metadata(cfg, instr)
            case _:
                cfg = apply_metadata(cfg, instr, cmd_set=cmd_set)
        scope = scope.after(instr)
    return PreparedStage(index, config, tuple(out), cfg, scope)
