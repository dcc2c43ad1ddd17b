"""Log lines in Kaniko's three formats, made from one description of each event.

:func:`describe` is the only place that says what an event means to a reader: a level,
a message and the structured fields. The formats only lay that out:

* ``color``: ``INFO[0004] message`` with the level coloured, as Kaniko's default
  (logrus' coloured text formatter); plain when the stream is not a terminal or
  ``NO_COLOR`` is set. ``--log-timestamp`` puts the wall-clock time in the brackets.
* ``text``: logrus' uncoloured text formatter, ``time="..." level=info msg="..."``
  followed by the event's fields as ``key=value``.
* ``json``: logrus' JSON formatter, one object per line with ``level``, ``msg`` and
  ``time`` (RFC 3339) plus the event's fields, so collectors that read Kaniko's JSON
  logs read these.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, TextIO

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

__all__ = [
    "LEVEL_NUMBERS",
    "LogFormat",
    "LogWriter",
    "Record",
    "describe",
    "human_size",
    "level_number",
    "plural",
    "short",
]

LogFormat = Literal["color", "text", "json"]

TRACE = 5
LEVEL_NUMBERS = {
    "panic": logging.CRITICAL,
    "fatal": logging.CRITICAL,
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": TRACE,
}
_NAMES = {  # logrus' level names, as they appear in JSON and text lines
    logging.CRITICAL: "fatal",
    logging.ERROR: "error",
    logging.WARNING: "warning",
    logging.INFO: "info",
    logging.DEBUG: "debug",
    TRACE: "trace",
}
_COLORS = {  # logrus: red for errors, yellow for warnings, blue for info, grey below
    logging.CRITICAL: "31",
    logging.ERROR: "31",
    logging.WARNING: "33",
    logging.INFO: "36",
    logging.DEBUG: "37",
    TRACE: "37",
}


def level_number(name: str) -> int:
    return LEVEL_NUMBERS.get(name.lower(), logging.INFO)


def _level_name(level: int) -> str:
    for number in sorted(_NAMES, reverse=True):
        if level >= number:
            return _NAMES[number]
    return "trace"


@dataclass(frozen=True, slots=True)
class Record:
    """One log line before formatting. ``quiet`` records carry data for machines (step
    durations, phase times) and are left out of the coloured human format."""

    level: int
    msg: str
    fields: Mapping[str, object] = field(default_factory=dict)
    quiet: bool = False


def short(digest: str) -> str:
    """``sha256:0123456789ab``: enough of a digest to recognise it in a log."""
    algo, _, hexpart = digest.partition(":")
    return f"{algo}:{hexpart[:12]}" if hexpart else digest[:19]


def human_size(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(size) < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def plural(count: int, noun: str) -> str:
    """``1 layer``, ``2 layers``, ``3 entries``."""
    if count == 1:
        return f"1 {noun}"
    return f"{count} {noun[:-1]}ies" if noun.endswith("y") else f"{count} {noun}s"


def _stage(index: int, name: str | None) -> str:
    return f"stage {index} ({name})" if name else f"stage {index}"


def describe(event: Event, *, step: int | None = None) -> Record | None:
    """What ``event`` says to a reader; ``step`` is the step running at the time (events
    that happen inside a step carry it as a field). ``None`` for progress ticks."""
    match event:
        case StageStarted(index=i, name=name, base=base):
            return Record(
                logging.INFO,
                f"Building {_stage(i, name)} from {base}",
                {"event": "stage", "stage": i, "stage_name": name, "base": base},
            )
        case StageSkipped(index=i, name=name, reason=reason, steps=steps):
            return Record(
                logging.INFO,
                f"Skipping {_stage(i, name)}: {reason}",
                {"event": "stage_skipped", "stage": i, "stage_name": name, "reason": reason,
                 "steps": steps},
            )  # fmt: skip
        case StepStarted(stage=stage, number=n, total=total, text=text):
            return Record(
                logging.INFO,
                f"[{n}/{total}] {text}",
                {"event": "step", "stage": stage, "step": n, "steps": total, "instruction": text},
            )
        case StepFinished(stage=stage, number=n, seconds=seconds):
            return Record(
                logging.INFO,
                f"Step {n} of stage {stage} done in {seconds:.2f}s",
                {"event": "step_done", "stage": stage, "step": n, "seconds": round(seconds, 3)},
                quiet=True,
            )
        case StepOutput(stage=stage, line=line):
            return Record(logging.INFO, line, {"event": "output", "stage": stage, "step": step})
        case CacheChecked(stage=stage, key=key, hit=hit, digest=digest):
            msg = (
                f"Using cached layer {short(digest)} for key {key[:12]}"
                if hit and digest
                else f"Using the cached result for key {key[:12]} (the step made no layer)"
                if hit
                else f"No cached layer for key {key[:12]}"
            )
            return Record(
                logging.INFO,
                msg,
                {"event": "cache", "stage": stage, "step": step, "cache": "hit" if hit else "miss",
                 "key": key, "digest": digest or None},
            )  # fmt: skip
        case LayerCreated(stage=stage, digest=digest, size=size, entries=n, seconds=seconds):
            return Record(
                logging.INFO,
                f"Layer {short(digest)}: {plural(n, 'entry')}, {human_size(size)}, {seconds:.2f}s",
                {"event": "layer", "stage": stage, "step": step, "digest": digest, "size": size,
                 "entries": n, "seconds": round(seconds, 3)},
            )  # fmt: skip
        case PhaseTimed(phase=phase, seconds=seconds, stage=stage, step=number, detail=detail):
            return Record(
                logging.DEBUG,
                f"{phase} {detail} took {seconds:.2f}s".replace("  ", " "),
                {"event": "phase", "phase": phase, "seconds": round(seconds, 3),
                 "stage": stage, "step": number if number is not None else step,
                 "detail": detail or None},
                quiet=True,
            )  # fmt: skip
        case ImagePushed(reference=ref, digest=digest):
            return Record(
                logging.INFO,
                f"Pushed {ref}@{digest}",
                {"event": "pushed", "reference": ref, "digest": digest},
            )
        case Notice(level=level, message=message):
            return Record(level_number(level), message, {"event": "notice"})
        case BuildFinished(digest=digest, seconds=seconds):
            return Record(
                logging.INFO,
                f"Built {digest} in {seconds:.1f}s",
                {"event": "built", "digest": digest, "seconds": round(seconds, 3)},
            )
        case BlobProgress():
            return None


def blob_record(event: BlobProgress, seconds: float) -> Record:
    """The one line a finished blob gets: size, time and rate (a transfer that broke
    off, to be retried, only at debug level)."""
    if not event.ok:
        return Record(
            logging.DEBUG,
            f"{event.direction.capitalize()} of {short(event.digest)} broke off after "
            f"{human_size(event.done)}",
            {"event": "blob_failed", "direction": event.direction, "digest": event.digest,
             "size": event.done, "seconds": round(seconds, 3)},
        )  # fmt: skip
    verb = "Pulled" if event.direction == "pull" else "Pushed"
    rate = f", {human_size(event.done / seconds)}/s" if seconds > 0.05 and event.done else ""
    return Record(
        logging.INFO,
        f"{verb} {short(event.digest)} ({human_size(event.done)} in {seconds:.1f}s{rate})",
        {"event": "blob", "direction": event.direction, "digest": event.digest,
         "size": event.done, "seconds": round(seconds, 3),
         "repository": event.repository or None},
    )  # fmt: skip


def _quote(value: object) -> str:
    """logrus' text quoting: bare when safe, else a Go-style quoted string."""
    text = value if isinstance(value, str) else json.dumps(value)
    if text and all(c.isalnum() or c in "-._/@^+:" for c in text):
        return text
    return json.dumps(text, ensure_ascii=False)


