"""Digest strings (``algo:hex``) and the hashing stream wrappers that compute them while
bytes flow, so no blob is ever held whole in memory."""

from __future__ import annotations

import hashlib
import re
from typing import BinaryIO, Final

from pykaniko.errors import ImageError

__all__ = ["CHUNK", "HashingReader", "HashingWriter", "check_digest", "sha256_bytes", "sha256_file"]

CHUNK: Final = 1 << 20
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$|^sha512:[0-9a-f]{128}$")


def check_digest(value: str) -> str:
    """Return ``value`` if it is a well-formed digest, else raise ``ImageError``."""
    if not _DIGEST.match(value):
        raise ImageError(f"malformed digest {value!r}")
    return value


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha256_file(path: str, *, chunk: int = CHUNK) -> tuple[str, int]:
    """Digest and size of a file, read in fixed-size chunks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
            size += len(block)
    return "sha256:" + h.hexdigest(), size


class HashingWriter:
    """A write-only stream that hashes and counts what passes through to ``inner``."""

    def __init__(self, inner: BinaryIO | None) -> None:
        self._inner = inner
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._hash.update(data)
        n = len(data)
        self.size += n
        if self._inner is not None:
            self._inner.write(data)
        return n

    def flush(self) -> None:
        if self._inner is not None:
            self._inner.flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


class HashingReader:
    """A read-only stream that hashes what is read from ``inner``; ``verify`` checks it."""

    def __init__(self, inner: BinaryIO) -> None:
        self._inner = inner
        self._hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._inner.read(n)
        self._hash.update(data)
        self.size += len(data)
        return data

    def readinto(self, buf: bytearray | memoryview) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def drain(self) -> None:
        """Read to the end so the digest covers the whole stream."""
        while self.read(CHUNK):
            pass
