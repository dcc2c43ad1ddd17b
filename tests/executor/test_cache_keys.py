"""Cache keys are pure, unambiguous and pinned: a key that changes by accident silently
throws away every user's cache, so the golden values below must only move on purpose."""

from __future__ import annotations

import pytest

from pykaniko.errors import ConfigError
from pykaniko.executor.cache import cache_repository, parse_ttl, seed_key, step_key
from pykaniko.image.platform import Platform
from pykaniko.image.reference import parse_reference

AMD64 = Platform("linux", "amd64")


def test_golden_keys() -> None:
    seed = seed_key("sha256:" + "0" * 64, AMD64)
    assert seed == "33bfd9d08ec4f19b79afd66597b5a85776172f832eb25e91d6aad8f7ed3bcf99"
    key = step_key(seed, "RUN true", env=["B=2", "A=1"], inputs=[("layer", "sha256:x")])
    assert key == "201285e5433ebba427516b0c52dde3c77347830d5d61901a2f506d264826ed49"
    assert key == step_key(seed, "RUN true", env=["A=1", "B=2"], inputs=[("layer", "sha256:x")])


def test_keys_change_with_every_input() -> None:
    seed = seed_key("scratch", AMD64)
    base = step_key(seed, "RUN x", env=["A=1"])
    assert seed_key("scratch", Platform("linux", "arm64")) != seed
    assert step_key(seed, "RUN y", env=["A=1"]) != base
    assert step_key(seed, "RUN x", env=["A=2"]) != base
    assert step_key(seed, "RUN x", env=["A=1"], inputs=[("layer", "d")]) != base
    assert step_key(base, "RUN x", env=["A=1"]) != base
    # no ambiguity between text and env
    assert step_key(seed, "a", env=["b"]) != step_key(seed, "a,b")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("336h", 336 * 3600), ("90m", 5400), ("1h30m", 5400), ("45s", 45), ("1.5h", 5400)],
)
def test_parse_ttl(text: str, seconds: float) -> None:
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "1d", "h1", "1h x"])
def test_parse_ttl_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="--cache-ttl"):
        parse_ttl(text)


def test_cache_repository_defaults_to_destination_cache() -> None:
    dest = parse_reference("reg.example:5000/team/app:1")
    assert str(cache_repository("", [dest], no_push=False)).startswith(
        "reg.example:5000/team/app/cache"
    )
    with pytest.raises(ConfigError, match="--cache-repo"):
        cache_repository("", [dest], no_push=True)
    with pytest.raises(ConfigError, match="oci"):
        cache_repository("oci:/tmp/x", [dest], no_push=False)
