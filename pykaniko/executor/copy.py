"""COPY and ADD with Docker's rules: wildcard sources, directory contents, trailing-slash
and existing-directory destinations, ownership 0:0 unless ``--chown``, ``--chmod``,
source modes and mtimes kept, ``.dockerignore`` applied to the build context, local
archives unpacked by ADD."""

from __future__ import annotations

import lzma
import os
import re
import shutil
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import zstandard

from pykaniko.dockerfile import DockerIgnore
from pykaniko.errors import BuildError
from pykaniko.executor.fsutil import clean_abs, makedirs_in_root, resolve_in_root
from pykaniko.image.layerfile import open_decompressed

__all__ = [
    "CopyRequest",
    "SourceMatch",
    "SourceTree",
    "copy_sources",
    "escape_pattern",
    "expand_sources",
    "extract_archive",
    "match_sources",
    "open_archive",
    "source_path",
    "walk_source",
]


@dataclass(frozen=True, slots=True)
class SourceTree:
    """Where COPY sources come from: the build context (with its ignore matcher) or the
    rootfs of a stage or external image (no ignore file, symlinks resolved inside it)."""

    root: Path
    ignored: Callable[[str], bool] | None = None
    is_rootfs: bool = False
    descend_ignored: bool = False

    def visible(self, rel: str) -> bool:
        return self.ignored is None or not rel or not self.ignored(rel)


@dataclass(frozen=True, slots=True)
class CopyRequest:
    sources: tuple[str, ...]
    dest: str
    workdir: str
    uid: int = 0
    gid: int = 0
    chown: bool = False
    chmod: int | None = None
    what: str = "COPY"
    exclude: tuple[str, ...] = ()
    parents: bool = False


def _has_magic(part: str) -> bool:
    return any(c in part for c in "*?[")


def _go_pattern(part: str) -> re.Pattern[str] | None:
    """A regex matching what Go's ``filepath.Match`` matches for one path component
    (BuildKit's COPY wildcards): ``[^...]`` negates a class and ``!`` is a plain
    character, a backslash escapes; None for a malformed pattern (matches nothing)."""
    out: list[str] = []
    i, n = 0, len(part)

    def esc() -> str | None:  # Go's getEsc: one class character, maybe escaped
        nonlocal i
        if i >= n or part[i] in "-]":
            return None
        if part[i] == "\\":
            i += 1
            if i >= n:
                return None
        ch = part[i]
        i += 1
        return None if i >= n else ch

    while i < n:
        c = part[i]
        i += 1
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            if i >= n:
                return None
            out.append(re.escape(part[i]))
            i += 1
        elif c == "[":
            negate = i < n and part[i] == "^"
            i += 1 if negate else 0
            items: list[str] = []
            while True:
                if i < n and part[i] == "]" and items:
                    i += 1
                    break
                lo = esc()
                if lo is None:
                    return None
                hi: str | None = lo
                if part[i] == "-":
                    i += 1
                    hi = esc()
                if hi is None:
                    return None
                items.append(f"{re.escape(lo)}-{re.escape(hi)}" if hi != lo else re.escape(lo))
            out.append(("[^/" if negate else "[") + "".join(items) + "]")
        else:
            out.append(re.escape(c))
    try:
        return re.compile("".join(out) + r"\Z", re.DOTALL)
    except re.error:  # a reversed range such as [z-a]
        return None


def _glob(tree: SourceTree, pattern: str) -> list[str]:
    """Context-relative matches of a Go-style ``filepath.Match`` pattern (``*`` never
    crosses ``/``), in lexical order."""
    parts = [p for p in clean_abs(pattern).split("/") if p]
    found = [""]
    for part in parts:
        nxt: list[str] = []
        for base in found:
            host = _tree_path(tree, base)
            if not _has_magic(part):
                rel = f"{base}/{part}" if base else part
                candidate = _tree_path(tree, rel, follow_final=False)
                if candidate.exists() or candidate.is_symlink():
                    nxt.append(rel)
                continue
            if not host.is_dir():
                continue
            regex = _go_pattern(part)
            if regex is None:  # a bad pattern matches nothing (Go's filepath.Match)
                continue
            for name in sorted(os.listdir(host)):
                if regex.match(name):
                    nxt.append(f"{base}/{name}" if base else name)
        found = nxt
    return [f for f in found if tree.visible(f) or _holds_reincluded(tree, f)]


def _holds_reincluded(tree: SourceTree, rel: str) -> bool:
    """An ignored directory still in the context because ``!`` exceptions re-include
    something below it (``drop`` + ``!drop/keep``): BuildKit's context holds it, with
    only what was re-included, so a source naming or matching it copies that."""
    if not tree.descend_ignored or tree.is_rootfs:
        return False
    host = _tree_path(tree, rel)
    return host.is_dir() and not host.is_symlink() and bool(walk_source(host, rel, tree))


