"""Searching layer streams and image metadata for secret values, without ever printing one.

One pass over an uncompressed layer tar finds every secret at once: each chunk is
searched for every pattern (``bytes.find``, C speed), a pattern that straddles two
chunks is found in a small window made of the previous chunk's last ``longest - 1``
bytes and the next chunk's first ones, and a light tar header parser running over the
same bytes tells which member each offset belongs to (its data, or its header: name,
link target, PAX records such as xattrs). Small writes (headers, small files) are
gathered into 256 KiB segments first, so a layer of 100k small files costs about what
one big file does.

What is searched for, per secret value (surrounding whitespace stripped, so a file
``echo``-ed with its newline still matches a ``$(cat ...)`` copy of it):

* the raw bytes;
* its standard base64 encoding, in each of the three alignments a value can have
  inside a longer encoded text (``.npmrc``'s ``_auth``, ``docker login``'s
  ``config.json``): the characters that depend on the value alone. Encoded forms live
  in configuration files, so they are searched in names, headers and files up to
  :data:`ENCODED_MAX_FILE`, not in the data of bigger files: that keeps the cost of a
  500 MB file at one search per secret.

Values shorter than :data:`MIN_SECRET_LENGTH` bytes are not searched (too many false
hits), values longer than :data:`MAX_SECRET_LENGTH` by their first bytes only.
"""

from __future__ import annotations

import base64
import bisect
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Final

from pykaniko.image.digest import CHUNK
from pykaniko.image.layerfile import open_uncompressed

__all__ = [
    "ENCODED_MAX_FILE",
    "MAX_SECRET_LENGTH",
    "MIN_SECRET_LENGTH",
    "Leak",
    "LeakScanner",
    "Secret",
    "mask",
    "mask_patterns",
    "redact",
    "scan_blob",
    "scan_json",
    "scanning_reader",
]

MIN_SECRET_LENGTH: Final = 8
MAX_SECRET_LENGTH: Final = 4096
ENCODED_MAX_FILE: Final = 8 << 20
_SEGMENT: Final = 256 << 10
_MAX_EXT: Final = 1 << 20  # a PAX or GNU long-name record larger than this ends tar tracking
_BLOCK: Final = 512
_STRIP: Final = b" \t\r\n\v\f"
_DATA_TYPES: Final = frozenset(b"0\x0078")  # ustar regular files (and contiguous) carry data
_NO_DATA: Final = frozenset(b"123456")


@dataclass(frozen=True, slots=True)
class Secret:
    """A value the build used, and the words a report names it by (never the value)."""

    label: str
    value: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Leak:
    """Where a secret was found: ``path`` in the image ("" outside a tar), ``where``
    in the entry (``content``, ``name``, ``link target``, ``xattr NAME``, ``tar header``)
    and ``encoding`` (``raw`` or ``base64``)."""

    label: str
    path: str
    where: str = "content"
    encoding: str = "raw"


@dataclass(frozen=True, slots=True)
class _Needle:
    secret: int
    pattern: bytes = field(repr=False)
    encoding: str


def _needles(secrets: Sequence[Secret]) -> list[_Needle]:
    out: list[_Needle] = []
    seen: set[bytes] = set()
    for index, secret in enumerate(secrets):
        value = secret.value.strip(_STRIP)[:MAX_SECRET_LENGTH]
        if len(value) < MIN_SECRET_LENGTH:
            continue
        candidates = [(value, "raw")]
        for before in range(3):  # the value starts ``before`` bytes into a 3-byte group
            skip = (3 - before) % 3
            whole = (len(value) - skip) // 3 * 3
            encoded = base64.b64encode(value[skip : skip + whole])
            if len(encoded) >= MIN_SECRET_LENGTH:
                candidates.append((encoded, "base64"))
        for pattern, encoding in candidates:
            if pattern not in seen:
                seen.add(pattern)
                out.append(_Needle(index, pattern, encoding))
    return out


def redact(text: str, secrets: Sequence[Secret]) -> str:
    """``text`` with every searched form of every secret replaced by ``***`` (paths and
    step texts are printed; the value must never be)."""
    return mask(text, mask_patterns(secrets))


def mask_patterns(secrets: Sequence[Secret]) -> tuple[bytes, ...]:
    """What :func:`mask` replaces: every searched form, longest first (a value inside
    another one's encoding is masked whole). Worth keeping for many lines."""
    return tuple(sorted((n.pattern for n in _needles(secrets)), key=len, reverse=True))


def mask(text: str, patterns: Sequence[bytes]) -> str:
    """``text`` with each of ``patterns`` replaced by ``***``."""
    if not patterns:
        return text
    raw = text.encode("utf-8", "surrogateescape")
    for pattern in patterns:
        raw = raw.replace(pattern, b"***")
    return raw.decode("utf-8", "replace")


