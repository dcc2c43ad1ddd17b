"""``WWW-Authenticate`` parsing and the per-(registry, scope) token cache.

A token is only good for the scope it was issued for: a pull token must never be
re-sent for a push, and a cross-repository mount needs the source's pull scope too.
So tokens are cached under the exact scope set asked for.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

__all__ = ["Challenge", "TokenCache", "parse_www_authenticate", "repository_scope", "scope_string"]

_TOKEN_RE: Final = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')
_SCHEME_RE: Final = re.compile(r"\s*([A-Za-z][A-Za-z0-9_-]*)(?=\s|$)")


@dataclass(frozen=True, slots=True)
class Challenge:
    """One challenge: ``scheme`` lower-cased, parameter names lower-cased."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        return self.params.get("service", "")

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(s for s in self.params.get("scope", "").split(" ") if s)


def parse_www_authenticate(header: str) -> list[Challenge]:
    """Parse a header that may hold several challenges (``Basic realm=x, Bearer ...``)."""
    out: list[Challenge] = []
    pos = 0
    while pos < len(header):
        m = _SCHEME_RE.match(header, pos)
        if not m:
            pos += 1
            continue
        scheme = m.group(1).lower()
        pos = m.end()
        params: dict[str, str] = {}
        while pos < len(header):
            p = _TOKEN_RE.match(header, pos)
            if not p:
                break
            value = p.group(2)
            if value.startswith('"') and value.endswith('"') and len(value) >= 2:
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            params[p.group(1).lower()] = value
            pos = p.end()
        out.append(Challenge(scheme, params))
    return out


def repository_scope(repository: str, actions: Sequence[str]) -> str:
    return f"repository:{repository}:{','.join(actions)}"


def scope_string(scopes: Iterable[str]) -> str:
    """The cache key of a scope set: sorted and de-duplicated."""
    return " ".join(sorted(set(scopes)))


class TokenCache:
    """Bearer tokens by (registry, scope set), dropped a little before they expire."""

    def __init__(self, *, margin: float = 10.0) -> None:
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._margin = margin

    def get(self, registry: str, scopes: str) -> str | None:
        with self._lock:
            entry = self._tokens.get((registry, scopes))
            if entry is None:
                return None
            token, expires = entry
            if time.monotonic() >= expires:
                del self._tokens[(registry, scopes)]
                return None
            return token

    def put(self, registry: str, scopes: str, token: str, expires_in: float) -> None:
        lifetime = max(expires_in - self._margin, 1.0)
        with self._lock:
            self._tokens[(registry, scopes)] = (token, time.monotonic() + lifetime)

    def drop(self, registry: str, scopes: str) -> None:
        with self._lock:
            self._tokens.pop((registry, scopes), None)
