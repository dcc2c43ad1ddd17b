"""The layer tar writer: a change set and the rootfs in, a deterministic tar stream out.

Our own loop rather than ``TarFile.add`` (7-10x slower: 16 KiB copies, a pwd/grp
lookup per file). Each entry is one ``lstat``, one ``TarInfo.tobuf`` and its data;
the order, the header fields and the padding depend only on the files, so the same
tree gives the same bytes:

* entries sorted component-wise, parents before children; in a directory the opaque
  marker, then whiteouts, then the rest;
* every parent directory of an entry is written as it is in the rootfs (not the root);
* integer mtimes (optionally clamped), no atime/ctime, no uname/gname; PAX records
  only when a field does not fit ustar, plus ``SCHILY.xattr.*`` for carried xattrs;
* hardlinks grouped by inode: the first name in the layer carries the data, later
  names are link entries pointing at it.

Data moves with ``os.sendfile`` when the sink is a plain file descriptor, else through
one reused 1 MiB buffer, so memory stays flat whatever the layer size.

OS errors come out as :class:`StorageError`: reading the rootfs names the path inside
the image; a full disk under the sink (ENOSPC from the sink, or a :class:`DiskFullError`
from a ``LayerWriter``) says how big the layer is uncompressed.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import struct
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Final, Protocol

from pykaniko.errors import DiskFullError, StorageError
from pykaniko.snapshot.changes import ChangeSet
from pykaniko.snapshot.entrymeta import xattr_carried

__all__ = ["LayerSink", "write_layer"]

_BLOCK: Final = 1 << 20
_ZEROS: Final = bytes(_BLOCK)
_OPAQUE: Final = ".wh..wh..opq"

# Kinds of rows, in the order they sort within one directory.
_K_OPAQUE: Final = 0
_K_WHITEOUT: Final = 1
_K_ENTRY: Final = 2


def _sort_key(path: str, kind: int) -> str:
    """Component-wise order: '/' maps below every name character, markers lead."""
    key = path.replace("/", "\x00")
    if kind == _K_OPAQUE:
        return key + "\x00\x01"
    if kind == _K_WHITEOUT:
        head, _, name = key.rpartition("\x00")
        return head + "\x00\x02" + name
    return key


def _ancestors(path: str) -> Iterable[str]:
    p = path.rpartition("/")[0]
    while p:
        yield p
        p = p.rpartition("/")[0]


class LayerSink(Protocol):
    """Where a layer goes: a file, a pipe, a ``LayerWriter`` (hashing + compressing)."""

    def write(self, data: bytes | bytearray | memoryview, /) -> int: ...

    def flush(self) -> None: ...


def _fileno(sink: LayerSink) -> int | None:
    """The sink's descriptor when data may bypass Python (plain files and pipes)."""
    if not isinstance(sink, io.FileIO | io.BufferedWriter):
        return None
    try:
        return sink.fileno()
    except (OSError, ValueError):
        return None


_USTAR: Final = struct.Struct("100s8s8s8s12s12s8sc100s8s32s32s8s8s155s12x")
_MAGIC: Final = b"ustar\x0000"
_MAGIC_SUM: Final = sum(_MAGIC) + 8 * 32  # plus the checksum field read as spaces
_MAX7: Final = 8**7
_MAX11: Final = 8**11


def _ustar(
    name: str,
    *,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    typ: bytes,
    link: str,
    major: int,
    minor: int,
) -> bytes | None:
    """A plain ustar header, byte-identical to ``TarInfo.tobuf(PAX_FORMAT)`` for the
    entries that need no PAX record; None when one is needed (long or non-ASCII names,
    big ids, sizes or times). Five times faster than ``tobuf``, which matters at 100k
    entries."""
    if not (0 <= mtime < _MAX11 and uid < _MAX7 and gid < _MAX7 and size < _MAX11):
        return None
    if major >= _MAX7 or minor >= _MAX7:
        return None
    if len(name) > 100 or len(link) > 100 or not name.isascii() or not link.isascii():
        return None
    bname = name.encode("ascii")
    blink = link.encode("ascii")
    nums = b"%07o\0%07o\0%07o\0%011o\0%011o\0" % (mode, uid, gid, size, mtime)
    dev = b"%07o\0%07o\0" % (major, minor) if major >= 0 else b""
    chk = sum(bname) + sum(nums) + typ[0] + sum(blink) + _MAGIC_SUM + sum(dev)
    return _USTAR.pack(
        bname,
        nums[0:8],
        nums[8:16],
        nums[16:24],
        nums[24:36],
        nums[36:48],
        b"%06o\0 " % chk,
        typ,
        blink,
        _MAGIC,
        b"",
        b"",
        dev[0:8],
        dev[8:16],
        b"",
    )


