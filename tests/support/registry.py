"""Real registries for tests: Debian's ``docker-registry`` (Distribution 2.8) on a free
loopback port with its own config, plus the loopback helpers the auth and fault tests
need (a JWT token server and a fault-injecting HTTP proxy).

Everything binds 127.0.0.1 only and is stopped by the fixture that started it.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import http.client
import json
import random
import re
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any, ClassVar, Final

__all__ = [
    "FaultProxy",
    "FaultRule",
    "REQUEST_KINDS",
    "RESPONSE_KINDS",
    "RegistryServer",
    "TokenServer",
    "free_port",
    "make_tls_cert",
    "htpasswd_line",
    "registry_available",
]

REGISTRY_BIN: Final = "docker-registry"


def registry_available() -> bool:
    return shutil.which(REGISTRY_BIN) is not None


def free_port() -> int:
    """A port nobody listens on right now (another process may hold 5000)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def htpasswd_line(user: str, password: str) -> str:
    """A bcrypt htpasswd entry; Distribution refuses every other hash kind."""
    out = subprocess.run(
        ["htpasswd", "-Bbn", user, password], check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


@dataclass(frozen=True)
class TokenAuthConfig:
    """What Distribution's ``auth: token`` needs to trust a token server."""

    realm: str
    service: str
    issuer: str
    rootcertbundle: Path


class RegistryServer:
    """One ``docker-registry serve`` process with filesystem storage in ``workdir``.

    ``htpasswd`` (file path) turns on Basic auth; ``token`` turns on Bearer auth. The
    log is kept in ``workdir/registry.log`` so a failing test can show it.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        htpasswd: Path | None = None,
        tls: tuple[Path, Path] | None = None,
        token: TokenAuthConfig | None = None,
        start_timeout: float = 15.0,
    ) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage = workdir / "storage"
        self.log_path = workdir / "registry.log"
        self._htpasswd = htpasswd
        self._tls = tls
        self.ca = tls[0] if tls else None
        self._token = token
        self._timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.port = 0
        self._start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self._tls else 'http'}://{self.host}"

    def _config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text"},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": self.host, "headers": {"X-Content-Type-Options": ["nosniff"]}},
        }
        if self._tls is not None:
            cfg["http"]["tls"] = {"certificate": str(self._tls[0]), "key": str(self._tls[1])}
        if self._htpasswd is not None:
            cfg["auth"] = {"htpasswd": {"realm": "pykaniko-test", "path": str(self._htpasswd)}}
        elif self._token is not None:
            cfg["auth"] = {
                "token": {
                    "realm": self._token.realm,
                    "service": self._token.service,
                    "issuer": self._token.issuer,
                    "rootcertbundle": str(self._token.rootcertbundle),
                }
            }
        return cfg

    def _start(self) -> None:
        last = ""
        for _attempt in range(3):
            self.port = free_port()
            config = self.workdir / "config.yml"
            # JSON is YAML: no YAML writer needed.
            config.write_text(json.dumps(self._config(), indent=1))
            self._log = open(self.log_path, "ab")  # noqa: SIM115  closed in stop()
            self._proc = subprocess.Popen(
                [REGISTRY_BIN, "serve", str(config)],
                stdout=self._log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            if self._wait_up():
                return
            last = self.log_tail()
            self.stop()
        raise RuntimeError(f"docker-registry did not start:\n{last}")

    def _wait_up(self) -> bool:
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                return False
            try:
                context = ssl._create_unverified_context() if self._tls else None
                with urllib.request.urlopen(f"{self.url}/v2/", timeout=1, context=context):
                    return True
            except urllib.error.HTTPError as exc:
                if exc.code == 401:
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> RegistryServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def make_tls_cert(workdir: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate (its own CA) for ``host``; returns (cert, key) paths."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    workdir.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = workdir / "registry.crt", workdir / "registry.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _QuietServer(ThreadingHTTPServer):
    """Client disconnects are part of the tests (faults): do not print tracebacks."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _libtrust_key_id(der_public_key: bytes) -> str:
    """The ``kid`` Distribution computes for a trusted key: base32 of 240 bits of its
    SHA-256 fingerprint, in colon-separated groups of four."""
    encoded = base64.b32encode(hashlib.sha256(der_public_key).digest()[:30]).decode()
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


@dataclass
class TokenServer:
    """A loopback token server for Distribution's ``auth: token``.

    ``grants`` maps a user to (password, {repository prefix: allowed actions}); the
    anonymous user is ``""``. Every request is recorded in ``issued`` as (user,
    requested scopes) so tests can check which scopes a client asked for.
    """

    workdir: Path
    grants: dict[str, tuple[str, dict[str, frozenset[str]]]] = field(
        default_factory=lambda: {
            "alice": ("s3cret-Pa55", {"": frozenset({"pull", "push"})}),
            "reader": ("read-only-pw", {"": frozenset({"pull"})}),
        }
    )
    refresh_tokens: dict[str, str] = field(default_factory=lambda: {"refresh-alice": "alice"})
    service: str = "pykaniko-test-registry"
    issuer: str = "pykaniko-test-issuer"
    issued: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)

    SERVICE_PATH: ClassVar[str] = "/token"

    def __post_init__(self) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.workdir.mkdir(parents=True, exist_ok=True)
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pykaniko test token")])
        now = datetime.datetime.now(datetime.UTC)
        one_day = datetime.timedelta(days=1)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - one_day)
            .not_valid_after(now + one_day)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.cert_path = self.workdir / "token.crt"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self._kid = _libtrust_key_id(der)
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner._handle(self)

            def do_POST(self) -> None:
                owner._handle_refresh(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{self.SERVICE_PATH}"

    def auth_config(self) -> TokenAuthConfig:
        return TokenAuthConfig(self.realm, self.service, self.issuer, self.cert_path)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def requested_scopes(self) -> list[str]:
        with self._lock:
            return [s for _u, scopes in self.issued for s in scopes]

    def _user(self, header: str | None) -> str | None:
        """The authenticated user, ``""`` when anonymous, None on bad credentials."""
        if not header:
            return ""
        kind, _, value = header.partition(" ")
        if kind.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return None
        entry = self.grants.get(user)
        return user if entry is not None and entry[0] == password else None

    def _allowed(self, user: str, repo: str, wanted: list[str]) -> list[str]:
        entry = self.grants.get(user)
        if entry is None:
            return []
        ok: set[str] = set()
        for prefix, actions in entry[1].items():
            if repo.startswith(prefix):
                ok |= actions
        return [a for a in wanted if a in ok]

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        from urllib.parse import parse_qs, urlsplit

        parts = urlsplit(req.path)
        query = parse_qs(parts.query)
        user = self._user(req.headers.get("Authorization"))
        if parts.path != self.SERVICE_PATH or user is None:
            req.send_response(401)
            req.send_header("Content-Length", "0")
            req.end_headers()
            return
        scopes = tuple(s for value in query.get("scope", []) for s in value.split(" ") if s)
        self._issue(req, user, scopes, key="token")

    def _issue(
        self, req: BaseHTTPRequestHandler, user: str, scopes: tuple[str, ...], *, key: str
    ) -> None:
        with self._lock:
            self.issued.append((user, scopes))
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            repo, _, actions = rest.rpartition(":")
            if kind != "repository" or not repo:
                continue
            granted = self._allowed(user, repo, actions.split(","))
            if granted:
                access.append({"type": kind, "name": repo, "actions": granted})
        body = json.dumps({key: self._sign(user, access), "expires_in": 300}).encode()
        req.send_response(200)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)

    def _handle_refresh(self, req: BaseHTTPRequestHandler) -> None:
        """The OAuth2 refresh-token grant Docker uses for ``identitytoken`` logins."""
        from urllib.parse import parse_qs

        length = int(req.headers.get("Content-Length") or 0)
        form = parse_qs(req.rfile.read(length).decode())
        user = self.refresh_tokens.get(form.get("refresh_token", [""])[0])
        if form.get("grant_type") != ["refresh_token"] or user is None:
            req.send_response(401)
            req.send_header("Content-Length", "0")
            req.end_headers()
            return
        scopes = tuple(s for value in form.get("scope", []) for s in value.split(" ") if s)
        self._issue(req, user, scopes, key="access_token")

    def _sign(self, user: str, access: list[dict[str, Any]]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "kid": self._kid}
        claims = {
            "iss": self.issuer,
            "sub": user,
            "aud": self.service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": _b64url(random.randbytes(12)),
            "access": access,
        }
        signing_input = (
            _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        )
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64url(signature)


