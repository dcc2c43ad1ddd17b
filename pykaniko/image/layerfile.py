"""Layer blobs on disk: written once while both digests are computed, read back through
a decompressor that verifies the digest as the bytes go by.

A layer is never held in memory: the tar writer streams into :class:`LayerWriter`,
which hashes the uncompressed bytes (diff_id), compresses them (isal gzip or zstd
with threads), hashes the compressed bytes (digest) and writes them to a file. Its OS
errors (a full disk above all) come out as :class:`StorageError`; the host path of the
file stays out of the message.
"""

from __future__ import annotations

import bz2
import contextlib
import hashlib
import io
import lzma
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Final, Literal, cast

import zstandard
from isal import igzip, igzip_threaded, isal_zlib

from pykaniko.errors import ImageError, StorageError, format_size
from pykaniko.image.digest import CHUNK, HashingWriter

__all__ = [
    "COMPRESSIONS",
    "Compression",
    "LayerFile",
    "LayerWriter",
    "decompressing_reader",
    "link_or_copy",
    "open_decompressed",
    "open_uncompressed",
    "sniff_compression",
]

Compression = Literal["gzip", "zstd", "none"]
COMPRESSIONS: Final = ("gzip", "zstd", "none")


@dataclass(frozen=True, slots=True)
class LayerFile:
    """A finished layer blob: where it is and what it is."""

    path: Path
    digest: str
    diff_id: str
    size: int
    uncompressed_size: int
    compression: Compression


class _Sink(io.RawIOBase):
    """Adapts our hashing writer to the raw-stream interface compressors expect."""

    def __init__(self, inner: HashingWriter) -> None:
        self._inner = inner

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        return self._inner.write(data)

    def close(self) -> None:  # the file underneath is closed by LayerWriter
        super().close()


class LayerWriter:
    """Binary sink for an uncompressed tar stream that ends as a :class:`LayerFile`.

    ``level`` follows ``--compression-level``: None means the Kaniko default (gzip
    level 1, zstd level 3). isal knows levels 0-3; higher gzip levels use isal's 3.
    """

    def __init__(
        self,
        path: Path,
        *,
        compression: Compression = "gzip",
        level: int | None = None,
        threads: int = 2,
    ) -> None:
        self._path = path
        self._compression: Compression = compression
        try:
            self._file: BinaryIO = open(path, "wb")  # noqa: SIM115  closed in close()
        except OSError as e:
            raise StorageError.from_os(e, operation="write layer") from e
        self._compressed = HashingWriter(self._file)
        self._diff = hashlib.sha256()
        self._size = 0
        self._result: LayerFile | None = None
        self._stream: BinaryIO | None
        sink = cast(BinaryIO, _Sink(self._compressed))
        if compression == "gzip":
            lvl = 1 if level is None or level < 0 else min(level, 3)
            if threads > 1:
                self._stream = cast(
                    BinaryIO,
                    igzip_threaded.open(  # type: ignore[no-untyped-call]
                        sink, "wb", compresslevel=lvl, threads=threads
                    ),
                )
            else:
                self._stream = cast(
                    BinaryIO,
                    igzip.IGzipFile(  # type: ignore[no-untyped-call]
                        fileobj=sink, mode="wb", compresslevel=lvl, mtime=0
                    ),
                )
        elif compression == "zstd":
            lvl = 3 if level is None or level <= 0 else min(level, 22)
            params = zstandard.ZstdCompressionParameters.from_level(
                lvl, threads=-1 if threads > 1 else 0, write_checksum=True
            )
            self._stream = cast(
                BinaryIO,
                zstandard.ZstdCompressor(compression_params=params).stream_writer(
                    sink, closefd=False
                ),
            )
        else:
            self._stream = None

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._diff.update(data)
        n = len(data)
        self._size += n
        try:
            if self._stream is None:
                self._compressed.write(data)
            else:
                self._stream.write(data)
        except OSError as e:
            raise self._error(e) from e
        return n

    def _error(self, e: OSError, *, whole: bool = False) -> StorageError:
        """``whole``: the layer is complete, so its uncompressed size is what it needed
        (at most: compression only makes it smaller)."""
        written = format_size(self._compressed.size)
        return StorageError.from_os(
            e,
            operation="write layer",
            needed=self._size if whole else None,
            detail=("the layer before compression; " if whole else "")
            + f"{written} compressed were written",
        )

    def flush(self) -> None:
        """Compressors flush on close; a mid-stream flush would change the bytes."""

    def close(self) -> LayerFile:
        if self._result is not None:
            return self._result
        try:
            if self._stream is not None:
                self._stream.close()
            self._file.close()
        except OSError as e:
            raise self._error(e, whole=True) from e
        self._result = LayerFile(
            path=self._path,
            digest=self._compressed.digest,
            diff_id="sha256:" + self._diff.hexdigest(),
            size=self._compressed.size,
            uncompressed_size=self._size,
            compression=self._compression,
        )
        return self._result

    def abort(self) -> None:
        """Drop a half-written layer; errors of the compressor (the one that made us
        abort, raised again) do not matter any more."""
        try:
            if self._stream is not None:
                with contextlib.suppress(OSError, ValueError, zstandard.ZstdError):
                    self._stream.close()
        finally:
            with contextlib.suppress(OSError):
                self._file.close()
            self._path.unlink(missing_ok=True)

    def __enter__(self) -> LayerWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()