def write_layer(
    changes: ChangeSet, root: Path, sink: LayerSink, *, mtime_clamp: int | None = None
) -> int:
    """Write ``changes`` as an uncompressed tar into ``sink``; return the entry count.

    0 means "no layer": nothing at all was written. ``mtime_clamp`` (``--reproducible``:
    SOURCE_DATE_EPOCH or 0) caps every mtime. Paths that vanished since the diff are
    left out.
    """
    if changes.is_empty:
        return 0
    rows: dict[str, tuple[int, str]] = {}
    for p in changes.entries:
        rows[_sort_key(p, _K_ENTRY)] = (_K_ENTRY, p)
    for d in changes.opaque:
        rows[_sort_key(d, _K_ENTRY)] = (_K_ENTRY, d)
        rows[_sort_key(d, _K_OPAQUE)] = (_K_OPAQUE, d)
    for p in changes.whiteouts:
        rows[_sort_key(p, _K_WHITEOUT)] = (_K_WHITEOUT, p)
    parents: set[str] = set()
    for _, p in list(rows.values()):
        for a in _ancestors(p):
            if a in parents:
                break
            parents.add(a)
    for a in parents:
        rows.setdefault(_sort_key(a, _K_ENTRY), (_K_ENTRY, a))
    writer = _Writer(str(root).rstrip("/"), sink, mtime_clamp)
    try:
        for k in sorted(rows):
            kind, p = rows[k]
            if kind == _K_ENTRY:
                writer.entry(p)
            elif kind == _K_WHITEOUT:
                head, _, name = p.rpartition("/")
                writer.marker(f"{head}/.wh.{name}")
            else:
                writer.marker(f"{p}/{_OPAQUE}")
        writer.current = ""
        if writer.count:
            sink.write(bytes(2 * tarfile.BLOCKSIZE))
    except DiskFullError as e:
        raise _disk_full(e.errno, rows.values(), writer.root) from e
    except StorageError:
        raise
    except OSError as e:
        if e.errno in _SINK_FULL:
            raise _disk_full(e.errno, rows.values(), writer.root) from e
        path = writer.current
        op = "write layer: read" if path else "write layer"
        raise StorageError.from_os(e, operation=op, path=path) from e
    return writer.count


_SINK_FULL: Final = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def _disk_full(code: int | None, rows: Iterable[tuple[int, str]], root: str) -> StorageError:
    """A full disk under the layer being written: how big the layer is."""
    code = errno.ENOSPC if code is None else code
    return StorageError.from_os(
        OSError(code, os.strerror(code)),
        operation="write layer",
        needed=_planned(rows, root),
        detail="the layer before compression",
    )


def _planned(rows: Iterable[tuple[int, str]], root: str) -> int:
    """The uncompressed size of the whole layer (headers, data, padding): a second
    pass of lstat, only ever made after a write failed."""
    total = 2 * tarfile.BLOCKSIZE
    for kind, p in rows:
        total += tarfile.BLOCKSIZE
        if kind != _K_ENTRY:
            continue
        try:
            st = os.lstat(root + p)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            total += st.st_size + (-st.st_size % tarfile.BLOCKSIZE)
    return total


