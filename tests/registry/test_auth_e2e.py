"""Basic and Bearer authentication against real registries: allowed, denied, wrong
password (never shown), and a push scope asked for separately from the pull scope."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from pykaniko.errors import AuthError
from pykaniko.image.blobstore import BlobStore
from pykaniko.image.platform import Platform
from pykaniko.image.reference import parse_reference
from pykaniko.registry import (
    Credential,
    RegistryClient,
    RegistryOptions,
    StaticKeychain,
    default_keychain,
)
from tests.conftest import AUTH_PASSWORD, AUTH_USER
from tests.registry.imagegen import make_image
from tests.support.registry import RegistryServer, TokenServer

pytestmark = pytest.mark.e2e
LINUX = Platform("linux", "amd64")


def _client(host: str, user: str | None, password: str = "") -> RegistryClient:
    creds = {host: Credential(username=user, password=password)} if user is not None else {}
    return RegistryClient(RegistryOptions(), StaticKeychain(creds))


def test_basic_auth_allowed(auth_registry: RegistryServer, tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    manifest, _ = make_image(store, [{"f": b"basic"}])
    ref = parse_reference(f"{auth_registry.host}/basic/app:1")
    client = _client(auth_registry.host, AUTH_USER, AUTH_PASSWORD)
    client.check_push_permission([ref])
    assert client.push(manifest, [ref], store) == manifest.digest
    pulled = client.pull(ref, LINUX, BlobStore(tmp_path / "pull"))
    assert pulled.digest == manifest.digest


def test_basic_auth_missing_credentials(auth_registry: RegistryServer, tmp_path: Path) -> None:
    ref = parse_reference(f"{auth_registry.host}/basic/app:1")
    with pytest.raises(AuthError) as info:
        _client(auth_registry.host, None).pull(ref, LINUX, BlobStore(tmp_path))
    assert info.value.status == 401
    assert auth_registry.host in str(info.value)
    assert "basic/app" in str(info.value)


def test_basic_auth_wrong_password_is_never_shown(
    auth_registry: RegistryServer, tmp_path: Path
) -> None:
    ref = parse_reference(f"{auth_registry.host}/basic/denied:1")
    wrong = "Wr0ng-Pa55word-xyz"
    client = _client(auth_registry.host, AUTH_USER, wrong)
    with pytest.raises(AuthError) as info:
        client.check_push_permission([ref])
    text = f"{info.value} {info.value.hint} {info.value!r}"
    assert wrong not in text
    assert info.value.status == 401
    assert info.value.registry == auth_registry.host
    assert info.value.repository == "basic/denied"


def test_bearer_push_scope_requested_separately(
    token_registry: RegistryServer, token_server: TokenServer, tmp_path: Path
) -> None:
    store = BlobStore(tmp_path)
    manifest, _ = make_image(store, [{"f": b"bearer"}])
    ref = parse_reference(f"{token_registry.host}/tok/app:1")
    client = _client(token_registry.host, "alice", "s3cret-Pa55")
    before = len(token_server.requested_scopes())
    client.push(manifest, [ref], store)
    pulled = client.pull(ref, LINUX, BlobStore(tmp_path / "pull"))
    assert pulled.digest == manifest.digest
    scopes = token_server.requested_scopes()[before:]
    assert "repository:tok/app:pull,push" in scopes
    assert "repository:tok/app:pull" in scopes
    # one token per scope set: a handful of token requests, not one per HTTP request
    assert len(scopes) <= 3


def test_bearer_read_only_user_cannot_push(token_registry: RegistryServer, tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    manifest, _ = make_image(store, [{"f": b"ro"}])
    ref = parse_reference(f"{token_registry.host}/tok/readonly:1")
    client = _client(token_registry.host, "reader", "read-only-pw")
    with pytest.raises(AuthError) as info:
        client.push(manifest, [ref], store)
    assert info.value.registry == token_registry.host
    assert info.value.repository == "tok/readonly"
    assert info.value.status in (401, 403)
    assert "read-only-pw" not in str(info.value)


def test_bearer_wrong_password(token_registry: RegistryServer, tmp_path: Path) -> None:
    ref = parse_reference(f"{token_registry.host}/tok/app:1")
    with pytest.raises(AuthError) as info:
        _client(token_registry.host, "alice", "nope-nope").pull(ref, LINUX, BlobStore(tmp_path))
    assert "nope-nope" not in str(info.value)
    assert token_registry.host in str(info.value)


def test_cross_repo_mount_with_tokens(
    token_registry: RegistryServer, token_server: TokenServer, tmp_path: Path
) -> None:
    store = BlobStore(tmp_path / "a")
    manifest, _ = make_image(store, [{"base": b"base layer"}])
    base = parse_reference(f"{token_registry.host}/mount/base:1")
    client = _client(token_registry.host, "alice", "s3cret-Pa55")
    client.push(manifest, [base], store)
    # a fresh store holding nothing: the blobs can only come by mounting
    empty = BlobStore(tmp_path / "b")
    pulled = client.pull(base, LINUX, empty)
    empty.path(manifest.layers[0].digest).unlink(missing_ok=True)
    dest = parse_reference(f"{token_registry.host}/mount/derived:1")
    before = len(token_server.requested_scopes())
    client.push(pulled.manifest, [dest], empty, sources=[pulled])
    scopes = token_server.requested_scopes()[before:]
    assert "repository:mount/base:pull" in scopes
    assert not empty.has(manifest.layers[0].digest)  # mounted, never downloaded
    again = client.pull(dest, LINUX, BlobStore(tmp_path / "c"))
    assert again.digest == manifest.digest


def test_identity_token_from_docker_config(
    token_registry: RegistryServer, token_server: TokenServer, tmp_path: Path
) -> None:
    """An ``identitytoken`` login is exchanged for access tokens by refresh-token grant."""
    config = tmp_path / "docker"
    config.mkdir()
    (config / "config.json").write_text(
        json.dumps({"auths": {token_registry.host: {"identitytoken": "refresh-alice"}}})
    )
    client = RegistryClient(RegistryOptions(), default_keychain({"DOCKER_CONFIG": str(config)}))
    store = BlobStore(tmp_path / "s")
    manifest, _ = make_image(store, [{"id": b"token"}])
    ref = parse_reference(f"{token_registry.host}/idtok/app:1")
    assert client.push(manifest, [ref], store) == manifest.digest
    assert any(user == "alice" for user, _scopes in token_server.issued)


def test_docker_config_basic_login(auth_registry: RegistryServer, tmp_path: Path) -> None:
    config = tmp_path / "docker"
    config.mkdir()
    auth = base64.b64encode(f"{AUTH_USER}:{AUTH_PASSWORD}".encode()).decode()
    (config / "config.json").write_text(
        json.dumps({"auths": {f"http://{auth_registry.host}/v2/": {"auth": auth}}})
    )
    env = {"DOCKER_CONFIG": str(config), "HOME": str(tmp_path)}
    with RegistryClient(RegistryOptions(), default_keychain(env)) as client:
        store = BlobStore(tmp_path / "s")
        manifest, _ = make_image(store, [{"cfg": b"basic"}])
        ref = parse_reference(f"{auth_registry.host}/cfg/app:1")
        client.check_push_permission([ref])
        assert client.push(manifest, [ref], store) == manifest.digest
