"""Real OS errors for tests: a tiny tmpfs (ENOSPC), a read-only mount (EROFS), and a
child process without root's file-permission override (EACCES). Each needs root;
tests skip without it."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _mount(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount here ({proc.stderr.strip()})")


@contextlib.contextmanager
def tmpfs(size: str = "2m", *, read_only: bool = False, at: Path | None = None) -> Iterator[Path]:
    """A fresh tmpfs of ``size`` (mode 0755) on ``at`` (an existing directory) or a
    new one, unmounted (and the new directory removed) afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where = at or Path(tempfile.mkdtemp(prefix="pykaniko-fault-"))
    opts = f"size={size},mode=0755" + (",ro" if read_only else "")
    _mount(["mount", "-t", "tmpfs", "-o", opts, "pykaniko-fault", str(where)])
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
        if at is None:
            where.rmdir()


def run_without_dac(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -c code args`` as root without CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH: a mode-000 file or a 0700 directory of another owner gives a
    real EACCES, as it would for an ordinary user."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv")
    return subprocess.run(
        ["setpriv", "--bounding-set=-dac_override,-dac_read_search", sys.executable, "-c", code,
         *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=120,
    )  # fmt: skip
