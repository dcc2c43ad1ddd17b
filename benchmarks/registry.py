"""Registry fixed costs of a small build, measured: import time of the command, TCP
connections, HTTP requests and wall time of the registry part of ``FROM busybox`` +
``RUN true``, and a build from the base-image cache with the registry up and down.

    sudo .venv/bin/python -m benchmarks.registry [--rounds 5] [--compare /path/to/src]

``--compare`` names another source tree (e.g. ``git archive main | tar -x -C DIR``);
its numbers are measured in the same run, interleaved, and shown as the first column.
Everything runs against a throw-away local ``docker-registry`` behind a counting
proxy (:class:`tests.support.registry.FaultProxy` with no faults), work dirs on
``/dev/shm``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.baseimages import busybox_dockerfile, make_busybox_rootfs_tar  # noqa: E402
from tests.support.registry import FaultProxy, RegistryServer  # noqa: E402

# The registry part of a build, in-process: push check, pull base, its layers, push
# the image with one new layer. Only API both old and new trees have.
_REGISTRY_PART = r"""
import gzip, hashlib, io, json, sys, tarfile, time
from pathlib import Path
from pykaniko.image import mediatypes as mt
from pykaniko.image.blobstore import BlobStore
from pykaniko.image.config import ImageConfig
from pykaniko.image.manifest import Descriptor, Manifest
from pykaniko.image.platform import Platform
from pykaniko.image.reference import parse_reference
from pykaniko.registry import RegistryClient, RegistryOptions, StaticKeychain

base, dest, work = sys.argv[1], sys.argv[2], Path(sys.argv[3])
started = time.monotonic()
client = RegistryClient(RegistryOptions(insecure=True, insecure_pull=True), StaticKeychain())
store = BlobStore(work)
client.check_push_permission([parse_reference(dest)])
pulled = client.pull(parse_reference(base), Platform("linux", "amd64"), store)
client.fetch_layers(pulled, pulled.manifest.layers, store)
raw = io.BytesIO()
with tarfile.open(fileobj=raw, mode="w") as tar:
    info = tarfile.TarInfo("x")
    info.size = 1
    tar.addfile(info, io.BytesIO(b"x"))
gz = gzip.compress(raw.getvalue(), mtime=0)
digest = store.put_bytes(gz)
diff_id = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
config = ImageConfig(architecture="amd64", os="linux",
                     diff_ids=(*pulled.config.diff_ids, diff_id))
