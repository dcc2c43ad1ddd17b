"""WWW-Authenticate parsing and the token cache (pure)."""

from __future__ import annotations

import pytest

from pykaniko.registry.challenge import (
    Challenge,
    TokenCache,
    parse_www_authenticate,
    repository_scope,
    scope_string,
)


def test_bearer() -> None:
    [c] = parse_www_authenticate(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/busybox:pull"'
    )
    assert c.scheme == "bearer"
    assert c.realm == "https://auth.docker.io/token"
    assert c.service == "registry.docker.io"
    assert c.scopes == ("repository:library/busybox:pull",)


def test_basic_and_case() -> None:
    assert parse_www_authenticate('basic REALM="Registry Realm"') == [
        Challenge("basic", {"realm": "Registry Realm"})
    ]


def test_several_challenges_and_escapes() -> None:
    found = parse_www_authenticate(
        'Basic realm="a, b", Bearer realm="https://x/t?y=1",service=svc,error="insufficient_scope",'
        'scope="repository:a:pull repository:b:pull,push" , Negotiate'
    )
    assert [c.scheme for c in found] == ["basic", "bearer", "negotiate"]
    assert found[0].realm == "a, b"
    assert found[1].service == "svc"
    assert found[1].scopes == ("repository:a:pull", "repository:b:pull,push")
    assert parse_www_authenticate('Bearer realm="q\\"uote"')[0].realm == 'q"uote'


@pytest.mark.parametrize("header", ["", "   ", ",,,"])
def test_empty(header: str) -> None:
    assert parse_www_authenticate(header) == []


def test_scopes_and_cache() -> None:
    push = repository_scope("a/b", ["pull", "push"])
    pull = repository_scope("a/b", ["pull"])
    assert push == "repository:a/b:pull,push"
    assert scope_string([push, pull, push]) == scope_string([pull, push])
    cache = TokenCache(margin=0)
    cache.put("r", scope_string([pull]), "t1", 60)
    assert cache.get("r", scope_string([pull])) == "t1"
    assert cache.get("r", scope_string([push])) is None  # a pull token is not a push token
    assert cache.get("other", scope_string([pull])) is None
    cache.drop("r", scope_string([pull]))
    assert cache.get("r", scope_string([pull])) is None
    cache.put("r", "s", "expired", -100)
    assert cache.get("r", "s") == "expired"  # clamped to at least one second
