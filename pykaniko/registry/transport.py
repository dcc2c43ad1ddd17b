"""HTTP to registries: pooled ``requests`` sessions per registry (pulls and pushes share
them, and so their kept-alive connections, when their TLS settings agree), scheme choice
(HTTPS, or plain HTTP where allowed), authentication from challenges, quick retries of
temporary failures and error mapping.

Failures become :class:`RegistryError` (or ``AuthError``/``NotFoundError``) naming
the registry, repository and HTTP status; URLs with upload state and credentials are
never put in messages. A host that does not answer fails fast (a few seconds connect
timeout, no retry) so mirror fallback stays quick.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal
from urllib.parse import quote, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

from pykaniko.errors import AuthError, RegistryError
from pykaniko.image.reference import normalize_registry
from pykaniko.registry.auth import Credential, Keychain
from pykaniko.registry.challenge import Challenge, TokenCache, parse_www_authenticate, scope_string
from pykaniko.registry.events import Notify
from pykaniko.registry.hosts import auto_insecure, bypass_proxy
from pykaniko.registry.httperrors import (
    TEMPORARY_STATUS,
    error_for,
    is_dead_host,
    is_temporary,
    short_reason,
    tls_reason,
)
from pykaniko.registry.options import RegistryOptions

__all__ = [
    "Body",
    "Mode",
    "Notify",
    "Transport",
    "bypass_proxy",
    "error_for",
    "is_temporary",
]

Mode = Literal["pull", "push"]


def _quiet(_message: str) -> None:
    """The default notice sink: this package never prints."""


Body = bytes | Callable[[], BinaryIO] | None


def cert_dir_files(cert_dirs: str, cert_file: str = "") -> tuple[str, ...]:
    """Every regular file in the ``SSL_CERT_DIR`` directories (colon-separated), sorted,
    the ``SSL_CERT_FILE`` bundle itself left out.

    OpenSSL looks certificates up in these directories by subject-hash file names only,
    while Kaniko (Go) reads every file there: a CA mounted as
    ``/kaniko/ssl/certs/my-ca.crt`` is trusted by Kaniko, so it must be by us too.
    """
    found: list[str] = []
    for directory in filter(None, cert_dirs.split(":")):
        with contextlib.suppress(OSError), os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_file() and not (cert_file and _same_file(entry.path, cert_file)):
                    found.append(entry.path)
    return tuple(sorted(found))


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


class _ContextAdapter(HTTPAdapter):
    """An adapter using our SSL context: extra CAs are added to the system pool."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)


@dataclass
class _Endpoint:
    base: str
    challenge: Challenge | None


_TOKEN = re.compile(r"[\x21-\x7e]+")


