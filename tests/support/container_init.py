"""The inside of a test container: what a container runtime does between ``unshare``
and ``exec``, for an image rootfs, never touching the host's ``/``.

Run by :mod:`tests.support.container` as
``unshare --mount --pid --uts --ipc --fork --propagation private --kill-child
/usr/bin/python3 container_init.py SPEC.json``; it is PID 1 of the new PID namespace
until it execs the command. It is standalone (the standard library plus Debian's
``python3-seccomp``, hence ``/usr/bin/python3`` and not the project's venv) and does,
in order:

1. the root: an overlayfs with the unpacked image as its lower directory and the
   container's own upper directory (what Docker does); where overlayfs is refused,
   a copy of the image (made on the first run) bound on itself;
2. ``/proc``; a read-only ``/sys``; a small tmpfs ``/dev`` with null, zero, full,
   random, urandom, tty, ``shm``, ``pts`` (own devpts instance) and the usual links;
   Docker's masked and read-only ``/proc`` paths;
3. the build context on ``/workspace`` and the spec's extra binds; copies of the host's
   ``/etc/hosts``, ``/etc/resolv.conf`` and a ``/etc/hostname`` bound over the image's
   (they appear in ``/proc/self/mountinfo`` as in Docker); ``/.dockerenv``;
4. ``chroot``, ``chdir`` to the working directory;
5. Docker's default capability bounding set (``0xa80425fb``) and a seccomp filter
   refusing ``mount``, ``umount2``, ``unshare``, ``setns``, ``pivot_root``, the new mount
   API and ``clone`` with any ``CLONE_NEW*`` flag (EPERM), ``clone3`` (ENOSYS), loaded
   while still privileged and without ``no_new_privs``, as Docker does;
6. ``exec`` of the command as uid 0 with exactly the spec's environment.

Everything mounted here lives in the namespace and goes with it. A failure before the
exec exits 125 with one line on stderr (``docker run``'s convention); a command that
cannot be found exits 127, one that cannot be executed 126.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import seccomp  # Debian's python3-seccomp (no stubs; see pyproject)

# mount(2) flags
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18

PR_CAPBSET_DROP = 24
#: Docker's default capabilities: chown dac_override fowner fsetid kill setgid setuid
#: setpcap net_bind_service net_raw sys_chroot mknod audit_write setfcap.
DOCKER_CAPS = 0xA80425FB

CLONE_NEW_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)
REFUSED = (
    "mount", "umount2", "unshare", "setns", "pivot_root",
    "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
)  # fmt: skip

#: What Docker hides (``/dev/null`` over files, an empty read-only tmpfs over dirs)
#: and what it makes read-only inside ``/proc``.
MASKED = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware",
)  # fmt: skip
READONLY = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

DEVICES = (  # name, major, minor, mode
    ("null", 1, 3, 0o666),
    ("zero", 1, 5, 0o666),
    ("full", 1, 7, 0o666),
    ("random", 1, 8, 0o666),
    ("urandom", 1, 9, 0o666),
    ("tty", 5, 0, 0o666),
)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = (
    ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p,
)  # fmt: skip


class InitError(Exception):
    pass


def mount(source: str, target: str | Path, fstype: str | None, flags: int, data: str = "") -> None:
    rc = _libc.mount(
        source.encode(),
        str(target).encode(),
        fstype.encode() if fstype else None,
        flags,
        data.encode() if data else None,
    )
    if rc != 0:
        err = ctypes.get_errno()
        raise InitError(f"mount {source} on {target} ({fstype}): {os.strerror(err)}")


def bind(
    source: str | Path, target: Path, *, readonly: bool = False, recursive: bool = False
) -> None:
    flags = MS_BIND | (MS_REC if recursive else 0)
    mount(str(source), target, None, flags)
    if readonly:
        mount("none", target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | flags)


def inside(root: Path, path: str) -> Path:
    """``root``/``path`` for a container path; refuses to follow symlinks out of the
    root (the image's ``/etc`` or ``/dev`` could be links)."""
    target = root / path.lstrip("/")
    parent = target.parent.resolve()
    if parent != root and root not in parent.parents:
        raise InitError(f"{path}: leads out of the container root")
    return parent / target.name


def mount_point(root: Path, path: str, *, directory: bool) -> Path:
    target = inside(root, path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink():
        target.unlink()
    if directory:
        target.mkdir(exist_ok=True)
    elif not target.exists():
        target.touch()
    return target


def make_root(spec: dict[str, Any]) -> Path:
    root = Path(str(spec["root"]))
    lower, upper, work = (Path(str(spec[k])) for k in ("lower", "upper", "work"))
    root.mkdir(exist_ok=True)
    if spec["mode"] == "overlay":
        mount("overlay", root, "overlay", 0, f"lowerdir={lower},upperdir={upper},workdir={work}")
    else:  # copy: the upper directory is the whole root, made from the image once
        if not any(upper.iterdir()):
            subprocess.run(["cp", "-a", f"{lower}/.", str(upper)], check=True)
        bind(upper, root)
    return root.resolve()


def make_dev(root: Path) -> None:
    dev = mount_point(root, "/dev", directory=True)
    mount("tmpfs", dev, "tmpfs", MS_NOSUID, "mode=755,size=65536k")
    for name, major, minor, mode in DEVICES:
        os.mknod(dev / name, stat.S_IFCHR | mode, os.makedev(major, minor))
        os.chmod(dev / name, mode)
    (dev / "shm").mkdir()
    mount("shm", dev / "shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k")
    (dev / "pts").mkdir()
    try:
        mount("devpts", dev / "pts", "devpts", MS_NOSUID | MS_NOEXEC,
              "newinstance,ptmxmode=0666,mode=0620")  # fmt: skip
        (dev / "ptmx").symlink_to("pts/ptmx")
    except InitError:
        pass  # a kernel without devpts instances: no ptys, as in some runtimes
    (dev / "mqueue").mkdir()
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"),
                         ("core", "/proc/kcore")):  # fmt: skip
        (dev / name).symlink_to(target)


def mask(root: Path) -> None:
    for path in MASKED:
        target = root / path.lstrip("/")
        if target.is_dir():
            mount("tmpfs", target, "tmpfs", MS_RDONLY, "size=0k")
        elif target.exists():
            bind(root / "dev/null", target)
    for path in READONLY:
        target = root / path.lstrip("/")
        if target.exists():
            bind(target, target, readonly=True, recursive=True)


def make_mounts(root: Path, spec: dict[str, Any]) -> None:
    proc = mount_point(root, "/proc", directory=True)
    mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    sys_dir = mount_point(root, "/sys", directory=True)
    mount("sysfs", sys_dir, "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY)
    make_dev(root)
    mask(root)
    for name in ("hosts", "resolv.conf", "hostname"):
        source = Path(str(spec["etc"])) / name
        bind(source, mount_point(root, f"/etc/{name}", directory=False))
    for entry in spec.get("binds", []):
        source = Path(entry["source"])
        target = mount_point(root, entry["target"], directory=source.is_dir())
        bind(source, target, readonly=bool(entry.get("readonly")), recursive=True)
    dockerenv = root / ".dockerenv"
    if not dockerenv.exists():
        dockerenv.touch()


def drop_capabilities(last_cap: int) -> None:
    for cap in range(last_cap + 1):
        if not DOCKER_CAPS & (1 << cap) and _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise InitError(f"PR_CAPBSET_DROP {cap}: {os.strerror(ctypes.get_errno())}")


def load_seccomp() -> None:
    filt = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for name in REFUSED:
        try:
            filt.add_rule(seccomp.ERRNO(errno.EPERM), name)
        except (RuntimeError, ValueError):
            if name in ("mount", "umount2", "unshare", "setns", "pivot_root"):
                raise
    for flag in CLONE_NEW_FLAGS:
        filt.add_rule(
            seccomp.ERRNO(errno.EPERM), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag)
        )
    filt.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    filt.set_attr(seccomp.Attr.CTL_NNP, 0)  # Docker leaves no_new_privs off
    filt.load()


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    try:
        mount("none", "/", None, MS_REC | MS_PRIVATE)
        socket.sethostname(str(spec["hostname"]))
        root = make_root(spec)
        make_mounts(root, spec)
        last_cap = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
        os.chroot(root)
        os.chdir("/")
        cwd = str(spec["cwd"])
        try:
            os.chdir(cwd)
        except OSError as exc:
            raise InitError(f"working directory {cwd}: {exc.strerror}") from exc
        os.umask(0o022)
        drop_capabilities(last_cap)  # the bounding set; the effective set goes at exec
        load_seccomp()
    except (InitError, OSError, subprocess.CalledProcessError, RuntimeError) as exc:
        print(f"container init: {exc}", file=sys.stderr)
        return 125
    argv = [str(a) for a in spec["argv"]]
    env = {k: str(v) for k, v in dict(spec["env"]).items()}
    try:
        os.execvpe(argv[0], argv, env)
    except FileNotFoundError:
        print(f"container init: {argv[0]}: not found", file=sys.stderr)
        return 127
    except OSError as exc:
        print(f"container init: {argv[0]}: {exc.strerror}", file=sys.stderr)
        return 126


if __name__ == "__main__":
    sys.stdout.flush()
    raise SystemExit(main())
