"""The chroot sandbox: the only place in pykaniko that forks, mounts or chroots.

A RUN step is executed by a fresh, single-threaded helper process (this module run as
``python -m pykaniko.executor.sandbox``) so that nothing after ``fork`` runs in a
multi-threaded interpreter. The helper reads its spec from a pipe, and then

1. enters a private mount namespace when it may (then ``/proc``, ``/sys``, ``/dev``,
   ``/dev/shm``, the host's ``resolv.conf``/``hosts``/``hostname`` and any RUN mounts
   are mounted inside the rootfs and vanish with the namespace);
2. otherwise (unprivileged containers) makes the basic device nodes with ``mknod``
   and copies the name-resolution files in, and the parent restores them afterwards;
3. chroots, switches to the step's uid/gid/groups, changes into the workdir and
   ``execve``s the command with exactly the environment it was given.

The parent runs it in its own process group and kills that group when the command
exits, so stray daemons never outlive their step.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Final, Protocol

from pykaniko.errors import SandboxError
from pykaniko.executor.fsutil import resolve_in_root
from pykaniko.executor.sandbox_child import HOST_FILES, WARNING_PREFIX

__all__ = ["BindMount", "ChrootSandbox", "RunSpec", "Sandbox"]

log = logging.getLogger(__name__)

_CHILD: Final = Path(__file__).with_name("sandbox_child.py")


@dataclass(frozen=True, slots=True)
class BindMount:
    """A host path made visible at ``target`` (rootfs-absolute) during one RUN.

    ``kind`` is ``bind`` (a host file or directory) or ``tmpfs``.
    """

    source: str
    target: str
    readonly: bool = False
    kind: str = "bind"


@dataclass(frozen=True, slots=True)
class RunSpec:
    rootfs: str
    argv: tuple[str, ...]
    env: tuple[str, ...]
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    groups: tuple[int, ...] = ()
    mounts: tuple[BindMount, ...] = ()
    network: str = "default"


class Sandbox(Protocol):
    def run(self, spec: RunSpec, *, output: Callable[[bytes], None] | None = None) -> int:
        """Run ``spec`` to completion and return its exit status."""
        ...


@dataclass
class ChrootSandbox:
    """Runs steps in a chroot of their rootfs; see the module docstring."""

    python: str = sys.executable
    _warned: list[str] = field(default_factory=list)

    def run(self, spec: RunSpec, *, output: Callable[[bytes], None] | None = None) -> int:
        root = Path(spec.rootfs)
        created = _prepare_mount_points(root, spec)
        saved = _save_host_files(root)
        try:
            return self._spawn(spec, root, output)
        finally:
            _restore_host_files(saved)
            _remove_created(created)

    def _spawn(self, spec: RunSpec, root: Path, output: Callable[[bytes], None] | None) -> int:
        """Start the helper in its own process group, feed it the spec, stream its output,
        and once the command exits kill whatever it left behind in the group."""
        read_fd, write_fd = os.pipe()
        try:
            proc = subprocess.Popen(
                [self.python, "-I", "-S", str(_CHILD), str(read_fd)],
                pass_fds=(read_fd,),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                process_group=0,
                env={"PATH": os.defpath},
                close_fds=True,
            )
        except OSError as exc:
            os.close(write_fd)
            raise SandboxError(f"cannot start the sandbox helper: {exc}") from exc
        finally:
            os.close(read_fd)
        assert proc.stdout is not None
        reader = threading.Thread(
            target=self._pump, args=(proc.stdout, output), name="run-output", daemon=True
        )
        reader.start()
        try:
            with os.fdopen(write_fd, "wb") as pipe:
                pipe.write(json.dumps(_wire(spec, root)).encode())
            status = proc.wait()
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            # a daemon that left the group may still hold the pipe: do not wait for it
            reader.join(timeout=2)
            proc.stdout.close()
        return status if status >= 0 else 128 - status

    def _pump(self, stream: IO[bytes], output: Callable[[bytes], None] | None) -> None:
        with contextlib.suppress(ValueError, OSError):
            for line in iter(stream.readline, b""):
                if line.startswith(WARNING_PREFIX):
                    self._warn(line[len(WARNING_PREFIX) :].decode(errors="replace").strip())
                elif output is not None:
                    output(line)

    def _warn(self, message: str) -> None:
        if message not in self._warned:
            self._warned.append(message)
            log.warning("%s", message)


@dataclass(frozen=True, slots=True)
class _Created:
    """A mount point we had to make, and the times its parent had before."""

    path: Path
    parent_times: tuple[int, int]


def _prepare_mount_points(root: Path, spec: RunSpec) -> list[_Created]:
    """Create missing mount points (removed again after the RUN, parent times restored,
    so they never reach a layer)."""
    created: list[_Created] = []

    def make(path: Path, *, directory: bool) -> None:
        st = path.parent.stat()
        if directory:
            path.mkdir()
        else:
            path.touch()
        created.append(_Created(path, (st.st_atime_ns, st.st_mtime_ns)))

    def ensure(path: Path, *, directory: bool) -> None:
        missing: list[Path] = []
        parent = path.parent
        while not parent.exists() and parent != root:
            missing.append(parent)
            parent = parent.parent
        for p in reversed(missing):
            make(p, directory=True)
        if not (path.exists() or path.is_symlink()):
            make(path, directory=directory)

    for name in ("proc", "sys", "dev"):
        ensure(root / name, directory=True)
    for mount in spec.mounts:
        target = resolve_in_root(root, mount.target)
        ensure(target, directory=mount.kind == "tmpfs" or os.path.isdir(mount.source))
    return created


def _wire(spec: RunSpec, root: Path) -> dict[str, object]:
    """The spec as the child reads it, mount targets resolved inside the rootfs."""
    data = asdict(spec)
    data["mounts"] = [
        {**asdict(m), "host_target": str(resolve_in_root(root, m.target))} for m in spec.mounts
    ]
    return data


@dataclass(frozen=True, slots=True)
class _Saved:
    """A name-resolution file as it was before a RUN, and its directory's times."""

    path: Path
    content: bytes | None
    stat: os.stat_result | None
    parent_times: tuple[int, int]


