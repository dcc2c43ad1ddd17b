"""COPY and ADD: sources from the context, a stage or an image, heredoc files, URLs and
local archives, written into the stage's rootfs and snapshotted by path."""

from __future__ import annotations

import lzma
import os
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path

import zstandard

from pykaniko.dockerfile import Add, Copy, Heredoc, Instruction, StageBase
from pykaniko.errors import BuildError
from pykaniko.executor.copy import (
    CopyRequest,
    SourceTree,
    copy_sources,
    escape_pattern,
    expand_sources,
    extract_archive,
    open_archive,
    source_path,
)
from pykaniko.executor.fsutil import clean_abs, makedirs_in_root, resolve_in_root
from pykaniko.executor.leakcheck import short_step
from pykaniko.executor.oserrors import from_os_error
from pykaniko.executor.state import StageState
from pykaniko.executor.users import resolve_chown

__all__ = ["copy_step"]


def copy_step(state: StageState, instr: Copy | Add) -> None:
    created_by = f"{instr.original} # buildkit"
    hit = state.cached()
    if hit is not None:
        state.use_cached(hit, created_by)
        return
    before = len(state.out.layers)
    cfg = state.out.config.config
    workdir = cfg.working_dir or "/"
    scoped = state.scoped_fs([clean_abs(instr.dest, workdir)])
    if not scoped:
        state.ensure_fs()
    try:
        uid, gid = _owner(state, instr, scoped=scoped)
    except BuildError as exc:
        raise BuildError(exc.message, location=instr.location) from exc
    root = state.fs_root
    chmod = _parse_chmod(instr.chmod, instr)
    what = "COPY" if isinstance(instr, Copy) else "ADD"
    req = CopyRequest(
        sources=(),
        dest=instr.dest,
        workdir=workdir,
        uid=uid,
        gid=gid,
        chown=instr.chown is not None,
        chmod=chmod,
        what=what,
        exclude=instr.exclude,
        parents=isinstance(instr, Copy) and instr.parents,
    )
    try:
        state.check_destination(clean_abs(instr.dest, workdir), what)
    except BuildError as exc:
        raise BuildError(exc.message, hint=exc.hint, location=instr.location) from exc
    total = len(instr.sources) + len(instr.heredocs)
    if total > 1 and not instr.dest.endswith("/"):
        req = replace(req, dest=instr.dest + "/")
        if not resolve_in_root(root, clean_abs(instr.dest, workdir)).is_dir():
            raise BuildError(
                f"{what} with more than one source: the destination must be a "
                "directory and end with a /",
                location=instr.location,
            )
    try:
        touched = _copy_sources(state, instr, req)
        for doc in instr.heredocs:
            touched += _heredoc_file(state, doc, req, total)
    except BuildError as exc:
        if exc.location is None:  # keep the error's type and fields (StorageError...)
            exc.location = instr.location
        raise
    except OSError as exc:
        operation = short_step(instr.original, 60)
        raise from_os_error(exc, operation, state.path_map(), location=instr.location) from exc
    except (EOFError, tarfile.TarError, lzma.LZMAError, zstandard.ZstdError) as exc:
        raise BuildError(f"{what} failed: {exc}", location=instr.location) from exc
    state.add_layer(touched, created_by)
    state.remember(before, created_by)
    state.unscope(before)


def _owner(state: StageState, instr: Copy | Add, *, scoped: bool) -> tuple[int, int]:
    """``--chown`` as ids; names are looked up in the rootfs (a scoped one that cannot
    answer, an ``/etc/passwd`` symlinked elsewhere, gives way to the whole rootfs)."""
    if not instr.chown:
        return 0, 0
    try:
        return resolve_chown(state.fs_root, instr.chown)
    except BuildError:
        if not scoped:
            raise
    state.unscope(len(state.out.layers))
    state.ensure_fs()
    return resolve_chown(state.fs_root, instr.chown)


