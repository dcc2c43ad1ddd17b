"""RUN: the step's environment and user, its mounts and secrets, then a cache hit or an
execution through the sandbox, and the layer that follows."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from pykaniko.dockerfile import Mount, Run, StageBase, StageScope
from pykaniko.errors import BuildError, RunError
from pykaniko.executor.events import StepOutput
from pykaniko.executor.fsutil import makedirs_in_root, resolve_in_root
from pykaniko.executor.isolation import BindMount, RunSpec
from pykaniko.executor.leakcheck import LeakGuard
from pykaniko.executor.metadata import DEFAULT_PATH, DEFAULT_SHELL, run_created_by
from pykaniko.executor.oserrors import disk_nearly_full, from_os_error, size_text, tree_size
from pykaniko.executor.state import StageState
from pykaniko.executor.users import Identity, resolve_user
from pykaniko.image.config import ContainerConfig

__all__ = ["run_step"]


def _identity(state: StageState) -> Identity:
    user = state.out.config.config.user
    if not user:
        return Identity(uid=0, gid=0, groups=(0,), home="/root")
    return resolve_user(state.fs_root, user)


def run_step(state: StageState, instr: Run, scope: StageScope) -> None:
    cfg = state.out.config.config
    declared = {k: v for k, v in scope.declared_args.items() if v is not None}
    created_by = run_created_by(_argv_shown(instr, cfg), declared)
    hit = state.cached()
    if hit is not None:
        state.use_cached(hit, created_by)
        return
    state.ensure_fs()
    try:
        ident = _identity(state)
    except BuildError as exc:
        raise BuildError(exc.message, location=instr.location) from exc
    env = scope.run_env(cfg.env)
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={ident.home if ident.uid else '/root'}")
    if not any(e.startswith("PATH=") for e in env):
        env.append(f"PATH={DEFAULT_PATH}")
    before = len(state.out.layers)
    ctx = state.ctx
    try:
        _execute(state, instr, cfg, ident, env)
    except OSError as exc:
        raise from_os_error(
            exc, "preparing the RUN", state.path_map(), location=instr.location
        ) from exc
    except RunError as exc:
        if exc.hint is None and disk_nearly_full(state.fs_root):
            used = size_text(tree_size(ctx.workspace.root))
            exc.hint = (
                f"the filesystem of --kaniko-dir={ctx.options.work_dir} is full "
                f"(this build had written {used} there)"
            )
        raise
    state.add_layer(None, created_by)
    state.remember(before, created_by)


def _argv_shown(instr: Run, cfg: ContainerConfig) -> list[str]:
    """The command as history records it (heredoc bodies are not repeated)."""
    if not instr.shell:
        return list(instr.args)
    if instr.script is not None:
        return [instr.original[4:]]
    if instr.heredocs:
        return [*(cfg.shell or DEFAULT_SHELL), instr.original[4:]]
    return [*(cfg.shell or DEFAULT_SHELL), instr.command_text]


def _execute(
    state: StageState, instr: Run, cfg: ContainerConfig, ident: Identity, env: list[str]
) -> None:
    ctx = state.ctx
    workdir = cfg.working_dir or "/"
    makedirs_in_root(state.fs_root, workdir)
    holder = ctx.workspace.scratch("run")
    os.chmod(holder, 0o700)
    try:
        mounts = _mounts(state, instr.mounts, holder, env)
        scripts: tuple[tuple[str, str], ...] = ()
        if not instr.shell:
            argv = list(instr.args)
        elif instr.script is not None:
            # a shebang heredoc is a file run directly, mounted at /dev/pipes (BuildKit)
            script = holder / "script"
            script.write_text(instr.script.content)
            script.chmod(0o755)
            name = instr.script.name.replace("/", "_") or "EOF"
            scripts = ((str(script), name),)
            argv = [f"/dev/pipes/{name}"]
        else:
            argv = [*(cfg.shell or DEFAULT_SHELL), instr.command_text]
        if not argv:
            raise BuildError("RUN with an empty command", location=instr.location)
        spec = RunSpec(
            rootfs=str(state.fs_root),
            argv=tuple(argv),
            env=tuple(env),
            scratch=str(holder),
            cwd=workdir,
            uid=ident.uid,
            gid=ident.gid,
            groups=ident.groups,
            mounts=tuple(mounts),
            scripts=scripts,
            network=instr.network or "default",
        )
        status = ctx.sandbox.run(
            spec,
            output=lambda line: ctx.events(
                StepOutput(state.index, _shown(ctx.leaks, line.decode(errors="replace")))
            ),
        )
    finally:
        ctx.workspace.remove(holder)
    if status != 0:
        shown = instr.original if len(instr.original) < 200 else instr.original[:197] + "..."
        raise RunError(
            f"{shown}: the command returned a non-zero code: {status}",
            status=status,
            location=instr.location,
        )


def _shown(leaks: LeakGuard | None, line: str) -> str:
    """A line of a RUN's output as logged: secret values the command printed are masked."""
    line = line.rstrip("\n")
    return leaks.redact(line) if leaks is not None else line


