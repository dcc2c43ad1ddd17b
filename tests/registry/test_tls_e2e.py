"""HTTPS registries: an extra CA from ``--registry-certificate``, skip-verify per
registry, and a clear error (with a hint) when the certificate is not trusted."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pykaniko.errors import RegistryError
from pykaniko.image.blobstore import BlobStore
from pykaniko.image.platform import Platform
from pykaniko.image.reference import parse_reference
from pykaniko.registry import RegistryClient, RegistryOptions, StaticKeychain
from pykaniko.registry.transport import cert_dir_files
from tests.registry.imagegen import make_image
from tests.support.registry import RegistryServer

pytestmark = pytest.mark.e2e
LINUX = Platform("linux", "amd64")


def test_extra_ca_is_trusted(tls_registry: RegistryServer, tmp_path: Path) -> None:
    assert tls_registry.ca is not None
    options = RegistryOptions(registry_certificates={tls_registry.host: str(tls_registry.ca)})
    with RegistryClient(options, StaticKeychain()) as client:
        store = BlobStore(tmp_path / "s")
        manifest, _ = make_image(store, [{"tls": b"yes"}])
        ref = parse_reference(f"{tls_registry.host}/tls/app:1")
        assert client.push(manifest, [ref], store) == manifest.digest
        assert client.pull(ref, LINUX, BlobStore(tmp_path / "d")).digest == manifest.digest
        assert client.transport.endpoint(ref.registry, "pull").base.startswith("https://")


def test_untrusted_certificate_is_explained(tls_registry: RegistryServer, tmp_path: Path) -> None:
    with pytest.raises(RegistryError) as info:
        RegistryClient(RegistryOptions(), StaticKeychain()).pull(
            parse_reference(f"{tls_registry.host}/tls/app:1"), LINUX, BlobStore(tmp_path)
        )
    assert info.value.code == "registry-tls"
    assert "certificate verify failed" in str(info.value)
    assert "TLS" in str(info.value)
    assert "--registry-certificate" in (info.value.hint or "")


@pytest.mark.filterwarnings("ignore:Unverified HTTPS request")
def test_skip_verify_for_one_registry(tls_registry: RegistryServer, tmp_path: Path) -> None:
    options = RegistryOptions(skip_tls_verify_registries=(tls_registry.host,))
    store = BlobStore(tmp_path / "s")
    manifest, _ = make_image(store, [{"tls": b"skip"}])
    ref = parse_reference(f"{tls_registry.host}/tls/skip:1")
    with RegistryClient(options, StaticKeychain()) as client:
        assert client.push(manifest, [ref], store) == manifest.digest


def test_ca_file_in_ssl_cert_dir_is_trusted(
    tls_registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As Kaniko's image: a CA mounted into ``$SSL_CERT_DIR`` under any name is trusted
    (OpenSSL alone would only find it under its subject-hash name)."""
    assert tls_registry.ca is not None
    certs = tmp_path / "certs"
    certs.mkdir()
    shutil.copyfile(tls_registry.ca, certs / "my-registry-ca.crt")
    (certs / "README").write_text("not a certificate\n")
    monkeypatch.setenv("SSL_CERT_DIR", str(certs))
    store = BlobStore(tmp_path / "s")
    manifest, _ = make_image(store, [{"tls": b"dir"}])
    ref = parse_reference(f"{tls_registry.host}/tls/cert-dir:1")
    with RegistryClient(RegistryOptions(), StaticKeychain()) as client:
        assert client.push(manifest, [ref], store) == manifest.digest


def test_cert_dir_files(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (one / "b.crt").write_text("b")
    (one / "a.pem").write_text("a")
    (one / "sub").mkdir()
    (two / "bundle.crt").write_text("bundle")
    found = cert_dir_files(f"{one}::{two}:{tmp_path / 'missing'}", str(two / "bundle.crt"))
    assert found == (str(one / "a.pem"), str(one / "b.crt"))
    assert cert_dir_files("") == ()
