"""The sandbox's helper process: run by path (``python -I -S sandbox_child.py FD``) from
:mod:`pykaniko.executor.sandbox`, so it starts in a fresh, single-threaded interpreter
that imports nothing but the stdlib.

It reads the run spec (JSON) from file descriptor FD, then: enters a private mount
namespace and mounts ``/proc``, ``/sys``, ``/dev``, the host's name-resolution files and
the step's RUN mounts inside the rootfs (all of which vanish with the namespace); or,
where mounting is not allowed, makes basic device nodes with ``mknod`` and copies the
name-resolution files in. Then it chroots, drops to the step's uid/gid/groups, changes
into the workdir and ``execve``s the command with exactly the environment it was given.

Mount targets arrive already resolved to host paths inside the rootfs by the parent.
Exit status 125 means the sandbox itself failed; 126/127 that the command could not run.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import shutil
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
CLONE_NEWNET = 0x40000000

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


class SetupError(Exception):
    """The sandbox could not be prepared; reported on stdout, exit status 125."""


def _libc() -> Any:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _mount(libc: Any, source: str, target: str, fstype: str, flags: int) -> None:
    ok = libc.mount(source.encode(), target.encode(), fstype.encode(), ctypes.c_ulong(flags), None)
    if ok != 0:
        err = ctypes.get_errno()
        raise SetupError(f"mount {fstype or source} on {target}: {os.strerror(err)}")


def _warn_parent(message: str) -> None:
    sys.stdout.buffer.write(WARNING_PREFIX + message.encode() + b"\n")
    sys.stdout.buffer.flush()


def _host_file_target(root: str, name: str) -> str | None:
    target = os.path.join(root, name.lstrip("/"))
    if not os.path.exists(name) or os.path.islink(target):
        return None
    if not os.path.isdir(os.path.dirname(target)):
        return None
    return target


def _setup_namespace(libc: Any, spec: dict[str, Any]) -> bool:
    """Private mount namespace with /proc, /sys, /dev and the mounts; False if refused."""
    if libc.unshare(CLONE_NEWNS) != 0:
        return False
    root = spec["rootfs"]
    _mount(libc, "none", "/", "", MS_REC | MS_PRIVATE)
    _mount(libc, "proc", os.path.join(root, "proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    try:
        _mount(libc, "/sys", os.path.join(root, "sys"), "", MS_BIND | MS_REC)
    except SetupError:
        _mount(libc, "sysfs", os.path.join(root, "sys"), "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV)
    _mount(libc, "/dev", os.path.join(root, "dev"), "", MS_BIND | MS_REC)
    for name in HOST_FILES:
        target = _host_file_target(root, name)
        if target is None:
            continue
        if not os.path.exists(target):
            open(target, "a").close()
        _mount(libc, name, target, "", MS_BIND)
    for m in spec["mounts"]:
        where = m["host_target"]
        if m["kind"] == "tmpfs":
            _mount(libc, "tmpfs", where, "tmpfs", MS_NOSUID | MS_NODEV)
            continue
        _mount(libc, m["source"], where, "", MS_BIND | MS_REC)
        if m["readonly"]:
            _mount(libc, m["source"], where, "", MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC)
    return True


def _fallback(spec: dict[str, Any]) -> None:
    """No namespace: device nodes and name-resolution files are made in the rootfs
    (the parent restores the files afterwards; the snapshot ignores /dev)."""
    if spec["mounts"]:
        raise SetupError("RUN --mount needs a private mount namespace, which is not allowed here")
    root = spec["rootfs"]
    for name, major, minor in DEVICES:
        node = os.path.join(root, "dev", name)
        if os.path.lexists(node):
            continue
        try:
            os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
            os.chmod(node, 0o666)
        except OSError:
            continue
    for name in HOST_FILES:
        target = _host_file_target(root, name)
        if target is not None:
            shutil.copyfile(name, target)


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


def main(fd: int) -> int:
    with os.fdopen(fd, "rb") as pipe:
        spec: dict[str, Any] = json.loads(pipe.read())
    try:
        if not _setup_namespace(_libc(), spec):
            _warn_parent(
                "cannot create a mount namespace here (unprivileged container?): RUN gets "
                "device nodes made with mknod and no /proc or /sys"
            )
            _fallback(spec)
        if spec["network"] == "none" and _libc().unshare(CLONE_NEWNET) != 0:
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
    except (OSError, SetupError) as exc:
        sys.stdout.write(f"pykaniko sandbox: {exc}\n")
        sys.stdout.flush()
        return 125
    env = dict(item.partition("=")[::2] for item in spec["env"])
    argv = spec["argv"]
    try:  # execve only returns by raising
        os.execve(_lookup(argv[0], spec["env"]), argv, env)
    except OSError as exc:
        sys.stdout.write(f"pykaniko sandbox: cannot run {argv[0]!r}: {exc.strerror}\n")
        sys.stdout.flush()
        return 127 if exc.errno == 2 else 126


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
