"""The facade the executor uses: pull, fetch layers, push, check push permission and
download, over one transport with shared sessions and token cache."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pykaniko.image.blobstore import BlobStore
from pykaniko.image.manifest import Descriptor, Manifest
from pykaniko.image.platform import Platform
from pykaniko.image.reference import Reference
from pykaniko.registry import http, pull, push
from pykaniko.registry.api import RegistryAPI
from pykaniko.registry.auth import Credential, Keychain, RecordingKeychain
from pykaniko.registry.http import DownloadResult
from pykaniko.registry.mirrors import split_mirror
from pykaniko.registry.options import RegistryOptions
from pykaniko.registry.pull import PulledImage
from pykaniko.registry.transport import Notify, Transport

__all__ = ["RegistryClient"]


class RegistryClient:
    """One client per build; thread-safe. Holds no global state."""

    def __init__(
        self,
        options: RegistryOptions,
        keychain: Keychain,
        *,
        user_agent: str = "pykaniko/0.1",
        notify: Notify | None = None,
    ) -> None:
        """``notify`` receives one-line notices (retries, mirror fallbacks) to log."""
        self.options = options
        plain_mirrors = [
            host
            for spec in (
                *options.mirrors,
                *(v for vs in options.registry_maps.values() for v in vs),
            )
            for host, _prefix, plain in [split_mirror(spec)]
            if plain
        ]
        self._keychain = RecordingKeychain(keychain)
        self.transport = Transport(
            options,
            self._keychain,
            user_agent=user_agent,
            extra_insecure=plain_mirrors,
            notify=notify,
        )
        self.api = RegistryAPI(self.transport)

    def pull(self, ref: Reference, platform: Platform, store: BlobStore) -> PulledImage:
        """Resolve ``ref`` (mirrors and maps applied) to a platform manifest; its
        config blob is fetched into ``store`` and verified. Layers are not fetched."""
        return pull.pull_image(self.api, ref, platform, store, self.options)

    def fetch_layers(
        self, pulled: PulledImage, layers: Sequence[Descriptor], store: BlobStore
    ) -> list[Path]:
        """Paths of ``layers`` in ``store`` (same order), fetching those missing."""
        return pull.fetch_layers(self.api, pulled, layers, store, self.options)

    def push(
        self,
        manifest: Manifest,
        refs: Sequence[Reference],
        store: BlobStore,
        *,
        sources: Sequence[PulledImage] = (),
    ) -> str:
        """Push to every ref (blobs, then the manifest, then tags); the manifest digest."""
        return push.push_image(self.api, manifest, refs, store, self.options, sources=sources)

    def used_credentials(self) -> list[tuple[str, Credential]]:
        """(registry, credential) for every credential this client has resolved: the
        passwords and tokens the secret-leak check searches the image for."""
        return self._keychain.resolved()

    def check_push_permission(self, refs: Sequence[Reference]) -> None:
        """Fail before the build when a destination refuses pushes."""
        if self.options.skip_push_permission_check:
            return
        seen: set[str] = set()
        for ref in refs:
            if ref.name not in seen:
                seen.add(ref.name)
                self.api.check_push(ref)

    def download(self, url: str, dest: Path, *, checksum: str | None = None) -> DownloadResult:
        """Fetch ``url`` to ``dest`` for ``ADD <url>`` (no registry auth is sent)."""
        return http.download(self.transport, url, dest, checksum=checksum)

    def close(self) -> None:
        """Close pooled connections; the client must not be used afterwards."""
        self.transport.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
