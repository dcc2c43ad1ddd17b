"""Transport pieces that need no network: error mapping, plain-HTTP and proxy rules."""

from __future__ import annotations

import json

import pytest
import requests

from pykaniko.errors import AuthError, NotFoundError, RegistryError
from pykaniko.registry.hosts import auto_insecure, bypass_proxy
from pykaniko.registry.httperrors import error_for


def _response(status: int, body: object = None, reason: str = "") -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp.reason = reason
    resp._content = json.dumps(body).encode() if body is not None else b""
    return resp


def test_error_mapping() -> None:
    denied = error_for(
        _response(
            401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}
        ),
        registry="r.io",
        repository="a/b",
        what="push blob",
    )
    assert isinstance(denied, AuthError)
    assert str(denied).startswith("push blob failed: r.io/a/b: HTTP 401 UNAUTHORIZED")
    assert (denied.registry, denied.repository, denied.status) == ("r.io", "a/b", 401)
    forbidden = error_for(
        _response(403, {"errors": [{"code": "DENIED"}]}), registry="r", repository="x", what="w"
    )
    assert isinstance(forbidden, AuthError)
    assert "lack permission" in (forbidden.hint or "")
    missing = error_for(
        _response(404, {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}),
        registry="r",
        repository="x",
        what="pull",
    )
    assert isinstance(missing, NotFoundError)
    busy = error_for(
        _response(503, reason="Service Unavailable"), registry="r", repository="x", what="pull"
    )
    assert type(busy) is RegistryError
    assert busy.temporary
    assert "Service Unavailable" in str(busy)
    bad = error_for(_response(400, "not json"), registry="r", repository="", what="ping")
    assert not bad.temporary
    assert "r: HTTP 400" in str(bad)


@pytest.mark.parametrize(
    ("host", "plain"),
    [
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("10.1.2.3", True),
        ("192.168.0.9:443", True),
        ("[::1]:5000", True),
        ("registry.local", True),
        ("gcr.io", False),
        ("8.8.8.8:5000", False),
    ],
)
def testauto_insecure(host: str, plain: bool) -> None:
    assert auto_insecure(host) is plain


@pytest.mark.parametrize(
    ("host", "no_proxy", "bypass"),
    [
        ("a.example.com", "example.com", True),
        ("a.example.com", ".example.com", True),
        ("example.com:5000", "example.com", True),
        ("badexample.com", "example.com", False),
        ("10.0.0.5:5000", "10.0.0.0/8", True),
        ("11.0.0.5", "10.0.0.0/8", False),
        ("anything", "*", True),
        ("reg:5000", "reg:5000, other", True),
        ("reg", "", False),
    ],
)
def test_no_proxy(host: str, no_proxy: str, bypass: bool) -> None:
    assert bypass_proxy(host, no_proxy) is bypass
