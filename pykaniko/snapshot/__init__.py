"""Filesystem snapshots: rootfs walk, change sets, layer tars, safe extraction.

May import only the stdlib, ``xxhash``, ``pykaniko.errors`` and ``pykaniko.image``.

Which mode sees which change (a baseline taken, then the change made; "yes" means the
path lands in the next layer):

============================================  =====  =====  =====  =====
change                                        time   redo   stat   full
============================================  =====  =====  =====  =====
new / deleted path (whiteout)                 yes    yes    yes    yes
directory deleted and re-created (opaque)     yes    yes    yes    yes
content rewrite that moves mtime              yes    yes    yes    yes
content rewrite, size kept, mtime restored    no     no     yes    yes
``touch -d`` (mtime only)                     yes    yes    yes    yes
``cp -p`` of other same-size content          no     no     yes    yes
chmod / chown                                 no     yes    yes    yes
xattr change (security.capability)            no     no     yes    yes
xattr change (user.*)                         no     no     yes    no
new hardlink to an existing file              both   both   both   both
symlink retarget, mtime and length restored   no     no     yes    yes
============================================  =====  =====  =====  =====

* ``time``: mtime only (Kaniko's ``time``).
* ``redo``: (mode, uid, gid, size, mtime), no content reads (Kaniko's ``redo``).
* ``stat``: ours: (dev, inode, ctime_ns, mtime_ns). The kernel moves ctime on every
  inode change and user space cannot set it, so every rewrite that restores mtime is
  still seen, at the cost of a stat walk.
* ``full``: content hash (xxh3-128) plus mode, owner, size, mtime, symlink target and
  ``security.capability`` (Kaniko's default). It re-reads a file only when its stat
  tuple moved: an unchanged tuple (ctime included) means unchanged content.

Directory identity (device, inode) is kept in every mode, so a replaced directory is
always an opaque whiteout. The limit of every stat-based mode (``stat`` included): a
same-size rewrite inside the same kernel timestamp tick as the previous change leaves
mtime and ctime equal; only ``full`` sees it. "both" in the hardlink row: a new link
to a file of a lower layer brings the file's other names into the layer as one
hardlink group, as overlayfs copy-up does under Docker.

The baseline comes from extraction (:meth:`Snapshotter.extract`), so deleting a base
image file always gives a whiteout, whatever the mode; ``diff`` advances it, which is
all ``--single-snapshot`` needs (one ``diff()`` at the end of the stage).
"""

from __future__ import annotations

from pykaniko.snapshot.changes import ChangeSet
from pykaniko.snapshot.extract import ExtractReport, ExtractResult, extract_layer
from pykaniko.snapshot.ignore import ALWAYS_IGNORED, IgnoreList, build_ignore_list, mount_points
from pykaniko.snapshot.modes import SnapshotMode
from pykaniko.snapshot.snapshotter import Snapshotter
from pykaniko.snapshot.tarwriter import LayerSink, write_layer

__all__ = [
    "ALWAYS_IGNORED",
    "ChangeSet",
    "ExtractReport",
    "ExtractResult",
    "IgnoreList",
    "LayerSink",
    "SnapshotMode",
    "Snapshotter",
    "build_ignore_list",
    "extract_layer",
    "mount_points",
    "write_layer",
]
