"""The key of every step of a stage, computed before the stage runs.

Keys depend on inputs only (see :mod:`.keys`), never on what a step produced, so the
whole chain is known up front from the prepared steps
(:mod:`pykaniko.executor.prepare`): the context sources are hashed first (a COPY needs
them read anyway), ``--from`` stages contribute their final keys and images their
manifest digests, ``ADD <url>`` its ``--checksum`` or the digest of what was fetched.
An input that cannot be read (a missing source: the step will fail by itself and say
why) ends the chain: that step and the ones after it are not cached.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from pykaniko.dockerfile import (
    Add,
    Copy,
    ImageBase,
    Instruction,
    Run,
    StageBase,
    Volume,
    Workdir,
)
from pykaniko.errors import BuildError, Location, PykanikoError
from pykaniko.executor.cache.keys import copy_key, run_key, volume_key, workdir_key
from pykaniko.executor.cache.sources import context_digest, tree_digest
from pykaniko.executor.copy import CopyRequest, SourceTree
from pykaniko.executor.fsutil import clean_abs
from pykaniko.executor.metadata import DEFAULT_PATH, DEFAULT_SHELL
from pykaniko.executor.options import BuildOptions
from pykaniko.executor.prepare import PreparedStage, PreparedStep

__all__ = ["KeyInputs", "StageKeys", "StepKey", "stage_keys", "step_text"]

_NOWHERE = Location("", 0, 0)


def step_text(instr: Instruction) -> str:
    """An instruction as its key sees it: every expanded field, no line number."""
    return repr(replace(instr, location=_NOWHERE))


@dataclass(frozen=True, slots=True)
class StepKey:
    """A step's key, and whether the cache is asked for it and given its result."""

    key: str
    cached: bool


@dataclass(frozen=True, slots=True)
class StageKeys:
    """Keys by step number; ``final`` seeds stages built FROM this one and keys their
    ``COPY --from``; ``broken`` says why the chain stopped early, if it did."""

    steps: Mapping[int, StepKey]
    final: str | None
    broken: str | None = None


@dataclass(frozen=True)
class KeyInputs:
    """What keys read from the build around a stage (injected: tests need no registry).

    ``image_digest`` resolves ``--from=<image>``; ``url_digest`` fetches ``ADD <url>``
    without ``--checksum`` (the build keeps what it fetched for the step)."""

    options: BuildOptions
    context_ignored: Callable[[str], bool] | None
    context_has_exceptions: bool
    resolve_from: Callable[[int, str], StageBase | ImageBase]
    stage_key: Callable[[int], str | None]
    image_digest: Callable[[str], str]
    url_digest: Callable[[str], str]


def stage_keys(seed: str | None, stage: PreparedStage, inputs: KeyInputs) -> StageKeys:
    steps: dict[int, StepKey] = {}
    parent = seed
    if parent is None:
        return StageKeys(steps, None, "its base has no key")
    for step in stage.steps:
        try:
            made = _step_key(parent, step, stage.index, inputs)
        except (PykanikoError, OSError, ValueError) as exc:
            reason = exc.message if isinstance(exc, PykanikoError) else str(exc)
            return StageKeys(steps, None, f"step {step.number}: {reason}")
        if made is not None:
            steps[step.number] = made
            parent = made.key
    return StageKeys(steps, parent)


def _from_key(inputs: KeyInputs, stage_index: int, ref: str) -> str:
    target = inputs.resolve_from(stage_index, ref)
    if isinstance(target, StageBase):
        key = inputs.stage_key(target.index)
        if key is None:
            raise BuildError(f"stage {ref} has no key")
        return "stage:" + key
    return "image:" + inputs.image_digest(target.reference)


def _step_key(parent: str, step: PreparedStep, index: int, inputs: KeyInputs) -> StepKey | None:
    instr, cfg, o = step.instr, step.config, inputs.options
    workdir = cfg.working_dir or "/"
    match instr:
        case Run(mounts=mounts):
            # proxies reach the RUN but not its key (BuildKit leaves them out too)
            env = replace(step.scope, build_args=()).run_env(cfg.env)
            if not any(e.startswith("PATH=") for e in env):
                env.append(f"PATH={DEFAULT_PATH}")
            fed: list[tuple[str, str]] = []
            for m in mounts:
                if m.type != "bind":
                    continue  # cache mounts by id, secrets by id: both in the text
                if m.from_:
                    fed.append((m.target, _from_key(inputs, index, m.from_)))
                else:
                    context = o.context.resolve()
                    source = (context / (m.source or ".").lstrip("/")).resolve()
                    if source != context and context not in source.parents:
                        raise BuildError(f"--mount source {m.source!r} is outside the context")
                    fed.append((m.target, tree_digest(source)))
            key = run_key(
                parent,
                step_text(instr),
                env=env,
                user=cfg.user,
                workdir=workdir,
                shell=cfg.shell or DEFAULT_SHELL,
                mounts=fed,
            )
            return StepKey(key, o.cache_run_layers)
        case Copy() | Add():
            sources = _copy_sources(instr, index, inputs)
            key = copy_key(parent, step_text(instr), workdir=workdir, sources=sources)
            return StepKey(key, o.cache_copy_layers)
        case Workdir(path=path):
            # cached whenever the cache is on: a tiny layer, but making it needs the
            # filesystem, which a warm build must not unpack just for a directory
            return StepKey(workdir_key(parent, clean_abs(path, workdir), cfg.user), True)
        case Volume(paths=paths):
            return StepKey(volume_key(parent, [clean_abs(p) for p in paths]), False)
        case _:
            return None


def _copy_sources(instr: Copy | Add, index: int, inputs: KeyInputs) -> list[tuple[str, str]]:
    if isinstance(instr, Copy) and instr.from_:
        return [("from", _from_key(inputs, index, instr.from_))]
    out: list[tuple[str, str]] = []
    local: list[str] = []
    for src in instr.sources:
        if src.startswith(("http://", "https://")):
            digest = instr.checksum if isinstance(instr, Add) and instr.checksum else None
            out.append(("url", digest or inputs.url_digest(src)))
        elif src.startswith(("git@", "git://")) or src.endswith(".git"):
            raise BuildError("ADD of git repositories is not supported yet")
        else:
            local.append(src)
    if local:
        tree = SourceTree(
            root=inputs.options.context,
            ignored=inputs.context_ignored,
            descend_ignored=inputs.context_has_exceptions,
        )
        req = CopyRequest(
            sources=tuple(local),
            dest=instr.dest,
            workdir="/",
            chmod=int(instr.chmod, 8) if instr.chmod is not None else None,
            exclude=instr.exclude,
            parents=isinstance(instr, Copy) and instr.parents,
        )
        out.append(("context", context_digest(tree, req)))
    return out
