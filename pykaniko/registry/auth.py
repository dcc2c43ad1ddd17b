"""Credentials: Docker's ``config.json`` (``auths``, ``credHelpers``, ``credsStore``) and
GitLab CI variables, looked up per registry host.

The environment is passed in, never read at import, so a library caller (or a test)
decides what the keychain sees. Secrets never appear in ``repr`` or in errors.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pykaniko.errors import AuthError
from pykaniko.image.reference import DOCKER_HUB, normalize_registry

__all__ = [
    "Credential",
    "DockerConfigKeychain",
    "GitLabKeychain",
    "Keychain",
    "MultiKeychain",
    "RecordingKeychain",
    "StaticKeychain",
    "default_keychain",
    "registry_key",
]

HUB_CONFIG_KEY = "https://index.docker.io/v1/"


@dataclass(frozen=True, slots=True)
class Credential:
    """Username/password, or an identity (refresh) token, or a ready bearer token."""

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)
    registry_token: str = field(default="", repr=False)

    @property
    def anonymous(self) -> bool:
        return not (self.username or self.password or self.identity_token or self.registry_token)


class Keychain(Protocol):
    """Finds the credential for a registry host (``docker.io`` for Docker Hub)."""

    def resolve(self, registry: str) -> Credential | None: ...


def registry_key(text: str) -> str:
    """Normalise a config.json key (``https://host/v1/``, ``host``) to a registry host."""
    host = text.strip()
    for scheme in ("https://", "http://"):
        if host.startswith(scheme):
            host = host[len(scheme) :]
    host = host.split("/", 1)[0]
    return normalize_registry(host)


@dataclass(frozen=True, slots=True)
class StaticKeychain:
    """Fixed credentials per registry host (for the API and for tests)."""

    credentials: Mapping[str, Credential] = field(default_factory=dict)

    def resolve(self, registry: str) -> Credential | None:
        for key, cred in self.credentials.items():
            if registry_key(key) == registry:
                return cred
        return None


@dataclass(frozen=True, slots=True)
class MultiKeychain:
    """The first keychain that knows a registry wins."""

    keychains: tuple[Keychain, ...]

    def resolve(self, registry: str) -> Credential | None:
        for keychain in self.keychains:
            cred = keychain.resolve(registry)
            if cred is not None and not cred.anonymous:
                return cred
        return None


@dataclass(frozen=True, slots=True)
class GitLabKeychain:
    """GitLab CI's ``CI_REGISTRY`` / ``CI_REGISTRY_USER`` / ``CI_REGISTRY_PASSWORD``."""

    env: Mapping[str, str]

    def resolve(self, registry: str) -> Credential | None:
        host = self.env.get("CI_REGISTRY", "")
        user = self.env.get("CI_REGISTRY_USER", "")
        password = self.env.get("CI_REGISTRY_PASSWORD", "")
        if host and user and password and registry_key(host) == registry:
            return Credential(username=user, password=password)
        return None


class RecordingKeychain:
    """Remembers every credential ``inner`` resolved, so the build can search its image
    for those passwords and tokens (the secret-leak check)."""

    def __init__(self, inner: Keychain) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self._resolved: dict[str, Credential] = {}

    def resolve(self, registry: str) -> Credential | None:
        cred = self._inner.resolve(registry)
        if cred is not None and not cred.anonymous:
            with self._lock:
                self._resolved[registry] = cred
        return cred

    def resolved(self) -> list[tuple[str, Credential]]:
        """(registry, credential) for every registry a credential was found for."""
        with self._lock:
            return list(self._resolved.items())


def _helper_server_url(registry: str) -> str:
    return HUB_CONFIG_KEY if registry == DOCKER_HUB else registry


@dataclass(frozen=True, slots=True)
class DockerConfigKeychain:
    """Reads ``config.json`` from ``config_dir`` at each lookup (it may change mid-build,
    e.g. when a CI step logs in). ``env`` gives ``PATH`` for ``docker-credential-*``."""

    config_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    helper_timeout: float = 30.0

    def _load(self) -> dict[str, Any]:
        path = self.config_dir / "config.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise AuthError(f"cannot read docker config {path}: {exc}") from exc
        return data if isinstance(data, dict) else {}

    def resolve(self, registry: str) -> Credential | None:
        data = self._load()
        helpers = data.get("credHelpers") or {}
        if isinstance(helpers, dict):
            for key, helper in helpers.items():
                if registry_key(str(key)) == registry and helper:
                    return self._from_helper(str(helper), registry, str(key))
        store = data.get("credsStore")
        if isinstance(store, str) and store:  # docker/cli: the store wins over "auths"
            return self._from_helper(store, registry, _helper_server_url(registry))
        auths = data.get("auths") or {}
        if isinstance(auths, dict):
            for key, entry in auths.items():
                if registry_key(str(key)) == registry and isinstance(entry, dict):
                    cred = self._from_entry(entry, registry)
                    if cred is not None:
                        return cred
        return None

    @staticmethod
    def _from_entry(entry: Mapping[str, Any], registry: str) -> Credential | None:
        identity = str(entry.get("identitytoken") or "").strip()
        registry_token = str(entry.get("registrytoken") or "").strip()
        username = str(entry.get("username") or "")
        password = str(entry.get("password") or "")
        encoded = str(entry.get("auth") or "")
        if encoded:
            try:
                decoded = base64.b64decode(encoded, validate=False).decode()
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise AuthError(
                    f"docker config: the 'auth' entry for {registry} is not base64 user:password",
                    registry=registry,
                ) from exc
            user, sep, pw = decoded.partition(":")
            if not sep:
                raise AuthError(
                    f"docker config: the 'auth' entry for {registry} has no ':'", registry=registry
                )
            username, password = user, pw
        cred = Credential(username, password, identity, registry_token)
        return None if cred.anonymous else cred

    def _from_helper(self, helper: str, registry: str, server: str) -> Credential | None:
        exe = f"docker-credential-{helper}"
        path = shutil.which(exe, path=self.env.get("PATH", os.defpath))
        if path is None:
            raise AuthError(
                f"credential helper {exe} for {registry} is not on PATH",
                registry=registry,
                hint="install it or remove it from credHelpers/credsStore in config.json",
            )
        try:
            proc = subprocess.run(
                [path, "get"],
                input=server,
                capture_output=True,
                text=True,
                timeout=self.helper_timeout,
                env=dict(self.env),
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise AuthError(f"credential helper {exe} failed: {exc}", registry=registry) from exc
        if proc.returncode != 0:
            if "credentials not found" in (proc.stdout + proc.stderr).lower():
                return None
            raise AuthError(
                f"credential helper {exe} failed for {registry} (exit {proc.returncode})",
                registry=registry,
            )
        try:
            out = json.loads(proc.stdout)
        except ValueError as exc:
            raise AuthError(
                f"credential helper {exe} printed something that is not JSON", registry=registry
            ) from exc
        if not isinstance(out, dict):
            raise AuthError(
                f"credential helper {exe} printed JSON that is not an object", registry=registry
            )
        username = str(out.get("Username") or "")
        secret = str(out.get("Secret") or "").strip()
        if username == "<token>":
            return Credential(identity_token=secret)
        cred = Credential(username=username, password=secret)
        return None if cred.anonymous else cred


def docker_config_dir(env: Mapping[str, str]) -> Path:
    """``$DOCKER_CONFIG``, else ``/kaniko/.docker`` when it exists, else ``~/.docker``."""
    if env.get("DOCKER_CONFIG"):
        return Path(env["DOCKER_CONFIG"])
    kaniko = Path("/kaniko/.docker")
    if kaniko.is_dir():
        return kaniko
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".docker"


def default_keychain(env: Mapping[str, str], *, extra: Sequence[Keychain] = ()) -> Keychain:
    """Kaniko's order: docker config, then GitLab CI variables (then ``extra``)."""
    return MultiKeychain(
        (
            DockerConfigKeychain(docker_config_dir(env), dict(env)),
            GitLabKeychain(dict(env)),
            *extra,
        )
    )
