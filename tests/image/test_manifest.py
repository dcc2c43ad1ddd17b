"""Manifests and indexes keep their raw bytes; digests are taken over them."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from pykaniko.errors import ImageError
from pykaniko.image import mediatypes as mt
from pykaniko.image.manifest import Descriptor, Index, Manifest, dump_json
from pykaniko.image.platform import Platform

D1 = "sha256:" + "a" * 64
D2 = "sha256:" + "b" * 64
D3 = "sha256:" + "c" * 64


def sha(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def test_build_then_parse_round_trip() -> None:
    cfg = Descriptor(mt.OCI_CONFIG, D1, 123)
    layers = (Descriptor(mt.OCI_LAYER_GZIP, D2, 456), Descriptor(mt.OCI_LAYER_ZSTD, D3, 7))
    m = Manifest.build(
        media_type=mt.OCI_MANIFEST, config=cfg, layers=layers, annotations={"k": "v"}
    )
    body = json.loads(m.raw)
    assert body["schemaVersion"] == 2
    assert body["mediaType"] == mt.OCI_MANIFEST
    assert body["annotations"] == {"k": "v"}
    assert m.digest == sha(m.raw)
    parsed = Manifest.parse(m.raw)
    assert parsed == m
    assert parsed.descriptor() == Descriptor(mt.OCI_MANIFEST, m.digest, len(m.raw))
    assert not m.is_docker


def test_parse_keeps_exact_bytes() -> None:
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.DOCKER_MANIFEST,
            "config": {"mediaType": mt.DOCKER_CONFIG, "digest": D1, "size": 1},
            "layers": [{"mediaType": mt.DOCKER_LAYER_GZIP, "digest": D2, "size": 2}],
        },
        indent=3,
    ).encode()
    m = Manifest.parse(raw)
    assert m.raw == raw
    assert m.digest == sha(raw)
    assert m.is_docker
    assert m.layers[0].digest == D2


def test_media_type_from_header_when_body_has_none() -> None:
    raw = dump_json(
        {"schemaVersion": 2, "config": {"mediaType": mt.DOCKER_CONFIG, "digest": D1, "size": 1}}
    )
    assert Manifest.parse(raw, mt.DOCKER_MANIFEST).media_type == mt.DOCKER_MANIFEST
    assert Manifest.parse(raw).media_type == mt.OCI_MANIFEST


@pytest.mark.parametrize(
    "body",
    [
        {"schemaVersion": 1, "name": "x", "fsLayers": []},
        {"schemaVersion": 1, "mediaType": mt.DOCKER_MANIFEST_V1_SIGNED},
    ],
)
def test_schema1_is_refused_clearly(body: dict[str, Any]) -> None:
    with pytest.raises(ImageError, match="schema 1") as info:
        Manifest.parse(dump_json(body))
    assert "re-push" in (info.value.hint or "")


def test_schema1_by_header() -> None:
    with pytest.raises(ImageError, match="schema 1"):
        Manifest.parse(b'{"name": "x"}', mt.DOCKER_MANIFEST_V1)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b'{"mediaType": "' + mt.OCI_INDEX.encode() + b'"}', "not an image manifest"),
        (b'{"schemaVersion": 2}', "malformed manifest"),
        (
            b'{"schemaVersion": 2, "config": {"digest": "sha256:short", "size": 1}}',
            "malformed",
        ),
    ],
)
def test_malformed_manifests(raw: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        Manifest.parse(raw)


def plat(os: str, arch: str, variant: str = "", n: int = 0) -> Descriptor:
    return Descriptor(
        mt.OCI_MANIFEST,
        "sha256:" + f"{n:064x}",
        100 + n,
        platform=Platform(os, arch, variant),
    )


def attestation(n: int) -> Descriptor:
    return Descriptor(
        mt.OCI_MANIFEST,
        "sha256:" + f"{n:064x}",
        1,
        platform=Platform("unknown", "unknown"),
        annotations={"vnd.docker.reference.type": "attestation-manifest"},
    )


def test_index_build_parse_round_trip() -> None:
    idx = Index.build((plat("linux", "amd64", n=1), plat("linux", "arm", "v7", n=2)))
    parsed = Index.parse(idx.raw)
    assert parsed == idx
    assert parsed.digest == sha(idx.raw)
    assert json.loads(idx.raw)["manifests"][1]["platform"] == {
        "architecture": "arm",
        "os": "linux",
        "variant": "v7",
    }


def test_select_exact_platform() -> None:
    idx = Index.build(
        (plat("linux", "arm64", n=1), plat("linux", "amd64", n=2), plat("windows", "amd64", n=3))
    )
    assert idx.select(Platform("linux", "amd64")) == idx.manifests[1]
    assert idx.select(Platform("linux", "s390x")) is None


def test_select_skips_attestations() -> None:
    att = Descriptor(
        mt.OCI_MANIFEST,
        "sha256:" + "9" * 64,
        1,
        platform=Platform("linux", "amd64"),
        annotations={"vnd.docker.reference.type": "attestation-manifest"},
    )
    idx = Index.build((att, attestation(5), plat("linux", "amd64", n=2)))
    assert idx.select(Platform("linux", "amd64")) == idx.manifests[2]


def test_select_entries_without_platform_are_skipped() -> None:
    idx = Index.build((Descriptor(mt.OCI_MANIFEST, D1, 1), plat("linux", "amd64", n=2)))
    assert idx.select(Platform("linux", "amd64")) == idx.manifests[1]


def test_select_variant_rules() -> None:
    v6, v7, v8 = (
        plat("linux", "arm", "v6", 1),
        plat("linux", "arm", "v7", 2),
        plat("linux", "arm64", "v8", 3),
    )
    idx = Index.build((v6, v7, v8))
    assert idx.select(Platform("linux", "arm", "v7")) == v7
    assert idx.select(Platform("linux", "arm", "v6")) == v6
    assert idx.select(Platform("linux", "arm")) == v7  # arm means arm/v7
    assert idx.select(Platform("linux", "arm", "v5")) is None
    assert idx.select(Platform("linux", "arm64")) == v8  # arm64/v8 is arm64
    only_v6 = Index.build((v6,))
    assert only_v6.select(Platform("linux", "arm")) == v6  # any variant if none fits


def test_select_prefers_plain_amd64_over_microarch_variant() -> None:
    v3, plain = plat("linux", "amd64", "v3", 1), plat("linux", "amd64", "", 2)
    assert Index.build((v3, plain)).select(Platform("linux", "amd64")) == plain
    assert Index.build((v3, plain)).select(Platform("linux", "amd64", "v3")) == v3
    assert Index.build((v3,)).select(Platform("linux", "amd64")) == v3


def test_descriptor_json_round_trip_and_bad_digest() -> None:
    d = Descriptor(mt.OCI_LAYER, D1, 3, annotations={"a": "b"}, urls=("https://x/y",))
    assert Descriptor.from_json(d.to_json()) == d
    with pytest.raises(ImageError, match="malformed digest"):
        Descriptor.from_json({"digest": "md5:abc", "size": 1})
    with pytest.raises(ImageError, match="malformed descriptor"):
        Descriptor.from_json({"digest": D1})
