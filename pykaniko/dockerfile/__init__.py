"""Dockerfile front end: text -> typed instructions -> stage graph -> BuildPlan.

Pure code: it reads only the strings handed in and imports nothing from pykaniko but
``pykaniko.errors``. The executor walks a ``BuildPlan`` and threads a ``StageScope``
through each stage to expand instructions the way Docker does.
"""

from pykaniko.dockerfile.dockerignore import DockerIgnore, IgnorePattern, load_dockerignore
from pykaniko.dockerfile.graph import (
    BaseRef,
    BuildPlan,
    ImageBase,
    PlannedStage,
    ScratchBase,
    SkippedStage,
    StageBase,
    plan_build,
    render_plan,
)
from pykaniko.dockerfile.instructions import (
    Add,
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Heredoc,
    Instruction,
    Label,
    Maintainer,
    Mount,
    Onbuild,
    Run,
    Shell,
    StopSignal,
    User,
    Volume,
    Workdir,
    parse_duration,
    parse_instruction,
)
from pykaniko.dockerfile.render import format_instruction, format_mount
from pykaniko.dockerfile.scope import (
    PLATFORM_ARGS,
    PROXY_ARGS,
    StageScope,
    expand_word,
    global_args,
    platform_args,
)
from pykaniko.dockerfile.stages import Dockerfile, Stage, parse_dockerfile

__all__ = [
    # instructions
    "Instruction",
    "Heredoc",
    "Mount",
    "From",
    "Run",
    "Copy",
    "Add",
    "Cmd",
    "Entrypoint",
    "Shell",
    "Env",
    "Arg",
    "Label",
    "Expose",
    "Volume",
    "User",
    "Workdir",
    "StopSignal",
    "Healthcheck",
    "Onbuild",
    "Maintainer",
    "parse_instruction",
    "parse_duration",
    "format_instruction",
    "format_mount",
    # files and stages
    "Dockerfile",
    "Stage",
    "parse_dockerfile",
    # expansion and scope
    "expand_word",
    "StageScope",
    "global_args",
    "platform_args",
    "PLATFORM_ARGS",
    "PROXY_ARGS",
    # planning
    "BaseRef",
    "StageBase",
    "ImageBase",
    "ScratchBase",
    "PlannedStage",
    "SkippedStage",
    "BuildPlan",
    "plan_build",
    "render_plan",
    # .dockerignore
    "DockerIgnore",
    "IgnorePattern",
    "load_dockerignore",
]
