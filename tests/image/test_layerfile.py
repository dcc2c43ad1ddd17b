"""LayerWriter: both digests in one pass, deterministic bytes, verified reads."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path
from typing import get_args

import pytest
import zstandard

from pykaniko.errors import ImageError
from pykaniko.image.layerfile import (
    Compression,
    LayerFile,
    LayerWriter,
    open_decompressed,
    open_uncompressed,
    sniff_compression,
)

PAYLOAD = b"".join(os.urandom(64) + b"\0" * 4000 for _ in range(300))  # ~1.2 MB, compressible
ALL: tuple[Compression, ...] = get_args(Compression)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write(path: Path, compression: Compression, data: bytes = PAYLOAD, **kw: int) -> LayerFile:
    with LayerWriter(path, compression=compression, **kw) as w:
        for i in range(0, len(data), 70_000):
            w.write(data[i : i + 70_000])
    return w.close()


@pytest.mark.parametrize("compression", ALL)
def test_digests(tmp_path: Path, compression: Compression) -> None:
    path = tmp_path / "layer"
    layer = write(path, compression)
    blob = path.read_bytes()
    assert layer.diff_id == sha(PAYLOAD)
    assert layer.digest == sha(blob)
    assert layer.size == len(blob)
    assert layer.uncompressed_size == len(PAYLOAD)
    assert layer.compression == compression
    if compression == "gzip":
        assert gzip.decompress(blob) == PAYLOAD
        assert len(blob) < len(PAYLOAD)
    elif compression == "zstd":
        assert zstandard.ZstdDecompressor().decompressobj().decompress(blob) == PAYLOAD
    else:
        assert blob == PAYLOAD


@pytest.mark.parametrize("compression", ALL)
@pytest.mark.parametrize("threads", [1, 2])
def test_deterministic(tmp_path: Path, compression: Compression, threads: int) -> None:
    a = write(tmp_path / "a", compression, threads=threads)
    b = write(tmp_path / "b", compression, threads=threads)
    assert a.digest == b.digest
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


@pytest.mark.parametrize("compression", ALL)
def test_open_uncompressed_round_trip(tmp_path: Path, compression: Compression) -> None:
    layer = write(tmp_path / "l", compression)
    with open_uncompressed(layer.path, digest=layer.digest) as f:
        assert f.read() == PAYLOAD
    with open_decompressed(layer.path) as f:
        assert f.read() == PAYLOAD


@pytest.mark.parametrize("compression", ALL)
def test_digest_mismatch_raises_at_end(tmp_path: Path, compression: Compression) -> None:
    layer = write(tmp_path / "l", compression)
    wrong = "sha256:" + "0" * 64

    def drain() -> None:
        with open_uncompressed(layer.path, digest=wrong, what="layer X") as f:
            while f.read(65536):
                pass

    with pytest.raises(ImageError, match="layer X: digest mismatch"):
        drain()


def test_no_digest_no_check(tmp_path: Path) -> None:
    layer = write(tmp_path / "l", "gzip")
    with open_uncompressed(layer.path) as f:
        assert f.read() == PAYLOAD


def test_empty_layer(tmp_path: Path) -> None:
    layer = write(tmp_path / "l", "gzip", data=b"")
    assert layer.diff_id == sha(b"")
    with open_uncompressed(layer.path, digest=layer.digest) as f:
        assert f.read() == b""


def test_close_is_idempotent_and_abort_removes(tmp_path: Path) -> None:
    w = LayerWriter(tmp_path / "l", compression="gzip")
    w.write(b"x")
    assert w.close() is w.close()
    w2 = LayerWriter(tmp_path / "m", compression="zstd")
    w2.write(b"y")
    w2.abort()
    assert not (tmp_path / "m").exists()


def test_context_manager_aborts_on_error(tmp_path: Path) -> None:
    def fail() -> None:
        with LayerWriter(tmp_path / "l") as w:
            w.write(b"x")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail()
    assert not (tmp_path / "l").exists()


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\x1f\x8b\x08\x00", "gzip"),
        (b"\x28\xb5\x2f\xfd", "zstd"),
        (b"BZh91AY", "bzip2"),
        (b"\xfd7zXZ\x00\x00", "xz"),
        (b"ustar\x00", "none"),
        (b"", "none"),
    ],
)
def test_sniff(head: bytes, kind: str) -> None:
    assert sniff_compression(head) == kind


def test_xz_layers_refused(tmp_path: Path) -> None:
    import lzma

    path = tmp_path / "l.xz"
    path.write_bytes(lzma.compress(b"data"))
    with pytest.raises(ImageError, match="xz layers are not supported"):
        open_uncompressed(path)
