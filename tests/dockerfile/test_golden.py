"""Golden files: each case's parse dump and plan must match ``expected.txt``.

Set ``PYKANIKO_UPDATE_GOLDEN=1`` to rewrite the expected files, then review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.dockerfile.golden import CASES, ERRORS, error_of, render_case

UPDATE = os.environ.get("PYKANIKO_UPDATE_GOLDEN") == "1"


def _cases(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if (p / "Dockerfile").exists())


@pytest.mark.parametrize("case", _cases(CASES), ids=lambda p: p.name)
def test_case(case: Path) -> None:
    actual = render_case(case)
    expected_path = case / "expected.txt"
    if UPDATE:
        expected_path.write_text(actual)
    assert expected_path.exists(), f"run with PYKANIKO_UPDATE_GOLDEN=1 to create {expected_path}"
    assert actual == expected_path.read_text()


@pytest.mark.parametrize("case", _cases(ERRORS), ids=lambda p: p.name)
def test_error(case: Path) -> None:
    actual = error_of(case)
    assert actual, "expected a DockerfileError"
    expected_path = case / "expected_error.txt"
    if UPDATE:
        expected_path.write_text(actual)
    assert actual == expected_path.read_text()
