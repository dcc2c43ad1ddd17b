"""The layer cache end to end: ``--cache=true --cache-repo``: RUN layers come back from
the cache repository, a changed COPY source re-keys every later step, lookups go on
after a miss, and no secret reaches a cache image."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import run_pykaniko
from tests.support.readers import skopeo_inspect
from tests.support.registry import RegistryServer

pytestmark = [pytest.mark.e2e, pytest.mark.root]

SECRET = "cache-secret-value-9f2"


def _build(ctx: Path, dest: str, cache_repo: str, kaniko_dir: Path, *extra: str) -> str:
    result = run_pykaniko(
        [
            "--context", str(ctx), "--dockerfile", str(ctx / "Dockerfile"),
            "--destination", dest, "--insecure", "--insecure-pull",
            "--cache=true", "--cache-repo", cache_repo, "--kaniko-dir", str(kaniko_dir),
            *extra,
        ]
    )  # fmt: skip
    assert result.status == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr
    return result.stderr


def test_run_layers_come_from_the_cache(
    busybox_image: str, registry: RegistryServer, tmp_path: Path, kaniko_dir: Path
) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "input.txt").write_text("v1\n")
    secret = tmp_path / "secret"
    secret.write_text(SECRET)
    (ctx / "Dockerfile").write_text(
        f"FROM {busybox_image}\n"
        "RUN true\n"  # an empty layer: never cached, so the next lookup follows a miss
        "RUN --mount=type=secret,id=s cat /run/secrets/s | wc -c > /len && date +%s%N > /stamp1\n"
        "COPY input.txt /input.txt\n"
        "RUN cat /input.txt > /copy && date +%s%N > /stamp2\n"
    )
    cache = f"{registry.host}/e2e/cache-layers"
    secret_flag = ("--secret", f"id=s,src={secret}")
    _build(ctx, f"{registry.host}/e2e/cached:1", cache, kaniko_dir, *secret_flag)
    first = skopeo_inspect(f"{registry.host}/e2e/cached:1")["Layers"]

    log = _build(ctx, f"{registry.host}/e2e/cached:2", cache, kaniko_dir, *secret_flag)
    second = skopeo_inspect(f"{registry.host}/e2e/cached:2")["Layers"]
    assert second == first, "a fully cached rebuild reuses every layer"
    assert log.lower().count("using cached layer") == 2

    (ctx / "input.txt").write_text("v2\n")
    _build(ctx, f"{registry.host}/e2e/cached:3", cache, kaniko_dir, *secret_flag)
    third = skopeo_inspect(f"{registry.host}/e2e/cached:3")["Layers"]
    assert third[:2] == first[:2]  # base and the first RUN: still cached
    assert third[2] != first[2]  # the COPY changed
    assert third[3] != first[3]  # so the RUN after it was run again

    tags = subprocess.run(
        ["skopeo", "list-tags", "--tls-verify=false", f"docker://{cache}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert tags.count('"') >= 6  # three cache images (the empty RUN is not cached)
    raw = tmp_path / "cache-image"
    raw.mkdir()
    for tag in [t.strip().strip('",') for t in tags.splitlines() if len(t.strip()) > 60]:
        out = raw / tag
        subprocess.run(
            ["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{cache}:{tag}",
             f"dir:{out}"],
            check=True,
        )  # fmt: skip
        for blob in out.iterdir():
            data = blob.read_bytes()
            if data[:2] == b"\x1f\x8b":
                import gzip

                data = gzip.decompress(data)
            assert SECRET.encode() not in data
