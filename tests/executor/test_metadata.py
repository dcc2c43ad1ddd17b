"""Config transforms of the metadata instructions and the history texts BuildKit writes."""

from __future__ import annotations

import pytest

from pykaniko.dockerfile import parse_instruction
from pykaniko.errors import BuildError, Location
from pykaniko.executor.metadata import (
    MetadataInstruction,
    apply_metadata,
    created_by_metadata,
    expose_ports,
    run_created_by,
)
from pykaniko.image.config import ContainerConfig, ImageConfig
from pykaniko.image.config import Healthcheck as ConfigHealthcheck

LOC = Location("Dockerfile", 1, 1)


def instr(text: str) -> MetadataInstruction:
    parsed = parse_instruction(text, LOC)
    assert isinstance(parsed, MetadataInstruction)
    return parsed


def apply(*texts: str, config: ImageConfig | None = None, cmd_set: bool = False) -> ImageConfig:
    cfg = config or ImageConfig()
    for text in texts:
        cfg = apply_metadata(cfg, instr(text), cmd_set=cmd_set)
    return cfg


def with_cc(**kwargs: object) -> ImageConfig:
    return ImageConfig(config=ContainerConfig(**kwargs))  # type: ignore[arg-type]


def test_env_replaces_in_place_and_appends() -> None:
    base = with_cc(env=("PATH=/bin", "A=0", "Z=9"))
    out = apply("ENV A=1 B=2", "ENV PATH=/usr/bin:/bin", config=base).config
    assert out.env == ("PATH=/usr/bin:/bin", "A=1", "Z=9", "B=2")
    assert out.env_get("A") == "1"


def test_env_legacy_form() -> None:
    assert apply("ENV GREETING hello world").config.env == ("GREETING=hello world",)


def test_arg_changes_nothing() -> None:
    assert apply("ARG X=1") == ImageConfig()


def test_label_merges_and_overrides() -> None:
    base = with_cc(labels={"a": "1", "b": "2"})
    out = apply("LABEL b=3 c=xy", config=base).config
    assert dict(out.labels) == {"a": "1", "b": "3", "c": "xy"}


@pytest.mark.parametrize(
    ("specs", "expected"),
    [
        (["80"], ["80/tcp"]),
        (["53/udp"], ["53/udp"]),
        (["9/sctp"], ["9/sctp"]),
        (["80/TCP"], ["80/tcp"]),
        (["8000-8002"], ["8000/tcp", "8001/tcp", "8002/tcp"]),
        (["7-8/udp"], ["7/udp", "8/udp"]),
    ],
)
def test_expose_ports(specs: list[str], expected: list[str]) -> None:
    assert expose_ports(specs) == expected


@pytest.mark.parametrize("spec", ["abc", "80/icmp", "70000", "90-80", "0", "", "80/"])
def test_expose_invalid(spec: str) -> None:
    with pytest.raises(BuildError, match="EXPOSE"):
        expose_ports([spec])


def test_expose_merges_without_duplicates() -> None:
    base = with_cc(exposed_ports=("80/tcp",))
    out = apply("EXPOSE 80 443 53/udp", config=base).config
    assert out.exposed_ports == ("80/tcp", "443/tcp", "53/udp")


def test_volume_appends_without_duplicates() -> None:
    base = with_cc(volumes=("/data",))
    assert apply('VOLUME ["/data", "/logs"]', "VOLUME /x", config=base).config.volumes == (
        "/data",
        "/logs",
        "/x",
    )


def test_user_is_stored_verbatim() -> None:
    assert apply("USER app:staff").config.user == "app:staff"


def test_cmd_exec_and_shell_forms() -> None:
    assert apply('CMD ["nginx", "-g", "daemon off;"]').config.cmd == (
        "nginx",
        "-g",
        "daemon off;",
    )
    assert apply("CMD echo $HOME").config.cmd == ("/bin/sh", "-c", "echo $HOME")


def test_shell_form_uses_shell_instruction() -> None:
    out = apply('SHELL ["/bin/bash", "-euc"]', "CMD echo hi", "ENTRYPOINT exec run").config
    assert out.shell == ("/bin/bash", "-euc")
    assert out.entrypoint == ("/bin/bash", "-euc", "exec run")


def test_entrypoint_clears_inherited_cmd() -> None:
    base = with_cc(cmd=("bash",))
    assert apply('ENTRYPOINT ["/init"]', config=base).config.cmd is None


def test_entrypoint_keeps_cmd_set_in_this_stage() -> None:
    base = with_cc(cmd=("bash",))
    out = apply('ENTRYPOINT ["/init"]', config=base, cmd_set=True).config
    assert out.cmd == ("bash",)
    assert out.entrypoint == ("/init",)


