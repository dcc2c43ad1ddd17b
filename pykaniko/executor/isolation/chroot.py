"""The chroot sandbox: the only place in pykaniko that forks, mounts or chroots.

A RUN step is executed by a fresh, single-threaded helper process
(:mod:`pykaniko.executor.isolation.sandbox_child`, run by path) so that nothing after ``fork``
runs in a multi-threaded interpreter. This side prepares what the helper needs, all
inside the rootfs and the build's scratch directory:

* every path the helper touches is resolved inside the rootfs first (a symlinked
  ``/etc``, ``/dev`` or mount target never leads out of it);
* missing mount points are made, and removed again afterwards with their parent's
  times restored, so they never reach a layer;
* the host's ``resolv.conf``, ``hosts`` and ``hostname`` are copied into the scratch
  directory and only the copies are mounted, so a RUN can never edit the host's;
* heredoc scripts are files in the scratch directory, mounted at ``/dev/pipes``.

The helper runs in its own process group with ``PR_SET_PDEATHSIG``, inside new mount
and PID namespaces when the kernel allows it; its output is pumped line by line to the
caller. When the command exits the whole group is killed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Final

from pykaniko.errors import SandboxError
from pykaniko.executor.fsutil import resolve_in_root
from pykaniko.executor.isolation import RunSpec
from pykaniko.executor.isolation.sandbox_child import HOST_FILES, WARNING_PREFIX

__all__ = ["ChrootSandbox"]

log = logging.getLogger(__name__)

_CHILD: Final = Path(__file__).with_name("sandbox_child.py")


@dataclass
class ChrootSandbox:
    """Runs steps in a chroot of their rootfs; see the module docstring."""

    python: str = sys.executable
    _warned: list[str] = field(default_factory=list)

    def run(self, spec: RunSpec, *, output: Callable[[bytes], None] | None = None) -> int:
        root = Path(spec.rootfs)
        scratch = Path(tempfile.mkdtemp(prefix="run-", dir=spec.scratch))
        created: list[_Created] = []
        saved: list[_Saved] = []
        before: dict[Path, set[str]] = {}
        try:
            wire = _prepare(root, spec, scratch, created)
            saved = _save_host_files(root, wire)
            before = _listings(wire)
            return self._spawn(wire, output)
        finally:
            _drop_new_entries(before)
            _restore_host_files(root, saved)
            _remove_created(created)
            shutil.rmtree(scratch, ignore_errors=True)

    def _spawn(self, wire: dict[str, object], output: Callable[[bytes], None] | None) -> int:
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
        out_fd = proc.stdout.fileno()
        reader = threading.Thread(
            target=self._pump, args=(out_fd, output), name="run-output", daemon=True
        )
        reader.start()
        try:
            with os.fdopen(write_fd, "wb") as pipe:
                pipe.write(json.dumps(wire).encode())
            status = proc.wait()
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            # a daemon that escaped the group (no PID namespace) may hold the pipe open:
            # wait a little for the last lines, never for the daemon
            reader.join(timeout=2)
        return status if status >= 0 else 128 - status

    def _pump(self, fd: int, output: Callable[[bytes], None] | None) -> None:
        """Forward output line by line; keep draining even if the consumer fails, so a
        RUN never blocks on a full pipe."""
        pending = b""
        forward = output
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                forward = self._emit(line + b"\n", forward)
        if pending:
            self._emit(pending, forward)

    def _emit(
        self, line: bytes, output: Callable[[bytes], None] | None
    ) -> Callable[[bytes], None] | None:
        if line.startswith(WARNING_PREFIX):
            self._warn(line[len(WARNING_PREFIX) :].decode(errors="replace").strip())
            return output
        if output is None:
            return None
        try:
            output(line)
        except Exception:  # a broken consumer must not stall the RUN
            log.debug("output callback failed; RUN output is no longer forwarded")
            return None
        return output

    def _warn(self, message: str) -> None:
        if message not in self._warned:
            self._warned.append(message)
            log.warning("%s", message)


@dataclass(frozen=True, slots=True)
class _Created:
    """A mount point we had to make, and the times its parent had before."""

    path: Path
    parent_times: tuple[int, int]


def _make(path: Path, created: list[_Created], *, directory: bool) -> None:
    """Create ``path`` (a resolved, non-existing path inside the rootfs), never
    following a symlink, and remember it with its parent's times."""
    st = os.stat(path.parent, follow_symlinks=False)
    if directory:
        os.mkdir(path, 0o755)
    else:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))
    created.append(_Created(path, (st.st_atime_ns, st.st_mtime_ns)))


