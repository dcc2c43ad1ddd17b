"""The image configuration (the JSON blob a manifest's ``config`` points at).

Fields the builder changes are typed; everything else in a base image's config is kept
in ``extra`` and written back unchanged, so nothing a base image says is lost.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pykaniko.errors import ImageError
from pykaniko.image.manifest import dump_json

__all__ = ["ContainerConfig", "Healthcheck", "History", "ImageConfig"]


@dataclass(frozen=True, slots=True)
class Healthcheck:
    """Docker's ``Healthcheck``: durations in nanoseconds, 0 means inherit/default."""

    test: tuple[str, ...]
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Test": list(self.test)}
        for key, value in (
            ("Interval", self.interval),
            ("Timeout", self.timeout),
            ("StartPeriod", self.start_period),
            ("StartInterval", self.start_interval),
            ("Retries", self.retries),
        ):
            if value:
                out[key] = value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Healthcheck:
        return cls(
            test=tuple(data.get("Test") or ()),
            interval=int(data.get("Interval") or 0),
            timeout=int(data.get("Timeout") or 0),
            start_period=int(data.get("StartPeriod") or 0),
            start_interval=int(data.get("StartInterval") or 0),
            retries=int(data.get("Retries") or 0),
        )


_KNOWN_RUN_KEYS = (
    "User",
    "ExposedPorts",
    "Env",
    "Entrypoint",
    "Cmd",
    "Volumes",
    "WorkingDir",
    "Labels",
    "StopSignal",
    "Shell",
    "Healthcheck",
    "OnBuild",
    "ArgsEscaped",
)


@dataclass(frozen=True, slots=True)
class ContainerConfig:
    """The ``config`` member: what a container started from the image gets."""

    user: str = ""
    exposed_ports: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    volumes: tuple[str, ...] = ()
    working_dir: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    stop_signal: str = ""
    shell: tuple[str, ...] | None = None
    healthcheck: Healthcheck | None = None
    on_build: tuple[str, ...] = ()
    args_escaped: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    def env_get(self, name: str) -> str | None:
        for item in reversed(self.env):
            key, _, value = item.partition("=")
            if key == name:
                return value
        return None

    def with_env(self, name: str, value: str) -> ContainerConfig:
        """Replace-or-append, keeping the position of an existing entry (Docker order)."""
        entry = f"{name}={value}"
        items = list(self.env)
        for i, item in enumerate(items):
            if item.partition("=")[0] == name:
                items[i] = entry
                break
        else:
            items.append(entry)
        return replace(self, env=tuple(items))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        if self.user:
            out["User"] = self.user
        if self.exposed_ports:
            out["ExposedPorts"] = {p: {} for p in self.exposed_ports}
        if self.env:
            out["Env"] = list(self.env)
        if self.entrypoint is not None:
            out["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            out["Cmd"] = list(self.cmd)
        if self.volumes:
            out["Volumes"] = {v: {} for v in self.volumes}
        if self.working_dir:
            out["WorkingDir"] = self.working_dir
        if self.labels:
            out["Labels"] = dict(self.labels)
        if self.stop_signal:
            out["StopSignal"] = self.stop_signal
        if self.shell is not None:
            out["Shell"] = list(self.shell)
        if self.healthcheck is not None:
            out["Healthcheck"] = self.healthcheck.to_json()
        if self.on_build:
            out["OnBuild"] = list(self.on_build)
        if self.args_escaped:
            out["ArgsEscaped"] = True
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ContainerConfig:
        if not data:
            return cls()

        def strs(key: str) -> tuple[str, ...] | None:
            value = data.get(key)
            return None if value is None else tuple(str(v) for v in value)

        health = data.get("Healthcheck")
        return cls(
            user=str(data.get("User") or ""),
            exposed_ports=tuple(data.get("ExposedPorts") or ()),
            env=strs("Env") or (),
            entrypoint=strs("Entrypoint"),
            cmd=strs("Cmd"),
            volumes=tuple(data.get("Volumes") or ()),
            working_dir=str(data.get("WorkingDir") or ""),
            labels=dict(data.get("Labels") or {}),
            stop_signal=str(data.get("StopSignal") or ""),
            shell=strs("Shell"),
            healthcheck=Healthcheck.from_json(health) if isinstance(health, Mapping) else None,
            on_build=strs("OnBuild") or (),
            args_escaped=bool(data.get("ArgsEscaped")),
            extra={k: v for k, v in data.items() if k not in _KNOWN_RUN_KEYS},
        )


@dataclass(frozen=True, slots=True)
class History:
    created: str = ""
    created_by: str = ""
    author: str = ""
    comment: str = ""
    empty_layer: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.created:
            out["created"] = self.created
        if self.author:
            out["author"] = self.author
        if self.created_by:
            out["created_by"] = self.created_by
        if self.comment:
            out["comment"] = self.comment
        if self.empty_layer:
            out["empty_layer"] = True
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> History:
        return cls(
            created=str(data.get("created") or ""),
            created_by=str(data.get("created_by") or ""),
            author=str(data.get("author") or ""),
            comment=str(data.get("comment") or ""),
            empty_layer=bool(data.get("empty_layer")),
        )


_KNOWN_TOP_KEYS = (
    "architecture",
    "os",
    "variant",
    "created",
    "author",
    "config",
    "rootfs",
    "history",
)


@dataclass(frozen=True, slots=True)
class ImageConfig:
    architecture: str = ""
    os: str = "linux"
    variant: str = ""
    created: str = ""
    author: str = ""
    config: ContainerConfig = field(default_factory=ContainerConfig)
    diff_ids: tuple[str, ...] = ()
    history: tuple[History, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: bytes) -> ImageConfig:
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ImageError(f"image config is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ImageError("image config is not a JSON object")
        rootfs = data.get("rootfs") or {}
        return cls(
            architecture=str(data.get("architecture") or ""),
            os=str(data.get("os") or "linux"),
            variant=str(data.get("variant") or ""),
            created=str(data.get("created") or ""),
            author=str(data.get("author") or ""),
            config=ContainerConfig.from_json(data.get("config")),
            diff_ids=tuple(str(d) for d in rootfs.get("diff_ids") or ()),
            history=tuple(History.from_json(h) for h in data.get("history") or ()),
            extra={
                k: v
                for k, v in data.items()
                if k not in _KNOWN_TOP_KEYS and k not in ("container_config", "container")
            },
        )

    def to_json(self) -> bytes:
        out: dict[str, Any] = {"architecture": self.architecture}
        if self.author:
            out["author"] = self.author
        out["config"] = self.config.to_json()
        if self.created:
            out["created"] = self.created
        out["history"] = [h.to_json() for h in self.history]
        out["os"] = self.os
        out["rootfs"] = {"type": "layers", "diff_ids": list(self.diff_ids)}
        if self.variant:
            out["variant"] = self.variant
        out.update(self.extra)
        return dump_json(out)
