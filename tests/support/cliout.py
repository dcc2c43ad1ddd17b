"""Checks on what the ``pykaniko`` command printed: no Python traceback, no host path of
the build's work directory (``/kaniko/build-…``, its ``stages/N/rootfs`` and blob-store
temp files), no secret value. Every fault-injection test runs its output through
:func:`assert_clean_output`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

__all__ = ["assert_clean_output", "output_problems"]

_WORK_DIR = re.compile(r"build-[A-Za-z0-9_]{8}(?:/|\b)")


def output_problems(
    text: str, *, kaniko_dirs: Iterable[Path] = (), secrets: Iterable[str] = ()
) -> list[str]:
    """What is wrong with ``text`` (empty when nothing is)."""
    problems: list[str] = []
    if "Traceback (most recent call last)" in text:
        problems.append("a Python traceback")
    for line in text.splitlines():
        if "/kaniko/build-" in line or _WORK_DIR.search(line):
            problems.append(f"a work-dir path: {line.strip()[:200]}")
        for root in kaniko_dirs:
            if f"{root}/build-" in line or f"{root.resolve()}/build-" in line:
                problems.append(f"a work-dir path: {line.strip()[:200]}")
        if "/stages/" in line and "/rootfs" in line:
            problems.append(f"a stage rootfs path: {line.strip()[:200]}")
    for value in secrets:
        if value and value in text:
            problems.append("a secret value")
    return problems


def assert_clean_output(
    text: str, *, kaniko_dirs: Iterable[Path] = (), secrets: Iterable[str] = ()
) -> None:
    problems = output_problems(text, kaniko_dirs=kaniko_dirs, secrets=secrets)
    assert not problems, "the output holds " + "; ".join(problems) + f"\n---\n{text[-3000:]}"
