"""buildah as the parity oracle: build a Dockerfile with ``buildah bud --isolation
chroot`` into a private storage root, then push the result.

Storage lives under a directory the caller owns (never ``/var/lib/containers``); native
overlay is used when it mounts there, else vfs. Share one :class:`BuildahStore` per test
session: the base image is then pulled once.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tests.support.readers import run_tool

__all__ = [
    "BuildahStore",
    "buildah_available",
    "buildah_build",
    "make_buildah_store",
]


def buildah_available() -> bool:
    return shutil.which("buildah") is not None


@dataclass(frozen=True)
class BuildahStore:
    """One buildah storage root (``--root``), run root and storage driver."""

    root: Path
    runroot: Path
    driver: str

    def argv(self, *args: str) -> list[str]:
        return [
            "buildah",
            "--root",
            str(self.root),
            "--runroot",
            str(self.runroot),
            "--storage-driver",
            self.driver,
            *args,
        ]

    def run(self, *args: str, timeout: float = 600) -> str:
        return run_tool(self.argv(*args), timeout=timeout)


def _overlay_works(store: BuildahStore) -> bool:
    probe = subprocess.run(
        store.argv("from", "--name", "pykaniko-overlay-probe", "scratch"),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if probe.returncode != 0:
        return False
    try:
        mounted = subprocess.run(
            store.argv("mount", "pykaniko-overlay-probe"),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        return mounted.returncode == 0
    finally:
        subprocess.run(
            store.argv("rm", "pykaniko-overlay-probe"),
            capture_output=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )


def make_buildah_store(base_dir: Path) -> BuildahStore:
    """A storage root under ``base_dir``: overlay if it mounts there, else vfs."""
    base_dir.mkdir(parents=True, exist_ok=True)
    overlay = BuildahStore(base_dir / "overlay-root", base_dir / "overlay-runroot", "overlay")
    if _overlay_works(overlay):
        return overlay
    return BuildahStore(base_dir / "vfs-root", base_dir / "vfs-runroot", "vfs")


def buildah_build(
    context: Path,
    dockerfile: Path,
    dest: str,
    *,
    store: BuildahStore,
    target: str | None = None,
    build_args: Mapping[str, str] | None = None,
    format: Literal["docker", "oci"] = "docker",
    layers: bool = False,
    push_to: str | None = None,
) -> None:
    """``buildah bud`` ``context`` with ``dockerfile``, tag it ``dest`` (which must name
    a registry host: buildah tries docker.io otherwise), then push it to ``push_to``
    (default ``docker://DEST``; an ``oci:DIR:TAG`` works too). AssertionError with
    buildah's stderr on failure.

    ``layers=False`` (buildah's default) commits one layer per stage; hardlink pairs
    then survive later RUNs, which overlay with ``--layers`` breaks by copy-up.
    """
    argv = [
        "bud",
        "--isolation",
        "chroot",
        "--tls-verify=false",
        "--format",
        format,
        f"--layers={'true' if layers else 'false'}",
        "-f",
        str(dockerfile),
        "-t",
        dest,
    ]
    if target is not None:
        argv += ["--target", target]
    for name, value in (build_args or {}).items():
        argv += ["--build-arg", f"{name}={value}"]
    argv.append(str(context))
    store.run(*argv)
    store.run("push", "--tls-verify=false", dest, push_to or f"docker://{dest}")
