"""HTTPS registries: an extra CA from ``--registry-certificate``, skip-verify per
registry, and a clear error (with a hint) when the certificate is not trusted."""

from __future__ import annotations

from pathlib import Path

import pytest

from pykaniko.errors import RegistryError
from pykaniko.image.blobstore import BlobStore
from pykaniko.image.platform import Platform
from pykaniko.image.reference import parse_reference
from pykaniko.registry import RegistryClient, RegistryOptions, StaticKeychain
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
