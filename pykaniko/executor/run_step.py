"""RUN: the step's environment and user, its mounts and secrets, then a cache hit or an
execution through the build's isolation, and the layer that follows."""

from __future__ import annotations

import os

from pykaniko.dockerfile import Run, StageScope
from pykaniko.errors import BuildError, RunError
from pykaniko.executor.events import StepOutput
from pykaniko.executor.fsutil import makedirs_in_root
from pykaniko.executor.isolation import RunSpec
from pykaniko.executor.leakcheck import LeakGuard
from pykaniko.executor.metadata import DEFAULT_PATH, DEFAULT_SHELL, run_created_by
from pykaniko.executor.oserrors import disk_nearly_full, from_os_error, size_text, tree_size
from pykaniko.executor.run_mounts import run_mounts
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
        mounts = run_mounts(state, instr.mounts, holder, env)
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
        status = ctx.isolation.run(
            spec,
            output=lambda line: ctx.events(
                StepOutput(state.index, _shown(ctx.leaks, line.decode(errors="replace")))
            ),
        )
    except BuildError as exc:
        if exc.location is None:
            raise BuildError(exc.message, hint=exc.hint, location=instr.location) from exc
        raise
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