def test_empty_exec_cmd() -> None:
    assert apply("CMD []").config.cmd == ()


@pytest.mark.parametrize(
    "sig", ["SIGTERM", "TERM", "sigkill", "9", "64", "SIGRTMIN+3", "RTMAX-1", "SIGRTMIN", "CLD"]
)
def test_stopsignal_valid(sig: str) -> None:
    assert apply(f"STOPSIGNAL {sig}").config.stop_signal == sig


@pytest.mark.parametrize("sig", ["SIGFOO", "0", "-1", "RTMIN+16", "RTMAX-0", "KILLL"])
def test_stopsignal_invalid(sig: str) -> None:
    with pytest.raises(BuildError, match="STOPSIGNAL"):
        apply(f"STOPSIGNAL {sig}")


def test_healthcheck_cmd_with_options() -> None:
    out = apply(
        "HEALTHCHECK --interval=5s --timeout=3s --start-period=1m --start-interval=2s "
        "--retries=4 CMD curl -f http://localhost/"
    ).config
    assert out.healthcheck == ConfigHealthcheck(
        test=("CMD-SHELL", "curl -f http://localhost/"),
        interval=5_000_000_000,
        timeout=3_000_000_000,
        start_period=60_000_000_000,
        start_interval=2_000_000_000,
        retries=4,
    )


def test_healthcheck_exec_form_defaults_are_zero() -> None:
    out = apply('HEALTHCHECK CMD ["/bin/check", "--fast"]').config
    assert out.healthcheck == ConfigHealthcheck(test=("CMD", "/bin/check", "--fast"))
    assert out.healthcheck.to_json() == {"Test": ["CMD", "/bin/check", "--fast"]}


def test_healthcheck_none_disables_inherited() -> None:
    base = with_cc(healthcheck=ConfigHealthcheck(test=("CMD", "x"), retries=3))
    out = apply("HEALTHCHECK NONE", config=base).config
    assert out.healthcheck == ConfigHealthcheck(test=("NONE",))


def test_onbuild_appends_raw_expression() -> None:
    base = with_cc(on_build=("RUN a",))
    out = apply("ONBUILD COPY . /src", "ONBUILD RUN make", config=base).config
    assert out.on_build == ("RUN a", "COPY . /src", "RUN make")


def test_maintainer_sets_author_only() -> None:
    out = apply("MAINTAINER Jane Doe <jane@example.com>")
    assert out.author == "Jane Doe <jane@example.com>"
    assert out.config == ContainerConfig()


def test_transform_does_not_mutate_input() -> None:
    base = with_cc(env=("A=1",), labels={"x": "1"})
    apply("ENV A=2", "LABEL x=2", config=base)
    assert base.config.env == ("A=1",)
    assert dict(base.config.labels) == {"x": "1"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ENV A=1 B=two", "ENV A=1 B=two"),
        ("ARG X=1 Y", "ARG X=1 Y"),
        ("LABEL a=b c=d", "LABEL a=b c=d"),
        ("EXPOSE 80 53/udp 8000-8001", "EXPOSE map[53/udp:{} 80/tcp:{} 8000/tcp:{} 8001/tcp:{}]"),
        ('VOLUME ["/data", "/logs"]', "VOLUME [/data /logs]"),
        ("USER app", "USER app"),
        ('CMD ["a", "b c"]', 'CMD ["a" "b c"]'),
        ("CMD echo hi", 'CMD ["/bin/sh" "-c" "echo hi"]'),
        ('ENTRYPOINT ["/init"]', 'ENTRYPOINT ["/init"]'),
        ('SHELL ["/bin/bash", "-c"]', "SHELL [/bin/bash -c]"),
        ("STOPSIGNAL SIGINT", "STOPSIGNAL SIGINT"),
        ("ONBUILD RUN make", "ONBUILD RUN make"),
        ("MAINTAINER me", "MAINTAINER me"),
        ("HEALTHCHECK NONE", 'HEALTHCHECK ["NONE"]'),
    ],
)
def test_created_by_metadata(text: str, expected: str) -> None:
    step = instr(text)
    cfg = apply_metadata(ImageConfig(), step)
    assert created_by_metadata(step, cfg.config) == expected


def test_run_created_by() -> None:
    assert run_created_by(["/bin/sh", "-c", "make all"], {}) == "RUN /bin/sh -c make all # buildkit"
    # BuildKit lists the build args in declaration order
    assert (
        run_created_by(["/bin/sh", "-c", "make"], {"B": "2", "A": "1"})
        == "RUN |2 B=2 A=1 /bin/sh -c make # buildkit"
    )
