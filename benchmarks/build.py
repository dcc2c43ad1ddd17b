"""End-to-end build benchmark: the same Dockerfile built once per snapshot mode, with
wall time, CPU, peak RSS of the pykaniko process and the layers it produced.

The measuring and the table are ``pykaniko bench``'s (``pykaniko/cli/bench.py``); this
script adds a throw-away registry and the synthetic scenarios. On your own Dockerfile,
``pykaniko bench -- --context DIR --no-push`` needs no checkout. From a checkout::

    python -m benchmarks.build --context DIR [--dockerfile DIR/Dockerfile] [--build-arg K=V]

or on the built-in scenarios (a busybox base made offline, a local registry)::

    python -m benchmarks.build --scenario many-files   # one RUN making 50k files
    python -m benchmarks.build --scenario big-layer --size-mb 2048

Every build pushes to a throw-away local ``docker-registry`` and runs with
``--kaniko-dir`` on tmpfs (``/dev/shm``), so modes are compared on the same footing.
Peak RSS is the child's ``ru_maxrss``: the figure that has to stay flat however big
a layer is. Ratios are against the fastest mode.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pykaniko.cli.bench import ModeResult, render_table, run_bench  # noqa: E402
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


def _push_base(host: str, scratch: Path) -> str:
    ctx = scratch / "busybox"
    ctx.mkdir()
    make_busybox_rootfs_tar(ctx)
    (ctx / "Dockerfile").write_text(busybox_dockerfile())
    ref = f"{host}/bench/busybox:1"
    proc = subprocess.run(
        [
            sys.executable, "-m", "pykaniko", "--context", str(ctx), "--destination", ref,
            "--insecure", "--insecure-pull", "--kaniko-dir", str(scratch / "kaniko"),
        ],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"could not build the busybox base image: {proc.stderr[-500:]}")
    return ref


def run(opts: argparse.Namespace) -> tuple[list[ModeResult], dict[str, list[str]]]:
    """Each mode through ``pykaniko bench``'s own measurement (one process per build,
    ``wait4`` for CPU and peak RSS, the build summary for phase times)."""
    shm = Path("/dev/shm")
    scratch = Path(tempfile.mkdtemp(prefix="pykaniko-bench-", dir=shm if shm.is_dir() else None))
    server = RegistryServer(scratch / "registry")
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
        flags = [
            "--context", str(ctx), "--dockerfile", str(dockerfile),
            "--destination", f"{server.host}/bench/app:bench",
            "--insecure", "--insecure-pull", "--kaniko-dir", str(scratch / "kaniko"),
            *[f"--build-arg={a}" for a in opts.build_arg],
        ]  # fmt: skip
        if opts.use_new_run:
            flags.append("--use-new-run")
        return run_bench(flags, opts.modes, scratch / "modes", compare=not opts.no_compare)
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)


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
    p.add_argument("--no-compare", action="store_true", help="skip comparing the images")
    opts = p.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("building needs root (chroot, chown)")
    results, differences = run(opts)
    what = opts.context or f"scenario {opts.scenario}"
    print(f"pykaniko build benchmark: {what}")
    print(render_table(results, differences))
    return 0 if all(r.status == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
