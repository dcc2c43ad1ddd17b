"""``pykaniko bench`` pieces: per-mode destinations, the layer comparison, the table."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from pykaniko.cli import main
from pykaniko.cli.bench import (
    Entry,
    ModeResult,
    _mode_destinations,
    _tagged,
    compare_layers,
    layer_entries,
    render_table,
)


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("reg.example/app:1", "reg.example/app:1-redo"),
        ("reg.example:5000/app", "reg.example:5000/app:bench-redo"),
        ("app", "app:bench-redo"),
    ],
)
def test_each_mode_pushes_to_its_own_tag(ref: str, expected: str) -> None:
    assert _tagged(ref, "redo") == expected


def test_destination_flags_in_every_spelling_are_retagged() -> None:
    args = ["-d", "r/a:1", "--destination", "r/b", "--destination=r/c:2", "--no-push=false"]
    assert _mode_destinations(args, "time") == [
        "-d", "r/a:1-time", "--destination", "r/b:bench-time", "--destination=r/c:2-time",
        "--no-push=false",
    ]  # fmt: skip


def _entry(size: int = 1, mode: int = 0o644, content: str = "x") -> Entry:
    return Entry("0", mode, 0, 0, size, "", content)


def test_compare_layers_names_where_images_differ() -> None:
    a = {"step 1": {"etc/a": _entry(), "etc/b": _entry(), "etc/c": _entry()}}
    b = {"step 1": {"etc/a": _entry(), "etc/c": _entry(mode=0o600), "etc/d": _entry()}}
    assert compare_layers(a, a) == []
    assert compare_layers(a, b, names=("full", "time")) == [
        "step 1: 1 only in full: /etc/b",
        "step 1: 1 only in time: /etc/d",
        "step 1: 1 different: /etc/c",
    ]
    assert compare_layers({**a, "step 2": {"x": _entry()}}, a, names=("full", "time")) == [
        "step 2: only full made a layer: /x"
    ]


def test_layer_entries_reads_a_compressed_layer(tmp_path: Path) -> None:
    path = tmp_path / "layer.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("etc/hello")
        info.size, info.mode = 3, 0o640
        tar.addfile(info, io.BytesIO(b"hi\n"))
        link = tarfile.TarInfo("etc/link")
        link.type, link.linkname = tarfile.SYMTYPE, "hello"
        tar.addfile(link)
    entries = layer_entries(path)
    assert entries["etc/hello"].mode == 0o640
    assert entries["etc/hello"].content
    assert entries["etc/link"].link == "hello"


def test_table_has_ratios_to_the_fastest_and_failures() -> None:
    summary: dict[str, object] = {
        "phases": {"snapshot": 0.5, "push": 0.25},
        "layers": [{"size": 1_000_000, "origin": "base"}, {"size": 500_000, "origin": "built"}],
    }
    results = [
        ModeResult("full", 0, 4.0, 3.0, 50.0, summary),
        ModeResult("time", 0, 2.0, 1.5, 40.0, summary),
        ModeResult("stat", 1, 1.0, 0.5, 30.0, error="boom"),
    ]
    table = render_table(results, {"time": ["layer 1: 1 different: /x"]})
    lines = table.splitlines()
    assert lines[2].split()[:3] == ["full", "4.00", "2.00"]
    assert lines[3].split()[:3] == ["time", "2.00", "1.00"]
    assert "1.50" in lines[2]  # MB in all layers
    assert "0.50" in lines[2]  # MB built
    assert lines[3].endswith("DIFFERS")
    assert lines[4].endswith("FAILED (1): boom")
    assert lines[5] == "  time: layer 1: 1 different: /x"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--modes", "full,fast"], "--modes=full,fast"),
        (["--snapshot-mode=redo"], "pykaniko bench sets this flag itself"),
        (["--push-retry=x"], "--push-retry"),
    ],
)
def test_bad_bench_arguments_fail_once_up_front(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    assert main(["bench", *argv, "--context", str(tmp_path), "--no-push"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert message in err