def _ensure(root: Path, rootfs_path: str, created: list[_Created], *, directory: bool) -> Path:
    """The host path of a mount point inside the rootfs, created when missing."""
    parent = resolve_in_root(root, rootfs_path.rsplit("/", 1)[0] or "/")
    if not parent.is_dir():
        missing: list[Path] = []
        while not parent.exists() and not parent.is_symlink() and parent != root:
            missing.append(parent)
            parent = parent.parent
        for p in reversed(missing):
            _make(p, created, directory=True)
    target = resolve_in_root(root, rootfs_path)
    if not (target.exists() or target.is_symlink()):
        _make(target, created, directory=directory)
    return target


def _prepare(
    root: Path, spec: RunSpec, scratch: Path, created: list[_Created]
) -> dict[str, object]:
    """The spec as the helper reads it: every path resolved inside the rootfs, mount
    points made, private copies of the host's name-resolution files."""
    wire: dict[str, object] = asdict(spec)
    for name in ("proc", "sys", "dev"):
        wire[f"{name}_dir"] = str(_ensure(root, f"/{name}", created, directory=True))
    host_files: list[tuple[str, str]] = []
    for name in HOST_FILES:
        etc = resolve_in_root(root, "/etc")
        if not os.path.exists(name) or not etc.is_dir():
            continue
        copy = scratch / Path(name).name
        shutil.copyfile(name, copy)
        target = _ensure(root, name, created, directory=False)
        if target.is_file() and not target.is_symlink():
            host_files.append((str(copy), str(target)))
    wire["host_files"] = host_files
    wire["mounts"] = [
        {
            **asdict(m),
            "host_target": str(
                _ensure(
                    root,
                    m.target,
                    created,
                    directory=m.kind == "tmpfs" or os.path.isdir(m.source),
                )
            ),
        }
        for m in spec.mounts
    ]
    return wire


@dataclass(frozen=True, slots=True)
class _Saved:
    """A name-resolution file of the rootfs as it was before a RUN (the no-namespace
    fallback writes the host's over it)."""

    rootfs_path: str
    path: Path
    content: bytes
    stat: os.stat_result


def _save_host_files(root: Path, wire: dict[str, object]) -> list[_Saved]:
    saved: list[_Saved] = []
    targets = {target for _, target in wire["host_files"]}  # type: ignore[attr-defined]
    for name in HOST_FILES:
        path = resolve_in_root(root, name)
        if str(path) in targets and path.stat().st_size:
            saved.append(_Saved(name, path, path.read_bytes(), path.stat()))
    return saved


def _restore_host_files(root: Path, saved: list[_Saved]) -> None:
    """Put the rootfs's own files back, re-resolving them inside the rootfs (the RUN
    may have replaced ``/etc`` by a symlink) and never writing through a symlink."""
    for item in saved:
        path = resolve_in_root(root, item.rootfs_path)
        if path != item.path or path.is_symlink():
            continue
        with contextlib.suppress(OSError):
            if path.read_bytes() == item.content:
                continue
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW)
            with os.fdopen(fd, "wb") as f:
                f.write(item.content)
            os.chown(path, item.stat.st_uid, item.stat.st_gid)
            os.chmod(path, item.stat.st_mode & 0o7777)
            os.utime(path, ns=(item.stat.st_atime_ns, item.stat.st_mtime_ns))


def _listings(wire: dict[str, object]) -> dict[Path, set[str]]:
    """What /dev, /proc and /sys of the rootfs hold before a RUN."""
    out: dict[Path, set[str]] = {}
    for key in ("dev_dir", "proc_dir", "sys_dir"):
        path = Path(str(wire[key]))
        out[path] = set(os.listdir(path))
    return out


def _drop_new_entries(before: dict[Path, set[str]]) -> None:
    """Under Docker, /dev, /proc and /sys are mounts a RUN cannot leave anything in;
    where no namespace could hide them (the fallback), drop what the RUN added."""
    for path, names in before.items():
        with contextlib.suppress(OSError):
            for name in set(os.listdir(path)) - names:
                entry = path / name
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)


def _remove_created(created: list[_Created]) -> None:
    for item in reversed(created):
        with contextlib.suppress(OSError):
            st = os.lstat(item.path)
            if stat.S_ISDIR(st.st_mode):
                os.rmdir(item.path)
            elif stat.S_ISREG(st.st_mode):
                os.unlink(item.path)
            os.utime(item.path.parent, ns=item.parent_times, follow_symlinks=False)
