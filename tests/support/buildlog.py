"""Reading pykaniko's log: which RUN steps ran, and which came from the cache.

The log reports every step as ``[n/total] INSTRUCTION`` after ``Building stage S``, and
the cache's answer for it, while the step runs, as ``Using cached layer ...`` (or
``Using the cached result ...`` for a step that made no layer) or ``No cached layer
...``; a RUN step ran unless a hit follows its line.
"""

from __future__ import annotations

import re

__all__ = ["cache_hits", "runs_executed"]

_STAGE = re.compile(r"Building stage (\d+)")
_STEP = re.compile(r"\[(\d+)/\d+\] (\S+)")
_HIT = re.compile(r"Using (?:cached layer|the cached result) ")


def _steps(log: str) -> list[tuple[int, int, str, bool]]:
    """(stage, step, instruction word, hit) for every step line, in order."""
    stage = 0
    out: list[tuple[int, int, str, bool]] = []
    for line in log.splitlines():
        if m := _STAGE.search(line):
            stage = int(m.group(1))
        elif m := _STEP.search(line):
            out.append((stage, int(m.group(1)), m.group(2), False))
        elif _HIT.search(line) and out:
            out[-1] = (*out[-1][:3], True)
    return out


def cache_hits(log: str) -> set[tuple[int, int]]:
    """(stage, step) of every cache hit."""
    return {(stage, step) for stage, step, _word, hit in _steps(log) if hit}


def runs_executed(log: str) -> set[tuple[int, int]]:
    """(stage, step) of every RUN step that ran."""
    return {(stage, step) for stage, step, word, hit in _steps(log) if word == "RUN" and not hit}
