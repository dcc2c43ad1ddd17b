"""Runs a build plan: stages in dependency order, then the final image to its outputs.

Stage outputs stay on disk only while a later stage still needs them (as its base, for
``COPY --from`` or a ``RUN --mount from=``); a child that is the last user of its base
stage takes the rootfs over instead of re-extracting it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from pykaniko.dockerfile import (
    BuildPlan,
    Copy,
    DockerIgnore,
    ImageBase,
    PlannedStage,
    Run,
    ScratchBase,
    StageBase,
    StageScope,
    parse_dockerfile,
    plan_build,
    render_plan,
)
from pykaniko.errors import (
    BuildError,
    ConfigError,
    DiskFullError,
    ImageError,
    PykanikoError,
    RegistryError,
)
from pykaniko.executor.cache import LayerCache, cache_repository, parse_ttl
from pykaniko.executor.events import (
    BuildFinished,
    EventSink,
    ImagePushed,
    Notice,
    StageSkipped,
    StageStarted,
)
from pykaniko.executor.fsutil import clean_abs, resolve_in_root
from pykaniko.executor.isolation import Sandbox
from pykaniko.executor.leakcheck import LeakGuard
from pykaniko.executor.options import BuildOptions
from pykaniko.executor.oserrors import (
    PathMap,
    disk_full,
    from_os_error,
    is_disk_full,
    output_file,
)
from pykaniko.executor.stage import (
    StageContext,
    StageOutput,
    build_stage,
    ensure_rootfs,
    extract_verified,
)
from pykaniko.executor.summary import BuildSummary
from pykaniko.executor.workspace import Workspace
from pykaniko.image import mediatypes as mt
from pykaniko.image.manifest import Descriptor, Manifest
from pykaniko.image.platform import Platform, host_platform
from pykaniko.image.reference import Reference, parse_reference
from pykaniko.registry import PulledImage, RegistryClient
from pykaniko.snapshot import ExtractReport, IgnoreList, extract_layer

__all__ = ["BuildResult", "build", "load_plan"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BuildResult:
    """What a build produced. ``digest`` is empty for a dry run."""

    digest: str
    manifest: Manifest | None
    config_raw: bytes
    references: tuple[str, ...]
    plan_text: str
    seconds: float
    summary: BuildSummary | None = None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc


def load_plan(options: BuildOptions) -> BuildPlan:
    """Parse and plan: pure apart from reading the Dockerfile."""
    text = _read_text(options.dockerfile)
    df = parse_dockerfile(text, filename=options.dockerfile.name)
    return plan_build(
        df,
        target=options.target,
        build_args=options.build_args,
        skip_unused_stages=options.skip_unused_stages,
        target_platform=str(options.platform),
        build_platform=str(host_platform()),
    )


def _dockerignore(options: BuildOptions) -> DockerIgnore | None:
    specific = options.dockerfile.with_name(options.dockerfile.name + ".dockerignore")
    general = options.context / ".dockerignore"
    for path in (specific, general):
        if path.is_file():
            return DockerIgnore.parse(_read_text(path))
    return None


def _created(options: BuildOptions, env: Mapping[str, str]) -> tuple[str, int | None]:
    """The image's creation time, and the mtime clamp of ``--reproducible``."""
    if options.outputs.reproducible:
        text = env.get("SOURCE_DATE_EPOCH", "0") or "0"
        try:
            epoch = int(text)
        except ValueError:
            raise ConfigError(
                f"SOURCE_DATE_EPOCH={text!r}: expected seconds since the epoch"
            ) from None
        stamp = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return stamp, epoch
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), None


def _mountinfo() -> str:
    try:
        return Path("/proc/self/mountinfo").read_text()
    except OSError:
        return ""


