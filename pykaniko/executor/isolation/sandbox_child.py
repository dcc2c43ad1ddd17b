"""The sandbox's helper process: run by path (``python -I -S sandbox_child.py FD``) from
:mod:`pykaniko.executor.isolation.chroot`, so it starts in a fresh, single-threaded interpreter
that imports nothing but the stdlib.

It reads the run spec (JSON) from file descriptor FD. Every path in it was resolved
inside the rootfs by the parent, and the mount points exist. Then, when the kernel lets
it, it enters new mount and PID namespaces and mounts, inside the rootfs only:

* ``/sys`` read-only, a fresh ``/proc`` for the new PID namespace;
* ``/dev`` as a small tmpfs holding bind mounts of the basic devices, its own ``pts``
  and ``shm``, and the step's heredoc scripts under ``/dev/pipes``;
* private copies of the host's ``resolv.conf``, ``hosts`` and ``hostname`` (a RUN may
  edit them; the host's own files are never reachable);
* the step's RUN mounts.

It forks: the child is PID 1 of the new namespace, chroots, drops to the step's uid,
gid and groups, and ``execve``s the command with exactly the environment it was given.
When that command exits the kernel kills every process it left behind (``setsid``
daemons included) and all the mounts vanish with the namespace.

Where namespaces are refused (unprivileged containers) it falls back to device nodes
made with ``mknod`` and files written into the rootfs, which the parent restores.

Exit status 125 means the sandbox itself failed; 126/127 that the command could not run.
``--probe`` only tells whether mount namespaces work here (``--isolation=auto``).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import json
import os
import signal
import stat
import sys
from typing import Any

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
CLONE_NEWNS = 0x00020000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1

HOST_FILES = ("/etc/resolv.conf", "/etc/hosts", "/etc/hostname")
WARNING_PREFIX = b"\x00pykaniko-warning:"
DEVICES = (
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
)
DEV_LINKS = (
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
)


class SetupError(Exception):
    """The sandbox could not be prepared; reported on stdout, exit status 125."""


def _libc() -> Any:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _mount(  # noqa: PLR0917  mount(2)'s own argument list
    libc: Any, source: str, target: str, fstype: str, flags: int, data: str = ""
) -> None:
    ok = libc.mount(
        source.encode(),
        target.encode(),
        fstype.encode(),
        ctypes.c_ulong(flags),
        data.encode() if data else None,
    )
    if ok != 0:
        err = ctypes.get_errno()
        raise SetupError(f"mount {fstype or source} on {target}: {os.strerror(err)}")


def _warn_parent(message: str) -> None:
    sys.stdout.buffer.write(WARNING_PREFIX + message.encode() + b"\n")
    sys.stdout.buffer.flush()


def _touch(path: str, mode: int = 0o644) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    os.close(fd)


def _write_nofollow(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` without ever following a symlink at ``path``."""
    if os.path.islink(path):
        os.unlink(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _make_dev(libc: Any, dev: str, scripts: list[list[str]]) -> None:
    """A tmpfs /dev with the basic devices bound from the host, pts, shm and scripts."""
    _mount(libc, "tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=65536k")
    for name, _major, _minor in DEVICES:
        node = os.path.join(dev, name)
        _touch(node, 0o666)
        _mount(libc, f"/dev/{name}", node, "", MS_BIND)
    for name, target in DEV_LINKS:
        os.symlink(target, os.path.join(dev, name))
    os.mkdir(os.path.join(dev, "pts"), 0o755)
    with contextlib.suppress(SetupError):  # a /dev without ptys still runs most steps
        _mount(libc, "devpts", os.path.join(dev, "pts"), "devpts", MS_NOSUID | MS_NOEXEC,
               "newinstance,ptmxmode=0666,mode=0620")  # fmt: skip
    os.mkdir(os.path.join(dev, "shm"), 0o1777)
    os.chmod(os.path.join(dev, "shm"), 0o1777)
    _mount(libc, "tmpfs", os.path.join(dev, "shm"), "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    if scripts:
        pipes = os.path.join(dev, "pipes")
        os.mkdir(pipes, 0o755)
        for source, name in scripts:
            target = os.path.join(pipes, name)
            _touch(target, 0o755)
            _mount(libc, source, target, "", MS_BIND)
            _mount(libc, source, target, "", MS_BIND | MS_REMOUNT | MS_RDONLY)


def _setup_namespaces(libc: Any, spec: dict[str, Any]) -> bool | None:
    """Mount and PID namespaces with everything mounted: True; only a mount namespace:
    False; none allowed: None."""
    if libc.unshare(CLONE_NEWNS | CLONE_NEWPID) == 0:
        pid_ns = True
    elif libc.unshare(CLONE_NEWNS) == 0:
        pid_ns = False
    else:
        return None
    _mount(libc, "none", "/", "", MS_REC | MS_PRIVATE)
    sys_dir = spec["sys_dir"]
    try:
        _mount(libc, "/sys", sys_dir, "", MS_BIND | MS_REC)
        _mount(libc, "/sys", sys_dir, "", MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC)
    except SetupError:
        _mount(libc, "sysfs", sys_dir, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _make_dev(libc, spec["dev_dir"], spec["scripts"])
    for source, target in spec["host_files"]:
        _mount(libc, source, target, "", MS_BIND)
    for m in spec["mounts"]:
        where = m["host_target"]
        if m["kind"] == "tmpfs":
            _mount(libc, "tmpfs", where, "tmpfs", MS_NOSUID | MS_NODEV)
            continue
        _mount(libc, m["source"], where, "", MS_BIND | MS_REC)
        if m["readonly"]:
            _mount(libc, m["source"], where, "", MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC)
    return pid_ns


def _fallback(spec: dict[str, Any]) -> None:
    """No namespaces: device nodes, name-resolution files and scripts are made in the
    rootfs (``/dev`` is never snapshotted; the parent restores the files)."""
    if spec["mounts"]:
        raise SetupError("RUN --mount needs a private mount namespace, which is not allowed here")
    dev = spec["dev_dir"]
    for name, major, minor in DEVICES:
        node = os.path.join(dev, name)
        if os.path.lexists(node):
            continue
        try:
            os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
            os.chmod(node, 0o666)
        except OSError:
            continue
    for source, target in spec["host_files"]:
        with open(source, "rb") as f:
            _write_nofollow(target, f.read())
    if spec["scripts"]:
        pipes = os.path.join(dev, "pipes")
        if not os.path.isdir(pipes) or os.path.islink(pipes):
            os.mkdir(pipes, 0o755)
        for source, name in spec["scripts"]:
            with open(source, "rb") as f:
                _write_nofollow(os.path.join(pipes, name), f.read())
            os.chmod(os.path.join(pipes, name), 0o755)


def _lookup(argv0: str, env: list[str]) -> str:
    """PATH lookup inside the (already chrooted) filesystem, with the image's PATH."""
    if "/" in argv0:
        return argv0
    path = next((e[5:] for e in env if e.startswith("PATH=")), os.defpath)
    for directory in path.split(":"):
        candidate = os.path.join(directory or ".", argv0)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return argv0


def _fail(message: str, status: int) -> int:
    sys.stdout.write(f"pykaniko sandbox: {message}\n")
    sys.stdout.flush()
    return status


def _exec(libc: Any, spec: dict[str, Any], *, mount_proc: bool) -> int:
    """Enter the rootfs as the step's user and run its command (returns only on error)."""
    try:
        if mount_proc:
            _mount(libc, "proc", spec["proc_dir"], "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        if spec["network"] == "none" and libc.unshare(CLONE_NEWNET) != 0:
            raise SetupError("RUN --network=none needs a network namespace, not allowed here")
        os.chroot(spec["rootfs"])
        os.chdir("/")
        try:
            os.chdir(spec["cwd"])
        except OSError:
            os.chdir("/")
        os.setgroups(spec["groups"])
        os.setgid(spec["gid"])
        os.setuid(spec["uid"])
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # cleared by setuid: set now
    except (OSError, SetupError) as exc:
        return _fail(str(exc), 125)
    env = dict(item.partition("=")[::2] for item in spec["env"])
    argv = spec["argv"]
    try:  # execve only returns by raising
        os.execve(_lookup(argv[0], spec["env"]), argv, env)
    except OSError as exc:
        return _fail(f"cannot run {argv[0]!r}: {exc.strerror}", 127 if exc.errno == 2 else 126)


def _status(wait_status: int) -> int:
    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    return os.WEXITSTATUS(wait_status)


def main(fd: int) -> int:
    with os.fdopen(fd, "rb") as pipe:
        spec: dict[str, Any] = json.loads(pipe.read())
    libc = _libc()
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    try:
        pid_ns = _setup_namespaces(libc, spec)
        if pid_ns is None:
            _warn_parent(
                "cannot create mount namespaces here (unprivileged container?): RUN gets "
                "device nodes made with mknod and no /proc or /sys"
            )
            _fallback(spec)
    except (OSError, SetupError) as exc:
        return _fail(str(exc), 125)
    if not pid_ns:
        return _exec(libc, spec, mount_proc=pid_ns is False)
    sys.stdout.flush()
    child = os.fork()
    if child == 0:  # PID 1 of the new namespace
        os._exit(_exec(libc, spec, mount_proc=True))
    while True:
        try:
            _, wait_status = os.waitpid(child, 0)
            return _status(wait_status)
        except InterruptedError:
            continue


def probe() -> int:
    """``--probe``: can this process make a mount namespace and mount in it? Exit 0 if
    so, else 1 with the reason on stdout. Run as a process of its own, so the namespace
    it makes dies with it."""
    libc = _libc()
    if libc.unshare(CLONE_NEWNS) != 0:
        return _fail(f"unshare(CLONE_NEWNS): {os.strerror(ctypes.get_errno())}", 1)
    if libc.mount(b"none", b"/", None, ctypes.c_ulong(MS_REC | MS_PRIVATE), None) != 0:
        err = ctypes.get_errno()
        if err != errno.EINVAL:  # EINVAL: "/" is no mount point (a plain chroot)
            return _fail(f"mount none on /: {os.strerror(err)}", 1)
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--probe"]:
        sys.exit(probe())
    sys.exit(main(int(sys.argv[1])))
