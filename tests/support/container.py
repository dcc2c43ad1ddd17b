"""Run a command in an image as an unprivileged container does, without Docker.

What GitLab's Docker and Kubernetes executors give Kaniko's image, reproduced from
the test side and never touching the machine's ``/``: the image unpacked once per
session (``skopeo copy docker-archive:`` + ``umoci unpack``), a throw-away root per
:class:`Container` (an overlayfs over the unpacked image, or a copy where overlayfs is
refused), own mount, PID, UTS and IPC namespaces made by ``unshare``, then
:mod:`tests.support.container_init` (under ``/usr/bin/python3`` for Debian's
``python3-seccomp``) mounts ``/proc``, a read-only ``/sys``, a tmpfs ``/dev``, the build
context on ``/workspace`` and copies of the host's ``/etc/hosts`` and
``/etc/resolv.conf``, creates ``/.dockerenv``, chroots, keeps only Docker's default
capabilities (``0xa80425fb``), loads a seccomp filter refusing mount, unshare, setns and
namespace clones, and execs the command as uid 0 with the image's environment and
working directory. The host network is shared (loopback registries are reachable).

Every mount is made inside the container's mount namespace and goes away with it;
:meth:`Container.close` checks that nothing is mounted below the container's directory
before removing it with ``rm -rf --one-file-system``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Final

__all__ = [
    "Bind",
    "Container",
    "ContainerResult",
    "HOST_PYTHON",
    "UnpackedImage",
    "container_tools_missing",
    "mounts_below",
]

HOST_PYTHON: Final = Path("/usr/bin/python3")
INIT: Final = Path(__file__).with_name("container_init.py")
HOSTNAME: Final = "pykaniko-container"
_TOOLS: Final = ("unshare", "skopeo", "umoci", "cp", "rm")


def container_tools_missing() -> list[str]:
    """What this machine lacks to run containers (empty when all is there)."""
    missing = [tool for tool in _TOOLS if shutil.which(tool) is None]
    if not HOST_PYTHON.is_file():
        missing.append(str(HOST_PYTHON))
    else:
        probe = subprocess.run(
            [str(HOST_PYTHON), "-c", "import seccomp"], capture_output=True, check=False
        )
        if probe.returncode != 0:
            missing.append("python3-seccomp")
    if os.geteuid() != 0:
        missing.append("root")
    return missing


def mounts_below(path: Path) -> list[str]:
    """Mount points at or below ``path`` in this process's mount namespace."""
    prefix = str(path.resolve()).rstrip("/")
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return points


def remove_tree(path: Path) -> None:
    """``rm -rf --one-file-system``, and only once nothing is mounted below ``path``."""
    if not path.exists():
        return
    if left := mounts_below(path):
        raise AssertionError(f"still mounted below {path}: {left}")
    subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=True)


@dataclass(frozen=True)
class UnpackedImage:
    """An image unpacked by umoci: its rootfs and what its config says to run."""

    rootfs: Path
    env: tuple[str, ...]
    cwd: str
    entrypoint: tuple[str, ...]

    @classmethod
    def from_archive(cls, tarball: Path, dest: Path) -> UnpackedImage:
        """Unpack the docker-archive ``tarball`` into ``dest`` (made here, must not exist)."""
        dest.mkdir(parents=True)
        layout = dest / "oci"
        _tool(["skopeo", "copy", "--quiet", f"docker-archive:{tarball}", f"oci:{layout}:image"])
        bundle = dest / "bundle"
        _tool(["umoci", "unpack", "--image", f"{layout}:image", str(bundle)])
        shutil.rmtree(layout)
        process = json.loads((bundle / "config.json").read_text())["process"]
        # umoci's runtime config adds TERM; a container runtime sets only the image's
        env = tuple(e for e in process.get("env", []) if not e.startswith("TERM="))
        return cls(
            rootfs=bundle / "rootfs",
            env=env,
            cwd=process.get("cwd") or "/",
            entrypoint=tuple(process.get("args") or ()),
        )

    def env_dict(self) -> dict[str, str]:
        return dict(e.split("=", 1) for e in self.env)


@dataclass(frozen=True)
class Bind:
    """A host path bound at ``target`` inside the container."""

    source: Path
    target: str
    readonly: bool = False


