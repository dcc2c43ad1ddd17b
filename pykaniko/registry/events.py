"""What the registry client tells its caller while it works: one-line notices (retries,
fallbacks) and per-blob transfer progress. Plain values and callables; this package
never prints or logs."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "BAD_BLOB_CODES",
    "Direction",
    "Notify",
    "Progress",
    "ProgressMeter",
    "ProgressSink",
    "is_bad_blob",
]

Notify = Callable[[str], None]
"""Receives one-line notices (retries, mirror fallbacks) for the caller to log."""

Direction = Literal["pull", "push"]

BROKEN_BODY: Final = "registry-broken-body"
DIGEST_MISMATCH: Final = "registry-digest-mismatch"
BAD_BLOB_CODES: Final = frozenset({BROKEN_BODY, DIGEST_MISMATCH})
"""Error codes of a blob (or manifest) that stayed truncated or wrong after every
retry: a layer-cache reader takes them as a miss rather than a failed build."""


def is_bad_blob(exc: BaseException) -> bool:
    """Whether ``exc`` is a registry error for content that kept arriving wrong."""
    return getattr(exc, "code", None) in BAD_BLOB_CODES


@dataclass(frozen=True, slots=True)
class Progress:
    """One blob's transfer: ``done`` of ``total`` bytes (``total`` is 0 when unknown).

    A transfer reports ``done=0`` when it starts, then at most every ``interval`` of
    its meter, and once with ``finished=True`` (also when it failed: ``ok=False``).
    A retried download may report ``done`` going back when it has to start over.
    """

    direction: Direction
    digest: str
    done: int
    total: int
    finished: bool = False
    ok: bool = True
    repository: str = ""


ProgressSink = Callable[[Progress], None]


class ProgressMeter:
    """Counts one transfer's bytes and calls the sink, throttled in time.

    ``add`` is a counter increment and one clock read per chunk (a chunk is 1 MiB on
    downloads, 8-64 KiB on uploads); no meter at all is made when there is no sink.
    """

    __slots__ = ("_next", "_sink", "digest", "direction", "done", "interval", "repository", "total")

    def __init__(
        self,
        sink: ProgressSink,
        direction: Direction,
        digest: str,
        total: int,
        *,
        repository: str = "",
        interval: float = 0.2,
    ) -> None:
        self._sink = sink
        self.direction: Direction = direction
        self.digest = digest
        self.total = total
        self.repository = repository
        self.interval = interval
        self.done = 0
        self._next = time.monotonic() + interval
        self._emit(finished=False)

    def _emit(self, *, finished: bool, ok: bool = True) -> None:
        self._sink(
            Progress(
                self.direction, self.digest, self.done, self.total, finished, ok, self.repository
            )
        )

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self.interval
            self._emit(finished=False)

    def restart(self, done: int = 0) -> None:
        """The transfer starts over (or resumes) at ``done`` bytes."""
        self.done = done

    def finish(self, *, ok: bool = True) -> None:
        self._emit(finished=True, ok=ok)