def expand_sources(tree: SourceTree, pattern: str) -> list[str]:
    """Context- (or rootfs-) relative matches of one COPY/ADD source; a literal source
    that does not exist is an error, a wildcard matching nothing is not."""
    found = _glob(tree, pattern)
    if not found and not _has_magic(pattern):
        raise BuildError(
            f"{pattern!r} not found in the "
            f"{'source image' if tree.is_rootfs else 'build context'}"
            + ("" if tree.is_rootfs else " or excluded by .dockerignore")
        )
    return found


def source_path(tree: SourceTree, rel: str) -> Path:
    """The host path of a matched source, refusing anything outside the context."""
    return _src_host(tree, rel)


def escape_pattern(name: str) -> str:
    """``name`` as a source pattern that matches only itself."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _tree_path(tree: SourceTree, rel: str, *, follow_final: bool = True) -> Path:
    """Host path of ``rel`` in a source tree; an image rootfs resolves its symlinks
    inside itself (``/bin -> /usr/bin`` must not be looked up on the host)."""
    if tree.is_rootfs:
        return resolve_in_root(tree.root, "/" + rel, follow_final=follow_final)
    return tree.root / rel if rel else tree.root


def _src_host(tree: SourceTree, rel: str) -> Path:
    if tree.is_rootfs:
        host = resolve_in_root(tree.root, "/" + rel)
        if not host.exists():
            raise BuildError(f"{rel}: symbolic link target not found in the source image")
        return host
    host = tree.root / rel if rel else tree.root
    real = host.resolve()
    root = tree.root.resolve()
    if real != root and root not in real.parents:
        raise BuildError(f"forbidden path outside the build context: {rel}")
    if not real.exists():
        raise BuildError(f"{rel}: symbolic link target not found in the build context")
    return real if host.is_symlink() else host


def _apply_meta(path: Path, st: os.stat_result, req: CopyRequest, keep_owner: bool) -> None:
    if keep_owner:  # COPY --from without --chown keeps the owner, as BuildKit does
        os.lchown(path, st.st_uid, st.st_gid)
    else:
        os.lchown(path, req.uid, req.gid)
    if not stat.S_ISLNK(st.st_mode):
        mode = stat.S_IMODE(st.st_mode) if req.chmod is None else req.chmod
        os.chmod(path, mode)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _copy_entry(
    src: Path, st: os.stat_result, dst: Path, req: CopyRequest, keep_owner: bool
) -> None:
    if stat.S_ISDIR(st.st_mode):
        if dst.is_symlink() or (dst.exists() and not dst.is_dir()):
            _remove(dst)
        if not dst.exists():
            dst.mkdir()
        _apply_meta(dst, st, req, keep_owner)
        return
    if dst.exists() or dst.is_symlink():
        _remove(dst)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
    elif stat.S_ISREG(st.st_mode):
        shutil.copyfile(src, dst, follow_symlinks=False)
    elif stat.S_ISFIFO(st.st_mode):
        os.mkfifo(dst)
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        os.mknod(dst, st.st_mode, st.st_rdev)
    else:  # sockets are not copied, as Docker does not
        return
    _apply_meta(dst, st, req, keep_owner)


def walk_source(src: Path, rel: str, tree: SourceTree) -> list[tuple[Path, str, os.stat_result]]:
    """Entries below ``src``, parents before children, ignore rules applied. An ignored
    directory is entered only when ``!`` exceptions could re-include something in it,
    and then kept only as the parent of what was re-included."""
    out: list[tuple[Path, str, os.stat_result]] = []
    with os.scandir(src) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        child_rel = f"{rel}/{entry.name}" if rel else entry.name
        visible = tree.visible(child_rel)
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode) and (visible or tree.descend_ignored):
            below = walk_source(Path(entry.path), child_rel, tree)
            if visible or below:
                out.append((Path(entry.path), child_rel, st))
                out.extend(below)
        elif visible:
            out.append((Path(entry.path), child_rel, st))
    return out


def _pivot(pattern: str) -> str:
    """``--parents``: the part of a source before ``/./`` is not kept (BuildKit)."""
    cleaned = "/" + pattern.removeprefix("./").lstrip("/")
    head, sep, _tail = cleaned.partition("/./")
    return clean_abs(head).lstrip("/") if sep else ""


def _source_base(tree: SourceTree, pattern: str) -> str:
    """The directory ``--exclude`` patterns are relative to: the copied directory
    itself, or the directory holding a file or the first wildcard."""
    parts = [p for p in clean_abs(pattern).split("/") if p]
    fixed: list[str] = []
    for part in parts:
        if _has_magic(part):
            return "/".join(fixed)
        fixed.append(part)
    rel = "/".join(fixed)
    return rel if _tree_path(tree, rel).is_dir() else "/".join(fixed[:-1])


def _excluding(tree: SourceTree, patterns: tuple[str, ...], base: str) -> SourceTree:
    """``--exclude``: ``.dockerignore``-syntax patterns, relative to ``base``."""
    if not patterns:
        return tree
    matcher = DockerIgnore.parse("\n".join(patterns))
    inherited = tree.ignored

    def ignored(rel: str) -> bool:
        if inherited is not None and inherited(rel):
            return True
        inside = rel[len(base) :].lstrip("/") if base else rel
        return bool(inside) and matcher.matches(inside)

    return replace(
        tree, ignored=ignored, descend_ignored=tree.descend_ignored or matcher.has_exclusions
    )


@dataclass(frozen=True, slots=True)
class SourceMatch:
    """One matched COPY source: its tree-relative path, the tree with its ``--exclude``
    rules applied, and the ``--parents`` pivot."""

    rel: str
    tree: SourceTree
    pivot: str


def match_sources(tree: SourceTree, req: CopyRequest) -> list[SourceMatch]:
    """What one COPY copies, in order: shared by the copy and by its cache key, so the
    key sees exactly the files the copy reads."""
    matches: list[SourceMatch] = []
    for pattern in req.sources:
        scoped = _excluding(tree, req.exclude, _source_base(tree, pattern))
        found = _glob(scoped, pattern)
        if not found and not _has_magic(pattern) and not req.exclude:
            raise BuildError(
                f"{req.what} failed: {pattern!r} not found in the "
                f"{'source image' if tree.is_rootfs else 'build context'}"
                + ("" if tree.is_rootfs else " or excluded by .dockerignore")
            )
        pivot = _pivot(pattern)
        matches.extend(SourceMatch(rel, scoped, pivot) for rel in found)
    if not matches:
        raise BuildError(f"{req.what} failed: no source files were specified or matched")
    return matches


def copy_sources(rootfs: Path, tree: SourceTree, req: CopyRequest) -> list[str]:
    """Carry out one COPY; returns the rootfs paths it wrote (for the snapshot)."""
    found = match_sources(tree, req)
    matches = [m.rel for m in found]
    trees = {m.rel: (m.tree, m.pivot) for m in found}
    dest = clean_abs(req.dest, req.workdir)
    into_dir = (
        req.dest.endswith("/")
        or req.dest in (".", "./")
        or len(matches) > 1
        or resolve_in_root(rootfs, dest).is_dir()
    )
    if (
        len(matches) > 1
        and not req.dest.endswith("/")
        and not resolve_in_root(rootfs, dest).is_dir()
    ):
        raise BuildError(
            f"{req.what} with more than one source file: the destination must be a "
            f"directory and end with a /"
        )
    keep_owner = tree.is_rootfs and not req.chown
    touched: list[str] = []
    for rel in matches:
        scoped, pivot = trees[rel]
        src = _src_host(tree, rel)
        st = src.stat() if not tree.is_rootfs else os.lstat(src)
        kept = rel[len(pivot) :].lstrip("/") if req.parents else ""
        if stat.S_ISDIR(st.st_mode):
            into = clean_abs(kept, dest) if kept else dest
            touched += makedirs_in_root(rootfs, into, uid=req.uid, gid=req.gid)
            target_dir = resolve_in_root(rootfs, into)
            if not (target_dir.exists()):
                raise BuildError(f"{req.what}: cannot create {into}")
            # a destination this COPY creates is a plain 0755 directory owned by the
            # --chown ids (else root), never the source directory's mode, owner or
            # --chmod: BuildKit's fsutil MkdirAll()s it before copying the contents.
            # With --parents the directory is itself a copied path: it keeps its own.
            dirs: list[tuple[Path, os.stat_result]] = []
            if kept and into in touched:
                _apply_meta(target_dir, st, req, keep_owner)
                dirs.append((target_dir, st))
            for child, child_rel, child_st in walk_source(src, rel, scoped):
                sub = child_rel[len(rel) :].lstrip("/") if rel else child_rel
                host = resolve_in_root(rootfs, f"{into}/{sub}", follow_final=False)
                _copy_entry(child, child_st, host, req, keep_owner)
                if stat.S_ISDIR(child_st.st_mode) and not scoped.visible(child_rel):
                    # an ignored directory kept only as the parent of re-included files
                    # is made fresh, as the context transfer makes it (0755)
                    os.chmod(host, req.chmod if req.chmod is not None else 0o755)
                if stat.S_ISDIR(child_st.st_mode):
                    dirs.append((host, child_st))
                touched.append(clean_abs(sub, into))
            # writing children moved the directories' mtimes: put the sources' back
            for host, dir_st in reversed(dirs):
                os.utime(host, ns=(dir_st.st_atime_ns, dir_st.st_mtime_ns))
            touched.append(into)
            continue
        name = rel.rsplit("/", 1)[-1] if rel else src.name
        if kept:
            name = kept
        target = clean_abs(name, dest) if into_dir or kept else dest
        parent = target.rsplit("/", 1)[0] or "/"
        touched += makedirs_in_root(rootfs, parent, uid=req.uid, gid=req.gid)
        host = resolve_in_root(rootfs, target, follow_final=False)
        _copy_entry(src, st, host, req, keep_owner)
        touched.append(target)
    return _with_resolved(rootfs, touched)


def _with_resolved(rootfs: Path, paths: list[str]) -> list[str]:
    """``paths`` plus, for each one written through a symlinked parent, the path it
    really is in the rootfs (as Kaniko's ResolvePaths), so a snapshot of these paths
    sees the files (``COPY f /opt/link/`` with ``/opt/link -> /opt/real``)."""
    out: list[str] = []
    for path in paths:
        out.append(path)
        host = resolve_in_root(rootfs, path, follow_final=False)
        real = "/" + host.relative_to(rootfs).as_posix() if host != rootfs else "/"
        if real != path:
            out.append(real)
    return out


def open_archive(path: Path) -> BinaryIO | None:
    """An uncompressed stream if ``path`` is a tar archive (plain, gzip, bzip2, xz or
    zstd), else None. Reads one header block to decide, never the whole file."""
    try:
        with open_decompressed(path) as probe:
            block = probe.read(512)
    except (OSError, EOFError, lzma.LZMAError, zstandard.ZstdError):
        return None
    if len(block) < 512 or not _tar_header(block):
        return None
    return open_decompressed(path)


def _tar_header(block: bytes) -> bool:
    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.TarError:
        return False
    return True


def extract_archive(stream: BinaryIO, rootfs: Path, dest: str) -> list[str]:
    """Unpack an ADD archive into ``dest`` keeping the archive's owners and modes.

    Every member is resolved inside the rootfs; names with ``..`` that would leave the
    destination are refused, links are made as links.
    """
    touched = makedirs_in_root(rootfs, dest)
    touched.append(dest)
    links: list[tuple[tarfile.TarInfo, str]] = []
    dirs: list[tuple[Path, tarfile.TarInfo]] = []
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            name = clean_abs(member.name, "/").lstrip("/")
            if not name:
                continue
            if ".." in member.name.split("/"):
                raise BuildError(f"ADD: archive member {member.name!r} escapes the destination")
            target = clean_abs(name, dest)
            parent = target.rsplit("/", 1)[0] or "/"
            touched += makedirs_in_root(rootfs, parent)
            host = resolve_in_root(rootfs, target, follow_final=False)
            if member.islnk():
                links.append((member, target))
                continue
            if member.isdir():
                if (host.exists() and not host.is_dir()) or host.is_symlink():
                    _remove(host)
                host.mkdir(exist_ok=True)
                dirs.append((host, member))
            else:
                if host.exists() or host.is_symlink():
                    _remove(host)
                if member.issym():
                    os.symlink(member.linkname, host)
                elif member.isfile():
                    src = tar.extractfile(member)
                    assert src is not None
                    with open(host, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
                elif member.isfifo():
                    os.mkfifo(host)
                elif member.ischr() or member.isblk():
                    kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
                    os.mknod(host, kind | 0o600, os.makedev(member.devmajor, member.devminor))
                else:
                    continue
                _member_meta(host, member)
            touched.append(target)
    for member, target in links:
        link_target = clean_abs(clean_abs(member.linkname, "/").lstrip("/"), dest)
        host = resolve_in_root(rootfs, target, follow_final=False)
        if host.exists() or host.is_symlink():
            _remove(host)
        linked = resolve_in_root(rootfs, link_target, follow_final=False)
        os.link(linked, host)
        # the link's own header sets the shared inode's owner, and its mode and mtime
        # unless the target is a symlink (moby's and containerd's createTarFile)
        os.lchown(host, member.uid, member.gid)
        if not linked.is_symlink():
            os.chmod(host, member.mode & 0o7777)
            os.utime(host, (member.mtime, member.mtime))
        touched.append(target)
    for host, member in reversed(dirs):
        _member_meta(host, member)
    return _with_resolved(rootfs, touched)


def _member_meta(host: Path, member: tarfile.TarInfo) -> None:
    os.lchown(host, member.uid, member.gid)
    if not member.issym():
        os.chmod(host, member.mode & 0o7777)
    os.utime(host, (member.mtime, member.mtime), follow_symlinks=False)
