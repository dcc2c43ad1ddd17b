"""Blob uploads: POST, then one streamed PUT (or PATCH chunks, then PUT), re-sent
from a fresh upload session when the registry says the bytes it got were wrong
(``DIGEST_INVALID``, ``SIZE_INVALID``), the session died (a PUT whose connection broke
mid-body leaves it unusable: 404/416 ``BLOB_UPLOAD_INVALID``) or the connection broke.
Before each re-send a HEAD checks whether an earlier attempt landed after all."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, cast
from urllib.parse import urlencode, urlsplit, urlunsplit

from pykaniko.errors import RegistryError
from pykaniko.image.blobstore import BlobStore
from pykaniko.image.digest import CHUNK
from pykaniko.registry.challenge import repository_scope
from pykaniko.registry.events import ProgressMeter, ProgressSink
from pykaniko.registry.transport import Transport

__all__ = ["BlobBody", "UploadCancelled", "resendable", "upload_blob"]

_RESEND_CODES = frozenset(
    {
        "registry-digest-invalid",
        "registry-size-invalid",
        "registry-upload-invalid",
    }
)


class UploadCancelled(RegistryError):
    """The upload was stopped from another thread (a pipelined push being cancelled)."""

    default_code = "registry-upload-cancelled"


def resendable(exc: RegistryError) -> bool:
    """Whether a failed upload is worth sending again from a new session."""
    if isinstance(exc, UploadCancelled):
        return False
    return (
        exc.code in _RESEND_CODES
        or exc.status in (404, 416)
        or (exc.temporary and exc.code != "registry-unreachable")
    )


def _push_scopes(repository: str) -> list[str]:
    return [repository_scope(repository, ["pull", "push"])]


def _with_query(url: str, extra: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = parts.query + ("&" if parts.query else "") + urlencode(extra)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


class BlobBody:
    """A read-only view of ``length`` bytes of a file from ``start``: a request body.

    Reads return at least 1 MiB where the file has it (urllib3 asks for 16 KiB at a
    time; bigger reads cut the per-call overhead of large uploads), count progress
    when there is a meter, and stop the upload when ``abort`` is set.
    """

    def __init__(
        self,
        path: Path,
        start: int,
        length: int,
        *,
        meter: ProgressMeter | None = None,
        abort: threading.Event | None = None,
    ) -> None:
        self._file = open(path, "rb")  # noqa: SIM115  closed by close()
        self._file.seek(start)
        self._left = length
        self._meter = meter
        self._abort = abort
        self.len = length

    def read(self, n: int = -1) -> bytes:
        if self._abort is not None and self._abort.is_set():
            raise UploadCancelled("the upload was cancelled")
        if self._left <= 0:
            return b""
        n = self._left if n < 0 else min(max(n, CHUNK), self._left)
        data = self._file.read(n)
        self._left -= len(data)
        if self._meter is not None:
            self._meter.add(len(data))
        return data

    def close(self) -> None:
        self._file.close()

    def fileno(self) -> int:
        raise OSError("a body view has no file descriptor")  # keeps requests off fstat

    def __len__(self) -> int:
        return self.len


def upload_blob(
    transport: Transport,
    registry: str,
    repository: str,
    digest: str,
    store: BlobStore,
    *,
    exists: Callable[[], bool],
    progress: ProgressSink | None = None,
    abort: threading.Event | None = None,
) -> None:
    """Upload a blob from the store, re-sending it (``transport_retries`` times) as
    the module doc says. ``exists`` is the HEAD asked before each re-send."""
    attempts = 1 + transport.options.transport_retries
    size = store.size(digest)
    meter = (
        ProgressMeter(progress, "push", digest, size, repository=repository) if progress else None
    )
    ok = False
    try:
        for attempt in range(attempts):
            if attempt and exists():
                ok = True
                return
            try:
                _upload_once(
                    transport,
                    registry,
                    repository,
                    digest,
                    store=store,
                    size=size,
                    meter=meter,
                    abort=abort,
                )
            except RegistryError as exc:
                if not resendable(exc) or attempt + 1 >= attempts:
                    raise
                transport.notify(f"{exc.message}; sending the blob again")
                time.sleep(transport.options.transport_backoff * (2**attempt))
                if meter is not None:
                    meter.restart()
            else:
                ok = True
                return
    finally:
        if meter is not None:
            meter.finish(ok=ok)


def start_upload(transport: Transport, registry: str, repository: str, what: str) -> str:
    """POST an upload session; its absolute location. The body-less POST settles auth
    first, so a large body is not sent twice."""
    resp = transport.request(
        "POST",
        registry,
        repository,
        f"/v2/{repository}/blobs/uploads/",
        scopes=_push_scopes(repository),
        mode="push",
        what=what,
        expected=(202,),
        headers={"Content-Length": "0"},
    )
    resp.close()
    location = resp.headers.get("Location")
    if not location:
        raise RegistryError(
            f"{what} failed: {registry}/{repository}: HTTP {resp.status_code} "
            "without an upload location",
            registry=registry,
            repository=repository,
            status=resp.status_code,
        )
    return absolute(transport, registry, location)


def absolute(transport: Transport, registry: str, location: str) -> str:
    endpoint = transport.endpoint(registry, "push")
    return location if "://" in location else endpoint.base + "/" + location.lstrip("/")


def cancel_upload(transport: Transport, registry: str, repository: str, location: str) -> None:
    """Best effort: registries purge abandoned uploads anyway."""
    try:
        resp = transport.request(
            "DELETE",
            registry,
            repository,
            absolute(transport, registry, location),
            scopes=_push_scopes(repository),
            mode="push",
            what="cancel upload",
            expected=(200, 202, 204, 404),
        )
        resp.close()
    except RegistryError:
        pass


def _upload_once(
    transport: Transport,
    registry: str,
    repository: str,
    digest: str,
    *,
    store: BlobStore,
    size: int,
    meter: ProgressMeter | None,
    abort: threading.Event | None,
) -> None:
    """One upload session. Its requests get no quick retry of their own: a PUT whose
    connection broke cannot be sent again to the same session."""
    what = f"push blob {digest[:19]}"
    path = store.path(digest)
    location = start_upload(transport, registry, repository, what)
    chunk = transport.options.upload_chunk_size

    def body(start: int, length: int) -> BinaryIO:
        return cast(BinaryIO, BlobBody(path, start, length, meter=meter, abort=abort))

    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
    opener: Callable[[], BinaryIO] | bytes = lambda: body(0, size)  # noqa: E731
    if chunk > 0 and size > chunk:
        offset = 0
        while offset < size:
            end = min(offset + chunk, size)
            resp = transport.request(
                "PATCH",
                registry,
                repository,
                location,
                scopes=_push_scopes(repository),
                mode="push",
                what=what,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(end - offset),
                    "Content-Range": f"{offset}-{end - 1}",
                },
                body=functools.partial(body, offset, end - offset),
                expected=(202, 204),
                retries=0,
            )
            resp.close()
            new = resp.headers.get("Location")
            if new:
                location = absolute(transport, registry, new)
            offset = end
        headers, opener = {"Content-Length": "0"}, b""
    resp = transport.request(
        "PUT",
        registry,
        repository,
        _with_query(location, {"digest": digest}),
        scopes=_push_scopes(repository),
        mode="push",
        what=what,
        headers=headers,
        body=opener,
        expected=(201, 204),
        retries=0,
    )
    resp.close()
