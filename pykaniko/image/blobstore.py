"""A content-addressed blob directory laid out like an OCI layout's ``blobs/``.

Pulled base layers, built layers, configs and manifests all live here during a build,
so pushing, writing ``--oci-layout-path`` or ``--tar-path`` and cross-stage reuse read
the same files. Blobs are written to a temporary name and renamed into place only
after their digest is verified: a crash never leaves a wrong blob under a good name.
OS errors (a full disk) come out as :class:`StorageError` naming the blob, never the
store's host path.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pykaniko.errors import ImageError, StorageError
from pykaniko.image.digest import check_digest, sha256_bytes

__all__ = ["BlobStore"]


@dataclass(frozen=True, slots=True)
class BlobStore:
    root: Path

    def __post_init__(self) -> None:
        try:
            (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
            (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError.from_os(e, operation="create the blob store") from e

    def path(self, digest: str) -> Path:
        algo, _, hexpart = check_digest(digest).partition(":")
        return self.root / "blobs" / algo / hexpart

    def has(self, digest: str) -> bool:
        return self.path(digest).exists()

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError as exc:
            raise ImageError(f"blob {digest} is not in the local store") from exc
        except OSError as exc:
            raise StorageError.from_os(exc, operation=f"read blob {digest[:19]}") from exc

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError as exc:
            raise ImageError(f"blob {digest} is not in the local store") from exc
        except OSError as exc:
            raise StorageError.from_os(exc, operation=f"read blob {digest[:19]}") from exc

    def temp_path(self, suffix: str = "") -> Path:
        """A fresh file name on the store's filesystem, for writers that rename later."""
        try:
            fd, name = tempfile.mkstemp(dir=self.root / "tmp", suffix=suffix)
        except OSError as e:
            raise StorageError.from_os(e, operation="create a file in the blob store") from e
        os.close(fd)
        return Path(name)

    def put_bytes(self, data: bytes) -> str:
        """Store a small blob (config, manifest) and return its digest."""
        digest = sha256_bytes(data)
        target = self.path(digest)
        if not target.exists():
            tmp = self.temp_path()
            try:
                tmp.write_bytes(data)
                os.replace(tmp, target)
            except OSError as e:
                tmp.unlink(missing_ok=True)
                raise StorageError.from_os(
                    e, operation=f"store blob {digest[:19]}", needed=len(data)
                ) from e
        return digest

    def adopt(self, path: Path, digest: str) -> Path:
        """Move an already-verified file into place under ``digest``."""
        target = self.path(digest)
        try:
            if target.exists():
                path.unlink(missing_ok=True)
            else:
                os.replace(path, target)
        except OSError as e:
            raise StorageError.from_os(e, operation=f"store blob {digest[:19]}") from e
        return target
