"""Isolation benchmark: what each mode costs per RUN and per stage.

    python -m benchmarks.isolation [--files 20000]

* RUN start: ``true`` in the chroot sandbox (fresh helper, namespaces, mounts) against
  the in-place mode's plain child process, median of 10.
* the ``auto`` probe (one helper process asked whether mount namespaces work);
* in-place stage moves on a tree of ``--files`` small files on tmpfs (``/dev/shm``):
  clearing the root, parking a finished stage (rename), bringing it back, and parking
  across filesystems (exact copy, to the work dir's disk);
* RUN mounts in-place: a cache of ``--files`` files moved in and out (rename) against a
  bind mount of the same tree (copy).

Nothing here touches ``/``: every root is a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pykaniko.executor.isolation import BindMount, RunSpec  # noqa: E402
from pykaniko.executor.isolation.chroot import ChrootIsolation, probe_namespaces  # noqa: E402
from pykaniko.executor.isolation.emulate import MountEmulation  # noqa: E402
from pykaniko.executor.isolation.inplace import run_process  # noqa: E402
from pykaniko.executor.isolation.treeops import clear_root, park, unpark  # noqa: E402
from pykaniko.snapshot import IgnoreList  # noqa: E402
from tests.support.baseimages import busybox_available, make_busybox_rootfs_tar  # noqa: E402

KEEP = IgnoreList.of(exact=["/kaniko", "/etc/hosts", "/proc", "/dev", "/sys"])


def _median(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _tree(root: Path, files: int) -> None:
    payload = os.urandom(4096)
    for i in range(files):
        d = root / f"usr/lib/d{i // 100:04d}"
        if i % 100 == 0:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i % 100:03d}").write_bytes(payload[: 64 + (i * 37) % 4000])
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc" / "hosts").write_text("kept\n")
    (root / "kaniko").mkdir(exist_ok=True)


def _row(name: str, seconds: float, base: float | None = None) -> None:
    ratio = f"{seconds / base:6.1f}x" if base else "       "
    print(f"| {name:<44} | {seconds * 1000:10.1f} ms | {ratio} |")


def run_start(work: Path) -> None:
    if os.geteuid() != 0 or not busybox_available():
        print("| RUN start (skipped: needs root and busybox-static) | | |")
        return
    tar_path = make_busybox_rootfs_tar(work)
    rootfs = work / "rootfs"
    rootfs.mkdir()
    with tarfile.open(tar_path) as tar:
        tar.extractall(rootfs, filter="fully_trusted")
    scratch = work / "scratch"
    scratch.mkdir()
    spec = RunSpec(str(rootfs), ("/bin/true",), ("PATH=/bin",), str(scratch))
    chroot = ChrootIsolation()
    inplace = _median(lambda: run_process(["/bin/true"], ["PATH=/bin"], cwd=work), 10)
    _row("RUN `true`, in-place (plain child)", inplace)
    _row("RUN `true`, chroot sandbox", _median(lambda: chroot.run(spec), 10), inplace)
    _row("auto: probe for mount namespaces", _median(probe_namespaces, 5))


def tree_moves(work: Path, disk: Path, files: int) -> None:
    root, park_dir = work / "root", work / "park"
    root.mkdir(parents=True)
    _tree(root, files)
    park_dir.mkdir()
    _row(f"park a stage of {files} files (rename)", _median(lambda: _park(root, park_dir), 1))
    _row("bring it back (unpark)", _median(lambda: unpark(park_dir, root), 1))
    far = Path(tempfile.mkdtemp(dir=disk))
    try:
        small = work / "small"
        small.mkdir()
        _tree(small, files // 10)
        _row(
            f"park {files // 10} files across filesystems (copy)",
            _median(lambda: _park(small, far), 1),
        )
    finally:
        shutil.rmtree(far)
    _row(f"clear the root of {files} files", _median(lambda: clear_root(root, KEEP), 1))


def _park(root: Path, dest: Path) -> None:
    park(root, KEEP, dest)


def mounts(work: Path, files: int) -> None:
    root, cache, scratch = work / "mroot", work / "cache", work / "mscratch"
    for d in (root, scratch):
        d.mkdir(parents=True)
    cache.mkdir()
    _tree(cache, files)

    def cycle(m: BindMount) -> None:
        em = MountEmulation(root, scratch)
        em.put((m,))
        em.take_away()

    moved = _median(lambda: cycle(BindMount(str(cache), "/var/cache/x", kind="cache")), 5)
    _row(f"cache mount of {files} files in and out (rename)", moved)
    bind = _median(lambda: cycle(BindMount(str(cache), "/src")), 1)
    _row(f"bind mount of {files} files (copy, removed after)", bind, moved)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--disk", default=str(ROOT), help="a directory on another filesystem")
    args = ap.parse_args()
    base = "/dev/shm" if Path("/dev/shm").is_dir() else None
    work = Path(tempfile.mkdtemp(prefix="pykaniko-bench-", dir=base))
    try:
        print("| what | time | ratio |")
        print("|---|---:|---:|")
        run_start(work / "run")
        tree_moves(work / "tree", Path(args.disk), args.files)
        mounts(work / "mounts", args.files)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
