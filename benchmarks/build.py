"""End-to-end build benchmark: the same Dockerfile built once per snapshot mode, with
wall time, CPU, peak RSS of the pykaniko process and the layers it produced.

Use it on your own Dockerfile::

    python -m benchmarks.build --context DIR [--dockerfile DIR/Dockerfile] [--build-arg K=V]

or on the built-in scenarios (a busybox base made offline, a local registry)::

    python -m benchmarks.build --scenario many-files   # one RUN making 50k files
    python -m benchmarks.build --scenario big-layer --size-mb 2048

Every build pushes to a throw-away local ``docker-registry`` and runs with
``--kaniko-dir`` on tmpfs (``/dev/shm``), so modes are compared on the same footing.
Peak RSS is the child's ``ru_maxrss``: the figure that has to stay flat however big
a layer is. Ratios are against the first mode in the table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.baseimages import busybox_dockerfile, make_busybox_rootfs_tar  # noqa: E402
from tests.support.registry import RegistryServer  # noqa: E402

MODES = ("full", "redo", "time", "stat")
SCENARIOS = {
    "many-files": (
        "FROM {base}\n"
        "RUN mkdir -p /data && cd /data && i=0; while [ $i -lt {files} ]; do "
        "mkdir -p d$((i / 500)); echo $i > d$((i / 500))/f$i; i=$((i + 1)); done\n"
        "RUN rm -rf /data/d1 && echo changed > /data/d2/f1000\n"
    ),
    "big-layer": (
        "FROM {base}\nRUN dd if=/dev/urandom of=/big.bin bs=1M count={size_mb} 2>/dev/null\n"
    ),
}


@dataclass(frozen=True, slots=True)
class Result:
    mode: str
    wall: float
    cpu: float
    max_rss_mb: float
    layers: int
    size_mb: float
    status: int


def _registry_layers(host: str, repo: str) -> tuple[int, float]:
    accept = "application/vnd.docker.distribution.manifest.v2+json"
    req = urllib.request.Request(
        f"http://{host}/v2/{repo}/manifests/bench", headers={"Accept": accept}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        manifest = json.load(resp)
    layers = manifest.get("layers", [])
    return len(layers), sum(int(layer["size"]) for layer in layers) / 1e6


_MEASURE = (
    "import resource, subprocess, sys\n"
    "p = subprocess.run([sys.executable, '-m', 'pykaniko', *sys.argv[1:]],"
    " stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)\n"
    "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "sys.stderr.write(p.stderr)\n"
    "print(u.ru_utime + u.ru_stime, u.ru_maxrss, p.returncode)\n"
)


def _build(args: list[str]) -> tuple[float, float, float, int]:
    """One pykaniko build, measured by a fresh wrapper process so that its peak RSS
    (``ru_maxrss`` of the build and what the build waited for) is this build's alone."""
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    wall = time.monotonic() - started
    cpu_text, rss_text, status_text = proc.stdout.split()
    status = int(status_text)
    if status != 0:
        last = proc.stderr.strip().splitlines()[-1:] or ["failed"]
        print(last[0], file=sys.stderr)
    return wall, float(cpu_text), int(rss_text) / 1024, status


def _push_base(host: str, scratch: Path) -> str:
    ctx = scratch / "busybox"
    ctx.mkdir()
    make_busybox_rootfs_tar(ctx)
    (ctx / "Dockerfile").write_text(busybox_dockerfile())
    ref = f"{host}/bench/busybox:1"
    _, _, _, status = _build(
        [
            "--context", str(ctx), "--dockerfile", str(ctx / "Dockerfile"),
            "--destination", ref, "--insecure", "--insecure-pull",
            "--kaniko-dir", str(scratch / "kaniko"),
        ]
    )  # fmt: skip
    if status != 0:
        raise SystemExit("could not build the busybox base image")
    return ref


def run(opts: argparse.Namespace) -> list[Result]:
    shm = Path("/dev/shm")
    scratch = Path(tempfile.mkdtemp(prefix="pykaniko-bench-", dir=shm if shm.is_dir() else None))
    server = RegistryServer(scratch / "registry")
    results: list[Result] = []
    try:
        if opts.context:
            ctx = Path(opts.context)
            dockerfile = Path(opts.dockerfile) if opts.dockerfile else ctx / "Dockerfile"
        else:
            base = _push_base(server.host, scratch)
            ctx = scratch / "ctx"
            ctx.mkdir()
            dockerfile = ctx / "Dockerfile"
            text = SCENARIOS[opts.scenario].format(
                base=base, files=opts.files, size_mb=opts.size_mb
            )
            dockerfile.write_text(text)
        for mode in opts.modes:
            repo = f"bench/{mode}"
            flags = [
                "--context", str(ctx), "--dockerfile", str(dockerfile),
                "--destination", f"{server.host}/{repo}:bench",
                "--insecure", "--insecure-pull", f"--snapshot-mode={mode}",
                "--kaniko-dir", str(scratch / "kaniko"),
                *[f"--build-arg={a}" for a in opts.build_arg],
            ]  # fmt: skip
            if opts.use_new_run:
                flags.append("--use-new-run")
            wall, cpu, rss, status = _build(flags)
            layers, size = _registry_layers(server.host, repo) if status == 0 else (0, 0.0)
            results.append(Result(mode, wall, cpu, rss, layers, size, status))
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return results


def render(results: list[Result]) -> str:
    head = f"{'mode':<6} {'wall s':>8} {'ratio':>6} {'cpu s':>8} {'max RSS MB':>11} "
    head += f"{'layers':>6} {'pushed MB':>10} {'status':>6}"
    lines = [head, "-" * len(head)]
    first = results[0].wall if results else 1.0
    for r in results:
        lines.append(
            f"{r.mode:<6} {r.wall:8.2f} {r.wall / first:6.2f} {r.cpu:8.2f} {r.max_rss_mb:11.1f} "
            f"{r.layers:6d} {r.size_mb:10.1f} {r.status:6d}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--context", help="your build context (default: a built-in scenario)")
    p.add_argument("--dockerfile", help="your Dockerfile (default: CONTEXT/Dockerfile)")
    p.add_argument("--build-arg", action="append", default=[])
    p.add_argument("--scenario", choices=sorted(SCENARIOS), default="many-files")
    p.add_argument("--files", type=int, default=50_000, help="files for many-files")
    p.add_argument("--size-mb", type=int, default=512, help="file size for big-layer")
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    p.add_argument("--use-new-run", action="store_true")
    opts = p.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("building needs root (chroot, chown)")
    results = run(opts)
    what = opts.context or f"scenario {opts.scenario}"
    print(f"pykaniko build benchmark: {what}")
    print(render(results))
    return 0 if all(r.status == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
