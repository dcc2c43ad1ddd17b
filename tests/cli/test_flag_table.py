"""``docs/flags.md`` is checked against the code: every accepted example parses, every
refused example fails with exactly the error the table shows, every Kaniko flag has a
row, and every flag the parsers know is in the table."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from pykaniko.cli import build_parser, main, parse_args
from pykaniko.cli.warmer import build_warmer_parser, parse_warmer_args

DOC = Path(__file__).resolve().parents[2] / "docs" / "flags.md"

# Kaniko v1.x flag names, read from cmd/executor/cmd/root.go and cmd/warmer/cmd/root.go
KANIKO_EXECUTOR = [
    "dockerfile",
    "context",
    "context-sub-path",
    "bucket",
    "destination",
    "snapshot-mode",
    "custom-platform",
    "build-arg",
    "insecure",
    "skip-tls-verify",
    "insecure-pull",
    "skip-tls-verify-pull",
    "push-retry",
    "push-ignore-immutable-tag-errors",
    "image-fs-extract-retry",
    "image-download-retry",
    "kaniko-dir",
    "tar-path",
    "single-snapshot",
    "reproducible",
    "target",
    "no-push",
    "no-push-cache",
    "cache-repo",
    "cache-dir",
    "digest-file",
    "image-name-with-digest-file",
    "image-name-tag-with-digest-file",
    "oci-layout-path",
    "compression",
    "compression-level",
    "cache",
    "compressed-caching",
    "cleanup",
    "cache-ttl",
    "insecure-registry",
    "skip-tls-verify-registry",
    "registry-certificate",
    "registry-client-cert",
    "registry-map",
    "registry-mirror",
    "skip-default-registry-fallback",
    "ignore-var-run",
    "label",
    "skip-unused-stages",
    "use-new-run",
    "git",
    "cache-copy-layers",
    "cache-run-layers",
    "ignore-path",
    "force-build-metadata",
    "skip-push-permission-check",
    "snapshotMode",
    "customPlatform",
    "tarPath",
    "whitelist-var-run",
    "verbosity",
    "log-format",
    "log-timestamp",
    "force",
    "azure-container-registry-config",
    "annotation",
]
KANIKO_WARMER = [
    "image",
    "cache-dir",
    "force",
    "cache-ttl",
    "insecure-pull",
    "skip-tls-verify-pull",
    "insecure-registry",
    "skip-tls-verify-registry",
    "registry-certificate",
    "registry-client-cert",
    "registry-map",
    "registry-mirror",
    "skip-default-registry-fallback",
    "customPlatform",
    "dockerfile",
    "build-arg",
    "verbosity",
    "log-format",
    "log-timestamp",
    "azure-container-registry-config",
]


@dataclass(frozen=True)
class Row:
    names: tuple[str, ...]
    command: str
    status: str
    accepted: str
    refused: str
    error: str


def _code(cell: str) -> str:
    cell = cell.strip()
    return cell[1:-1] if cell.startswith("`") and cell.endswith("`") else cell


def rows() -> list[Row]:
    text = DOC.read_text()
    body = text[text.index("<!-- flag-table:begin -->") : text.index("<!-- flag-table:end -->")]
    out: list[Row] = []
    for line in body.splitlines()[3:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 7, line
        names = tuple(n.strip("` ") for n in cells[0].split(","))
        out.append(Row(names, cells[1], cells[2], *(_code(c) for c in cells[3:6])))
    return out


ROWS = rows()


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    c = tmp_path / "ctx"
    (c / "sub").mkdir(parents=True)
    (c / "Dockerfile").write_text("FROM scratch\nCOPY Dockerfile /\n")
    (c / "sub" / "Dockerfile").write_text("FROM scratch\n")
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (c / name).write_text("pem\n")
    return c


def _argv(example: str, ctx: Path) -> list[str]:
    return shlex.split(example.replace("CTX", str(ctx)))


def _id(row: Row) -> str:
    return f"{row.command}:{row.names[-1]}"


def test_statuses_are_known() -> None:
    assert {r.status for r in ROWS} <= {"same", "differs", "not supported", "pykaniko only"}
    assert all(r.command in ("executor", "warmer") for r in ROWS)


@pytest.mark.parametrize("row", [r for r in ROWS if r.accepted], ids=_id)
def test_accepted_examples_parse(row: Row, ctx: Path) -> None:
    argv = _argv(row.accepted, ctx)
    assert any(a.split("=")[0] in row.names for a in argv), "the example uses its own flag"
    if row.command == "warmer":
        parse_warmer_args(["--image=busybox:1", *argv], {})
        return
    base = ["--context", str(ctx), "--kaniko-dir", str(ctx / "kaniko"), "--no-push"]
    parse_args([*base, "--destination=reg.example/app:1", *argv], {})


@pytest.mark.parametrize("row", [r for r in ROWS if r.refused], ids=_id)
def test_refused_examples_fail_with_the_documented_error(
    row: Row, ctx: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert row.command == "executor"
    base = ["--context", str(ctx), "--kaniko-dir", str(ctx / "kaniko"), "--no-push"]
    status = main([*base, *_argv(row.refused, ctx)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1
    assert err == [row.error.replace("CTX", str(ctx))]


def test_not_supported_rows_have_a_refusal() -> None:
    for row in ROWS:
        if row.status == "not supported":
            assert row.refused, row
            assert row.error, row
            assert not row.accepted, row


def test_every_kaniko_flag_has_a_row() -> None:
    executor = {n.lstrip("-") for r in ROWS if r.command == "executor" for n in r.names}
    warmer = {n.lstrip("-") for r in ROWS if r.command == "warmer" for n in r.names}
    assert set(KANIKO_EXECUTOR) - executor == set()
    assert set(KANIKO_WARMER) - warmer == set()


@pytest.mark.parametrize(
    ("command", "parser"), [("executor", build_parser), ("warmer", build_warmer_parser)]
)
def test_every_parser_flag_is_in_the_table(command: str, parser: object) -> None:
    assert callable(parser)
    known = {n for r in ROWS if r.command == command for n in r.names}
    flags = {
        opt
        for action in parser()._actions
        for opt in action.option_strings
        if opt not in ("-h", "--help", "--version")
    }
    assert flags - known == set()
    assert {n for n in known if re.match(r"^-", n)} - flags == set()
