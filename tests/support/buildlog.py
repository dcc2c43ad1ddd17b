"""Reading pykaniko's log: which RUN steps ran, and which came from the cache.

The executor reports every step as ``[n/total] INSTRUCTION`` after ``Building stage S``,
and a cache answer as ``cache hit for stage S step n (key ...)``; a RUN step ran unless
a hit names it.
"""

from __future__ import annotations

import re

__all__ = ["cache_hits", "runs_executed"]

_STAGE = re.compile(r"Building stage (\d+)")
_STEP = re.compile(r"\[(\d+)/\d+\] (\S+)")
_HIT = re.compile(r"cache hit for stage (\d+) step (\d+) ")


def cache_hits(log: str) -> set[tuple[int, int]]:
    """(stage, step) of every cache hit."""
    return {(int(m.group(1)), int(m.group(2))) for m in _HIT.finditer(log)}


def runs_executed(log: str) -> set[tuple[int, int]]:
    """(stage, step) of every RUN step that ran."""
    stage = 0
    runs: set[tuple[int, int]] = set()
    for line in log.splitlines():
        if m := _STAGE.search(line):
            stage = int(m.group(1))
        elif (m := _STEP.search(line)) and m.group(2) == "RUN":
            runs.add((stage, int(m.group(1))))
    return runs - cache_hits(log)
