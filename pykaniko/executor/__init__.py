"""Runs a build plan: stage builder, instruction steps, the two isolation modes of RUN
(chroot and in-place; the only places that fork, chroot or mount) and the build's work
directory.

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
from pykaniko.executor.isolation import Isolation, IsolationMode
from pykaniko.executor.isolation.chroot import ChrootIsolation
from pykaniko.executor.isolation.inplace import InPlaceIsolation
from pykaniko.executor.options import BuildOptions, OutputOptions, SecretSource

__all__ = [
    "BuildFinished",
    "BuildOptions",
    "BuildResult",
    "ChrootIsolation",
    "Event",
    "EventSink",
    "ImagePushed",
    "InPlaceIsolation",
    "Isolation",
    "IsolationMode",
    "LayerCreated",
    "Notice",
    "OutputOptions",
    "SecretSource",
    "StageSkipped",
    "StageStarted",
    "StepOutput",
    "StepStarted",
    "build",
    "load_plan",
]
