"""Plain URL downloads for ``ADD <url>``: streamed to a file, optionally checked
against ``--checksum``, with the ``Last-Modified`` time Docker gives the file."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pykaniko.errors import BuildError, RegistryError
from pykaniko.image.digest import CHUNK

if TYPE_CHECKING:
    from pykaniko.registry.transport import Transport

__all__ = ["DownloadResult", "download"]


@dataclass(frozen=True, slots=True)
class DownloadResult:
    """``last_modified`` is seconds since the epoch, None when the server sent none."""

    path: Path
    size: int
    digest: str
    last_modified: float | None


def _checksum_algo(checksum: str) -> tuple[str, str]:
    algo, sep, hexpart = checksum.partition(":")
    if not sep or algo not in ("sha256", "sha384", "sha512") or not hexpart:
        raise BuildError(
            f"unsupported checksum {checksum!r}", hint="write sha256:<hex> (or sha384/sha512)"
        )
    return algo, hexpart.lower()


def download(
    transport: Transport, url: str, dest: Path, *, checksum: str | None = None
) -> DownloadResult:
    """GET ``url`` into ``dest`` (written under a temporary name, renamed when complete).

    A body that breaks off, or that does not match ``checksum``, is fetched again
    (``transport_retries`` times): only content that stays wrong fails."""
    import requests
    import urllib3.exceptions

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BuildError(f"cannot download {url!r}: only http and https URLs are supported")
    host = parts.netloc.rsplit("@", 1)[-1]
    safe_url = f"{parts.scheme}://{host}{parts.path}"
    algo, expected = _checksum_algo(checksum) if checksum else ("sha256", "")
    key = transport.url_key(host)
    attempts = 1 + max(transport.options.transport_retries, 0)
    tmp = dest.with_name(f".{dest.name}.part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        for attempt in range(attempts):
            resp = transport.send(
                key,
                "GET",
                url,
                registry=host,
                repository="",
                what=f"download {safe_url}",
                headers={"Accept-Encoding": "identity"},
                stream=True,
            )
            with resp:
                if resp.status_code != 200:
                    raise RegistryError(
                        f"download {safe_url} failed: HTTP {resp.status_code} {resp.reason}",
                        registry=host,
                        status=resp.status_code,
                        temporary=resp.status_code >= 500,
                    )
                h = hashlib.new(algo)
                sha = hashlib.sha256()
                size = 0
                try:
                    with open(tmp, "wb") as out:
                        for block in resp.raw.stream(CHUNK, decode_content=False):
                            h.update(block)
                            sha.update(block)
                            out.write(block)
                            size += len(block)
                except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                    if attempt + 1 < attempts:
                        continue
                    raise RegistryError(
                        f"download {safe_url} failed after {size} bytes: connection broke",
                        registry=host,
                        temporary=True,
                    ) from exc
                modified = resp.headers.get("Last-Modified")
            if expected and h.hexdigest() != expected:
                if attempt + 1 < attempts:  # damaged on the way, or the file changed
                    transport.notify(f"checksum mismatch for {safe_url}; downloading it again")
                    continue
                raise BuildError(
                    f"checksum mismatch for {safe_url}: expected {algo}:{expected}, "
                    f"got {algo}:{h.hexdigest()}"
                )
            when: float | None = None
            if modified:
                try:
                    when = parsedate_to_datetime(modified).timestamp()
                except (TypeError, ValueError):
                    when = None
            os.replace(tmp, dest)
            return DownloadResult(dest, size, "sha256:" + sha.hexdigest(), when)
        raise AssertionError("unreachable")
    finally:
        tmp.unlink(missing_ok=True)
