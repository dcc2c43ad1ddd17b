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
     │    └── DiskFullError   ENOSPC/EDQUOT while building (says how much was used)
     ├── SandboxError         the chroot sandbox could not be set up
     └── BuildCancelledError  the caller cancelled the build (exit status 130)

This module imports nothing from pykaniko: it is the bottom layer.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AuthError",
    "BuildCancelledError",
    "BuildError",
    "ConfigError",
    "DockerfileError",
    "ImageError",
    "Location",
    "NotFoundError",
    "PlanError",
    "PykanikoError",
    "RegistryError",
    "RunError",
    "DiskFullError",
    "SandboxError",
    "SecretLeakError",
    "SnapshotError",
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


class DiskFullError(BuildError):
    default_code = "disk-full"


class SandboxError(PykanikoError):
    default_code = "sandbox"


class BuildCancelledError(PykanikoError):
    """The build was cancelled by its caller; its work directory has been cleaned up."""

    default_code = "cancelled"

    @property
    def exit_status(self) -> int:
        return 130
