"""Fuzzing: random and mutated Dockerfiles may fail only with DockerfileError."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pykaniko.dockerfile import (
    DockerIgnore,
    StageScope,
    parse_dockerfile,
    plan_build,
    render_plan,
)
from pykaniko.errors import DockerfileError
from tests.dockerfile.golden import CASES, ERRORS

SEEDS = [
    p.read_bytes().decode()
    for root in (CASES, ERRORS)
    for p in sorted(Path(root).glob("*/Dockerfile"))
]

_CHARS = list("FROMRUNCOPYADDENVARG abcxyz019 =-_./:$'\"{}[]<>#\\`\t\n\r!?*%@,")
_TOKENS = [
    "FROM ",
    "RUN ",
    "COPY ",
    "ARG ",
    "ENV ",
    "<<EOF",
    "\nEOF\n",
    "${",
    "--mount=",
    "--from=",
]
ALPHABET = st.sampled_from([*_CHARS, *_TOKENS])


def exercise(text: str) -> None:
    """Parse, plan every way and walk every stage; only DockerfileError may escape."""
    try:
        df = parse_dockerfile(text)
        for skip in (False, True):
            render_plan(plan_build(df, skip_unused_stages=skip, build_args={"A": "1"}))
        for stage in df.stages:
            scope = StageScope.start(
                stage=stage,
                dockerfile=df,
                image_env=["PATH=/bin"],
                build_args={"A": "1"},
                target_platform="linux/arm64/v8",
                build_platform="linux/amd64",
            )
            for instr in stage.instructions:
                scope = scope.after(scope.expand(instr))
            scope.run_env(["PATH=/bin"])
    except DockerfileError:
        pass


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["insert", "delete", "dup_char", "dup_line", "del_line"]))
        pos = draw(st.integers(0, max(len(text) - 1, 0)))
        if kind == "insert":
            text = text[:pos] + draw(ALPHABET) + text[pos:]
        elif kind == "delete":
            text = text[:pos] + text[pos + 1 :]
        elif kind == "dup_char":
            text = text[: pos + 1] + text[pos : pos + 1] + text[pos + 1 :]
        else:
            lines = text.split("\n")
            index = draw(st.integers(0, max(len(lines) - 1, 0)))
            if kind == "dup_line":
                lines.insert(index, lines[index])
            elif len(lines) > 1:
                del lines[index]
            text = "\n".join(lines)
    return text


FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


@FUZZ
@given(mutated())
def test_mutated_dockerfiles(text: str) -> None:
    exercise(text)


@FUZZ
@given(st.lists(ALPHABET, max_size=60).map("".join))
def test_random_dockerfiles(text: str) -> None:
    exercise("FROM alpine\n" + text)
    exercise(text)


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(alphabet="ab*?[]!^/\\.# \n-", max_size=30), st.text(alphabet="ab/.-*", max_size=12))
def test_dockerignore_never_crashes(patterns: str, path: str) -> None:
    rules = DockerIgnore.parse(patterns)
    rules.matches(path)
    rules.may_match_children(path)
