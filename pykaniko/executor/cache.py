"""The layer cache (``--cache``): one small image per step key in the cache repository,
tagged by the key, as Kaniko lays it out.

Keys are pure functions (:func:`step_key`) over an unambiguous JSON encoding of the
parent key, the step's expanded text and what else decides its result (a RUN's
environment, a COPY's source digests). Every step extends the chain, so a change
anywhere invalidates what follows; unlike Kaniko, lookups go on after a miss (a step
whose layer was empty, or whose cache push failed, is simply rebuilt).

A cache failure never fails a build: it is a miss, reported as a warning.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pykaniko.errors import ConfigError, NotFoundError, PykanikoError
from pykaniko.image import mediatypes as mt
from pykaniko.image.blobstore import BlobStore
from pykaniko.image.config import History, ImageConfig
from pykaniko.image.manifest import Descriptor, Manifest
from pykaniko.image.platform import Platform
from pykaniko.image.reference import Reference, parse_reference
from pykaniko.registry import PulledImage, RegistryClient

__all__ = ["CacheHit", "LayerCache", "cache_repository", "parse_ttl", "seed_key", "step_key"]

_KEY_VERSION = "pykaniko-cache-v1"


def _digest(parts: Sequence[object]) -> str:
    encoded = json.dumps([_KEY_VERSION, *parts], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()


def seed_key(base: str, platform: Platform) -> str:
    """The key a stage starts from: its base (manifest digest, ``scratch`` or the key of
    the stage it is built on) and the target platform (Kaniko leaves that out and
    poisons caches across architectures)."""
    return _digest(["seed", base, str(platform)])


def step_key(
    parent: str,
    text: str,
    *,
    env: Sequence[str] = (),
    inputs: Sequence[tuple[str, str]] = (),
) -> str:
    """The key of one step: sorted env and (path, digest) inputs, never secret values."""
    return _digest(["step", parent, text, sorted(env), sorted(inputs)])


_TTL = re.compile(r"(\d+(?:\.\d+)?)(h|m|s)")


def parse_ttl(text: str) -> float:
    """``--cache-ttl`` in Go duration syntax (``336h``, ``90m``, ``1h30m``) -> seconds."""
    spec = text.strip()
    pos = 0
    total = 0.0
    for m in _TTL.finditer(spec):
        if m.start() != pos:
            break
        total += float(m.group(1)) * {"h": 3600, "m": 60, "s": 1}[m.group(2)]
        pos = m.end()
    if pos != len(spec) or not spec:
        raise ConfigError(f"--cache-ttl={text}: expected a duration such as 336h or 90m")
    return total


@dataclass(frozen=True, slots=True)
class CacheHit:
    """A cached layer: its descriptor and diff_id, and the image that holds the blob."""

    layer: Descriptor
    diff_id: str
    image: PulledImage


@dataclass
class LayerCache:
    """``<repo>:<key>`` images in a registry repository."""

    registry: RegistryClient
    repo: Reference
    platform: Platform
    store: BlobStore
    ttl_seconds: float
    push: bool = True

    def get(self, key: str) -> CacheHit | None:
        try:
            image = self.registry.pull(self.repo.with_tag(key), self.platform, self.store)
        except NotFoundError:
            return None
        if len(image.manifest.layers) != 1 or len(image.config.diff_ids) != 1:
            return None
        if self._expired(image.config.created):
            return None
        return CacheHit(image.manifest.layers[0], image.config.diff_ids[0], image)

    def _expired(self, created: str) -> bool:
        try:
            when = datetime.fromisoformat(created.replace("Z", "+00:00"))
        except ValueError:
            return True
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return (datetime.now(UTC) - when).total_seconds() > self.ttl_seconds

    def put(
        self,
        key: str,
        layer: Descriptor,
        diff_id: str,
        created_by: str,
        sources: Sequence[PulledImage] = (),
    ) -> None:
        """Push the one-layer cache image for ``key`` (the layer blob is in the store)."""
        if not self.push:
            return
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        config = ImageConfig(
            architecture=self.platform.architecture,
            os=self.platform.os,
            variant=self.platform.variant,
            created=now,
            diff_ids=(diff_id,),
            history=(History(created=now, created_by=created_by),),
        )
        raw = config.to_json()
        config_digest = self.store.put_bytes(raw)
        docker = layer.media_type == mt.DOCKER_LAYER_GZIP
        manifest = Manifest.build(
            media_type=mt.DOCKER_MANIFEST if docker else mt.OCI_MANIFEST,
            config=Descriptor(
                mt.DOCKER_CONFIG if docker else mt.OCI_CONFIG, config_digest, len(raw)
            ),
            layers=(layer,),
        )
        self.registry.push(manifest, [self.repo.with_tag(key)], self.store, sources=sources)


def cache_repository(
    cache_repo: str, destinations: Sequence[Reference], *, no_push: bool
) -> Reference:
    """``--cache-repo``, or ``<first destination's repository>/cache`` as Kaniko does."""
    if cache_repo.startswith("oci:"):
        raise ConfigError("--cache-repo=oci:...: on-disk layout caches are not supported yet")
    if cache_repo:
        try:
            return parse_reference(cache_repo)
        except PykanikoError as exc:
            raise ConfigError(f"--cache-repo={cache_repo}: {exc.message}") from exc
    if no_push or not destinations:
        raise ConfigError("--cache with --no-push needs --cache-repo")
    first = destinations[0]
    return Reference(first.registry, f"{first.repository}/cache", None, None)
