"""Kaniko's executor flags, parsed and mapped onto :class:`BuildOptions`.

A job written for ``/kaniko/executor`` works by changing that one path: the same flag
names (with their deprecated spellings), ``--flag=true|false`` for booleans, repeatable
flags, and the ``KANIKO_*`` environment variables. The build machinery is imported only
when options are made, so ``--help`` and bad flags answer at interpreter speed.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pykaniko import __version__
from pykaniko.errors import ConfigError

if TYPE_CHECKING:
    from pykaniko.executor import BuildOptions, SecretSource

__all__ = [
    "LEVELS",
    "SNAPSHOT_MODES",
    "Parser",
    "build_args",
    "build_parser",
    "client_certs",
    "flag",
    "options_from_args",
    "pairs",
    "parse_args",
    "proxies",
]

SNAPSHOT_MODES = ("full", "redo", "time", "stat")
"""The values of :class:`pykaniko.snapshot.SnapshotMode` (a test keeps them equal)."""

LEVELS = ("panic", "fatal", "error", "warn", "warning", "info", "debug", "trace")

_TRUE = {"true", "1", "yes", "t", "y", "on"}
_FALSE = {"false", "0", "no", "f", "n", "off"}


def _bool(text: str) -> bool:
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


class Parser(argparse.ArgumentParser):
    """argparse that raises a one-line :class:`ConfigError` instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(message, hint="see pykaniko --help")


