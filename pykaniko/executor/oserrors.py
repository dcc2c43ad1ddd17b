"""``OSError``s as a user should read them: the operation, the path inside the image
(never the host work directory, whose name means nothing to the user and changes each
build) and, for a full disk, how much room the build had taken.

``str(OSError)`` carries the host path (``/kaniko/build-x1y2/stages/0/rootfs/app``);
nothing here ever prints it. Paths are shown as the image sees them (``/app``), as
context paths (``app.tar in the build context``), or as the user's own output paths.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pykaniko.errors import BuildError, DiskFullError, Location, PykanikoError

__all__ = [
    "PathMap",
    "disk_full",
    "disk_nearly_full",
    "from_os_error",
    "is_disk_full",
    "output_file",
    "size_text",
    "tree_size",
]

_FULL = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True, slots=True)
class PathMap:
    """Where host paths come from: stage rootfs directories (shown as image paths), the
    build context, the work directory (never shown) and the kaniko dir (the user's)."""

    rootfs: Sequence[Path] = ()
    context: Path | None = None
    work_dir: Path | None = None
    kaniko_dir: Path | None = None

    def show(self, host: str | bytes | os.PathLike[str] | None) -> str | None:
        """``host`` as the user knows it; None when it is nothing they could know."""
        if host is None:
            return None
        text = os.fsdecode(host)
        path = os.path.abspath(text)
        for root in self.rootfs:
            rel = _below(path, str(root))
            if rel is not None:
                return "/" + rel
        if self.context is not None:
            rel = _below(path, os.path.abspath(self.context))
            if rel is not None:
                return f"{rel or '.'} in the build context"
        if self.work_dir is not None:
            rel = _below(path, str(self.work_dir))
            if rel is not None:
                return _in_work_dir(rel)
        return text


def _in_work_dir(rel: str) -> str | None:
    """A work-dir path that is inside some rootfs (another stage's, an image's
    partial extraction): the part below the rootfs; anything else is hidden."""
    parts = rel.split("/")
    if len(parts) >= 3 and parts[0] == "stages" and parts[2] == "rootfs":
        return "/" + "/".join(parts[3:]) + f" (in stage {parts[1]})"
    if parts[0].startswith("image-"):
        return "/" + "/".join(parts[1:]) + " (in the source image)"
    return None


def _below(path: str, root: str) -> str | None:
    root = root.rstrip("/")
    if path == root:
        return ""
    if path.startswith(root + "/"):
        return path[len(root) + 1 :]
    return None


def size_text(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def tree_size(root: Path) -> int:
    """Bytes a directory tree holds on disk (allocated blocks, hardlinks once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def disk_nearly_full(path: Path, *, margin: int = 1 << 20) -> bool:
    """Whether the filesystem holding ``path`` has less than ``margin`` bytes free (a
    RUN that failed there most likely failed for that)."""
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < margin


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` or what caused it is ENOSPC/EDQUOT."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno in _FULL:
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def disk_full(
    operation: str,
    *,
    where: Path,
    flag: str,
    used_by_build: Path | None = None,
    needed: int | None = None,
    location: Location | None = None,
) -> DiskFullError:
    """A DiskFullError saying which filesystem filled and how much the build had put
    there (``used_by_build``, measured now, before the work dir is cleaned)."""
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        st = os.statvfs(where)
        total, free = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
        fs = f" ({size_text(total)}, {size_text(free)} free)"
    except OSError:
        fs = ""
    message = f"{operation}: no space left on the device holding {flag}{fs}"
    hint = f"give {flag} more room"
    if used_by_build is not None:
        used = tree_size(used_by_build)
        message += f"; the build needed more than the {size_text(used)} it had written there"
        hint = f"give {flag} more than {size_text(used)} of free space"
    if needed is not None:
        message += f"; it needs about {size_text(needed)}"
        hint = f"give {flag} about {size_text(needed)} of free space"
    return DiskFullError(message, location=location, hint=hint)


@contextlib.contextmanager
def output_file(flag: str, path: Path, *, needed: int | None = None) -> Iterator[None]:
    """Writing an output the user named (``--tar-path``, ``--digest-file``...): an
    OSError names the flag and the path, never a work-dir file it was copied from."""
    try:
        yield
    except OSError as exc:
        if exc.errno in _FULL:
            raise disk_full(
                f"writing {flag}={path}", where=path.parent, flag=f"{flag}={path}", needed=needed
            ) from exc
        raise BuildError(
            f"cannot write {flag}={path}: {exc.strerror or type(exc).__name__}"
        ) from exc


def from_os_error(
    exc: OSError,
    operation: str,
    paths: PathMap,
    *,
    location: Location | None = None,
    path: str | None = None,
) -> PykanikoError:
    """One error for ``exc``, raised while doing ``operation`` (``COPY app /srv``,
    ``writing the layer``): ``path`` (inside the image) or the error's own file names,
    mapped by ``paths``."""
    if exc.errno in _FULL and paths.kaniko_dir is not None:
        return disk_full(
            operation,
            where=paths.kaniko_dir,
            flag=f"--kaniko-dir={paths.kaniko_dir}",
            used_by_build=paths.work_dir,
            location=location,
        )
    names = [path] if path else [paths.show(exc.filename), paths.show(exc.filename2)]
    shown = [n for n in names if n]
    reason = exc.strerror or type(exc).__name__
    if exc.errno in _FULL:
        reason = "no space left on device"
    where = f" ({' -> '.join(shown)})" if shown else ""
    return BuildError(f"{operation}: {reason}{where}", location=location)
