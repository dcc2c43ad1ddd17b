"""Log formats: one description per event, laid out as Kaniko's logrus formatters do."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pykaniko.cli.logs import LoggingBridge, LogWriter, Record, describe, human_size, plural
from pykaniko.cli.progress import PlainProgress, is_interactive
from pykaniko.cli.render import EventRenderer
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

DIGEST = "sha256:" + "ab" * 32
NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)

EVERY_EVENT: list[Event] = [
    StageSkipped(0, "unused", "not needed by the target", 2),
    StageStarted(1, "app", "reg.example/base:1"),
    StepStarted(1, 1, 3, "RUN make"),
    StepOutput(1, "compiling..."),
    CacheChecked(1, "k" * 64, hit=False),
    LayerCreated(1, DIGEST, 2_500_000, 12, 0.5),
    StepFinished(1, 1, 1.25),
    StepStarted(1, 2, 3, "RUN make test"),
    CacheChecked(1, "c" * 64, hit=True, digest=DIGEST),
    PhaseTimed("push", 2.0, detail="reg.example/app:1"),
    BlobProgress("push", DIGEST, 10, 100),
    BlobProgress("push", DIGEST, 100, 100, finished=True),
    ImagePushed("reg.example/app:1", DIGEST),
    Notice("warning", "something odd"),
    BuildFinished(DIGEST, 5.5),
]


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def writer(fmt: str, **kw: object) -> tuple[LogWriter, io.StringIO, io.StringIO]:
    err, out = io.StringIO(), io.StringIO()
    w = LogWriter(fmt, err=err, out=out, clock=Clock(), now=lambda: NOW, **kw)  # type: ignore[arg-type]
    return w, err, out


def render(fmt: str, events: Sequence[Event], **kw: object) -> tuple[str, str]:
    w, err, out = writer(fmt, **kw)
    sink = EventRenderer(w, PlainProgress(w, clock=Clock()))
    for e in events:
        sink(e)
    return err.getvalue(), out.getvalue()


def test_json_is_one_logrus_object_per_line_with_the_structured_fields() -> None:
    err, out = render("json", EVERY_EVENT)
    assert out == ""  # RUN output is a record too, so the log stays parseable
    records = [json.loads(line) for line in err.splitlines()]
    assert all({"level", "msg", "time"} <= r.keys() for r in records)
    assert all(r["time"] == "2025-01-02T03:04:05Z" for r in records)
    by_event: dict[str, list[dict[str, object]]] = {}
    for r in records:
        by_event.setdefault(str(r["event"]), []).append(r)
    steps = by_event["step"]
    assert [(s["stage"], s["step"], s["steps"], s["instruction"]) for s in steps] == [
        (1, 1, 3, "RUN make"),
        (1, 2, 3, "RUN make test"),
    ]
    (layer,) = by_event["layer"]
    assert (layer["digest"], layer["size"], layer["entries"]) == (DIGEST, 2_500_000, 12)
    assert layer["step"] == 1
    assert [c["cache"] for c in by_event["cache"]] == ["miss", "hit"]
    assert by_event["cache"][1]["step"] == 2
    assert by_event["output"][0] == {**by_event["output"][0], "msg": "compiling...", "step": 1}
    assert by_event["step_done"][0]["seconds"] == 1.25
    assert by_event["blob"][0]["direction"] == "push"
    assert by_event["pushed"][0]["reference"] == "reg.example/app:1"
    assert by_event["notice"][0]["level"] == "warning"
    assert by_event["built"][0]["digest"] == DIGEST
    assert by_event["stage_skipped"][0]["steps"] == 2
    assert "phase" not in by_event  # debug level: hidden at the default verbosity


def test_json_field_names_never_shadow_logrus_keys() -> None:
    w, err, _ = writer("json")
    w.log(Record(logging.INFO, "m", {"msg": "x", "level": "y", "a": None}))
    record = json.loads(err.getvalue())
    assert record["msg"] == "m"
    assert record["fields.msg"] == "x"
    assert record["fields.level"] == "y"
    assert "a" not in record


def test_text_is_logrus_key_value() -> None:
    err, out = render("text", [StepStarted(0, 1, 2, 'RUN echo "hi"'), StepOutput(0, "hi")])
    line = err.splitlines()[0]
    assert line.startswith('time=2025-01-02T03:04:05Z level=info msg="[1/2] RUN echo \\"hi\\""')
    assert " event=step " in line
    assert line.endswith("stage=0 step=1 steps=2")
    assert out == "hi\n"  # RUN output stays raw on stdout, as Kaniko's


def test_color_lines_look_like_kaniko() -> None:
    err, _ = render("color", [StageStarted(0, None, "scratch"), Notice("warning", "w")])
    assert err.splitlines() == ["INFO[0000] Building stage 0 from scratch", "WARN[0000] w"]
    err, _ = render("color", [Notice("warning", "w")], color=True)
    assert err == "\x1b[33mWARN\x1b[0m[0000] w\n"
    err, _ = render("color", [Notice("info", "i")], timestamps=True)
    assert err == "INFO[2025-01-02T03:04:05Z] i\n"


def test_quiet_records_are_for_machines_only() -> None:
    finished = [StepFinished(0, 1, 0.5)]
    assert render("color", finished)[0] == ""
    assert "step_done" in render("json", finished)[0]
    assert "event=step_done" in render("text", finished)[0]


@pytest.mark.parametrize(
    ("level", "shown"),
    [
        (logging.ERROR, ["error"]),
        (logging.WARNING, ["warning", "error"]),
        (logging.INFO, ["info", "warning", "error"]),
        (logging.DEBUG, ["debug", "info", "warning", "error"]),
    ],
)
def test_verbosity_filters(level: int, shown: list[str]) -> None:
    w, err, _ = writer("json", level=level)
    for lvl in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR):
        w.log(Record(lvl, "m"))
    assert sorted(json.loads(x)["level"] for x in err.getvalue().splitlines()) == sorted(shown)


def test_debug_shows_phase_times() -> None:
    err, _ = render("json", [PhaseTimed("pull", 1.5, detail="busybox:1")], level=logging.DEBUG)
    record = json.loads(err)
    assert (record["level"], record["phase"], record["seconds"]) == ("debug", "pull", 1.5)


def test_python_logging_goes_through_the_same_writer() -> None:
    w, err, _ = writer("json")
    logger = logging.getLogger("pykaniko.test-bridge")
    bridge = LoggingBridge(w)
    logger.addHandler(bridge)
    logger.propagate = False
    try:
        logger.warning("sandbox says %s", "hi")
    finally:
        logger.removeHandler(bridge)
    record = json.loads(err.getvalue())
    assert (record["level"], record["msg"], record["logger"]) == (
        "warning",
        "sandbox says hi",
        "pykaniko.test-bridge",
    )


def test_every_event_is_described() -> None:
    for event in EVERY_EVENT:
        record = describe(event)
        assert record is not None or isinstance(event, BlobProgress)


def test_plain_progress_one_line_per_finished_blob() -> None:
    w, err, _ = writer("color")
    clock = Clock()
    progress = PlainProgress(w, clock=clock)
    progress.update(BlobProgress("pull", DIGEST, 0, 4_000_000))
    clock.t += 1
    progress.update(BlobProgress("pull", DIGEST, 2_000_000, 4_000_000))
    assert err.getvalue() == ""
    clock.t += 1
    progress.update(BlobProgress("pull", DIGEST, 4_000_000, 4_000_000, finished=True))
    assert err.getvalue() == "INFO[0000] Pulled sha256:abababababab (4.0 MB in 2.0s, 2.0 MB/s)\n"


def test_interactive_only_on_a_terminal_outside_ci() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert is_interactive(Tty(), Tty(), {})
    assert not is_interactive(Tty(), Tty(), {"CI": "true"})
    assert not is_interactive(Tty(), Tty(), {"TERM": "dumb"})
    assert not is_interactive(io.StringIO(), Tty(), {})


def test_sizes_and_plurals() -> None:
    assert [human_size(n) for n in (0, 999, 1000, 2_500_000, 3e9)] == [
        "0 B",
        "999 B",
        "1.0 kB",
        "2.5 MB",
        "3.0 GB",
    ]
    assert [plural(n, "layer") for n in (0, 1, 2)] == ["0 layers", "1 layer", "2 layers"]
    assert plural(3, "entry") == "3 entries"


def test_live_progress_draws_bars_and_logs_the_same_line_when_done() -> None:
    from pykaniko.cli.progress import LiveProgress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    err, out = Tty(), Tty()
    w = LogWriter("color", err=err, out=out, clock=Clock(), now=lambda: NOW)
    clock = Clock()
    progress = LiveProgress(w, clock=clock)
    sink = EventRenderer(w, progress)
    sink(StepStarted(0, 1, 1, "RUN x"))
    sink(BlobProgress("pull", DIGEST, 1_000_000, 4_000_000))
    sink(StepOutput(0, "output while a bar shows"))
    progress.progress.refresh()
    clock.t += 2
    sink(BlobProgress("pull", DIGEST, 4_000_000, 4_000_000, finished=True))
    progress.close()
    text = err.getvalue()
    assert "pull sha256:abababababab" in text  # the bar's label
    assert "output while a bar shows" in text  # scrolled above the bars
    assert "Pulled sha256:abababababab (4.0 MB in 2.0s, 2.0 MB/s)" in text
    assert out.getvalue() == ""


def test_json_errors_are_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pykaniko.cli import main

    (tmp_path / "Dockerfile").write_text("FROM scratch\nBOGUS x\n")
    argv = ["-c", str(tmp_path), "--no-push", "--kaniko-dir", str(tmp_path / "k")]
    assert main([*argv, "--log-format=json"]) == 1
    record = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert (record["level"], record["event"], record["code"]) == (
        "error",
        "error",
        "dockerfile-syntax",
    )
    assert record["msg"].startswith("Dockerfile:2: ")
    assert main(argv) == 1
    assert capsys.readouterr().err.startswith("error: Dockerfile:2: ")
