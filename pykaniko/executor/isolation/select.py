"""Which isolation a build uses (``--isolation=auto|chroot|in-place``, buildah's flag
name) and, for in-place builds, which of the container's paths are kept.

``auto`` takes chroot where mount namespaces work (asked of a helper process) and
in-place where they are refused *and* this is a container. In-place outside a detected
container would replace the machine's own ``/`` with the image's files, so it is
refused unless ``--force`` (Kaniko's flag for the same check).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pykaniko.errors import ConfigError
from pykaniko.executor.events import Notice
from pykaniko.executor.isolation import Isolation
from pykaniko.executor.isolation.chroot import ChrootIsolation, probe_namespaces
from pykaniko.executor.isolation.inplace import InPlaceIsolation
from pykaniko.executor.options import BuildOptions
from pykaniko.registry.auth import docker_config_dir
from pykaniko.snapshot import ALWAYS_IGNORED, IgnoreList, mount_points

__all__ = ["Choice", "choose_isolation", "detect_container", "in_place_keep", "read_mountinfo"]

# cgroup path fragments container runtimes leave in /proc/*/cgroup
_CGROUP_MARKERS: Final = (
    "docker",
    "kubepods",
    "containerd",
    "libpod",
    "lxc",
    "crio",
    "buildkit",
    "garden",
    "actions_job",
)
_CHECKED: Final = (
    "checked /.dockerenv, /run/.containerenv, $KUBERNETES_SERVICE_HOST, $container "
    "and /proc/1/cgroup, /proc/self/cgroup"
)
KANIKO_HOME: Final = "/kaniko"
ENV_IGNORE: Final = "PYKANIKO_IGNORE_PATHS"


def detect_container(env: Mapping[str, str], root: Path = Path("/")) -> str | None:
    """What shows that this process runs in a container, or None."""
    for marker in ("/.dockerenv", "/run/.containerenv"):
        if (root / marker.lstrip("/")).exists():
            return marker
    if env.get("KUBERNETES_SERVICE_HOST"):
        return "$KUBERNETES_SERVICE_HOST"
    if env.get("container"):
        return f"container={env['container']}"
    for name in ("proc/1/cgroup", "proc/self/cgroup"):
        try:
            text = (root / name).read_text()
        except OSError:
            continue
        for line in text.splitlines():
            path = line.rpartition(":")[2]
            hit = next((m for m in _CGROUP_MARKERS if m in path), None)
            if hit is not None:
                return f"/{name}: {hit}"
    return None


def in_place_keep(options: BuildOptions, env: Mapping[str, str], mountinfo: str) -> IgnoreList:
    """The container's own paths: never removed, extracted over or snapshotted.

    The kaniko dir (``--kaniko-dir`` and ``/kaniko``), the pseudo filesystems, every
    mount point but ``/`` (the context volume, ``/etc/hosts``, pod secrets), ``/var/run``
    while ``--ignore-var-run``, every ``--ignore-path``, the build context (a checkout
    that is no mount point is still the user's), ``$PYKANIKO_IGNORE_PATHS``
    (colon-separated; the executor image lists its own files there), and the files the
    build reads later: ``--secret`` sources, the docker config, registry certificates.
    """
    keep: list[str] = [*ALWAYS_IGNORED, KANIKO_HOME, str(options.work_dir), str(options.context)]
    keep += [p for p in mount_points(mountinfo) if p != "/"]
    keep += [p for p in env.get(ENV_IGNORE, "").split(":") if p]
    if options.ignore_var_run:
        keep.append("/var/run")
    keep += options.ignore_paths
    keep += [s.path for s in options.secrets if s.path]
    config = docker_config_dir(env)
    if config.exists():
        keep.append(str(config))
    keep += options.registry.registry_certificates.values()
    for cert, key in options.registry.registry_client_certs.values():
        keep += [cert, key]
    return IgnoreList.of(exact=[os.path.abspath(p) for p in keep])


@dataclass(frozen=True, slots=True)
class Choice:
    """The isolation a build uses, why (for the log), and warnings about it."""

    isolation: Isolation
    reason: str
    warnings: tuple[str, ...] = ()

    def notices(self) -> tuple[Notice, ...]:
        """What the build log says about the choice."""
        said = Notice("info", f"RUN isolation: {self.isolation.name} ({self.reason})")
        return (said, *(Notice("warning", w) for w in self.warnings))


def read_mountinfo() -> str:
    """This process's ``/proc/self/mountinfo`` (empty where there is no /proc)."""
    try:
        return Path("/proc/self/mountinfo").read_text()
    except OSError:
        return ""


def choose_isolation(
    options: BuildOptions,
    env: Mapping[str, str],
    mountinfo: str,
    *,
    probe: Callable[[], str | None] = probe_namespaces,
    root: Path = Path("/"),
) -> Choice:
    """Resolve ``options.isolation``; raises :class:`ConfigError` where in-place would
    not be safe. ``root`` only moves the container checks (tests)."""
    mode = options.isolation
    if mode == "chroot":
        return Choice(ChrootIsolation(), "--isolation=chroot")
    refused = probe() if mode == "auto" else None
    if mode == "auto" and refused is None:
        return Choice(ChrootIsolation(), "mount namespaces work")
    container = detect_container(env, root)
    if container is None and not (mode == "in-place" and options.force):
        why = (
            "--isolation=in-place outside a container"
            if mode == "in-place"
            else f"mount namespaces are refused ({refused}) and no container was detected"
        )
        raise ConfigError(
            f"{why}: building in place would replace this machine's own / with the image's "
            f"files ({_CHECKED})",
            hint="pass --isolation=in-place --force if this is a container nonetheless"
            if mode == "auto"
            else "pass --force if this is a container nonetheless",
        )
    keep = in_place_keep(options, env, mountinfo)
    isolation = InPlaceIsolation(keep=keep, kaniko_dir=Path(os.path.abspath(options.work_dir)))
    parts = [f"mount namespaces are refused: {refused}" if refused else "--isolation=in-place"]
    parts.append(f"container: {container}" if container else "--force, no container detected")
    return Choice(isolation, "; ".join(parts), _self_warnings(keep))


def _self_warnings(keep: IgnoreList) -> tuple[str, ...]:
    """pykaniko must survive the base replacing ``/usr`` and ``/lib``: warn when its
    interpreter or package lies outside the kept paths."""
    mine = [
        os.path.realpath(sys.executable),
        os.path.dirname(os.path.realpath(os.__file__)),
        str(Path(os.path.realpath(__file__)).parents[2]),  # the pykaniko package
    ]
    outside = sorted({p for p in mine if not keep.ignored(os.path.abspath(p))})
    if not outside:
        return ()
    return (
        f"in-place build: pykaniko runs from {', '.join(outside)}, which a base image "
        f"may replace; install it under {KANIKO_HOME} or list it in ${ENV_IGNORE}",
    )
