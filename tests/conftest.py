"""Shared fixtures: real loopback registries (plain, Basic, Bearer), a fault proxy, and
the debootstrapped Debian base the parity and container suites build on.

A failing test that used a registry gets the registry's log tail as a report section.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.parity.cli import run_pykaniko
from tests.support.debian import (
    SUITE,
    DebianBase,
    debian_dockerfile,
    debian_mirror,
    debootstrap,
    mirror_unreachable,
    unmount_below,
)
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


@pytest.fixture(scope="session")
def debian_base(registry: RegistryServer) -> Iterator[DebianBase]:
    """A debootstrapped bookworm (minbase), built by the pykaniko CLI from ``FROM
    scratch`` + ``ADD rootfs.tar /`` + ``ENV PATH`` + ``CMD ["bash"]`` and pushed to
    ``{registry.host}/debian:bookworm``, once per session for every suite that needs
    it. Everything lives in a tmpfs directory removed at the end of the session."""
    if shutil.which("debootstrap") is None:
        pytest.skip("debootstrap is not installed")
    if os.geteuid() != 0:
        pytest.skip("debootstrap needs root")
    mirror = debian_mirror()
    if why := mirror_unreachable(mirror):
        pytest.skip(f"the Debian mirror cannot be reached: {why}")

    shm = Path("/dev/shm")
    work = Path(tempfile.mkdtemp(prefix="debian-base-", dir=shm if shm.is_dir() else None))
    try:
        target = work / "target"
        context = work / "context"
        context.mkdir()
        debootstrap(target, mirror)
        # The downloaded .debs stay in the minbase tree; drop them as `apt-get clean`
        # does (Debian's own images ship without them): 30 MB less to push and pull.
        for deb in (target / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        unmount_below(target)
        subprocess.run(
            ["tar", "--numeric-owner", "-C", str(target), "-cf", str(context / "rootfs.tar"), "."],
            check=True,
            capture_output=True,
            stdin=subprocess.DEVNULL,
        )
        shutil.rmtree(target)
        dockerfile = context / "Dockerfile"
        dockerfile.write_text(debian_dockerfile())
        ref = f"{registry.host}/debian:{SUITE}"
        run_pykaniko(context, dockerfile, ref, kaniko_dir=work / "kaniko")
        yield DebianBase(ref=ref, context=context, mirror=mirror)
    finally:
        unmount_below(work)
        shutil.rmtree(work, ignore_errors=True)


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
