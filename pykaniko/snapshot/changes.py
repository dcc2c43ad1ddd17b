"""The value a snapshot produces: what goes into the next layer."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ChangeSet"]


@dataclass(frozen=True, slots=True)
class ChangeSet:
    """Paths (rootfs-absolute, sorted) one layer must carry.

    ``entries`` are written with their current content; ``whiteouts`` become
    ``dir/.wh.name`` (only the top of a deleted subtree); ``opaque`` directories become
    ``dir/.wh..wh..opq`` followed by their whole current content (which is in
    ``entries``). ``added``/``modified``/``deleted`` are for logs and tests:
    ``deleted`` lists every vanished path, not just the ones that got a whiteout.
    """

    entries: tuple[str, ...] = ()
    whiteouts: tuple[str, ...] = ()
    opaque: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    modified: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        """An empty change set makes no layer."""
        return not (self.entries or self.whiteouts or self.opaque)

    def __len__(self) -> int:
        return len(self.entries) + len(self.whiteouts) + len(self.opaque)
