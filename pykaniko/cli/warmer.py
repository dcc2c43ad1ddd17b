"""``pykaniko warmer``: Kaniko's warmer flags, to fill ``--cache-dir`` with base images.

The executor reads that directory with ``--cache=true --cache-dir``; the warmer pulls
the images named by ``--image`` and by the ``FROM`` lines of ``--dockerfile`` into it
ahead of time (for instance once per node, so builds never pull a base).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pykaniko.cli.flags import (
    LEVELS,
    Parser,
    build_args,
    client_certs,
    flag,
    pairs,
    proxies,
)
from pykaniko.cli.logs import level_number
from pykaniko.errors import ConfigError, PykanikoError

if TYPE_CHECKING:
    from pykaniko.warmer import WarmOptions

__all__ = ["build_warmer_parser", "parse_warmer_args", "warm_options", "warmer_main"]

log = logging.getLogger("pykaniko")


def build_warmer_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="pykaniko warmer",
        description="Pull base images into a local cache directory for later builds "
        "(Kaniko's warmer flags).",
        allow_abbrev=False,
    )
    a = p.add_argument
    a("-i", "--image", action="append", default=[], help="image to cache (repeatable)")
    a("-d", "--dockerfile", default="", help="cache every base image this Dockerfile uses")
    a("--build-arg", action="append", default=[], metavar="KEY[=VALUE]", help="for --dockerfile")
    a("-c", "--cache-dir", default="/cache", help="the cache directory")
    flag(p, "-f", "--force", help="replace images already in the cache")
    a("--cache-ttl", default="336h", help="age after which a cached image is pulled again")
    a("--customPlatform", "--custom-platform", default="", help="os/arch[/variant] to cache")
    flag(p, "--insecure-pull", help="plain HTTP for pulls")
    flag(p, "--skip-tls-verify-pull", help="do not verify TLS for pulls")
    a("--insecure-registry", action="append", default=[], help="plain HTTP for a registry")
    a("--skip-tls-verify-registry", action="append", default=[], help="per-registry no-verify")
    a("--registry-certificate", action="append", default=[], metavar="REG=CA.pem")
    a("--registry-client-cert", action="append", default=[], metavar="REG=CERT,KEY")
    a("--registry-mirror", action="append", default=[], help="Docker Hub mirror")
    a("--registry-map", action="append", default=[], metavar="ORIG=NEW[/PREFIX]")
    flag(p, "--skip-default-registry-fallback", help="never fall back to the original")
    a(
        "--image-download-retry", type=int, default=None,
        help="extra attempts for a blob or manifest that breaks off or arrives wrong (default 3)",
    )  # fmt: skip
    a("-v", "--verbosity", default="info", choices=LEVELS, metavar="LEVEL")
    a("--log-format", default="color", choices=["color", "text", "json"], help="color|text|json")
    flag(p, "--log-timestamp", help="full timestamps instead of seconds since the start")
    a("--azure-container-registry-config", default="", help=argparse.SUPPRESS)
    return p


def parse_warmer_args(argv: Sequence[str], env: Mapping[str, str]) -> argparse.Namespace:
    ns = build_warmer_parser().parse_args(list(argv))
    if not ns.image and not ns.dockerfile:
        raise ConfigError(
            "pykaniko warmer: nothing to cache",
            hint="give at least one --image or a --dockerfile",
        )
    return ns


def warm_options(ns: argparse.Namespace, env: Mapping[str, str]) -> WarmOptions:
    """The warmer's flags (and Kaniko's ``KANIKO_REGISTRY_*`` variables) as options."""
    from pykaniko.executor.cache import parse_ttl
    from pykaniko.image.platform import Platform, host_platform
    from pykaniko.registry import RegistryOptions, parse_registry_maps
    from pykaniko.registry.options import DEFAULT_IMAGE_DOWNLOAD_RETRY
    from pykaniko.warmer import WarmOptions

    mirrors = list(ns.registry_mirror)
    if env.get("KANIKO_REGISTRY_MIRROR"):
        mirrors += [m for m in env["KANIKO_REGISTRY_MIRROR"].split(";") if m]
    maps = list(ns.registry_map)
    if env.get("KANIKO_REGISTRY_MAP"):
        maps.append(env["KANIKO_REGISTRY_MAP"])
    registry = RegistryOptions(
        insecure_pull=ns.insecure_pull,
        insecure_registries=tuple(ns.insecure_registry),
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
        proxies=proxies(env),
    )
    return WarmOptions(
        cache_dir=Path(ns.cache_dir),
        images=tuple(ns.image),
        dockerfile=Path(ns.dockerfile) if ns.dockerfile else None,
        build_args=build_args(ns.build_arg, env),
        cache_ttl=parse_ttl(ns.cache_ttl),
        force=ns.force,
        platform=Platform.parse(ns.customPlatform) if ns.customPlatform else host_platform(),
        registry=registry,
    )


def warmer_main(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """Kaniko's warmer: exit 0 when at least one image is in the cache afterwards
    (failures are warnings), 1 when every image failed or the flags are wrong."""
    from pykaniko.warmer import warm

    try:
        ns = parse_warmer_args(argv, env)
        options = warm_options(ns, env)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except PykanikoError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_status
    fmt = (
        "%(asctime)s %(levelname)s %(message)s" if ns.log_timestamp else "%(levelname)s %(message)s"
    )
    logging.basicConfig(level=level_number(ns.verbosity), format=fmt, stream=sys.stderr)
    try:
        results = warm(options, env=env, notify=log.warning)
    except PykanikoError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_status
    for r in results:
        if r.status == "cached":
            log.info("Cached %s (%s, %.1f MB)", r.reference, r.digest, r.size / 1e6)
        elif r.status == "present":
            log.info("Already cached: %s (%s)", r.reference, r.digest)
        else:
            log.warning("Cannot cache %s (%s): %s", r.reference, r.platform, r.message)
    if all(r.status == "failed" for r in results):
        print("error: no image could be cached", file=sys.stderr)
        return 1
    return 0
