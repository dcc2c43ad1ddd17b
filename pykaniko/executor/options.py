"""Build options: one validated value per build, grouped as Kaniko's flags are."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from pykaniko.errors import ConfigError
from pykaniko.executor.isolation import IsolationMode
from pykaniko.image.layerfile import Compression
from pykaniko.image.platform import Platform, host_platform
from pykaniko.registry.options import RegistryOptions
from pykaniko.snapshot import SnapshotMode

__all__ = ["BuildOptions", "OutputOptions", "SecretCheck", "SecretSource", "absolute_paths"]

SecretCheck = Literal["error", "warn", "off"]


@dataclass(frozen=True, slots=True)
class SecretSource:
    """``--secret id=ID,src=PATH`` or ``id=ID,env=VAR``: read only when a RUN mounts it."""

    id: str
    path: str | None = None
    env: str | None = None


@dataclass(frozen=True, slots=True)
class OutputOptions:
    destinations: tuple[str, ...] = ()
    no_push: bool = False
    tar_path: Path | None = None
    oci_layout_path: Path | None = None
    digest_file: Path | None = None
    image_name_with_digest_file: Path | None = None
    image_name_tag_with_digest_file: Path | None = None
    compression: Compression = "gzip"
    compression_level: int | None = None
    reproducible: bool = False
    push_ignore_immutable_tag_errors: bool = False
    annotations: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.compression not in ("gzip", "zstd"):
            raise ConfigError(f"--compression={self.compression}: expected gzip or zstd")
        if not self.destinations and not self.no_push:
            raise ConfigError(
                "no --destination given",
                hint="pass --destination REGISTRY/REPO:TAG, or --no-push to build only",
            )
        if (
            self.image_name_with_digest_file or self.image_name_tag_with_digest_file
        ) and not self.destinations:
            raise ConfigError("the image-name digest files need at least one --destination")


@dataclass(frozen=True, slots=True)
class BuildOptions:
    context: Path
    dockerfile: Path
    outputs: OutputOptions = field(default_factory=lambda: OutputOptions(no_push=True))
    target: str | None = None
    build_args: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    skip_unused_stages: bool = False
    platform: Platform = field(default_factory=host_platform)
    snapshot_mode: SnapshotMode = SnapshotMode.FULL
    single_snapshot: bool = False
    use_new_run: bool = False
    work_dir: Path = Path("/kaniko")
    ignore_paths: tuple[str, ...] = ()
    ignore_var_run: bool = True
    force_build_metadata: bool = False
    cleanup: bool = True
    secrets: tuple[SecretSource, ...] = ()
    registry: RegistryOptions = field(default_factory=RegistryOptions)
    dry_run: bool = False
    cache: bool = False
    cache_repo: str = ""
    cache_ttl: str = "336h"
    cache_run_layers: bool = True
    cache_copy_layers: bool = False
    push_cache: bool = True
    secret_check: SecretCheck = "error"  # noqa: S105  a mode, not a password
    # how RUN is isolated (chroot or in-place; auto picks); force allows in-place
    # outside a detected container
    isolation: IsolationMode = "auto"
    force: bool = False

    def __post_init__(self) -> None:
        if self.secret_check not in ("error", "warn", "off"):
            raise ConfigError(f"--secret-check={self.secret_check}: expected error, warn or off")
        if self.isolation not in ("auto", "chroot", "in-place"):
            raise ConfigError(f"--isolation={self.isolation}: expected auto, chroot or in-place")
        if not self.context.is_dir():
            raise ConfigError(f"--context={self.context}: not a directory")
        if not self.dockerfile.is_file():
            raise ConfigError(f"--dockerfile={self.dockerfile}: no such file")


def _abs(path: Path | None) -> Path | None:
    return None if path is None else Path(os.path.abspath(path))


def absolute_paths(options: BuildOptions) -> BuildOptions:
    """``options`` with every local path made absolute (symlinks kept): an in-place
    build works from ``/``, as Kaniko does."""
    o = options.outputs
    outputs = replace(
        o,
        tar_path=_abs(o.tar_path),
        oci_layout_path=_abs(o.oci_layout_path),
        digest_file=_abs(o.digest_file),
        image_name_with_digest_file=_abs(o.image_name_with_digest_file),
        image_name_tag_with_digest_file=_abs(o.image_name_tag_with_digest_file),
    )
    r = options.registry
    registry = replace(
        r,
        registry_certificates={k: os.path.abspath(v) for k, v in r.registry_certificates.items()},
        registry_client_certs={
            k: (os.path.abspath(c), os.path.abspath(key))
            for k, (c, key) in r.registry_client_certs.items()
        },
    )
    secrets = tuple(
        replace(s, path=os.path.abspath(s.path)) if s.path else s for s in options.secrets
    )
    return replace(
        options,
        context=Path(os.path.abspath(options.context)),
        dockerfile=Path(os.path.abspath(options.dockerfile)),
        work_dir=Path(os.path.abspath(options.work_dir)),
        outputs=outputs,
        registry=registry,
        secrets=secrets,
    )
