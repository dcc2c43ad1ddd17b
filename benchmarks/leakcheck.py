"""What the secret-leak check costs, on the case it is meant to be cheap for: one RUN
writing a big random file (default 500 MB), scratch on ``/dev/shm``.

Three tables:

* **scanner alone**: the added work by itself, 1 MiB views fed as the tar writer
  feeds them (best of ``--repeat``);
* **layer write** (in process): the tar writer streaming the file through the gzip
  layer writer, without the check and with 1, 2 and 4 secrets (the 2-secret row has a
  short 11-byte registry password, the slowest kind to search for), wall and CPU
  seconds (all threads), best of ``--repeat``;
* **build** (the ``pykaniko`` command, pushed to a throw-away local registry): the
  same Dockerfile with ``--secret-check=off`` and ``=error`` and one ``--secret``
  mounted by the RUN, runs interleaved, median of ``--repeat``.

Ratios are against the row without the check. ``python -m benchmarks.leakcheck
[--size-mb 500] [--repeat 3] [--skip-build]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pykaniko.image.layerfile import LayerWriter  # noqa: E402
from pykaniko.image.leakscan import LeakScanner, Secret  # noqa: E402
from pykaniko.snapshot import ChangeSet, write_layer  # noqa: E402
from tests.support.baseimages import busybox_dockerfile, make_busybox_rootfs_tar  # noqa: E402
from tests.support.registry import RegistryServer  # noqa: E402

TOKEN = b"npm_8f2Kq9LzW4xTbR7cVn3MpQ0sYd6"
SECRET_SETS: dict[str, list[Secret]] = {
    "off": [],
    "1 secret (31 B)": [Secret("a", TOKEN)],
    "2 secrets (31 B, 11 B)": [Secret("a", TOKEN), Secret("b", b"s3cret-Pa55")],
    "4 secrets (40 B)": [Secret(str(i), os.urandom(20).hex().encode()) for i in range(4)],
}


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    wall: float
    cpu: float


class _Tee:
    def __init__(self, inner: LayerWriter, scanner: LeakScanner) -> None:
        self.inner = inner
        self.scanner = scanner

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        self.scanner.write(data)
        return self.inner.write(data)

    def flush(self) -> None:
        self.inner.flush()


def _layer_once(root: Path, out: Path, secrets: list[Secret]) -> tuple[float, float]:
    changes = ChangeSet(entries=("/big.bin",))
    wall, cpu = time.perf_counter(), time.process_time()
    writer = LayerWriter(out)
    scanner = LeakScanner(secrets) if secrets else None
    sink = writer if scanner is None else _Tee(writer, scanner)
    write_layer(changes, root, sink)
    writer.close()
    if scanner is not None:
        assert scanner.close() == []
    return time.perf_counter() - wall, time.process_time() - cpu


def scan_table(size_mb: int, repeat: int) -> list[Row]:
    """The scanner alone, fed 1 MiB views of one reused buffer as the tar writer does."""
    buf = bytearray(os.urandom(1 << 20))
    view = memoryview(buf)
    header = tarfile.TarInfo("big.bin")
    header.size = size_mb << 20
    head = header.tobuf(tarfile.PAX_FORMAT)
    best: dict[str, tuple[float, float]] = {}
    for _ in range(repeat):
        for name, secrets in SECRET_SETS.items():
            wall, cpu = time.perf_counter(), time.process_time()
            scanner = LeakScanner(secrets)
            scanner.write(head)
            for _ in range(size_mb):
                scanner.write(view)
            scanner.close()
            got = (time.perf_counter() - wall, time.process_time() - cpu)
            old = best.get(name, (float("inf"), float("inf")))
            best[name] = (min(old[0], got[0]), min(old[1], got[1]))
    return [Row(name, *best[name]) for name in SECRET_SETS]


def layer_table(scratch: Path, size_mb: int, repeat: int) -> list[Row]:
    root = scratch / "rootfs"
    root.mkdir()
    with open(root / "big.bin", "wb") as f:
        for _ in range(size_mb):
            f.write(os.urandom(1 << 20))
    best: dict[str, tuple[float, float]] = {}
    for _ in range(repeat):
        for name, secrets in SECRET_SETS.items():
            wall, cpu = _layer_once(root, scratch / "layer.tar.gz", secrets)
            old = best.get(name, (float("inf"), float("inf")))
            best[name] = (min(old[0], wall), min(old[1], cpu))
    return [Row(name, *best[name]) for name in SECRET_SETS]


_MEASURE = (
    "import resource, subprocess, sys\n"
    "p = subprocess.run([sys.executable, '-m', 'pykaniko', *sys.argv[1:]],"
    " stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)\n"
    "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "sys.stderr.write(p.stderr[-2000:])\n"
    "print(u.ru_utime + u.ru_stime, p.returncode)\n"
)


def _cli(args: list[str]) -> tuple[float, float]:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    wall = time.monotonic() - started
    cpu_text, status = proc.stdout.split()
    if status != "0":
        raise SystemExit(f"build failed:\n{proc.stderr}")
    return wall, float(cpu_text)


def build_table(scratch: Path, size_mb: int, repeat: int) -> list[Row]:
    server = RegistryServer(scratch / "registry")
    try:
        base_ctx = scratch / "busybox"
        base_ctx.mkdir()
        make_busybox_rootfs_tar(base_ctx)
        (base_ctx / "Dockerfile").write_text(busybox_dockerfile())
        base = f"{server.host}/bench/busybox:1"
        common = ["--insecure", "--insecure-pull", "--kaniko-dir", str(scratch / "kaniko")]
        _cli(["--context", str(base_ctx), "--destination", base, *common])
        ctx = scratch / "ctx"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(
            f"FROM {base}\nRUN --mount=type=secret,id=npmrc "
            f"dd if=/dev/urandom of=/big.bin bs=1M count={size_mb} 2>/dev/null\n"
        )
        secret = scratch / "npmrc"
        secret.write_bytes(TOKEN + b"\n")
        runs: dict[str, list[tuple[float, float]]] = {"off": [], "error": []}
        for i in range(repeat):
            for mode, got in runs.items():
                args = [
                    "--context", str(ctx), "--destination", f"{server.host}/bench/big:{mode}{i}",
                    "--secret", f"id=npmrc,src={secret}", f"--secret-check={mode}", *common,
                ]  # fmt: skip
                got.append(_cli(args))
        return [
            Row(
                f"--secret-check={mode}",
                statistics.median(w for w, _ in got),
                statistics.median(c for _, c in got),
            )
            for mode, got in runs.items()
        ]
    finally:
        server.stop()


def render(title: str, rows: list[Row], *, ratios: bool = True) -> str:
    head = f"{title:<26} {'wall s':>8} {'ratio':>6} {'cpu s':>8} {'ratio':>6}"
    lines = [head, "-" * len(head)]
    first = rows[0]
    for r in rows:
        wall = f"{r.wall / first.wall:6.3f}" if ratios else f"{'':6}"
        cpu = f"{r.cpu / first.cpu:6.3f}" if ratios else f"{'':6}"
        lines.append(f"{r.name:<26} {r.wall:8.2f} {wall} {r.cpu:8.2f} {cpu}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size-mb", type=int, default=500)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--skip-build", action="store_true", help="only the in-process table")
    opts = p.parse_args(argv)
    shm = Path("/dev/shm")
    scratch = Path(tempfile.mkdtemp(prefix="pykaniko-leak-", dir=shm if shm.is_dir() else None))
    try:
        print(f"secret-leak check, one {opts.size_mb} MB random file")
        print(render("scanner alone", scan_table(opts.size_mb, opts.repeat), ratios=False))
        print()
        print(render("layer write", layer_table(scratch, opts.size_mb, opts.repeat)))
        if not opts.skip_build:
            if os.geteuid() != 0:
                raise SystemExit("building needs root (chroot, chown)")
            print()
            print(render("build (median)", build_table(scratch, opts.size_mb, opts.repeat)))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
