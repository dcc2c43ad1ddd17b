"""A new hardlink to a file of a lower layer carries the old name too (overlayfs copy-up),
so the image keeps one hardlink group, as Docker's does."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from pykaniko.snapshot import IgnoreList, SnapshotMode, Snapshotter, write_layer


@pytest.mark.parametrize("mode", list(SnapshotMode))
def test_link_to_lower_file_brings_the_first_name(tmp_path: Path, mode: SnapshotMode) -> None:
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tool").write_bytes(b"binary")
    (root / "other").write_text("unrelated")
    snap = Snapshotter(root, mode=mode, ignore=IgnoreList.of())
    snap.take_baseline()
    (root / "links").mkdir()
    os.link(root / "bin" / "tool", root / "links" / "tool-link")
    changes = snap.diff()
    assert "/bin/tool" in changes.entries
    assert "/other" not in changes.entries
    sink = io.BytesIO()
    write_layer(changes, root, sink)
    sink.seek(0)
    with tarfile.open(fileobj=sink) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["bin/tool"].isfile()
    assert members["links/tool-link"].islnk()
    assert members["links/tool-link"].linkname == "bin/tool"
