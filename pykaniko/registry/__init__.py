"""The only package that speaks HTTP: registry auth, pull, push (at once or pipelined),
mirrors, the base-image cache and plain URL downloads, on ``requests``.

Importing it does not import ``requests``: the HTTP stack loads on first network use.
"""

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
from pykaniko.registry.basecache import BaseImageCache, CacheEntry
from pykaniko.registry.client import RegistryClient
from pykaniko.registry.events import (
    BAD_BLOB_CODES,
    Notify,
    Progress,
    ProgressSink,
    is_bad_blob,
)
from pykaniko.registry.http import DownloadResult
from pykaniko.registry.mirrors import parse_registry_maps, pull_candidates
from pykaniko.registry.options import RegistryOptions
from pykaniko.registry.pull import PulledImage
from pykaniko.registry.uploader import BlobUploader, PushCancelled

__all__ = [
    "BAD_BLOB_CODES",
    "BaseImageCache",
    "BlobUploader",
    "CacheEntry",
    "Credential",
    "DockerConfigKeychain",
    "DownloadResult",
    "GitLabKeychain",
    "Keychain",
    "MultiKeychain",
    "Notify",
    "Progress",
    "ProgressSink",
    "PulledImage",
    "PushCancelled",
    "RegistryClient",
    "RegistryOptions",
    "StaticKeychain",
    "default_keychain",
    "is_bad_blob",
    "parse_registry_maps",
    "pull_candidates",
]
