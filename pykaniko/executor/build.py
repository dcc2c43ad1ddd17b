"""Runs a build plan: stages in dependency order, then the final image to its outputs.

Every stage is prepared before the first runs (bases resolved in parallel, each step
expanded with the config it will see), so with ``--cache`` every key is known and every
probe started up front. A stage's rootfs is made only when a step needs it
(:mod:`pykaniko.executor.state`); a stage that a later ``COPY --from`` or
``RUN --mount from=`` reads but never needed a rootfs itself is extracted only as far as
those sources need (:mod:`pykaniko.executor.roots`). Rootfs directories stay on disk only
while a later stage still needs them; a child that is the last user of its base stage
takes the rootfs over instead of re-extracting it.
"""

from __future__ import annotations

import logging
import posixpath
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from pykaniko.dockerfile import (
    Add,
    BuildPlan,
    Copy,
    DockerIgnore,
    ImageBase,
    PlannedStage,
    Run,
    ScratchBase,
    StageBase,
    StageScope,
    Workdir,
    parse_dockerfile,
    plan_build,
    render_plan,
)
from pykaniko.errors import BuildError, ConfigError, DiskFullError, ImageError, PykanikoError
from pykaniko.executor.cache import (
    KeyInputs,
    LayerCache,
    StageKeys,
    open_layer_cache,
    seed_key,
    stage_keys,
)
from pykaniko.executor.cache.sources import file_digest
from pykaniko.executor.deliver import assemble, deliver
from pykaniko.executor.events import (
    BuildFinished,
    EventSink,
    Notice,
    StageSkipped,
    StageStarted,
)
from pykaniko.executor.isolation import Isolation
from pykaniko.executor.isolation.chroot import ChrootIsolation
from pykaniko.executor.isolation.select import choose_isolation, read_mountinfo
from pykaniko.executor.leakcheck import LeakGuard
from pykaniko.executor.options import BuildOptions, absolute_paths
from pykaniko.executor.oserrors import PathMap, disk_full, from_os_error, is_disk_full
from pykaniko.executor.prepare import PreparedStage, prepare_stage, scratch_config
from pykaniko.executor.roots import PartialRoots
from pykaniko.executor.stage import StageContext, StageOutput, build_stage, ensure_rootfs
from pykaniko.executor.state import PendingLayer
from pykaniko.executor.summary import BuildSummary
from pykaniko.executor.workspace import Workspace
from pykaniko.image.manifest import Manifest
from pykaniko.image.platform import Platform, host_platform
from pykaniko.image.reference import parse_reference
from pykaniko.registry import DownloadResult, PulledImage, RegistryClient

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