class _Build:
    def __init__(
        self,
        options: BuildOptions,
        plan: BuildPlan,
        *,
        registry: RegistryClient,
        sandbox: Sandbox,
        events: EventSink,
        workspace: Workspace,
        env: Mapping[str, str],
        created: tuple[str, int | None],
        cache: LayerCache | None = None,
        leaks: LeakGuard | None = None,
    ) -> None:
        self.cache = cache
        self.leaks = leaks
        self.options = options
        self.env = env
        self.created = created
        self.plan = plan
        self.registry = registry
        self.sandbox = sandbox
        self.events = events
        self.workspace = workspace
        self.outputs: dict[int, StageOutput] = {}
        self.pulled: dict[str, PulledImage] = {}
        self.image_roots: dict[tuple[str, tuple[str, ...]], Path] = {}
        self.last_use = self._last_use()

    def _last_use(self) -> dict[int, int]:
        """For each stage, the position of the last planned stage that needs it."""
        last: dict[int, int] = {}
        for pos, planned in enumerate(self.plan.stages):
            for dep in planned.dependencies:
                last[dep] = pos
        return last

    def pull(self, reference: str, platform: str | None) -> PulledImage:
        plat = Platform.parse(platform) if platform else self.options.platform
        key = f"{reference}|{plat}"
        if key not in self.pulled:
            ref = parse_reference(reference)
            self.pulled[key] = self.registry.pull(ref, plat, self.workspace.store)
        return self.pulled[key]

    def image_rootfs(self, reference: str, sources: Sequence[str] = ("/",)) -> Path:
        """An external image for ``COPY --from``/``RUN --mount from=``: pulled, and
        extracted into a scratch root only as far as ``sources`` need (directories and
        symlinks always, files only below the sources' fixed prefixes)."""
        prefixes = tuple(sorted({_fixed_prefix(s) for s in sources}))
        key = (reference, () if "/" in prefixes else prefixes)
        if key not in self.image_roots:
            pulled = self.pull(reference, None)
            root = self.workspace.scratch("image")
            os.chmod(root, 0o755)
            select = None if not key[1] else _under_prefixes(root, key[1])
            layers = list(pulled.manifest.layers)
            if len(pulled.config.diff_ids) != len(layers):
                raise ImageError(
                    f"{reference}: the config lists {len(pulled.config.diff_ids)} diff_ids "
                    f"for {len(layers)} layers"
                )
            self.registry.fetch_layers(pulled, layers, self.workspace.store)

            def apply(stream: BinaryIO, *, what: str) -> ExtractReport:
                return extract_layer(
                    stream, root, ignore=IgnoreList.of(), what=what, select=select
                ).report

            for desc, diff_id in zip(layers, pulled.config.diff_ids, strict=True):
                what = f"{reference} layer {desc.digest[:19]}"
                path = self.workspace.store.path(desc.digest)
                for warning in extract_verified(apply, path, desc, diff_id, what).warnings[:20]:
                    self.events(Notice("warning", f"{what}: {warning}"))
            self.image_roots[key] = root
        return self.image_roots[key]

    def stage_output(self, index: int) -> StageOutput:
        try:
            return self.outputs[index]
        except KeyError:
            raise BuildError(f"stage {index} has not been built") from None

    def run(self) -> StageOutput:
        created, clamp = self.created
        ignore = _dockerignore(self.options)
        ctx = StageContext(
            options=self.options,
            dockerfile=self.plan.dockerfile,
            workspace=self.workspace,
            registry=self.registry,
            sandbox=self.sandbox,
            events=self.events,
            created=created,
            mtime_clamp=clamp,
            mountinfo=_mountinfo(),
            context_ignored=ignore.matches if ignore is not None and not ignore.is_empty else None,
            context_has_exceptions=ignore is not None and ignore.has_exclusions,
            resolve_from=self.plan.resolve_from,
            stage_output=self.stage_output,
            image_rootfs=self.image_rootfs,
            environ=self.env,
            cache=self.cache,
            leaks=self.leaks,
        )
        for skipped in self.plan.skipped:
            gone = skipped.stage
            self.events(StageSkipped(gone.index, gone.name, skipped.reason, len(gone.instructions)))
        final: StageOutput | None = None
        for pos, planned in enumerate(self.plan.stages):
            stage = planned.stage
            base_out: StageOutput | None = None
            pulled: PulledImage | None = None
            base = planned.base
            inherited: StageScope | None = None
            match base:
                case StageBase(index=i):
                    base_out = self.outputs[i]
                    inherited = base_out.scope
                    label = f"stage {base_out.name or i}"
                case ImageBase(reference=reference, platform=platform):
                    pulled = self.pull(reference, platform)
                    label = reference
                case ScratchBase():
                    label = "scratch"
            self.events(StageStarted(stage.index, stage.name, label))
            take_over = (
                base_out is not None
                and self.last_use.get(base_out.index) == pos
                and not _uses_besides_from(self.plan, planned, base_out.index)
            )
            image_env = (
                base_out.config.config.env
                if base_out is not None
                else pulled.config.config.env
                if pulled is not None
                else ()
            )
            scope = StageScope.start(
                stage=stage,
                dockerfile=self.plan.dockerfile,
                image_env=image_env,
                build_args=self.options.build_args,
                target_platform=str(self.options.platform),
                build_platform=str(host_platform()),
                inherited=inherited,
            )
            out = build_stage(
                ctx,
                stage.index,
                base=base_out,
                pulled=pulled,
                take_over=take_over,
                instructions=stage.instructions,
                scope=scope,
            )
            out.name = stage.name
            self.outputs[stage.index] = out
            needed_later = any(
                last > pos for dep, last in self.last_use.items() if dep == stage.index
            )
            if needed_later:
                ensure_rootfs(ctx, out)
            self._release(pos)
            final = out
        assert final is not None
        return final

    def _release(self, pos: int) -> None:
        """Drop the rootfs of stages nobody after position ``pos`` needs."""
        for index, out in self.outputs.items():
            if out.rootfs is not None and self.last_use.get(index, -1) <= pos:
                if index == self.plan.target_index:
                    continue
                self.workspace.remove(out.rootfs.parent)
                out.rootfs, out.snapshotter = None, None