def _save_host_files(root: Path) -> list[_Saved]:
    """A RUN sees the host's resolv.conf/hosts/hostname (mounted over, or copied in);
    whatever happens to them is undone afterwards, directory times included, so they
    never show up in a layer (they are mounts under Docker too)."""
    saved: list[_Saved] = []
    for name in HOST_FILES:
        target = root / name.lstrip("/")
        if target.is_symlink() or not target.parent.is_dir():
            continue
        parent = target.parent.stat()
        times = (parent.st_atime_ns, parent.st_mtime_ns)
        if target.is_file():
            saved.append(_Saved(target, target.read_bytes(), target.stat(), times))
        elif not target.exists():
            saved.append(_Saved(target, None, None, times))
    return saved


def _restore_host_files(saved: list[_Saved]) -> None:
    for item in saved:
        with contextlib.suppress(OSError):
            if item.content is None:
                item.path.unlink(missing_ok=True)
            elif item.stat is not None and item.path.read_bytes() != item.content:
                item.path.write_bytes(item.content)
                os.chown(item.path, item.stat.st_uid, item.stat.st_gid)
                os.chmod(item.path, item.stat.st_mode & 0o7777)
                os.utime(item.path, ns=(item.stat.st_atime_ns, item.stat.st_mtime_ns))
            os.utime(item.path.parent, ns=item.parent_times)


def _remove_created(created: list[_Created]) -> None:
    for item in reversed(created):
        with contextlib.suppress(OSError):
            if item.path.is_dir() and not item.path.is_symlink():
                item.path.rmdir()
            elif item.path.is_file() and item.path.stat().st_size == 0:
                item.path.unlink()
            os.utime(item.path.parent, ns=item.parent_times)