def _copy_sources(state: StageState, instr: Copy | Add, req: CopyRequest) -> list[str]:
    root = state.fs_root
    ctx = state.ctx
    if not instr.sources:
        return []  # heredocs only
    if isinstance(instr, Copy) and instr.from_:
        target = ctx.resolve_from(state.index, instr.from_)
        # both extracted only as far as the sources need (lazily, for a stage)
        rootfs: Callable[[Sequence[str]], Path] = (
            partial(ctx.stage_rootfs, target.index)
            if isinstance(target, StageBase)
            else partial(ctx.image_rootfs, target.reference)
        )
        try:
            tree = SourceTree(root=rootfs(instr.sources), is_rootfs=True)
            return copy_sources(root, tree, replace(req, sources=instr.sources))
        except BuildError:
            # a source reached through a symlink to a file outside the extracted
            # part: take the whole filesystem and copy again (the copy is idempotent)
            tree = SourceTree(root=rootfs(("/",)), is_rootfs=True)
            return copy_sources(root, tree, replace(req, sources=instr.sources))
    tree = SourceTree(
        root=ctx.options.context,
        ignored=ctx.context_ignored,
        descend_ignored=ctx.context_has_exceptions,
    )
    if isinstance(instr, Copy):
        return copy_sources(root, tree, replace(req, sources=instr.sources))
    touched: list[str] = []
    plain: list[str] = []
    for src in instr.sources:
        if src.startswith(("http://", "https://")):
            touched += _add_url(state, src, instr, req)
        elif src.startswith(("git@", "git://")) or src.endswith(".git"):
            raise BuildError("ADD of git repositories is not supported yet")
        elif instr.unpack is False:
            plain.append(src)
        else:
            for rel in expand_sources(tree, src):
                archive = open_archive(source_path(tree, rel))
                if archive is None:
                    plain.append(escape_pattern(rel))
                    continue
                with archive as stream:
                    dest = clean_abs(req.dest, req.workdir)
                    touched += extract_archive(stream, root, dest)
    if plain or not (touched or instr.heredocs):
        touched += copy_sources(root, tree, replace(req, sources=tuple(plain)))
    return touched


def _heredoc_file(state: StageState, doc: Heredoc, req: CopyRequest, total: int) -> list[str]:
    """``COPY <<EOF dest``: a file named after the delimiter inside a directory
    destination, else the destination itself; never written through a symlink."""
    root = state.fs_root
    dest = clean_abs(req.dest, req.workdir)
    into_dir = req.dest.endswith("/") or total > 1 or resolve_in_root(root, dest).is_dir()
    target = clean_abs(doc.name, dest) if into_dir else dest
    parent = target.rsplit("/", 1)[0] or "/"
    touched = makedirs_in_root(root, parent, uid=req.uid, gid=req.gid)
    host = resolve_in_root(root, target, follow_final=False)
    if host.is_symlink() or (host.exists() and not host.is_dir()):
        host.unlink()
    elif host.is_dir():
        raise BuildError(f"cannot write {target}: it is a directory")
    fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(doc.content)
        os.fchown(f.fileno(), req.uid, req.gid)
        os.fchmod(f.fileno(), req.chmod if req.chmod is not None else 0o644)
    return [*touched, target]


def _add_url(state: StageState, url: str, instr: Add, req: CopyRequest) -> list[str]:
    """``ADD <url>``: downloaded (checksum verified), mode 0600 unless ``--chmod``,
    mtime from Last-Modified, named after the URL's last path segment (the build
    names the file so)."""
    path, result = state.ctx.download(url, instr.checksum)  # once per build (cache keys)
    path.chmod(req.chmod if req.chmod is not None else 0o600)
    if result.last_modified is not None:
        os.utime(path, (result.last_modified, result.last_modified))
    tree = SourceTree(root=path.parent)
    fetched = replace(req, sources=(escape_pattern(path.name),), chmod=None, exclude=())
    return copy_sources(state.fs_root, tree, fetched)


def _parse_chmod(value: str | None, instr: Instruction) -> int | None:
    if value is None:
        return None
    try:
        mode = int(value, 8)
    except ValueError:
        raise BuildError(
            f"--chmod={value}: expected an octal mode such as 0755", location=instr.location
        ) from None
    if not 0 <= mode <= 0o7777:
        raise BuildError(f"--chmod={value}: mode out of range", location=instr.location)
    return mode
