"""``pykaniko bench`` as an installed user runs it: one build per mode in its own
process, a table with time, memory and layers, and where the modes' images differ."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import run_pykaniko
from tests.support.readers import skopeo_inspect
from tests.support.registry import RegistryServer

pytestmark = [pytest.mark.e2e, pytest.mark.root]


def test_bench_compares_modes_and_finds_what_time_mode_misses(
    busybox_image: str, registry: RegistryServer, tmp_path: Path
) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM {busybox_image}\n"
        "RUN mkdir /data && echo a > /data/a && echo b > /data/b\n"
        "RUN chmod 600 /data/b\n"  # a metadata-only change: time mode cannot see it
    )
    results = tmp_path / "bench.json"
    dest = f"{registry.host}/e2e/bench:1"
    out = run_pykaniko(
        [
            "bench", "--modes", "full,time", "--json", str(results), "--scratch", str(tmp_path),
            "--", "--context", str(ctx), "--destination", dest, "--insecure", "--insecure-pull",
        ]
    )  # fmt: skip
    assert out.status == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:4] == ["mode", "wall", "s", "ratio"]
    full = next(x for x in lines if x.startswith("full "))
    time_ = next(x for x in lines if x.startswith("time "))
    assert full.endswith("reference")
    assert time_.endswith("DIFFERS")
    assert (
        "  time: stage 0 step 2 (RUN chmod 600 /data/b): only full made a layer: /data, /data/b"
        in lines
    )
    data = json.loads(results.read_text())
    assert [d["mode"] for d in data] == ["full", "time"]
    for d in data:
        assert d["status"] == 0
        assert d["max_rss_mb"] > 10
        assert d["wall"] >= d["summary"]["seconds"] > 0
    assert [len(d["summary"]["layers"]) for d in data] == [3, 2]
    # each mode pushed its own tag; the scratch directory is gone
    assert skopeo_inspect(f"{dest}-full")["Digest"] == data[0]["summary"]["digest"]
    assert skopeo_inspect(f"{dest}-time")["Digest"] == data[1]["summary"]["digest"]
    assert [p for p in tmp_path.iterdir() if p.name.startswith("pykaniko-bench-")] == []
