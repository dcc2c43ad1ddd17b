"""A Debian bookworm base made offline but for the host's Debian mirror: the
mirror read from the host's apt sources, ``debootstrap --variant=minbase`` into tmpfs,
and the context (``rootfs.tar`` + ``Dockerfile``) that turns it into an image with
``FROM scratch`` + ``ADD rootfs.tar /``. The session fixture ``debian_base``
(``tests/conftest.py``) builds and pushes it once for every suite that needs it.

Every helper calls ``pytest.skip`` when the mirror fails us (a network problem) and
raises AssertionError for any other failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

__all__ = [
    "DEBIAN_PATH",
    "SUITE",
    "DebianBase",
    "debian_dockerfile",
    "debian_mirror",
    "debootstrap",
    "mirror_unreachable",
    "unmount_below",
]

SUITE: Final = "bookworm"
FALLBACK_MIRROR: Final = "http://deb.debian.org/debian"
DEBIAN_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEBOOTSTRAP_TIMEOUT: Final = 300.0
SOURCES_LIST: Final = Path("/etc/apt/sources.list")
SOURCES_DIR: Final = Path("/etc/apt/sources.list.d")

# debootstrap's words when it cannot fetch from the mirror (a network problem: skip).
_NETWORK_ERRORS: Final = re.compile(
    r"Failed getting release file|Couldn't download|Failed to download|"
    r"Temporary failure resolving|Could not resolve|Connection refused|No route to host",
    re.IGNORECASE,
)


# ---------------------------------------------------------------- the mirror


def _deb822_paragraphs(text: str) -> Iterator[dict[str, str]]:
    """deb822 paragraphs (``Key: value``, continuation lines indented, ``#`` comments)."""
    fields: dict[str, str] = {}
    key: str | None = None
    for line in [*text.splitlines(), ""]:
        if line.startswith("#"):
            continue
        if not line.strip():
            if fields:
                yield fields
            fields, key = {}, None
        elif line[0] in " \t" and key is not None:
            fields[key] += " " + line.strip()
        else:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()


def _mirror_from_deb822(text: str) -> str | None:
    for fields in _deb822_paragraphs(text):
        if "deb" not in fields.get("types", "deb").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        uris = fields.get("uris", "").split()
        if uris and SUITE in fields.get("suites", "").split():
            return uris[0]
    return None


def _mirror_from_one_line(text: str) -> str | None:
    for raw in text.splitlines():
        line = raw.split("#", 1)[0]
        line = re.sub(r"\[[^]]*\]", " ", line)  # [arch=amd64 signed-by=...]
        words = line.split()
        if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
            return words[1]
    return None


def debian_mirror() -> str:
    """The host's bookworm mirror: the first deb822 entry in ``sources.list.d/*.sources``
    whose Suites include bookworm, else ``sources.list``, else deb.debian.org."""
    with contextlib.suppress(OSError):
        for path in sorted(SOURCES_DIR.glob("*.sources")):
            if found := _mirror_from_deb822(path.read_text()):
                return found.rstrip("/")
    with contextlib.suppress(OSError):
        if found := _mirror_from_one_line(SOURCES_LIST.read_text()):
            return found.rstrip("/")
    return FALLBACK_MIRROR


def mirror_unreachable(mirror: str) -> str | None:
    """Why ``mirror`` cannot serve bookworm, or None when its Release file answers."""
    url = f"{mirror}/dists/{SUITE}/Release"
    try:
        with urllib.request.urlopen(url, timeout=15) as response:
            response.read(1)
    except (OSError, ValueError) as exc:
        return f"{url}: {exc}"
    return None


# ---------------------------------------------------------------- debootstrap


def unmount_below(root: Path) -> None:
    """Lazily unmount what a killed debootstrap left mounted under ``root`` (proc, sys,
    devpts), deepest first, so removing the tree cannot reach the host's."""
    prefix = str(root.resolve()).rstrip("/") + "/"
    with contextlib.suppress(OSError):
        points = [
            line.split()[1].replace("\\040", " ")
            for line in Path("/proc/self/mounts").read_text().splitlines()
        ]
        for point in sorted((p for p in points if p.startswith(prefix)), reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def debootstrap(target: Path, mirror: str) -> None:
    """``debootstrap --variant=minbase bookworm TARGET MIRROR``; pytest.skip when the
    mirror fails us, AssertionError with its log for any other failure."""
    argv = ["debootstrap", "--variant=minbase", SUITE, str(target), mirror]
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=DEBOOTSTRAP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.skip(f"debootstrap from {mirror} took over {DEBOOTSTRAP_TIMEOUT:.0f} s")
    if proc.returncode == 0:
        return
    log = output
    with contextlib.suppress(OSError):
        log += (target / "debootstrap" / "debootstrap.log").read_text(errors="replace")
    if _NETWORK_ERRORS.search(log):
        pytest.skip(f"debootstrap could not fetch from {mirror}: {log.strip()[-500:]}")
    raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}:\n{log[-4000:]}")


def debian_dockerfile(rootfs_name: str = "rootfs.tar") -> str:
    return (
        f"FROM scratch\nADD {rootfs_name} /\nENV PATH={DEBIAN_PATH}\nCMD {json.dumps(['bash'])}\n"
    )


@dataclass(frozen=True)
class DebianBase:
    """``{registry.host}/debian:bookworm``, the context it was built from (``Dockerfile``
    + ``rootfs.tar``) and the mirror its apt sources point at."""

    ref: str
    context: Path
    mirror: str