def _fixed_prefix(source: str) -> str:
    """The part of a COPY source before its first wildcard, as a rootfs path."""
    fixed: list[str] = []
    for part in clean_abs(source).split("/")[1:]:
        if any(c in part for c in "*?["):
            break
        fixed.append(part)
    return "/" + "/".join(fixed)


def _under_prefixes(root: Path, prefixes: tuple[str, ...]) -> Callable[[str], bool]:
    """``select`` for a partial extraction: a path is wanted when it lies below one of
    ``prefixes``, taken literally or through the symlinks already extracted."""

    def wanted(path: str) -> bool:
        for prefix in prefixes:
            host = resolve_in_root(root, prefix)
            real = "/" + host.relative_to(root).as_posix() if host != root else "/"
            for p in (prefix, real):
                if p in ("/", path) or path.startswith(p + "/"):
                    return True
        return False

    return wanted


def _layer_cache(
    options: BuildOptions,
    refs: Sequence[Reference],
    registry: RegistryClient,
    workspace: Workspace,
) -> LayerCache | None:
    if not options.cache:
        return None
    repo = cache_repository(options.cache_repo, refs, no_push=options.outputs.no_push)
    return LayerCache(
        registry=registry,
        repo=repo,
        platform=options.platform,
        store=workspace.store,
        ttl_seconds=parse_ttl(options.cache_ttl),
        push=options.push_cache,
    )


def _uses_besides_from(plan: BuildPlan, planned: PlannedStage, base: int) -> bool:
    """Whether a stage reads its base stage other than through FROM (COPY --from, a
    RUN mount): then the base's rootfs must outlive the child's changes to its own."""
    for step in planned.steps:
        refs: list[str] = []
        if isinstance(step, Copy) and step.from_:
            refs.append(step.from_)
        elif isinstance(step, Run):
            refs += [m.from_ for m in step.mounts if m.from_]
        for ref in refs:
            try:
                target = plan.resolve_from(planned.stage.index, ref)
            except PykanikoError:
                return True
            if isinstance(target, StageBase) and target.index == base:
                return True
    return False


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


def build(
    options: BuildOptions,
    *,
    registry: RegistryClient,
    sandbox: Sandbox,
    events: EventSink,
    env: Mapping[str, str],
) -> BuildResult:
    """Build the image ``options`` describe and deliver it to every requested output.

    ``env`` is the only environment the build reads (``SOURCE_DATE_EPOCH``, secrets
    given as ``--secret id=X,env=VAR``).
    """
    started = time.monotonic()
    plan = load_plan(options)
    if options.dry_run:
        return BuildResult("", None, b"", (), render_plan(plan), time.monotonic() - started)
    created = _created(options, env)
    refs = [parse_reference(d) for d in options.outputs.destinations]
    if refs and not options.outputs.no_push:
        registry.check_push_permission(refs)
    leaks = LeakGuard.for_build(options, plan, registry, events, env)
    try:
        workspace = Workspace.create(options.work_dir)
    except OSError as exc:
        raise ConfigError(
            f"--kaniko-dir={options.work_dir}: cannot create a work directory there: {exc.strerror}"
        ) from exc
    if workspace.stale_removed:
        count = len(workspace.stale_removed)
        events(
            Notice(
                "info",
                f"removed {count} work director{'y' if count == 1 else 'ies'} of interrupted "
                f"builds from --kaniko-dir={options.work_dir}",
            )
        )
    try:
        runner = _Build(
            options,
            plan,
            registry=registry,
            sandbox=sandbox,
            events=events,
            workspace=workspace,
            env=env,
            created=created,
            cache=_layer_cache(options, refs, registry, workspace),
            leaks=leaks,
        )
        final = runner.run()
        manifest, config_raw = assemble(final, options, created[0], workspace.store.put_bytes)
        digest = manifest.digest
        leaks.check_metadata(config_raw, "the image config")
        leaks.check_metadata(manifest.raw, "the image manifest")
        leaks.clear_for_push([d.digest for d in manifest.layers], "the image")
        _deliver(
            options=options,
            manifest=manifest,
            config_raw=config_raw,
            refs=refs,
            final=final,
            registry=registry,
            workspace=workspace,
            events=events,
        )
    except DiskFullError:
        raise
    except PykanikoError as exc:
        if is_disk_full(exc):  # measured before the work dir is cleaned below
            raise disk_full(
                exc.message,
                where=options.work_dir,
                flag=f"--kaniko-dir={options.work_dir}",
                used_by_build=workspace.root,
                location=exc.location,
            ) from exc
        raise
    except OSError as exc:
        paths = PathMap(work_dir=workspace.root, kaniko_dir=options.work_dir)
        raise from_os_error(exc, "build", paths) from exc
    finally:
        if options.cleanup:
            workspace.cleanup()
        else:
            workspace.release()
    seconds = time.monotonic() - started
    events(BuildFinished(digest, seconds))
    return BuildResult(digest, manifest, config_raw, tuple(str(r) for r in refs), "", seconds)


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


def _deliver(
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
