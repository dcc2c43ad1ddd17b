"""The leak guard's decisions and messages: a shipped layer fails at once (error) or
warns (warn), an intermediate one only when it is about to be pushed; reports name the
secret, the path and the step and never the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from pykaniko.dockerfile import parse_dockerfile, plan_build
from pykaniko.errors import Location, SecretLeakError
from pykaniko.executor.events import Event, Notice
from pykaniko.executor.leakcheck import (
    LeakGuard,
    Origin,
    registry_secrets,
    shipped_stages,
    short_step,
)
from pykaniko.executor.options import SecretSource
from pykaniko.executor.secrets import SecretValues
from pykaniko.image.leakscan import Leak, Secret
from pykaniko.registry.auth import Credential, RecordingKeychain, StaticKeychain

TOKEN = "npm_8f2Kq9LzW4xTbR7cVn3M"
STEP = Origin(
    0,
    Location("Dockerfile", 7, 7),
    f"RUN --mount=type=secret,id=npmrc cat /run/secrets/npmrc > /root/.npmrc # {TOKEN}",
)


def _guard(mode: str = "error", shipped: tuple[int, ...] = (0,)) -> tuple[LeakGuard, list[Event]]:
    events: list[Event] = []
    values = SecretValues()
    values.record('secret "npmrc"', TOKEN.encode())
    guard = LeakGuard(mode, values, events.append, shipped_stages=shipped)  # type: ignore[arg-type]
    return guard, events


LEAK = Leak('secret "npmrc"', "/root/.npmrc")


def test_a_shipped_layer_fails_with_the_documented_message() -> None:
    guard, _ = _guard()
    with pytest.raises(SecretLeakError) as info:
        guard.layer_done("sha256:" + "a" * 64, [LEAK], STEP)
    err = info.value
    assert str(err).startswith(
        'Dockerfile:7: secret "npmrc" leaked into /root/.npmrc '
        "(RUN --mount=type=secret,id=npmrc cat …); nothing was pushed"
    )
    assert err.code == "secret-leak"
    assert TOKEN not in str(err)


def test_warn_mode_reports_each_place_once() -> None:
    guard, events = _guard("warn")
    more = Leak('secret "npmrc"', f"/cache/{TOKEN}", "name")
    guard.layer_done("sha256:" + "a" * 64, [LEAK, more], STEP)
    guard.clear_for_push(["sha256:" + "a" * 64], "the image")
    lines = [e.message for e in events if isinstance(e, Notice)]
    assert lines[0].startswith('Dockerfile:7: secret "npmrc" leaked into /root/.npmrc (RUN')
    assert "the name of /cache/***" in lines[1]
    assert len(lines) == 2, "the push check repeats nothing already reported"
    assert all(TOKEN not in line for line in lines)


def test_an_intermediate_layer_fails_only_when_pushed() -> None:
    guard, events = _guard(shipped=(1,))
    digest = "sha256:" + "b" * 64
    guard.layer_done(digest, [LEAK], STEP)
    assert isinstance(events[0], Notice)
    assert "not part of the image" in events[0].message
    guard.clear_for_push(["sha256:" + "c" * 64], "the image")  # other layers pass
    with pytest.raises(SecretLeakError) as info:
        guard.clear_for_push([digest], "the cache image")
    assert "; the cache image was not pushed (hint:" in str(info.value)


def test_off_scans_nothing() -> None:
    guard, _ = _guard("off")
    assert guard.scanner() is None
    guard.check_metadata(f'{{"a": "{TOKEN}"}}'.encode(), "the image config")


def test_metadata_hits_name_the_field() -> None:
    guard, _ = _guard()
    with pytest.raises(SecretLeakError) as info:
        guard.check_metadata(
            f'{{"config": {{"Labels": {{"t": "{TOKEN}"}}}}}}'.encode(), "the image config"
        )
    assert str(info.value).startswith(
        'secret "npmrc" leaked into the image config (config.Labels.t); nothing was pushed'
    )
    assert "--secret and RUN --mount=type=secret" in (info.value.hint or "")


def test_short_step() -> None:
    assert short_step("RUN true") == "RUN true"
    assert short_step("COPY config.json /root/.docker/config.json") == "COPY config.json …"
    assert short_step("RUN " + "x" * 80) == "RUN …"


def test_secret_values_for_build(tmp_path: Path) -> None:
    good = tmp_path / "s"
    good.write_text(TOKEN + "\n")
    values = SecretValues.for_build(
        [
            SecretSource("file", path=str(good)),
            SecretSource("env", env="TOK"),
            SecretSource("missing", path=str(tmp_path / "nope")),
            SecretSource("unset", env="UNSET"),
        ],
        {"TOK": "env-value-1234"},
        providers=[lambda: [Secret("the registry password for r", b"pw-123456")]],
    )
    values.record('secret "served"', b"served-value")
    got = {(s.label, s.value) for s in values.current()}
    assert got == {
        ('secret "file"', (TOKEN + "\n").encode()),
        ('secret "env"', b"env-value-1234"),
        ('secret "served"', b"served-value"),
        ("the registry password for r", b"pw-123456"),
    }


def test_recording_keychain_and_registry_secrets() -> None:
    chain = RecordingKeychain(
        StaticKeychain(
            {
                "reg.example": Credential("u", "p4ssw0rd-long"),
                "tok.example": Credential(identity_token="idtok-123456789"),
            }
        )
    )
    assert chain.resolve("other.example") is None
    chain.resolve("reg.example")
    chain.resolve("tok.example")
    secrets = registry_secrets(chain.resolved())
    assert {(s.label, s.value) for s in secrets} == {
        ("the registry password for reg.example", b"p4ssw0rd-long"),
        ("the registry identity token for tok.example", b"idtok-123456789"),
    }


def test_shipped_stages_follow_the_target_s_from_chain() -> None:
    text = (
        "FROM busybox AS tools\nRUN true\n"
        "FROM tools AS build\nRUN true\n"
        "FROM busybox AS other\nRUN true\n"
        "FROM build\nCOPY --from=other /x /x\n"
    )
    plan = plan_build(parse_dockerfile(text, filename="Dockerfile"))
    assert shipped_stages(plan) == {0, 1, 3}
    assert shipped_stages(plan_build(parse_dockerfile(text, filename="D"), target="other")) == {2}
