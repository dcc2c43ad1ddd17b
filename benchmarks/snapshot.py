"""Snapshot benchmark: every mode on synthetic trees on tmpfs, next to ``find -printf``.

Run ``python -m benchmarks.snapshot`` (10k and 100k files) or ``--quick`` (10k only).
One tree per size; the four snapshotters hold their own baselines of the same tree, so
each scenario is applied once and every mode diffs the same state:

* ``few``: 20 ordinary changes (rewrites, adds, deletes) plus five stealthy ones
  (content rewritten with size and mtime kept, ``cp -p`` of same-size content, chmod,
  chown, a ``user.*`` xattr): ``missed`` counts what a mode did not put in its layer;
* ``many``: 10% of the files rewritten and 5% added;
* ``big``: one 128 MiB file added.

Columns: ``find`` = ``find -printf`` over the tree (the floor), ``walk`` = a bare walk
with the mode's key, ``detect`` = the whole ``diff()`` (walk, compare, content reads for
``full``), ``tar`` = ``write_layer`` into a null sink, ``gzip`` = the same into a
``LayerWriter`` (isal, 2 threads) minus ``tar``. Times are the best of five
interleaved runs (``detect`` on clones of the baseline, so every run sees the same
change). ``cpu/f`` is ``detect``'s CPU time over ``find``'s (both single-threaded and
CPU-bound on tmpfs): the ratio to read when other work shares the machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pykaniko.image.layerfile import LayerWriter
from pykaniko.snapshot import ChangeSet, IgnoreList, SnapshotMode, Snapshotter, write_layer
from pykaniko.snapshot.modes import quick_key
from pykaniko.snapshot.walk import walk

FILES_PER_DIR = 100
REPEAT = 5


@dataclass(frozen=True, slots=True)
class Row:
    files: int
    scenario: str
    mode: str
    find: float
    walk: float
    detect: float
    find_cpu: float
    detect_cpu: float
    tar: float
    gzip: float
    layer_bytes: int
    entries: int
    missed: int


class _Null:
    """A sink that only counts: tar time without compression or disk."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        n = len(data)
        self.size += n
        return n

    def flush(self) -> None:
        pass


def _timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _find(root: Path) -> tuple[float, float]:
    """Run ``find -printf``; its wall and CPU time."""
    before = _cpu_children()
    started = time.perf_counter()
    with open(os.devnull, "wb") as null:
        subprocess.run(
            ["find", str(root), "-printf", "%p %T@ %s %m %U %G %i\\n"], stdout=null, check=True
        )
    return time.perf_counter() - started, _cpu_children() - before


def _cpu(fn: Callable[[], object]) -> float:
    t = time.process_time()
    fn()
    return time.process_time() - t


def _file_path(root: Path, i: int) -> Path:
    return root / f"d{i // FILES_PER_DIR:05d}" / f"f{i % FILES_PER_DIR:03d}"


