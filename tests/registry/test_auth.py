"""Keychains: config.json variants, credential helpers (a fake ``docker-credential-x``
on a temporary PATH handed in through ``env``) and GitLab CI variables."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from pykaniko.errors import AuthError
from pykaniko.registry.auth import (
    Credential,
    DockerConfigKeychain,
    GitLabKeychain,
    StaticKeychain,
    default_keychain,
    docker_config_dir,
    registry_key,
)


def _config(tmp_path: Path, data: object) -> Path:
    d = tmp_path / "docker"
    d.mkdir(exist_ok=True)
    (d / "config.json").write_text(json.dumps(data))
    return d


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _helper(tmp_path: Path, name: str, body: str) -> dict[str, str]:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    script = bindir / f"docker-credential-{name}"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return {"PATH": f"{bindir}:/usr/bin:/bin"}


@pytest.mark.parametrize(
    ("key", "registry"),
    [
        ("https://index.docker.io/v1/", "docker.io"),
        ("index.docker.io", "docker.io"),
        ("docker.io", "docker.io"),
        ("http://localhost:5000/v2/", "localhost:5000"),
        ("reg.example.com", "reg.example.com"),
    ],
)
def test_registry_key(key: str, registry: str) -> None:
    assert registry_key(key) == registry


def test_auths_variants(tmp_path: Path) -> None:
    d = _config(
        tmp_path,
        {
            "auths": {
                "https://index.docker.io/v1/": {"auth": _b64("hub:pw:with:colons")},
                "reg.example.com": {"username": "u", "password": "p"},
                "id.example.com": {"identitytoken": "refresh"},
                "empty.example.com": {},
            }
        },
    )
    chain = DockerConfigKeychain(d)
    assert chain.resolve("docker.io") == Credential("hub", "pw:with:colons")
    assert chain.resolve("reg.example.com") == Credential("u", "p")
    assert chain.resolve("id.example.com") == Credential(identity_token="refresh")
    assert chain.resolve("empty.example.com") is None
    assert chain.resolve("other.example.com") is None


def test_missing_and_broken_config(tmp_path: Path) -> None:
    assert DockerConfigKeychain(tmp_path / "nowhere").resolve("docker.io") is None
    d = tmp_path / "broken"
    d.mkdir()
    (d / "config.json").write_text("{not json")
    with pytest.raises(AuthError):
        DockerConfigKeychain(d).resolve("docker.io")
    bad = _config(tmp_path, {"auths": {"r.io": {"auth": _b64("no-colon-secret")}}})
    with pytest.raises(AuthError) as info:
        DockerConfigKeychain(bad).resolve("r.io")
    assert "no-colon-secret" not in str(info.value)


def test_cred_helper(tmp_path: Path) -> None:
    env = _helper(
        tmp_path,
        "x",
        'read server\nif [ "$server" = "reg.example.com" ]; then\n'
        '  echo \'{"ServerURL":"reg.example.com","Username":"bob","Secret":"hunter2"}\'\n'
        'elif [ "$server" = "tok.example.com" ]; then\n'
        '  echo \'{"Username":"<token>","Secret":"idtok"}\'\n'
        "else\n  echo 'credentials not found in native keychain'; exit 1\nfi\n",
    )
    d = _config(
        tmp_path,
        {"credHelpers": {"reg.example.com": "x", "tok.example.com": "x", "none.example.com": "x"}},
    )
    chain = DockerConfigKeychain(d, env)
    assert chain.resolve("reg.example.com") == Credential("bob", "hunter2")
    assert chain.resolve("tok.example.com") == Credential(identity_token="idtok")
    assert chain.resolve("none.example.com") is None


def test_creds_store_gets_the_hub_server_url(tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    env = _helper(
        tmp_path,
        "store",
        f'read server\necho "$server" > {seen}\necho \'{{"Username":"h","Secret":"s"}}\'\n',
    )
    d = _config(tmp_path, {"auths": {}, "credsStore": "store"})
    assert DockerConfigKeychain(d, env).resolve("docker.io") == Credential("h", "s")
    assert seen.read_text().strip() == "https://index.docker.io/v1/"


def test_helper_failures(tmp_path: Path) -> None:
    d = _config(tmp_path, {"credHelpers": {"r.io": "absent", "f.io": "fail"}})
    env = _helper(tmp_path, "fail", "echo 'secret-output-xyz' >&2; exit 3\n")
    with pytest.raises(AuthError) as info:
        DockerConfigKeychain(d, env).resolve("r.io")
    assert "docker-credential-absent" in str(info.value)
    with pytest.raises(AuthError) as info:
        DockerConfigKeychain(d, env).resolve("f.io")
    assert "exit 3" in str(info.value)
    assert "secret-output-xyz" not in str(info.value)


def test_gitlab_and_default_chain(tmp_path: Path) -> None:
    env = {
        "CI_REGISTRY": "gitlab.example.com:5050",
        "CI_REGISTRY_USER": "gitlab-ci-token",
        "CI_REGISTRY_PASSWORD": "job-token",
    }
    assert GitLabKeychain(env).resolve("gitlab.example.com:5050") == Credential(
        "gitlab-ci-token", "job-token"
    )
    assert GitLabKeychain(env).resolve("docker.io") is None
    d = _config(tmp_path, {"auths": {"docker.io": {"auth": _b64("a:b")}}})
    chain = default_keychain({**env, "DOCKER_CONFIG": str(d)})
    assert chain.resolve("docker.io") == Credential("a", "b")
    assert chain.resolve("gitlab.example.com:5050") == Credential("gitlab-ci-token", "job-token")
    assert chain.resolve("nobody.example.com") is None


def test_config_dir_choice(tmp_path: Path) -> None:
    assert docker_config_dir({"DOCKER_CONFIG": "/x"}) == Path("/x")
    if not Path("/kaniko/.docker").is_dir():
        assert docker_config_dir({"HOME": str(tmp_path)}) == tmp_path / ".docker"


def test_secrets_hidden_in_repr() -> None:
    cred = Credential("user", "pa55word", "idtok", "regtok")
    text = repr(cred) + repr(StaticKeychain({"r": cred}))
    for secret in ("pa55word", "idtok", "regtok"):
        assert secret not in text
    assert not cred.anonymous
    assert Credential().anonymous
