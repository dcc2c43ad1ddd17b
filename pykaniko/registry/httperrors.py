"""What a registry's answer means: Distribution error bodies and HTTP statuses mapped
onto :class:`RegistryError` (naming registry, repository and status, never a URL with
upload state or credentials), and one-line reasons for connection failures."""

from __future__ import annotations

import json
import re

import requests
import urllib3.exceptions

from pykaniko.errors import AuthError, NotFoundError, RegistryError

__all__ = [
    "TEMPORARY_STATUS",
    "distribution_errors",
    "error_for",
    "is_dead_host",
    "is_temporary",
    "short_reason",
    "tls_reason",
]

TEMPORARY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def is_temporary(exc: BaseException) -> bool:
    return isinstance(exc, RegistryError) and exc.temporary


def is_dead_host(exc: requests.RequestException) -> bool:
    """No TCP connection at all: refused, unresolvable or timed out while connecting."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    inner = getattr(reason, "reason", reason)
    return isinstance(
        inner, urllib3.exceptions.NewConnectionError | urllib3.exceptions.NameResolutionError
    )


_DISTRIBUTION_CODES = {
    # what a registry says about bytes it received: worth sending them again
    "DIGEST_INVALID": "registry-digest-invalid",
    "SIZE_INVALID": "registry-size-invalid",
    "BLOB_UPLOAD_INVALID": "registry-upload-invalid",
    "BLOB_UPLOAD_UNKNOWN": "registry-upload-invalid",
    "MANIFEST_INVALID": "registry-manifest-invalid",
    "MANIFEST_BLOB_UNKNOWN": "registry-manifest-blob-unknown",
}


def distribution_errors(resp: requests.Response) -> tuple[str, str]:
    """(first error code, its message) from a Distribution JSON error body."""
    try:  # at most 64 KiB, and a body that breaks off is just no detail
        loaded = getattr(resp, "_content", False)  # requests keeps a read body here
        raw = loaded[:65536] if isinstance(loaded, bytes) else next(resp.iter_content(65536), b"")
        data = json.loads(raw or b"{}")
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError, ValueError):
        return "", ""
    errors = data.get("errors") if isinstance(data, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("code") or ""), str(errors[0].get("message") or "")
    return "", ""


def error_for(
    resp: requests.Response, *, registry: str, repository: str, what: str
) -> RegistryError:
    """The error to raise for an unexpected response."""
    status = resp.status_code
    code, message = distribution_errors(resp)
    detail = " ".join(x for x in (code, message) if x) or resp.reason or ""
    where = f"{registry}/{repository}" if repository else registry
    text = f"{what} failed: {where}: HTTP {status}" + (f" {detail}" if detail else "")
    target = repository or "this registry"
    if status in (401, 403):
        return AuthError(
            text,
            registry=registry,
            repository=repository,
            status=status,
            hint=f"check the credentials for {registry} (docker config.json or credential helper)"
            if status == 401
            else f"the credentials for {registry} lack permission on {target}",
        )
    if status == 404:
        return NotFoundError(text, registry=registry, repository=repository, status=status)
    return RegistryError(
        text,
        registry=registry,
        repository=repository,
        status=status,
        temporary=status in TEMPORARY_STATUS,
        code=_DISTRIBUTION_CODES.get(code),
    )


def tls_reason(exc: BaseException) -> str:
    """``certificate verify failed: self-signed certificate`` out of ssl's wrapping."""
    found = re.search(r"\[SSL: [A-Z0-9_]+\] ([^(')\]]+)", str(exc))
    return found.group(1).strip() if found else short_reason(exc)


def short_reason(exc: BaseException) -> str:
    """A one-line reason without URLs (they may carry upload state) or object reprs."""
    text = str(exc)
    if "Caused by " in text:
        text = text.split("Caused by ", 1)[1]
    text = re.sub(r"<[^>]*>:\s*", "", text)
    text = re.sub(r"^\w+\(['\"]?", "", text)
    text = re.sub(r"^\w*Connection(?:Pool)?\(host=[^)]*\):\s*", "", text)
    text = text.replace("Failed to establish a new connection: ", "")
    while text and text[-1] in "'\") " and (text[-1] != ")" or text.count(")") > text.count("(")):
        text = text[:-1]
    return text[:200] or type(exc).__name__
