"""``pykaniko warmer``: Kaniko's cache warmer flags mapped onto :func:`pykaniko.warmer.warm`.

As Kaniko's warmer, it exits 0 when at least one image is in the cache afterwards
(failures are warnings) and 1 when every image failed or the flags are wrong.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pykaniko.cli import _LEVELS, _build_args, _flag, _pairs, _Parser, _proxies, _report
from pykaniko.errors import ConfigError, PykanikoError
from pykaniko.executor.cache import parse_ttl
from pykaniko.image.platform import Platform, host_platform
from pykaniko.registry import RegistryOptions, parse_registry_maps
from pykaniko.registry.options import DEFAULT_IMAGE_DOWNLOAD_RETRY
from pykaniko.warmer import WarmOptions, warm

__all__ = ["build_parser", "main", "options_from_args"]

log = logging.getLogger("pykaniko")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="pykaniko warmer",
        description="Pull base images into a local cache directory that builds with "
        "--cache read (Kaniko's warmer flags).",
        allow_abbrev=False,
    )
    a = p.add_argument
    a("-i", "--image", action="append", default=[], help="image to cache (repeatable)")
    a("-d", "--dockerfile", default=None, help="cache every image this Dockerfile builds on")
    a("--build-arg", action="append", default=[], metavar="KEY[=VALUE]", help="for --dockerfile")
    a("-c", "--cache-dir", default="/cache", help="the cache directory")
    a("--cache-ttl", default="336h", help="how long a cached image is used (Go duration)")
    _flag(p, "-f", "--force", help="fetch again what is cached (wrong blobs are replaced)")
    a(
        "--customPlatform", "--custom-platform", dest="custom_platform", default="",
        help="os/arch[/variant] to cache (default: this machine's)",
    )  # fmt: skip
    _flag(p, "--insecure-pull", help="plain HTTP for pulls")
    _flag(p, "--skip-tls-verify-pull", help="do not verify TLS for pulls")
    a("--insecure-registry", action="append", default=[], help="plain HTTP for a registry")
    a("--skip-tls-verify-registry", action="append", default=[], help="per-registry no-verify")
    a("--registry-certificate", action="append", default=[], metavar="REG=CA.pem")
    a("--registry-client-cert", action="append", default=[], metavar="REG=CERT,KEY")
    a("--registry-mirror", action="append", default=[], help="Docker Hub mirror")
    a("--registry-map", action="append", default=[], metavar="ORIG=NEW[/PREFIX]")
    _flag(p, "--skip-default-registry-fallback", help="never fall back to the original")
    a(
        "--image-download-retry", type=int, default=DEFAULT_IMAGE_DOWNLOAD_RETRY,
        help="extra attempts for a blob or manifest that breaks off or arrives wrong",
    )  # fmt: skip
    a("-v", "--verbosity", default="info", choices=sorted(_LEVELS), metavar="LEVEL")
    a("--log-format", default="color", choices=["color", "text", "json"])
    _flag(p, "--log-timestamp", help="prefix log lines with a timestamp")
    return p


def options_from_args(ns: argparse.Namespace, env: dict[str, str]) -> WarmOptions:
    mirrors = list(ns.registry_mirror)
    if env.get("KANIKO_REGISTRY_MIRROR"):
        mirrors += [m for m in env["KANIKO_REGISTRY_MIRROR"].split(";") if m]
    maps = list(ns.registry_map)
    if env.get("KANIKO_REGISTRY_MAP"):
        maps.append(env["KANIKO_REGISTRY_MAP"])
    client_certs: dict[str, tuple[str, str]] = {}
    for reg, pair in _pairs(ns.registry_client_cert, "--registry-client-cert").items():
        cert, _, key = pair.partition(",")
        if not key:
            raise ConfigError(f"--registry-client-cert={reg}={pair}: expected REG=CERT,KEY")
        client_certs[reg] = (cert, key)
    registry = RegistryOptions(
        insecure_pull=ns.insecure_pull,
        insecure_registries=tuple(ns.insecure_registry),
        skip_tls_verify_pull=ns.skip_tls_verify_pull,
        skip_tls_verify_registries=tuple(ns.skip_tls_verify_registry),
        registry_certificates=_pairs(ns.registry_certificate, "--registry-certificate"),
        registry_client_certs=client_certs,
        mirrors=tuple(mirrors),
        registry_maps=parse_registry_maps(maps),
        skip_default_registry_fallback=ns.skip_default_registry_fallback,
        image_download_retry=ns.image_download_retry,
        proxies=_proxies(env),
    )
    return WarmOptions(
        cache_dir=Path(ns.cache_dir),
        images=tuple(ns.image),
        dockerfile=Path(ns.dockerfile) if ns.dockerfile else None,
        build_args=_build_args(ns.build_arg, env),
        cache_ttl=parse_ttl(ns.cache_ttl),
        force=ns.force,
        platform=Platform.parse(ns.custom_platform) if ns.custom_platform else host_platform(),
        registry=registry,
    )


def main(argv: Sequence[str]) -> int:
    env = dict(os.environ)
    try:
        ns = build_parser().parse_args(list(argv))
        options = options_from_args(ns, env)
    except PykanikoError as err:
        return _report(err)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    fmt = (
        "%(asctime)s %(levelname)s %(message)s" if ns.log_timestamp else "%(levelname)s %(message)s"
    )
    logging.basicConfig(level=_LEVELS[ns.verbosity], format=fmt, stream=sys.stderr)
    try:
        results = warm(options, env=env, notify=log.warning)
    except PykanikoError as err:
        return _report(err)
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