class Transport:
    """Authenticated, retrying requests to registries; safe to share between threads."""

    def __init__(
        self,
        options: RegistryOptions,
        keychain: Keychain,
        *,
        user_agent: str,
        extra_insecure: Sequence[str] = (),
        notify: Notify | None = None,
    ) -> None:
        self.options = options
        self.notify: Notify = notify or _quiet
        self._keychain = keychain
        self._user_agent = user_agent
        self._insecure = frozenset(
            normalize_registry(h) for h in (*options.insecure_registries, *extra_insecure)
        )
        self._skip_verify = frozenset(
            normalize_registry(h) for h in options.skip_tls_verify_registries
        )
        # the system store as Go builds it (see cert_dir_files); OpenSSL itself reads
        # SSL_CERT_FILE and the hashed names of SSL_CERT_DIR
        self._system_ca_files = cert_dir_files(
            os.environ.get("SSL_CERT_DIR", ""), os.environ.get("SSL_CERT_FILE", "")
        )
        self._tokens = TokenCache()
        self._lock = threading.Lock()
        self._free: dict[tuple[str, bool], list[requests.Session]] = {}
        self._endpoints: dict[tuple[str, tuple[str, ...]], _Endpoint] = {}
        self._pinging: dict[tuple[str, tuple[str, ...]], threading.Lock] = {}
        self._credentials: dict[str, Credential | None] = {}
        self._all_sessions: list[requests.Session] = []
        self._contexts: dict[str, ssl.SSLContext] = {}

    def close(self) -> None:
        """Close every session any thread opened (pooled connections included)."""
        with self._lock:
            sessions, self._all_sessions = self._all_sessions, []
        for session in sessions:
            session.close()

    # -- sessions ------------------------------------------------------------------

    def _skips_verify(self, registry: str, mode: Mode) -> bool:
        opts = self.options
        return (
            opts.skip_tls_verify
            or registry in self._skip_verify
            or (mode == "pull" and opts.skip_tls_verify_pull)
        )

    @contextlib.contextmanager
    def _lease(self, key: tuple[str, Mode]) -> Iterator[requests.Session]:
        """Borrow a session for one request: sessions are not shared between threads
        at the same time, and there are never more than the peak concurrency. The
        most recently returned session is lent first, so sequential requests (pulls
        and pushes alike) reuse one kept-alive connection."""
        pool_key = (key[0], self._skips_verify(*key))
        with self._lock:
            free = self._free.setdefault(pool_key, [])
            session = free.pop() if free else None
        if session is None:
            session = self._new_session(*pool_key)
        try:
            yield session
        finally:
            with self._lock:
                self._free.setdefault(pool_key, []).append(session)

    def _new_session(self, registry: str, skip: bool) -> requests.Session:
        opts = self.options
        session = requests.Session()
        session.headers["User-Agent"] = self._user_agent
        session.trust_env = False
        certs = {normalize_registry(k): v for k, v in opts.registry_certificates.items()}
        if skip:
            session.verify = False
        else:  # the system's CA store (as Kaniko's Go TLS builds it), plus --registry-certificate
            session.mount("https://", _ContextAdapter(self._ssl_context(registry, certs)))
        clients = {normalize_registry(k): v for k, v in opts.registry_client_certs.items()}
        if registry in clients:
            session.cert = clients[registry]
        proxies = {k: v for k, v in opts.proxies.items() if k in ("http", "https") and v}
        if proxies and not bypass_proxy(registry, opts.proxies.get("no_proxy", "")):
            session.proxies.update(proxies)
        with self._lock:
            self._all_sessions.append(session)
        return session

    def _ssl_context(self, registry: str, certs: Mapping[str, str]) -> ssl.SSLContext:
        """One context per registry, shared by its sessions: loading the system's CA
        store takes tens of milliseconds, too much to pay per connection pool."""
        with self._lock:
            context = self._contexts.get(registry)
        if context is None:
            context = ssl.create_default_context()
            for cafile in self._system_ca_files:
                with contextlib.suppress(ssl.SSLError, OSError):  # not a PEM certificate
                    context.load_verify_locations(cafile=cafile)
            if registry in certs:
                context.load_verify_locations(cafile=certs[registry])
            with self._lock:
                context = self._contexts.setdefault(registry, context)
        return context

    @staticmethod
    def url_key(host: str) -> tuple[str, Mode]:
        """The session key for a plain download from ``host`` (TLS settings by host)."""
        return (normalize_registry(host), "pull")

    # -- low-level send with quick retries -------------------------------------------

    def send(
        self,
        key: tuple[str, Mode],
        method: str,
        url: str,
        *,
        registry: str,
        repository: str,
        what: str,
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        params: Mapping[str, str] | None = None,
        stream: bool = False,
        retries: int | None = None,
        read_timeout: float | None = None,
    ) -> requests.Response:
        """Send once per attempt; temporary failures are retried with short backoff.

        Dead hosts are not retried here. Returns whatever response is not temporary,
        including errors (the caller maps them).
        """
        attempts = 1 + (self.options.transport_retries if retries is None else retries)
        timeout = (self.options.connect_timeout, read_timeout or self.options.read_timeout)
        where = f"{registry}/{repository}" if repository else registry
        for attempt in range(attempts):
            stream_body: BinaryIO | None = None
            data: bytes | BinaryIO | None
            if callable(body):
                stream_body = body()
                data = stream_body
            else:
                data = body
            try:
                with self._lease(key) as session:
                    resp = session.request(
                        method,
                        url,
                        headers=dict(headers or {}),
                        data=data,
                        params=params,
                        stream=stream,
                        timeout=timeout,
                        allow_redirects=method in ("GET", "HEAD"),
                    )
            except requests.exceptions.InvalidHeader:
                # the header value is a credential: never put it in a message or a chain
                raise RegistryError(
                    f"{what} failed: {where}: a credential for {registry} contains "
                    "characters not allowed in an HTTP header",
                    registry=registry,
                    repository=repository,
                    code="registry-bad-credential",
                ) from None
            except (ValueError, UnicodeError):
                raise RegistryError(
                    f"{what} failed: {where}: a header could not be encoded "
                    "(a corrupt token or credential?)",
                    registry=registry,
                    repository=repository,
                    temporary=True,
                    code="registry-bad-header",
                ) from None
            except requests.exceptions.SSLError as exc:
                raise RegistryError(
                    f"{what} failed: {where}: TLS error: {tls_reason(exc)}",
                    registry=registry,
                    repository=repository,
                    code="registry-tls",
                    hint="use --registry-certificate, --skip-tls-verify-registry or "
                    "--insecure-registry for this registry",
                ) from exc
            except requests.RequestException as exc:
                dead = is_dead_host(exc)
                if dead or attempt + 1 >= attempts:
                    raise RegistryError(
                        f"{what} failed: cannot reach {where}: {short_reason(exc)}",
                        registry=registry,
                        repository=repository,
                        temporary=True,
                        code="registry-unreachable" if dead else None,
                        hint=f"is {registry} up and reachable from here?" if dead else None,
                    ) from exc
                self.notify(f"{what}: {where}: {short_reason(exc)}; retrying")
                self._sleep(attempt)
                continue
            finally:
                if stream_body is not None:
                    stream_body.close()
            if resp.status_code in TEMPORARY_STATUS and attempt + 1 < attempts:
                resp.close()
                self.notify(f"{what}: {where}: HTTP {resp.status_code}; retrying")
                self._sleep(attempt, resp.headers.get("Retry-After"))
                continue
            return resp
        raise AssertionError("unreachable")

    def _sleep(self, attempt: int, retry_after: str | None = None) -> None:
        delay = self.options.transport_backoff * (2**attempt)
        if retry_after and retry_after.isdigit():
            delay = max(delay, min(float(retry_after), 10.0))
        time.sleep(delay)

    # -- endpoints and auth ----------------------------------------------------------

    def _schemes(self, registry: str, mode: Mode) -> tuple[str, ...]:
        opts = self.options
        explicit = registry in self._insecure or (
            opts.insecure if mode == "push" else (opts.insecure_pull or opts.insecure)
        )
        if explicit:
            return ("http", "https")
        if auto_insecure(registry):
            return ("https", "http")
        return ("https",)

    def endpoint(
        self,
        registry: str,
        mode: Mode,
        *,
        what: str = "ping",
        retries: int | None = None,
        read_timeout: float | None = None,
    ) -> _Endpoint:
        """Ping ``/v2/`` once per registry (and scheme choice, which only differs
        between pulls and pushes with ``--insecure-pull``-like flags): picks the
        scheme, learns the challenge. Concurrent first callers wait for one ping."""
        key = (registry, self._schemes(registry, mode))
        with self._lock:
            known = self._endpoints.get(key)
            gate = self._pinging.setdefault(key, threading.Lock())
        if known is not None:
            return known
        with gate:
            with self._lock:
                known = self._endpoints.get(key)
            if known is not None:
                return known
            return self._ping(registry, mode, key, what, retries=retries, read_timeout=read_timeout)

    def _ping(
        self,
        registry: str,
        mode: Mode,
        key: tuple[str, tuple[str, ...]],
        what: str,
        *,
        retries: int | None,
        read_timeout: float | None,
    ) -> _Endpoint:
        host = registry if registry != "docker.io" else "registry-1.docker.io"
        errors: list[RegistryError] = []
        for scheme in key[1]:
            base = f"{scheme}://{host}"
            try:
                resp = self.send(
                    (registry, mode),
                    "GET",
                    f"{base}/v2/",
                    registry=registry,
                    repository="",
                    what=what,
                    retries=retries,
                    read_timeout=read_timeout,
                )
            except RegistryError as exc:
                errors.append(exc)
                if exc.code == "registry-unreachable":
                    break
                continue
            with resp:
                if resp.status_code not in (200, 401, 403):
                    # Not a registry answer (e.g. plain HTTP sent to a TLS port).
                    errors.append(error_for(resp, registry=registry, repository="", what=what))
                    continue
                challenge: Challenge | None = None
                if resp.status_code == 401:
                    found = parse_www_authenticate(resp.headers.get("WWW-Authenticate", ""))
                    ranked = [c for c in found if c.scheme == "bearer"] + [
                        c for c in found if c.scheme == "basic"
                    ]
                    challenge = ranked[0] if ranked else None
            found_endpoint = _Endpoint(base, challenge)
            with self._lock:
                self._endpoints[key] = found_endpoint
            return found_endpoint
        # A busy registry is worth retrying; otherwise the TLS failure explains more
        # than what plain HTTP got from a TLS port.
        busy = [e for e in errors if e.temporary]
        tls = [e for e in errors if e.code == "registry-tls"]
        raise (busy or tls or errors)[0]

    def _credential(self, registry: str) -> Credential | None:
        with self._lock:
            if registry in self._credentials:
                return self._credentials[registry]
        cred = self._keychain.resolve(registry)
        with self._lock:
            self._credentials[registry] = cred
        return cred

    def _authorization(
        self, registry: str, endpoint: _Endpoint, scopes: Sequence[str], *, fresh: bool, mode: Mode
    ) -> str | None:
        challenge = endpoint.challenge
        if challenge is None:
            return None
        cred = self._credential(registry)
        if challenge.scheme == "basic":
            if cred is None or not (cred.username or cred.password):
                return None
            return _basic_auth(cred.username, cred.password)
        if challenge.scheme != "bearer":
            raise AuthError(
                f"{registry} asks for unsupported authentication scheme {challenge.scheme!r}",
                registry=registry,
            )
        if cred is not None and cred.registry_token:
            return f"Bearer {cred.registry_token}"
        key = scope_string(scopes)
        if not fresh:
            token = self._tokens.get(registry, key)
            if token is not None:
                return f"Bearer {token}"
        token, expires_in = "", 0.0
        for attempt in range(self.options.transport_retries + 1):
            try:
                token, expires_in = self._fetch_token(
                    registry, challenge, sorted(set(scopes)), cred, mode
                )
                break
            except RegistryError as exc:
                if not exc.temporary or attempt >= self.options.transport_retries:
                    raise
                self.notify(f"{exc.message}; asking again")
                self._sleep(attempt)
        self._tokens.put(registry, key, token, expires_in)
        return f"Bearer {token}"

    def _fetch_token(
        self,
        registry: str,
        challenge: Challenge,
        scopes: Sequence[str],
        cred: Credential | None,
        mode: Mode,
    ) -> tuple[str, float]:
        realm = challenge.realm
        if not realm.startswith(("https://", "http://")):
            raise AuthError(
                f"{registry} sent a bearer challenge without a usable realm", registry=registry
            )
        repo = scopes[0].split(":")[1] if scopes and scopes[0].count(":") >= 2 else ""
        headers: dict[str, str] = {}
        if cred is not None and cred.identity_token:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": cred.identity_token,
                "service": challenge.service,
                "scope": " ".join(scopes),
                "client_id": "pykaniko",
            }
            body = "&".join(f"{k}={quote(v, safe='')}" for k, v in form.items() if v).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            resp = self.send(
                (registry, mode),
                "POST",
                realm,
                registry=registry,
                repository=repo,
                what="token request",
                headers=headers,
                body=body,
            )
        else:
            if cred is not None and (cred.username or cred.password):
                headers["Authorization"] = _basic_auth(cred.username, cred.password)
            params: list[tuple[str, str]] = (
                [("service", challenge.service)] if challenge.service else []
            )
            params.extend(("scope", s) for s in scopes)
            if cred is not None and cred.username:
                params.append(("account", cred.username))
            query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params)
            url = realm + ("&" if "?" in realm else "?") + query
            resp = self.send(
                (registry, mode),
                "GET",
                url,
                registry=registry,
                repository=repo,
                what="token request",
                headers=headers,
            )
        with resp:
            if resp.status_code != 200:
                err = error_for(resp, registry=registry, repository=repo, what="token request")
                if resp.status_code in (400, 401, 403):
                    raise AuthError(
                        f"{registry} refused the credentials for {repo or 'the registry'} "
                        f"(token server HTTP {resp.status_code})",
                        registry=registry,
                        repository=repo,
                        status=resp.status_code,
                        hint=f"check the credentials for {registry}",
                    )
                raise err
            try:
                data = resp.json()
            except (ValueError, requests.RequestException):
                data = None
        token = (
            str(data.get("token") or data.get("access_token") or "")
            if isinstance(data, dict)
            else ""
        )
        try:
            expires = float(data.get("expires_in") or 60) if isinstance(data, dict) else 0.0
        except (TypeError, ValueError):
            expires = 0.0
        if not _TOKEN.fullmatch(token) or expires <= 0:
            # a broken or garbled answer (a flipped byte, a cut body) is worth asking again
            raise RegistryError(
                f"token request for {registry}/{repo or '(registry)'}: the token server's "
                "answer is not a usable token",
                registry=registry,
                repository=repo,
                temporary=True,
                code="registry-broken-token",
            )
        return token, expires

    # -- authenticated registry requests ------------------------------------------------

    def request(
        self,
        method: str,
        registry: str,
        repository: str,
        path: str,
        *,
        scopes: Sequence[str],
        mode: Mode,
        what: str,
        expected: Sequence[int] = (200,),
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        params: Mapping[str, str] | None = None,
        stream: bool = False,
        retries: int | None = None,
        read_timeout: float | None = None,
    ) -> requests.Response:
        """A request to ``/v2/...`` (``path``) or an absolute ``Location`` URL.

        Statuses in ``expected`` are returned (a HEAD passes 404 to take it as an
        answer); anything else raises the mapped error. A bearer 401 is answered
        once with a freshly fetched token for exactly ``scopes``.
        """
        endpoint = self.endpoint(
            registry, mode, what=what, retries=retries, read_timeout=read_timeout
        )
        url = (
            urljoin(endpoint.base + "/", path)
            if not path.startswith(("http://", "https://"))
            else path
        )
        fresh = False
        for _round in range(2):
            auth = self._authorization(registry, endpoint, scopes, fresh=fresh, mode=mode)
            all_headers = dict(headers or {})
            if auth and urlsplit(url).netloc == urlsplit(endpoint.base).netloc:
                # an upload Location on another host (a CDN) never gets our credentials
                all_headers["Authorization"] = auth
            resp = self.send(
                (registry, mode),
                method,
                url,
                registry=registry,
                repository=repository,
                what=what,
                headers=all_headers,
                body=body,
                params=params,
                stream=stream,
                retries=retries,
                read_timeout=read_timeout,
            )
            if resp.status_code == 401 and endpoint.challenge is not None and not fresh:
                challenge = parse_www_authenticate(resp.headers.get("WWW-Authenticate", ""))
                bearer = [c for c in challenge if c.scheme == "bearer"]
                if endpoint.challenge.scheme == "bearer" and bearer:
                    resp.close()
                    fresh = True
                    scopes = sorted({*scopes, *bearer[0].scopes})
                    continue
            if resp.status_code == 401 and endpoint.challenge is None:
                # The ping was open but this repository is not: learn the challenge.
                found = parse_www_authenticate(resp.headers.get("WWW-Authenticate", ""))
                if found and not fresh:
                    resp.close()
                    endpoint = _Endpoint(endpoint.base, found[0])
                    with self._lock:
                        self._endpoints[(registry, self._schemes(registry, mode))] = endpoint
                    fresh = True
                    continue
            if resp.status_code in expected:
                return resp
            try:
                raise error_for(resp, registry=registry, repository=repository, what=what)
            finally:
                resp.close()
        raise AssertionError("unreachable")


def _basic_auth(username: str, password: str) -> str:
    """An ``Authorization: Basic`` value (UTF-8, as Docker sends it)."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
