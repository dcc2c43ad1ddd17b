"""pykaniko: build OCI images from Dockerfiles without a Docker daemon.

The stable surface is ``__all__``: :func:`build` with :class:`BuildOptions`, the
progress events, and the error tree. Everything else is internal.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pykaniko.api import Cancellation, build
    from pykaniko.errors import (
        AuthError,
        BuildCancelledError,
        BuildError,
        ConfigError,
        DiskFullError,
        DockerfileError,
        ImageError,
        NotFoundError,
        PlanError,
        PykanikoError,
        RegistryError,
        RunError,
        SandboxError,
        SecretLeakError,
        SnapshotError,
        UnsafeLayerError,
    )
    from pykaniko.executor import (
        BuildFinished,
        BuildOptions,
        BuildResult,
        Event,
        ImagePushed,
        LayerCreated,
        Notice,
        OutputOptions,
        SecretSource,
        StageSkipped,
        StageStarted,
        StepOutput,
        StepStarted,
    )
    from pykaniko.executor.events import BlobProgress, CacheChecked, PhaseTimed, StepFinished
    from pykaniko.executor.summary import (
        BuildSummary,
        LayerSummary,
        StepSummary,
        SummaryCollector,
    )
    from pykaniko.image.platform import Platform
    from pykaniko.registry import RegistryOptions
    from pykaniko.snapshot import SnapshotMode

__version__ = "0.1.0"


__all__ = [
    "AuthError",
    "BlobProgress",
    "BuildCancelledError",
    "BuildError",
    "BuildFinished",
    "BuildOptions",
    "BuildResult",
    "BuildSummary",
    "CacheChecked",
    "Cancellation",
    "ConfigError",
    "DiskFullError",
    "DockerfileError",
    "Event",
    "ImageError",
    "ImagePushed",
    "LayerCreated",
    "LayerSummary",
    "NotFoundError",
    "Notice",
    "OutputOptions",
    "PhaseTimed",
    "PlanError",
    "Platform",
    "PykanikoError",
    "RegistryError",
    "RegistryOptions",
    "RunError",
    "SandboxError",
    "SecretLeakError",
    "SecretSource",
    "SnapshotError",
    "SnapshotMode",
    "StageSkipped",
    "StageStarted",
    "StepFinished",
    "StepOutput",
    "StepStarted",
    "StepSummary",
    "SummaryCollector",
    "UnsafeLayerError",
    "build",
]

_HOMES = {
    "BlobProgress": "pykaniko.executor.events",
    "BuildSummary": "pykaniko.executor.summary",
    "CacheChecked": "pykaniko.executor.events",
    "Cancellation": "pykaniko.api",
    "LayerSummary": "pykaniko.executor.summary",
    "PhaseTimed": "pykaniko.executor.events",
    "StepFinished": "pykaniko.executor.events",
    "StepSummary": "pykaniko.executor.summary",
    "SummaryCollector": "pykaniko.executor.summary",
    "build": "pykaniko.api",
    "Platform": "pykaniko.image.platform",
    "RegistryOptions": "pykaniko.registry",
    "SnapshotMode": "pykaniko.snapshot",
}


def __getattr__(name: str) -> Any:
    """Resolve the public names on first use, so importing a subpackage stays cheap."""
    if name not in __all__:
        raise AttributeError(f"module 'pykaniko' has no attribute {name!r}")
    if name in _HOMES:
        module = _HOMES[name]
    elif name.endswith("Error"):
        module = "pykaniko.errors"
    else:
        module = "pykaniko.executor"
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