def flag(p: argparse.ArgumentParser, *names: str, default: bool = False, help: str) -> None:
    """A boolean flag accepting ``--x``, ``--x=true`` and ``--x=false`` (pflag style)."""
    p.add_argument(
        *names, nargs="?", const=True, default=default, type=_bool, metavar="BOOL", help=help
    )


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="pykaniko",
        description="Build a container image from a Dockerfile without a Docker daemon "
        "(Kaniko-compatible flags).",
        allow_abbrev=False,
    )
    a = p.add_argument
    a("-f", "--dockerfile", default="Dockerfile", help="path to the Dockerfile")
    a("-c", "--context", default="/workspace/", help="build context directory (dir:// ok)")
    a("--context-sub-path", default="", help="sub-directory of the context to use")
    a("-b", "--bucket", default="", help=argparse.SUPPRESS)
    a("--git", action="append", default=[], metavar="KEY=VALUE", help="git context options")
    a("--build-arg", action="append", default=[], metavar="KEY[=VALUE]", help="build argument")
    a("--target", default=None, help="the stage to build (default: the last one)")
    flag(p, "--skip-unused-stages", help="build only stages the target needs")
    a("--custom-platform", "--customPlatform", default="", help="os/arch[/variant] of the image")
    a("--label", action="append", default=[], metavar="KEY=VALUE", help="add a label")
    a("--annotation", action="append", default=[], metavar="KEY=VALUE", help="manifest annotation")
    a("--kaniko-dir", default=None, help="work directory (default /kaniko or a cache dir)")
    flag(p, "--force", help="allow --isolation=in-place where no container is detected")
    a(
        "--isolation", default="auto", choices=["auto", "chroot", "in-place"],
        help="how RUN is isolated (buildah's flag name): chroot (a rootfs directory per "
        "stage, namespaces), in-place (Kaniko's mode: the container's own /, for "
        "unprivileged containers) or auto (chroot where namespaces work, else in-place "
        "inside a container)",
    )  # fmt: skip
    a("-d", "--destination", action="append", default=[], help="image reference to push")
    flag(p, "--no-push", help="build without pushing")
    flag(p, "--no-push-cache", help="do not push cache layers")
    a("--tar-path", "--tarPath", default=None, help="write a docker-archive tarball here")
    a("--oci-layout-path", default=None, help="write an OCI image layout here")
    a("--digest-file", default=None, help="write the image digest here")
    a("--image-name-with-digest-file", default=None, help="write repo@digest lines here")
    a("--image-name-tag-with-digest-file", default=None, help="write repo:tag@digest lines")
    a("--push-retry", type=int, default=0, help="extra push attempts per destination")
    flag(p, "--push-ignore-immutable-tag-errors", help="treat immutable-tag errors as success")
    flag(p, "--skip-push-permission-check", help="skip the up-front push permission probe")
    flag(p, "--reproducible", help="clamp timestamps (SOURCE_DATE_EPOCH or 0)")
    a("--compression", default="gzip", choices=["gzip", "zstd"], help="layer compression")
    a("--compression-level", type=int, default=-1, help="compression level (-1: default)")
    flag(p, "--cleanup", help="accepted: pykaniko always removes its build directory")
    flag(p, "--force-build-metadata", help="add a layer even for metadata-only steps")
    flag(p, "--cache", help="use the layer cache")
    a("--cache-repo", default="", help="repository for cache layers")
    a("--cache-dir", default="/cache", help="base-image cache (see pykaniko warmer)")
    a("--cache-ttl", default="336h", help="cache entry lifetime")
    flag(p, "--cache-run-layers", default=True, help="cache RUN layers")
    flag(p, "--cache-copy-layers", help="cache COPY layers")
    flag(p, "--compressed-caching", default=True, help="accepted for compatibility")
    a(
        "--snapshot-mode", "--snapshotMode", default="full",
        choices=SNAPSHOT_MODES, help="how changes are detected",
    )  # fmt: skip
    flag(p, "--single-snapshot", help="one layer per stage")
    flag(p, "--use-new-run", help="stat-walk RUN change detection")
    a("--ignore-path", action="append", default=[], help="path left out of snapshots")
    flag(p, "--ignore-var-run", "--whitelist-var-run", default=True, help="ignore /var/run")
    a("--image-fs-extract-retry", type=int, default=0, help="accepted for compatibility")
    flag(p, "--insecure", help="plain HTTP for push destinations")
    flag(p, "--insecure-pull", help="plain HTTP for pulls")
    a("--insecure-registry", action="append", default=[], help="plain HTTP for a registry")
    flag(p, "--skip-tls-verify", help="do not verify TLS for pushes (and pulls, as Kaniko)")
    flag(p, "--skip-tls-verify-pull", help="do not verify TLS for pulls")
    a("--skip-tls-verify-registry", action="append", default=[], help="per-registry no-verify")
    a("--registry-certificate", action="append", default=[], metavar="REG=CA.pem")
    a("--registry-client-cert", action="append", default=[], metavar="REG=CERT,KEY")
    a("--registry-mirror", action="append", default=[], help="Docker Hub mirror")
    a("--registry-map", action="append", default=[], metavar="ORIG=NEW[/PREFIX]")
    flag(p, "--skip-default-registry-fallback", help="never fall back to the original")
    a(
        "--image-download-retry", type=int, default=None,
        help="extra attempts for a pulled blob or manifest that breaks off or arrives wrong "
        "(default 3)",
    )  # fmt: skip
    a(
        "-v",
        "--verbosity",
        default="info",
        choices=LEVELS,
        metavar="LEVEL",
        help="panic|fatal|error|warn|info|debug|trace",
    )
    a("--log-format", default="color", choices=["color", "text", "json"], help="color|text|json")
    flag(p, "--log-timestamp", help="full timestamps instead of seconds since the start")
    a("--summary-file", default=None, metavar="FILE", help="write the build summary here (JSON)")
    a("--azure-container-registry-config", default="", help=argparse.SUPPRESS)
    a("--secret", action="append", default=[], metavar="id=ID,src=PATH|env=VAR")
    a(
        "--secret-check",
        default="error",
        choices=["error", "warn", "off"],
        help="search every new layer, the config and the cache images for the values of "
        "--secret, served secrets and the registry credentials used (raw and base64; "
        "values shorter than 8 bytes are not searched): error (default) fails the build "
        "before any push, warn pushes with a warning",
    )
    flag(p, "--dry-run", help="print the build plan and exit")
    a("--version", action="version", version=f"pykaniko {__version__}")
    return p


def pairs(values: Sequence[str], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag}={value}: expected KEY=VALUE")
        out[key] = val
    return out


