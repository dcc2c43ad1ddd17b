"""A parsed Dockerfile: directives, global (meta) ARGs and stages with their instructions."""

from __future__ import annotations

from dataclasses import dataclass

from pykaniko.dockerfile.instructions import Arg, From, Instruction, build_instruction
from pykaniko.dockerfile.syntax import parse_text
from pykaniko.errors import DockerfileError, Location, PlanError

__all__ = ["Dockerfile", "Stage", "parse_dockerfile"]


@dataclass(frozen=True, slots=True)
class Stage:
    """One ``FROM`` section. ``index`` is its position in the file and never changes."""

    index: int
    name: str | None
    from_: From
    instructions: tuple[Instruction, ...]
    location: Location

    @property
    def label(self) -> str:
        """How messages name this stage: ``stage 1 "builder"`` or ``stage 1``."""
        return f'stage {self.index} "{self.name}"' if self.name else f"stage {self.index}"


@dataclass(frozen=True, slots=True)
class Dockerfile:
    """The whole file: the escape character and directives apply to every stage."""

    directives: tuple[tuple[str, str], ...]
    escape: str
    meta_args: tuple[Arg, ...]
    stages: tuple[Stage, ...]
    filename: str

    def directive(self, name: str) -> str | None:
        """The value of ``# name=value`` at the top of the file, if any."""
        return dict(self.directives).get(name)

    def stage_named(self, name: str) -> Stage | None:
        """The stage called ``name`` (case-insensitive), if there is one."""
        lowered = name.lower()
        for stage in self.stages:
            if stage.name == lowered:
                return stage
        return None


def parse_dockerfile(text: str, filename: str = "Dockerfile") -> Dockerfile:
    """Parses Dockerfile text into stages of typed (unexpanded) instructions."""
    parsed = parse_text(text, filename)
    meta: list[Arg] = []
    stages: list[tuple[From, list[Instruction]]] = []
    for node in parsed.nodes:
        instruction = build_instruction(node, parsed.escape)
        if isinstance(instruction, From):
            stages.append((instruction, []))
        elif stages:
            stages[-1][1].append(instruction)
        elif isinstance(instruction, Arg):
            meta.append(instruction)
        else:
            raise DockerfileError(
                f"{node.keyword.upper()} before the first FROM: only ARG may come before FROM",
                location=node.location,
            )
    if not stages:
        end = parsed.nodes[-1].location.end if parsed.nodes else 1
        raise DockerfileError(
            "file with no instructions"
            if not parsed.nodes
            else "no build stage: the Dockerfile has no FROM",
            location=Location(filename, 1, end),
        )
    seen: dict[str, int] = {}
    built: list[Stage] = []
    for index, (from_, body) in enumerate(stages):
        if from_.alias is not None:
            if from_.alias in seen:
                first = seen[from_.alias]
                raise PlanError(
                    f'duplicate stage name "{from_.alias}" (first used by stage {first})',
                    location=from_.location,
                )
            seen[from_.alias] = index
        end = body[-1].location.end if body else from_.location.end
        location = Location(filename, from_.location.start, end)
        built.append(Stage(index, from_.alias, from_, tuple(body), location))
    return Dockerfile(parsed.directives, parsed.escape, tuple(meta), tuple(built), filename)
