"""Runs a build plan: stage builder, instruction steps, the chroot sandbox (the only
place that forks, chroots or mounts) and the build's work directory.

May import ``pykaniko.dockerfile``, ``pykaniko.image``, ``pykaniko.registry``,
``pykaniko.snapshot`` and ``pykaniko.errors``; never ``api`` or ``cli``.
"""

from pykaniko.executor.build import BuildResult, build, load_plan
from pykaniko.executor.events import (
    BuildFinished,
    Event,
    EventSink,
    ImagePushed,
    LayerCreated,
    Notice,
    StageSkipped,
    StageStarted,
    StepOutput,
    StepStarted,
)
from pykaniko.executor.isolation import Sandbox
from pykaniko.executor.isolation.chroot import ChrootSandbox
from pykaniko.executor.options import BuildOptions, OutputOptions, SecretSource

__all__ = [
    "BuildFinished",
    "BuildOptions",
    "BuildResult",
    "ChrootSandbox",
    "Event",
    "EventSink",
    "ImagePushed",
    "LayerCreated",
    "Notice",
    "OutputOptions",
    "Sandbox",
    "SecretSource",
    "StageSkipped",
    "StageStarted",
    "StepOutput",
    "StepStarted",
    "build",
    "load_plan",
]
