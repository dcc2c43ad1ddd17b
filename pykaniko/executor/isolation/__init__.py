"""How a RUN step is isolated: the values every isolation mode shares and the interface
the steps call. The implementations live beside it (``chroot``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["BindMount", "RunSpec", "Sandbox"]


@dataclass(frozen=True, slots=True)
class BindMount:
    """A host path made visible at ``target`` (rootfs-absolute) during one RUN.

    ``kind`` is ``bind`` (a host file or directory) or ``tmpfs``.
    """

    source: str
    target: str
    readonly: bool = False
    kind: str = "bind"


@dataclass(frozen=True, slots=True)
class RunSpec:
    """One RUN: the command, who runs it, where, and what is mounted.

    ``scripts`` are (host file, name) pairs mounted read-only at ``/dev/pipes/NAME``;
    ``scratch`` is a directory of the build's workspace the sandbox may use.
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


class Sandbox(Protocol):
    def run(self, spec: RunSpec, *, output: Callable[[bytes], None] | None = None) -> int:
        """Run ``spec`` to completion and return its exit status."""
        ...