def sniff_compression(head: bytes) -> Compression | Literal["bzip2", "xz"]:
    """Identify a stream by its magic bytes (ADD archives and layers of unknown type)."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    if head.startswith(b"BZh"):
        return "bzip2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    return "none"


class _VerifyingReader(io.RawIOBase):
    """Hashes the compressed bytes and raises at EOF if they do not match ``expected``."""

    def __init__(self, inner: BinaryIO, expected: str | None, what: str) -> None:
        self._inner = inner
        self._expected = expected
        self._what = what
        self._hash = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        n = self._inner.readinto(buf)  # type: ignore[attr-defined]
        if n:
            self._hash.update(memoryview(buf)[:n])
        elif self._expected is not None:
            got = "sha256:" + self._hash.hexdigest()
            if got != self._expected:
                raise ImageError(
                    f"{self._what}: digest mismatch: expected {self._expected}, got {got}"
                )
            self._expected = None
        return int(n or 0)

    def close(self) -> None:
        self._inner.close()
        super().close()


class _Owning(io.BufferedIOBase):
    """A decompressor that also closes the stream it reads from (gzip, bzip2 and xz
    readers given a file object leave it open, leaking the file)."""

    def __init__(self, outer: BinaryIO, owned: BinaryIO) -> None:
        self._outer = outer
        self._owned = owned

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        return self._outer.read(-1 if size is None else size)

    def read1(self, size: int = -1) -> bytes:
        return self._outer.read(size)

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        return self._outer.readinto(buf)  # type: ignore[attr-defined,no-any-return]

    def close(self) -> None:
        try:
            self._outer.close()
        finally:
            self._owned.close()
            super().close()


def decompressing_reader(raw: BinaryIO, kind: str) -> BinaryIO:
    """Wrap ``raw`` (compressed as ``kind``) in a streaming decompressor; closing the
    result closes ``raw``."""
    outer: BinaryIO
    if kind == "gzip":
        outer = cast(BinaryIO, igzip.IGzipFile(fileobj=raw, mode="rb"))  # type: ignore[no-untyped-call]
    elif kind == "zstd":
        reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
        return cast(BinaryIO, io.BufferedReader(cast(io.RawIOBase, reader), CHUNK))
    elif kind == "bzip2":
        outer = cast(BinaryIO, bz2.BZ2File(raw, "rb"))
    elif kind == "xz":
        outer = cast(BinaryIO, lzma.LZMAFile(raw, "rb"))  # noqa: SIM115  closed by _Owning
    else:
        return raw
    return cast(BinaryIO, _Owning(outer, raw))


def open_decompressed(path: Path | str) -> BinaryIO:
    """Open any (gzip, zstd, bzip2, xz or plain) file as its uncompressed stream."""
    raw: BinaryIO = open(path, "rb")  # noqa: SIM115  the returned stream owns it
    kind = sniff_compression(raw.read(8))
    raw.seek(0)
    return decompressing_reader(raw, kind)


# what the decompressors raise on bad bytes (isal's error is a plain Exception)
_DECOMPRESS_ERRORS: Final[tuple[type[BaseException], ...]] = (
    zstandard.ZstdError,
    zlib.error,
    cast("type[BaseException]", isal_zlib.error),
)


class _Damage(io.RawIOBase):
    """Says what went wrong under a layer's decompressor in our terms: a damaged or
    cut stream is an :class:`ImageError`, a failing disk a :class:`StorageError`
    (never a raw EOFError, ZstdError or OSError naming a host path)."""

    def __init__(self, inner: BinaryIO, kind: str, what: str) -> None:
        self._inner = inner
        self._kind = kind
        self._what = what

    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        try:
            return int(self._inner.readinto(buf) or 0)  # type: ignore[attr-defined]
        except EOFError as e:
            raise ImageError(f"{self._what}: the {self._kind} stream ends early") from e
        except _DECOMPRESS_ERRORS as e:
            raise ImageError(f"{self._what}: damaged {self._kind} stream: {e}") from e
        except OSError as e:
            if e.errno is None:  # BadGzipFile and the like: the bytes, not the disk
                raise ImageError(f"{self._what}: damaged {self._kind} stream: {e}") from e
            raise StorageError.from_os(e, operation=f"{self._what}: read") from e

    def close(self) -> None:
        self._inner.close()
        super().close()


def open_uncompressed(
    path: Path | str, *, digest: str | None = None, what: str = "layer"
) -> BinaryIO:
    """Open a layer blob as an uncompressed stream, whatever its compression.

    When ``digest`` is given the compressed bytes are verified when the stream is read
    to its end; a mismatch raises :class:`ImageError`, and so does a damaged stream.
    """
    try:
        raw: BinaryIO = open(path, "rb")  # noqa: SIM115  the returned stream owns it
        head = raw.read(8)
        raw.seek(0)
    except OSError as e:
        raise StorageError.from_os(e, operation=f"{what}: read") from e
    kind = sniff_compression(head)
    if kind in ("bzip2", "xz"):
        raw.close()
        raise ImageError(f"{what}: {kind} layers are not supported")
    checked = cast(BinaryIO, io.BufferedReader(_VerifyingReader(raw, digest, what), CHUNK))
    plain = decompressing_reader(checked, kind)
    if kind == "none":
        return plain
    return cast(BinaryIO, io.BufferedReader(_Damage(plain, kind, what), CHUNK))


def link_or_copy(src: Path, dst: Path) -> None:
    """Place ``src`` at ``dst`` cheaply (hard link when on the same filesystem)."""
    try:
        os.link(src, dst)
    except OSError:
        with open(src, "rb") as fi, open(dst, "wb") as fo:
            while block := fi.read(CHUNK):
                fo.write(block)
