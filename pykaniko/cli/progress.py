"""Blob transfer progress: live bars on a terminal, one line per blob elsewhere.

Both views get the same :class:`BlobProgress` events and both log the same line when
a blob finishes, so a terminal session and a CI log read alike; the terminal adds
bars (bytes, rate, ETA) for the blobs still moving. The live view uses ``rich``,
imported only when a terminal is attached (its import costs ~70-100 ms, which plain
and JSON logs never pay).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol, TextIO

from pykaniko.cli.logs import LogWriter, blob_record, short
from pykaniko.executor.events import BlobProgress

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

__all__ = ["LiveProgress", "PlainProgress", "ProgressView", "is_interactive", "make_progress"]


class ProgressView(Protocol):
    def update(self, event: BlobProgress) -> None: ...

    def close(self) -> None: ...


def is_interactive(out: TextIO, err: TextIO, env: Mapping[str, str]) -> bool:
    """A person is watching: both streams are terminals and this is not a CI job."""
    if env.get("CI", "").lower() in ("true", "1", "yes") or env.get("TERM") == "dumb":
        return False
    return _isatty(out) and _isatty(err)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class PlainProgress:
    """One log line per blob, when it finishes (the CI view)."""

    def __init__(self, writer: LogWriter, clock: Callable[[], float] = time.monotonic) -> None:
        self.writer = writer
        self._clock = clock
        self._lock = threading.Lock()
        self._started: dict[tuple[str, str], float] = {}

    def _seconds(self, event: BlobProgress) -> float | None:
        """Seconds since the blob was first seen; ``None`` until it finishes."""
        key = (event.direction, event.digest)
        with self._lock:
            now = self._clock()
            began = self._started.setdefault(key, now)
            if not event.finished:
                return None
            del self._started[key]
            return now - began

    def update(self, event: BlobProgress) -> None:
        seconds = self._seconds(event)
        if seconds is not None:
            self.writer.log(blob_record(event, seconds))

    def close(self) -> None:
        pass


class LiveProgress(PlainProgress):
    """Bars for blobs in flight, drawn under the log; log lines scroll above them."""

    def __init__(self, writer: LogWriter, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(writer, clock)
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.text import Text

        self._text = Text
        self.console = Console(file=writer.err, highlight=False, soft_wrap=True)
        self.progress: Progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=30),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
            refresh_per_second=8,
        )
        self._tasks: dict[tuple[str, str], TaskID] = {}
        self._live = False
        writer.emit = self._emit

    def _emit(self, line: str, stream: TextIO) -> None:
        """Every log and RUN output line goes through the console while bars show,
        so they scroll above the bars instead of tearing them."""
        del stream
        self.console.print(self._text.from_ansi(line), highlight=False)

    def update(self, event: BlobProgress) -> None:
        key = (event.direction, event.digest)
        seconds = self._seconds(event)
        with self._lock:
            task = self._tasks.get(key)
            if seconds is not None:
                if task is not None:
                    self.progress.remove_task(task)
                    del self._tasks[key]
            else:
                if not self._live:
                    self.progress.start()
                    self._live = True
                total = event.total or None
                if task is None:
                    arrow = "pull" if event.direction == "pull" else "push"
                    self._tasks[key] = self.progress.add_task(
                        f"{arrow} {short(event.digest)}", total=total, completed=event.done
                    )
                else:
                    self.progress.update(task, completed=event.done, total=total)
        if seconds is not None:
            self.writer.log(blob_record(event, seconds))

    def close(self) -> None:
        with self._lock:
            if self._live:
                self.progress.stop()
                self._live = False


def make_progress(writer: LogWriter, interactive: bool) -> ProgressView:
    if interactive and writer.fmt != "json":
        return LiveProgress(writer)
    return PlainProgress(writer)
