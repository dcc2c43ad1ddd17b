"""The build's work directory (``--kaniko-dir``): blob store, stage rootfs dirs, RUN
mount scratch. Everything pykaniko writes goes under it; nothing outside."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pykaniko.image.blobstore import BlobStore

__all__ = ["Workspace"]


@dataclass(frozen=True, slots=True)
class Workspace:
    root: Path
    store: BlobStore

    @classmethod
    def create(cls, base: Path) -> Workspace:
        """A fresh per-build directory below ``base`` so two builds never collide."""
        base.mkdir(parents=True, exist_ok=True)
        root = Path(tempfile.mkdtemp(prefix="build-", dir=base))
        return cls(root=root, store=BlobStore(root / "oci"))

    def rootfs(self, stage_index: int) -> Path:
        path = self.root / "stages" / str(stage_index) / "rootfs"
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o755)
        return path

    def scratch(self, name: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=name + "-", dir=self.root))

    def remove(self, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(path)

    def cleanup(self) -> None:
        self.remove(self.root)