class _Writer:
    """Header and data emission for one layer."""

    def __init__(self, root: str, sink: LayerSink, clamp: int | None) -> None:
        self.root = root
        self.sink = sink
        self.clamp = clamp
        self.count = 0
        self.links: dict[tuple[int, int], str] = {}
        self.fd = _fileno(sink)
        self.buf = bytearray(_BLOCK)
        self.current = ""  # the entry being written, for error messages

    def _header(self, info: tarfile.TarInfo) -> None:
        self.sink.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
        self.count += 1

    def marker(self, path: str) -> None:
        self.current = ""
        info = tarfile.TarInfo(path.lstrip("/"))
        info.mode = 0
        info.mtime = 0
        self._header(info)

    def entry(self, path: str) -> None:
        self.current = path
        host = self.root + path
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            return
        m = st.st_mode
        name = path[1:]
        link = ""
        major = minor = -1
        size = 0
        if stat.S_ISREG(m):
            typ = tarfile.REGTYPE
            if st.st_nlink > 1:
                ident = (st.st_dev, st.st_ino)
                first = self.links.get(ident)
                if first is not None:
                    typ, link = tarfile.LNKTYPE, first
                else:
                    self.links[ident] = name
            if typ == tarfile.REGTYPE:
                size = st.st_size
        elif stat.S_ISDIR(m):
            typ = tarfile.DIRTYPE
            name += "/"
        elif stat.S_ISLNK(m):
            typ = tarfile.SYMTYPE
            link = os.readlink(host)
        elif stat.S_ISFIFO(m):
            typ = tarfile.FIFOTYPE
        elif stat.S_ISCHR(m) or stat.S_ISBLK(m):
            typ = tarfile.CHRTYPE if stat.S_ISCHR(m) else tarfile.BLKTYPE
            major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
        else:
            return  # sockets are runtime state, never image content
        mtime = st.st_mtime_ns // 1_000_000_000
        if self.clamp is not None:
            mtime = min(mtime, self.clamp)
        xattrs = self._xattrs(host) if typ != tarfile.LNKTYPE else None
        header = None
        if not xattrs:
            header = _ustar(
                name,
                mode=m & 0o7777,
                uid=st.st_uid,
                gid=st.st_gid,
                size=size,
                mtime=mtime,
                typ=typ,
                link=link,
                major=major,
                minor=minor,
            )
        if header is None:
            info = tarfile.TarInfo(name)
            info.mode = m & 0o7777
            info.uid, info.gid, info.size, info.mtime = st.st_uid, st.st_gid, size, mtime
            info.type, info.linkname = typ, link
            if major >= 0:
                info.devmajor, info.devminor = major, minor
            if xattrs:
                info.pax_headers = xattrs
            header = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        if size:
            fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                self.sink.write(header)
                self.count += 1
                self._data(fd, size)
            finally:
                os.close(fd)
        else:
            self.sink.write(header)
            self.count += 1

    def _xattrs(self, host: str) -> dict[str, str] | None:
        try:
            names = os.listxattr(host, follow_symlinks=False)
        except OSError:
            return None
        if not names:
            return None
        records: dict[str, str] = {}
        for name in sorted(n for n in names if xattr_carried(n)):
            try:
                value = os.getxattr(host, name, follow_symlinks=False)
            except OSError:
                continue
            records["SCHILY.xattr." + name] = value.decode("utf-8", "surrogateescape")
        return records

    def _data(self, fd: int, size: int) -> None:
        """Exactly ``size`` bytes (zeros if the file shrank meanwhile), then padding."""
        left = size
        if self.fd is not None:
            self.sink.flush()
            offset = 0
            while left:
                n = os.sendfile(self.fd, fd, offset, min(left, 1 << 30))
                if n == 0:
                    break
                offset += n
                left -= n
        else:
            buf = self.buf
            view = memoryview(buf)
            while left:
                n = os.readv(fd, [view[: min(left, _BLOCK)]])
                if n == 0:
                    break
                self.sink.write(view[:n])
                left -= n
        while left:
            n = min(left, _BLOCK)
            self.sink.write(_ZEROS[:n])
            left -= n
        pad = -size % tarfile.BLOCKSIZE
        if pad:
            self.sink.write(_ZEROS[:pad])
