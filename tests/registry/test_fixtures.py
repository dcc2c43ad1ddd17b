"""The registry fixtures themselves: they start, answer /v2/ and challenge as configured."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from tests.support.registry import RegistryServer

pytestmark = pytest.mark.e2e


def _status(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("WWW-Authenticate", "")


def test_plain_registry_answers(registry: RegistryServer) -> None:
    assert registry.host.startswith("127.0.0.1:")
    assert _status(f"{registry.url}/v2/") == (200, "")


def test_auth_registry_challenges_basic(auth_registry: RegistryServer) -> None:
    status, challenge = _status(f"{auth_registry.url}/v2/")
    assert status == 401
    assert challenge.startswith("Basic ")


def test_token_registry_challenges_bearer(token_registry: RegistryServer) -> None:
    status, challenge = _status(f"{token_registry.url}/v2/")
    assert status == 401
    assert challenge.startswith("Bearer realm=")
