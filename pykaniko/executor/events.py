"""Progress events sent to a caller-supplied callback; the CLI renders them, a library
user may ignore them. Nothing in the executor prints.

Events are plain frozen values with the structured fields a log collector wants (stage,
step, digest, size, seconds), so the CLI's text, colour and JSON logs and a library
caller all read the same stream. The sink may be called from more than one thread
(RUN output is pumped by a reader thread, blobs move on a thread pool): a sink must be
thread-safe and should return quickly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "BlobProgress",
    "BuildFinished",
    "CacheChecked",
    "Direction",
    "Event",
    "EventSink",
    "ImagePushed",
    "LayerCreated",
    "Notice",
    "PHASES",
    "PhaseTimed",
    "StageSkipped",
    "StageStarted",
    "StepFinished",
    "StepOutput",
    "StepStarted",
]


@dataclass(frozen=True, slots=True)
class StageStarted:
    index: int
    name: str | None
    base: str


@dataclass(frozen=True, slots=True)
class StageSkipped:
    """A stage the target does not need; ``steps`` is how many instructions it has."""

    index: int
    name: str | None
    reason: str
    steps: int = 0


@dataclass(frozen=True, slots=True)
class StepStarted:
    stage: int
    number: int
    total: int
    text: str


@dataclass(frozen=True, slots=True)
class StepFinished:
    """A step is done (run, cached or metadata only); ``seconds`` is its wall time."""

    stage: int
    number: int
    seconds: float


@dataclass(frozen=True, slots=True)
class StepOutput:
    stage: int
    line: str


@dataclass(frozen=True, slots=True)
class CacheChecked:
    """The layer cache was asked for a step's key: a hit reuses ``digest``."""

    stage: int
    key: str
    hit: bool
    digest: str = ""


@dataclass(frozen=True, slots=True)
class LayerCreated:
    stage: int
    digest: str
    size: int
    entries: int
    seconds: float


Direction = Literal["pull", "push"]


@dataclass(frozen=True, slots=True)
class BlobProgress:
    """Bytes moved for one blob so far. ``total`` is 0 when the size is unknown; the
    last report of a transfer has ``finished`` set, with ``ok`` false when it broke off
    (a retry then reports again from zero)."""

    direction: Direction
    digest: str
    done: int
    total: int
    finished: bool = False
    repository: str = ""
    ok: bool = True


PHASES = (
    "resolve",
    "pull",
    "extract",
    "run",
    "walk",
    "detect",
    "tar",
    "compress",
    "cache",
    "outputs",
    "push",
)
"""Phase names a :class:`PhaseTimed` may carry, in the order a build meets them:
``resolve`` (manifests and configs), ``pull`` (layer blobs), ``extract`` (layers onto
a rootfs), ``run`` (a RUN command), ``walk``/``detect``/``tar``/``compress`` (the
parts of a snapshot, whose total :class:`LayerCreated` carries), ``cache`` (layer-cache
lookups and pushes), ``outputs`` (tarball, OCI layout), ``push``."""


@dataclass(frozen=True, slots=True)
class PhaseTimed:
    """Wall time spent in one phase. ``stage``/``step`` place it when the emitter knows
    them; otherwise a collector charges it to the step running at the time."""

    phase: str
    seconds: float
    stage: int | None = None
    step: int | None = None
    detail: str = ""


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
    | StepFinished
    | StepOutput
    | CacheChecked
    | LayerCreated
    | BlobProgress
    | PhaseTimed
    | ImagePushed
    | Notice
    | BuildFinished
)
EventSink = Callable[[Event], None]
