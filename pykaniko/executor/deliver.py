"""The finished image to its outputs, in Kaniko's order: digest files, OCI layout,
tarball, then the push (with ``--push-ignore-immutable-tag-errors``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from pykaniko.errors import ImageError, RegistryError
from pykaniko.executor.events import EventSink, ImagePushed, Notice
from pykaniko.executor.options import BuildOptions
from pykaniko.executor.oserrors import output_file
from pykaniko.executor.state import StageOutput
from pykaniko.executor.workspace import Workspace
from pykaniko.image import mediatypes as mt
from pykaniko.image.manifest import Descriptor, Manifest
from pykaniko.image.reference import Reference
from pykaniko.registry import RegistryClient

__all__ = ["assemble", "deliver"]


def assemble(
    out: StageOutput, options: BuildOptions, created: str, store_put: Callable[[bytes], str]
) -> tuple[Manifest, bytes]:
    config = replace(out.config, created=created)
    config_raw = config.to_json()
    digest = store_put(config_raw)
    media = mt.DOCKER_MANIFEST if out.docker else mt.OCI_MANIFEST
    config_media = mt.DOCKER_CONFIG if out.docker else mt.OCI_CONFIG
    manifest = Manifest.build(
        media_type=media,
        config=Descriptor(config_media, digest, len(config_raw)),
        layers=tuple(out.layers),
        annotations=options.outputs.annotations,
    )
    store_put(manifest.raw)
    return manifest, config_raw


_IMMUTABLE_MARKERS = (
    "tag immutable",
    "immutable tag",
    "cannot be overwritten because the repository is immutable",
    "imagetagalreadyexistsexception",
    "tag invalid: the image tag",
)


def _is_immutable_tag_error(exc: RegistryError) -> bool:
    """The texts Artifact Registry, ECR and Harbor use when a tag may not move."""
    text = f"{exc.message} {exc.hint or ''}".lower()
    return any(marker in text for marker in _IMMUTABLE_MARKERS)


def deliver(
    *,
    options: BuildOptions,
    manifest: Manifest,
    config_raw: bytes,
    refs: list[Reference],
    final: StageOutput,
    registry: RegistryClient,
    workspace: Workspace,
    events: EventSink,
) -> None:
    """Digest files, OCI layout, tarball, then the push (Kaniko's order)."""
    o = options.outputs
    digest = manifest.digest
    if o.digest_file:
        with output_file("--digest-file", o.digest_file):
            o.digest_file.write_text(digest)
    if o.image_name_with_digest_file:
        with output_file("--image-name-with-digest-file", o.image_name_with_digest_file):
            o.image_name_with_digest_file.write_text("".join(f"{r.name}@{digest}\n" for r in refs))
    if o.image_name_tag_with_digest_file:
        with output_file("--image-name-tag-with-digest-file", o.image_name_tag_with_digest_file):
            o.image_name_tag_with_digest_file.write_text(
                "".join(
                    f"{r.name}:{r.tag}@{digest}\n" if r.tag else f"{r.name}@{digest}\n"
                    for r in refs
                )
            )
    image_size = sum(d.size for d in manifest.layers) + len(config_raw)
    if o.oci_layout_path or o.tar_path:
        missing = [d for d in manifest.layers if not workspace.store.has(d.digest)]
        for source in final.sources:
            have = [d for d in missing if source.holds(d.digest)]
            if have:
                registry.fetch_layers(source, have, workspace.store)
        if any(not workspace.store.has(d.digest) for d in manifest.layers):
            raise ImageError("some base layers could not be fetched for the local outputs")
    if o.oci_layout_path:
        from pykaniko.image.layout import write_oci_layout

        with output_file("--oci-layout-path", o.oci_layout_path, needed=image_size):
            write_oci_layout(
                o.oci_layout_path,
                manifest,
                workspace.store,
                ref_name=refs[0].tag if refs else None,
            )
    if o.tar_path:
        from pykaniko.image.tarball import write_docker_archive

        tags = [str(r) for r in refs] or ["docker.io/unset-repo/unset-image-name:latest"]
        with output_file("--tar-path", o.tar_path, needed=image_size):
            write_docker_archive(o.tar_path, manifest, config_raw, workspace.store, tags)
    if o.no_push:
        return
    try:
        pushed = registry.push(manifest, refs, workspace.store, sources=final.sources)
    except RegistryError as exc:
        if not (o.push_ignore_immutable_tag_errors and _is_immutable_tag_error(exc)):
            raise
        events(Notice("warning", f"ignoring an immutable-tag error: {exc.message}"))
        return
    for ref in refs:
        events(ImagePushed(str(ref), pushed))
    if pushed != digest:
        events(Notice("warning", f"registry reported digest {pushed}, expected {digest}"))
