"""``pykaniko warmer``: Kaniko's warmer flags, to fill ``--cache-dir`` with base images.

The executor reads that directory with ``--cache=true --cache-dir``; the warmer pulls
the images named by ``--image`` and by the ``FROM`` lines of ``--dockerfile`` into it
ahead of time (for instance once per node, so builds never pull a base).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence

from pykaniko.cli.flags import LEVELS, Parser, flag
from pykaniko.errors import ConfigError, PykanikoError

__all__ = ["build_warmer_parser", "parse_warmer_args", "warmer_main"]


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
    a("-v", "--verbosity", default="info", choices=LEVELS, metavar="LEVEL")
    a("--log-format", default="color", choices=["color", "text", "json"], help="color|text|json")
    flag(p, "--log-timestamp", help="full timestamps instead of seconds since the start")
    a("--azure-container-registry-config", default="", help=argparse.SUPPRESS)
    return p


def parse_warmer_args(argv: Sequence[str], env: Mapping[str, str]) -> argparse.Namespace:
    ns = build_warmer_parser().parse_args(list(argv))
    if env.get("KANIKO_REGISTRY_MAP"):
        ns.registry_map.append(env["KANIKO_REGISTRY_MAP"])
    if not ns.image and not ns.dockerfile:
        raise ConfigError(
            "pykaniko warmer: nothing to cache",
            hint="give at least one --image or a --dockerfile",
        )
    return ns


def warmer_main(argv: Sequence[str], env: Mapping[str, str]) -> int:
    try:
        parse_warmer_args(argv, env)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except PykanikoError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_status
    print(
        "error: pykaniko warmer: the base-image cache is not available in this version",
        file=sys.stderr,
    )
    return 1
