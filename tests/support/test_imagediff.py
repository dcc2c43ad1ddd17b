"""The parity tools checked on their own, without pykaniko: the busybox rootfs tarball,
the differ on synthetic trees, and the differ on images buildah builds twice (equal)
or with one change (which it must name).

The buildah images go to OCI layouts, not to a registry, so these tests need buildah,
umoci and busybox-static only.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.support.baseimages import (
    BUSYBOX_CONFIG,
    busybox_available,
    busybox_dockerfile,
    make_busybox_rootfs_tar,
)
from tests.support.buildah import BuildahStore, buildah_available, buildah_build, make_buildah_store
from tests.support.imagediff import (
    BUILDAH_NOISE,
    ConfigSnapshot,
    DiffIgnore,
    FileEntry,
    ImageSnapshot,
    buildah_noise,
    diff_images,
    snapshot_image,
    snapshot_rootfs,
)
from tests.support.readers import readers_available

needs_busybox = pytest.mark.skipif(not busybox_available(), reason="busybox-static missing")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown, mknod)")

# ---------------------------------------------------------------- the rootfs tarball


@needs_busybox
def test_busybox_rootfs_tar_is_deterministic_and_complete(tmp_path: Path) -> None:
    first = make_busybox_rootfs_tar(tmp_path / "a")
    second = make_busybox_rootfs_tar(tmp_path / "b")
    assert hashlib.sha256(first.read_bytes()).digest() == (
        hashlib.sha256(second.read_bytes()).digest()
    )
    with tarfile.open(first) as tar:
        members = {m.name: m for m in tar.getmembers()}
        passwd = tar.extractfile("etc/passwd")
        assert passwd is not None
        users = passwd.read().decode()
    assert members["bin/busybox"].isfile()
    assert members["bin/busybox"].mode == 0o755
    assert members["bin/sh"].issym()
    assert members["bin/sh"].linkname == "/bin/busybox"
    assert members["usr/bin/awk"].issym()
    assert members["tmp"].mode == 0o1777
    assert members["root"].mode == 0o700
    assert (members["home/user"].uid, members["home/user"].gid) == (1000, 1000)
    assert "user:x:1000:1000:user:/home/user:/bin/sh" in users
    assert "nobody:x:65534:" in users
    # Directories come before what they hold, so any extractor can stream it.
    names = list(members)
    assert all(names.index(os.path.dirname(n)) < names.index(n) for n in names if "/" in n)
    assert len(members) < 400


def test_busybox_dockerfile_sets_the_base_config() -> None:
    text = busybox_dockerfile()
    assert text.splitlines() == [
        "FROM scratch",
        "ADD rootfs.tar /",
        f"ENV {BUSYBOX_CONFIG['Env'][0]}",
        'CMD ["sh"]',
    ]


# ---------------------------------------------------------------- the differ, synthetic


def _entry(kind: str = "file", mode: int = 0o644, **kw: object) -> FileEntry:
    base = FileEntry(kind=kind, mode=mode, uid=0, gid=0)
    if kind == "file":
        base = replace(base, size=0, sha256=hashlib.sha256(b"").hexdigest())
    return replace(base, **kw)  # type: ignore[arg-type]


def _snap(files: dict[str, FileEntry]) -> ImageSnapshot:
    files = {"/": _entry("dir", 0o755), **files}
    config = ConfigSnapshot(env=("PATH=/bin",), cmd=("sh",), os="linux", architecture="amd64")
    return ImageSnapshot(files=files, config=config)


def test_equal_snapshots_have_no_differences() -> None:
    snap = _snap({"/etc": _entry("dir", 0o755), "/etc/passwd": _entry()})
    assert diff_images(snap, snap) == []


def test_each_file_field_is_reported() -> None:
    a = _snap(
        {
            "/f": _entry(size=3, sha256="a" * 64),
            "/l": _entry("symlink", 0o777, link="/f"),
            "/s": _entry(mode=0o4755),
            "/h": _entry(hardlink_group="/h"),
            "/c": _entry("char", 0o666, device=(1, 3)),
            "/x": _entry(xattrs=(("security.capability", b"\x01"),)),
            "/t": _entry("dir", 0o1777),
            "/o": _entry(uid=1000, gid=1000),
            "/k": _entry(),
        }
    )
    b = _snap(
        {
            "/f": _entry(size=4, sha256="b" * 64),
            "/l": _entry("symlink", 0o777, link="/g"),
            "/s": _entry(mode=0o755),
            "/h": _entry(),
            "/c": _entry("char", 0o666, device=(1, 5)),
            "/x": _entry(),
            "/t": _entry("dir", 0o777),
            "/o": _entry(uid=1000, gid=0),
            "/k": _entry("dir", 0o644),
        }
    )
    out = "\n".join(diff_images(a, b, names=("left", "right")))
    assert "/f: size left 3, right 4" in out
    assert "/f: content differs" in out
    assert "/l: link left '/f', right '/g'" in out
    assert "/s: mode left 4755, right 0755" in out
    assert "/h: hardlink_group left '/h', right None" in out
    assert "/c: device left (1, 3), right (1, 5)" in out
    assert "/x: xattrs" in out
    assert "/t: mode left 1777, right 0777" in out
    assert "/o: gid left 1000, right 0" in out
    assert "/k: type left file" in out


def test_only_one_side_collapses_a_missing_directory() -> None:
    a = _snap({"/d": _entry("dir"), "/d/1": _entry(), "/d/2": _entry(), "/e": _entry()})
    b = _snap({})
    assert diff_images(a, b, names=("x", "y")) == [
        "only in x: /d (dir 0644 0:0) (+2 below)",
        "only in x: /e (file 0644 0:0 0B)",
    ]
    assert diff_images(b, a, names=("x", "y"))[0].startswith("only in y: /d")


def test_mtime_is_compared_only_when_asked() -> None:
    a = _snap({"/f": _entry(mtime=1)})
    b = _snap({"/f": _entry(mtime=2)})
    assert diff_images(a, b) == []
    assert diff_images(a, b, ignore=DiffIgnore(compare_mtime=True)) == ["/f: mtime a 1, b 2"]


def test_buildah_noise_drops_stubs_but_not_content() -> None:
    stubs = {
        "/dev": _entry("dir", 0o755),
        "/proc": _entry("dir", 0o755),
        "/run": _entry("dir", 0o755),
        "/run/secrets": _entry("dir", 0o755),
        "/etc/hosts": _entry(),
        "/etc/resolv.conf": _entry(),
        "/var/log/apt/history.log": _entry(size=9, sha256="c" * 64),
        "/mnt/cache": _entry("dir", 0o755),
    }
    oracle = _snap(stubs)
    ours = _snap({})
    noise = buildah_noise(mount_targets=["mnt/cache"])
    assert diff_images(oracle, ours, ignore=noise) == []
    # A file under a stub is real content: the stub and the file are reported.
    oracle = _snap({**stubs, "/run/app.pid": _entry(size=2, sha256="d" * 64)})
    out = diff_images(oracle, ours, ignore=noise)
    assert out == ["only in a: /run (dir 0755 0:0) (+1 below)"]
    # Present on both sides, a stub path is compared like any other.
    both = _snap({"/dev": _entry("dir", 0o700)})
    assert diff_images(_snap({"/dev": _entry("dir")}), both, ignore=noise) == [
        "/dev: mode a 0644, b 0700"
    ]


def test_config_differences_and_ignored_labels() -> None:
    a = _snap({})
    cfg = a.config
    b = replace(
        a,
        config=replace(
            cfg,
            cmd=None,
            entrypoint=("/bin/sh", "-c"),
            labels=(("io.buildah.version", "1.28.2"),),
            history_created_by=("x",),
        ),
    )
    out = diff_images(a, b, ignore=BUILDAH_NOISE)
    assert out == [
        "config cmd: a ('sh',), b None",
        "config entrypoint: a None, b ('/bin/sh', '-c')",
        "config history_length: a 0, b 1",
    ]


@needs_root
def test_snapshot_rootfs_reads_every_kind(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    root.mkdir()
    (root / "f").write_bytes(b"hello")
    os.chmod(root / "f", 0o4755)
    os.link(root / "f", root / "g")
    os.symlink("/f", root / "l")
    os.mkfifo(root / "p")
    os.mknod(root / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    (root / "d").mkdir(mode=0o1777)
    os.chmod(root / "d", 0o1777)
    os.chown(root / "d", 1000, 1000)
    try:
        os.setxattr(root / "f", "user.pykaniko", b"1")
        has_xattr = True
    except OSError:
        has_xattr = False
    files = snapshot_rootfs(root)
    f = files["/f"]
    assert (f.kind, f.mode, f.size, f.sha256) == (
        "file",
        0o4755,
        5,
        hashlib.sha256(b"hello").hexdigest(),
    )
    assert f.hardlink_group == files["/g"].hardlink_group == "/f"
    assert files["/l"].link == "/f"
    assert files["/p"].kind == "fifo"
    assert files["/null"].device == (1, 3)
    assert (files["/d"].mode, files["/d"].uid, files["/d"].gid) == (0o1777, 1000, 1000)
    assert files["/d"].size is None
    if has_xattr:
        assert ("user.pykaniko", b"1") in f.xattrs


# ---------------------------------------------------------------- the differ on buildah images

needs_tools = pytest.mark.skipif(
    not (buildah_available() and readers_available() and busybox_available()),
    reason="buildah, skopeo, umoci and busybox-static are needed",
)

CASE = """\
ARG BASE
FROM ${BASE}
ENV GREETING=hello
RUN echo "$GREETING" > /greeting && ln /greeting /greeting.link \\
 && ln -s /greeting /greeting.sym && chmod 4750 /greeting && rm /etc/os-release
