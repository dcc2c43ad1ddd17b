"""Layer-cache benchmark: cold build (empty cache repository) against warm rebuild (same
Dockerfile, same context, nothing changed), with the number of RUN steps each executed.

    python -m benchmarks.cache                       # the built-in scenarios
    python -m benchmarks.cache --runs 7 --scenario multistage
    python -m benchmarks.cache --context DIR [--dockerfile F] [--build-arg K=V]

Every cold run gets a fresh cache repository; the warm runs reuse the first cold run's.
The context is copied afresh before every build (new mtimes, as a CI clone has), so a
key that depended on timestamps would show here as RUN steps executed when warm.
Builds push to a throw-away local ``docker-registry`` with ``--kaniko-dir`` on tmpfs
(``/dev/shm``). Times are medians of ``--runs`` wall times of the whole ``pykaniko``
process (interpreter start-up included), as a CI job sees them; the ``cpu`` columns
(user + system of the process) are steadier on a busy machine. The package is
byte-compiled first, as an installed one is (with ``PYTHONDONTWRITEBYTECODE`` set, every
process would otherwise compile ~120 modules before doing anything).
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.baseimages import busybox_dockerfile, make_busybox_rootfs_tar  # noqa: E402
from tests.support.buildlog import runs_executed  # noqa: E402
from tests.support.registry import RegistryServer  # noqa: E402

WORKDIR_COPY = (
    "FROM {base}\n"
    "RUN echo one > /one\n"
    "WORKDIR /app\n"
    "RUN echo two > two\n"
    "COPY src/ ./src/\n"
    "RUN cat src/a.txt > three && ls -l src > listing\n"
    "COPY config.txt /etc/app.conf\n"
    "ENV MODE=production\n"
    "RUN echo $MODE > mode && wc -c /etc/app.conf > size\n"
)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    dockerfile: str  # relative to the context
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Run:
    wall: float
    cpu: float
    runs_executed: int
    status: int


_MEASURE = (
    "import resource, subprocess, sys\n"
    "p = subprocess.run([sys.executable, '-m', 'pykaniko', *sys.argv[1:]],"
    " stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)\n"
    "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "sys.stderr.write(p.stderr)\n"
    "print(u.ru_utime + u.ru_stime, p.returncode)\n"
)


def _build(args: list[str]) -> Run:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    wall = time.monotonic() - started
    cpu_text, status_text = proc.stdout.split()
    status = int(status_text)
    if status != 0:
        print((proc.stderr.strip().splitlines() or ["failed"])[-1], file=sys.stderr)
    return Run(wall, float(cpu_text), len(runs_executed(proc.stderr)), status)


def _push_base(host: str, scratch: Path) -> str:
    ctx = scratch / "busybox"
    ctx.mkdir()
    make_busybox_rootfs_tar(ctx)
    (ctx / "Dockerfile").write_text(busybox_dockerfile())
    ref = f"{host}/bench/busybox:1"
    result = _build(
        [
            "--context", str(ctx), "--dockerfile", str(ctx / "Dockerfile"),
            "--destination", ref, "--insecure", "--insecure-pull",
            "--kaniko-dir", str(scratch / "kaniko"),
        ]
    )  # fmt: skip
    if result.status != 0:
        raise SystemExit("could not build the busybox base image")
    return ref


def _scenarios(base: str, scratch: Path) -> dict[str, tuple[Path, Scenario]]:
    """Built-in contexts (sources of each build are copied from these)."""
    multi = ROOT / "examples" / "multistage"
    wc = scratch / "src-workdir-copy"
    (wc / "src").mkdir(parents=True)
    for i in range(20):
        (wc / "src" / f"{'a' if i == 0 else f'f{i}'}.txt").write_text(f"file {i}\n" * 50)
    (wc / "config.txt").write_text("key=value\n")
    (wc / "Dockerfile").write_text(WORKDIR_COPY.format(base=base))
    return {
        "multistage": (
            multi,
            Scenario(
                "multistage",
                "Dockerfile",
                ("--build-arg", f"BASE={base}", "--target", "production"),
            ),
        ),
        "workdir-copy": (wc, Scenario("workdir-copy", "Dockerfile", ())),
    }


def _fresh_context(source: Path, scratch: Path) -> Path:
    """A new copy of the context, as a CI clone: same content, new timestamps."""
    ctx = Path(tempfile.mkdtemp(prefix="ctx-", dir=scratch))
    shutil.rmtree(ctx)
    shutil.copytree(source, ctx, symlinks=True, copy_function=shutil.copyfile)
    return ctx


def bench(
    host: str, scratch: Path, source: Path, sc: Scenario, *, runs: int, extra: list[str]
) -> tuple[list[Run], list[Run]]:
    def one(cache_repo: str, tag: str) -> Run:
        ctx = _fresh_context(source, scratch)
        try:
            return _build(
                [
                    "--context", str(ctx), "--dockerfile", str(ctx / sc.dockerfile),
                    "--destination", f"{host}/bench/{sc.name}:{tag}",
                    "--insecure", "--insecure-pull", "--cache=true",
                    "--cache-repo", cache_repo, "--kaniko-dir", str(scratch / "kaniko"),
                    *sc.flags, *extra,
                ]
            )  # fmt: skip
        finally:
            shutil.rmtree(ctx, ignore_errors=True)

    stamp = int(time.time() * 1000)
    cold = [one(f"{host}/bench/cache-{sc.name}-{stamp}-{i}", f"cold{i}") for i in range(runs)]
    warm = [one(f"{host}/bench/cache-{sc.name}-{stamp}-0", f"warm{i}") for i in range(runs)]
    return cold, warm


def render(rows: list[tuple[str, list[Run], list[Run]]]) -> str:
    head = (
        f"{'scenario':<14} {'cold s':>7} {'warm s':>7} {'warm/cold':>9} "
        f"{'cold cpu':>8} {'warm cpu':>8} {'RUN cold':>8} {'RUN warm':>8} {'ok':>3}"
    )
    lines = [head, "-" * len(head)]
    for name, cold, warm in rows:
        cw = statistics.median(r.wall for r in cold)
        ww = statistics.median(r.wall for r in warm)
        cc = statistics.median(r.cpu for r in cold)
        wc = statistics.median(r.cpu for r in warm)
        ok = all(r.status == 0 for r in cold + warm)
        lines.append(
            f"{name:<14} {cw:7.2f} {ww:7.2f} {ww / cw:9.2f} {cc:8.2f} {wc:8.2f} "
            f"{max(r.runs_executed for r in cold):8d} {max(r.runs_executed for r in warm):8d} "
            f"{'yes' if ok else 'NO':>3}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--context", help="your build context (default: the built-in scenarios)")
    p.add_argument("--dockerfile", help="your Dockerfile (default: CONTEXT/Dockerfile)")
    p.add_argument("--build-arg", action="append", default=[])
    p.add_argument("--scenario", action="append", choices=["multistage", "workdir-copy"])
    p.add_argument("--runs", type=int, default=5, help="builds per column (median)")
    p.add_argument("--flag", action="append", default=[], help="extra pykaniko flag")
    opts = p.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("building needs root (chroot, chown)")
    compileall.compile_dir(ROOT / "pykaniko", quiet=1)
    shm = Path("/dev/shm")
    scratch = Path(tempfile.mkdtemp(prefix="pykaniko-cache-", dir=shm if shm.is_dir() else None))
    server = RegistryServer(scratch / "registry")
    rows: list[tuple[str, list[Run], list[Run]]] = []
    extra = [*(f"--build-arg={a}" for a in opts.build_arg), *opts.flag]
    try:
        if opts.context:
            ctx = Path(opts.context).resolve()
            df = Path(opts.dockerfile).resolve() if opts.dockerfile else ctx / "Dockerfile"
            sc = Scenario("custom", str(df.relative_to(ctx)), ())
            rows.append(
                (sc.name, *bench(server.host, scratch, ctx, sc, runs=opts.runs, extra=extra))
            )
        else:
            base = _push_base(server.host, scratch)
            for name, (source, sc) in _scenarios(base, scratch).items():
                if opts.scenario and name not in opts.scenario:
                    continue
                rows.append(
                    (name, *bench(server.host, scratch, source, sc, runs=opts.runs, extra=extra))
                )
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"pykaniko layer cache: cold vs warm, median of {opts.runs} runs")
    print(render(rows))
    return 0 if all(r.status == 0 for _n, c, w in rows for r in c + w) else 1


if __name__ == "__main__":
    raise SystemExit(main())
