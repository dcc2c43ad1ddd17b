"""Registry API operations on raw bytes and files: manifests, blobs, uploads, mounts.

Manifests travel as the exact bytes received or sent, so digests are always taken
over the wire bytes. Blobs stream between the network and the blob store in 1 MiB
chunks and are verified before they get their name in the store.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar, cast
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests
import urllib3.exceptions

from pykaniko.errors import ImageError, RegistryError
from pykaniko.image import mediatypes as mt
from pykaniko.image.blobstore import BlobStore
from pykaniko.image.digest import CHUNK, sha256_bytes
from pykaniko.image.reference import Reference
from pykaniko.registry.challenge import repository_scope
from pykaniko.registry.transport import Body, Mode, Transport

__all__ = ["FetchedManifest", "RegistryAPI"]

_SCHEMA1 = (mt.DOCKER_MANIFEST_V1, mt.DOCKER_MANIFEST_V1_SIGNED)
_ACCEPT = ", ".join([mt.MANIFEST_ACCEPT, *_SCHEMA1])
_MAX_MANIFEST = 8 << 20
_BROKEN_BODY = "registry-broken-body"
_DIGEST_MISMATCH = "registry-digest-mismatch"
_BODY_ERRORS = frozenset({_BROKEN_BODY, _DIGEST_MISMATCH})
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class FetchedManifest:
    raw: bytes
    media_type: str
    digest: str


def _pull_scopes(repository: str) -> list[str]:
    return [repository_scope(repository, ["pull"])]


def _push_scopes(repository: str) -> list[str]:
    return [repository_scope(repository, ["pull", "push"])]


def _with_query(url: str, extra: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = parts.query + ("&" if parts.query else "") + urlencode(extra)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


class RegistryAPI:
    """The Registry HTTP API v2 operations pykaniko needs, on one :class:`Transport`."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    # -- manifests -------------------------------------------------------------------

    def _body_retries(self, action: Callable[[], T]) -> T:
        """Run ``action`` again when a body arrived broken or with the wrong digest;
        request-level failures were already retried by the transport."""
        attempts = 1 + self.transport.options.transport_retries
        for attempt in range(attempts):
            try:
                return action()
            except RegistryError as exc:
                if exc.code not in _BODY_ERRORS or attempt + 1 >= attempts:
                    raise
                self.transport.notify(f"{exc.message}; retrying")
                time.sleep(self.transport.options.transport_backoff * (2**attempt))
        raise AssertionError("unreachable")

    def get_manifest(self, ref: Reference, *, mode: Mode = "pull") -> FetchedManifest:
        """GET a manifest or index by tag or digest. The bytes are checked against the
        pinned digest, else against ``Docker-Content-Digest`` when the registry sends it."""
        return self._body_retries(lambda: self._get_manifest_once(ref, mode))

    def _get_manifest_once(self, ref: Reference, mode: Mode) -> FetchedManifest:
        resp = self.transport.request(
            "GET",
            ref.registry,
            ref.repository,
            f"/v2/{ref.repository}/manifests/{ref.identifier}",
            scopes=_pull_scopes(ref.repository),
            mode=mode,
            what=f"pull manifest {ref}",
            headers={"Accept": _ACCEPT},
            stream=True,
        )
        with resp:
            try:
                raw = resp.raw.read(_MAX_MANIFEST + 1, decode_content=True)
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                raise RegistryError(
                    f"pull manifest {ref}: the connection broke while reading it",
                    registry=ref.registry,
                    repository=ref.repository,
                    temporary=True,
                    code=_BROKEN_BODY,
                ) from exc
        if len(raw) > _MAX_MANIFEST:
            raise ImageError(f"manifest of {ref} is larger than {_MAX_MANIFEST} bytes")
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        digest = sha256_bytes(raw)
        expected = ref.digest or resp.headers.get("Docker-Content-Digest", "")
        if expected.startswith("sha256:") and digest != expected:
            raise RegistryError(
                f"pull manifest {ref}: got bytes with digest {digest}, expected {expected}",
                registry=ref.registry,
                repository=ref.repository,
                temporary=True,
                code=_DIGEST_MISMATCH,
            )
        if media_type in _SCHEMA1:
            raise ImageError(
                f"{ref} is a Docker schema 1 image, which pykaniko does not pull",
                hint="re-push the image with a current Docker, skopeo or crane",
            )
        return FetchedManifest(raw, media_type, digest)

    def head_manifest(self, ref: Reference, *, mode: Mode = "pull") -> str | None:
        """The digest a tag points at, or None when the tag does not exist."""
        resp = self.transport.request(
            "HEAD",
            ref.registry,
            ref.repository,
            f"/v2/{ref.repository}/manifests/{ref.identifier}",
            scopes=_pull_scopes(ref.repository),
            mode=mode,
            what=f"check manifest {ref}",
            headers={"Accept": _ACCEPT},
            expected=(200, 404),
        )
        with resp:
            if resp.status_code == 404:
                return None
            return resp.headers.get("Docker-Content-Digest")

    def put_manifest(self, ref: Reference, raw: bytes, media_type: str) -> str:
        """PUT raw manifest bytes under ``ref.identifier``; returns their digest."""
        digest = sha256_bytes(raw)
        resp = self.transport.request(
            "PUT",
            ref.registry,
            ref.repository,
            f"/v2/{ref.repository}/manifests/{ref.identifier}",
            scopes=_push_scopes(ref.repository),
            mode="push",
            what=f"push manifest {ref}",
            headers={"Content-Type": media_type},
            body=raw,
            expected=(200, 201, 202),
        )
        resp.close()
        sent = resp.headers.get("Docker-Content-Digest")
        if sent and sent != digest:
            raise RegistryError(
                f"push manifest {ref}: the registry stored digest {sent}, expected {digest}",
                registry=ref.registry,
                repository=ref.repository,
            )
        return digest

    # -- blobs -----------------------------------------------------------------------

    def blob_exists(
        self, registry: str, repository: str, digest: str, *, mode: Mode = "pull"
    ) -> bool:
        scopes = _push_scopes(repository) if mode == "push" else _pull_scopes(repository)
        resp = self.transport.request(
            "HEAD",
            registry,
            repository,
            f"/v2/{repository}/blobs/{digest}",
            scopes=scopes,
            mode=mode,
            what=f"check blob {digest[:19]}",
            expected=(200, 404),
        )
        resp.close()
        return resp.status_code == 200

    def fetch_blob(
        self,
        registry: str,
        repository: str,
        digest: str,
        store: BlobStore,
        *,
        size: int | None = None,
    ) -> Path:
        """Stream a blob into ``store``, verifying digest and size before it is named;
        a broken or wrong body is fetched again (``transport_retries`` times)."""
        return self._body_retries(
            lambda: self._fetch_blob_once(registry, repository, digest, store, size)
        )

    def _fetch_blob_once(
        self, registry: str, repository: str, digest: str, store: BlobStore, size: int | None
    ) -> Path:
        if store.has(digest):
            return store.path(digest)
        tmp = store.temp_path(".part")
        try:
            resp = self.transport.request(
                "GET",
                registry,
                repository,
                f"/v2/{repository}/blobs/{digest}",
                scopes=_pull_scopes(repository),
                mode="pull",
                what=f"pull blob {digest[:19]}",
                headers={"Accept-Encoding": "identity"},  # the digest is over raw bytes
                stream=True,
            )
            algo = digest.split(":", 1)[0]
            h = hashlib.new(algo)
            got = 0
            with resp, open(tmp, "wb") as out:
                try:
                    for block in resp.raw.stream(CHUNK, decode_content=False):
                        h.update(block)
                        out.write(block)
                        got += len(block)
                        if size is not None and got > size:
                            break  # more than the descriptor says: never fill the disk
                except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                    raise RegistryError(
                        f"pull blob {digest[:19]} from {registry}/{repository}: "
                        f"connection broke after {got} bytes",
                        registry=registry,
                        repository=repository,
                        temporary=True,
                        code=_BROKEN_BODY,
                    ) from exc
            actual = f"{algo}:{h.hexdigest()}"
            if actual != digest or (size is not None and got != size):
                raise RegistryError(
                    f"pull blob {digest[:19]} from {registry}/{repository}: got {got} bytes "
                    f"with digest {actual[:19]}, expected {size if size is not None else '?'} "
                    f"bytes with {digest[:19]}",
                    registry=registry,
                    repository=repository,
                    temporary=True,
                    code=_DIGEST_MISMATCH,
                )
            return store.adopt(tmp, digest)
        finally:
            tmp.unlink(missing_ok=True)

    def mount_blob(
        self, registry: str, repository: str, digest: str, source_repository: str
    ) -> bool:
        """Ask the registry to link a blob from another repository; True when it did."""
        scopes = [*_push_scopes(repository), *_pull_scopes(source_repository)]
        resp = self.transport.request(
            "POST",
            registry,
            repository,
            f"/v2/{repository}/blobs/uploads/",
            scopes=scopes,
            mode="push",
            what=f"mount blob {digest[:19]}",
            params={"mount": digest, "from": source_repository},
            expected=(201, 202),
            headers={"Content-Length": "0"},
        )
        resp.close()
        if resp.status_code == 201:
            return True
        location = resp.headers.get("Location")
        if location:  # the registry opened an upload instead: cancel it
            self._cancel_upload(registry, repository, location)
        return False

    def _start_upload(self, registry: str, repository: str, what: str) -> str:
        resp = self.transport.request(
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
                f"{what}: {registry}/{repository}: no upload location in the answer",
                registry=registry,
                repository=repository,
                status=resp.status_code,
            )
        endpoint = self.transport.endpoint(registry, "push")
        return location if "://" in location else endpoint.base + "/" + location.lstrip("/")

    def _cancel_upload(self, registry: str, repository: str, location: str) -> None:
        endpoint = self.transport.endpoint(registry, "push")
        url = location if "://" in location else endpoint.base + "/" + location.lstrip("/")
        try:
            resp = self.transport.request(
                "DELETE",
                registry,
                repository,
                url,
                scopes=_push_scopes(repository),
                mode="push",
                what="cancel upload",
                expected=(200, 202, 204, 404),
            )
            resp.close()
        except RegistryError:
            pass  # best effort: registries purge abandoned uploads

    def upload_blob(self, registry: str, repository: str, digest: str, store: BlobStore) -> None:
        """Upload a blob from the store: POST, then one streamed PUT (or PATCHes then
        PUT when ``upload_chunk_size`` is set). The body-less POST settles auth first,
        so a large body is not sent twice.

        A quick retry of a PUT whose first attempt did reach the registry finds the
        upload session gone (404/416); the blob is then checked for and, if absent,
        the whole upload starts again once.
        """
        for attempt in range(2):
            try:
                self._upload_once(registry, repository, digest, store)
            except RegistryError as exc:
                if exc.status not in (404, 416):
                    raise
                if self.blob_exists(registry, repository, digest, mode="push"):
                    return
                if attempt == 1:
                    raise RegistryError(
                        exc.message,
                        registry=registry,
                        repository=repository,
                        status=exc.status,
                        temporary=True,
                    ) from exc
            else:
                return

    def _upload_once(self, registry: str, repository: str, digest: str, store: BlobStore) -> None:
        what = f"push blob {digest[:19]}"
        path = store.path(digest)
        size = store.size(digest)
        location = self._start_upload(registry, repository, what)
        chunk = self.transport.options.upload_chunk_size
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        body: Body = lambda: open(path, "rb")  # noqa: E731, SIM115  send() closes it
        if chunk > 0 and size > chunk:
            location = self._patch_chunks(
                registry,
                repository=repository,
                location=location,
                path=path,
                size=size,
                chunk=chunk,
                what=what,
            )
            headers, body = {"Content-Length": "0"}, b""
        resp = self.transport.request(
            "PUT",
            registry,
            repository,
            _with_query(location, {"digest": digest}),
            scopes=_push_scopes(repository),
            mode="push",
            what=what,
            headers=headers,
            body=body,
            expected=(201, 204),
        )
        resp.close()

    def _patch_chunks(
        self,
        registry: str,
        *,
        repository: str,
        location: str,
        path: Path,
        size: int,
        chunk: int,
        what: str,
    ) -> str:
        offset = 0
        while offset < size:
            end = min(offset + chunk, size)

            def opener(start: int = offset, length: int = end - offset) -> BinaryIO:
                return cast(BinaryIO, _Window(path, start, length))

            resp = self.transport.request(
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
                body=opener,
                expected=(202, 204),
            )
            resp.close()
            new = resp.headers.get("Location")
            if new:
                endpoint = self.transport.endpoint(registry, "push")
                location = new if "://" in new else endpoint.base + "/" + new.lstrip("/")
            offset = end
        return location

    def check_push(self, ref: Reference) -> None:
        """Start and cancel an upload: proves push access before a long build."""
        location = self._start_upload(
            ref.registry, ref.repository, f"check push permission for {ref.name}"
        )
        self._cancel_upload(ref.registry, ref.repository, location)


class _Window:
    """A read-only file view of ``length`` bytes from ``start`` (one PATCH chunk)."""

    def __init__(self, path: Path, start: int, length: int) -> None:
        self._file = open(path, "rb")  # noqa: SIM115  closed by close()
        self._file.seek(start)
        self._left = length
        self.len = length

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        n = self._left if n < 0 else min(n, self._left)
        data = self._file.read(n)
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._file.close()

    def fileno(self) -> int:
        raise OSError("a window has no file descriptor")  # keeps requests off fstat

    def __len__(self) -> int:
        return self.len
