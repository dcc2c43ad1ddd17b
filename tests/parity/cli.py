"""Run the pykaniko CLI the way a user does (``python -m pykaniko``), in a child
process, so the parity tests see exactly what users get."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Final

__all__ = ["REPO_ROOT", "run_pykaniko"]

REPO_ROOT: Final = Path(__file__).resolve().parents[2]


def run_pykaniko(
    context: Path,
    dockerfile: Path,
    destination: str,
    *,
    kaniko_dir: Path,
    build_args: Mapping[str, str] | None = None,
    target: str | None = None,
    timeout: float = 300,
) -> None:
    """Build and push ``destination`` over plain HTTP; AssertionError with the CLI's
    output when it fails."""
    argv = [
        sys.executable,
        "-m",
        "pykaniko",
        "--context",
        str(context),
        "--dockerfile",
        str(dockerfile),
        "--destination",
        destination,
        "--insecure",
        "--insecure-pull",
        "--kaniko-dir",
        str(kaniko_dir),
        "--log-format",
        "text",
    ]
    for name, value in (build_args or {}).items():
        argv += ["--build-arg", f"{name}={value}"]
    if target is not None:
        argv += ["--target", target]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(
        argv,
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"pykaniko exited {proc.returncode}: {' '.join(argv)}\n"
            f"stderr:\n{proc.stderr[-4000:]}\nstdout:\n{proc.stdout[-2000:]}"
        )
