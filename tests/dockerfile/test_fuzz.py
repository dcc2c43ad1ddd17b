"""Fuzzing the front end: generated and mutated Dockerfiles go through the parser,
expansion, the stage graph (every target, with and without skipping) and the
``--dry-run`` plan; each either plans or raises a DockerfileError that names a line.
Nothing else may escape (no IndexError, RecursionError, ValueError...).

The CI profile is modest; a longer local run::

    PYKANIKO_FUZZ=long .venv/bin/pytest -q -p no:cacheprovider tests/dockerfile/test_fuzz.py
"""

from __future__ import annotations

import os
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

# What the mutators splice in: flags (known, unknown, malformed), heredoc markers,
# expansions (nested, unterminated, with modifiers), escapes and directives.
FLAGS = [
    "--from=",
    "--from=0 ",
    "--from=${A} ",
    "--chown=1:1 ",
    "--chmod=755 ",
    "--chmod=9999 ",
    "--link ",
    "--parents ",
    "--exclude=*.md ",
    "--platform=$BUILDPLATFORM ",
    "--platform=linux/arm64/v8 ",
    "--platform= ",
    "--network=none ",
    "--security=insecure ",
    "--mount=type=cache,target=/c ",
    "--mount=type=secret,id=s,required ",
    "--mount=type=bind,from=0,source=/,target=/x ",
    "--mount=type=tmpfs,target=/t,size=1 ",
    "--mount=type=ssh ",
    "--mount=type= ",
    "--mount=,,, ",
    "--mount=type=cache,target ",
    "--interval=5s ",
    "--timeout=x ",
    "--start-period=-1s ",
    "--retries=-1 ",
    "--keep-git-dir ",
    "--checksum=sha256:00 ",
    "--=x ",
    "-- ",
    "--unknown ",
]
HEREDOCS = [
    "<<EOF",
    "<<-EOF",
    "<<'EOF'",
    '<<"EOF"',
    "<<EOF <<END",
    "<<",
    "<<-",
    "<<E\\OF",
    "EOF",
    "\nEOF",
    "END\n",
]
EXPANSIONS = [
    "$A",
    "${A}",
    "${A:-x}",
    "${A:+y}",
    "${A-}",
    "${A+}",
    "${A?err}",
    "${A:?}",
    "${A#*}",
    "${A%%x}",
    "${A/x/y}",
    "${A:1:2}",
    "${",
    "${}",
    "${A",
    "${A:-${B:-${C}}}",
    "$$",
    "\\$A",
    "${A:-$(x)}",
    "${!A}",
    "${#A}",
]
ESCAPES = [
    "\\",
    "\\\n",
    "`",
    "`\n",
    "\\ ",
    " \\\r\n",
    "\\\\",
    '\\"',
    "'\\''",
    "\r",
    "\x00",
    "\ufeff",
    "é",
    "\u202e",
]
DIRECTIVES = [
    "# escape=`\n",
    "# escape=\\\n",
    "# escape=x\n",
    "# syntax=docker/dockerfile:1\n",
    "# check=skip=all\n",
    "#escape=`\n",
]
INSTRUCTIONS = [
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "MAINTAINER",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
    "from",
    "Run",
]
PIECES = [
    *FLAGS,
    *HEREDOCS,
    *EXPANSIONS,
    *ESCAPES,
    *INSTRUCTIONS,
    "[",
    "]",
    '["a", "b"]',
    '["a",',
    "=",
    " AS ",
    " as x",
    "\n",
]


_MOSTLY = st.sampled_from([True, True, True, True, False])


def _nested(depth: int) -> str:
    """``${A:-${A:-...}}`` ``depth`` levels deep."""
    return "${A:-" * depth + "x" + "}" * depth


def exercise(text: str, *, build_args: dict[str, str] | None = None) -> None:
    """Parse, plan every way (every target, skipping or not) and expand every stage;
    only a DockerfileError that names a line, in one line, may escape."""
    error = _front_end(text, {"A": "1"} if build_args is None else build_args)
    if error is not None:
        assert error.location is not None, f"unlocated DockerfileError: {error}"
        assert error.location.start >= 1, error
        assert "\n" not in error.message, f"a one-line message, got {error.message!r}"