def build_args(values: Sequence[str], env: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not key:
            raise ConfigError(f"--build-arg={value}: expected KEY=VALUE or KEY")
        if sep:
            out[key] = val
        elif key in env:
            out[key] = env[key]
    return out


def proxies(env: Mapping[str, str]) -> dict[str, str]:
    """The usual proxy variables (either case), as Go programs such as Kaniko honour them."""
    out: dict[str, str] = {}
    for key in ("http", "https", "no"):
        value = env.get(f"{key.upper()}_PROXY") or env.get(f"{key}_proxy")
        if value:
            out["no_proxy" if key == "no" else key] = value
    return out


def client_certs(values: Sequence[str]) -> dict[str, tuple[str, str]]:
    """``--registry-client-cert REG=CERT,KEY`` values by registry."""
    out: dict[str, tuple[str, str]] = {}
    for reg, pair in pairs(values, "--registry-client-cert").items():
        cert, _, key = pair.partition(",")
        if not key:
            raise ConfigError(f"--registry-client-cert={reg}={pair}: expected REG=CERT,KEY")
        out[reg] = (cert, key)
    return out


def _secrets(values: Sequence[str]) -> tuple[SecretSource, ...]:
    from pykaniko.executor import SecretSource

    out: list[SecretSource] = []
    for value in values:
        fields = dict(part.partition("=")[::2] for part in value.split(",") if part)
        sid = fields.get("id", "")
        src = fields.get("src") or fields.get("source")
        envvar = fields.get("env")
        if not sid or (src is None and envvar is None):
            raise ConfigError(f"--secret={value}: expected id=ID,src=PATH or id=ID,env=VAR")
        out.append(SecretSource(id=sid, path=src, env=envvar))
    return tuple(out)


def _work_dir(flag: str | None, env: Mapping[str, str]) -> Path:
    if flag:
        return Path(flag)
    if env.get("KANIKO_DIR"):
        return Path(env["KANIKO_DIR"])
    kaniko = Path("/kaniko")
    if os.access(kaniko if kaniko.exists() else kaniko.parent, os.W_OK):
        return kaniko  # created by the build itself, not by parsing flags
    cache = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "pykaniko"


def _context(text: str, sub_path: str) -> Path:
    if text.startswith("dir://"):
        text = text[len("dir://") :]
    elif "://" in text:
        raise ConfigError(
            f"--context={text}: only local directories are supported so far",
            hint="check the context out into a directory first",
        )
    path = Path(text)
    return path / sub_path if sub_path else path


def _dockerfile(text: str, context: Path) -> Path:
    if text.startswith(("http://", "https://")):
        raise ConfigError("--dockerfile from a URL is not supported yet")
    path = Path(text)
    if path.is_absolute() or path.exists():
        return path
    return context / path


def options_from_args(ns: argparse.Namespace, env: Mapping[str, str]) -> BuildOptions:
    from pykaniko.executor import BuildOptions, OutputOptions
    from pykaniko.executor.cache import parse_ttl
    from pykaniko.image.platform import Platform, host_platform
    from pykaniko.registry import RegistryOptions
    from pykaniko.registry.mirrors import parse_registry_maps
    from pykaniko.registry.options import DEFAULT_IMAGE_DOWNLOAD_RETRY
    from pykaniko.snapshot import SnapshotMode

    context = _context(ns.context, ns.context_sub_path)
    no_push = bool(ns.no_push or ns.dry_run) or env.get("KANIKO_NO_PUSH", "").lower() in _TRUE
    for name in ("digest_file", "image_name_with_digest_file", "image_name_tag_with_digest_file"):
        value = getattr(ns, name) or ""
        if value.startswith(("http://", "https://")):
            raise ConfigError(
                f"--{name.replace('_', '-')}={value}: uploading to a URL is not supported",
                hint="write a local file and upload it in the next job step",
            )
    if ns.bucket:
        raise ConfigError(
            f"--bucket={ns.bucket}: bucket build contexts are not supported",
            hint="download and unpack the context into a directory first",
        )
    pairs(ns.git, "--git")
    # as Kaniko: the environment variables add to the flags
    mirrors = list(ns.registry_mirror)
    if env.get("KANIKO_REGISTRY_MIRROR"):
        mirrors += [m for m in env["KANIKO_REGISTRY_MIRROR"].split(";") if m]
    maps = list(ns.registry_map)
    if env.get("KANIKO_REGISTRY_MAP"):
        maps.append(env["KANIKO_REGISTRY_MAP"])
    registry = RegistryOptions(
        insecure=ns.insecure,
        insecure_pull=ns.insecure_pull,
        insecure_registries=tuple(ns.insecure_registry),
        skip_tls_verify=ns.skip_tls_verify,
        skip_tls_verify_pull=ns.skip_tls_verify_pull,
        skip_tls_verify_registries=tuple(ns.skip_tls_verify_registry),
        registry_certificates=pairs(ns.registry_certificate, "--registry-certificate"),
        registry_client_certs=client_certs(ns.registry_client_cert),
        mirrors=tuple(mirrors),
        registry_maps=parse_registry_maps(maps),
        skip_default_registry_fallback=ns.skip_default_registry_fallback,
        image_download_retry=(
            DEFAULT_IMAGE_DOWNLOAD_RETRY
            if ns.image_download_retry is None
            else ns.image_download_retry
        ),
        push_retry=ns.push_retry,
        skip_push_permission_check=ns.skip_push_permission_check,
        proxies=proxies(env),
        # Kaniko's base-image cache, filled by `pykaniko warmer`: read only with --cache
        base_cache_dir=Path(ns.cache_dir) if ns.cache and ns.cache_dir else None,
        base_cache_ttl=parse_ttl(ns.cache_ttl) if ns.cache else 0.0,
    )
    outputs = OutputOptions(
        destinations=tuple(ns.destination),
        no_push=no_push,
        tar_path=Path(ns.tar_path) if ns.tar_path else None,
        oci_layout_path=Path(ns.oci_layout_path) if ns.oci_layout_path else None,
        digest_file=Path(ns.digest_file) if ns.digest_file else None,
        image_name_with_digest_file=(
            Path(ns.image_name_with_digest_file) if ns.image_name_with_digest_file else None
        ),
        image_name_tag_with_digest_file=(
            Path(ns.image_name_tag_with_digest_file) if ns.image_name_tag_with_digest_file else None
        ),
        compression=ns.compression,
        # as Kaniko: only a level > 0 is applied (0 is not "store uncompressed")
        compression_level=ns.compression_level if ns.compression_level > 0 else None,
        reproducible=ns.reproducible,
        push_ignore_immutable_tag_errors=ns.push_ignore_immutable_tag_errors,
        annotations=pairs(ns.annotation, "--annotation"),
    )
    return BuildOptions(
        context=context,
        dockerfile=_dockerfile(ns.dockerfile, context),
        outputs=outputs,
        target=ns.target,
        build_args=build_args(ns.build_arg, env),
        labels=pairs(ns.label, "--label"),
        skip_unused_stages=ns.skip_unused_stages,
        platform=Platform.parse(ns.custom_platform) if ns.custom_platform else host_platform(),
        snapshot_mode=SnapshotMode(ns.snapshot_mode),
        single_snapshot=ns.single_snapshot,
        use_new_run=ns.use_new_run,
        work_dir=_work_dir(ns.kaniko_dir, env),
        ignore_paths=tuple(ns.ignore_path),
        ignore_var_run=ns.ignore_var_run,
        force_build_metadata=ns.force_build_metadata,
        secrets=_secrets(ns.secret),
        registry=registry,
        dry_run=ns.dry_run,
        cache=ns.cache,
        cache_repo=ns.cache_repo,
        cache_ttl=ns.cache_ttl,
        cache_run_layers=ns.cache_run_layers,
        cache_copy_layers=ns.cache_copy_layers,
        push_cache=not ns.no_push_cache,
        secret_check=ns.secret_check,
        isolation=ns.isolation,
        force=ns.force,
    )


def parse_args(
    argv: Sequence[str], env: Mapping[str, str]
) -> tuple[argparse.Namespace, BuildOptions]:
    args = list(argv)
    if args[:1] == ["version"]:
        args = ["--version"]
    ns = build_parser().parse_args(args)
    return ns, options_from_args(ns, env)
