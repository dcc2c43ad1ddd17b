"""``main``: subcommand dispatch, and the build command's logs, summary and exit codes.

Exit codes: 0 built; 1 a pykaniko error (bad flag, Dockerfile, registry...); a failing
RUN's own status; 130 interrupted or cancelled; 128+N stopped by signal N; 70 a bug.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pykaniko.cli.flags import parse_args
from pykaniko.errors import ConfigError, PykanikoError, RegistryError

if TYPE_CHECKING:
    from pykaniko.cli.logs import LogWriter

__all__ = ["main"]

log = logging.getLogger("pykaniko")


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    env = dict(os.environ)
    if args[:1] == ["version"]:
        args = ["--version"]
    if args[:1] == ["warmer"]:
        from pykaniko.cli.warmer import warmer_main

        return warmer_main(args[1:], env)
    if args[:1] == ["bench"]:
        from pykaniko.cli.bench import bench_main

        return bench_main(args[1:], env)
    return build_main(args, env)


def _error_line(err: PykanikoError) -> str:
    line = str(err)
    if isinstance(err, RegistryError) and err.registry and err.registry not in line:
        line = f"{line} (registry {err.registry})"
    return line


def _report(err: PykanikoError, writer: LogWriter | None) -> int:
    _fail(_error_line(err), writer, code=err.code, hint=err.hint)
    return err.exit_status


def _fail(line: str, writer: LogWriter | None, *, code: str, hint: str | None = None) -> None:
    """One line on stderr: ``error: ...``, or a record in the text and JSON formats."""
    if writer is not None and writer.fmt != "color":
        from pykaniko.cli.logs import Record

        fields = {"event": "error", "code": code, "hint": hint}
        writer.log(Record(logging.ERROR, line, fields))
    else:
        print(f"error: {line}", file=sys.stderr)


def build_main(args: Sequence[str], env: Mapping[str, str]) -> int:
    """Parse Kaniko's flags, build, render events and the summary; the exit status."""
    debug = any(
        a in ("-v=debug", "--verbosity=debug", "-v=trace", "--verbosity=trace") for a in args
    )
    try:
        ns, options = parse_args(args, env)
    except PykanikoError as err:
        return _report(err, None)
    except SystemExit as exc:  # --help / --version
        return int(exc.code or 0)
    from pykaniko.api import build
    from pykaniko.cli.logs import LoggingBridge, LogWriter, level_number
    from pykaniko.cli.progress import is_interactive, make_progress
    from pykaniko.cli.render import EventRenderer, summary_lines, summary_record

    debug = debug or ns.verbosity in ("debug", "trace")
    interactive = is_interactive(sys.stdout, sys.stderr, env)
    writer = LogWriter(
        ns.log_format,
        level=level_number(ns.verbosity),
        timestamps=ns.log_timestamp,
        color=sys.stderr.isatty() and not env.get("NO_COLOR"),
        err=sys.stderr,
        out=sys.stdout,
    )
    bridge = LoggingBridge(writer)
    log.addHandler(bridge)
    log.setLevel(writer.level)
    log.propagate = False
    progress = make_progress(writer, interactive)
    previous = {sig: signal.signal(sig, _terminate) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        try:
            result = build(options, on_event=EventRenderer(writer, progress), env=env)
        finally:
            progress.close()
        if options.dry_run:
            print(result.plan_text, end="" if result.plan_text.endswith("\n") else "\n")
        elif result.summary is not None:
            if writer.fmt == "color":
                for line in summary_lines(result.summary):
                    writer.emit(line, writer.err)
            else:
                writer.log(summary_record(result.summary, nested=writer.fmt == "json"))
            if ns.summary_file:
                _write_summary(Path(ns.summary_file), result.summary.to_dict())
    except PykanikoError as err:
        if debug:
            log.exception("build failed")
        return _report(err, writer)
    except KeyboardInterrupt:
        _fail("interrupted", writer, code="interrupted")
        return 130
    except _Terminated as exc:
        _fail(f"stopped by signal {exc.signum}", writer, code="terminated")
        return 128 + exc.signum
    except Exception as exc:  # a bug of ours: one line, the traceback only when asked
        if debug:
            log.exception("internal error")
        _fail(f"internal error: {type(exc).__name__}: {exc}", writer, code="internal")
        return 70
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.removeHandler(bridge)
    return 0


def _write_summary(path: Path, data: Mapping[str, object]) -> None:
    try:
        path.write_text(json.dumps(data, indent=2) + "\n")
    except OSError as exc:
        raise ConfigError(f"--summary-file={path}: cannot write it: {exc.strerror}") from exc


class _Terminated(BaseException):
    """SIGTERM/SIGHUP, raised in the main thread so every cleanup handler runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _terminate(signum: int, frame: object) -> None:
    del frame
    raise _Terminated(signum)