def build_tree(root: Path, files: int) -> None:
    """``files`` small files (64 B - 4 KiB) in directories of 100, fixed mtimes."""
    payload = os.urandom(4096)
    for d in range((files + FILES_PER_DIR - 1) // FILES_PER_DIR):
        (root / f"d{d:05d}").mkdir(parents=True)
    for i in range(files):
        p = _file_path(root, i)
        with open(p, "wb") as f:
            f.write(payload[: 64 + (i * 37) % 4000])
        os.utime(p, ns=(10**18, 10**18))


def few_changes(root: Path, files: int) -> set[str]:
    """Returns the rootfs paths a perfect snapshot would carry (or whiteout)."""
    expected: set[str] = set()
    step = files // 20
    for k in range(10):
        p = _file_path(root, k * step + 1)
        p.write_bytes(b"rewritten with a new size " * (k + 1))
        expected.add("/" + str(p.relative_to(root)))
    for k in range(5):
        p = root / f"d{k:05d}" / f"new{k}"
        p.write_bytes(b"new")
        expected.add("/" + str(p.relative_to(root)))
    for k in range(5):
        p = _file_path(root, k * step + 7)
        p.unlink()
        expected.add("/" + str(p.relative_to(root)))
    stealth = [_file_path(root, k * step + 11) for k in range(5)]
    for n, p in enumerate(stealth):
        expected.add("/" + str(p.relative_to(root)))
        st = p.stat()
        if n == 0:  # same size, same mtime, other bytes
            data = p.read_bytes()
            p.write_bytes(bytes(b ^ 0xFF for b in data))
            os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
        elif n == 1:  # cp -p of a same-size file with other bytes
            other = p.with_name("donor")
            other.write_bytes(bytes(b ^ 0x55 for b in p.read_bytes()))
            os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
            subprocess.run(["cp", "-p", str(other), str(p)], check=True)
            other.unlink()
        elif n == 2:
            os.chmod(p, 0o600)
        elif n == 3:
            os.chown(p, 4242, 4242)
        else:
            os.setxattr(p, "user.bench", b"1")
    return expected


def many_changes(root: Path, files: int) -> set[str]:
    expected: set[str] = set()
    for i in range(0, files, 10):
        p = _file_path(root, i)
        with open(p, "ab") as f:
            f.write(b"+")
        expected.add("/" + str(p.relative_to(root)))
    for i in range(files // 20):
        p = root / f"d{i % (files // FILES_PER_DIR):05d}" / f"added{i}"
        p.write_bytes(b"added")
        expected.add("/" + str(p.relative_to(root)))
    return expected


def big_file(root: Path, files: int) -> set[str]:
    del files
    block = os.urandom(1 << 20)
    with open(root / "big.bin", "wb") as f:
        for _ in range(128):
            f.write(block)
    return {"/big.bin"}


SCENARIOS: list[tuple[str, Callable[[Path, int], set[str]]]] = [
    ("few", few_changes),
    ("many", many_changes),
    ("big", big_file),
]


def _missed(cs: ChangeSet, expected: set[str]) -> int:
    seen = set(cs.entries) | set(cs.deleted)
    return len(expected - seen)


def run_size(scratch: Path, files: int) -> tuple[list[Row], dict[str, float]]:
    root = scratch / f"tree-{files}"
    t = time.perf_counter()
    build_tree(root, files)
    built = time.perf_counter() - t
    snaps = {m: Snapshotter(root, mode=m, ignore=IgnoreList()) for m in SnapshotMode}
    baseline: dict[str, float] = {"build": built}
    for m, s in snaps.items():
        t = time.perf_counter()
        s.take_baseline()
        baseline[m.value] = time.perf_counter() - t
    rows: list[Row] = []
    for name, scenario in SCENARIOS:
        expected = scenario(root, files)
        timed: dict[SnapshotMode, tuple[float, float, float]] = {}
        floor = floor_cpu = float("inf")
        for _ in range(REPEAT):  # interleaved, so machine load hits every column alike
            for m, s in snaps.items():
                find_wall, find_cpu = _find(root)
                floor, floor_cpu = min(floor, find_wall), min(floor_cpu, find_cpu)
                key = quick_key(m)
                walked = _timed(lambda key=key: walk(str(root), key, IgnoreList()))  # type: ignore[misc]
                detect = _timed(s.clone().diff)
                detect_cpu = _cpu(s.clone().diff)
                best = timed.get(m, (walked, detect, detect_cpu))
                timed[m] = (min(best[0], walked), min(best[1], detect), min(best[2], detect_cpu))
        for m, s in snaps.items():
            walked, detect, detect_cpu = timed[m]
            cs = s.diff()
            null = _Null()
            t = time.perf_counter()
            entries = write_layer(cs, root, null)
            tar = time.perf_counter() - t
            out = scratch / "layer.tar.gz"
            t = time.perf_counter()
            with LayerWriter(out, compression="gzip", threads=2) as w:
                write_layer(cs, root, w)
            total = time.perf_counter() - t
            size = w.close().size
            out.unlink()
            rows.append(
                Row(
                    files,
                    name,
                    m.value,
                    floor,
                    walked,
                    detect,
                    floor_cpu,
                    detect_cpu,
                    tar,
                    max(total - tar, 0.0),
                    size,
                    entries,
                    _missed(cs, expected),
                )
            )
    shutil.rmtree(root)
    return rows, baseline


def render(rows: list[Row], baselines: dict[int, dict[str, float]]) -> str:
    head = (
        f"{'files':>7} {'scenario':<8} {'mode':<5} {'find s':>7} {'walk s':>7} {'walk/f':>6} "
        f"{'detect s':>8} {'det/f':>6} {'cpu/f':>6} {'tar s':>7} {'gzip s':>7} {'layer MB':>9} "
        f"{'entries':>7} {'missed':>6}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.files:>7} {r.scenario:<8} {r.mode:<5} {r.find:>7.3f} {r.walk:>7.3f} "
            f"{r.walk / r.find:>6.2f} {r.detect:>8.3f} {r.detect / r.find:>6.2f} "
            f"{r.detect_cpu / r.find_cpu:>6.2f} {r.tar:>7.3f} "
            f"{r.gzip:>7.3f} {r.layer_bytes / 1e6:>9.2f} {r.entries:>7} {r.missed:>6}"
        )
    lines.append("")
    for files, b in baselines.items():
        parts = ", ".join(f"{k} {v:.3f}s" for k, v in b.items())
        lines.append(f"{files} files: tree built in / baseline walk per mode: {parts}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="10k files only")
    parser.add_argument("--scratch", default="/dev/shm", help="tmpfs directory for the trees")
    args = parser.parse_args(argv)
    sizes = [10_000] if args.quick else [10_000, 100_000]
    scratch = Path(tempfile.mkdtemp(prefix="pykaniko-bench-", dir=args.scratch))
    rows: list[Row] = []
    baselines: dict[int, dict[str, float]] = {}
    try:
        for files in sizes:
            got, base = run_size(scratch, files)
            rows += got
            baselines[files] = base
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(render(rows, baselines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