craw = config.to_json()
manifest = Manifest.build(
    media_type=mt.OCI_MANIFEST,
    config=Descriptor(mt.OCI_CONFIG, store.put_bytes(craw), len(craw)),
    layers=(*pulled.manifest.layers, Descriptor(mt.OCI_LAYER_GZIP, digest, len(gz))),
)
client.push(manifest, [parse_reference(dest)], store, sources=[pulled])
client.close()
print(json.dumps({"wall": time.monotonic() - started}))
"""


def _env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree)}


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def import_numbers(tree: Path, rounds: int, dockerfile: Path) -> dict[str, float | str]:
    """Median wall of ``pykaniko --help``, the ``pykaniko.cli`` import time, and
    whether requests is loaded for ``--help`` and ``--dry-run``."""
    walls, cli_us = [], []
    loads = {"--help": False, "--dry-run": False}
    for _ in range(rounds):
        t = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "pykaniko", "--help"],
            env=_env(tree), cwd=tree, capture_output=True, check=False,
        )  # fmt: skip
        walls.append(time.monotonic() - t)
        for args in (["--help"], ["--dry-run", "--dockerfile", str(dockerfile),
                                  "--context", str(dockerfile.parent)]):  # fmt: skip
            proc = subprocess.run(
                [sys.executable, "-X", "importtime", "-m", "pykaniko", *args],
                env=_env(tree), cwd=tree, capture_output=True, text=True, check=False,
            )  # fmt: skip
            if re.search(r"\|\s+requests$", proc.stderr, re.MULTILINE):
                loads[args[0]] = True
            found = re.search(r"\|\s+(\d+) \|\s+pykaniko\.cli$", proc.stderr, re.MULTILINE)
            if found and args[0] == "--help":
                cli_us.append(float(found.group(1)))
    return {
        "help wall s": _median(walls),
        "cli import ms": _median(cli_us) / 1000,
        "requests for --help": "yes" if loads["--help"] else "no",
        "requests for --dry-run": "yes" if loads["--dry-run"] else "no",
    }


def registry_part(tree: Path, upstream: str, base_repo: str, work: Path) -> dict[str, float]:
    proxy = FaultProxy(upstream)
    try:
        dest = f"{proxy.host}/bench/part:{time.monotonic_ns()}"
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-c", _REGISTRY_PART, f"{proxy.host}/{base_repo}", dest, str(work)],
            env=_env(tree), cwd=tree, capture_output=True, text=True, check=False,
        )  # fmt: skip
        total = time.monotonic() - started
        if proc.returncode != 0:
            raise SystemExit(proc.stderr)
        return {
            "process wall s": total,  # with the imports, which a lazy import moves
            "after imports s": float(json.loads(proc.stdout)["wall"]),
            "connections": proxy.connections,
            "requests": len(proxy.log),
        }
    finally:
        proxy.stop()
        shutil.rmtree(work, ignore_errors=True)


def cli_build(tree: Path, host: str, base: str, dest: str, scratch: Path, *extra: str) -> float:
    """Wall time of ``FROM host/base`` + ``RUN true`` pushed to ``dest``."""
    ctx = scratch / f"ctx{time.monotonic_ns()}"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {host}/{base}\nRUN true\n")
    t = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pykaniko", "--context", str(ctx),
         "--dockerfile", str(ctx / "Dockerfile"),
         "--destination", f"{dest}:{time.monotonic_ns()}",
         "--insecure", "--insecure-pull", "--kaniko-dir", str(scratch / "k" / str(t)),
         *extra],
        env=_env(tree), cwd=tree, capture_output=True, text=True, check=False,
    )  # fmt: skip
    wall = time.monotonic() - t
    shutil.rmtree(scratch / "k", ignore_errors=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    return wall


def counted_build(tree: Path, upstream: str, base: str, scratch: Path) -> dict[str, float]:
    """A build whose pull and push both go through one counting proxy."""
    proxy = FaultProxy(upstream)
    try:
        wall = cli_build(tree, proxy.host, base, f"{proxy.host}/bench/cli", scratch)
        return {"wall s": wall, "connections": proxy.connections, "requests": len(proxy.log)}
    finally:
        proxy.stop()


def table(title: str, columns: Mapping[str, Mapping[str, float | str]]) -> str:
    names = list(columns)
    rows = list(next(iter(columns.values())))
    width = max(len(r) for r in rows) + 2
    lines = [title, f"{'':<{width}}" + "".join(f"{n:>16}" for n in names)]
    for row in rows:
        cells = []
        for n in names:
            value = columns[n][row]
            cells.append(f"{value:>16.3f}" if isinstance(value, float) else f"{value!s:>16}")
        lines.append(f"{row:<{width}}" + "".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--compare", type=Path, help="another source tree to measure alongside")
    opts = p.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("building needs root (chroot, chown)")
    trees = {"this tree": ROOT}
    if opts.compare:
        trees = {"compare": opts.compare.resolve(), **trees}
    shm = Path("/dev/shm")
    scratch = Path(tempfile.mkdtemp(prefix="pykaniko-regbench-", dir=shm if shm.is_dir() else None))
    server = RegistryServer(scratch / "registry")
    try:
        ctx = scratch / "busybox"
        ctx.mkdir()
        make_busybox_rootfs_tar(ctx)
        (ctx / "Dockerfile").write_text(busybox_dockerfile())
        subprocess.run(
            [sys.executable, "-m", "pykaniko", "--context", str(ctx), "--dockerfile",
             str(ctx / "Dockerfile"), "--destination", f"{server.host}/bench/busybox:1",
             "--insecure", "--kaniko-dir", str(scratch / "k0")],
            cwd=ROOT, check=True, capture_output=True,
        )  # fmt: skip
        base = "bench/busybox:1"
        imports = {n: import_numbers(t, opts.rounds, ctx / "Dockerfile") for n, t in trees.items()}
        print(table("Start-up (median)", imports))
        parts: dict[str, list[dict[str, float]]] = {n: [] for n in trees}
        builds: dict[str, list[dict[str, float]]] = {n: [] for n in trees}
        for i in range(opts.rounds):  # interleaved rounds
            for n, t in trees.items():
                parts[n].append(registry_part(t, server.host, base, scratch / f"part{i}{n}"))
                builds[n].append(counted_build(t, server.host, base, scratch))
        med = {n: {k: _median([r[k] for r in rs]) for k in rs[0]} for n, rs in parts.items()}
        print()
        print(table("Registry part of FROM busybox + RUN true, in-process (median)", med))
        med = {n: {k: _median([r[k] for r in rs]) for k in rs[0]} for n, rs in builds.items()}
        print()
        print(table("CLI build FROM busybox + RUN true, pull and push counted (median)", med))

        cache_dir = scratch / "cache"
        proxy = FaultProxy(server.host)  # the base's registry: up, then taken down
        subprocess.run(
            [sys.executable, "-m", "pykaniko", "warmer", "-c", str(cache_dir),
             "-i", f"{proxy.host}/{base}"],
            cwd=ROOT, check=True, capture_output=True,
        )  # fmt: skip
        cache_flags = ("--cache", "--cache-dir", str(cache_dir), "--cache-repo",
                       f"{server.host}/bench/layers", "--no-push-cache")  # fmt: skip
        dest = f"{server.host}/bench/cached"
        modes: dict[str, list[float]] = {"no cache": [], "cache, up": [], "cache, down": []}
        for _ in range(opts.rounds):
            modes["no cache"].append(cli_build(ROOT, proxy.host, base, dest, scratch))
            modes["cache, up"].append(
                cli_build(ROOT, proxy.host, base, dest, scratch, *cache_flags)
            )
        proxy.stop()
        for _ in range(opts.rounds):
            modes["cache, down"].append(
                cli_build(ROOT, proxy.host, base, dest, scratch, *cache_flags)
            )
        print()
        print(
            table(
                "Base-image cache: registry up vs down (median)",
                {n: {"wall s": _median(ws)} for n, ws in modes.items()},
            )
        )
        print("\nThe proxy is a Python HTTP server: absolute times include its overhead.")
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
