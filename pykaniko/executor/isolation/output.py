"""A RUN's output, pumped line by line from its pipe to the build's events."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

__all__ = ["Forward", "start_pump"]

log = logging.getLogger(__name__)


class Forward:
    """Hands lines to ``output`` until it fails once, then drops them: a broken consumer
    must never stall a RUN."""

    def __init__(self, output: Callable[[bytes], None] | None) -> None:
        self._output = output

    def __call__(self, line: bytes) -> None:
        if self._output is None:
            return
        try:
            self._output(line)
        except Exception:
            log.debug("output callback failed; RUN output is no longer forwarded")
            self._output = None


def _pump(fd: int, emit: Callable[[bytes], None]) -> None:
    """Forward output line by line; keep draining whatever ``emit`` does, so a RUN never
    blocks on a full pipe."""
    pending = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            emit(line + b"\n")
    if pending:
        emit(pending)


def start_pump(fd: int, emit: Callable[[bytes], None]) -> threading.Thread:
    """Read ``fd`` to its end in a daemon thread, each line (newline kept) to ``emit``."""
    reader = threading.Thread(target=_pump, args=(fd, emit), name="run-output", daemon=True)
    reader.start()
    return reader
