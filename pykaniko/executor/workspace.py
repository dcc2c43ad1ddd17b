"""The build's work directory (``--kaniko-dir``): blob store, stage rootfs dirs, RUN
mount scratch. Everything pykaniko writes goes under it; nothing outside.

Each build works in its own ``build-*`` directory and holds an exclusive ``flock`` on
the ``.lock`` file inside it for as long as it runs. The kernel drops the lock when the
process dies, however it dies (SIGKILL, OOM killer), so a new build removes exactly
the directories whose lock it can take: those of dead builds. A directory only gets
its ``build-`` name once its lock is held (it is made under a ``.new-build-`` name and
renamed), so a directory being created is never mistaken for a stale one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pykaniko.image.blobstore import BlobStore

__all__ = ["Workspace", "remove_stale"]

LOCK_NAME = ".lock"
_PREFIX = "build-"
_STAGING = ".new-build-"
_STAGING_GRACE = 60.0  # seconds a lock-less staging dir may be mid-creation


@dataclass(frozen=True, slots=True)
class Workspace:
    root: Path
    store: BlobStore
    lock_fd: int = -1
    stale_removed: tuple[str, ...] = ()

    @classmethod
    def create(cls, base: Path) -> Workspace:
        """A fresh, locked per-build directory below ``base``, after removing the work
        directories of builds that died there (``stale_removed`` names them)."""
        base.mkdir(parents=True, exist_ok=True)
        removed = remove_stale(base)
        staging = Path(tempfile.mkdtemp(prefix=_STAGING, dir=base))
        fd = os.open(staging / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            root = base / (_PREFIX + staging.name[len(_STAGING) :])
            os.rename(staging, root)
        except BaseException:
            os.close(fd)
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return cls(root=root, store=BlobStore(root / "oci"), lock_fd=fd, stale_removed=removed)

    def rootfs(self, stage_index: int) -> Path:
        path = self.root / "stages" / str(stage_index) / "rootfs"
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o755)
        return path

    def scratch(self, name: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=name + "-", dir=self.root))

    def remove(self, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(path)

    def cleanup(self) -> None:
        """Remove the directory (still holding its lock), then let the lock go."""
        try:
            self.remove(self.root)
        finally:
            self.release()

    def release(self) -> None:
        """Give up the lock: the directory, if kept, is removed by the next build."""
        if self.lock_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.lock_fd)
            object.__setattr__(self, "lock_fd", -1)


def remove_stale(base: Path) -> tuple[str, ...]:
    """Remove the work directories in ``base`` that no live build holds; their names."""
    removed: list[str] = []
    try:
        entries = sorted(os.scandir(base), key=lambda e: e.name)
    except OSError:
        return ()
    mounted = _mount_points()
    for entry in entries:
        if not entry.name.startswith((_PREFIX, _STAGING)):
            continue
        real = os.path.realpath(entry.path)
        if any(m == real or m.startswith(real + "/") for m in mounted):
            continue  # something is mounted inside: never delete through a mount
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
        except OSError:
            continue
        if _remove_if_dead(Path(entry.path), staging=entry.name.startswith(_STAGING)):
            removed.append(entry.name)
    return tuple(removed)


def _remove_if_dead(path: Path, *, staging: bool) -> bool:
    try:
        fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        # no lock file: a work dir of an older pykaniko, or a staging dir whose
        # creator may be between mkdtemp and open (give that one a grace period)
        if staging and _age(path) < _STAGING_GRACE:
            return False
        shutil.rmtree(path, ignore_errors=True)
        return not path.exists()
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # a live build holds it
        shutil.rmtree(path, ignore_errors=True)
        return not path.exists()
    finally:
        os.close(fd)


def _mount_points() -> list[str]:
    """Mount points of this mount namespace (``/proc/self/mountinfo``, field 5)."""
    try:
        text = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return []
    points: list[str] = []
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) > 4:
            points.append(fields[4].replace("\\040", " "))
    return points


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0
