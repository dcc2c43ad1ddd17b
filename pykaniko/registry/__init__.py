"""The only package that speaks HTTP: registry auth, pull, push, mirrors and plain
URL downloads, on ``requests``."""

from __future__ import annotations

from pykaniko.registry.auth import (
    Credential,
    DockerConfigKeychain,
    GitLabKeychain,
    Keychain,
    MultiKeychain,
    StaticKeychain,
    default_keychain,
)
from pykaniko.registry.client import RegistryClient
from pykaniko.registry.http import DownloadResult
from pykaniko.registry.mirrors import parse_registry_maps, pull_candidates
from pykaniko.registry.options import RegistryOptions
from pykaniko.registry.pull import PulledImage

__all__ = [
    "Credential",
    "DockerConfigKeychain",
    "DownloadResult",
    "GitLabKeychain",
    "Keychain",
    "MultiKeychain",
    "PulledImage",
    "RegistryClient",
    "RegistryOptions",
    "StaticKeychain",
    "default_keychain",
    "parse_registry_maps",
    "pull_candidates",
]