def _front_end(text: str, args: dict[str, str]) -> DockerfileError | None:
    try:
        df = parse_dockerfile(text)
        targets: list[str | None] = [None]
        targets += [s.name for s in df.stages if s.name][:3]
        for target in targets:
            for skip in (False, True):
                plan = plan_build(df, target=target, skip_unused_stages=skip, build_args=args)
                assert isinstance(render_plan(plan), str)
        for stage in df.stages:
            scope = StageScope.start(
                stage=stage,
                dockerfile=df,
                image_env=["PATH=/bin"],
                build_args=args,
                target_platform="linux/arm64/v8",
                build_platform="linux/amd64",
            )
            for instr in stage.instructions:
                scope = scope.after(scope.expand(instr))
            scope.run_env(["PATH=/bin"])
    except DockerfileError as exc:
        return exc
    return None


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(
            st.sampled_from(
                [
                    "insert",
                    "delete",
                    "dup_char",
                    "dup_line",
                    "del_line",
                    "splice",
                    "piece",
                    "flag",
                    "nest",
                    "directive",
                    "swap_lines",
                    "join_lines",
                ]
            )
        )
        lines = text.split("\n")
        # mostly past the first line, so the mutant still has a FROM and gets planned
        low = 1 if len(lines) > 1 and draw(_MOSTLY) else 0
        index = draw(st.integers(low, max(len(lines) - 1, 0)))
        start = sum(len(line) + 1 for line in lines[:index])
        pos = min(start + draw(st.integers(0, len(lines[index]))), max(len(text) - 1, 0))
        if kind == "insert":
            text = text[:pos] + draw(ALPHABET) + text[pos:]
        elif kind == "delete":
            text = text[:pos] + text[pos + 1 :]
        elif kind == "dup_char":
            text = text[: pos + 1] + text[pos : pos + 1] + text[pos + 1 :]
        elif kind == "splice":  # a line of another seed, whole or cut
            other = draw(st.sampled_from(SEEDS)).split("\n")
            line = other[draw(st.integers(0, len(other) - 1))]
            cut = draw(st.integers(0, len(line)))
            lines.insert(index, line[:cut] if draw(st.booleans()) else line)
            text = "\n".join(lines)
        elif kind == "piece":
            text = text[:pos] + draw(st.sampled_from(PIECES)) + text[pos:]
        elif kind == "flag":  # after an instruction keyword
            line = lines[index]
            head, sep, rest = line.partition(" ")
            lines[index] = head + " " + draw(st.sampled_from(FLAGS)) + rest if sep else line
            text = "\n".join(lines)
        elif kind == "nest":
            text = text[:pos] + _nested(draw(st.integers(1, 60))) + text[pos:]
        elif kind == "directive":
            text = draw(st.sampled_from(DIRECTIVES)) + text
        elif kind == "swap_lines" and len(lines) > 1:
            j = draw(st.integers(0, len(lines) - 1))
            lines[index], lines[j] = lines[j], lines[index]
            text = "\n".join(lines)
        elif kind == "join_lines" and index + 1 < len(lines):
            lines[index : index + 2] = [lines[index] + " \\" + "\n" + lines[index + 1]]
            text = "\n".join(lines)
        elif kind == "dup_line":
            lines.insert(index, lines[index])
            text = "\n".join(lines)
        elif kind == "del_line" and len(lines) > 1:
            del lines[index]
            text = "\n".join(lines)
    return text


