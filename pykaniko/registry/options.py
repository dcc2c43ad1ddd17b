"""Registry options: Kaniko's registry and auth flags as one immutable value."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pykaniko.errors import ConfigError

__all__ = ["DEFAULT_IMAGE_DOWNLOAD_RETRY", "RegistryOptions"]

DEFAULT_IMAGE_DOWNLOAD_RETRY = 3


@dataclass(frozen=True, slots=True)
class RegistryOptions:
    """How to reach registries.

    Host names are compared after Docker Hub normalisation (``index.docker.io`` and
    ``docker.io`` are the same key). ``registry_maps`` values are ``host[/prefix]``.
    Retries: ``image_download_retry`` extra attempts at each registry for a manifest
    or blob whose body broke off (resumed with ``Range``) or arrived wrong, or while
    the registry stays busy; 3 by default (Kaniko: 0), so a one-off fault on a flaky
    proxy costs a retry, not the build, and a blob that stays wrong costs at most four
    downloads. ``push_retry`` extra attempts per blob and manifest pushed, with
    exponential backoff from ``retry_backoff`` seconds; ``transport_retries`` is the
    quick retry of a single request on temporary errors (503, 429, reset connection)
    and the number of times an upload the registry got wrong is sent again.
    ``base_cache_dir`` (``--cache-dir`` with ``--cache``) is read for base images
    no older than ``base_cache_ttl`` seconds.
    ``proxies`` holds ``http``/``https``/``no_proxy`` values (the caller reads them
    from its environment; this package never does). ``upload_chunk_size`` > 0 uploads
    large blobs in PATCH chunks of that size instead of one streamed PUT.
    """

    insecure: bool = False
    insecure_pull: bool = False
    insecure_registries: tuple[str, ...] = ()
    skip_tls_verify: bool = False
    skip_tls_verify_pull: bool = False
    skip_tls_verify_registries: tuple[str, ...] = ()
    registry_certificates: Mapping[str, str] = field(default_factory=dict)
    registry_client_certs: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    mirrors: tuple[str, ...] = ()
    registry_maps: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    skip_default_registry_fallback: bool = False
    image_download_retry: int = DEFAULT_IMAGE_DOWNLOAD_RETRY
    push_retry: int = 0
    skip_push_permission_check: bool = False
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    retry_backoff: float = 1.0
    transport_retries: int = 3
    transport_backoff: float = 0.1
    download_threads: int = 4
    upload_chunk_size: int = 0
    proxies: Mapping[str, str] = field(default_factory=dict)
    base_cache_dir: Path | None = None
    base_cache_ttl: float = 336 * 3600.0

    def __post_init__(self) -> None:
        for name in (
            "image_download_retry",
            "push_retry",
            "transport_retries",
            "upload_chunk_size",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name.replace('_', '-')} must not be negative")
        if self.base_cache_ttl < 0:
            raise ConfigError("cache-ttl must not be negative")
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ConfigError("registry timeouts must be positive")
        if self.download_threads < 1:
            raise ConfigError("download threads must be at least 1")
        for registry, path in self.registry_certificates.items():
            if not os.path.isfile(path):
                raise ConfigError(f"--registry-certificate={registry}={path}: no such file")
        for registry, pair in self.registry_client_certs.items():
            for path in pair[:2]:
                if not os.path.isfile(path):
                    raise ConfigError(f"--registry-client-cert={registry}: no such file {path}")
            if len(pair) != 2:
                raise ConfigError(
                    f"--registry-client-cert for {registry}: expected CERT,KEY",
                    hint="write registry=/path/cert.pem,/path/key.pem",
                )