def _mounts(
    state: StageState, mounts: Sequence[Mount], holder: Path, env: list[str]
) -> list[BindMount]:
    out: list[BindMount] = []
    for m in mounts:
        match m.type:
            case "tmpfs":
                out.append(BindMount(source="tmpfs", target=m.target, kind="tmpfs"))
            case "secret":
                mount = _secret(state, m, holder, env)
                if mount is not None:
                    out.append(mount)
            case "cache":
                key = hashlib.sha256((m.id or m.target).encode()).hexdigest()[:32]
                cache = state.ctx.options.work_dir / "caches" / key
                if not cache.exists():
                    cache.mkdir(parents=True)
                    os.chown(cache, m.uid or 0, m.gid or 0)
                    os.chmod(cache, m.mode if m.mode is not None else 0o755)
                out.append(BindMount(source=str(cache), target=m.target))
            case "bind":
                out.append(_bind(state, m, holder))
            case _:
                raise BuildError(f"RUN --mount=type={m.type} is not supported")
    return out


def _secret(state: StageState, m: Mount, holder: Path, env: list[str]) -> BindMount | None:
    """A secret is a file in the RUN's private scratch directory, mounted read-only
    (or an env value); it is never in the rootfs, a layer, the history or a log."""
    ctx = state.ctx
    source = next((s for s in ctx.options.secrets if s.id == m.id), None)
    if source is None:
        if m.required:
            raise BuildError(
                f"secret {m.id!r} is required but was not given",
                hint=f"pass --secret id={m.id},src=FILE",
            )
        return None
    try:
        if source.env is not None:
            value = ctx.environ[source.env].encode()
        else:
            assert source.path is not None
            value = Path(source.path).read_bytes()
    except (KeyError, OSError) as exc:
        raise BuildError(f"secret {m.id!r} cannot be read") from exc
    if ctx.leaks is not None:
        ctx.leaks.record_secret(source.id, value)
    if m.env:
        env.append(f"{m.env}={value.decode(errors='replace')}")
    if not m.target:
        return None
    path = holder / f"secret-{len(list(holder.iterdir()))}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(value)
    os.chown(path, m.uid or 0, m.gid or 0)
    os.chmod(path, m.mode if m.mode is not None else 0o400)
    return BindMount(source=str(path), target=m.target, readonly=True)


def _bind(state: StageState, m: Mount, holder: Path) -> BindMount:
    """A bind mount; a ``rw`` one gets a copy, so writes are thrown away (BuildKit)."""
    ctx = state.ctx
    if m.from_:
        ref = ctx.resolve_from(state.index, m.from_)
        root = (
            ctx.stage_rootfs(ref.index, (m.source or "/",))
            if isinstance(ref, StageBase)
            else ctx.image_rootfs(ref.reference, (m.source or "/",))
        )
        source = resolve_in_root(root, m.source or "/")
    else:
        context = ctx.options.context.resolve()
        source = (context / (m.source or ".").lstrip("/")).resolve()
        if source != context and context not in source.parents:
            raise BuildError(f"--mount source {m.source!r} is outside the build context")
    if not source.exists():
        raise BuildError(f"--mount source {m.source!r} does not exist")
    if not m.readonly:
        copy = holder / f"bind-{len(list(holder.iterdir()))}"
        if source.is_dir():
            shutil.copytree(source, copy, symlinks=True)
        else:
            shutil.copy2(source, copy)
        source = copy
    return BindMount(source=str(source), target=m.target, readonly=m.readonly)
