"""The base-image cache warmer (``pykaniko warmer``, Kaniko's ``warmer``): pulls images
whole into a ``--cache-dir`` that builds with ``--cache`` read when the registry is
slow or down.

Images come from ``--image`` and from a Dockerfile: every ``FROM`` (and every
``COPY --from`` that names an image) after build-arg expansion, on the platform the
stage asks for; stage names and ``scratch`` are skipped, not tried and failed as
Kaniko does. An image already cached (fresh, complete, and still what its tag points
at) is skipped unless ``force``; then its blobs are checked against their digests
again and only wrong or missing ones are fetched. Several warmers (and builds) may
share one directory at once: see :mod:`pykaniko.registry.basecache`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pykaniko.dockerfile import Copy, ImageBase, parse_dockerfile, plan_build
from pykaniko.errors import ConfigError, PykanikoError
from pykaniko.image.digest import CHUNK
from pykaniko.image.platform import Platform, host_platform
from pykaniko.image.reference import Reference, parse_reference
from pykaniko.registry import BaseImageCache, RegistryClient, RegistryOptions, default_keychain
from pykaniko.registry.basecache import current_digest

__all__ = ["WarmOptions", "Warmed", "dockerfile_images", "warm"]

Status = Literal["cached", "present", "failed"]


@dataclass(frozen=True, slots=True)
class WarmOptions:
    """What to warm and where; ``cache_ttl`` in seconds."""

    cache_dir: Path
    images: tuple[str, ...] = ()
    dockerfile: Path | None = None
    build_args: Mapping[str, str] = field(default_factory=dict)
    cache_ttl: float = 336 * 3600.0
    force: bool = False
    platform: Platform = field(default_factory=host_platform)
    registry: RegistryOptions = field(default_factory=RegistryOptions)


@dataclass(frozen=True, slots=True)
class Warmed:
    """The outcome for one image: ``cached`` (fetched now), ``present`` (already
    there), or ``failed`` with the reason."""

    reference: str
    platform: str
    status: Status
    digest: str = ""
    size: int = 0
    message: str = ""


def dockerfile_images(
    text: str,
    *,
    filename: str = "Dockerfile",
    build_args: Mapping[str, str] | None = None,
    platform: Platform | None = None,
) -> list[tuple[str, Platform]]:
    """Images a Dockerfile builds on or copies from, expanded, in file order."""
    target = platform or host_platform()
    plan = plan_build(
        parse_dockerfile(text, filename=filename),
        build_args=build_args or {},
        target_platform=str(target),
        build_platform=str(host_platform()),
    )
    found: dict[tuple[str, str], None] = {}
    for planned in sorted(plan.stages, key=lambda p: p.stage.index):
        bases = [planned.base]
        for step in planned.steps:
            if isinstance(step, Copy) and step.from_:
                bases.append(plan.resolve_from(planned.stage.index, step.from_))
        for base in bases:
            if isinstance(base, ImageBase):
                found[(base.reference, base.platform or str(target))] = None
    return [(ref, Platform.parse(plat)) for ref, plat in found]


def warm(
    options: WarmOptions,
    *,
    client: RegistryClient | None = None,
    env: Mapping[str, str] | None = None,
    notify: Callable[[str], None] | None = None,
) -> list[Warmed]:
    """Warm every image ``options`` names; one :class:`Warmed` per image, in order.

    ``env`` is where credentials are looked up (``DOCKER_CONFIG`` and the like).
    Never raises for one image's failure: it is reported in its result.
    """
    wanted: list[tuple[str, Platform]] = [(image, options.platform) for image in options.images]
    if options.dockerfile is not None:
        try:
            text = options.dockerfile.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--dockerfile={options.dockerfile}: cannot read it: {exc}") from exc
        wanted += dockerfile_images(
            text,
            filename=options.dockerfile.name,
            build_args=options.build_args,
            platform=options.platform,
        )
    if not wanted:
        raise ConfigError(
            "nothing to warm", hint="name images with --image or a Dockerfile with --dockerfile"
        )
    cache = BaseImageCache(options.cache_dir, options.cache_ttl)
    try:
        cache.store  # noqa: B018  creates the directory, or says why it cannot
    except OSError as exc:
        raise ConfigError(f"--cache-dir={options.cache_dir}: {exc.strerror}") from exc
    own = client is None
    if client is None:
        client = RegistryClient(options.registry, default_keychain(dict(env or {})), notify=notify)
    try:
        seen: set[tuple[str, str]] = set()
        results = []
        for image, platform in wanted:
            if (image, str(platform)) in seen:
                continue
            seen.add((image, str(platform)))
            results.append(_warm_one(client, cache, image, platform, force=options.force))
        return results
    finally:
        if own:
            client.close()


def _warm_one(
    client: RegistryClient, cache: BaseImageCache, image: str, platform: Platform, *, force: bool
) -> Warmed:
    try:
        ref = parse_reference(image)
        if not force:
            entry = cache.lookup(ref, platform)
            if entry is not None and (ref.digest or _still_current(client, ref, entry.resolved)):
                cache.record(ref, platform, cache.load(entry, ref, cache.store))
                return Warmed(str(ref), str(platform), "present", entry.digest)
        pulled = client.pull(ref, platform, cache.store)
        if force:  # check what is there; wrong layers are fetched again below
            _drop_wrong(cache, [d.digest for d in pulled.manifest.layers])
            if _drop_wrong(cache, [pulled.manifest.config.digest]):
                pulled = client.pull(ref, platform, cache.store)
        layers = list(pulled.manifest.layers)
        client.fetch_layers(pulled, layers, cache.store)
        cache.record(ref, platform, pulled)
        size = sum(d.size for d in layers)
        return Warmed(str(ref), str(platform), "cached", pulled.digest, size)
    except PykanikoError as exc:
        return Warmed(image, str(platform), "failed", message=str(exc))


def _still_current(client: RegistryClient, ref: Reference, resolved: str) -> bool:
    """Whether the tag still points where the cache says (asking the registry)."""
    try:
        digest, _where = current_digest(client.api, ref, client.options)
    except PykanikoError:
        return False
    return digest == resolved


def _drop_wrong(cache: BaseImageCache, digests: Sequence[str]) -> bool:
    """Remove cached blobs whose bytes no longer match their digest; whether any was."""
    dropped = False
    for digest in digests:
        path = cache.blob_path(digest)
        if path is None:
            continue
        algo = digest.split(":", 1)[0]
        h = hashlib.new(algo)
        with open(path, "rb") as f:
            while block := f.read(CHUNK):
                h.update(block)
        if f"{algo}:{h.hexdigest()}" != digest:
            path.unlink(missing_ok=True)
            dropped = True
    return dropped
