"""ARG/ENV scoping as the executor uses it: StageScope.start/expand/after/run_env."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from pykaniko.dockerfile import (
    Arg,
    Copy,
    Dockerfile,
    Env,
    From,
    Label,
    Run,
    StageScope,
    User,
    global_args,
    parse_dockerfile,
    parse_instruction,
    platform_args,
)
from pykaniko.errors import DockerfileError, Location

LOC = Location("Dockerfile", 1, 1)


def walk(
    text: str,
    *,
    stage: int = 0,
    build_args: Mapping[str, str] | None = None,
    image_env: Sequence[str] = (),
    target_platform: str = "linux/amd64",
) -> tuple[StageScope, list[object]]:
    """Walks one stage like the executor does; returns the final scope and the steps."""
    df = parse_dockerfile(text)
    scope = StageScope.start(
        stage=df.stages[stage],
        dockerfile=df,
        image_env=image_env,
        build_args=build_args or {},
        target_platform=target_platform,
        build_platform="linux/amd64",
    )
    steps: list[object] = []
    for instr in df.stages[stage].instructions:
        expanded = scope.expand(instr)
        steps.append(expanded)
        scope = scope.after(expanded)
    return scope, steps


def test_global_arg_invisible_until_redeclared() -> None:
    scope, steps = walk("ARG V=global\nFROM alpine\nENV A=[$V]\nARG V\nENV B=[$V]\n")
    assert isinstance(steps[0], Env)
    assert steps[0].pairs == (("A", "[]"),)
    assert scope.expansion_env()["B"] == "[global]"


def test_stage_default_beats_global_default() -> None:
    scope, _ = walk("ARG V=global\nFROM alpine\nARG V=stage\nENV X=$V\n")
    assert scope.expansion_env()["X"] == "stage"


def test_build_arg_overrides_defaults_everywhere() -> None:
    text = "ARG V=global\nFROM alpine:$V\nARG V=stage\nENV X=$V\n"
    scope, _ = walk(text, build_args={"V": "cli"})
    assert scope.expansion_env()["X"] == "cli"
    assert global_args(parse_dockerfile(text), {"V": "cli"}, "linux/amd64", "linux/amd64")["V"] == (
        "cli"
    )


def test_undeclared_build_arg_is_not_visible() -> None:
    scope, _ = walk("FROM alpine\nENV X=[$SECRET]\n", build_args={"SECRET": "s"})
    assert scope.expansion_env()["X"] == "[]"
    assert scope.run_env([]) == []


def test_env_wins_over_arg_in_either_order() -> None:
    scope, _ = walk("FROM alpine\nARG A=arg\nENV A=env\nARG B=arg\nENV B=env\nARG B=again\n")
    env = scope.expansion_env()
    assert env["A"] == "env"
    assert env["B"] == "env"
    assert scope.run_env(["A=env", "B=env"]) == ["A=env", "B=env"]


def test_same_line_references_see_previous_values() -> None:
    scope, _ = walk("FROM alpine\nENV abc=hello\nENV abc=bye def=$abc\nARG X=1 Y=$X\n")
    env = scope.expansion_env()
    assert env["def"] == "hello"
    assert env["Y"] == "1"


def test_arg_default_expands_earlier_args() -> None:
    scope, _ = walk("FROM alpine\nARG A=hello\nARG B=${A}-world\nENV E=$B\n")
    assert scope.expansion_env()["E"] == "hello-world"


def test_declared_args_and_run_env() -> None:
    scope, _ = walk(
        "FROM alpine\nARG A=1\nARG NOVALUE\nENV PATH=/bin\n",
        build_args={"HTTP_PROXY": "http://p:3128", "no_proxy": "x", "OTHER": "o"},
        image_env=["HOME=/root"],
    )
    assert dict(scope.declared_args) == {"A": "1", "NOVALUE": None}
    assert scope.run_env(["HOME=/root", "PATH=/bin"]) == [
        "HOME=/root",
        "PATH=/bin",
        "A=1",
        "HTTP_PROXY=http://p:3128",
        "no_proxy=x",
    ]


def test_proxy_args_are_not_expanded_without_declaration() -> None:
    scope, _ = walk("FROM alpine\nENV P=[$HTTP_PROXY]\n", build_args={"HTTP_PROXY": "h"})
    assert scope.expansion_env()["P"] == "[]"


def test_image_env_is_visible_and_overridable() -> None:
    scope, steps = walk(
        "FROM alpine\nENV P=$PATH:/x\nUSER $HOME\n", image_env=["PATH=/usr/bin", "HOME=/home/u"]
    )
    assert scope.expansion_env()["P"] == "/usr/bin:/x"
    assert isinstance(steps[1], User)
    assert steps[1].user == "/home/u"


def test_platform_args_need_declaration_inside_a_stage() -> None:
    text = (
        "FROM --platform=$BUILDPLATFORM alpine\n"
        "ENV A=[$TARGETARCH]\nARG TARGETARCH\nENV B=$TARGETARCH\n"
    )
    scope, _ = walk(text, target_platform="linux/arm64/v8")
    env = scope.expansion_env()
    assert env["A"] == "[]"
    assert env["B"] == "arm64"


def test_platform_args_values() -> None:
    values = platform_args("linux/arm/v7", "darwin/arm64")
    assert values == {
        "TARGETPLATFORM": "linux/arm/v7",
        "TARGETOS": "linux",
        "TARGETARCH": "arm",
        "TARGETVARIANT": "v7",
        "BUILDPLATFORM": "darwin/arm64",
        "BUILDOS": "darwin",
        "BUILDARCH": "arm64",
        "BUILDVARIANT": "",
    }


def test_global_args_see_platform_and_earlier_globals() -> None:
    df = parse_dockerfile("ARG A=$TARGETOS\nARG B=${A}-x\nARG C\nFROM alpine\n")
    scope = global_args(df, {}, "linux/amd64", "linux/amd64")
    assert scope["A"] == "linux"
    assert scope["B"] == "linux-x"
    assert scope["C"] is None


def test_inherited_scope_keeps_parent_args() -> None:
    df = parse_dockerfile("FROM alpine AS p\nARG V=1\nFROM p\nENV X=$V\n")
    parent = StageScope.start(
        stage=df.stages[0],
        dockerfile=df,
        image_env=[],
        build_args={},
        target_platform="linux/amd64",
        build_platform="linux/amd64",
    )
    parent = parent.after(parent.expand(df.stages[0].instructions[0]))
    child = StageScope.start(
        stage=df.stages[1],
        dockerfile=df,
        image_env=[],
        build_args={},
        target_platform="linux/amd64",
        build_platform="linux/amd64",
        inherited=parent,
    )
    env_instr = child.expand(df.stages[1].instructions[0])
    assert isinstance(env_instr, Env)
    assert env_instr.pairs == (("X", "1"),)


def test_expand_leaves_commands_alone() -> None:
    scope, steps = walk("FROM alpine\nENV A=1\nRUN echo $A\nCMD echo $A\n")
    assert isinstance(steps[1], Run)
    assert steps[1].args == ("echo $A",)
    assert scope.expand(steps[1]) is steps[1]


def test_expand_copy_fields_and_heredoc() -> None:
    _, steps = walk(
        "FROM alpine\nARG U=1000 M=755 SRC=s\n"
        "COPY --chown=$U:$U --chmod=$M --exclude=$SRC/*.md $SRC /d/$U\n"
        "COPY <<EOF <<'RAW' /etc/\n$U '$U'\nEOF\n$U\nRAW\n"
    )
    copy = steps[1]
    assert isinstance(copy, Copy)
    assert (copy.chown, copy.chmod, copy.sources, copy.dest) == (
        "1000:1000",
        "755",
        ("s",),
        "/d/1000",
    )
    assert copy.exclude == ("s/*.md",)
    heredocs = steps[2]
    assert isinstance(heredocs, Copy)
    assert [h.content for h in heredocs.heredocs] == ["1000 '1000'\n", "$U\n"]


def test_expand_run_mount_options() -> None:
    _, steps = walk(
        "FROM alpine\nARG S=builder T=/c\nRUN --mount=type=cache,target=$T,from=$S make\n"
    )
    run = steps[1]
    assert isinstance(run, Run)
    assert (run.mounts[0].target, run.mounts[0].from_) == ("/c", "builder")


def test_expand_label_keys_and_from() -> None:
    text = "ARG IMG=alpine\nFROM $IMG\nARG K=key\nLABEL $K=$K\n"
    scope, steps = walk(text)
    assert isinstance(steps[1], Label)
    assert steps[1].pairs == (("key", "key"),)
    df = parse_dockerfile(text)
    expanded = scope.expand(df.stages[0].from_)
    assert isinstance(expanded, From)
    assert expanded.image == "alpine"


def test_expansion_errors_are_located() -> None:
    with pytest.raises(DockerfileError) as info:
        walk("FROM alpine\n\nWORKDIR ${NOPE:?}\n")
    assert str(info.value) == "Dockerfile:3: NOPE: is not allowed to be empty"


def test_after_ignores_other_instructions() -> None:
    scope, _ = walk("FROM alpine\n")
    run = parse_instruction("RUN true", LOC)
    assert scope.after(run) is scope
    arg = parse_instruction("ARG A=1", LOC)
    assert isinstance(arg, Arg)
    assert dict(scope.after(arg).declared_args) == {"A": "1"}


def test_dockerfile_helpers() -> None:
    df: Dockerfile = parse_dockerfile("# syntax=x\nFROM a AS One\n")
    assert df.directive("syntax") == "x"
    assert df.directive("escape") is None
    assert df.stage_named("ONE") is df.stages[0]
    assert df.stage_named("two") is None
