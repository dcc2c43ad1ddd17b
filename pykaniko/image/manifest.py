"""Descriptors, manifests and indexes as values that keep the exact bytes they came
from, so digests are always taken over what travels on the wire."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pykaniko.errors import ImageError
from pykaniko.image import mediatypes as mt
from pykaniko.image.digest import check_digest, sha256_bytes
from pykaniko.image.platform import Platform

__all__ = ["Descriptor", "Index", "Manifest", "dump_json"]


def dump_json(value: Any) -> bytes:
    """Compact, deterministic JSON as registries and Docker write it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Platform | None = None
    urls: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Descriptor:
        try:
            plat = data.get("platform")
            return cls(
                media_type=str(data.get("mediaType", "")),
                digest=check_digest(str(data["digest"])),
                size=int(data["size"]),
                annotations=dict(data.get("annotations") or {}),
                platform=(
                    Platform(
                        str(plat.get("os", "")),
                        str(plat.get("architecture", "")),
                        str(plat.get("variant", "")),
                    )
                    if isinstance(plat, Mapping)
                    else None
                ),
                urls=tuple(data.get("urls") or ()),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ImageError(f"malformed descriptor: {exc}") from exc

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            plat: dict[str, str] = {
                "architecture": self.platform.architecture,
                "os": self.platform.os,
            }
            if self.platform.variant:
                plat["variant"] = self.platform.variant
            out["platform"] = plat
        return out


def _load(raw: bytes, what: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ImageError(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ImageError(f"{what} is not a JSON object")
    return data


@dataclass(frozen=True, slots=True)
class Manifest:
    """An image manifest (OCI or Docker schema 2) with its raw bytes."""

    raw: bytes
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return sha256_bytes(self.raw)

    @property
    def is_docker(self) -> bool:
        return self.media_type == mt.DOCKER_MANIFEST

    @classmethod
    def parse(cls, raw: bytes, media_type: str = "") -> Manifest:
        data = _load(raw, "manifest")
        kind = str(data.get("mediaType") or media_type or mt.OCI_MANIFEST)
        if (
            kind in (mt.DOCKER_MANIFEST_V1, mt.DOCKER_MANIFEST_V1_SIGNED)
            or data.get("schemaVersion") == 1
        ):
            raise ImageError(
                "schema 1 manifests are not supported",
                hint="re-push the image with a current Docker, skopeo or crane",
            )
        if not mt.is_manifest(kind):
            raise ImageError(f"not an image manifest: media type {kind!r}")
        try:
            return cls(
                raw=raw,
                media_type=kind,
                config=Descriptor.from_json(data["config"]),
                layers=tuple(Descriptor.from_json(d) for d in data.get("layers") or ()),
                annotations=dict(data.get("annotations") or {}),
            )
        except (KeyError, TypeError) as exc:
            raise ImageError(f"malformed manifest: missing {exc}") from exc

    @classmethod
    def build(
        cls,
        *,
        media_type: str,
        config: Descriptor,
        layers: tuple[Descriptor, ...],
        annotations: Mapping[str, str] | None = None,
    ) -> Manifest:
        body: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": config.to_json(),
            "layers": [d.to_json() for d in layers],
        }
        if annotations:
            body["annotations"] = dict(annotations)
        return cls(
            raw=dump_json(body),
            media_type=media_type,
            config=config,
            layers=layers,
            annotations=dict(annotations or {}),
        )

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.raw))


@dataclass(frozen=True, slots=True)
class Index:
    """An OCI index or Docker manifest list with its raw bytes."""

    raw: bytes
    media_type: str
    manifests: tuple[Descriptor, ...]

    @property
    def digest(self) -> str:
        return sha256_bytes(self.raw)

    @classmethod
    def parse(cls, raw: bytes, media_type: str = "") -> Index:
        data = _load(raw, "index")
        kind = str(data.get("mediaType") or media_type or mt.OCI_INDEX)
        return cls(
            raw=raw,
            media_type=kind,
            manifests=tuple(Descriptor.from_json(d) for d in data.get("manifests") or ()),
        )

    @classmethod
    def build(cls, manifests: tuple[Descriptor, ...], *, media_type: str = mt.OCI_INDEX) -> Index:
        body = {
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": [d.to_json() for d in manifests],
        }
        return cls(raw=dump_json(body), media_type=media_type, manifests=manifests)

    def select(self, platform: Platform) -> Descriptor | None:
        """The image manifest for ``platform`` (attestation entries skipped): an entry
        with the same variant first (``linux/amd64`` must not pick ``amd64/v3`` when a
        plain one is listed; ``arm`` means ``arm/v7`` as containerd says), else the
        first entry whose variant is compatible."""
        candidates = [
            d
            for d in self.manifests
            if d.platform is not None
            and not d.annotations.get("vnd.docker.reference.type")
            and platform.matches(d.platform.os, d.platform.architecture, d.platform.variant)
        ]
        want = _norm_variant(platform.architecture, platform.variant)
        for desc in candidates:
            assert desc.platform is not None
            if _norm_variant(platform.architecture, desc.platform.variant) == want:
                return desc
        return candidates[0] if candidates else None


def _norm_variant(arch: str, variant: str) -> str:
    if arch == "arm":
        return variant or "v7"
    if (arch, variant) in (("arm64", "v8"), ("amd64", "v1")):
        return ""
    return variant