@dataclass(slots=True)
class _Member:
    start: int  # first byte of its first header (PAX or GNU records included)
    data: int  # first byte of its data
    end: int  # first byte after its data and padding
    path: str
    link: str
    xattrs: dict[str, str]
    split: bool  # a ustar name made of prefix + name: the raw search cannot see it whole


def _octal(field_: bytes) -> int:
    if field_[:1] in (b"\x80", b"\xff"):  # GNU base-256
        value = int.from_bytes(field_[1:], "big")
        return -value if field_[0] == 0xFF else value
    text = field_.split(b"\0", 1)[0].strip(b" ")
    return int(text, 8) if text else 0


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _pax_records(data: bytes) -> dict[str, str]:
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(data[pos:space])
        except ValueError:
            break
        if length <= 0:
            break
        record = data[space + 1 : pos + length - 1]
        key, _, value = record.partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


def _round(n: int) -> int:
    return (n + _BLOCK - 1) // _BLOCK * _BLOCK


class _TarTracker:
    """Follows the tar structure of a stream fed in order, remembering the members
    still within reach of a pattern, so an offset can be named after its member."""

    def __init__(self) -> None:
        self.cursor = 0  # next byte the parser wants
        self.want = _BLOCK
        self.buf = bytearray()
        self.ext: bytes | None = None  # typeflag of the extension record being read
        self.ext_start = -1
        self.ext_data = 0
        self.pax: dict[str, str] = {}
        self.long_name: str | None = None
        self.long_link: str | None = None
        self.zeros = 0
        self.done = False
        self.members: list[_Member] = []
        self.starts: list[int] = []

    @property
    def unresolved(self) -> int:
        """Offsets from here on may belong to a member whose header is not read yet."""
        if self.ext_start >= 0:
            return self.ext_start
        if self.buf:
            return self.cursor - len(self.buf)
        return 1 << 62

    def feed(self, seg: bytes, off: int) -> Iterator[_Member]:
        """Consume ``seg`` (at absolute ``off``); yields each member whose header ends
        in it and whose name the raw search cannot see whole."""
        end = off + len(seg)
        while not self.done and self.cursor < end:
            rel = self.cursor - off
            take = seg[rel : rel + self.want]
            self.buf += take
            self.cursor += len(take)
            self.want -= len(take)
            if self.want:
                break
            block = bytes(self.buf)
            self.buf.clear()
            if self.ext is None:
                member = self._header(block, self.cursor - _BLOCK)
                if member is not None and member.split:
                    yield member
            else:
                self._extension(block)

    def _header(self, block: bytes, at: int) -> _Member | None:
        self.want = _BLOCK
        if block.count(0) == _BLOCK:
            self.zeros += 1
            self.done = self.zeros >= 2
            return None
        self.zeros = 0
        try:
            size = _octal(block[124:136])
        except ValueError:
            self.done = True  # not a tar (or a broken one): raw search only from here
            return None
        typ = block[156]
        start = self.ext_start if self.ext_start >= 0 else at
        if typ in b"xgLK":
            if not 0 <= size <= _MAX_EXT:
                self.done = True
                return None
            self.ext = bytes([typ])
            self.ext_start = start
            self.ext_data = at + _BLOCK
            self.want = size
            if size == 0:
                self.ext = None
            return None
        name = _text(block[0:100])
        split = block[257:262] == b"ustar" and block[345] != 0
        if split:
            name = _text(block[345:500]) + "/" + name
        link = _text(block[157:257])
        pax = self.pax
        path = pax.get("path", self.long_name or name)
        target = pax.get("linkpath", self.long_link or link)
        if "size" in pax:
            try:
                size = int(pax["size"])
            except ValueError:
                self.done = True
        xattrs = {k[13:]: v for k, v in pax.items() if k.startswith("SCHILY.xattr.")}
        has_data = typ in _DATA_TYPES or typ not in _NO_DATA
        self.cursor = at + _BLOCK + (_round(size) if has_data and size > 0 else 0)
        split = split and "path" not in pax and self.long_name is None
        member = _Member(start, at + _BLOCK, self.cursor, _image_path(path), target, xattrs, split)
        self.members.append(member)
        self.starts.append(start)
        self.pax, self.long_name, self.long_link, self.ext_start = {}, None, None, -1
        return member

    def _extension(self, data: bytes) -> None:
        kind, self.ext = self.ext, None
        if kind == b"x":
            self.pax.update(_pax_records(data))
        elif kind == b"L":
            self.long_name = _text(data)
        elif kind == b"K":
            self.long_link = _text(data)
        self.cursor = self.ext_data + _round(len(data))
        self.want = _BLOCK

    def member_at(self, offset: int) -> _Member | None:
        i = bisect.bisect_right(self.starts, offset) - 1
        return self.members[i] if i >= 0 else None

    def forget_before(self, offset: int) -> None:
        """Drop members that end before ``offset`` (keep the one containing it)."""
        i = bisect.bisect_right(self.starts, offset) - 1
        if i > 64:
            del self.members[:i], self.starts[:i]


