"""Read-only roots for ``COPY --from`` and ``RUN --mount from=``: an external image's
layers, or those of a stage that never needed a rootfs of its own (every step a cache
hit), extracted into a scratch directory only as far as the sources need.

Directories and symlinks are always extracted (they are cheap, and a source may be
reached through them); files only below the sources' fixed prefixes (the part before
the first wildcard), taken literally or through the symlinks already extracted. Each
blob's digest and diff_id are checked as it streams.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import BinaryIO

from pykaniko.executor.events import EventSink, Notice
from pykaniko.executor.prefixes import fixed_prefix, under_prefixes
from pykaniko.executor.state import PendingLayer, extract_verified
from pykaniko.executor.workspace import Workspace
from pykaniko.image.manifest import Descriptor
from pykaniko.registry import PulledImage, RegistryClient
from pykaniko.snapshot import ExtractReport, IgnoreList, extract_layer

__all__ = ["PartialRoots"]


class PartialRoots:
    """Scratch roots made once per (owner, prefixes) and kept until the build ends."""

    def __init__(self, workspace: Workspace, registry: RegistryClient, events: EventSink) -> None:
        self.workspace = workspace
        self.registry = registry
        self.events = events
        self._roots: dict[tuple[Hashable, tuple[str, ...]], Path] = {}

    def get(
        self, owner: Hashable, label: str, layers: Sequence[PendingLayer], sources: Sequence[str]
    ) -> Path:
        """A root holding what ``sources`` need of ``layers`` (in order, lowest first)."""
        prefixes = tuple(sorted({fixed_prefix(s) for s in sources}))
        key = (owner, () if "/" in prefixes else prefixes)
        if key in self._roots:
            return self._roots[key]
        root = self.workspace.scratch("from")
        os.chmod(root, 0o755)
        select = None if not key[1] else under_prefixes(root, key[1])
        store = self.workspace.store
        by_source: dict[int, tuple[PulledImage, list[Descriptor]]] = {}
        for p in layers:
            if p.source is not None:
                by_source.setdefault(id(p.source), (p.source, []))[1].append(p.desc)
        for source, descs in by_source.values():
            self.registry.fetch_layers(source, descs, store)

        def apply(stream: BinaryIO, *, what: str) -> ExtractReport:
            return extract_layer(
                stream, root, ignore=IgnoreList.of(), what=what, select=select
            ).report

        for p in layers:
            what = f"{label} layer {p.desc.digest[:19]}"
            path = store.path(p.desc.digest)
            for warning in extract_verified(apply, path, p.desc, p.diff_id, what).warnings[:20]:
                self.events(Notice("warning", f"{what}: {warning}"))
        self._roots[key] = root
        return root
