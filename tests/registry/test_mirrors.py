"""Pull candidates from mirrors and registry maps (pure)."""

from __future__ import annotations

import pytest

from pykaniko.errors import ConfigError
from pykaniko.image.reference import parse_reference
from pykaniko.registry.mirrors import parse_registry_maps, pull_candidates, split_mirror


def _names(
    text: str,
    *,
    mirrors: tuple[str, ...] = (),
    registry_maps: dict[str, tuple[str, ...]] | None = None,
    skip_default_registry_fallback: bool = False,
) -> list[str]:
    found = pull_candidates(
        parse_reference(text),
        mirrors=mirrors,
        registry_maps=registry_maps,
        skip_default_registry_fallback=skip_default_registry_fallback,
    )
    return [str(c.ref) for c in found]


def test_no_mirrors_is_the_original() -> None:
    assert _names("busybox") == ["docker.io/library/busybox:latest"]


def test_mirrors_only_for_docker_hub_in_order() -> None:
    mirrors = ("mirror.gcr.io", "https://m2.example:5000/hub")
    assert _names("busybox:1", mirrors=mirrors) == [
        "mirror.gcr.io/library/busybox:1",
        "m2.example:5000/hub/library/busybox:1",
        "docker.io/library/busybox:1",
    ]
    assert _names("quay.io/a/b:1", mirrors=mirrors) == ["quay.io/a/b:1"]


def test_registry_map_first_then_mirrors_then_original() -> None:
    maps = parse_registry_maps(["index.docker.io=local:5000/dh;quay.io=q.local"])
    assert maps == {"docker.io": ("local:5000/dh",), "quay.io": ("q.local",)}
    assert _names("busybox", mirrors=("m",), registry_maps=maps) == [
        "local:5000/dh/library/busybox:latest",
        "m/library/busybox:latest",
        "docker.io/library/busybox:latest",
    ]
    assert _names("quay.io/x/y:2", registry_maps=maps) == ["q.local/x/y:2", "quay.io/x/y:2"]


def test_skip_fallback() -> None:
    assert _names("busybox", mirrors=("m",), skip_default_registry_fallback=True) == [
        "m/library/busybox:latest"
    ]
    # nothing mapped: the original is all there is
    assert _names("quay.io/x", skip_default_registry_fallback=True) == ["quay.io/x:latest"]


def test_digest_kept_and_duplicates_dropped() -> None:
    d = "sha256:" + "b" * 64
    assert _names(f"busybox@{d}", mirrors=("m", "m", "docker.io")) == [
        f"m/library/busybox@{d}",
        f"docker.io/library/busybox@{d}",
    ]


def test_plain_http_mirror_is_marked() -> None:
    [mirror, original] = pull_candidates(parse_reference("busybox"), mirrors=("http://m:5000",))
    assert mirror.insecure
    assert not mirror.original
    assert original.original
    assert split_mirror("https://h/p/q/") == ("h", "p/q", False)


@pytest.mark.parametrize("entry", ["nohost", "=x", "a="])
def test_bad_map_entries(entry: str) -> None:
    with pytest.raises(ConfigError):
        parse_registry_maps([entry])


def test_mirror_without_host() -> None:
    with pytest.raises(ConfigError):
        split_mirror("https://")