def _image_path(name: str) -> str:
    name = name.removeprefix("./").rstrip("/")
    return "/" + name.lstrip("/") if name not in ("", ".") else "/"


class LeakScanner:
    """A binary sink that searches what is written to it for ``secrets``.

    ``tar=True`` names each leak after the tar member it is in; without it (a config,
    a plain blob) leaks have an empty path. Feed it in order, then :meth:`close`.
    """

    def __init__(
        self, secrets: Sequence[Secret], *, tar: bool = True, segment: int = _SEGMENT
    ) -> None:
        self._segment_size = segment
        self.secrets = tuple(secrets)
        self._needles = _needles(self.secrets)
        self._overlap = max((len(n.pattern) for n in self._needles), default=1) - 1
        self._tar = _TarTracker() if tar else None
        self._offset = 0
        self._tail = b""
        self._pending = bytearray()
        self._found: dict[tuple[int, str], Leak] = {}
        self._deferred: list[tuple[_Needle, int]] = []

    @property
    def active(self) -> bool:
        """Whether anything is searched at all (no secret long enough: nothing)."""
        return bool(self._needles)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        n = len(data)
        if not self._needles:
            return n
        if n >= self._segment_size:
            if self._pending:
                self._segment(bytes(self._pending))
                self._pending.clear()
            self._segment(data if isinstance(data, bytes) else bytes(data))
        else:
            self._pending += data
            if len(self._pending) >= self._segment_size:
                self._segment(bytes(self._pending))
                self._pending.clear()
        return n

    def flush(self) -> None:
        """Nothing to do: pending bytes are searched at :meth:`close`."""

    def close(self) -> list[Leak]:
        """Search what is still pending; every leak found, in the order found."""
        if self._pending:
            self._segment(bytes(self._pending))
            self._pending.clear()
        if self._deferred:
            self._resolve(1 << 62)
        return list(self._found.values())

    @property
    def leaks(self) -> list[Leak]:
        return list(self._found.values())

    def _segment(self, seg: bytes) -> None:
        off = self._offset
        tracker = self._tar
        if tracker is not None:
            for member in tracker.feed(seg, off):
                self._check_member(member)
            if self._deferred:
                self._resolve(tracker.unresolved)
        needles = self._needles
        encoded_ranges = self._encoded_ranges(off, len(seg))
        for needle in needles:
            ranges = encoded_ranges if needle.encoding != "raw" else ((0, len(seg)),)
            for start, stop in ranges:
                pos = seg.find(needle.pattern, start, stop)
                while pos >= 0:
                    skip_to = self._hit(needle, off + pos)
                    pos = seg.find(needle.pattern, max(pos + 1, skip_to - off), stop)
        tail = self._tail
        if tail:
            window = tail + seg[: self._overlap]
            cut = len(tail)
            for needle in needles:
                pos = window.find(needle.pattern, max(0, cut - len(needle.pattern) + 1))
                while 0 <= pos < cut:
                    self._hit(needle, off - cut + pos)
                    pos = window.find(needle.pattern, pos + 1)
        keep = self._overlap
        if len(seg) >= keep:
            self._tail = seg[len(seg) - keep :] if keep else b""
        else:
            self._tail = (tail + seg)[-keep:]
        self._offset = off + len(seg)
        if tracker is not None:
            oldest = min([self._offset - keep, tracker.unresolved, *(o for _, o in self._deferred)])
            tracker.forget_before(oldest)

    def _encoded_ranges(self, off: int, size: int) -> list[tuple[int, int]]:
        """The parts of a segment searched for encoded forms: all but the data of
        files larger than :data:`ENCODED_MAX_FILE` (relative offsets)."""
        tracker = self._tar
        if tracker is None or not tracker.members:
            return [(0, size)]
        end = off + size
        i = max(0, bisect.bisect_right(tracker.starts, off) - 1)
        out: list[tuple[int, int]] = []
        pos = off
        for member in tracker.members[i:]:
            if member.start >= end:
                break
            if member.end - member.data <= ENCODED_MAX_FILE:
                continue
            lo, hi = max(member.data, off), min(member.end, end)
            if lo < hi:
                if pos < lo:
                    out.append((pos - off, lo - off))
                pos = hi
        if pos < end:
            out.append((pos - off, size))
        return out

    def _hit(self, needle: _Needle, offset: int) -> int:
        """Record a hit; the offset the search of this pattern may go on from (one
        leak per secret and member is enough: the rest of the member is skipped)."""
        tracker = self._tar
        if tracker is None:
            self._record(needle, "", "content")
            return offset + 1
        if offset >= tracker.unresolved:  # its member's header is still being read
            self._deferred.append((needle, offset))
            return offset + 1
        return self._attribute(needle, offset)

    def _attribute(self, needle: _Needle, offset: int) -> int:
        assert self._tar is not None
        member = self._tar.member_at(offset)
        if member is None:
            self._record(needle, "", "tar header")
            return offset + 1
        if offset >= member.end:
            self._record(needle, member.path, "tar padding")
            return offset + 1
        if offset >= member.data:
            self._record(needle, member.path, "content")
            return member.end
        self._record(needle, member.path, self._header_part(needle, member))
        return offset + 1

    def _resolve(self, limit: int) -> None:
        waiting = self._deferred
        self._deferred = [(n, o) for n, o in waiting if o >= limit]
        for needle, offset in waiting:
            if offset < limit:
                self._attribute(needle, offset)

    @staticmethod
    def _header_part(needle: _Needle, member: _Member) -> str:
        pattern = needle.pattern
        if pattern in member.path.encode("utf-8", "surrogateescape"):
            return "name"
        if pattern in member.link.encode("utf-8", "surrogateescape"):
            return "link target"
        for name, value in member.xattrs.items():
            if pattern in value.encode("utf-8", "surrogateescape"):
                return f"xattr {name}"
            if pattern in name.encode("utf-8", "surrogateescape"):
                return "xattr name"
        return "tar header"

    def _check_member(self, member: _Member) -> None:
        """Fields the raw search can miss: a ustar name split into prefix and name."""
        path = member.path.encode("utf-8", "surrogateescape")
        for needle in self._needles:
            if needle.pattern in path:
                self._record(needle, member.path, "name")

    def _record(self, needle: _Needle, path: str, where: str) -> None:
        key = (needle.secret, path)
        if key not in self._found:
            label = self.secrets[needle.secret].label
            self._found[key] = Leak(label, path, where, needle.encoding)


