"""``--isolation`` and ``--force``: parsed into typed options (building is never tried
here: an in-place build on this machine would replace its own ``/``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pykaniko.cli import parse_args
from pykaniko.errors import ConfigError
from pykaniko.executor import BuildOptions


def _parse(tmp_path: Path, *argv: str) -> BuildOptions:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    _, opts = parse_args(["--context", str(ctx), "--no-push", *argv], {})
    return opts


def test_auto_is_the_default(tmp_path: Path) -> None:
    opts = _parse(tmp_path)
    assert (opts.isolation, opts.force) == ("auto", False)


@pytest.mark.parametrize("mode", ["auto", "chroot", "in-place"])
def test_modes(tmp_path: Path, mode: str) -> None:
    assert _parse(tmp_path, f"--isolation={mode}").isolation == mode


def test_force_allows_in_place_outside_a_container(tmp_path: Path) -> None:
    opts = _parse(tmp_path, "--isolation", "in-place", "--force")
    assert (opts.isolation, opts.force) == ("in-place", True)
    assert not _parse(tmp_path, "--force=false").force


def test_unknown_mode(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--isolation"):
        _parse(tmp_path, "--isolation=rootless")