def _rfc3339(now: datetime) -> str:
    text = now.astimezone().isoformat(timespec="seconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class LogWriter:
    """Formats records and writes them; thread-safe. ``emit`` is where every line
    goes out, so a live progress display can put itself in between."""

    def __init__(
        self,
        fmt: LogFormat,
        *,
        level: int = logging.INFO,
        timestamps: bool = False,
        color: bool = False,
        err: TextIO,
        out: TextIO,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = datetime.now,
    ) -> None:
        self.fmt = fmt
        self.level = level
        self.timestamps = timestamps
        self.color = color and fmt == "color"
        self.err = err
        self.out = out
        self._clock = clock
        self._now = now
        self._started = clock()
        self._lock = threading.RLock()
        self.emit: Callable[[str, TextIO], None] = self._write

    def _write(self, line: str, stream: TextIO) -> None:
        with self._lock:
            stream.write(line + "\n")
            stream.flush()

    def enabled(self, level: int) -> bool:
        return level >= self.level

    def log(self, record: Record) -> None:
        if not self.enabled(record.level):
            return
        if self.fmt == "color" and record.quiet:
            return
        self.emit(self.format(record), self.err)

    def output(self, record: Record) -> None:
        """A RUN's output line: raw on stdout in the human formats (as Kaniko), a record
        like any other in JSON so the log stays one object per line."""
        if not self.enabled(record.level):
            return
        if self.fmt == "json":
            self.emit(self.format(record), self.err)
        else:
            self.emit(record.msg, self.out)

    def format(self, record: Record) -> str:
        name = _level_name(record.level)
        fields = {k: v for k, v in record.fields.items() if v is not None}
        if self.fmt == "json":
            data: dict[str, object] = {"level": name, "msg": record.msg, "time": self._stamp()}
            for key, value in fields.items():
                data[f"fields.{key}" if key in data else key] = value
            return json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        if self.fmt == "text":
            parts = [f"time={_quote(self._stamp())}", f"level={name}", f"msg={_quote(record.msg)}"]
            parts += [f"{k}={_quote(v)}" for k, v in sorted(fields.items())]
            return " ".join(parts)
        when = self._stamp() if self.timestamps else f"{int(self._clock() - self._started):04d}"
        tag = name.upper()[:4]
        if self.color:
            tag = f"\x1b[{_COLORS.get(_bucket(record.level), '37')}m{tag}\x1b[0m"
        return f"{tag}[{when}] {record.msg}"

    def _stamp(self) -> str:
        return _rfc3339(self._now())


def _bucket(level: int) -> int:
    for number in sorted(_COLORS, reverse=True):
        if level >= number:
            return number
    return TRACE


class LoggingBridge(logging.Handler):
    """Routes ``logging`` records of pykaniko's modules (sandbox warnings, debug
    traces) through the same writer, so every line has the chosen format."""

    def __init__(self, writer: LogWriter) -> None:
        super().__init__(level=logging.NOTSET)
        self.writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage()
            if record.exc_info and self.writer.enabled(logging.DEBUG):
                msg += "\n" + logging.Formatter().formatException(record.exc_info)
            self.writer.log(Record(record.levelno, msg, {"logger": record.name}))
        except Exception:  # a log line must never break a build
            self.handleError(record)
