"""Safe layer extraction: apply an uncompressed layer tar onto a rootfs.

Nothing a layer says can touch a path outside the root:

* a name with a ``..`` component, NUL byte, an id above 2^32-2, a hardlink whose target
  is absolute or climbs with ``..``, or a whiteout of ``.``/``..`` is *refused*
  (:class:`UnsafeLayerError`);
* absolute names are *contained* (made relative, with a warning);
* symlinks are *contained*: every parent component of a name is resolved inside the
  root, absolute link targets taken relative to it and ``..`` stopping at it
  (securejoin-style), so writing through ``link -> /etc`` lands in ``ROOT/etc``. The
  last component is never followed: an existing symlink there is replaced.

Whiteouts and opaque whiteouts apply to lower layers only (paths this layer created
survive them); ignored paths are neither written nor removed. Ownership, modes
(setuid after chown), the xattrs we carry, device nodes (when mknod is permitted) and
mtimes (directories last) are restored. Memory is flat: members are forgotten as soon
as they are applied and file data moves in 1 MiB blocks.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Final, cast

import xxhash

from pykaniko.errors import SnapshotError, UnsafeLayerError
from pykaniko.snapshot.ignore import IgnoreList

__all__ = ["ExtractReport", "ExtractResult", "extract_layer", "xattr_carried"]

_BLOCK: Final = 1 << 20
_MAX_ID: Final = 2**32 - 2  # 2^32-1 means "leave unchanged" to chown(2)
_MAX_HOPS: Final = 40
_OPAQUE: Final = ".wh..wh..opq"
_WH: Final = ".wh."
_XATTR: Final = "SCHILY.xattr."


def xattr_carried(name: str) -> bool:
    """The xattrs layers carry: file capabilities plus the user and trusted namespaces."""
    return name == "security.capability" or name.startswith(("user.", "trusted."))


@dataclass(frozen=True, slots=True)
class ExtractReport:
    """What one extraction did, for logs."""

    what: str
    entries: int
    whiteouts: int
    skipped: int
    bytes: int
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ExtractResult:
    """The report plus what the snapshotter needs to seed its baseline."""

    report: ExtractReport
    touched: frozenset[str]
    removed: frozenset[str]
    hashes: Mapping[str, int] = field(default_factory=dict)


def extract_layer(
    stream: BinaryIO,
    root: Path,
    *,
    ignore: IgnoreList,
    what: str = "layer",
    hashes: bool = False,
    select: Callable[[str], bool] | None = None,
) -> ExtractResult:
    """Apply the tar in ``stream`` onto ``root`` and read ``stream`` to its end.

    Draining matters: :func:`pykaniko.image.layerfile.open_uncompressed` checks the
    blob digest only at EOF. ``hashes`` asks for xxh3-128 of every regular file
    written (``full`` mode seeds its baseline with them). ``select``, when given, is
    asked for every file, FIFO and device (by its rootfs path, parents resolved) and
    only those it accepts are written; directories, symlinks, hardlinks to written
    files and whiteouts always are, so a partial tree still resolves its paths
    (``COPY --from=<image>`` needs a few files, not the whole image).
    """
    return _Extractor(root, ignore, what, hashes, select).run(stream)


class _Extractor:
    """One layer's extraction state; used once."""

    def __init__(
        self,
        root: Path,
        ignore: IgnoreList,
        what: str,
        hashes: bool,
        select: Callable[[str], bool] | None = None,
    ) -> None:
        self.root = os.path.abspath(root).rstrip("/")
        self.ignore = ignore
        self.select = select
        self.what = what
        self.want_hashes = hashes
        self.touched: set[str] = set()
        self.removed: set[str] = set()
        self.created: set[str] = set()
        self.hashes: dict[str, int] = {}
        self.dir_times: list[tuple[str, int]] = []
        self.warnings: list[str] = []
        self.cache: dict[str, str] = {}
        self.entries = 0
        self.whiteouts = 0
        self.skipped = 0
        self.bytes = 0
        self.chown_ok = True
        self.buf = bytearray(_BLOCK)

    # -- driver ----------------------------------------------------------------------

    def run(self, stream: BinaryIO) -> ExtractResult:
        try:
            tf = tarfile.open(fileobj=stream, mode="r|", errors="surrogateescape")  # noqa: SIM115
        except tarfile.TarError as e:
            raise SnapshotError(f"{self.what}: not a tar stream: {e}") from e
        try:
            while True:
                member = tf.next()
                if member is None:
                    break
                self._member(tf, member)
                tf.members.clear()  # type: ignore[attr-defined]  # tarfile keeps every header otherwise
        except tarfile.TarError as e:
            raise SnapshotError(f"{self.what}: broken tar stream: {e}") from e
        except ValueError as e:  # NUL bytes and the like in names or link targets
            raise UnsafeLayerError(f"{self.what}: malformed entry: {e}") from e
        except OSError as e:
            if isinstance(e, SnapshotError):
                raise
            raise SnapshotError(f"{self.what}: extraction failed: {e}") from e
        self._dir_times()
        while stream.read(_BLOCK):
            pass
        report = ExtractReport(
            what=self.what,
            entries=self.entries,
            whiteouts=self.whiteouts,
            skipped=self.skipped,
            bytes=self.bytes,
            warnings=tuple(self.warnings),
        )
        return ExtractResult(
            report=report,
            touched=frozenset(self.touched),
            removed=frozenset(self.removed),
            hashes=self.hashes,
        )

    def _warn(self, text: str) -> None:
        self.warnings.append(f"{self.what}: {text}")

    def _parts(self, name: str) -> list[str]:
        if "\x00" in name:
            raise UnsafeLayerError(f"{self.what}: entry name {name!r} holds a NUL byte")
        if name.startswith("/") and name.strip("/"):
            self._warn(f"absolute name {name!r} taken relative to the root")
        parts = [c for c in name.split("/") if c and c != "."]
        if ".." in parts:
            raise UnsafeLayerError(
                f"{self.what}: entry {name!r} climbs out of the root with '..'",
                hint="the layer is malformed or malicious",
            )
        return parts

    def _member(self, tf: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        parts = self._parts(m.name)
        if not parts:
            return  # the root itself: its owner and mode are the builder's
        name = parts[-1]
        if name.startswith(_WH):
            self._whiteout(parts)
            return
        if self.ignore.ignored("/" + "/".join(parts)):
            self.skipped += 1
            return
        if m.uid > _MAX_ID or m.gid > _MAX_ID:
            raise UnsafeLayerError(f"{self.what}: {m.name!r} has uid/gid {m.uid}/{m.gid}")
        parent = self._dir(parts[:-1], create=True)
        assert parent is not None
        rel = parent + "/" + name
        if self.ignore.ignored(rel):
            self.skipped += 1
            return
        partial = self.select is not None and not (m.isdir() or m.issym() or m.islnk())
        if partial and self.select is not None and not self.select(rel):
            self.skipped += 1
            return
        self.hashes.pop(rel, None)  # an earlier entry of this layer at the same path
        if m.isdir():
            self._mkdir(m, rel)
        elif m.isreg():
            self._file(tf, m, rel)
        elif m.issym():
            self._symlink(m, rel)
        elif m.islnk():
            if not self._hardlink(m, rel):
                return
        elif m.isfifo() or m.ischr() or m.isblk():
            if not self._special(m, rel):
                return
        else:
            self._warn(f"{m.name!r}: unsupported entry type {m.type!r} skipped")
            self.skipped += 1
            return
        self.entries += 1
        self.created.add(rel)
        self.touched.add(rel)
        if parent:
            self.touched.add(parent)

    # -- path resolution -------------------------------------------------------------

    def _dir(self, parts: list[str], *, create: bool) -> str | None:
        """Resolve directory ``parts`` inside the root; ``""`` is the root.

        Returns None when ``create`` is false and the directory does not exist.
        """
        key = "/".join(parts)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        cur: list[str] = []
        todo = list(reversed(parts))
        hops = 0
        while todo:
            c = todo.pop()
            if c in ("", "."):
                continue
            if c == "..":
                if cur:
                    cur.pop()
                continue
            rel = "/" + "/".join([*cur, c])
            host = self.root + rel
            try:
                st = os.lstat(host)
            except FileNotFoundError:
                if not create:
                    return None
                os.mkdir(host, 0o755)
                self.touched.add(rel)
                self.created.add(rel)
                cur.append(c)
                continue
            if stat.S_ISLNK(st.st_mode):
                hops += 1
                if hops > _MAX_HOPS:
                    raise UnsafeLayerError(f"{self.what}: too many symlinks below /{key}")
                target = os.readlink(host)
                if target.startswith("/"):
                    cur = []
                todo.extend(reversed(target.split("/")))
                continue
            if stat.S_ISDIR(st.st_mode):
                cur.append(c)
                continue
            if not create:
                return None
            raise SnapshotError(f"{self.what}: {rel} is not a directory but /{key} needs one")
        out = "/" + "/".join(cur) if cur else ""
        self.cache[key] = out
        return out

    # -- removal ---------------------------------------------------------------------

    def _whiteout(self, parts: list[str]) -> None:
        name = parts[-1]
        parent = self._dir(parts[:-1], create=False)
        if name == _OPAQUE:
            self.whiteouts += 1
            if parent is not None:
                self._opaque(parent)
            return
        target = name[len(_WH) :]
        if target in ("", ".", "..") or target.startswith(_WH):
            raise UnsafeLayerError(f"{self.what}: bad whiteout {'/'.join(parts)!r}")
        self.whiteouts += 1
        if parent is None:
            return
        rel = parent + "/" + target
        if self.ignore.ignored("/" + "/".join([*parts[:-1], target])) or self.ignore.ignored(rel):
            self.skipped += 1
            return
        if rel in self.created:
            return  # a whiteout hides lower layers only
        self._remove(rel)

    def _opaque(self, d: str) -> None:
        try:
            names = os.listdir(self.root + d if d else self.root or "/")
        except OSError:
            return
        for n in names:
            rel = d + "/" + n
            if rel in self.created or self.ignore.ignored(rel):
                continue
            self._remove(rel)

    def _remove(self, rel: str) -> bool:
        """Remove ``rel`` (a subtree when a directory) except ignored paths below it."""
        host = self.root + rel
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            return False
        parent = rel.rpartition("/")[0]
        if parent:
            self.touched.add(parent)
        self.removed.add(rel)
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(host)
            if stat.S_ISLNK(st.st_mode):
                self.cache.clear()
            return True
        self.cache.clear()
        blocked: set[str] = set()
        stack: list[tuple[str, bool]] = [(rel, False)]
        while stack:
            d, done = stack.pop()
            if done:
                if d in blocked:
                    blocked.add(d.rpartition("/")[0])
                else:
                    os.rmdir(self.root + d)
                continue
            stack.append((d, True))
            with os.scandir(self.root + d) as it:
                for e in it:
                    c = d + "/" + e.name
                    if self.ignore.ignored(c):
                        blocked.add(d)
                    elif e.is_dir(follow_symlinks=False):
                        stack.append((c, False))
                    else:
                        os.unlink(self.root + c)
        if rel in blocked:
            self._warn(f"{rel} kept: it holds ignored paths")
        return True

    def _clear(self, rel: str) -> None:
        """Make room for a new non-directory entry at ``rel``."""
        host = self.root + rel
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            self._remove(rel)
        else:
            os.unlink(host)
            if stat.S_ISLNK(st.st_mode):
                self.cache.clear()

    # -- entries ---------------------------------------------------------------------

    def _mkdir(self, m: tarfile.TarInfo, rel: str) -> None:
        host = self.root + rel
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            os.mkdir(host, 0o700)
        else:
            if not stat.S_ISDIR(st.st_mode):
                os.unlink(host)
                self.cache.clear()
                os.mkdir(host, 0o700)
        self._owner_mode(host, m)
        self._xattrs(host, m)
        self.dir_times.append((rel, _mtime_ns(m)))

    def _file(self, tf: tarfile.TarFile, m: tarfile.TarInfo, rel: str) -> None:
        host = self.root + rel
        self._clear(rel)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(host, flags, 0o600)
        try:
            src = tf.extractfile(m)
            h = xxhash.xxh3_128() if self.want_hashes else None
            if src is not None and m.sparse:
                # only the data segments are written; the holes stay holes (a 10 KB
                # sparse member can claim a terabyte)
                self._sparse(tf, fd, m, h)
                src = None
            if src is not None:
                reader = cast("io.BufferedReader", src)  # tarfile's ExFileObject
                buf = self.buf
                view = memoryview(buf)
                while n := reader.readinto(buf):
                    chunk = view[:n]
                    done = 0
                    while done < n:
                        done += os.write(fd, chunk[done:])
                    if h is not None:
                        h.update(chunk)
                    self.bytes += n
            if h is not None:
                self.hashes[rel] = int(h.intdigest())
            self._owner_mode(fd, m)
            self._xattrs(fd, m)
            self._utime(fd, m)
        finally:
            os.close(fd)

    def _sparse(self, tf: tarfile.TarFile, fd: int, m: tarfile.TarInfo, h: Any | None) -> None:
        """A sparse member: its data segments are stored one after another right where
        the stream stands; each is written at its offset, the holes stay holes."""
        raw = cast(BinaryIO, tf.fileobj)
        end = 0
        segments: list[tuple[int, int]] = list(m.sparse or ())  # type: ignore[arg-type]
        for offset, size in segments:
            done = 0
            while done < size:
                block = raw.read(min(size - done, _BLOCK))
                if not block:
                    raise SnapshotError(f"{self.what}: sparse member {m.name!r} is cut short")
                os.pwrite(fd, block, offset + done)
                done += len(block)
                self.bytes += len(block)
            end = max(end, offset + size)
        os.ftruncate(fd, max(m.size, end))
        if h is not None:  # the fingerprint covers the holes, as reading the file would
            with open(os.dup(fd), "rb") as whole:
                while block := whole.read(_BLOCK):
                    h.update(block)

    def _symlink(self, m: tarfile.TarInfo, rel: str) -> None:
        host = self.root + rel
        self._clear(rel)
        os.symlink(m.linkname, host)
        self.cache.clear()
        self._chown(host, m)
        self._xattrs(host, m)
        self._utime(host, m)

    def _hardlink(self, m: tarfile.TarInfo, rel: str) -> bool:
        link = m.linkname
        if "\x00" in link or link.startswith("/"):
            raise UnsafeLayerError(f"{self.what}: hardlink {m.name!r} -> {link!r} leaves the root")
        parts = [c for c in link.split("/") if c and c != "."]
        if not parts or ".." in parts:
            raise UnsafeLayerError(f"{self.what}: hardlink {m.name!r} -> {link!r} leaves the root")
        parent = self._dir(parts[:-1], create=False)
        target = None if parent is None else parent + "/" + parts[-1]
        if target is None or self.ignore.ignored(target):
            self._warn(f"hardlink {m.name!r} -> {link!r}: target missing or ignored, skipped")
            self.skipped += 1
            return False
        if target == rel:
            return True
        try:
            st = os.lstat(self.root + target)
        except FileNotFoundError:
            st = None
        if st is None or stat.S_ISDIR(st.st_mode):
            self._warn(f"hardlink {m.name!r} -> {link!r}: no such file, skipped")
            self.skipped += 1
            return False
        self._clear(rel)
        os.link(self.root + target, self.root + rel, follow_symlinks=False)
        if target in self.hashes:
            self.hashes[rel] = self.hashes[target]
        return True

    def _special(self, m: tarfile.TarInfo, rel: str) -> bool:
        host = self.root + rel
        self._clear(rel)
        if m.isfifo():
            os.mkfifo(host, 0o600)
        else:
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            try:
                os.mknod(host, kind | 0o600, os.makedev(m.devmajor, m.devminor))
            except PermissionError:
                self._warn(f"device {m.name!r} skipped: mknod not permitted")
                self.skipped += 1
                return False
        self._owner_mode(host, m)
        self._xattrs(host, m)
        self._utime(host, m)
        return True

    # -- metadata --------------------------------------------------------------------

    def _chown(self, target: str | int, m: tarfile.TarInfo) -> bool:
        try:
            if isinstance(target, int):
                os.fchown(target, m.uid, m.gid)
            else:
                os.chown(target, m.uid, m.gid, follow_symlinks=False)
        except PermissionError:
            if self.chown_ok:
                self._warn("cannot change ownership (not root?): files keep the builder's ids")
                self.chown_ok = False
            return False
        return True

    def _owner_mode(self, target: str | int, m: tarfile.TarInfo) -> None:
        mode = m.mode & 0o7777
        if not self._chown(target, m):
            mode &= ~0o6000  # never leave a set-id bit on a file of the wrong owner
        if isinstance(target, int):
            os.fchmod(target, mode)
        else:
            os.chmod(target, mode)

    def _xattrs(self, target: str | int, m: tarfile.TarInfo) -> None:
        for key, value in m.pax_headers.items():
            if not key.startswith(_XATTR):
                continue
            name = key[len(_XATTR) :]
            if not xattr_carried(name):
                self._warn(f"{m.name!r}: xattr {name} not carried")
                continue
            raw = value.encode("utf-8", "surrogateescape")
            try:
                if isinstance(target, int):
                    os.setxattr(target, name, raw)
                else:
                    os.setxattr(target, name, raw, follow_symlinks=False)
            except OSError as e:
                self._warn(f"{m.name!r}: xattr {name} not set: {e.strerror}")

    def _utime(self, target: str | int, m: tarfile.TarInfo) -> None:
        ns = _mtime_ns(m)
        try:
            if isinstance(target, int):
                os.utime(target, ns=(ns, ns))
            else:
                os.utime(target, ns=(ns, ns), follow_symlinks=False)
        except (OverflowError, OSError) as e:
            self._warn(f"{m.name!r}: mtime not set: {e}")

    def _dir_times(self) -> None:
        """Directory mtimes last, deepest first: their contents changed them."""
        for rel, ns in sorted(self.dir_times, key=lambda t: t[0].count("/"), reverse=True):
            try:
                os.utime(self.root + rel, ns=(ns, ns), follow_symlinks=False)
            except FileNotFoundError:
                continue
            except (OverflowError, OSError) as e:
                self._warn(f"{rel}: mtime not set: {e}")


def _mtime_ns(m: tarfile.TarInfo) -> int:
    t = m.mtime
    if isinstance(t, int):
        return t * 1_000_000_000
    return round(float(t) * 1_000_000_000)
