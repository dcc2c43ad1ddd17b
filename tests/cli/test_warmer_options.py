"""``pykaniko warmer`` flags: Kaniko's warmer flags map onto WarmOptions; bad input is
one clear line; ``--help`` does not load the HTTP stack."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pykaniko.cli import main
from pykaniko.cli.warmer import build_warmer_parser as build_parser
from pykaniko.cli.warmer import warm_options as options_from_args
from pykaniko.image.platform import Platform

ROOT = Path(__file__).resolve().parents[1]


def test_kaniko_warmer_flags_are_accepted(tmp_path: Path) -> None:
    ns = build_parser().parse_args(
        [
            "-i", "busybox:1", "--image", "alpine:3", "-d", "Dockerfile",
            "--build-arg", "BASE=debian:12", "-c", str(tmp_path), "--cache-ttl", "1h30m",
            "-f", "--customPlatform", "linux/arm64/v8", "--insecure-pull",
            "--skip-tls-verify-pull", "--insecure-registry", "r.local:5000",
            "--skip-tls-verify-registry", "r2.local", "--registry-mirror", "mirror.local",
            "--registry-map", "index.docker.io=m.local", "--skip-default-registry-fallback",
            "--image-download-retry", "1", "-v", "debug", "--log-format", "json",
            "--log-timestamp",
        ]
    )  # fmt: skip
    options = options_from_args(ns, {"KANIKO_REGISTRY_MAP": "quay.io=q.local"})
    assert options.images == ("busybox:1", "alpine:3")
    assert options.dockerfile == Path("Dockerfile")
    assert options.build_args == {"BASE": "debian:12"}
    assert options.cache_dir == tmp_path
    assert options.cache_ttl == 5400
    assert options.force
    assert options.platform == Platform.parse("linux/arm64/v8")
    reg = options.registry
    assert reg.insecure_pull
    assert reg.skip_tls_verify_pull
    assert reg.insecure_registries == ("r.local:5000",)
    assert reg.skip_tls_verify_registries == ("r2.local",)
    assert reg.mirrors == ("mirror.local",)
    assert reg.registry_maps == {"docker.io": ("m.local",), "quay.io": ("q.local",)}
    assert reg.skip_default_registry_fallback
    assert reg.image_download_retry == 1


def test_defaults_are_kanikos() -> None:
    options = options_from_args(build_parser().parse_args(["-i", "x:1"]), {})
    assert options.cache_dir == Path("/cache")
    assert options.cache_ttl == 336 * 3600
    assert not options.force


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--cache-ttl", "two weeks", "-i", "x:1"], "--cache-ttl"),
        (["--bogus"], "unrecognized arguments"),
        (["-c", "/dev/null/cache"], "nothing to cache"),
    ],
)
def test_bad_input_is_one_line(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["warmer", *argv]) == 1
    err = capsys.readouterr().err
    assert needle in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_help_does_not_load_requests() -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pykaniko", "warmer", "--help"],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    assert proc.returncode == 0
    assert "--customPlatform" in proc.stdout
    assert "| requests" not in proc.stderr
    main_help = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pykaniko", "--help"],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    assert main_help.returncode == 0
    assert "| requests" not in main_help.stderr
    assert "| urllib3" not in main_help.stderr
