"""The library example in ``examples/library`` runs as documented: a build whose
summary matches the pushed image, and a build cancelled mid-RUN from another thread
that stops at once and leaves no work directory and no process behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT
from tests.support.readers import skopeo_inspect
from tests.support.registry import RegistryServer

pytestmark = [pytest.mark.e2e, pytest.mark.root]

EXAMPLE = ROOT / "examples" / "library" / "embed.py"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *args],
        capture_output=True, text=True, timeout=300, check=False, cwd=ROOT,
    )  # fmt: skip


def _sleepers(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(int(entry.name))
    return found


def test_example_builds_and_reports_the_summary(
    busybox_image: str, registry: RegistryServer, tmp_path: Path
) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {busybox_image}\nRUN echo built > /built\n")
    dest = f"{registry.host}/e2e/embed:1"
    proc = _run("--context", str(ctx), "--destination", dest, "--insecure",
                "--work-dir", str(tmp_path / "work"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "stage 0 step 1/1: RUN echo built > /built" in proc.stdout
    summary = json.loads(proc.stdout[proc.stdout.index("{") :])
    layers = skopeo_inspect(dest, raw=True)["layers"]
    assert [x["digest"] for x in summary["layers"]] == [x["digest"] for x in layers]
    assert summary["steps"]["run"] == 1
    assert f"pushed {dest}@{summary['digest']}" in proc.stdout


def test_example_cancels_a_running_build(
    busybox_image: str, registry: RegistryServer, tmp_path: Path
) -> None:
    marker = f"{os.getpid() % 1000 + 311}"  # a sleep length unique to this test run
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM {busybox_image}\nRUN echo tests started && sleep {marker} && echo never\n"
    )
    work = tmp_path / "work"
    started = time.monotonic()
    proc = _run(
        "--context", str(ctx), "--destination", f"{registry.host}/e2e/embed:c", "--insecure",
        "--work-dir", str(work), "--cancel-on-output", "tests started",
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert proc.returncode == 130, proc.stdout + proc.stderr
    assert "cancelled: the build was cancelled" in proc.stderr
    assert "| never" not in proc.stdout
    assert elapsed < 60  # not the RUN's own length
    assert list(work.iterdir()) == []  # the build's directory was removed
    assert _sleepers(f"sleep\x00{marker}") == []
