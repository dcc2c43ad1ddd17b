"""Registry API operations on raw bytes and files: manifests, blobs, uploads, mounts.

Manifests travel as the exact bytes received or sent, so digests are always taken
over the wire bytes. Blobs stream between the network and the blob store in 1 MiB
chunks and are verified before they get their name in the store (``download.py``,
``upload.py``). Content that arrives wrong is fetched again, up to
``image_download_retry`` times; content the registry says it got wrong is sent again.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import requests
import urllib3.exceptions

from pykaniko.errors import ImageError, RegistryError
from pykaniko.image import mediatypes as mt
from pykaniko.image.blobstore import BlobStore
from pykaniko.image.digest import sha256_bytes
from pykaniko.image.reference import Reference
from pykaniko.registry import download, upload
from pykaniko.registry.challenge import repository_scope
from pykaniko.registry.events import BAD_BLOB_CODES, BROKEN_BODY, DIGEST_MISMATCH, ProgressSink
from pykaniko.registry.transport import Mode, Transport

__all__ = ["FetchedManifest", "RegistryAPI"]

_SCHEMA1 = (mt.DOCKER_MANIFEST_V1, mt.DOCKER_MANIFEST_V1_SIGNED)
_ACCEPT = ", ".join([mt.MANIFEST_ACCEPT, *_SCHEMA1])
_MAX_MANIFEST = 8 << 20
_MANIFEST_RESEND = frozenset(
    {"registry-manifest-invalid", "registry-manifest-blob-unknown", "registry-digest-invalid"}
)
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


class RegistryAPI:
    """The Registry HTTP API v2 operations pykaniko needs, on one :class:`Transport`.

    ``progress`` (optional) receives per-blob transfer progress for pulls and pushes.
    """

    def __init__(self, transport: Transport, *, progress: ProgressSink | None = None) -> None:
        self.transport = transport
        self.progress = progress

    @property
    def download_attempts(self) -> int:
        return 1 + self.transport.options.image_download_retry

    def _retrying(self, action: Callable[[], T], *, attempts: int) -> T:
        """Run ``action`` again when a body arrived broken or wrong, or the registry
        stayed busy through the transport's quick retries; a dead host is not retried."""
        for attempt in range(max(1, attempts)):
            try:
                return action()
            except RegistryError as exc:
                if attempt + 1 >= attempts or not (
                    exc.code in BAD_BLOB_CODES or download.retryable(exc)
                ):
                    raise
                self.transport.notify(f"{exc.message}; retrying")
                time.sleep(self.transport.options.transport_backoff * (2**attempt))
        raise AssertionError("unreachable")

    # -- manifests -------------------------------------------------------------------

    def get_manifest(
        self,
        ref: Reference,
        *,
        mode: Mode = "pull",
        attempts: int | None = None,
    ) -> FetchedManifest:
        """GET a manifest or index by tag or digest. The bytes are checked against the
        pinned digest, else against ``Docker-Content-Digest`` when the registry sends it,
        else they must at least be a JSON object; wrong bytes are fetched again."""
        return self._retrying(
            lambda: self._get_manifest_once(ref, mode),
            attempts=self.download_attempts if attempts is None else attempts,
        )

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
                    code=BROKEN_BODY,
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
                code=DIGEST_MISMATCH,
            )
        if not expected.startswith("sha256:") and not _json_object(raw):
            # nothing to check the bytes against, and they are not even JSON
            raise RegistryError(
                f"pull manifest {ref}: the body is not a JSON document",
                registry=ref.registry,
                repository=ref.repository,
                temporary=True,
                code=BROKEN_BODY,
            )
        if media_type in _SCHEMA1:
            raise ImageError(
                f"{ref} is a Docker schema 1 image, which pykaniko does not pull",
                hint="re-push the image with a current Docker, skopeo or crane",
            )
        return FetchedManifest(raw, media_type, digest)

    def head_manifest(
        self,
        ref: Reference,
        *,
        mode: Mode = "pull",
        retries: int | None = None,
        read_timeout: float | None = None,
    ) -> str | None:
        """The digest a tag points at, or None when the tag does not exist. An empty
        string when the registry answered without a ``Docker-Content-Digest``."""
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
            retries=retries,
            read_timeout=read_timeout,
        )
        with resp:
            if resp.status_code == 404:
                return None
            return resp.headers.get("Docker-Content-Digest", "")

    def put_manifest(self, ref: Reference, raw: bytes, media_type: str) -> str:
        """PUT raw manifest bytes under ``ref.identifier``; returns their digest. Sent
        again when the registry refuses bytes we know are right (they were damaged on
        the way) or stored a digest other than theirs."""
        attempts = 1 + self.transport.options.transport_retries
        for attempt in range(attempts):
            try:
                return self._put_manifest_once(ref, raw, media_type)
            except RegistryError as exc:
                again = exc.code in _MANIFEST_RESEND or download.retryable(exc)
                if not again or attempt + 1 >= attempts:
                    raise
                self.transport.notify(f"{exc.message}; sending the manifest again")
                time.sleep(self.transport.options.transport_backoff * (2**attempt))
        raise AssertionError("unreachable")

    def _put_manifest_once(self, ref: Reference, raw: bytes, media_type: str) -> str:
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
                status=resp.status_code,
                temporary=True,
                code=DIGEST_MISMATCH,
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
        attempts: int | None = None,
    ) -> Path:
        """Stream a blob into ``store``, verified; a body that breaks off is resumed,
        a wrong one fetched again, ``image_download_retry`` times (see ``download``)."""
        return download.fetch_blob(
            self.transport,
            registry,
            repository,
            digest,
            store,
            size=size,
            attempts=self.download_attempts if attempts is None else attempts,
            progress=self.progress,
        )

    def mount_blob(
        self, registry: str, repository: str, digest: str, source_repository: str
    ) -> bool:
        """Ask the registry to link a blob from another repository; True when it did
        (also when ``repository`` already had it)."""
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
            upload.cancel_upload(self.transport, registry, repository, location)
        return False

    def upload_blob(
        self,
        registry: str,
        repository: str,
        digest: str,
        store: BlobStore,
        *,
        abort: threading.Event | None = None,
    ) -> None:
        """Upload a blob from the store, sent again from a new session when it
        arrived wrong or the connection broke (see ``upload``); ``abort`` stops it."""
        upload.upload_blob(
            self.transport,
            registry,
            repository,
            digest,
            store,
            exists=lambda: self.blob_exists(registry, repository, digest, mode="push"),
            progress=self.progress,
            abort=abort,
        )

    def check_push(self, ref: Reference) -> None:
        """Start and cancel an upload: proves push access before a long build."""
        location = upload.start_upload(
            self.transport,
            ref.registry,
            ref.repository,
            f"check push permission for {ref.name}",
        )
        upload.cancel_upload(self.transport, ref.registry, ref.repository, location)


def _json_object(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except ValueError:
        return False
