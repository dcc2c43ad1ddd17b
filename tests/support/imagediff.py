"""An image differ: flatten two images (umoci unpack, whiteouts applied) and compare
every path's metadata and content plus the config fields that change how a container
runs.

Used for parity with buildah: the same Dockerfile built by both must give the same
snapshot once the oracle's own noise (:data:`BUILDAH_NOISE`) is left out. mtimes are
not compared unless asked: builders stamp files with their own clock.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Final

from tests.support.readers import dir_to_oci, pull_raw, raw_config, umoci_unpack

__all__ = [
    "BUILDAH_NOISE",
    "ConfigSnapshot",
    "DiffIgnore",
    "FileEntry",
    "ImageSnapshot",
    "buildah_noise",
    "diff_images",
    "snapshot_image",
    "snapshot_rootfs",
]

# ``ARG X`` / ``/bin/sh -c #(nop) ARG X`` in a history entry's created_by.
_ARG_HISTORY: Final = re.compile(r"^(?:/bin/sh -c #\(nop\)\s+)?ARG\s")

# xattrs the host adds on its own, never carried by a layer.
_HOST_XATTRS: Final = frozenset({"security.selinux"})


@dataclass(frozen=True)
class FileEntry:
    """One path of a flattened image. ``mode`` is the permission bits with setuid,
    setgid and sticky (``stat.S_IMODE``); the type is ``kind``."""

    kind: str  # file, dir, symlink, fifo, char, block, socket
    mode: int
    uid: int
    gid: int
    size: int | None = None  # regular files only
    sha256: str | None = None  # regular files only
    link: str | None = None  # symlink target
    hardlink_group: str | None = None  # sorted first path of the inode's names
    xattrs: tuple[tuple[str, bytes], ...] = ()
    device: tuple[int, int] | None = None  # (major, minor) of char/block devices
    mtime: int = 0  # seconds; compared only with DiffIgnore(compare_mtime=True)

    def describe(self) -> str:
        text = f"{self.kind} {self.mode:04o} {self.uid}:{self.gid}"
        if self.size is not None:
            text += f" {self.size}B"
        if self.link is not None:
            text += f" -> {self.link}"
        if self.device is not None:
            text += f" dev {self.device[0]},{self.device[1]}"
        return text


@dataclass(frozen=True)
class ConfigSnapshot:
    """The config fields that matter, normalised: an empty list and a missing list are
    the same (``None``), an empty string and a missing string too (``""``). ``env`` is
    sorted: builders differ on where a redefined variable goes (Docker keeps its place,
    buildah moves it last) and a container cannot tell."""

    env: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    working_dir: str = ""
    user: str = ""
    exposed_ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    stop_signal: str = ""
    healthcheck: str | None = None  # canonical JSON
    on_build: tuple[str, ...] | None = None
    shell: tuple[str, ...] | None = None
    os: str = ""
    architecture: str = ""
    variant: str = ""
    history_created_by: tuple[str, ...] = ()
    history_empty_layers: int = 0
    layer_count: int = 0

    @property
    def history_length(self) -> int:
        """History entries, ARG entries not counted: BuildKit writes none for ARG,
        buildah and the classic Docker builder one each."""
        return sum(1 for text in self.history_created_by if not _ARG_HISTORY.search(text))


@dataclass(frozen=True)
class ImageSnapshot:
    files: Mapping[str, FileEntry]
    config: ConfigSnapshot
    raw_config: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class DiffIgnore:
    """What :func:`diff_images` leaves out.

    ``paths``: exact paths, with everything below them. ``globs``: :mod:`fnmatch`
    patterns on the absolute path (``*`` crosses ``/``). ``stub_paths``: dropped when
    present on one side only as an empty file or an empty directory (a builder's mount
    point). ``labels``: label keys. ``config_fields``: :class:`ConfigSnapshot` field
    names (and ``history_length``) not compared.
    """

    paths: frozenset[str] = frozenset()
    globs: tuple[str, ...] = ()
    stub_paths: frozenset[str] = frozenset()
    labels: frozenset[str] = frozenset()
    config_fields: frozenset[str] = frozenset()
    compare_mtime: bool = False

    def __or__(self, other: DiffIgnore) -> DiffIgnore:
        return DiffIgnore(
            paths=self.paths | other.paths,
            globs=self.globs + tuple(g for g in other.globs if g not in self.globs),
            stub_paths=self.stub_paths | other.stub_paths,
            labels=self.labels | other.labels,
            config_fields=self.config_fields | other.config_fields,
            compare_mtime=self.compare_mtime or other.compare_mtime,
        )

    def drops(self, path: str) -> bool:
        if any(path == p or path.startswith(p.rstrip("/") + "/") for p in self.paths):
            return True
        return any(fnmatch.fnmatchcase(path, g) for g in self.globs)


#: buildah's own traces (test-infrastructure.md): the mount-point stubs it leaves, the
#: label it adds, and the files that record time or state after apt-get/ldconfig.
#: Its history has its own shape too (``/bin/sh -c #(nop) ...`` texts, and a whole stage
#: committed as one layer without ``--layers``): only the number of entries is compared.
BUILDAH_NOISE: Final = DiffIgnore(
    paths=frozenset({"/etc/hosts", "/etc/hostname", "/etc/resolv.conf"}),
    globs=(
        "/var/cache/apt/*.bin",
        "/var/cache/ldconfig/aux-cache",
        "/var/log/*",
    ),
    stub_paths=frozenset({"/dev", "/proc", "/sys", "/run", "/run/secrets"}),
    labels=frozenset({"io.buildah.version"}),
    config_fields=frozenset({"history_created_by", "history_empty_layers", "layer_count"}),
)


def buildah_noise(*, mount_targets: Iterable[str] = ()) -> DiffIgnore:
    """:data:`BUILDAH_NOISE` plus the target of each ``RUN --mount`` and the parents
    buildah made for it (stubs too: dropped only when empty and on one side)."""
    stubs: set[str] = set()
    for target in mount_targets:
        parts = [p for p in target.split("/") if p]
        stubs.update("/" + "/".join(parts[:i]) for i in range(1, len(parts) + 1))
    return BUILDAH_NOISE | DiffIgnore(stub_paths=frozenset(stubs))


# ---------------------------------------------------------------- snapshots


def _kind(st_mode: int) -> str:
    for test, name in (
        (stat.S_ISREG, "file"),
        (stat.S_ISDIR, "dir"),
        (stat.S_ISLNK, "symlink"),
        (stat.S_ISFIFO, "fifo"),
        (stat.S_ISCHR, "char"),
        (stat.S_ISBLK, "block"),
        (stat.S_ISSOCK, "socket"),
    ):
        if test(st_mode):
            return name
    return "unknown"


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _xattrs(path: str) -> tuple[tuple[str, bytes], ...]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return ()
    return tuple(
        sorted(
            (name, os.getxattr(path, name, follow_symlinks=False))
            for name in names
            if name not in _HOST_XATTRS
        )
    )


def _walk(rootfs: str) -> Iterator[tuple[str, str]]:
    """(absolute path inside the image, host path), directories before their content."""
    yield "/", rootfs
    stack = [("", rootfs)]
    while stack:
        rel, host = stack.pop()
        with os.scandir(host) as it:
            children = sorted(it, key=lambda e: e.name)
        for entry in children:
            child_rel = f"{rel}/{entry.name}"
            yield child_rel, entry.path
            if entry.is_dir(follow_symlinks=False):
                stack.append((child_rel, entry.path))


def snapshot_rootfs(rootfs: Path) -> dict[str, FileEntry]:
    """Every path under ``rootfs`` (an unpacked image) as a :class:`FileEntry`."""
    raw: dict[str, tuple[os.stat_result, str]] = {}
    inodes: dict[tuple[int, int], list[str]] = {}
    for path, host in _walk(str(rootfs)):
        st = os.lstat(host)
        raw[path] = (st, host)
        if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
            inodes.setdefault((st.st_dev, st.st_ino), []).append(path)
    groups = {path: min(names) for names in inodes.values() if len(names) > 1 for path in names}
    out: dict[str, FileEntry] = {}
    for path, (st, host) in raw.items():
        kind = _kind(st.st_mode)
        entry = FileEntry(
            kind=kind,
            mode=stat.S_IMODE(st.st_mode),
            uid=st.st_uid,
            gid=st.st_gid,
            hardlink_group=groups.get(path),
            xattrs=_xattrs(host),
            mtime=int(st.st_mtime),
        )
        if kind == "file":
            entry = replace(entry, size=st.st_size, sha256=_sha256(host))
        elif kind == "symlink":
            entry = replace(entry, link=os.readlink(host))
        elif kind in ("char", "block"):
            entry = replace(entry, device=(os.major(st.st_rdev), os.minor(st.st_rdev)))
        out[path] = entry
    return out


def _strings(value: Any) -> tuple[str, ...] | None:
    if not value:
        return None
    return tuple(str(v) for v in value)


def _config_snapshot(image_config: Mapping[str, Any]) -> ConfigSnapshot:
    cfg: Mapping[str, Any] = image_config.get("config") or {}
    history: list[Mapping[str, Any]] = image_config.get("history") or []
    health = cfg.get("Healthcheck")
    return ConfigSnapshot(
        env=_strings(sorted(cfg.get("Env") or [])),
        cmd=_strings(cfg.get("Cmd")),
        entrypoint=_strings(cfg.get("Entrypoint")),
        working_dir=cfg.get("WorkingDir") or "",
        user=cfg.get("User") or "",
        exposed_ports=tuple(sorted(cfg.get("ExposedPorts") or {})),
        volumes=tuple(sorted(cfg.get("Volumes") or {})),
        labels=tuple(sorted((cfg.get("Labels") or {}).items())),
        stop_signal=cfg.get("StopSignal") or "",
        healthcheck=json.dumps(health, sort_keys=True) if health else None,
        on_build=_strings(cfg.get("OnBuild")),
        shell=_strings(cfg.get("Shell")),
        os=image_config.get("os") or "",
        architecture=image_config.get("architecture") or "",
        variant=image_config.get("variant") or "",
        history_created_by=tuple(str(h.get("created_by", "")) for h in history),
        history_empty_layers=sum(1 for h in history if h.get("empty_layer")),
        layer_count=len((image_config.get("rootfs") or {}).get("diff_ids") or []),
    )


def _blob(layout: Path, digest: str) -> bytes:
    algorithm, _, hexdigest = digest.partition(":")
    return (layout / "blobs" / algorithm / hexdigest).read_bytes()


def _layout_tag(layout: Path, tag: str | None) -> tuple[str, Mapping[str, Any]]:
    """(tag, manifest) of ``tag`` in the OCI layout, or of its only tagged manifest."""
    index = json.loads((layout / "index.json").read_text())
    tagged = {
        (m.get("annotations") or {}).get("org.opencontainers.image.ref.name"): m
        for m in index.get("manifests", [])
    }
    if tag is None:
        names = [name for name in tagged if name]
        if len(names) != 1:
            raise AssertionError(f"{layout}: say which tag to read, it holds {names}")
        tag = names[0]
    if tag not in tagged:
        raise AssertionError(f"{layout} has no tag {tag!r}: {sorted(map(str, tagged))}")
    manifest: Mapping[str, Any] = json.loads(_blob(layout, tagged[tag]["digest"]))
    if "manifests" in manifest:
        raise AssertionError(f"{layout}:{tag} is an index, not an image manifest")
    return tag, manifest


def _scratch_dir() -> Path:
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="imagediff-", dir=base))


def snapshot_image(
    source: str | Path, *, tag: str | None = None, workdir: Path | None = None
) -> ImageSnapshot:
    """Flatten an image. ``source`` is one of:

    - a registry reference, ``HOST/REPO:TAG`` or ``docker://...`` (plain HTTP);
    - ``dir:PATH``, a skopeo ``dir:`` layout;
    - an OCI layout: a :class:`~pathlib.Path` or ``oci:DIR[:TAG]`` (with ``tag``, or
      its only tag).

    The config is read as pushed for the first two; an OCI layout made by converting a
    Docker image has lost ``Healthcheck``, ``OnBuild`` and ``Shell``. Scratch space
    (copies, the unpacked bundle) goes under ``workdir`` or a temporary directory on
    tmpfs, and is removed afterwards.
    """
    scratch = _scratch_dir() if workdir is None else workdir
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        image_config: Mapping[str, Any] | None = None
        if isinstance(source, Path) or source.startswith("oci:"):
            if isinstance(source, Path):
                layout = source
            else:
                directory, _, oci_tag = source[len("oci:") :].partition(":")
                layout, tag = Path(directory), oci_tag or tag
        else:
            raw = Path(source[len("dir:") :]) if source.startswith("dir:") else None
            if raw is None:
                raw = pull_raw(source, scratch / "raw")
            image_config = raw_config(raw)
            layout, tag = dir_to_oci(raw, scratch / "layout")
        tag, manifest = _layout_tag(layout, tag)
        if image_config is None:
            image_config = json.loads(_blob(layout, manifest["config"]["digest"]))
        rootfs = umoci_unpack(layout, tag, scratch / "bundle")
        files = snapshot_rootfs(rootfs)
    finally:
        if workdir is None:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                shutil.rmtree(scratch / "bundle")
    return ImageSnapshot(
        files=files, config=_config_snapshot(image_config), raw_config=image_config
    )


# ---------------------------------------------------------------- diff


def _is_stub(files: Mapping[str, FileEntry], path: str, dropped: set[str]) -> bool:
    entry = files[path]
    if entry.kind == "file":
        return entry.size == 0
    if entry.kind != "dir":
        return False
    prefix = path.rstrip("/") + "/"
    return all(p in dropped for p in files if p.startswith(prefix))


def _visible(
    files: Mapping[str, FileEntry], other: Mapping[str, FileEntry], ignore: DiffIgnore
) -> dict[str, FileEntry]:
    """``files`` without ignored paths and without stubs the other side lacks."""
    kept = {p: e for p, e in files.items() if not ignore.drops(p)}
    dropped: set[str] = set()
    for stub in sorted(ignore.stub_paths, key=lambda p: -p.count("/")):
        if stub in kept and stub not in other and _is_stub(kept, stub, dropped):
            dropped.add(stub)
    return {p: e for p, e in kept.items() if p not in dropped}


_FILE_FIELDS: Final = tuple(f.name for f in fields(FileEntry) if f.name not in ("kind", "mtime"))


def _fmt(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return repr(value)


def _file_diffs(
    path: str, a: FileEntry, b: FileEntry, names: tuple[str, str], ignore: DiffIgnore
) -> list[str]:
    na, nb = names
    if a.kind != b.kind:
        return [f"{path}: type {na} {a.describe()}, {nb} {b.describe()}"]
    out: list[str] = []
    for name in _FILE_FIELDS:
        va, vb = getattr(a, name), getattr(b, name)
        if va == vb:
            continue
        if name == "mode":
            out.append(f"{path}: mode {na} {va:04o}, {nb} {vb:04o}")
        elif name == "sha256":
            out.append(f"{path}: content differs ({na} {va[:12]}, {nb} {vb[:12]})")
        else:
            out.append(f"{path}: {name} {na} {_fmt(va)}, {nb} {_fmt(vb)}")
    if ignore.compare_mtime and a.kind not in ("dir", "symlink") and a.mtime != b.mtime:
        out.append(f"{path}: mtime {na} {a.mtime}, {nb} {b.mtime}")
    return out


def _only_in(name: str, files: Mapping[str, FileEntry], missing: list[str]) -> list[str]:
    """One line per path only one side has; a missing directory's content is counted,
    not listed."""
    out: list[str] = []
    covered: str | None = None
    below = 0
    for path in sorted(missing):
        if covered is not None and path.startswith(covered):
            below += 1
            continue
        if below:
            out[-1] += f" (+{below} below)"
        below = 0
        out.append(f"only in {name}: {path} ({files[path].describe()})")
        covered = path.rstrip("/") + "/" if files[path].kind == "dir" else None
    if below:
        out[-1] += f" (+{below} below)"
    return out


def diff_images(
    a: ImageSnapshot,
    b: ImageSnapshot,
    *,
    ignore: DiffIgnore = DiffIgnore(),
    names: tuple[str, str] = ("a", "b"),
) -> list[str]:
    """Human-readable differences between two snapshots; empty when they match."""
    na, nb = names
    files_a = _visible(a.files, b.files, ignore)
    files_b = _visible(b.files, a.files, ignore)
    out: list[str] = []
    out += _only_in(na, files_a, [p for p in files_a if p not in files_b])
    out += _only_in(nb, files_b, [p for p in files_b if p not in files_a])
    for path in sorted(files_a.keys() & files_b.keys()):
        out += _file_diffs(path, files_a[path], files_b[path], names, ignore)

    ca, cb = a.config, b.config
    if ignore.labels:
        ca = replace(ca, labels=tuple(kv for kv in ca.labels if kv[0] not in ignore.labels))
        cb = replace(cb, labels=tuple(kv for kv in cb.labels if kv[0] not in ignore.labels))
    compared = [f.name for f in fields(ConfigSnapshot)] + ["history_length"]
    for name in compared:
        if name in ignore.config_fields:
            continue
        va, vb = getattr(ca, name), getattr(cb, name)
        if va != vb:
            out.append(f"config {name}: {na} {_fmt(va)}, {nb} {_fmt(vb)}")
    return out
