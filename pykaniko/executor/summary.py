"""The closing summary of a build, made from its event stream alone.

A :class:`SummaryCollector` is an event sink: put it in front of any other sink and it
records steps, cache hits, layers, blob bytes and phase times as they go by. Nothing
else reports to it, so whatever the executor emits is what the summary knows; a phase
nobody timed is simply absent (never guessed).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pykaniko.executor.events import (
    BlobProgress,
    BuildFinished,
    CacheChecked,
    Event,
    ImagePushed,
    LayerCreated,
    Notice,
    PhaseTimed,
    StageSkipped,
    StageStarted,
    StepFinished,
    StepOutput,
    StepStarted,
)
from pykaniko.image.manifest import Manifest

__all__ = ["BuildSummary", "LayerSummary", "StepSummary", "SummaryCollector"]

Origin = Literal["base", "built", "cached"]
StepStatus = Literal["run", "cached"]


@dataclass(frozen=True, slots=True)
class LayerSummary:
    """One layer of the final image: compressed ``size``, and where it came from."""

    digest: str
    size: int
    origin: Origin
    stage: int | None = None
    step: int | None = None
    entries: int | None = None


@dataclass(frozen=True, slots=True)
class StepSummary:
    """One executed step; ``phases`` are the timed parts that happened inside it."""

    stage: int
    number: int
    total: int
    instruction: str
    status: StepStatus
    seconds: float
    layer: str = ""
    layer_size: int = 0
    phases: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BuildSummary:
    """What a build did and where the time went; ``to_dict`` is the JSON form."""

    digest: str
    destinations: tuple[str, ...]
    pushed: tuple[str, ...]
    layers: tuple[LayerSummary, ...]
    steps: tuple[StepSummary, ...]
    steps_skipped: int
    phases: Mapping[str, float]
    seconds: float
    bytes_pulled: int = 0
    bytes_pushed: int = 0
    warnings: int = 0

    @property
    def size(self) -> int:
        """Compressed size of the image: the sum of its layers."""
        return sum(layer.size for layer in self.layers)

    @property
    def steps_run(self) -> int:
        return sum(1 for s in self.steps if s.status == "run")

    @property
    def steps_cached(self) -> int:
        return sum(1 for s in self.steps if s.status == "cached")

    def to_dict(self) -> dict[str, object]:
        return {
            "digest": self.digest,
            "destinations": list(self.destinations),
            "pushed": list(self.pushed),
            "size": self.size,
            "seconds": round(self.seconds, 3),
            "steps": {
                "run": self.steps_run,
                "cached": self.steps_cached,
                "skipped": self.steps_skipped,
            },
            "phases": {k: round(v, 3) for k, v in self.phases.items()},
            "bytes": {"pulled": self.bytes_pulled, "pushed": self.bytes_pushed},
            "warnings": self.warnings,
            "layers": [
                {
                    "digest": layer.digest,
                    "size": layer.size,
                    "origin": layer.origin,
                    "stage": layer.stage,
                    "step": layer.step,
                    "entries": layer.entries,
                }
                for layer in self.layers
            ],
            "step_times": [
                {
                    "stage": s.stage,
                    "step": s.number,
                    "total": s.total,
                    "instruction": s.instruction,
                    "status": s.status,
                    "seconds": round(s.seconds, 3),
                    "layer": s.layer or None,
                    "layer_size": s.layer_size if s.layer else None,
                    "phases": {k: round(v, 3) for k, v in s.phases.items()},
                }
                for s in self.steps
            ],
        }


@dataclass
class _Step:
    stage: int
    number: int
    total: int
    text: str
    started: float
    seconds: float | None = None
    cached: bool = False
    layer: str = ""
    layer_size: int = 0
    entries: int | None = None
    phases: dict[str, float] = field(default_factory=dict)


class SummaryCollector:
    """An event sink that remembers what a :class:`BuildSummary` needs; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        self._steps: list[_Step] = []
        self._running: _Step | None = None
        self._phases: dict[str, float] = {}
        self._skipped = 0
        self._pushed: list[str] = []
        self._bytes = {"pull": 0, "push": 0}
        self._warnings = 0
        self._seconds: float | None = None

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._record(event)

    def _record(self, event: Event) -> None:
        match event:
            case StepStarted(stage=stage, number=n, total=total, text=text):
                self._running = _Step(stage, n, total, text, self._clock())
                self._steps.append(self._running)
            case StepFinished(stage=stage, number=n, seconds=seconds):
                step = self._find(stage, n)
                if step is not None:
                    step.seconds = seconds
                if step is self._running:
                    self._running = None
            case CacheChecked(hit=True, digest=digest):
                if self._running is not None:
                    self._running.cached = True
                    self._running.layer = digest
            case LayerCreated(digest=digest, size=size, entries=entries, seconds=seconds):
                self._add_phase("snapshot", seconds)
                if self._running is not None:
                    self._running.layer, self._running.layer_size = digest, size
                    self._running.entries = entries
            case PhaseTimed(phase=phase, seconds=seconds, stage=stage, step=number):
                self._add_phase(phase, seconds, self._find(stage, number) if number else None)
            case BlobProgress(direction=direction, done=done, finished=True, ok=True):
                self._bytes[direction] += done
            case StageSkipped(steps=steps):
                self._skipped += steps
            case ImagePushed(reference=reference):
                self._pushed.append(reference)
            case Notice(level="warning"):
                self._warnings += 1
            case BuildFinished(seconds=seconds):
                self._seconds = seconds
            case StageStarted() | StepOutput() | CacheChecked() | BlobProgress() | Notice():
                pass

    def _find(self, stage: int | None, number: int | None) -> _Step | None:
        for step in reversed(self._steps):
            if step.stage == stage and step.number == number:
                return step
        return None

    def _add_phase(self, phase: str, seconds: float, step: _Step | None = None) -> None:
        self._phases[phase] = self._phases.get(phase, 0.0) + seconds
        target = step or self._running
        if target is not None:
            target.phases[phase] = target.phases.get(phase, 0.0) + seconds

    def summary(
        self, *, digest: str, manifest: Manifest | None, destinations: Sequence[str]
    ) -> BuildSummary:
        """The summary so far; ``manifest`` gives the final image's layers in order."""
        with self._lock:
            now = self._clock()
            sizes = {d.digest: d.size for d in manifest.layers} if manifest is not None else {}
            origins: dict[str, tuple[Origin, _Step]] = {}
            for step in self._steps:
                if step.layer:
                    origins[step.layer] = ("cached" if step.cached else "built", step)
            layers: list[LayerSummary] = []
            for desc in manifest.layers if manifest is not None else ():
                found = origins.get(desc.digest)
                if found is None:
                    layers.append(LayerSummary(desc.digest, desc.size, "base"))
                    continue
                origin, step = found
                entries = step.entries if origin == "built" else None
                layers.append(
                    LayerSummary(desc.digest, desc.size, origin, step.stage, step.number, entries)
                )
            steps = tuple(
                StepSummary(
                    stage=s.stage,
                    number=s.number,
                    total=s.total,
                    instruction=s.text,
                    status="cached" if s.cached else "run",
                    seconds=s.seconds if s.seconds is not None else now - s.started,
                    layer=s.layer,
                    layer_size=s.layer_size or sizes.get(s.layer, 0),
                    phases=dict(s.phases),
                )
                for s in self._steps
            )
            seconds = self._seconds if self._seconds is not None else now - self._started
            return BuildSummary(
                digest=digest,
                destinations=tuple(destinations),
                pushed=tuple(self._pushed),
                layers=tuple(layers),
                steps=steps,
                steps_skipped=self._skipped,
                phases=dict(self._phases),
                seconds=seconds,
                bytes_pulled=self._bytes["pull"],
                bytes_pushed=self._bytes["push"],
                warnings=self._warnings,
            )
