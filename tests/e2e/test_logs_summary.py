"""What a CI job and a log collector see: JSON logs a script can follow (every step,
layer and push), the closing summary in text and in ``--summary-file``, and the same
events through the library."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import run_pykaniko
from tests.support.readers import skopeo_inspect
from tests.support.registry import RegistryServer

pytestmark = [pytest.mark.e2e, pytest.mark.root]

DOCKERFILE = """\
FROM {base} AS tests
RUN echo never-run
FROM {base} AS build
RUN echo compiling && echo artefact > /artefact
FROM {base}
COPY --from=build /artefact /artefact
ENV MODE=production
RUN echo hello > /hello
"""


def _context(tmp_path: Path, base: str) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE.format(base=base))
    return ctx


def test_json_log_and_summary_file_describe_the_build(
    busybox_image: str, registry: RegistryServer, tmp_path: Path, kaniko_dir: Path
) -> None:
    ctx = _context(tmp_path, busybox_image)
    dests = [f"{registry.host}/e2e/logs:1", f"{registry.host}/e2e/logs:latest"]
    summary_file = tmp_path / "summary.json"
    args = [
        "--context", str(ctx), "--destination", dests[0], "--destination", dests[1],
        "--insecure", "--insecure-pull", "--kaniko-dir", str(kaniko_dir),
        "--skip-unused-stages", "--cache=true", "--cache-repo", f"{registry.host}/e2e/logs-cache",
        "--log-format=json", f"--summary-file={summary_file}",
    ]  # fmt: skip
    result = run_pykaniko(args)
    assert result.status == 0, result.stderr
    assert result.stdout == ""
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert all({"level", "msg", "time"} <= r.keys() for r in records)

    steps = [(r["stage"], r["step"], r["instruction"]) for r in records if r.get("event") == "step"]
    assert steps == [
        (1, 1, "RUN echo compiling && echo artefact > /artefact"),
        (2, 1, "COPY --from=build /artefact /artefact"),
        (2, 2, "ENV MODE=production"),
        (2, 3, "RUN echo hello > /hello"),
    ]
    done = {(r["stage"], r["step"]) for r in records if r.get("event") == "step_done"}
    assert done == {(s, n) for s, n, _ in steps}
    output = [r for r in records if r.get("event") == "output"]
    assert ("compiling", 1, 1) in [(r["msg"], r["stage"], r["step"]) for r in output]
    misses = [(r["stage"], r["step"]) for r in records if r.get("cache") == "miss"]
    assert misses == [(1, 1), (2, 3)]
    pushed = [r["reference"] for r in records if r.get("event") == "pushed"]
    assert pushed == dests
    skipped = [r for r in records if r.get("event") == "stage_skipped"]
    assert [(r["stage_name"], r["steps"]) for r in skipped] == [("tests", 1)]

    manifest = skopeo_inspect(dests[0], raw=True)
    image_layers = [(x["digest"], x["size"]) for x in manifest["layers"]]
    made = {r["digest"]: r for r in records if r.get("event") == "layer"}
    assert all(d in made for d, _ in image_layers[1:])  # every layer above the base
    assert all(made[d]["size"] == size for d, size in image_layers[1:])

    summary = json.loads(summary_file.read_text())
    built = [r["digest"] for r in records if r.get("event") == "built"]
    assert [summary["digest"]] == built
    assert [(x["digest"], x["size"]) for x in summary["layers"]] == image_layers
    assert [x["origin"] for x in summary["layers"]] == ["base", "built", "built"]
    assert summary["size"] == sum(size for _, size in image_layers)
    assert summary["steps"] == {"run": 4, "cached": 0, "skipped": 1}
    assert summary["pushed"] == dests
    assert summary["phases"]["push"] > 0
    assert summary["phases"]["resolve"] > 0
    assert len(summary["step_times"]) == 4
    last = [r for r in records if r.get("event") == "summary"]
    assert last[-1]["digest"] == summary["digest"]

    # the same build again: both RUN layers come from the cache, in text this time
    again = run_pykaniko([a for a in args if not a.startswith(("--log-format", "--summary"))])
    assert again.status == 0, again.stderr
    assert "Build summary" in again.stderr
    assert "steps         2 run, 2 cached, 1 skipped" in again.stderr
    assert again.stdout == ""  # nothing ran, so no RUN output
