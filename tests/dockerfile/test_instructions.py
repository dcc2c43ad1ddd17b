"""Typed instructions: flags, defaults, heredoc commands and ONBUILD triggers."""

from __future__ import annotations

import pytest

import pykaniko.dockerfile as dockerfile_pkg
from pykaniko.dockerfile import (
    Add,
    Copy,
    Healthcheck,
    Mount,
    Onbuild,
    Run,
    format_instruction,
    parse_dockerfile,
    parse_duration,
    parse_instruction,
)
from pykaniko.errors import DockerfileError, Location

LOC = Location("Dockerfile", 7, 7)


def run(text: str) -> Run:
    instr = parse_instruction(text, LOC)
    assert isinstance(instr, Run)
    return instr


def mount(spec: str) -> Mount:
    return run(f"RUN --mount={spec} true").mounts[0]


MOUNT_CASES = [
    ("target=/src", ("bind", "/src", None, True, "shared", None)),
    ("type=bind,src=a,dst=/b,rw", ("bind", "/b", "a", False, "shared", None)),
    ("type=cache,target=/c", ("cache", "/c", "/c", False, "shared", 0o755)),
    ("type=cache,target=/c,id=x,sharing=private,ro", ("cache", "/c", "x", True, "private", 0o755)),
    ("type=secret,id=tok", ("secret", "/run/secrets/tok", "tok", True, "shared", 0o400)),
    ("type=secret,target=/etc/key", ("secret", "/etc/key", "key", True, "shared", 0o400)),
    ("type=secret,id=t,env=TOKEN", ("secret", "", "t", True, "shared", 0o400)),
    ("type=ssh", ("ssh", "/run/buildkit/ssh_agent.0", "default", True, "shared", 0o600)),
    ("type=tmpfs,target=/t,size=1g", ("tmpfs", "/t", None, False, "shared", None)),
    (
        "type=cache,target=/c,mode=0700,readonly=false",
        ("cache", "/c", "/c", False, "shared", 0o700),
    ),
]


@pytest.mark.parametrize(("spec", "expected"), MOUNT_CASES)
def test_mount_defaults(spec: str, expected: tuple[object, ...]) -> None:
    m = mount(spec)
    key = m.id if m.type in ("cache", "secret", "ssh") else m.source
    assert (m.type, m.target, key, m.readonly, m.sharing, m.mode) == expected


def test_mount_ids_and_required() -> None:
    m = mount("type=secret,id=a,required,uid=10,gid=20")
    assert (m.required, m.uid, m.gid) == (True, 10, 20)
    assert mount("type=secret,id=a").required is False


@pytest.mark.parametrize(
    ("text", "expected_text", "script"),
    [
        ("RUN echo hi", "echo hi", False),
        ("RUN <<EOF\necho a\necho b\nEOF", "echo a\necho b\n", False),
        ("RUN <<EOF\n#!/bin/python3\nprint(1)\nEOF", "#!/bin/python3\nprint(1)\n", True),
        ("RUN python3 <<EOF\nprint(1)\nEOF", "python3 <<EOF\nprint(1)\nEOF", False),
        ("RUN <<EOF python3\nprint(1)\nEOF", "<<EOF python3\nprint(1)\nEOF", False),
        ("RUN cat <<A <<-B\na\nA\n\tb\n\tB", "cat <<A <<-B\na\nA\nb\nB", False),
    ],
)
def test_run_heredoc_commands(text: str, expected_text: str, script: bool) -> None:
    instr = run(text)
    assert instr.command_text == expected_text
    assert (instr.script is not None) is script


def test_exec_run_has_no_shell_text() -> None:
    instr = run('RUN ["a", "b"]')
    assert (instr.args, instr.shell) == (("a", "b"), False)
    with pytest.raises(ValueError, match="exec-form"):
        _ = instr.command_text


def test_copy_heredoc_sources_are_separated() -> None:
    instr = parse_instruction("COPY <<A a.txt <<B /d/\nx\nA\ny\nB", LOC)
    assert isinstance(instr, Copy)
    assert instr.sources == ("a.txt",)
    assert [(h.name, h.content) for h in instr.heredocs] == [("A", "x\n"), ("B", "y\n")]


def test_add_flags() -> None:
    instr = parse_instruction("ADD --link --keep-git-dir --unpack=false x y", LOC)
    assert isinstance(instr, Add)
    assert (instr.link, instr.keep_git_dir, instr.unpack) == (True, True, False)


@pytest.mark.parametrize(
    ("text", "nanos"),
    [
        ("0", 0),
        ("30s", 30 * 10**9),
        ("1m30s", 90 * 10**9),
        ("1.5h", 5400 * 10**9),
        ("250ms", 250 * 10**6),
        ("2us", 2000),
    ],
)
def test_parse_duration(text: str, nanos: int) -> None:
    assert parse_duration(text) == nanos


@pytest.mark.parametrize("text", ["", "5", "s", "1x", "-1s", "1s2"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_healthcheck_forms() -> None:
    none = parse_instruction("HEALTHCHECK NONE", LOC)
    assert isinstance(none, Healthcheck)
    assert none.test == ("NONE",)
    shell = parse_instruction("HEALTHCHECK --retries=2 CMD curl -f x || exit 1", LOC)
    assert isinstance(shell, Healthcheck)
    assert shell.test == ("CMD-SHELL", "curl -f x || exit 1")
    assert shell.retries == 2
    assert format_instruction(shell) == "HEALTHCHECK --retries=2 CMD curl -f x || exit 1"


def test_onbuild_trigger_from_image_config() -> None:
    trigger = parse_instruction("COPY --from=builder /a /b", LOC)
    assert isinstance(trigger, Copy)
    assert trigger.location == LOC
    onbuild = parse_dockerfile("FROM a\nONBUILD   run   echo hi\n").stages[0].instructions[0]
    assert isinstance(onbuild, Onbuild)
    assert onbuild.expression == "run   echo hi"
    assert isinstance(onbuild.inner, Run)
    assert onbuild.inner.args == ("echo hi",)


def test_parse_instruction_wants_one() -> None:
    with pytest.raises(DockerfileError, match="exactly one instruction"):
        parse_instruction("RUN a\nRUN b", LOC)


def test_errors_render_location() -> None:
    with pytest.raises(DockerfileError) as info:
        parse_dockerfile("FROM alpine\n\nRUNN x\n", "build/Dockerfile.dev")
    err = info.value
    assert err.location == Location("build/Dockerfile.dev", 3, 3)
    assert str(err) == 'build/Dockerfile.dev:3: unknown instruction "RUNN" (did you mean RUN?)'


def test_all_is_complete() -> None:
    public = {
        name
        for name, value in vars(dockerfile_pkg).items()
        if not name.startswith("_")
        and getattr(value, "__module__", "").startswith("pykaniko.dockerfile")
    }
    assert public <= set(dockerfile_pkg.__all__)
    for name in dockerfile_pkg.__all__:
        assert hasattr(dockerfile_pkg, name)
