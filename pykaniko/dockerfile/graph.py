"""The stage graph: which stages to build, in which order, and why.

A stage depends on the stage its FROM names, on ``COPY --from`` and on ``RUN --mount
from=`` (after ARG expansion). Stages keep their original indices, so numeric
references stay right whatever is skipped. Without ``skip_unused_stages`` every stage
up to the target is built (Kaniko's behaviour); with it only what the target reaches.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

from pykaniko.dockerfile.instructions import Add, Arg, Copy, Instruction, Onbuild, Run
from pykaniko.dockerfile.render import format_instruction
from pykaniko.dockerfile.scope import PROXY_ARGS, StageScope, expand_word, global_args
from pykaniko.dockerfile.stages import Dockerfile, Stage
from pykaniko.errors import Location, PlanError

__all__ = [
    "BaseRef",
    "BuildPlan",
    "ImageBase",
    "PlannedStage",
    "ScratchBase",
    "SkippedStage",
    "StageBase",
    "plan_build",
    "render_plan",
]

_BARE_NAME = re.compile(r"^[a-z][a-z0-9_.-]*$")


@dataclass(frozen=True, slots=True)
class StageBase:
    """Built on (or copying from) the stage with this original index."""

    index: int


@dataclass(frozen=True, slots=True)
class ImageBase:
    """An image from a registry; reference and platform already expanded."""

    reference: str
    platform: str | None


@dataclass(frozen=True, slots=True)
class ScratchBase:
    """``FROM scratch``: an empty filesystem."""


BaseRef: TypeAlias = StageBase | ImageBase | ScratchBase


@dataclass(frozen=True, slots=True)
class PlannedStage:
    """A stage to build, its base, why it is built and the stages it needs first.

    ``steps`` are its instructions expanded with what the Dockerfile alone knows
    (base-image env is unknown at plan time). When the base is another stage, the
    first ``trigger_count`` steps are that stage's ONBUILD triggers, which run first.
    """

    stage: Stage
    base: BaseRef
    reasons: tuple[str, ...]
    dependencies: tuple[int, ...]
    steps: tuple[Instruction, ...] = ()
    trigger_count: int = 0


@dataclass(frozen=True, slots=True)
class SkippedStage:
    """A stage not built, and why."""

    stage: Stage
    reason: str


@dataclass(frozen=True, slots=True)
class BuildPlan:
    """What a build will do; pure and printable (``--dry-run``)."""

    dockerfile: Dockerfile
    stages: tuple[PlannedStage, ...]
    skipped: tuple[SkippedStage, ...]
    target_index: int
    build_args: tuple[tuple[str, str], ...] = ()
    target_platform: str = "linux/amd64"
    build_platform: str = "linux/amd64"
    unused_build_args: tuple[str, ...] = field(default=())

    def resolve_from(self, stage_index: int, value: str) -> StageBase | ImageBase:
        """What an expanded ``--from`` value in stage ``stage_index`` names."""
        del stage_index
        index = _stage_ref(self.dockerfile, value)
        return StageBase(index) if index is not None else ImageBase(value, None)

    def planned(self, index: int) -> PlannedStage | None:
        """The planned stage with this original index, if it is built."""
        for planned in self.stages:
            if planned.stage.index == index:
                return planned
        return None


def _stage_ref(dockerfile: Dockerfile, value: str) -> int | None:
    """The index a ``--from``/FROM value names (number or name), or None for an image."""
    if value.isdigit():
        number = int(value)
        return number if number < len(dockerfile.stages) else None
    stage = dockerfile.stage_named(value)
    return stage.index if stage is not None else None


def _typo_check(dockerfile: Dockerfile, value: str, what: str, location: Location) -> None:
    """Refuses an unknown name that is almost a stage name (an image would have / or :)."""
    lowered = value.lower()
    if not _BARE_NAME.match(lowered):
        return
    names = [s.name for s in dockerfile.stages if s.name]
    close = difflib.get_close_matches(lowered, names, n=1, cutoff=0.8)
    if close:
        raise PlanError(
            f'{what}: no stage or image named "{value}" (did you mean "{close[0]}"?)',
            location=location,
        )


@dataclass(frozen=True, slots=True)
class _Edge:
    target: int
    reason: str
    what: str
    location: Location


@dataclass(frozen=True, slots=True)
class _Scan:
    base: BaseRef
    trigger_count: int
    steps: tuple[Instruction, ...]
    edges: tuple[_Edge, ...]
    scope: StageScope


class _Planner:
    """Scans stages lazily (expansion needs the parent's scope) and memoises them."""

    def __init__(
        self,
        dockerfile: Dockerfile,
        build_args: Mapping[str, str],
        target_platform: str,
        build_platform: str,
    ) -> None:
        self.dockerfile = dockerfile
        self.build_args = build_args
        self.target_platform = target_platform
        self.build_platform = build_platform
        self.globals = global_args(dockerfile, build_args, target_platform, build_platform)
        self.scans: dict[int, _Scan] = {}

    def base(self, stage: Stage) -> BaseRef:
        genv = {k: v for k, v in self.globals.items() if v is not None}
        loc = stage.from_.location
        image = expand_word(stage.from_.image, genv, self.dockerfile.escape, location=loc)
        if not image:
            raise PlanError(f"base name ({stage.from_.image}) should not be blank", location=loc)
        platform = stage.from_.platform
        if platform is not None:
            platform = expand_word(platform, genv, self.dockerfile.escape, location=loc)
        named = self.dockerfile.stage_named(image)
        if named is not None and named.index != stage.index:
            if named.index >= stage.index:
                raise PlanError(
                    f"FROM {image}: {_refers(named, stage)}; a stage can only be built on an "
                    "earlier one",
                    location=loc,
                )
            return StageBase(named.index)
        if image.lower() == "scratch":
            return ScratchBase()
        return ImageBase(image, platform or None)

    def scan(self, index: int) -> _Scan:
        if index in self.scans:
            return self.scans[index]
        stage = self.dockerfile.stages[index]
        base = self.base(stage)
        inherited = None
        image_env: list[str] = []
        triggers: list[Instruction] = []
        if isinstance(base, StageBase):
            parent = self.scan(base.index)
            inherited = parent.scope
            image_env = [f"{k}={v}" for k, v in parent.scope.env]
            triggers = [i.inner for i in parent.steps if isinstance(i, Onbuild)]
        scope = StageScope.start(
            stage=stage,
            dockerfile=self.dockerfile,
            image_env=image_env,
            build_args=self.build_args,
            target_platform=self.target_platform,
            build_platform=self.build_platform,
            inherited=inherited,
        )
        edges: list[_Edge] = []
        if isinstance(base, StageBase):
            edges.append(_Edge(base.index, f"base of {stage.label}", "FROM", stage.from_.location))
        steps: list[Instruction] = []
        for number, instr in enumerate((*triggers, *stage.instructions)):
            expanded = scope.expand(instr)
            scope = scope.after(expanded)
            steps.append(expanded)
            line = expanded.location.start
            where = f"{stage.label} line {line}"
            if number < len(triggers):
                where = f"{stage.label} (ONBUILD trigger from line {line})"
            refs: list[tuple[str, str, str]] = []
            if isinstance(expanded, Copy) and expanded.from_ is not None:
                what = f"COPY --from={expanded.from_}"
                refs.append((expanded.from_, what, f"COPY --from in {where}"))
            if isinstance(expanded, Run):
                for mount in expanded.mounts:
                    if mount.from_ is not None:
                        what = f"RUN --mount from={mount.from_}"
                        refs.append((mount.from_, what, f"RUN --mount from in {where}"))
            for value, what, reason in refs:
                edges.extend(self._edge(value, what, reason, instr))
        scan = _Scan(base, len(triggers), tuple(steps), tuple(edges), scope)
        self.scans[index] = scan
        return scan

    def _edge(self, value: str, what: str, reason: str, instr: Instruction) -> list[_Edge]:
        target = _stage_ref(self.dockerfile, value)
        if value.isdigit() and target is None:
            raise PlanError(
                f"{what}: there is no stage {value} (the Dockerfile has "
                f"{len(self.dockerfile.stages)})",
                location=instr.location,
            )
        if target is None:
            _typo_check(self.dockerfile, value, what, instr.location)
            return []
        return [_Edge(target, reason, what, instr.location)]


def _refers(target: Stage, current: Stage) -> str:
    if target.index == current.index:
        return f"{current.label} refers to itself"
    return f"{target.label} is defined later (line {target.location.start})"


def _pick_target(dockerfile: Dockerfile, target: str | None) -> int:
    if target is None:
        return len(dockerfile.stages) - 1
    stage = dockerfile.stage_named(target)
    if stage is not None:
        return stage.index
    names = [s.name for s in dockerfile.stages if s.name]
    close = difflib.get_close_matches(target.lower(), names, n=1, cutoff=0.6)
    hint = f' (did you mean "{close[0]}"?)' if close else ""
    listing = ", ".join(names) if names else "none are named"
    raise PlanError(f'target stage "{target}" could not be found{hint}; stages: {listing}')


def plan_build(
    dockerfile: Dockerfile,
    *,
    target: str | None = None,
    build_args: Mapping[str, str] | None = None,
    skip_unused_stages: bool = False,
    target_platform: str = "linux/amd64",
    build_platform: str = "linux/amd64",
) -> BuildPlan:
    """Decides which stages to build and why; raises PlanError on bad references."""
    args = dict(build_args or {})
    target_index = _pick_target(dockerfile, target)
    planner = _Planner(dockerfile, args, target_platform, build_platform)
    reasons: dict[int, list[str]] = {target_index: ["target"]}
    done: set[int] = set()
    stack: list[int] = []
    via: list[_Edge] = []

    def visit(index: int) -> None:
        if index in done:
            return
        stack.append(index)
        for edge in planner.scan(index).edges:
            if edge.target == index:
                stage = dockerfile.stages[index]
                raise PlanError(f"{edge.what}: {_refers(stage, stage)}", location=edge.location)
            if edge.target in stack:
                start = stack.index(edge.target)
                chain = [dockerfile.stages[i].label for i in stack[start:]]
                chain.append(dockerfile.stages[edge.target].label)
                raise PlanError(
                    f"{edge.what}: circular dependency between stages: {' -> '.join(chain)}",
                    location=edge.location,
                )
            reasons.setdefault(edge.target, []).append(edge.reason)
            via.append(edge)
            visit(edge.target)
        stack.pop()
        done.add(index)

    visit(target_index)
    if not skip_unused_stages:
        for index in range(target_index):
            if index not in reasons:
                reasons[index] = ["before the target (--skip-unused-stages is off)"]
            visit(index)
    for index in sorted(done):
        for edge in planner.scan(index).edges:
            if edge.target >= index:
                stage = dockerfile.stages[index]
                raise PlanError(
                    f"{edge.what}: {_refers(dockerfile.stages[edge.target], stage)}; "
                    "a stage can only use earlier stages",
                    location=edge.location,
                )
    planned: list[PlannedStage] = []
    skipped: list[SkippedStage] = []
    for stage in dockerfile.stages:
        if stage.index in done:
            scan = planner.scan(stage.index)
            deps = tuple(sorted({e.target for e in scan.edges}))
            planned.append(
                PlannedStage(
                    stage,
                    scan.base,
                    tuple(reasons[stage.index]),
                    deps,
                    scan.steps,
                    scan.trigger_count,
                )
            )
        elif stage.index > target_index:
            skipped.append(SkippedStage(stage, "after the target"))
        else:
            skipped.append(SkippedStage(stage, "not needed by the target"))
    declared = {k for arg in dockerfile.meta_args for k, _ in arg.pairs}
    for index in done:
        for step in planner.scan(index).steps:
            if isinstance(step, Onbuild):
                continue
            if isinstance(step, Arg):
                declared.update(k for k, _ in step.pairs)
    unused = tuple(sorted(k for k in args if k not in declared and k not in PROXY_ARGS))
    return BuildPlan(
        dockerfile,
        tuple(planned),
        tuple(skipped),
        target_index,
        tuple(sorted(args.items())),
        target_platform,
        build_platform,
        unused,
    )


def _describe_base(plan: BuildPlan, base: BaseRef) -> str:
    if isinstance(base, StageBase):
        return plan.dockerfile.stages[base.index].label
    if isinstance(base, ScratchBase):
        return "scratch"
    platform = base.platform or plan.target_platform
    return f"image {base.reference} ({platform})"


def render_plan(plan: BuildPlan, *, notes: Mapping[tuple[int, int], str] | None = None) -> str:
    """The ``--dry-run`` text: stages to build and why, their steps, stages skipped.

    ``notes`` adds a remark to a step, by (stage index, position in its ``steps``): the
    executor's cache key and predicted hit or miss."""
    df = plan.dockerfile
    lines = [f"Dockerfile: {df.filename}"]
    if df.directives:
        lines.append("directives: " + ", ".join(f"{k}={v}" for k, v in df.directives))
    target = df.stages[plan.target_index]
    lines.append(f"target: {target.label}")
    lines.append(f"platform: target {plan.target_platform}, build {plan.build_platform}")
    if plan.build_args:
        lines.append("build args: " + ", ".join(f"{k}={v}" for k, v in plan.build_args))
    if plan.unused_build_args:
        lines.append("build args not consumed: " + ", ".join(plan.unused_build_args))
    lines.append(f"stages to build ({len(plan.stages)}):")
    for planned in plan.stages:
        stage = planned.stage
        lines.append(f"  {stage.label} FROM {_describe_base(plan, planned.base)}")
        lines.extend(f"    why: {reason}" for reason in planned.reasons)
        if planned.dependencies:
            deps = ", ".join(df.stages[i].label for i in planned.dependencies)
            lines.append(f"    needs: {deps}")
        for number, step in enumerate(planned.steps):
            text = format_instruction(step)
            if number < planned.trigger_count:
                text += "  (ONBUILD trigger of the base stage)"
            note = (notes or {}).get((stage.index, number))
            if note:
                text += f"  [{note}]"
            lines.append(f"    {step.location.start:>3}: {text}")
            if isinstance(step, Run | Copy | Add):
                for doc in step.heredocs:
                    lines.extend(f"         | {line}" for line in doc.content.splitlines())
                    lines.append(f"         | {doc.name}")
    if plan.skipped:
        lines.append(f"stages skipped ({len(plan.skipped)}):")
        lines.extend(f"  {s.stage.label}: {s.reason}" for s in plan.skipped)
    return "\n".join(lines) + "\n"
