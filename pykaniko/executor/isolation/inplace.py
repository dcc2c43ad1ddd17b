"""In-place isolation (Kaniko's mode): the stage's rootfs is the container's own ``/``.

For unprivileged containers, where mount namespaces are refused. Everything outside
the *keep* list (the kaniko dir, ``/proc``, ``/sys``, ``/dev``, every mount point, the
build context, ``PYKANIKO_IGNORE_PATHS``...) is removed before a base is unpacked;
layers are extracted onto ``/`` skipping kept paths, and snapshots walk ``/`` minus
them.

One stage occupies the root at a time. A finished stage that a later stage still reads
is *parked* (moved into ``<workspace>/stages/<i>/rootfs``) when the next stage needs the
root, so ``COPY --from`` reads it exactly as in the chroot mode; a child that is its
base's last user takes the root over where it is, or moves the parked tree back.

RUN is a plain child process in ``/`` with the container's ``/proc``
(:func:`run_process`); mounts are emulated (:mod:`.emulate`); heredoc scripts are
written into ``/dev/pipes`` (``/dev`` is never snapshotted) or, when ``/dev`` is
read-only, into a private directory in the kaniko dir.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from pykaniko.errors import BuildError, SandboxError
from pykaniko.executor.fsutil import resolve_in_root
from pykaniko.executor.isolation import RunSpec
from pykaniko.executor.isolation.emulate import MountEmulation
from pykaniko.executor.isolation.output import Forward, start_pump
from pykaniko.executor.isolation.treeops import clear_root, holders, park, remove_entry, unpark
from pykaniko.snapshot import IgnoreList

if TYPE_CHECKING:
    from pykaniko.executor.state import StageOutput
    from pykaniko.executor.workspace import Workspace

__all__ = ["InPlaceIsolation", "children_of", "run_process", "set_child_subreaper"]

log = logging.getLogger(__name__)

_PR_SET_CHILD_SUBREAPER: Final = 36
_PIPES: Final = "/dev/pipes"


def set_child_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants, so a daemon a RUN
    leaves behind (``setsid``, double fork) is reparented to us and can be killed."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)


def children_of(pid: int, proc: Path = Path("/proc")) -> set[int]:
    """The processes whose parent is ``pid``: from ``task/*/children`` (one small read
    per thread), else by reading every process's status."""
    out: set[int] = set()
    try:
        tasks = os.listdir(proc / str(pid) / "task")
        for tid in tasks:
            out.update(
                int(c) for c in (proc / str(pid) / "task" / tid / "children").read_text().split()
            )
    except FileNotFoundError:
        return _children_by_scan(pid, proc)
    except OSError:
        pass
    return out


def _children_by_scan(pid: int, proc: Path) -> set[int]:
    out: set[int] = set()
    try:
        names = os.listdir(proc)
    except OSError:
        return out
    for name in names:
        if not name.isdigit():
            continue
        try:
            text = (proc / name / "status").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("PPid:"):
                if int(line.split()[1]) == pid:
                    out.add(int(name))
                break
    return out


def _kill_new_children(before: set[int], proc: Path) -> int:
    """SIGKILL and reap every child of ours that was not there before the RUN, again
    until none is left (killing one reparents its own children to us)."""
    me = os.getpid()
    killed = 0
    for _ in range(1000):
        fresh = children_of(me, proc) - before
        if not fresh:
            break
        for pid in fresh:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            killed += 1
    return killed


def run_process(
    argv: Sequence[str],
    env: Sequence[str],
    *,
    cwd: Path,
    uid: int = 0,
    gid: int = 0,
    groups: Sequence[int] = (),
    output: Callable[[bytes], None] | None = None,
    proc: Path = Path("/proc"),
) -> int:
    """Run one command as a plain child: exactly ``env`` (never ours), stdin from
    /dev/null, output pumped line by line, its own process group. When it exits the
    group is killed, and so is every orphan reparented to us meanwhile (we are the
    child subreaper). Returns the exit status (128+N for signal N; 126/127 when the
    command cannot be started, as a shell does)."""
    forward = Forward(output)
    before = children_of(os.getpid(), proc)
    privileged = os.geteuid() == 0
    if not privileged and (uid, gid) != (os.geteuid(), os.getegid()):
        raise SandboxError(f"cannot run as {uid}:{gid}: pykaniko is not running as root")
    environ = dict(item.partition("=")[::2] for item in env)
    try:
        child = subprocess.Popen(
            list(argv),
            env=environ,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,
            close_fds=True,
            user=uid if privileged else None,
            group=gid if privileged else None,
            extra_groups=list(groups) if privileged else None,
        )
    except OSError as exc:
        forward(f"pykaniko: cannot run {argv[0]!r}: {exc.strerror}\n".encode())
        return 127 if isinstance(exc, FileNotFoundError) else 126
    assert child.stdout is not None
    reader = start_pump(child.stdout.fileno(), forward)
    try:
        status: int = child.wait()
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        _kill_new_children(before, proc)
        reader.join(timeout=2)
        child.stdout.close()
    return status if status >= 0 else 128 - status


@dataclass
class InPlaceIsolation:
    """Stages built on ``root`` (``/`` in a build; a temporary directory in tests).

    ``keep`` lists the container's own paths; ``kaniko_dir`` takes private files when
    ``/dev`` is read-only.
    """

    keep: IgnoreList
    kaniko_dir: Path
    root: Path = Path("/")
    proc: Path = Path("/proc")
    _occupant: StageOutput | None = field(default=None, init=False, repr=False)

    @property
    def name(self) -> str:
        return "in-place"

    def begin(self) -> None:
        """Work from the root (as Kaniko does; every path was made absolute) and become
        the child subreaper."""
        os.chdir(self.root)
        if not set_child_subreaper():
            log.debug("PR_SET_CHILD_SUBREAPER refused: orphans of a RUN go to PID 1")

    def ignore_paths(self) -> tuple[str, ...]:
        return tuple(sorted(self.keep.exact))

    def extraction_ignore(self, ignore: IgnoreList) -> IgnoreList:
        """Kept paths are the container's: never written or removed. VOLUME entries are
        image content when a layer is applied, so only the exact entries count."""
        return IgnoreList.of(exact=ignore.exact)

    def host_dirs(self) -> tuple[str, ...]:
        """The directories holding kept paths (``/secrets`` of a secret mounted at
        ``/secrets/tok``, ``/builds/group`` of the GitLab checkout): never cleared, so
        not new to the image unless a step writes them."""
        return tuple(sorted(holders(self.keep)))

    def acquire(self, out: StageOutput, workspace: Workspace) -> Path:
        self._vacate(workspace)
        self._clear()
        self._occupant = out
        return self.root

    def take_over(self, base: StageOutput, out: StageOutput, workspace: Workspace) -> bool:
        if base is self._occupant and base.rootfs == self.root:
            out.rootfs, out.snapshotter = base.rootfs, base.snapshotter
        elif base.rootfs is not None:  # parked: bring it back
            parked = base.rootfs
            self._vacate(workspace)
            self._clear()
            unpark(parked, self.root)
            workspace.remove(parked.parent)
            # entries moved twice have new ctimes (or inodes, across filesystems):
            # a fresh baseline of what is there now
            out.rootfs, out.snapshotter = self.root, None
        else:
            return False
        base.rootfs, base.snapshotter = None, None
        self._occupant = out
        return True

    def release(self, out: StageOutput, workspace: Workspace) -> None:
        if out is self._occupant:
            self._occupant = None  # left where it is: the next acquire clears the root
        elif out.rootfs is not None:
            workspace.remove(out.rootfs.parent)
        out.rootfs, out.snapshotter = None, None

    def _vacate(self, workspace: Workspace) -> None:
        """Park the stage at the root if a later stage still reads it."""
        occupant, self._occupant = self._occupant, None
        if occupant is None or occupant.rootfs != self.root:
            return
        dest = workspace.rootfs(occupant.index)
        try:
            park(self.root, self.keep, dest)
        except OSError as exc:
            raise SandboxError(f"cannot park stage {occupant.index} in {dest}: {exc}") from exc
        occupant.rootfs, occupant.snapshotter = dest, None

    def _clear(self) -> None:
        problems = clear_root(self.root, self.keep)
        for line in problems[:20]:
            log.warning("in-place: could not remove %s", line)

    def run(self, spec: RunSpec, *, output: Callable[[bytes], None] | None = None) -> int:
        if spec.network == "none":
            raise BuildError(
                "RUN --network=none needs a network namespace of its own, "
                "which in-place isolation cannot make",
                hint="build where mount namespaces work (--isolation=chroot)",
            )
        root = Path(spec.rootfs)
        mounts = MountEmulation(root, Path(spec.scratch), self.keep)
        scripts = _Scripts(root, self.kaniko_dir)
        try:
            mounts.put(spec.mounts)
            argv = scripts.put(spec)
            cwd = resolve_in_root(root, spec.cwd)
            return run_process(
                argv,
                spec.env,
                cwd=cwd if cwd.is_dir() else root,
                uid=spec.uid,
                gid=spec.gid,
                groups=spec.groups,
                output=output,
                proc=self.proc,
            )
        finally:
            scripts.take_away()
            mounts.take_away()


class _Scripts:
    """Heredoc scripts at ``/dev/pipes/NAME`` (BuildKit's path), written there when
    ``/dev`` is writable, else into a private directory in the kaniko dir (the command
    line then names that path)."""

    def __init__(self, root: Path, kaniko_dir: Path) -> None:
        self.root = root
        self.kaniko_dir = kaniko_dir
        self._made: list[Path] = []

    def put(self, spec: RunSpec) -> list[str]:
        argv = list(spec.argv)
        if not spec.scripts:
            return argv
        try:
            where = self._pipes()
            for source, name in spec.scripts:
                _write_script(Path(source), where / name, self._made)
        except OSError:  # a read-only /dev
            self.take_away()
        else:
            return argv
        where = Path(tempfile.mkdtemp(prefix="pipes-", dir=self.kaniko_dir))
        self._made.append(where)
        os.chmod(where, 0o755)
        for source, name in spec.scripts:
            _write_script(Path(source), where / name, [])
            argv = [str(where / name) if a == f"{_PIPES}/{name}" else a for a in argv]
        return argv

    def _pipes(self) -> Path:
        dev = resolve_in_root(self.root, "/dev")
        if not dev.is_dir() or dev.is_symlink():
            raise OSError("no /dev directory")
        pipes = dev / "pipes"
        if not pipes.is_dir():
            os.mkdir(pipes, 0o755)
            self._made.append(pipes)
        return pipes

    def take_away(self) -> None:
        for path in reversed(self._made):
            with contextlib.suppress(OSError):
                remove_entry(path)
        self._made = []


def _write_script(source: Path, target: Path, made: list[Path]) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o755)
    made.append(target)
    with os.fdopen(fd, "wb") as f:
        f.write(source.read_bytes())
    os.chmod(target, 0o755)