FAULT_KINDS: Final = ("503", "reset", "truncate", "corrupt")
"""The kinds the random mode picks from by default (responses only, as before)."""
RESPONSE_KINDS: Final = ("503", "reset", "truncate", "reset-mid-body", "corrupt", "stall")
REQUEST_KINDS: Final = ("corrupt-request", "truncate-request", "reset-request")
_HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
    }
)


@dataclass
class FaultRule:
    """Inject ``kind`` into the next ``times`` requests whose method is ``method``
    (``*`` for any) and whose path matches the regular expression ``path``."""

    kind: str
    method: str = "*"
    path: str = ""
    times: int = 1

    def matches(self, method: str, path: str) -> bool:
        return (
            self.times > 0
            and self.method in ("*", method)
            and re.search(self.path, path) is not None
        )


class _CountingServer(_QuietServer):
    """Counts accepted TCP connections (to check that clients keep connections alive)."""

    accepted = 0

    def verify_request(self, request: Any, client_address: Any) -> bool:
        self.accepted += 1
        return True


class FaultProxy:
    """A loopback HTTP proxy in front of a loopback registry that injects faults.

    Faults come from ``rules`` (:class:`FaultRule`, deterministic: "corrupt the next
    GET of this blob once") and, with probability ``rate``, from ``kinds`` at random.
    Response kinds: ``503`` (not forwarded), ``reset`` (connection dropped before
    forwarding), ``truncate`` (half the response body, then a clean close),
    ``reset-mid-body`` (half the body, then a TCP reset), ``corrupt`` (one body byte
    flipped), ``stall`` (no answer for ``stall_seconds``, then as usual: a registry too
    slow to wait for). Request kinds: ``corrupt-request`` (one byte of the request body
    flipped before it is forwarded), ``truncate-request`` (half the request body forwarded
    under the full ``Content-Length``, then both connections dropped: the registry
    sees an upload that broke off), ``reset-request`` (a reset after half the request
    body, nothing forwarded). A response kind on a body-less response, or a request
    kind on a body-less request, becomes a 503. At most ``max_faults`` random faults
    are injected, so a retrying client always finishes. The ``Host`` header is
    forwarded as sent, so upload ``Location``s point back here. ``connections``
    counts the TCP connections clients opened.
    """

    def __init__(
        self,
        upstream: str,
        *,
        rate: float = 0.0,
        kinds: tuple[str, ...] = FAULT_KINDS,
        max_faults: int = 100,
        seed: int = 1234,
    ) -> None:
        host, _, port = upstream.rpartition(":")
        if host not in ("127.0.0.1", "localhost"):
            raise ValueError("the fault proxy only fronts loopback registries")
        self.upstream = (host, int(port))
        self.rate = rate
        self.kinds = kinds
        self.max_faults = max_faults
        self.faults: list[tuple[str, str, str]] = []
        self.rules: list[FaultRule] = []
        self.log: list[tuple[str, str, int]] = []
        self.requests = 0
        self.stall_seconds = 30.0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                owner._handle(self)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = _CountingServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def connections(self) -> int:
        return self._httpd.accepted

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def configure(self, *, rate: float, kinds: tuple[str, ...] = FAULT_KINDS) -> None:
        with self._lock:
            self.rate = rate
            self.kinds = kinds

    def add_rule(self, kind: str, method: str = "*", path: str = "", times: int = 1) -> None:
        """Inject ``kind`` into the next ``times`` matching requests (see :class:`FaultRule`)."""
        if kind not in RESPONSE_KINDS + REQUEST_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}")
        with self._lock:
            self.rules.append(FaultRule(kind, method, path, times))

    def _pick(self, method: str, path: str) -> str | None:
        with self._lock:
            self.requests += 1
            for rule in self.rules:
                if rule.matches(method, path):
                    rule.times -= 1
                    self.faults.append((rule.kind, method, path))
                    return rule.kind
            if len(self.faults) >= self.max_faults or self._rng.random() >= self.rate:
                return None
            kind = self._rng.choice(self.kinds)
            self.faults.append((kind, method, path))
            return kind

    @staticmethod
    def _read_body(req: BaseHTTPRequestHandler, limit: int | None = None) -> bytes:
        if req.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while limit is None or len(out) < limit:
                size = int(req.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while req.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += req.rfile.read(size)
                req.rfile.readline()
            return bytes(out[:limit])
        length = int(req.headers.get("Content-Length") or 0)
        if limit is not None:
            length = min(length, limit)
        return req.rfile.read(length) if length else b""

    @staticmethod
    def _reset(req: BaseHTTPRequestHandler) -> None:
        with contextlib.suppress(OSError):
            req.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        req.close_connection = True

    @staticmethod
    def _unavailable(req: BaseHTTPRequestHandler) -> None:
        payload = b'{"errors":[{"code":"UNAVAILABLE","message":"injected fault"}]}'
        req.send_response(503)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(payload)))
        req.end_headers()
        req.wfile.write(payload)

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        kind = self._pick(req.command, req.path)
        declared = int(req.headers.get("Content-Length") or 0)
        if kind == "reset-request" and declared > 1:
            self._read_body(req, limit=declared // 2)
            self._reset(req)
            return
        body = self._read_body(req)
        if kind in REQUEST_KINDS and not body:
            kind = "503"
        if kind == "reset":
            self._reset(req)
            return
        if kind == "stall":
            time.sleep(self.stall_seconds)
            kind = None
        if kind == "503" or (kind in RESPONSE_KINDS and req.command != "GET"):
            self._unavailable(req)
            return
        headers = {k: v for k, v in req.headers.items() if k.lower() not in _HOP_BY_HOP}
        if body or req.command in ("PUT", "POST", "PATCH"):
            headers["Content-Length"] = str(len(body))
        if kind == "corrupt-request":
            mid = len(body) // 2
            body = body[:mid] + bytes([body[mid] ^ 0xFF]) + body[mid + 1 :]
        if kind == "truncate-request":
            self._forward_half(req.command, req.path, body, headers)
            self._reset(req)
            return
        conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            conn.request(req.command, req.path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            out_headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in _HOP_BY_HOP]
            status = resp.status
        except OSError:
            self._reset(req)
            return
        finally:
            conn.close()
        with self._lock:
            self.log.append((req.command, req.path, status))
        if kind in ("truncate", "reset-mid-body", "corrupt") and not data:
            kind = "503-late"
        req.send_response(503 if kind == "503-late" else status)
        for k, v in out_headers:
            req.send_header(k, v)
        req.end_headers()
        if kind in ("truncate", "reset-mid-body"):
            req.wfile.write(data[: len(data) // 2])
            req.wfile.flush()
            if kind == "reset-mid-body":
                self._reset(req)
            else:
                req.close_connection = True
            return
        if kind == "corrupt":
            mid = len(data) // 2
            data = data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1 :]
        if req.command != "HEAD":
            req.wfile.write(data)

    def _forward_half(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> None:
        """Send the request with half its body, then hang up: an upload broken mid-body."""
        with contextlib.suppress(OSError), socket.create_connection(self.upstream, timeout=5) as s:
            head = f"{method} {path} HTTP/1.1\r\n" + "".join(
                f"{k}: {v}\r\n" for k, v in headers.items()
            )
            s.sendall(head.encode("latin-1") + b"\r\n" + body[: len(body) // 2])
            time.sleep(0.05)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
