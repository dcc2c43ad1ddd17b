"""How a stage's rootfs lives and how a RUN step is isolated: the values both modes
share and the one interface the steps call.

Two implementations sit beside it:

* ``chroot`` (:class:`~pykaniko.executor.isolation.chroot.ChrootIsolation`): every stage
  has a rootfs directory of its own in the work dir; RUN runs chrooted into it, in new
  mount and PID namespaces where the kernel allows them.
* ``in-place`` (:class:`~pykaniko.executor.isolation.inplace.InPlaceIsolation`, Kaniko's
  mode): the stage's rootfs is the container's own ``/``; RUN is a plain child process
  there, and RUN mounts are emulated without mount(2).

The stage builder, the snapshotter and the layer code are the same for both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from pykaniko.executor.state import StageOutput
    from pykaniko.executor.workspace import Workspace
    from pykaniko.snapshot import IgnoreList

__all__ = ["BindMount", "Isolation", "IsolationMode", "MountKind", "RunSpec"]

IsolationMode = Literal["auto", "chroot", "in-place"]
MountKind = Literal["bind", "cache", "secret", "tmpfs"]


@dataclass(frozen=True, slots=True)
class BindMount:
    """Something made visible at ``target`` (rootfs-absolute) during one RUN.

    ``source`` is a host path: the tree of a ``bind`` mount (from the context, a stage or
    an image root; a ``rw`` one must be copied so writes are thrown away), the cache
    directory of a ``cache`` mount, or a private copy of a ``secret`` (already written
    with the mount's mode and owner). ``origin`` is the file a secret came from, when it
    is one: a secret whose target *is* that file needs nothing done. ``tmpfs`` has no
    source.
    """

    source: str
    target: str
    readonly: bool = False
    kind: MountKind = "bind"
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class RunSpec:
    """One RUN: the command, who runs it, where, and what is mounted.

    ``scripts`` are (host file, name) pairs the command finds at ``/dev/pipes/NAME``;
    ``scratch`` is a private directory of the build's workspace the isolation may use.
    """

    rootfs: str
    argv: tuple[str, ...]
    env: tuple[str, ...]
    scratch: str
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    groups: tuple[int, ...] = ()
    mounts: tuple[BindMount, ...] = ()
    scripts: tuple[tuple[str, str], ...] = ()
    network: str = "default"


class Isolation(Protocol):
    """Where stage rootfs live and how RUN starts; one build uses one of these."""

    @property
    def name(self) -> str:
        """``chroot`` or ``in-place``, for logs."""
        ...

    def begin(self) -> None:
        """Called once before the first stage."""
        ...

    def ignore_paths(self) -> tuple[str, ...]:
        """Paths this mode adds to every stage's ignore list (snapshots never see them)."""
        ...

    def extraction_ignore(self, ignore: IgnoreList) -> IgnoreList:
        """What extracting a layer onto a stage rootfs must leave alone."""
        ...

    def host_dirs(self) -> tuple[str, ...]:
        """Directories of the rootfs that were there before its base was unpacked and
        are the builder's, not the image's: once the base is extracted they join the
        snapshot baseline as they are, so the first layer never takes them as new."""
        ...

    def acquire(self, out: StageOutput, workspace: Workspace) -> Path:
        """An empty rootfs for ``out``, ready for its base's layers; whatever occupied the
        place before is moved away (still needed) or removed."""
        ...

    def take_over(self, base: StageOutput, out: StageOutput, workspace: Workspace) -> bool:
        """Hand ``base``'s finished rootfs to ``out`` (its last user), setting ``out.rootfs``
        and ``out.snapshotter``; False when ``out`` must extract the layers again."""
        ...

    def release(self, out: StageOutput, workspace: Workspace) -> None:
        """Nobody reads ``out``'s rootfs any more."""
        ...

    def run(self, spec: RunSpec, *, output: Callable[[bytes], None] | None = None) -> int:
        """Run ``spec`` to completion, its mounts in place, and return its exit status."""
        ...
