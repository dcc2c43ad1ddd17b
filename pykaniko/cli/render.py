"""The CLI's event sink, and the closing summary as text or a record.

Events become records through :func:`pykaniko.cli.logs.describe`; blob progress goes to
the progress view. Nothing here decides a format: the writer does.
"""

from __future__ import annotations

import logging
import threading

from pykaniko.cli.logs import LogWriter, Record, describe, human_size, plural, short
from pykaniko.cli.progress import ProgressView
from pykaniko.executor.events import BlobProgress, Event, StepOutput, StepStarted
from pykaniko.executor.summary import BuildSummary

__all__ = ["EventRenderer", "summary_lines", "summary_record"]


class EventRenderer:
    """An :data:`EventSink` writing every event through one :class:`LogWriter`."""

    def __init__(self, writer: LogWriter, progress: ProgressView) -> None:
        self.writer = writer
        self.progress = progress
        self._lock = threading.Lock()
        self._step: dict[int, int] = {}  # stage -> step running in it
        self._last: int | None = None

    def __call__(self, event: Event) -> None:
        match event:
            case BlobProgress():
                self.progress.update(event)
                return
            case StepStarted(stage=stage, number=n):
                with self._lock:
                    self._step[stage], self._last = n, n
            case StepOutput(stage=stage):
                record = describe(event, step=self._step.get(stage))
                if record is not None:
                    self.writer.output(record)
                return
            case _:
                pass
        record = describe(event, step=self._last)
        if record is not None:
            self.writer.log(record)


_MAIN_PHASES = ("resolve", "pull", "extract", "run", "snapshot", "compress", "cache", "push")


def _phases(summary: BuildSummary) -> str:
    known = [p for p in _MAIN_PHASES if p in summary.phases]
    known += sorted(p for p in summary.phases if p not in _MAIN_PHASES)
    parts = [f"{p} {summary.phases[p]:.2f}s" for p in known]
    return ", ".join([*parts, f"total {summary.seconds:.2f}s"])


def summary_lines(summary: BuildSummary) -> list[str]:
    """The closing summary for people: image, steps, time per phase and per step."""
    base = [layer for layer in summary.layers if layer.origin == "base"]
    dest = ", ".join(summary.pushed or summary.destinations) or "none (not pushed)"
    lines = [
        "Build summary",
        f"  image         {summary.digest}",
        f"  destinations  {dest}",
        f"  size          {human_size(summary.size)} compressed in "
        f"{plural(len(summary.layers), 'layer')} ({len(base)} from the base, "
        f"{human_size(sum(x.size for x in base))})",
        f"  steps         {summary.steps_run} run, {summary.steps_cached} cached,"
        f" {summary.steps_skipped} skipped",
        f"  time          {_phases(summary)}",
    ]
    if summary.bytes_pulled or summary.bytes_pushed:
        lines.append(
            f"  transferred   {human_size(summary.bytes_pulled)} pulled,"
            f" {human_size(summary.bytes_pushed)} pushed"
        )
    if summary.steps:
        lines.append("  stage  step    time    status  layer                  size  instruction")
    for s in summary.steps:
        text = s.instruction if len(s.instruction) <= 60 else s.instruction[:57] + "..."
        layer = short(s.layer) if s.layer else "-"
        size = human_size(s.layer_size) if s.layer else "-"
        extra = ", ".join(f"{k} {v:.2f}s" for k, v in s.phases.items() if v >= 0.01)
        lines.append(
            f"  {s.stage:>5}  {f'{s.number}/{s.total}':<6} {s.seconds:6.2f}s  {s.status:<6}  "
            f"{layer:<19} {size:>8}  {text}" + (f"  ({extra})" if extra else "")
        )
    for b in base:
        lines.append(f"  base layer  {short(b.digest)}  {human_size(b.size)}")
    return lines


def summary_record(summary: BuildSummary, *, nested: bool = True) -> Record:
    """The summary as one structured record: the whole JSON form for JSON logs
    (``nested``), its scalar facts flattened for ``key=value`` text logs."""
    fields: dict[str, object]
    if nested:
        fields = {"event": "summary", **summary.to_dict()}
    else:
        fields = {
            "event": "summary",
            "digest": summary.digest,
            "destinations": ",".join(summary.pushed or summary.destinations) or None,
            "size": summary.size,
            "layers": len(summary.layers),
            "steps_run": summary.steps_run,
            "steps_cached": summary.steps_cached,
            "steps_skipped": summary.steps_skipped,
            "seconds": round(summary.seconds, 3),
            **{f"phase_{k}": round(v, 3) for k, v in summary.phases.items()},
        }
    return Record(
        logging.INFO,
        f"Build summary: {summary.digest}, {human_size(summary.size)}, "
        f"{summary.steps_run} run / {summary.steps_cached} cached / "
        f"{summary.steps_skipped} skipped, {summary.seconds:.1f}s",
        fields,
    )
