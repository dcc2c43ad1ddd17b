"""The layer cache end to end (``--cache=true --cache-repo``): a second build from a fresh
copy of the context (new mtimes, as a CI clone) runs no RUN and gives the same files;
one changed byte re-runs exactly the steps after it; ``--dry-run`` predicts hits;
``--cache-copy-layers`` with an ``oci:`` cache makes a warm build that unpacks nothing;
no secret reaches a cache image."""

from __future__ import annotations

import gzip
import io
import json
import re
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any, cast

import pytest

from tests.e2e.conftest import run_pykaniko
from tests.support.buildlog import cache_hits, runs_executed
from tests.support.imagediff import diff_images, snapshot_image
from tests.support.readers import run_tool
from tests.support.registry import RegistryServer

pytestmark = [pytest.mark.e2e, pytest.mark.root]

SECRET = "cache-secret-value-9f2"

DOCKERFILE = """\
FROM {base} AS build
RUN echo early > /early
WORKDIR /src
COPY app/ ./
ADD files.tar /opt/
RUN --mount=type=bind,source=extra.txt,target=/mnt/extra.txt cat /mnt/extra.txt > bound
RUN --mount=type=cache,target=/var/cache/x echo x > /var/cache/x/f && echo cached > c
RUN --mount=type=secret,id=s wc -c < /run/secrets/s > secret-len
RUN true

FROM {base} AS tools
RUN echo tool > /tool && mkdir /tooldir && echo x > /tooldir/x

FROM {base}
ENV GREETING=hi
RUN echo base > /b
WORKDIR /home/app
COPY --from=build /src/ ./
COPY --from=tools /tool /usr/local/bin/tool
COPY --chown=user:user extra.txt /var/spool/mail/
RUN --mount=type=bind,from=tools,source=/tooldir,target=/t cat /t/x > from-tools && ls > listing
USER 1000
RUN id > /tmp/whoami && echo $GREETING > /tmp/greeting
"""
# (stage, step) of the RUNs above. When warm, "tools" is all cache hits, so its files
# come from its layers alone (COPY --from and the bind mount unpack only what they
# read), and each COPY from the context unpacks only its destination (every later RUN
# hits), into an existing base directory, with --chown by name, for the last one.
RUNS = {(0, 1), (0, 5), (0, 6), (0, 7), (0, 8), (1, 1), (2, 2), (2, 7), (2, 9)}
AFTER_COPY = RUNS - {(0, 1), (1, 1), (2, 2)}


