"""Partial extraction (``select``): what ``COPY --from=<image>`` needs, not the image."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from pykaniko.executor.prefixes import under_prefixes
from pykaniko.snapshot import IgnoreList, extract_layer


def _layer() -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("usr", "usr/bin", "usr/lib", "etc"):
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        link = tarfile.TarInfo("bin")
        link.type = tarfile.SYMTYPE
        link.linkname = "usr/bin"
        tar.addfile(link)
        for name in ("usr/bin/tool", "usr/lib/big.so", "etc/passwd"):
            data = name.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        hard = tarfile.TarInfo("usr/bin/tool-alias")
        hard.type = tarfile.LNKTYPE
        hard.linkname = "usr/bin/tool"
        tar.addfile(hard)
    buf.seek(0)
    return buf


def test_only_files_below_the_sources_are_written(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    select = under_prefixes(root, ("/bin",))  # reached through the bin -> usr/bin link
    extract_layer(_layer(), root, ignore=IgnoreList.of(), select=select)
    assert (root / "usr/bin/tool").read_text() == "usr/bin/tool"
    assert (root / "usr/bin/tool-alias").stat().st_ino == (root / "usr/bin/tool").stat().st_ino
    assert (root / "bin").is_symlink()
    assert (root / "usr/lib").is_dir()
    assert not (root / "usr/lib/big.so").exists()
    assert not (root / "etc/passwd").exists()


def test_no_select_writes_everything(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    extract_layer(_layer(), root, ignore=IgnoreList.of())
    assert (root / "usr/lib/big.so").exists()
    assert (root / "etc/passwd").exists()
