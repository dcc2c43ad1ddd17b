"""ImageConfig / ContainerConfig: parse and serialise without losing anything."""

from __future__ import annotations

import json

import pytest

from pykaniko.errors import ImageError
from pykaniko.image.config import ContainerConfig, Healthcheck, History, ImageConfig

BASE = {
    "architecture": "amd64",
    "os": "linux",
    "variant": "",
    "created": "2024-01-02T03:04:05Z",
    "author": "someone",
    "config": {
        "User": "app",
        "ExposedPorts": {"80/tcp": {}},
        "Env": ["PATH=/usr/bin:/bin", "LANG=C.UTF-8"],
        "Entrypoint": ["/init"],
        "Cmd": ["serve"],
        "Volumes": {"/data": {}},
        "WorkingDir": "/srv",
        "Labels": {"a": "b"},
        "StopSignal": "SIGTERM",
        "Shell": ["/bin/bash", "-c"],
        "Healthcheck": {"Test": ["CMD", "true"], "Interval": 5000000000, "Retries": 2},
        "OnBuild": ["RUN x"],
        "ArgsEscaped": True,
        "Hostname": "kept-unknown-run-key",
    },
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]},
    "history": [
        {"created": "2024-01-01T00:00:00Z", "created_by": "ADD rootfs /", "comment": "c"},
        {"created_by": "ENV X=1", "empty_layer": True, "author": "me"},
    ],
    "os.features": ["x"],
    "moby.buildkit.buildinfo.v1": "opaque",
}


def test_round_trip_keeps_known_and_unknown_fields() -> None:
    cfg = ImageConfig.parse(json.dumps(BASE).encode())
    assert cfg.architecture == "amd64"
    assert cfg.config.user == "app"
    assert cfg.config.env == ("PATH=/usr/bin:/bin", "LANG=C.UTF-8")
    assert cfg.config.healthcheck == Healthcheck(
        test=("CMD", "true"), interval=5_000_000_000, retries=2
    )
    assert cfg.config.extra == {"Hostname": "kept-unknown-run-key"}
    assert cfg.history[1] == History(created_by="ENV X=1", empty_layer=True, author="me")
    out = json.loads(cfg.to_json())
    expected = {k: v for k, v in BASE.items() if k != "variant"}
    assert out == expected
    assert ImageConfig.parse(cfg.to_json()) == cfg


def test_serialisation_is_deterministic_and_compact() -> None:
    cfg = ImageConfig.parse(json.dumps(BASE).encode())
    assert cfg.to_json() == ImageConfig.parse(cfg.to_json()).to_json()
    assert b" " not in cfg.to_json().replace(b"kept-unknown-run-key", b"")[:20]


def test_docker_legacy_container_config_is_dropped() -> None:
    data = {"architecture": "amd64", "os": "linux", "container_config": {"Cmd": ["x"]}}
    out = json.loads(ImageConfig.parse(json.dumps(data).encode()).to_json())
    assert "container_config" not in out


def test_empty_config_defaults() -> None:
    cfg = ImageConfig.parse(b'{"architecture":"arm64"}')
    assert cfg.os == "linux"
    assert cfg.config == ContainerConfig()
    out = json.loads(cfg.to_json())
    assert out["rootfs"] == {"type": "layers", "diff_ids": []}
    assert out["config"] == {}


def test_empty_cmd_is_kept_distinct_from_unset() -> None:
    cfg = ImageConfig(config=ContainerConfig(cmd=()))
    assert json.loads(cfg.to_json())["config"]["Cmd"] == []
    assert ImageConfig.parse(cfg.to_json()).config.cmd == ()
    assert "Cmd" not in json.loads(ImageConfig().to_json())["config"]


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'"str"'])
def test_bad_config_is_image_error(raw: bytes) -> None:
    with pytest.raises(ImageError, match="image config"):
        ImageConfig.parse(raw)


def test_with_env_replaces_in_place_or_appends() -> None:
    cc = ContainerConfig(env=("A=1", "B=2", "C=3"))
    assert cc.with_env("B", "x").env == ("A=1", "B=x", "C=3")
    assert cc.with_env("D", "4").env == ("A=1", "B=2", "C=3", "D=4")
    assert cc.with_env("A", "").env == ("A=", "B=2", "C=3")
    assert cc.with_env("A", "x=y").env_get("A") == "x=y"
    assert cc.env == ("A=1", "B=2", "C=3")  # immutable


def test_with_env_key_prefix_is_not_a_match() -> None:
    cc = ContainerConfig(env=("AB=1",))
    assert cc.with_env("A", "2").env == ("AB=1", "A=2")


def test_env_get() -> None:
    cc = ContainerConfig(env=("A=1", "B=x=y"))
    assert cc.env_get("B") == "x=y"
    assert cc.env_get("Z") is None


def test_healthcheck_json_omits_zero_durations() -> None:
    assert Healthcheck(test=("NONE",)).to_json() == {"Test": ["NONE"]}
    hc = Healthcheck(test=("CMD-SHELL", "x"), timeout=1, start_interval=2)
    assert hc.to_json() == {"Test": ["CMD-SHELL", "x"], "Timeout": 1, "StartInterval": 2}
    assert Healthcheck.from_json(hc.to_json()) == hc