def _context(root: Path, base: str) -> Path:
    ctx = root / "ctx"
    (ctx / "app" / "lib").mkdir(parents=True)
    (ctx / "app" / "main.sh").write_text("echo main\n")
    (ctx / "app" / "lib" / "util.sh").write_text("echo util\n")
    (ctx / "extra.txt").write_text("extra\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"from the archive\n"
        info = tarfile.TarInfo("unpacked.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    (ctx / "files.tar").write_bytes(buf.getvalue())
    (ctx / "Dockerfile").write_text(DOCKERFILE.format(base=base))
    return ctx


def _fresh(ctx: Path, where: Path) -> Path:
    """A copy with new timestamps, as a CI job's clone."""
    if where.exists():
        shutil.rmtree(where)
    shutil.copytree(ctx, where, copy_function=shutil.copyfile)
    return where


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
    assert not [w for w in result.stderr.splitlines() if w.startswith("WARN")], result.stderr
    return result.stderr


def test_warm_rebuild_runs_nothing_and_one_byte_reruns_what_follows(
    busybox_image: str, registry: RegistryServer, tmp_path: Path, kaniko_dir: Path
) -> None:
    ctx = _context(tmp_path, busybox_image)
    secret = tmp_path / "secret"
    secret.write_text(SECRET)
    cache = f"{registry.host}/e2e/cache-layers"
    flags = ("--secret", f"id=s,src={secret}")

    cold = _build(ctx, f"{registry.host}/e2e/cached:1", cache, kaniko_dir, *flags)
    assert runs_executed(cold) == RUNS

    warm = _build(
        _fresh(ctx, tmp_path / "c2"), f"{registry.host}/e2e/cached:2", cache, kaniko_dir, *flags
    )
    assert runs_executed(warm) == set(), warm
    first = snapshot_image(f"{registry.host}/e2e/cached:1")
    second = snapshot_image(f"{registry.host}/e2e/cached:2")
    assert diff_images(first, second) == []
    assert second.files["/usr/local/bin/tool"].size == len("tool\n")
    assert second.files["/home/app/from-tools"].size == len("x\n")
    assert second.files["/var/spool/mail/extra.txt"].uid == 1000
    assert second.files["/etc/passwd"] == first.files["/etc/passwd"]

    dry = run_pykaniko(
        ["--context", str(ctx), "--dockerfile", str(ctx / "Dockerfile"), "--no-push",
         "--insecure-pull", "--cache=true", "--cache-repo", cache, "--dry-run",
         "--kaniko-dir", str(kaniko_dir)]
    )  # fmt: skip
    assert dry.status == 0, dry.stderr
    run_lines = [line for line in dry.stdout.splitlines() if re.match(r"\s+\d+: RUN ", line)]
    assert len(run_lines) == len(RUNS)
    assert all("[cache hit, key " in line for line in run_lines), dry.stdout

    changed = _fresh(ctx, tmp_path / "c3")
    (changed / "app" / "lib" / "util.sh").write_text("echo utiL\n")  # one byte
    third = _build(changed, f"{registry.host}/e2e/cached:3", cache, kaniko_dir, *flags)
    assert runs_executed(third) == AFTER_COPY
    assert {(0, 1), (0, 2), (1, 1), (2, 2), (2, 3)} <= cache_hits(third)  # RUNs and WORKDIRs before
    image = snapshot_image(f"{registry.host}/e2e/cached:3")
    assert (
        image.files["/home/app/lib/util.sh"].sha256 != first.files["/home/app/lib/util.sh"].sha256
    )


def test_no_secret_in_cache_images(
    busybox_image: str, registry: RegistryServer, tmp_path: Path, kaniko_dir: Path
) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    secret = tmp_path / "secret"
    secret.write_text(SECRET)
    (ctx / "Dockerfile").write_text(
        f"FROM {busybox_image}\n"
        "RUN --mount=type=secret,id=s,env=TOKEN echo ${#TOKEN} > /len\n"
        "RUN --mount=type=secret,id=s cat /run/secrets/s | wc -c > /len2\n"
    )
    cache = f"{registry.host}/e2e/cache-secret"
    _build(
        ctx, f"{registry.host}/e2e/secret:1", cache, kaniko_dir, "--secret", f"id=s,src={secret}"
    )
    tags = subprocess.run(
        ["skopeo", "list-tags", "--tls-verify=false", f"docker://{cache}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    keys = [t.strip().strip('",') for t in tags.splitlines() if len(t.strip()) > 60]
    assert len(keys) == 2
    for key in keys:
        out = tmp_path / key
        subprocess.run(
            ["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{cache}:{key}",
             f"dir:{out}"],
            check=True,
        )  # fmt: skip
        for blob in out.iterdir():
            data = blob.read_bytes()
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            assert SECRET.encode() not in data


def test_copy_layers_in_an_oci_layout_cache(
    busybox_image: str, tmp_path: Path, kaniko_dir: Path
) -> None:
    """``--cache-copy-layers`` with ``--cache-repo=oci:DIR``: the warm build hits every
    step, so it makes no layer and unpacks nothing, and its image has the cold one's
    layers, blob for blob."""
    ctx = _context(tmp_path, busybox_image)
    secret = tmp_path / "secret"
    secret.write_text(SECRET)
    cache_dir = tmp_path / "layer-cache"
    common = ("--cache-copy-layers", "--no-push", "--secret", f"id=s,src={secret}")
    outs = []
    logs = []
    for n in (1, 2):
        out = tmp_path / f"image{n}"
        run_ctx = _fresh(ctx, tmp_path / f"c{n}")
        logs.append(_build(run_ctx, "unused", f"oci:{cache_dir}", kaniko_dir, *common,
                           "--oci-layout-path", str(out)))  # fmt: skip
        outs.append(out)
    assert runs_executed(logs[1]) == set()
    assert "Layer sha256" not in logs[1], logs[1]
    assert "No cached layer" not in logs[1], logs[1]
    entries = [p for p in cache_dir.iterdir() if not p.name.startswith(".")]
    assert len(entries) == 16  # 9 RUNs, 2 WORKDIRs, 4 COPYs, 1 ADD
    # each a layout of its own, for any OCI reader; RUN true changed nothing
    layers = sorted(len(_inspect_oci(entry)["Layers"]) for entry in entries)
    assert layers == [0] + [1] * 15
    assert _inspect_oci(outs[1])["Layers"] == _inspect_oci(outs[0])["Layers"]


def _inspect_oci(layout: Path) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(run_tool(["skopeo", "inspect", f"oci:{layout}"])))


def test_cache_run_layers_false_runs_every_run(
    busybox_image: str, registry: RegistryServer, tmp_path: Path, kaniko_dir: Path
) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM {busybox_image}\nWORKDIR /w\nRUN echo a > a\nRUN echo b > b\n"
    )
    cache = f"{registry.host}/e2e/cache-norun"
    for n in (1, 2):
        log = _build(ctx, f"{registry.host}/e2e/norun:{n}", cache, kaniko_dir,
                     "--cache-run-layers=false")  # fmt: skip
        assert runs_executed(log) == {(0, 2), (0, 3)}
    assert cache_hits(log) == {(0, 1)}  # the WORKDIR still is


def test_a_copy_after_cached_steps_unpacks_only_its_destination(
    busybox_image: str, registry: RegistryServer, tmp_path: Path, kaniko_dir: Path
) -> None:
    """When every later step hits, a COPY unpacks only its destination (all directories
    and symlinks, the files below it): through a symlink an earlier cached layer made,
    over a file it holds with the same content, with ``--chown`` by name. The image is
    the cold build's."""
    ctx = tmp_path / "ctx"
    (ctx / "files" / "sub").mkdir(parents=True)
    (ctx / "files" / "new").write_text("new\n")
    (ctx / "files" / "same").write_text("same\n")
    (ctx / "files" / "sub" / "added").write_text("added\n")
    (ctx / "Dockerfile").write_text(
        f"FROM {busybox_image}\n"
        "RUN mkdir -p /real/sub && ln -s /real /link && echo old > /real/sub/keep"
        " && echo same > /real/same\n"
        "COPY --chown=user:user files/ /link/\n"
        "RUN cat /link/new /real/sub/added > /copied\n"
    )
    cache = f"{registry.host}/e2e/cache-scoped"
    cold = _build(ctx, f"{registry.host}/e2e/scoped:1", cache, kaniko_dir)
    assert runs_executed(cold) == {(0, 1), (0, 3)}
    warm = _build(_fresh(ctx, tmp_path / "c2"), f"{registry.host}/e2e/scoped:2", cache,
                  kaniko_dir, "--verbosity=debug")  # fmt: skip
    assert runs_executed(warm) == set()
    assert "step 2: unpacking only" in warm, warm
    first = snapshot_image(f"{registry.host}/e2e/scoped:1")
    second = snapshot_image(f"{registry.host}/e2e/scoped:2")
    assert diff_images(first, second) == []
    assert second.files["/real/new"].uid == 1000
    assert second.files["/real/sub/keep"].size == len("old\n")
