"""Base images made offline: a busybox root filesystem as one deterministic tarball.

The tarball is written entry by entry with :mod:`tarfile` (one copy of the static
busybox binary plus one symlink entry per applet), so no applet tree is ever created on
disk. Build the image from it with :func:`busybox_dockerfile` (``FROM scratch`` +
``ADD rootfs.tar /``), with pykaniko or with buildah.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Final

__all__ = [
    "BUSYBOX_BIN",
    "BUSYBOX_CONFIG",
    "BUSYBOX_PATH",
    "BUSYBOX_ROOTFS_NAME",
    "busybox_available",
    "busybox_dockerfile",
    "make_busybox_rootfs_tar",
]

BUSYBOX_BIN: Final = Path("/bin/busybox")
BUSYBOX_ROOTFS_NAME: Final = "rootfs.tar"
BUSYBOX_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: The config the base image must carry (what ``busybox_dockerfile`` sets).
BUSYBOX_CONFIG: Final[dict[str, list[str]]] = {
    "Env": [f"PATH={BUSYBOX_PATH}"],
    "Cmd": ["sh"],
}

# A fixed mtime keeps the tarball byte-for-byte reproducible (2020-01-01T00:00:00Z).
_MTIME: Final = 1577836800

# (path, mode, uid, gid) of every directory, parents first.
_DIRS: Final[tuple[tuple[str, int, int, int], ...]] = (
    ("bin", 0o755, 0, 0),
    ("etc", 0o755, 0, 0),
    ("home", 0o755, 0, 0),
    ("home/user", 0o755, 1000, 1000),
    ("root", 0o700, 0, 0),
    ("sbin", 0o755, 0, 0),
    ("tmp", 0o1777, 0, 0),
    ("usr", 0o755, 0, 0),
    ("usr/bin", 0o755, 0, 0),
    ("usr/sbin", 0o755, 0, 0),
    ("var", 0o755, 0, 0),
    ("var/spool", 0o755, 0, 0),
    ("var/spool/mail", 0o755, 8, 8),
    ("var/www", 0o755, 0, 0),
)

_PASSWD: Final = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
    "bin:x:2:2:bin:/bin:/bin/false\n"
    "mail:x:8:8:mail:/var/spool/mail:/bin/false\n"
    "www-data:x:33:33:www-data:/var/www:/bin/false\n"
    "user:x:1000:1000:user:/home/user:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/home:/bin/false\n"
)
_GROUP: Final = (
    "root:x:0:\n"
    "daemon:x:1:\n"
    "bin:x:2:\n"
    "mail:x:8:\n"
    "www-data:x:33:\n"
    "staff:x:50:user\n"
    "user:x:1000:\n"
    "nogroup:x:65534:\n"
)
_FILES: Final[tuple[tuple[str, str, int], ...]] = (
    ("etc/passwd", _PASSWD, 0o644),
    ("etc/group", _GROUP, 0o644),
    ("etc/shadow", "root:*::0:::::\nuser:*::0:::::\nnobody:*::0:::::\n", 0o640),
    ("etc/os-release", 'NAME="pykaniko test busybox"\nID=busybox\n', 0o644),
)


def busybox_available() -> bool:
    return BUSYBOX_BIN.is_file()


def busybox_dockerfile(rootfs_name: str = BUSYBOX_ROOTFS_NAME) -> str:
    """The Dockerfile that turns the rootfs tarball into the busybox base image."""
    cmd = json.dumps(BUSYBOX_CONFIG["Cmd"])
    return f"FROM scratch\nADD {rootfs_name} /\nENV PATH={BUSYBOX_PATH}\nCMD {cmd}\n"


def _applets() -> list[str]:
    """Applet paths relative to ``/`` (``bin/sh``, ``usr/bin/awk``...), sorted."""
    out = subprocess.run(
        [str(BUSYBOX_BIN), "--list-full"], check=True, capture_output=True, text=True
    ).stdout
    names = {line.strip() for line in out.splitlines()}
    # linuxrc sits at the top level; the binary itself is added as a file.
    return sorted(n for n in names if "/" in n and n != "bin/busybox")


def _info(name: str, kind: bytes, mode: int, uid: int = 0, gid: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid = uid
    info.gid = gid
    info.uname = ""
    info.gname = ""
    info.mtime = _MTIME
    return info


def _entries() -> Iterator[tuple[tarfile.TarInfo, bytes | None]]:
    """Every entry but the busybox binary, parents before children."""
    for path, mode, uid, gid in _DIRS:
        yield _info(path, tarfile.DIRTYPE, mode, uid, gid), None
    for path, text, mode in _FILES:
        data = text.encode()
        info = _info(path, tarfile.REGTYPE, mode)
        info.size = len(data)
        yield info, data
    for applet in _applets():
        link = _info(applet, tarfile.SYMTYPE, 0o777)
        link.linkname = "/bin/busybox"
        yield link, None


def make_busybox_rootfs_tar(dest_dir: Path, name: str = BUSYBOX_ROOTFS_NAME) -> Path:
    """Write ``dest_dir/name``: busybox, its applet symlinks, users and the usual dirs.

    Users: root (0), nobody (65534), ``user`` (1000:1000, home ``/home/user``) and a few
    system accounts. Same bytes on every call on the same machine.
    """
    if not busybox_available():
        raise FileNotFoundError(f"{BUSYBOX_BIN} is missing: install busybox-static")
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / name
    with tarfile.open(target, "w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in _entries():
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
        binary = _info("bin/busybox", tarfile.REGTYPE, 0o755)
        binary.size = BUSYBOX_BIN.stat().st_size
        with BUSYBOX_BIN.open("rb") as fh:
            tar.addfile(binary, fh)
    return target