class _Build:
    """One build: prepares every stage up front (bases pulled in parallel), computes the
    cache keys and starts the probes, then builds the stages in order."""

    def __init__(
        self,
        options: BuildOptions,
        plan: BuildPlan,
        *,
        registry: RegistryClient,
        isolation: Isolation,
        events: EventSink,
        workspace: Workspace,
        env: Mapping[str, str],
        created: tuple[str, int | None],
        mountinfo: str,
        notices: Sequence[Notice] = (),
        cache: LayerCache | None = None,
        leaks: LeakGuard | None = None,
    ) -> None:
        self.cache = cache
        self.notices = list(notices)
        self.isolation = isolation
        self.leaks = leaks
        self.options = options
        self.plan = plan
        self.registry = registry
        self.events = events
        self.workspace = workspace
        self.outputs: dict[int, StageOutput] = {}
        self.pulled: dict[str, PulledImage] = {}
        self.prepared: dict[int, PreparedStage] = {}
        self.keys: dict[int, StageKeys] = {}
        self.downloads: dict[tuple[str, str | None], tuple[Path, DownloadResult]] = {}
        self.roots = PartialRoots(workspace, registry, events)
        self.last_use = self._last_use()
        self.clamp = created[1]
        ignore = _dockerignore(options)
        self.ctx = StageContext(
            options=options,
            dockerfile=plan.dockerfile,
            workspace=workspace,
            registry=registry,
            isolation=isolation,
            events=events,
            created=created[0],
            mtime_clamp=created[1],
            mountinfo=mountinfo,
            context_ignored=ignore.matches if ignore is not None and not ignore.is_empty else None,
            context_has_exceptions=ignore is not None and ignore.has_exclusions,
            resolve_from=plan.resolve_from,
            stage_output=self.stage_output,
            image_rootfs=self.image_rootfs,
            stage_rootfs=self.stage_rootfs,
            download=self.download,
            environ=env,
            cache=cache,
            leaks=leaks,
        )

    def _last_use(self) -> dict[int, int]:
        """For each stage, the position of the last planned stage that needs it."""
        last: dict[int, int] = {}
        for pos, planned in enumerate(self.plan.stages):
            for dep in planned.dependencies:
                last[dep] = pos
        return last

    def pull(self, reference: str, platform: str | None) -> PulledImage:
        """An image's manifest and config, fetched once per build whoever asks (a base,
        ``COPY --from``, a cache key; the push mounts its blobs from the same value)."""
        plat = _platform(platform, self.options)
        key = f"{reference}|{plat}"
        if key not in self.pulled:
            ref = parse_reference(reference)
            self.pulled[key] = self.registry.pull(ref, plat, self.workspace.store)
        return self.pulled[key]

    def _pull_bases(self) -> None:
        """Every base image of the plan, resolved concurrently (errors in stage order)."""
        wanted = list(
            dict.fromkeys(
                (p.base.reference, p.base.platform)
                for p in self.plan.stages
                if isinstance(p.base, ImageBase)
            )
        )
        if len(wanted) > 1:
            refs = [(parse_reference(r), _platform(p, self.options)) for r, p in wanted]
            self.registry.resolve_all(refs, self.workspace.store)  # pull() takes them
        for reference, platform in wanted:
            self.pull(reference, platform)

    def image_rootfs(self, reference: str, sources: Sequence[str] = ("/",)) -> Path:
        """An external image for ``COPY --from``/``RUN --mount from=``, extracted only
        as far as ``sources`` need."""
        pulled = self.pull(reference, None)
        layers = pulled.manifest.layers
        if len(pulled.config.diff_ids) != len(layers):
            raise ImageError(
                f"{reference}: the config lists {len(pulled.config.diff_ids)} diff_ids "
                f"for {len(layers)} layers"
            )
        pending = [
            PendingLayer(d, diff_id, pulled)
            for d, diff_id in zip(layers, pulled.config.diff_ids, strict=True)
        ]
        return self.roots.get(("image", reference), reference, pending, sources)

    def stage_rootfs(self, index: int, sources: Sequence[str] = ("/",)) -> Path:
        """A finished stage's files for ``COPY --from``/``RUN --mount from=``: its rootfs
        if it has one, else (every step was a cache hit) only what ``sources`` need of
        its layers."""
        out = self.stage_output(index)
        if out.rootfs is not None:
            ensure_rootfs(self.ctx, out)
            return out.rootfs
        return self.roots.get(("stage", index), f"stage {out.name or index}", out.pending, sources)

    def download(self, url: str, checksum: str | None) -> tuple[Path, DownloadResult]:
        """``ADD <url>``, fetched once per build (for its cache key, then for the step)."""
        if (url, checksum) not in self.downloads:
            holder = self.workspace.scratch("download")
            path = holder / (posixpath.basename(urlsplit(url).path) or "__unnamed__")
            result = self.registry.download(url, path, checksum=checksum)
            self.downloads[(url, checksum)] = (path, result)
        return self.downloads[(url, checksum)]

    def stage_output(self, index: int) -> StageOutput:
        try:
            return self.outputs[index]
        except KeyError:
            raise BuildError(f"stage {index} has not been built") from None

    def prepare(self) -> None:
        """Every stage's steps, expanded, with the config each will see."""
        self._pull_bases()
        o = self.options
        for planned in self.plan.stages:
            stage = planned.stage
            inherited: StageScope | None = None
            image_env: Sequence[str] = ()
            match planned.base:
                case StageBase(index=i):
                    config = self.prepared[i].final_config
                    inherited = self.prepared[i].final_scope
                    image_env = config.config.env
                case ImageBase(reference=reference, platform=platform):
                    config = self.pull(reference, platform).config
                    image_env = config.config.env
                case ScratchBase():
                    config = scratch_config(o)
            scope = StageScope.start(
                stage=stage,
                dockerfile=self.plan.dockerfile,
                image_env=image_env,
                build_args=o.build_args,
                target_platform=str(o.platform),
                build_platform=str(host_platform()),
                inherited=inherited,
            )
            self.prepared[stage.index] = prepare_stage(
                o,
                self.plan.dockerfile,
                index=stage.index,
                instructions=stage.instructions,
                base=config,
                scope=scope,
            )

    def compute_keys(self) -> None:
        """Every step's cache key (before anything runs: keys depend on inputs only)."""
        o = self.options
        inputs = KeyInputs(
            options=o,
            context_ignored=self.ctx.context_ignored,
            context_has_exceptions=self.ctx.context_has_exceptions,
            resolve_from=self.plan.resolve_from,
            stage_key=lambda i: self.keys[i].final if i in self.keys else None,
            image_digest=lambda reference: self.pull(reference, None).digest,
            url_digest=lambda url: file_digest(self.download(url, None)[0]),
        )
        shaping = [f"ignore-var-run={o.ignore_var_run}", *(f"ignore={p}" for p in o.ignore_paths)]
        if self.clamp is not None:
            shaping.append(f"mtime-clamp={self.clamp}")
        for planned in self.plan.stages:
            seed: str | None = None
            match planned.base:
                case StageBase(index=i):
                    seed = self.keys[i].final
                case ImageBase(reference=reference, platform=platform):
                    digest = self.pull(reference, platform).digest
                    seed = seed_key(digest, o.platform, layer_options=shaping)
                case ScratchBase():
                    seed = seed_key("scratch", o.platform, layer_options=shaping)
            index = planned.stage.index
            keys = stage_keys(seed, self.prepared[index], inputs)
            if keys.broken is not None and seed is not None:
                self.events(Notice("info", f"stage {index}: not cached from {keys.broken}"))
            self.keys[index] = keys

    def _cached_keys(self) -> list[str]:
        return [k.key for keys in self.keys.values() for k in keys.steps.values() if k.cached]

    def predict(self) -> dict[tuple[int, int], str]:
        """``--dry-run --cache``: each keyed step's key and whether the cache holds it
        (probed without fetching), by (stage, position in the plan's steps)."""
        self.prepare()
        notes: dict[tuple[int, int], str] = {}
        if self.cache is None:
            return notes
        self.compute_keys()
        self.cache.probe(self._cached_keys(), fetch=False)
        for planned in self.plan.stages:
            index = planned.stage.index
            prepared, keys = self.prepared[index], self.keys[index]
            offset = len(prepared.steps) - len(planned.steps)  # ONBUILD triggers of an image
            for step in prepared.steps:
                sk = keys.steps.get(step.number)
                pos = step.number - 1 - offset
                if sk is None or pos < 0 or not isinstance(step.instr, Run | Copy | Add | Workdir):
                    continue
                if not sk.cached:
                    notes[(index, pos)] = f"not cached, key {sk.key[:12]}"
                    continue
                probe = self.cache.get(sk.key)
                if probe.warning:
                    self.events(Notice("warning", probe.warning))
                verdict = "hit" if probe.entry is not None else "miss"
                notes[(index, pos)] = f"cache {verdict}, key {sk.key[:12]}"
        return notes

    def run(self) -> StageOutput:
        for skipped in self.plan.skipped:
            gone = skipped.stage
            self.events(StageSkipped(gone.index, gone.name, skipped.reason, len(gone.instructions)))
        self.prepare()
        if self.cache is not None:
            self.compute_keys()
            self.cache.probe(self._cached_keys())
        final: StageOutput | None = None
        for pos, planned in enumerate(self.plan.stages):
            stage = planned.stage
            base_out: StageOutput | None = None
            pulled: PulledImage | None = None
            match planned.base:
                case StageBase(index=i):
                    base_out = self.outputs[i]
                    label = f"stage {base_out.name or i}"
                case ImageBase(reference=reference, platform=platform):
                    pulled = self.pull(reference, platform)
                    label = reference
                case ScratchBase():
                    label = "scratch"
            self.events(StageStarted(stage.index, stage.name, label))
            for notice in self.notices:  # the isolation, once the first stage is under way
                self.events(notice)
            self.notices = []
            take_over = (
                base_out is not None
                and self.last_use.get(base_out.index) == pos
                and not _uses_besides_from(self.plan, planned, base_out.index)
            )
            out = build_stage(
                self.ctx,
                stage.index,
                base=base_out,
                pulled=pulled,
                take_over=take_over,
                prepared=self.prepared[stage.index],
                keys=self.keys.get(stage.index),
                needed_later=self.last_use.get(stage.index, -1) > pos,
            )
            out.name = stage.name
            self.outputs[stage.index] = out
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
                self.isolation.release(out, self.workspace)


