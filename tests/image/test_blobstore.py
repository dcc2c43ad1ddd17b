"""The content-addressed blob store."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from pykaniko.errors import ImageError
from pykaniko.image.blobstore import BlobStore
from pykaniko.image.digest import (
    HashingReader,
    HashingWriter,
    check_digest,
    sha256_bytes,
    sha256_file,
)


def test_layout(blob_root: Path) -> None:
    store = BlobStore(blob_root)
    assert (blob_root / "blobs" / "sha256").is_dir()
    digest = "sha256:" + "0" * 64
    assert store.path(digest) == blob_root / "blobs" / "sha256" / ("0" * 64)
    assert not store.has(digest)


def test_put_bytes(blob_root: Path) -> None:
    store = BlobStore(blob_root)
    digest = store.put_bytes(b"hello")
    assert digest == "sha256:" + hashlib.sha256(b"hello").hexdigest()
    assert store.has(digest)
    assert store.size(digest) == 5
    with store.open(digest) as f:
        assert f.read() == b"hello"
    assert store.put_bytes(b"hello") == digest  # idempotent
    assert os.listdir(blob_root / "tmp") == []


def test_adopt_moves_file_into_place(blob_root: Path) -> None:
    store = BlobStore(blob_root)
    tmp = store.temp_path(".layer")
    tmp.write_bytes(b"layer")
    digest = sha256_bytes(b"layer")
    target = store.adopt(tmp, digest)
    assert target == store.path(digest)
    assert target.read_bytes() == b"layer"
    assert not tmp.exists()


def test_adopt_existing_drops_the_new_copy(blob_root: Path) -> None:
    store = BlobStore(blob_root)
    digest = store.put_bytes(b"same")
    tmp = store.temp_path()
    tmp.write_bytes(b"same")
    assert store.adopt(tmp, digest) == store.path(digest)
    assert not tmp.exists()


def test_open_missing_is_image_error(blob_root: Path) -> None:
    with pytest.raises(ImageError, match="not in the local store"):
        BlobStore(blob_root).open("sha256:" + "1" * 64)


@pytest.mark.parametrize("bad", ["sha256:abc", "md5:" + "0" * 32, "../../etc/passwd", ""])
def test_bad_digests_are_refused(blob_root: Path, bad: str) -> None:
    with pytest.raises(ImageError, match="malformed digest"):
        BlobStore(blob_root).path(bad)
    with pytest.raises(ImageError):
        check_digest(bad)


def test_hashing_helpers(tmp_path: Path) -> None:
    import io

    data = os.urandom(3000)
    path = tmp_path / "f"
    path.write_bytes(data)
    assert sha256_file(str(path), chunk=1000) == (sha256_bytes(data), 3000)
    sink = io.BytesIO()
    w = HashingWriter(sink)
    w.write(data[:10])
    w.write(data[10:])
    assert (w.digest, w.size, sink.getvalue()) == (sha256_bytes(data), 3000, data)
    r = HashingReader(io.BytesIO(data))
    r.read(7)
    r.drain()
    assert (r.digest, r.size) == (sha256_bytes(data), 3000)
