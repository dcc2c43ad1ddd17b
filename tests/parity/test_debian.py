"""Parity with buildah on a real Debian base that runs apt-get (issue #4).

The base is made here, offline except for the Debian mirror the host already uses:
``debootstrap --variant=minbase bookworm`` into tmpfs, tarred, and turned into
``{registry.host}/debian:bookworm`` by the pykaniko CLI (``FROM scratch`` + ``ADD
rootfs.tar /``). The same base is built by buildah too and the two must match
(``test_debian_base_parity``): the apt test's oracle builds ``FROM`` pykaniko's base,
so a path pykaniko loses there would be lost on both sides of that test.

``debian/apt/Dockerfile`` is then built on the base by buildah and by pykaniko; both RUN
``apt-get update && apt-get install`` against that mirror, and the flattened images must
not differ once the files that record *when* a build ran are left out
(:func:`_debian_noise`).

Slow (debootstrap ~40 s, two apt-get builds): marked ``slow``. Skipped, never failed,
when debootstrap is missing, the test is not root, or the mirror cannot be reached.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from tests.parity.cli import run_pykaniko
from tests.support.buildah import BuildahStore, buildah_build
from tests.support.imagediff import DiffIgnore, buildah_noise, diff_images, snapshot_image
from tests.support.registry import RegistryServer

pytestmark = [pytest.mark.slow, pytest.mark.parity, pytest.mark.e2e, pytest.mark.root]

SUITE: Final = "bookworm"
FALLBACK_MIRROR: Final = "http://deb.debian.org/debian"
DEBIAN_DIR: Final = Path(__file__).parent / "debian"
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


def _mirror_unreachable(mirror: str) -> str | None:
    """Why ``mirror`` cannot serve bookworm, or None when its Release file answers."""
    url = f"{mirror}/dists/{SUITE}/Release"
    try:
        with urllib.request.urlopen(url, timeout=15) as response:
            response.read(1)
    except (OSError, ValueError) as exc:
        return f"{url}: {exc}"
    return None


# ---------------------------------------------------------------- debootstrap


def _unmount_below(root: Path) -> None:
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


def _debootstrap(target: Path, mirror: str) -> None:
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


@pytest.fixture(scope="session")
def debian_base(registry: RegistryServer, kaniko_root: Path) -> Iterator[DebianBase]:
    """A debootstrapped bookworm (minbase), built by the pykaniko CLI from ``FROM
    scratch`` + ``ADD rootfs.tar /`` + ``ENV PATH`` + ``CMD ["bash"]`` and pushed to
    ``{registry.host}/debian:bookworm``. Everything lives in a tmpfs directory removed
    at the end of the session; nothing is cached."""
    if shutil.which("debootstrap") is None:
        pytest.skip("debootstrap is not installed")
    if os.geteuid() != 0:
        pytest.skip("debootstrap needs root")
    mirror = debian_mirror()
    if why := _mirror_unreachable(mirror):
        pytest.skip(f"the Debian mirror cannot be reached: {why}")

    shm = Path("/dev/shm")
    work = Path(tempfile.mkdtemp(prefix="parity-debian-", dir=shm if shm.is_dir() else None))
    try:
        target = work / "target"
        context = work / "context"
        context.mkdir()
        _debootstrap(target, mirror)
        # The downloaded .debs stay in the minbase tree; drop them as `apt-get clean`
        # does (Debian's own images ship without them): 30 MB less to push and pull.
        for deb in (target / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        _unmount_below(target)
        subprocess.run(
            ["tar", "--numeric-owner", "-C", str(target), "-cf", str(context / "rootfs.tar"), "."],
            check=True,
            capture_output=True,
            stdin=subprocess.DEVNULL,
        )
        shutil.rmtree(target)
        dockerfile = context / "Dockerfile"
        dockerfile.write_text(debian_dockerfile())
        ref = f"{registry.host}/debian:{SUITE}"
        run_pykaniko(context, dockerfile, ref, kaniko_dir=kaniko_root / "debian-base")
        yield DebianBase(ref=ref, context=context, mirror=mirror)
    finally:
        _unmount_below(work)
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------- the test


def _utc_day() -> int:
    return int(time.time()) // 86400


def _debian_noise(*, days: set[int]) -> DiffIgnore:
    """What two apt-get builds legitimately differ in, beyond :data:`BUILDAH_NOISE`
    (which already drops ``/var/cache/apt/*.bin``, ``/var/cache/ldconfig/aux-cache`` and
    ``/var/log/*``: apt's binary caches and logs carry timestamps).

    ``/etc/shadow``: ``useradd`` writes the day of the last password change (days since
    the epoch, UTC). Both builds write the same bytes on the same day; only a run that
    crosses midnight between the two useradd calls gets two different files, so the
    path is dropped then and only then.
    """
    if len(days) > 1:
        return DiffIgnore(paths=frozenset({"/etc/shadow"}))
    return DiffIgnore()


def test_debian_base_parity(
    debian_base: DebianBase, registry: RegistryServer, buildah_store: BuildahStore
) -> None:
    """``FROM scratch`` + ``ADD rootfs.tar /`` of the debootstrapped tree: the base the
    apt test builds on, so that test's oracle does not inherit pykaniko's own base."""
    oracle_ref = f"{registry.host}/parity/debian-base:buildah"
    context = debian_base.context
    buildah_build(context, context / "Dockerfile", oracle_ref, store=buildah_store)
    oracle, ours = snapshot_image(oracle_ref), snapshot_image(debian_base.ref)
    differences = diff_images(oracle, ours, ignore=buildah_noise(), names=("buildah", "pykaniko"))
    assert not differences, "images differ:\n" + "\n".join(differences)


def test_debian_apt_parity(
    debian_base: DebianBase,
    registry: RegistryServer,
    buildah_store: BuildahStore,
    kaniko_root: Path,
) -> None:
    """apt-get update + install, useradd, USER/WORKDIR and a file the user owns."""
    context = DEBIAN_DIR / "apt"
    dockerfile = context / "Dockerfile"
    build_args = {"BASE": debian_base.ref}
    oracle_ref = f"{registry.host}/parity/debian-apt:buildah"
    ours_ref = f"{registry.host}/parity/debian-apt:pykaniko"

    days = {_utc_day()}
    buildah_build(context, dockerfile, oracle_ref, store=buildah_store, build_args=build_args)
    run_pykaniko(
        context,
        dockerfile,
        ours_ref,
        kaniko_dir=kaniko_root / "debian-apt",
        build_args=build_args,
    )
    days.add(_utc_day())

    oracle, ours = snapshot_image(oracle_ref), snapshot_image(ours_ref)
    # The build did what the Dockerfile says (so an empty diff is not two empty images).
    assert "/usr/bin/hello" in ours.files
    assert ours.files["/home/app/mine"].uid == 1001
    assert ours.config.user == "app"
    assert ours.config.working_dir == "/home/app"
    assert ours.config.cmd == ("hello",)

    ignore = buildah_noise() | _debian_noise(days=days)
    differences = diff_images(oracle, ours, ignore=ignore, names=("buildah", "pykaniko"))
    assert not differences, "images differ:\n" + "\n".join(differences)
