"""Progress events sent to a caller-supplied callback; the CLI renders them, a library
user may ignore them. Nothing in the executor prints."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "BuildFinished",
    "Event",
    "EventSink",
    "ImagePushed",
    "LayerCreated",
    "StageSkipped",
    "StageStarted",
    "StepOutput",
    "StepStarted",
    "Notice",
]


@dataclass(frozen=True, slots=True)
class StageStarted:
    index: int
    name: str | None
    base: str


@dataclass(frozen=True, slots=True)
class StageSkipped:
    index: int
    name: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class StepStarted:
    stage: int
    number: int
    total: int
    text: str


@dataclass(frozen=True, slots=True)
class StepOutput:
    stage: int
    line: str


@dataclass(frozen=True, slots=True)
class LayerCreated:
    stage: int
    digest: str
    size: int
    entries: int
    seconds: float


@dataclass(frozen=True, slots=True)
class ImagePushed:
    reference: str
    digest: str


@dataclass(frozen=True, slots=True)
class Notice:
    """A warning or info line for the user (already free of secrets)."""

    level: str
    message: str


@dataclass(frozen=True, slots=True)
class BuildFinished:
    digest: str
    seconds: float


Event = (
    StageStarted
    | StageSkipped
    | StepStarted
    | StepOutput
    | LayerCreated
    | ImagePushed
    | Notice
    | BuildFinished
)
EventSink = Callable[[Event], None]