COPY data.txt /opt/data.txt
RUN chown 1000:1000 /opt/data.txt
"""


def _context(tmp: Path, dockerfile: str, data: str = "data\n") -> Path:
    tmp.mkdir(parents=True)
    (tmp / "Dockerfile").write_text(dockerfile)
    (tmp / "data.txt").write_text(data)
    return tmp


@pytest.fixture(scope="module")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BuildahStore, Path]]:
    """A buildah store holding ``localhost/busybox:1`` (from the rootfs tarball)."""
    if not (buildah_available() and readers_available() and busybox_available()):
        pytest.skip("buildah, umoci and busybox-static are needed")
    scratch = Path(tmp_path_factory.mktemp("imagediff"))
    store = make_buildah_store(scratch / "store")
    base_ctx = scratch / "base"
    make_busybox_rootfs_tar(base_ctx)
    (base_ctx / "Dockerfile").write_text(busybox_dockerfile())
    layouts = scratch / "layouts"
    layouts.mkdir()
    buildah_build(
        base_ctx,
        base_ctx / "Dockerfile",
        "localhost/busybox:1",
        store=store,
        push_to=f"oci:{layouts / 'busybox'}:1",
    )
    try:
        yield store, layouts
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _build(oracle: tuple[BuildahStore, Path], name: str, ctx: Path) -> ImageSnapshot:
    store, layouts = oracle
    buildah_build(
        ctx,
        ctx / "Dockerfile",
        f"localhost/imagediff/{name}:1",
        store=store,
        build_args={"BASE": "localhost/busybox:1"},
        push_to=f"oci:{layouts / name}:1",
    )
    return snapshot_image(layouts / name)


@needs_tools
@pytest.mark.root
def test_base_image_has_the_busybox_shape(oracle: tuple[BuildahStore, Path]) -> None:
    snap = snapshot_image(f"oci:{oracle[1] / 'busybox'}:1")
    files = snap.files
    assert files["/bin/busybox"].kind == "file"
    assert files["/bin/sh"].link == "/bin/busybox"
    assert files["/tmp"].mode == 0o1777
    assert files["/root"].mode == 0o700
    assert (files["/home/user"].uid, files["/home/user"].gid) == (1000, 1000)
    assert snap.config.env == tuple(BUSYBOX_CONFIG["Env"])
    assert snap.config.cmd == ("sh",)


@needs_tools
@pytest.mark.root
def test_same_dockerfile_built_twice_has_no_differences(
    oracle: tuple[BuildahStore, Path], tmp_path: Path
) -> None:
    first = _build(oracle, "twice-a", _context(tmp_path / "a", CASE))
    second = _build(oracle, "twice-b", _context(tmp_path / "b", CASE))
    # Not even the noise filter is needed between two buildah builds.
    assert diff_images(first, second) == []
    greeting = first.files["/greeting"]
    assert greeting.mode == 0o4750
    assert greeting.hardlink_group == "/greeting"
    assert first.files["/greeting.sym"].link == "/greeting"
    assert "/etc/os-release" not in first.files
    assert (first.files["/opt/data.txt"].uid, first.files["/opt/data.txt"].gid) == (1000, 1000)


@needs_tools
@pytest.mark.root
def test_a_change_is_named(oracle: tuple[BuildahStore, Path], tmp_path: Path) -> None:
    first = _build(oracle, "change-a", _context(tmp_path / "a", CASE))
    changed = (
        CASE.replace("GREETING=hello", "GREETING=bye")
        .replace("chmod 4750", "chmod 0750")
        .replace("chown 1000:1000", "chown 1000:0")
        .replace("rm /etc/os-release", "rm /etc/shadow")
        + "USER user\n"
    )
    second = _build(oracle, "change-b", _context(tmp_path / "b", changed, data="other\n"))
    out = diff_images(first, second, ignore=BUILDAH_NOISE, names=("one", "two"))
    assert "/greeting: mode one 4750, two 0750" in out
    assert any(line.startswith("/greeting: content differs") for line in out)
    assert "/opt/data.txt: gid one 1000, two 0" in out
    assert any(line.startswith("/opt/data.txt: size one 5, two 6") for line in out)
    assert "only in one: /etc/shadow (file 0640 0:0 47B)" in out
    assert any(line.startswith("only in two: /etc/os-release") for line in out)
    assert any(line.startswith("config env:") for line in out)
    assert "config user: one '', two 'user'" in out
    assert "config history_length: one 7, two 8" in out


@needs_tools
@pytest.mark.root
def test_buildah_noise_hides_its_real_mount_stubs(
    oracle: tuple[BuildahStore, Path], tmp_path: Path
) -> None:
    """A RUN that changes nothing still leaves buildah's stubs; the filter drops them."""
    base = snapshot_image(oracle[1] / "busybox")
    after_run = _build(
        oracle, "run-true", _context(tmp_path / "r", "ARG BASE\nFROM ${BASE}\nRUN true\n")
    )
    raw = diff_images(base, after_run)
    assert "only in b: /etc/hosts (file 0755 0:0 0B)" in raw
    assert any(line.startswith("only in b: /proc") for line in raw)
    assert diff_images(base, after_run, ignore=BUILDAH_NOISE) == ["config history_length: a 3, b 4"]