@dataclass(frozen=True)
class ContainerResult:
    status: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class Container:
    """A throw-away root over ``image``, kept across :meth:`run` calls (like one
    container started several times) and removed by :meth:`close`.

    ``context`` is bound on ``/workspace``; ``binds`` and ``env`` (added to the image's
    environment) apply to every run.
    """

    image: UnpackedImage
    scratch: Path
    context: Path | None = None
    binds: Sequence[Bind] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    mode: str = "overlay"
    _dir: Path | None = None

    def __enter__(self) -> Container:
        self.scratch.mkdir(parents=True, exist_ok=True)
        self._dir = Path(tempfile.mkdtemp(prefix="container-", dir=self.scratch))
        for name in ("upper", "work", "root", "etc"):
            (self._dir / name).mkdir()
        etc = self._dir / "etc"
        for name in ("hosts", "resolv.conf"):
            host = Path("/etc") / name
            (etc / name).write_bytes(host.read_bytes() if host.exists() else b"")
        (etc / "hostname").write_text(HOSTNAME + "\n")
        if self.mode == "overlay" and not _overlay_works(self._dir):
            self.mode = "copy"
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def upper(self) -> Path:
        """What the container changed (overlay mode) or the whole root (copy mode)."""
        assert self._dir is not None, "use Container as a context manager"
        return self._dir / "upper"

    def run(
        self, argv: Sequence[str] | None = None, *, timeout: float = 900, cwd: str | None = None
    ) -> ContainerResult:
        """Run ``argv`` (default: the image's entry point) to completion; never raises on
        a non-zero status. Exit 125 means the container could not be set up."""
        assert self._dir is not None, "use Container as a context manager"
        binds = [Bind(self.context, "/workspace")] if self.context is not None else []
        binds += list(self.binds)
        spec = {
            "root": str(self._dir / "root"),
            "lower": str(self.image.rootfs),
            "upper": str(self._dir / "upper"),
            "work": str(self._dir / "work"),
            "mode": self.mode,
            "etc": str(self._dir / "etc"),
            "hostname": HOSTNAME,
            "binds": [
                {"source": str(b.source), "target": b.target, "readonly": b.readonly} for b in binds
            ],
            "cwd": cwd or self.image.cwd,
            "env": {**self.image.env_dict(), **self.env},
            "argv": list(argv) if argv is not None else list(self.image.entrypoint),
        }
        spec_file = self._dir / "spec.json"
        spec_file.write_text(json.dumps(spec))
        command = [
            "unshare", "--mount", "--pid", "--uts", "--ipc", "--fork",
            "--propagation", "private", "--kill-child",
            str(HOST_PYTHON), "-I", str(INIT), str(spec_file),
        ]  # fmt: skip
        started = time.monotonic()
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            stderr += f"\n[container killed after {timeout:.0f} s]"
        return ContainerResult(proc.returncode, stdout, stderr, time.monotonic() - started)

    def changed_files(self, below: str = "/") -> Iterator[tuple[str, str]]:
        """(container path, ``added``/``modified``/``deleted``) for every non-directory
        the runs changed below ``below``, read from the overlay's upper directory."""
        if self.mode != "overlay":
            raise AssertionError("changed_files needs the overlay mode")
        start = self.upper / below.lstrip("/")
        if not start.exists():
            return
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames.sort()
            for name in sorted(filenames) + [
                d for d in dirnames if _is_whiteout(Path(dirpath) / d)
            ]:
                path = Path(dirpath) / name
                rel = "/" + str(path.relative_to(self.upper))
                lower = self.image.rootfs / rel.lstrip("/")
                if _is_whiteout(path):
                    yield rel, "deleted"
                elif lower.exists() or lower.is_symlink():
                    yield rel, "modified"
                else:
                    yield rel, "added"

    def close(self) -> None:
        if self._dir is not None:
            remove_tree(self._dir)
            self._dir = None


def _is_whiteout(path: Path) -> bool:
    st = path.lstat()
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _overlay_works(where: Path) -> bool:
    """Whether overlayfs mounts here (in a throw-away mount namespace)."""
    probe = where / "probe"
    for name in ("lower", "upper", "work", "merged"):
        (probe / name).mkdir(parents=True)
    options = f"lowerdir={probe}/lower,upperdir={probe}/upper,workdir={probe}/work"
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private",
         "mount", "-t", "overlay", "overlay", "-o", options, str(probe / "merged")],
        capture_output=True, check=False,
    )  # fmt: skip
    remove_tree(probe)
    return result.returncode == 0


def _tool(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")