@st.composite
def generated(draw: st.DrawFn) -> str:
    """Dockerfiles built from instruction keywords, flags and argument pieces: mostly
    well-formed stages (so the graph and the plan see them), with odd arguments."""
    out = [draw(st.sampled_from(["", "", "", "", "", "", *DIRECTIVES]))]
    if draw(_MOSTLY):
        out.append("ARG A=1\nARG BASE=alpine\n")
    words = [*PIECES, "a", "b", "/x", "0", "x=y", "s0", "s1", "--from=s0", "--from=s1", "$BASE"]
    stages = draw(st.integers(1, 4))
    for n in range(stages):
        base = draw(st.sampled_from(["alpine", "$BASE", "${BASE:-x}", "s0", "scratch", "s9"]))
        out.append(f"FROM {base} AS s{n}\n" if draw(_MOSTLY) else "FROM \n")
        for _ in range(draw(st.integers(0, 6))):
            keyword = draw(st.sampled_from(INSTRUCTIONS[1:]))  # stages start above
            parts = draw(st.lists(st.sampled_from(words), min_size=1, max_size=6))
            out.append(keyword + " " + " ".join(parts) + "\n")
    return "".join(out)


_LONG = os.environ.get("PYKANIKO_FUZZ") == "long"


def _fuzz(ci: int) -> settings:
    return settings(
        max_examples=ci * 20 if _LONG else ci,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )


@_fuzz(200)
@given(mutated())
def test_mutated_dockerfiles(text: str) -> None:
    exercise(text)


@_fuzz(120)
@given(generated())
def test_generated_dockerfiles(text: str) -> None:
    exercise(text)


@_fuzz(150)
@given(st.lists(ALPHABET, max_size=60).map("".join))
def test_random_dockerfiles(text: str) -> None:
    exercise("FROM alpine\n" + text)
    exercise(text)


@_fuzz(60)
@given(
    st.sampled_from(SEEDS),
    st.dictionaries(
        st.sampled_from(["A", "B", "BASE", "TARGETPLATFORM", "HTTP_PROXY", "x"]),
        st.sampled_from(["", "1", "${A}", "$B", "a b", "alpine", "-", "--x", "../..", ":"]),
        max_size=4,
    ),
)
def test_build_args_into_seeds(text: str, args: dict[str, str]) -> None:
    exercise(text, build_args=args)


def test_huge_inputs_plan_or_fail_located() -> None:
    """Within reason: many stages, long lines, deep nesting, long continuations."""
    stages = "".join(f"FROM alpine AS s{i}\nCOPY --from=s{i - 1} / /\n" for i in range(1, 300))
    cases = [
        "FROM alpine AS s0\n" + stages,
        "FROM alpine\nRUN " + "x" * 200_000 + "\n",
        "FROM alpine\nARG A=1\nRUN echo " + _nested(500) + "\n",
        "FROM alpine\nENV A=" + _nested(2000) + "\n",
        "FROM alpine\nRUN a \\\n" + "b \\\n" * 20_000 + "c\n",
        "FROM alpine\n" + "RUN <<EOF\nx\nEOF\n" * 2000,
        "FROM alpine\nRUN <<EOF\n" + "line\n" * 50_000,
        "FROM alpine\n" + "LABEL " + " ".join(f"k{i}=v{i}" for i in range(3000)) + "\n",
        "ARG A=" + "${A}" * 5000 + "\nFROM alpine:$A\n",
        "FROM alpine\n" + "# c\n" * 50_000 + "RUN x\n",
    ]
    for text in cases:
        exercise(text)


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(alphabet="ab*?[]!^/\\.# \n-", max_size=30), st.text(alphabet="ab/.-*", max_size=12))
def test_dockerignore_never_crashes(patterns: str, path: str) -> None:
    rules = DockerIgnore.parse(patterns)
    rules.matches(path)
    rules.may_match_children(path)


def test_dockerignore_doubled_set_operators_stay_literal() -> None:
    """Found by the fuzzer: ``[?--]`` made re warn of a future set difference."""
    for pattern in ("[?--]", "[a&&b]", "[~~]", "[a||b]", "[--z]"):
        DockerIgnore.parse(pattern).matches("a")
    assert DockerIgnore.parse("[a&&b]").matches("&")
    assert DockerIgnore.parse("[--z]").matches("-")
