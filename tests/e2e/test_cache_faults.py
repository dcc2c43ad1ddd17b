"""A bad cache is a miss, never a failed build: damaged entries (a deleted, a truncated
and a corrupted layer blob) in the cache registry, a cache registry answering 500, one
that is down. And four builds of different Dockerfiles sharing one cache at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, run_pykaniko
from tests.support.buildlog import cache_hits, runs_executed
from tests.support.imagediff import diff_images, snapshot_image
from tests.support.readers import run_tool
from tests.support.registry import RegistryServer, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.root]

FOUR_RUNS = "FROM {base}\n" + "".join(
    f"RUN echo {word} > /{word}\n" for word in ("one", "two", "three", "four")
)


def _build(ctx: Path, dest: str, cache: str, kaniko_dir: Path) -> str:
    result = run_pykaniko(
        [
            "--context", str(ctx), "--dockerfile", str(ctx / "Dockerfile"),
            "--destination", dest, "--insecure", "--insecure-pull",
            "--cache=true", "--cache-repo", cache, "--kaniko-dir", str(kaniko_dir),
        ]
    )  # fmt: skip
    assert result.status == 0, result.stderr
    return result.stderr


def _warnings(log: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith("WARN")]


def _blob_data(server: RegistryServer, digest: str) -> Path:
    hexpart = digest.removeprefix("sha256:")
    return server.storage / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data"


def _layer_of(ref: str) -> str:
    manifest = json.loads(run_tool(["skopeo", "inspect", "--raw", "--tls-verify=false",
                                    f"docker://{ref}"]))  # fmt: skip
    return str(manifest["layers"][0]["digest"])


@pytest.fixture
def cache_registry(tmp_path: Path) -> Iterator[RegistryServer]:
    """A registry of its own, so damaging its blobs leaves the destination's alone."""
    server = RegistryServer(tmp_path / "cache-registry")
    try:
        yield server
    finally:
        server.stop()


def test_damaged_entries_are_misses(
    busybox_image: str,
    registry: RegistryServer,
    cache_registry: RegistryServer,
    tmp_path: Path,
    kaniko_dir: Path,
) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(FOUR_RUNS.format(base=busybox_image))
    cache = f"{cache_registry.host}/cache/four"
    cold = _build(ctx, f"{registry.host}/e2e/damaged:1", cache, kaniko_dir)
    keys = [line.split("for key ")[1][:12] for line in cold.splitlines() if "No cached" in line]
    assert len(keys) == 4
    tags = json.loads(run_tool(["skopeo", "list-tags", "--tls-verify=false",
                                f"docker://{cache}"]))["Tags"]  # fmt: skip
    full = [next(t for t in tags if t.startswith(k)) for k in keys]
    deleted, truncated, corrupted = (
        _blob_data(cache_registry, _layer_of(f"{cache}:{k}")) for k in full[:3]
    )
    deleted.unlink()
    truncated.write_bytes(truncated.read_bytes()[:-20])
    flipped = bytearray(corrupted.read_bytes())
    flipped[len(flipped) // 2] ^= 0xFF
    corrupted.write_bytes(bytes(flipped))

    warm = _build(ctx, f"{registry.host}/e2e/damaged:2", cache, kaniko_dir)
    assert runs_executed(warm) == {(0, 1), (0, 2), (0, 3)}
    assert cache_hits(warm) == {(0, 4)}
    warnings = _warnings(warm)
    for key in full[:3]:  # one warning per entry, naming it
        assert sum(f"{cache}:{key}" in w for w in warnings) == 1, warnings
    # (besides them, only the registry client's notices of its own retries)
    assert len([w for w in warnings if "cache entry" in w]) == 3, warnings
    first = snapshot_image(f"{registry.host}/e2e/damaged:1")
    assert diff_images(first, snapshot_image(f"{registry.host}/e2e/damaged:2")) == []

    healed = _build(ctx, f"{registry.host}/e2e/damaged:3", cache, kaniko_dir)
    assert runs_executed(healed) == set()
    assert not _warnings(healed)


class _Failing(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _fail(self) -> None:
        body = b'{"errors":[{"code":"UNKNOWN","message":"broken"}]}'
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _fail

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.parametrize("fault", ["500", "down"])
def test_broken_cache_registry_is_a_miss(
    fault: str, busybox_image: str, registry: RegistryServer, tmp_path: Path, kaniko_dir: Path
) -> None:
    server: ThreadingHTTPServer | None = None
    if fault == "500":
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        host = f"127.0.0.1:{server.server_address[1]}"
    else:
        host = f"127.0.0.1:{free_port()}"  # nobody listens there
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(FOUR_RUNS.format(base=busybox_image))
    try:
        log = _build(ctx, f"{registry.host}/e2e/broken-cache:{fault}", f"{host}/cache", kaniko_dir)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
    assert len(runs_executed(log)) == 4
    warnings = _warnings(log)
    assert sum("is unusable" in w for w in warnings) == 4, warnings
    assert sum("cache push" in w for w in warnings) == 1, warnings
    image = snapshot_image(f"{registry.host}/e2e/broken-cache:{fault}")
    assert image.files["/four"].size == len("four\n")


@pytest.mark.parametrize("store", ["registry", "oci"])
def test_four_builds_share_one_cache_at_once(
    store: str, busybox_image: str, registry: RegistryServer, tmp_path: Path
) -> None:
    """Different Dockerfiles with a common first step (one key pushed by four builds at
    once), cold then warm, all in parallel processes."""
    cache = f"{registry.host}/e2e/shared-cache" if store == "registry" else f"oci:{tmp_path}/c"
    contexts = []
    for n in range(4):
        ctx = tmp_path / f"ctx{n}"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(
            f"FROM {busybox_image}\nRUN echo common > /common\nWORKDIR /w{n % 2}\n"
            f"RUN echo {n} > n\nRUN seq {n + 1} > seq\n"
        )
        contexts.append(ctx)

    def start(n: int, round_: int) -> subprocess.Popen[str]:
        ctx = contexts[n]
        return subprocess.Popen(
            [sys.executable, "-m", "pykaniko", "--context", str(ctx),
             "--destination", f"{registry.host}/e2e/shared-{store}-{n}:{round_}",
             "--insecure", "--insecure-pull", "--cache=true", "--cache-repo", cache,
             "--kaniko-dir", str(tmp_path / f"k{n}")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT,
            env={**os.environ},
        )  # fmt: skip

    for round_ in (1, 2):
        procs = [start(n, round_) for n in range(4)]
        logs = [p.communicate(timeout=600)[1] for p in procs]
        assert [p.returncode for p in procs] == [0] * 4, logs
        assert not any(_warnings(log) for log in logs), logs
        if round_ == 2:
            assert [runs_executed(log) for log in logs] == [set()] * 4, logs
    for n in range(4):
        image = snapshot_image(f"{registry.host}/e2e/shared-{store}-{n}:2")
        assert image.files["/common"].size == len("common\n")
        assert image.files[f"/w{n % 2}/n"].size == len(f"{n}\n")
        assert image.files[f"/w{n % 2}/seq"].size == len("".join(f"{i}\n" for i in range(1, n + 2)))
