"""Reading a test registry's filesystem storage directly: which tags exist, and whether
any blob it holds (finished or a half-done upload), once decompressed, contains some
bytes. Independent of pykaniko's own readers."""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import BinaryIO

import zstandard

__all__ = ["blobs_containing", "repository_tags"]


def repository_tags(storage: Path, repository: str) -> list[str]:
    """The tags of ``repository`` as the registry stores them."""
    tags = storage / "docker/registry/v2/repositories" / repository / "_manifests/tags"
    return sorted(p.name for p in tags.iterdir()) if tags.is_dir() else []


def _contains(path: Path, needle: bytes) -> bool:
    with open(path, "rb") as f:
        head = f.read(4)
    raw: BinaryIO = open(path, "rb")  # noqa: SIM115  closed with the reader around it
    opener: BinaryIO
    if head[:2] == b"\x1f\x8b":
        opener = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
    elif head == b"\x28\xb5\x2f\xfd":
        opener = zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
    else:
        opener = raw
    tail = b""
    try:
        with opener as stream:
            while block := stream.read(1 << 20):
                if needle in tail + block[: len(needle)] or needle in block:
                    return True
                tail = block[-len(needle) :]
    except (OSError, EOFError, zstandard.ZstdError):  # a partial upload: what is there
        return False
    finally:
        raw.close()
    return False


def blobs_containing(storage: Path, needle: bytes) -> list[Path]:
    """Every stored blob or upload whose (decompressed) bytes contain ``needle``."""
    found: list[Path] = []
    for dirpath, _dirs, files in os.walk(storage):
        for name in files:
            path = Path(dirpath) / name
            if name == "data" and _contains(path, needle):
                found.append(path)
    return found
