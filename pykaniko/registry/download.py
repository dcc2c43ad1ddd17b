"""Blob downloads that survive flaky wires: streamed into the blob store, verified
before the blob gets its name, and fetched again when the body breaks off (resumed
with ``Range`` from the last byte received, where the registry honours it) or arrives
with the wrong digest or size (fetched whole again).

Only a blob that is still wrong after every attempt fails, with the code
``registry-digest-mismatch`` (wrong bytes) or ``registry-broken-body`` (it kept
breaking off): see :data:`pykaniko.registry.events.BAD_BLOB_CODES`.
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path
from typing import BinaryIO

import requests
import urllib3.exceptions

from pykaniko.errors import RegistryError
from pykaniko.image.blobstore import BlobStore
from pykaniko.image.digest import CHUNK
from pykaniko.registry.challenge import repository_scope
from pykaniko.registry.events import BROKEN_BODY, DIGEST_MISMATCH, ProgressMeter, ProgressSink
from pykaniko.registry.transport import Transport

__all__ = ["fetch_blob", "retryable"]

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
UNREACHABLE = "registry-unreachable"


def retryable(exc: RegistryError) -> bool:
    """A failure worth another attempt at the same registry: temporary, and the
    host did answer (a dead host goes straight to the next mirror)."""
    return exc.temporary and exc.code != UNREACHABLE


def _range_start(header: str | None) -> int | None:
    found = _CONTENT_RANGE.fullmatch((header or "").strip())
    return int(found.group(1)) if found else None


class _Partial:
    """The bytes received so far: a file, their running hash and count."""

    def __init__(self, out: BinaryIO, algo: str) -> None:
        self.out = out
        self.algo = algo
        self.hash = hashlib.new(algo)
        self.got = 0

    def restart(self) -> None:
        self.out.seek(0)
        self.out.truncate()
        self.hash = hashlib.new(self.algo)
        self.got = 0


def fetch_blob(
    transport: Transport,
    registry: str,
    repository: str,
    digest: str,
    store: BlobStore,
    *,
    size: int | None = None,
    attempts: int,
    progress: ProgressSink | None = None,
) -> Path:
    """Stream a blob into ``store`` in at most ``attempts`` GETs; see the module doc."""
    if store.has(digest):
        return store.path(digest)
    what = f"pull blob {digest[:19]}"
    where = f"{registry}/{repository}"
    meter = (
        ProgressMeter(progress, "pull", digest, size or 0, repository=repository)
        if progress
        else None
    )
    tmp = store.temp_path(".part")
    ok = False
    try:
        with open(tmp, "wb") as out:
            part = _Partial(out, digest.split(":", 1)[0])
            last: RegistryError | None = None
            for attempt in range(max(1, attempts)):
                if last is not None:
                    resume = f"; resuming at byte {part.got}" if part.got else "; fetching it again"
                    transport.notify(f"{last.message}{resume}")
                    time.sleep(transport.options.transport_backoff * (2 ** (attempt - 1)))
                try:
                    _one_get(
                        transport,
                        registry,
                        repository,
                        digest,
                        what=what,
                        part=part,
                        size=size,
                        meter=meter,
                    )
                except RegistryError as exc:
                    if not retryable(exc):
                        raise
                    last = exc
                    continue
                actual = f"{part.algo}:{part.hash.hexdigest()}"
                if actual == digest and (size is None or part.got == size):
                    out.close()
                    ok = True
                    return store.adopt(tmp, digest)
                if size is not None and part.got < size and actual != digest:
                    last = _broken(what, where, registry, repository, part.got)
                    continue  # it ended early without an error: resume
                last = RegistryError(
                    f"{what} from {where}: got {part.got} bytes with digest {actual[:19]}, "
                    f"expected {size if size is not None else '?'} bytes with {digest[:19]}",
                    registry=registry,
                    repository=repository,
                    temporary=True,
                    code=DIGEST_MISMATCH,
                )
                part.restart()  # where the bad bytes are is unknown: start over
                if meter is not None:
                    meter.restart()
            assert last is not None
            raise last
    finally:
        tmp.unlink(missing_ok=True)
        if meter is not None:
            meter.finish(ok=ok)


def _broken(what: str, where: str, registry: str, repository: str, got: int) -> RegistryError:
    return RegistryError(
        f"{what} from {where}: connection broke after {got} bytes",
        registry=registry,
        repository=repository,
        temporary=True,
        code=BROKEN_BODY,
    )


def _one_get(
    transport: Transport,
    registry: str,
    repository: str,
    digest: str,
    *,
    what: str,
    part: _Partial,
    size: int | None,
    meter: ProgressMeter | None,
) -> None:
    """One GET appending to ``part`` (from byte ``part.got`` when it holds some)."""
    headers = {"Accept-Encoding": "identity"}  # the digest is over the raw bytes
    if part.got:
        headers["Range"] = f"bytes={part.got}-"
    resp = transport.request(
        "GET",
        registry,
        repository,
        f"/v2/{repository}/blobs/{digest}",
        scopes=[repository_scope(repository, ["pull"])],
        mode="pull",
        what=what,
        headers=headers,
        expected=(200, 206),
        stream=True,
    )
    with resp:
        if resp.status_code == 206 and _range_start(resp.headers.get("Content-Range")) != part.got:
            part.restart()  # not the range asked for: ask for everything next time
            raise _broken(what, f"{registry}/{repository}", registry, repository, 0)
        if resp.status_code == 200 and part.got:
            part.restart()  # the registry ignores Range: it sends the whole blob again
        if meter is not None:
            meter.restart(part.got)
        blocks = resp.raw.stream(CHUNK, decode_content=False)
        while True:
            try:
                block = next(blocks, b"")
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                raise _broken(
                    what, f"{registry}/{repository}", registry, repository, part.got
                ) from exc
            if not block:
                return
            part.hash.update(block)
            part.out.write(block)  # a full disk is not a network fault: it propagates
            part.got += len(block)
            if meter is not None:
                meter.add(len(block))
            if size is not None and part.got > size:
                return  # more than the descriptor says: never fill the disk