def _platform(platform: str | None, options: BuildOptions) -> Platform:
    return Platform.parse(platform) if platform else options.platform


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


def build(
    options: BuildOptions,
    *,
    registry: RegistryClient,
    events: EventSink,
    env: Mapping[str, str],
    isolation: Isolation | None = None,
    wrap_isolation: Callable[[Isolation], Isolation] | None = None,
) -> BuildResult:
    """Build the image ``options`` describe and deliver it to every requested output.

    ``env`` is the only environment the build reads (``SOURCE_DATE_EPOCH``, secrets
    given as ``--secret id=X,env=VAR``, ``PYKANIKO_IGNORE_PATHS``). ``isolation`` is
    chosen from ``options.isolation`` unless given; ``wrap_isolation`` lets the caller
    intercept it (the api's cancellation kills a running RUN through it).
    """
    started = time.monotonic()
    plan = load_plan(options)
    if options.dry_run and not options.cache:
        return BuildResult("", None, b"", (), render_plan(plan), time.monotonic() - started)
    options = absolute_paths(options)
    mountinfo = read_mountinfo()
    notices: tuple[Notice, ...] = ()
    if options.dry_run:  # --dry-run --cache: keys and probes only, nothing runs
        isolation = isolation or ChrootIsolation()
    elif isolation is None:
        choice = choose_isolation(options, env, mountinfo)
        isolation, notices = choice.isolation, choice.notices()
    if wrap_isolation is not None:
        isolation = wrap_isolation(isolation)
    created = _created(options, env)
    refs = [parse_reference(d) for d in options.outputs.destinations]
    if refs and not options.outputs.no_push and not options.dry_run:
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
    cache: LayerCache | None = None
    try:
        if options.cache and options.single_snapshot:
            events(Notice("warning", "--single-snapshot makes one layer per stage: no layer cache"))
        elif options.cache:
            cache = open_layer_cache(
                cache_repo=options.cache_repo,
                destinations=refs,
                no_push=options.outputs.no_push,
                registry=registry,
                platform=options.platform,
                blobs=workspace.store,
                ttl=options.cache_ttl,
                push=options.push_cache and not options.dry_run,
            )
        runner = _Build(
            options,
            plan,
            registry=registry,
            isolation=isolation,
            events=events,
            workspace=workspace,
            env=env,
            created=created,
            mountinfo=mountinfo,
            notices=notices,
            cache=cache,
            leaks=leaks,
        )
        if options.dry_run:
            text = render_plan(plan, notes=runner.predict())
            return BuildResult("", None, b"", (), text, time.monotonic() - started)
        isolation.begin()
        final = runner.run()
        manifest, config_raw = assemble(final, options, created[0], workspace.store.put_bytes)
        digest = manifest.digest
        leaks.check_metadata(config_raw, "the image config")
        leaks.check_metadata(manifest.raw, "the image manifest")
        leaks.clear_for_push([d.digest for d in manifest.layers], "the image")
        deliver(
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
        if cache is not None:  # cache pushes end (or fail) before the build returns
            for warning in cache.finish():
                events(Notice("warning", warning))
        if options.cleanup:
            workspace.cleanup()
        else:
            workspace.release()
    seconds = time.monotonic() - started
    events(BuildFinished(digest, seconds))
    return BuildResult(digest, manifest, config_raw, tuple(str(r) for r in refs), "", seconds)