def scan_blob(
    path: Path | str, secrets: Sequence[Secret], *, digest: str | None = None
) -> list[Leak]:
    """Search a layer blob (gzip, zstd or plain tar) for ``secrets``."""
    scanner = LeakScanner(secrets)
    if not scanner.active:
        return []
    with open_uncompressed(path, digest=digest) as stream:
        while block := stream.read(CHUNK):
            scanner.write(block)
    return scanner.close()


def scan_json(raw: bytes, secrets: Sequence[Secret]) -> list[Leak]:
    """Search a JSON document (config, manifest) string by string; ``path`` names the
    field (``config.Env[2]``, ``history[4].created_by``), after the JSON escapes are
    undone (a secret with a quote in it is still found)."""
    needles = _needles(secrets)
    if not needles:
        return []
    try:
        doc = json.loads(raw)
    except ValueError:
        scanner = LeakScanner(secrets, tar=False)
        scanner.write(raw)
        return scanner.close()
    found: dict[tuple[int, str], Leak] = {}
    for where, text in _strings(doc, ""):
        data = text.encode("utf-8", "surrogateescape")
        for needle in needles:
            if needle.pattern in data and (needle.secret, where) not in found:
                label = secrets[needle.secret].label
                found[(needle.secret, where)] = Leak(label, where, "field", needle.encoding)
    return list(found.values())


def _strings(doc: Any, where: str) -> Iterable[tuple[str, str]]:
    if isinstance(doc, str):
        yield where, doc
    elif isinstance(doc, dict):
        for key, value in doc.items():
            inner = f"{where}.{key}" if where else str(key)
            yield f"{inner} (key)", str(key)
            yield from _strings(value, inner)
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from _strings(value, f"{where}[{i}]")


def scanning_reader(stream: BinaryIO, scanner: LeakScanner) -> BinaryIO:
    """``stream``, with every byte read from it also written to ``scanner``."""
    return _ScanningReader(stream, scanner)  # type: ignore[return-value]


class _ScanningReader:
    def __init__(self, inner: BinaryIO, scanner: LeakScanner) -> None:
        self._inner = inner
        self._scanner = scanner

    def read(self, n: int = -1) -> bytes:
        data = self._inner.read(n)
        self._scanner.write(data)
        return data

    def readinto(self, buf: bytearray | memoryview) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True
