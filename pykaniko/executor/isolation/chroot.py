"""Chroot isolation: every stage has a rootfs directory of its own in the work dir, and
RUN runs chrooted into it. With the in-place mode's helpers, the only place in pykaniko
that forks, mounts or chroots.

A RUN step is executed by a fresh, single-threaded helper process
(:mod:`pykaniko.executor.isolation.sandbox_child`, run by path) so that nothing after
``fork`` runs in a multi-threaded interpreter. This side prepares what the helper needs,
all inside the rootfs and the build's scratch directory:

* every path the helper touches is resolved inside the rootfs first (a symlinked
  ``/etc``, ``/dev`` or mount target never leads out of it);
* missing mount points are made, and removed again afterwards with their parent's
  times restored, so they never reach a layer;
* the host's ``resolv.conf``, ``hosts`` and ``hostname`` are copied into the scratch
  directory and only the copies are mounted, so a RUN can never edit the host's;
* heredoc scripts are files in the scratch directory, mounted at ``/dev/pipes``.

The helper runs in its own process group with ``PR_SET_PDEATHSIG``, inside new mount
and PID namespaces when the kernel allows it; its output is pumped line by line to the
caller. When the command exits the whole group is killed. Where namespaces are refused
the helper falls back to device nodes made with mknod and no ``/proc``: the last resort
of an explicit ``--isolation=chroot`` (``auto`` takes the in-place mode there).
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
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from pykaniko.errors import SandboxError
from pykaniko.executor.fsutil import resolve_in_root
from pykaniko.executor.isolation import BindMount, RunSpec
from pykaniko.executor.isolation.mountpoint import Created, ensure_mount_point, remove_created
from pykaniko.executor.isolation.output import Forward, start_pump
from pykaniko.executor.isolation.sandbox_child import HOST_FILES, WARNING_PREFIX
from pykaniko.snapshot import IgnoreList

if TYPE_CHECKING:
    from pykaniko.executor.state import StageOutput
    from pykaniko.executor.workspace import Workspace

__all__ = ["ChrootIsolation", "probe_namespaces"]

log = logging.getLogger(__name__)

_CHILD: Final = Path(__file__).with_name("sandbox_child.py")
_NOTHING: Final = IgnoreList.of()


def probe_namespaces(python: str = sys.executable) -> str | None:
    """None when this process may make mount namespaces (and mount in them), else why
    not. Asked of a fresh helper process: the build's own, threaded process never forks
    to find out."""
    try:
        done = subprocess.run(
            [python, "-I", "-S", str(_CHILD), "--probe"],
            capture_output=True,  # no /dev/null: a bare chroot may have no /dev
            env={"PATH": os.defpath},
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"the probe could not run: {exc}"
    if done.returncode == 0:
        return None
    text = done.stdout.decode(errors="replace").strip().removeprefix("pykaniko sandbox: ")
    return text or f"the probe exited with {done.returncode}"


@dataclass
class ChrootIsolation:
    """Every stage in a rootfs directory of its own; RUN in a chroot of it, run by a
    fresh helper; see the module docstring."""

    python: str = sys.executable
    _warned: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return "chroot"

    def begin(self) -> None:
        return None

    def ignore_paths(self) -> tuple[str, ...]:
        return ()

    def extraction_ignore(self, ignore: IgnoreList) -> IgnoreList:
        """A rootfs directory of its own: layers are applied whole, as Docker does."""
        del ignore
        return _NOTHING

    def host_dirs(self) -> tuple[str, ...]:
        return ()  # the rootfs directory starts empty

    def acquire(self, out: StageOutput, workspace: Workspace) -> Path:
        return workspace.rootfs(out.index)

    def take_over(self, base: StageOutput, out: StageOutput, workspace: Workspace) -> bool:
        del workspace
        out.rootfs, out.snapshotter = base.rootfs, base.snapshotter
        base.rootfs, base.snapshotter = None, None
        return True

    def release(self, out: StageOutput, workspace: Workspace) -> None:
        if out.rootfs is not None:
            workspace.remove(out.rootfs.parent)
        out.rootfs, out.snapshotter = None, None

    def run(self, spec: RunSpec, *, output: Callable[[bytes], None] | None = None) -> int:
        root = Path(spec.rootfs)
        scratch = Path(tempfile.mkdtemp(prefix="run-", dir=spec.scratch))
        created: list[Created] = []
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
            remove_created(created)
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
        forward = Forward(output)

        def emit(line: bytes) -> None:
            if line.startswith(WARNING_PREFIX):
                self._warn(line[len(WARNING_PREFIX) :].decode(errors="replace").strip())
            else:
                forward(line)

        reader = start_pump(proc.stdout.fileno(), emit)
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

    def _warn(self, message: str) -> None:
        if message not in self._warned:
            self._warned.append(message)
            log.warning("%s", message)


def _bind_source(m: BindMount, scratch: Path) -> str:
    """The host path to bind: a ``rw`` bind gets a copy, so writes are thrown away
    (BuildKit); everything else is mounted as it is."""
    if m.kind != "bind" or m.readonly:
        return m.source
    copy = scratch / f"bind-{len(list(scratch.iterdir()))}"
    if os.path.isdir(m.source):
        shutil.copytree(m.source, copy, symlinks=True)
    else:
        shutil.copy2(m.source, copy)
    return str(copy)


def _prepare(root: Path, spec: RunSpec, scratch: Path, created: list[Created]) -> dict[str, object]:
    """The spec as the helper reads it: every path resolved inside the rootfs, mount
    points made, private copies of the host's name-resolution files."""
    wire: dict[str, object] = asdict(spec)
    for name in ("proc", "sys", "dev"):
        wire[f"{name}_dir"] = str(ensure_mount_point(root, f"/{name}", created, directory=True))
    host_files: list[tuple[str, str]] = []
    for name in HOST_FILES:
        etc = resolve_in_root(root, "/etc")
        if not os.path.exists(name) or not etc.is_dir():
            continue
        copy = scratch / Path(name).name
        shutil.copyfile(name, copy)
        target = ensure_mount_point(root, name, created, directory=False)
        if target.is_file() and not target.is_symlink():
            host_files.append((str(copy), str(target)))
    wire["host_files"] = host_files
    mounts: list[dict[str, object]] = []
    for m in spec.mounts:
        source = _bind_source(m, scratch) if m.kind != "tmpfs" else m.source
        directory = m.kind == "tmpfs" or os.path.isdir(source)
        target = ensure_mount_point(root, m.target, created, directory=directory)
        mounts.append({**asdict(m), "source": source, "host_target": str(target)})
    wire["mounts"] = mounts
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
