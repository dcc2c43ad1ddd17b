"""What each ``RUN --mount`` serves, as :class:`BindMount` values the isolation puts in
place: the cache directory, the secret's private copy, the bind source, a tmpfs.

Secrets come from ``--secret`` or, for an id that has none, from the kaniko dir (the
convention of Kaniko jobs that write ``/kaniko/NAME`` before the executor runs):
``<kaniko-dir>/<id>``, or the file at the mount's target when the target lies in the
kaniko dir. An explicit ``--secret`` wins. Secret values never reach a layer, the
history, the cache key or a log.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from pykaniko.dockerfile import Mount, StageBase
from pykaniko.errors import BuildError
from pykaniko.executor.fsutil import clean_abs, resolve_in_root
from pykaniko.executor.isolation import BindMount
from pykaniko.executor.state import StageState

__all__ = ["find_kaniko_secret", "run_mounts"]


def run_mounts(
    state: StageState, mounts: Sequence[Mount], holder: Path, env: list[str]
) -> list[BindMount]:
    """The step's mounts; secret values given as ``env=`` are appended to ``env``."""
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
                out.append(BindMount(source=str(cache), target=m.target, kind="cache"))
            case "bind":
                out.append(_bind(state, m))
            case _:
                raise BuildError(f"RUN --mount=type={m.type} is not supported")
    return out


def find_kaniko_secret(kaniko_dir: Path, sid: str, target: str) -> tuple[Path | None, list[str]]:
    """The kaniko-dir file serving secret ``sid`` mounted at ``target``, and the places
    looked at: the target itself when it lies in the kaniko dir, then
    ``<kaniko-dir>/<id>`` (an id naming another directory is never looked up)."""
    base = clean_abs(os.path.abspath(kaniko_dir))
    looked: list[str] = []
    if target:
        dst = clean_abs(target)
        if dst.startswith(base.rstrip("/") + "/"):
            looked.append(dst)
    by_id = f"{base.rstrip('/')}/{sid}"
    if sid and "/" not in sid and sid not in (".", "..") and by_id not in looked:
        looked.append(by_id)
    for place in looked:
        if Path(place).is_file():
            return Path(place), looked
    return None, looked


def _secret(state: StageState, m: Mount, holder: Path, env: list[str]) -> BindMount | None:
    """A secret is a private file in the RUN's scratch directory, with the mount's mode
    and owner, mounted read-only (or an env value)."""
    ctx = state.ctx
    sid = m.id or ""
    source = next((s for s in ctx.options.secrets if s.id == sid), None)
    origin: Path | None = None
    try:
        if source is not None and source.env is not None:
            value = ctx.environ[source.env].encode()
        elif source is not None:
            assert source.path is not None
            origin = Path(source.path)
            value = origin.read_bytes()
        else:
            origin, looked = find_kaniko_secret(ctx.options.work_dir, sid, m.target)
            if origin is None:
                if m.required:
                    places = " or ".join(looked) or "the kaniko dir"
                    raise BuildError(
                        f"secret {sid!r} is required but was not given: no --secret "
                        f"id={sid} and no file at {places}",
                        hint=f"pass --secret id={sid},src=FILE",
                    )
                return None  # an optional secret that is missing is not mounted (BuildKit)
            value = origin.read_bytes()
    except (KeyError, OSError) as exc:
        raise BuildError(f"secret {sid!r} cannot be read") from exc
    if ctx.leaks is not None:
        ctx.leaks.record_secret(sid, value)
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
    return BindMount(
        source=str(path),
        target=m.target,
        readonly=True,
        kind="secret",
        origin=str(origin) if origin is not None else None,
    )


def _bind(state: StageState, m: Mount) -> BindMount:
    """A bind mount of the context, a stage or an image root; whether ``rw`` writes are
    thrown away through a copy is the isolation's business."""
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
    return BindMount(source=str(source), target=m.target, readonly=m.readonly)
