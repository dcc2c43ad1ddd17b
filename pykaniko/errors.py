"""The one exception tree of pykaniko.

Every error carries a kebab-case ``code``, a one-line ``message`` written for users, an
optional ``hint`` and, for Dockerfile problems, the source ``location``. The CLI turns
them into ``PATH:LINE: message`` lines and exit codes; nothing below the CLI prints.

::

    PykanikoError
     ├── ConfigError          bad flags or options (names the flag)
     ├── DockerfileError      syntax, unknown instruction or flag (located)
     │    └── PlanError       unknown stage/target, cycles, bad references (located)
     ├── ImageError           malformed manifests, configs, references, layouts
     ├── RegistryError        HTTP exchange failed (registry, repository, status)
     │    ├── AuthError       401/403, bad or missing credentials
     │    └── NotFoundError   manifest or blob unknown
     ├── SnapshotError        walking, layer writing or extraction failed
     │    └── UnsafeLayerError a layer tried to escape the rootfs
     ├── BuildError           a step could not be carried out (COPY source missing, ...)
     │    ├── RunError        a RUN command exited non-zero (carries its status)
     │    ├── SecretLeakError a secret value is in a layer or the config (never the value)
     │    └── StorageError    an OS error on the builder's disk (operation, path in the image)
     │         └── DiskFullError ENOSPC/EDQUOT (says how much the build needed)
     ├── SandboxError         the chroot sandbox could not be set up
     └── BuildCancelledError  the caller cancelled the build (exit status 130)

This module imports nothing from pykaniko: it is the bottom layer.
"""

from __future__ import annotations

import errno as _errno
import os
from dataclasses import dataclass
from typing import Self

__all__ = [
    "AuthError",
    "BuildCancelledError",
    "BuildError",
    "ConfigError",
    "DiskFullError",
    "DockerfileError",
    "ImageError",
    "Location",
    "NotFoundError",
    "PlanError",
    "PykanikoError",
    "RegistryError",
    "RunError",
    "SandboxError",
    "SecretLeakError",
    "SnapshotError",
    "StorageError",
    "UnsafeLayerError",
]


@dataclass(frozen=True, slots=True)
class Location:
    """A 1-based, inclusive line range in a named Dockerfile."""

    filename: str
    start: int
    end: int

    def __str__(self) -> str:
        return f"{self.filename}:{self.start}"


class PykanikoError(Exception):
    """Root of every error pykaniko raises on purpose."""

    default_code = "error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        hint: str | None = None,
        location: Location | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.hint = hint
        self.location = location

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}" if self.location else self.message
        return f"{text} (hint: {self.hint})" if self.hint else text

    @property
    def exit_status(self) -> int:
        """The process exit status the CLI uses for this error."""
        return 1


class ConfigError(PykanikoError):
    default_code = "bad-option"


class DockerfileError(PykanikoError):
    default_code = "dockerfile-syntax"


class PlanError(DockerfileError):
    default_code = "bad-plan"


class ImageError(PykanikoError):
    default_code = "bad-image"


class RegistryError(PykanikoError):
    """A registry exchange failed; names where and how, never with credentials."""

    default_code = "registry"

    def __init__(
        self,
        message: str,
        *,
        registry: str = "",
        repository: str = "",
        status: int | None = None,
        temporary: bool = False,
        code: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, code=code, hint=hint)
        self.registry = registry
        self.repository = repository
        self.status = status
        self.temporary = temporary


class AuthError(RegistryError):
    default_code = "registry-auth"


class NotFoundError(RegistryError):
    default_code = "registry-not-found"


class SnapshotError(PykanikoError):
    default_code = "snapshot"


class UnsafeLayerError(SnapshotError):
    default_code = "unsafe-layer"


class BuildError(PykanikoError):
    default_code = "build"


class RunError(BuildError):
    """A RUN step failed; pykaniko exits with the command's own status."""

    default_code = "run-failed"

    def __init__(
        self,
        message: str,
        *,
        status: int,
        location: Location | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, location=location, hint=hint)
        self.status = status

    @property
    def exit_status(self) -> int:
        return self.status if 0 < self.status < 256 else 1


class SecretLeakError(BuildError):
    default_code = "secret-leak"


def format_size(n: int) -> str:
    """``1536`` -> ``1.5 KiB``: sizes for people."""
    size = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{n} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} bytes"  # pragma: no cover


_FULL = frozenset({_errno.ENOSPC, _errno.EDQUOT})


class StorageError(BuildError):
    """An OS error while reading or writing the builder's own disk, said in image terms.

    ``operation`` is what was being done (``busybox layer sha256:ab12: extract``,
    ``snapshot: read``, ``write OCI layout``), ``path`` the path inside the image
    (``/usr/bin/x``) or the output the user named, never the host work dir; ``errno``
    the OS error number.
    The executor adds the Dockerfile step with :meth:`located`.
    """

    default_code = "storage"

    def __init__(
        self,
        message: str,
        *,
        operation: str = "",
        path: str = "",
        errno: int | None = None,
        needed: int | None = None,
        code: str | None = None,
        hint: str | None = None,
        location: Location | None = None,
    ) -> None:
        super().__init__(message, code=code, hint=hint, location=location)
        self.operation = operation
        self.path = path
        self.errno = errno
        self.needed = needed

    @classmethod
    def from_os(
        cls,
        exc: OSError,
        *,
        operation: str,
        path: str = "",
        needed: int | None = None,
        detail: str = "",
    ) -> StorageError:
        """The error for ``exc``: :class:`DiskFullError` for ENOSPC/EDQUOT, else this.

        The message uses ``exc.strerror`` only: ``str(exc)`` names host paths.
        ``needed`` (bytes the operation had to write) and ``detail`` go into the text.
        """
        reason = exc.strerror or type(exc).__name__
        where = f" {path}" if path else ""
        extra = f" ({detail})" if detail else ""
        if exc.errno in _FULL:
            wanted = f"; it needed {format_size(needed)}" if needed is not None else ""
            return DiskFullError(
                f"{operation}{where}: {reason.lower()}{wanted}{extra}",
                operation=operation,
                path=path,
                errno=exc.errno,
                needed=needed,
                hint="free space where --kaniko-dir (and the outputs) live, or point them "
                "at a bigger disk",
            )
        return cls(
            f"{operation}{where}: {reason.lower()}{extra}",
            operation=operation,
            path=path,
            errno=exc.errno,
            needed=needed,
        )

    def located(self, location: Location) -> Self:
        """The same error at a Dockerfile step (the executor knows the step)."""
        other = type(self)(
            self.message,
            operation=self.operation,
            path=self.path,
            errno=self.errno,
            needed=self.needed,
            code=self.code,
            hint=self.hint,
            location=location,
        )
        other.__cause__ = self.__cause__
        return other


class DiskFullError(StorageError):
    """No space (or quota) left: the message says how much the operation needed."""

    default_code = "disk-full"


def image_path(root: str, host: str | bytes | int | None) -> str:
    """A host path below ``root`` as the image sees it (``/usr/bin/x``); ``""`` for
    anything else, so a host work dir never reaches a message."""
    if not isinstance(host, str):
        return ""
    root = root.rstrip("/")
    if host == root:
        return "/"
    if host.startswith(root + "/"):
        return os.path.normpath(host[len(root) :])
    return ""


class SandboxError(PykanikoError):
    default_code = "sandbox"


class BuildCancelledError(PykanikoError):
    """The build was cancelled by its caller; its work directory has been cleaned up."""

    default_code = "cancelled"

    @property
    def exit_status(self) -> int:
        return 130
