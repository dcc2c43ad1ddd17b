"""Shared fixtures: real loopback registries (plain, Basic, Bearer) and a fault proxy.

A failing test that used a registry gets the registry's log tail as a report section.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.support.registry import (
    FaultProxy,
    RegistryServer,
    TokenServer,
    htpasswd_line,
    make_tls_cert,
    registry_available,
)

AUTH_USER = "alice"
AUTH_PASSWORD = "s3cret-Pa55"


def _need_registry() -> None:
    if not registry_available():
        pytest.skip("docker-registry is not installed")


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A plain-HTTP registry without auth, shared by the whole session."""
    _need_registry()
    server = RegistryServer(tmp_path_factory.mktemp("registry"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A registry behind htpasswd Basic auth; user ``AUTH_USER`` / ``AUTH_PASSWORD``."""
    _need_registry()
    work = tmp_path_factory.mktemp("auth-registry")
    htpasswd = work / "htpasswd"
    htpasswd.write_text(htpasswd_line(AUTH_USER, AUTH_PASSWORD) + "\n")
    server = RegistryServer(work / "registry", htpasswd=htpasswd)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    """A loopback token server signing RS256 JWTs; see ``TokenServer`` for its users."""
    pytest.importorskip("cryptography")
    server = TokenServer(tmp_path_factory.mktemp("token-server"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def token_registry(
    tmp_path_factory: pytest.TempPathFactory, token_server: TokenServer
) -> Iterator[RegistryServer]:
    """A registry with Distribution's ``auth: token`` trusting ``token_server``."""
    _need_registry()
    server = RegistryServer(
        tmp_path_factory.mktemp("token-registry"), token=token_server.auth_config()
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A registry serving HTTPS with a self-signed certificate (``tls_registry.ca``)."""
    _need_registry()
    pytest.importorskip("cryptography")
    work = tmp_path_factory.mktemp("tls-registry")
    cert, key = make_tls_cert(work / "tls")
    server = RegistryServer(work / "registry", tls=(cert, key))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fault_proxy(registry: RegistryServer) -> Iterator[FaultProxy]:
    """A loopback proxy in front of ``registry`` that injects faults (rate 0 by default)."""
    proxy = FaultProxy(registry.host)
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        funcargs = getattr(item, "funcargs", {})
        for name, value in funcargs.items():
            if isinstance(value, RegistryServer):
                report.sections.append((f"registry log ({name})", value.log_tail()))
    return report


@pytest.fixture
def blob_root(tmp_path: Path) -> Path:
    return tmp_path / "store"
