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
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Final, Protocol

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
        read_fd, write_fd = os.pipe()
        try:
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
                raise SandboxError(f"cannot start the sandbox helper: {exc}") from exc
            os.close(read_fd)
            read_fd = -1
            with os.fdopen(write_fd, "wb") as pipe:
                write_fd = -1
                pipe.write(json.dumps(_wire(spec, root)).encode())
            assert proc.stdout is not None
            for line in iter(proc.stdout.readline, b""):
                if line.startswith(WARNING_PREFIX):
                    self._warn(line.split(b":", 1)[1].decode(errors="replace").strip())
                    continue
                if output is not None:
                    output(line)
            status = proc.wait()
        finally:
            if read_fd >= 0:
                os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)
            with contextlib.suppress(ProcessLookupError, PermissionError, NameError):
                os.killpg(proc.pid, signal.SIGKILL)
            _restore_host_files(root, saved)
            _remove_created(created)
        return status if status >= 0 else 128 - status

    def _warn(self, message: str) -> None:
        if message not in self._warned:
            self._warned.append(message)
            log.warning("%s", message)


def _prepare_mount_points(root: Path, spec: RunSpec) -> list[Path]:
    """Create missing mount points; returns what we made so it can be removed after."""
    created: list[Path] = []

    def ensure(path: Path, *, directory: bool) -> None:
        missing: list[Path] = []
        parent = path.parent
        while not parent.exists() and parent != root:
            missing.append(parent)
            parent = parent.parent
        for p in reversed(missing):
            p.mkdir()
            created.append(p)
        if path.exists() or path.is_symlink():
            return
        if directory:
            path.mkdir()
        else:
            path.touch()
        created.append(path)

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


def _save_host_files(root: Path) -> list[tuple[Path, Path | None]]:
    """Remember the rootfs's own name-resolution files: a RUN sees the host's, and
    whatever it writes to them is undone afterwards (they are mounts under Docker)."""
    saved: list[tuple[Path, Path | None]] = []
    for name in HOST_FILES:
        target = root / name.lstrip("/")
        if target.is_symlink() or not target.parent.is_dir():
            continue
        if target.exists():
            backup = target.with_name(f".{target.name}.pykaniko-saved")
            shutil.copy2(target, backup, follow_symlinks=False)
            saved.append((target, backup))
        else:
            saved.append((target, None))
    return saved


def _restore_host_files(root: Path, saved: list[tuple[Path, Path | None]]) -> None:
    del root
    for target, backup in saved:
        with contextlib.suppress(OSError):
            if backup is None:
                target.unlink(missing_ok=True)
            else:
                os.replace(backup, target)


def _remove_created(created: list[Path]) -> None:
    for path in reversed(created):
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                path.rmdir()
            elif path.is_file() and path.stat().st_size == 0:
                path.unlink()
