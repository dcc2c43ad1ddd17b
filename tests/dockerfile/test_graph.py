"""The stage graph: targets, skipping, numeric references, cycles, forward references."""

from __future__ import annotations

import pytest

from pykaniko.dockerfile import (
    BuildPlan,
    ImageBase,
    ScratchBase,
    StageBase,
    parse_dockerfile,
    plan_build,
    render_plan,
)
from pykaniko.errors import PlanError

MULTI = """\
FROM alpine AS base
FROM golang
FROM base AS unused
FROM busybox
COPY --from=1 /a /a
FROM scratch AS final
COPY --from=3 /b /b
RUN --mount=from=base,target=/m true
"""


def plan(text: str, **kwargs: object) -> BuildPlan:
    return plan_build(parse_dockerfile(text), **kwargs)  # type: ignore[arg-type]


def built(p: BuildPlan) -> list[int]:
    return [s.stage.index for s in p.stages]


def test_default_target_is_last_and_all_earlier_stages_build() -> None:
    p = plan(MULTI)
    assert p.target_index == 4
    assert built(p) == [0, 1, 2, 3, 4]
    assert p.skipped == ()


def test_skip_unused_keeps_unnamed_stages_and_indices() -> None:
    p = plan(MULTI, skip_unused_stages=True)
    assert built(p) == [0, 1, 3, 4]
    assert [(s.stage.index, s.reason) for s in p.skipped] == [(2, "not needed by the target")]
    final = p.stages[-1]
    assert final.dependencies == (0, 3)
    assert final.base == ScratchBase()
    assert p.stages[2].dependencies == (1,)
    assert p.stages[2].reasons == ('COPY --from in stage 4 "final" line 7',)


def test_target_by_name_is_case_insensitive_and_drops_later_stages() -> None:
    p = plan(MULTI, target="UNUSED", skip_unused_stages=True)
    assert built(p) == [0, 2]
    assert p.stages[1].base == StageBase(0)
    assert {s.stage.index: s.reason for s in p.skipped} == {
        1: "not needed by the target",
        3: "after the target",
        4: "after the target",
    }


def test_unknown_target_lists_stages() -> None:
    with pytest.raises(PlanError) as info:
        plan(MULTI, target="nope")
    assert str(info.value) == 'target stage "nope" could not be found; stages: base, unused, final'


def test_resolve_from() -> None:
    p = plan(MULTI)
    assert p.resolve_from(4, "BASE") == StageBase(0)
    assert p.resolve_from(4, "3") == StageBase(3)
    assert p.resolve_from(4, "9") == ImageBase("9", None)
    assert p.resolve_from(4, "alpine:3") == ImageBase("alpine:3", None)
    assert p.planned(2) is not None
    assert p.planned(99) is None


def test_cycle_names_the_chain() -> None:
    text = "FROM a AS one\nCOPY --from=two /x /x\nFROM b AS two\nCOPY --from=one /y /y\n"
    with pytest.raises(PlanError) as info:
        plan(text)
    assert str(info.value) == (
        "Dockerfile:2: COPY --from=two: circular dependency between stages: "
        'stage 1 "two" -> stage 0 "one" -> stage 1 "two"'
    )


def test_forward_reference_is_an_error() -> None:
    text = "FROM a AS one\nCOPY --from=1 /x /x\nFROM b\n"
    with pytest.raises(PlanError, match=r"stage 1 is defined later \(line 3\)"):
        plan(text, target="one", skip_unused_stages=True)


def test_self_reference_by_index() -> None:
    with pytest.raises(PlanError, match="refers to itself"):
        plan("FROM a\nCOPY --from=0 /x /x\n")


def test_from_own_alias_is_an_image() -> None:
    p = plan("FROM node AS node\nRUN true\n")
    assert p.stages[0].base == ImageBase("node", None)


def test_platform_and_meta_args_in_base() -> None:
    p = plan(
        "ARG TAG=1\nFROM --platform=$TARGETPLATFORM img:$TAG\n",
        build_args={"TAG": "2"},
        target_platform="linux/arm64",
    )
    assert p.stages[0].base == ImageBase("img:2", "linux/arm64")
    assert "image img:2 (linux/arm64)" in render_plan(p)


def test_copy_from_after_arg_expansion() -> None:
    text = "FROM a AS x\nFROM a AS y\nFROM a\nARG SRC=x\nCOPY --from=$SRC /a /a\n"
    assert built(plan(text, skip_unused_stages=True)) == [0, 2]
    assert built(plan(text, skip_unused_stages=True, build_args={"SRC": "y"})) == [1, 2]
    assert plan(text, build_args={"SRC": "z"}).unused_build_args == ()


def test_unknown_name_far_from_stages_is_an_image() -> None:
    p = plan("FROM a AS builder\nFROM b\nCOPY --from=redis /x /x\n", skip_unused_stages=True)
    assert built(p) == [1]


def test_onbuild_triggers_of_a_parent_stage_add_dependencies() -> None:
    text = "FROM a AS tools\nFROM a AS parent\nONBUILD COPY --from=tools /t /t\nFROM parent\n"
    assert built(plan(text, skip_unused_stages=True)) == [0, 1, 2]


def test_unused_build_args_are_reported() -> None:
    p = plan("ARG A\nFROM x\nARG B\n", build_args={"A": "1", "B": "2", "C": "3", "HTTP_PROXY": "p"})
    assert p.unused_build_args == ("C",)
    assert "build args not consumed: C" in render_plan(p)
