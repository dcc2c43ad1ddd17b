"""The COPY/ADD matrix on real temp dirs, with Docker's semantics."""

from __future__ import annotations

import bz2
import io
import lzma
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard

from pykaniko.errors import BuildError
from pykaniko.executor.copy import (
    CopyRequest,
    SourceTree,
    copy_sources,
    extract_archive,
    open_archive,
)

MTIME = 1_600_000_000


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    c = tmp_path / "ctx"
    c.mkdir()
    (c / "a.txt").write_text("A")
    (c / "b.txt").write_text("B")
    (c / "c.md").write_text("C")
    (c / "x1").write_text("x1")
    (c / "x2").write_text("x2")
    (c / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(c / "run.sh", 0o751)
    os.utime(c / "run.sh", (MTIME, MTIME))
    d = c / "dir"
    (d / "sub").mkdir(parents=True)
    (d / "one").write_text("1")
    (d / "sub" / "two").write_text("2")
    os.symlink("one", d / "link")
    os.symlink("/etc/passwd", d / "abslink")
    os.chmod(d / "sub", 0o700)
    return c


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    r = tmp_path / "rootfs"
    (r / "existing").mkdir(parents=True)
    (r / "usr" / "share").mkdir(parents=True)
    (r / "etc").mkdir()
    os.symlink("/usr/share", r / "share")  # absolute
    os.symlink("usr/share", r / "rshare")  # relative
    os.symlink("../../../../..", r / "escape")
    return r


def copy(
    rootfs: Path,
    ctx: Path,
    *sources: str,
    dest: str,
    workdir: str = "/",
    ignored: Callable[[str], bool] | None = None,
    descend_ignored: bool = False,
    **kw: object,
) -> list[str]:
    tree = SourceTree(ctx, ignored=ignored, descend_ignored=descend_ignored)
    req = CopyRequest(sources=sources, dest=dest, workdir=workdir, **kw)  # type: ignore[arg-type]
    return copy_sources(rootfs, tree, req)


def owner(path: Path) -> tuple[int, int]:
    st = path.lstat()
    return st.st_uid, st.st_gid


def test_file_to_file(rootfs: Path, ctx: Path) -> None:
    touched = copy(rootfs, ctx, "a.txt", dest="/new.txt")
    assert (rootfs / "new.txt").read_text() == "A"
    assert "/new.txt" in touched


def test_file_into_existing_dir(rootfs: Path, ctx: Path) -> None:
    copy(rootfs, ctx, "a.txt", dest="/existing")
    assert (rootfs / "existing" / "a.txt").read_text() == "A"


def test_file_into_trailing_slash_dir_created(rootfs: Path, ctx: Path) -> None:
    touched = copy(rootfs, ctx, "a.txt", dest="/made/here/")
    assert (rootfs / "made" / "here" / "a.txt").read_text() == "A"
    assert {"/made", "/made/here", "/made/here/a.txt"} <= set(touched)
    assert stat.S_IMODE((rootfs / "made").stat().st_mode) == 0o755


def test_file_overwrites_existing_file(rootfs: Path, ctx: Path) -> None:
    (rootfs / "etc" / "f").write_text("old")
    copy(rootfs, ctx, "b.txt", dest="/etc/f")
    assert (rootfs / "etc" / "f").read_text() == "B"


def test_directory_copies_contents_not_the_dir(rootfs: Path, ctx: Path) -> None:
    copy(rootfs, ctx, "dir", dest="/opt")
    opt = rootfs / "opt"
    assert sorted(os.listdir(opt)) == ["abslink", "link", "one", "sub"]
    assert (opt / "sub" / "two").read_text() == "2"
    assert stat.S_IMODE((opt / "sub").stat().st_mode) == 0o700


def test_symlinks_in_dirs_are_copied_as_links(rootfs: Path, ctx: Path) -> None:
    copy(rootfs, ctx, "dir", dest="/opt/")
    assert os.readlink(rootfs / "opt" / "link") == "one"
    assert os.readlink(rootfs / "opt" / "abslink") == "/etc/passwd"


def test_context_root_dot(rootfs: Path, ctx: Path) -> None:
    copy(rootfs, ctx, ".", dest="/app/")
    assert (rootfs / "app" / "a.txt").is_file()
    assert (rootfs / "app" / "dir" / "sub" / "two").is_file()


@pytest.mark.parametrize(
    ("pattern", "names"),
    [
        ("*.txt", ["a.txt", "b.txt"]),
        ("x?", ["x1", "x2"]),
        ("[ab].txt", ["a.txt", "b.txt"]),
        ("[^a].txt", ["b.txt"]),  # Go's filepath.Match negates with ^ ...
        ("[!a].txt", ["a.txt"]),  # ... and ! is a plain character in a class
        ("[a-b].txt", ["a.txt", "b.txt"]),
        ("dir/[ls]*", ["link", "two"]),  # a matched dir gives its contents
    ],
)
def test_wildcards(rootfs: Path, ctx: Path, pattern: str, names: list[str]) -> None:
    copy(rootfs, ctx, pattern, dest="/w/")
    assert sorted(os.listdir(rootfs / "w")) == names


def test_top_level_symlink_source_is_followed(rootfs: Path, ctx: Path) -> None:
    copy(rootfs, ctx, "dir/link", dest="/f")
    assert not (rootfs / "f").is_symlink()
    assert (rootfs / "f").read_text() == "1"


def test_dangling_symlink_source_is_an_error(rootfs: Path, ctx: Path) -> None:
    os.symlink("nowhere", ctx / "dangling")
    with pytest.raises(BuildError, match="not found"):
        copy(rootfs, ctx, "dangling", dest="/f")


def test_wildcard_star_does_not_cross_slash(rootfs: Path, ctx: Path) -> None:
    with pytest.raises(BuildError, match="no source files"):
        copy(rootfs, ctx, "*two", dest="/w/")


def test_wildcard_matching_nothing_next_to_real_file(rootfs: Path, ctx: Path) -> None:
    copy(rootfs, ctx, "*.nothing", "a.txt", dest="/w/")
    assert os.listdir(rootfs / "w") == ["a.txt"]


def test_only_unmatched_wildcard_fails(rootfs: Path, ctx: Path) -> None:
    with pytest.raises(BuildError, match="no source files were specified"):
        copy(rootfs, ctx, "*.nothing", dest="/w/")


def test_several_sources_into_dir(rootfs: Path, ctx: Path) -> None:
    copy(rootfs, ctx, "a.txt", "c.md", dest="/multi/")
    assert sorted(os.listdir(rootfs / "multi")) == ["a.txt", "c.md"]
    copy(rootfs, ctx, "a.txt", "c.md", dest="/existing")
    assert sorted(os.listdir(rootfs / "existing")) == ["a.txt", "c.md"]


def test_several_sources_need_a_dir_dest(rootfs: Path, ctx: Path) -> None:
    with pytest.raises(BuildError, match="must be a directory and end with a /"):
        copy(rootfs, ctx, "a.txt", "b.txt", dest="/notadir")
    with pytest.raises(BuildError, match="must be a directory"):
        copy(rootfs, ctx, "*.txt", dest="/notadir")


def test_relative_dest_under_workdir(rootfs: Path, ctx: Path) -> None:
    copy(rootfs, ctx, "a.txt", dest="sub/", workdir="/app")
    assert (rootfs / "app" / "sub" / "a.txt").is_file()
    copy(rootfs, ctx, "b.txt", dest=".", workdir="/app")
    assert (rootfs / "app" / "b.txt").is_file()
    copy(rootfs, ctx, "c.md", dest="renamed", workdir="/app")
    assert (rootfs / "app" / "renamed").read_text() == "C"


@pytest.mark.parametrize("link", ["share", "rshare"])
def test_dest_parent_symlink_stays_inside(rootfs: Path, ctx: Path, link: str) -> None:
    touched = copy(rootfs, ctx, "a.txt", dest=f"/{link}/doc/")
    assert (rootfs / "usr" / "share" / "doc" / "a.txt").read_text() == "A"
    assert (rootfs / link).is_symlink()
    # the snapshot gets both the written path and the real one
    assert {f"/{link}/doc/a.txt", "/usr/share/doc/a.txt", "/usr/share/doc"} <= set(touched)


def test_dest_through_escaping_symlink_stays_inside(rootfs: Path, ctx: Path) -> None:
    copy(rootfs, ctx, "a.txt", dest="/escape/tmp/")
    assert (rootfs / "tmp" / "a.txt").read_text() == "A"


def test_dest_is_symlink_to_dir(rootfs: Path, ctx: Path) -> None:
    copy(rootfs, ctx, "a.txt", dest="/share")
    assert (rootfs / "usr" / "share" / "a.txt").is_file()
    assert (rootfs / "share").is_symlink()


def test_default_owner_is_root(rootfs: Path, ctx: Path) -> None:
    os.chown(ctx / "a.txt", 1234, 5678)
    copy(rootfs, ctx, "a.txt", "dir", dest="/o/")
    assert owner(rootfs / "o" / "a.txt") == (0, 0)
    assert owner(rootfs / "o" / "sub" / "two") == (0, 0)


def test_chown_and_chmod_apply_to_files_and_created_dirs(rootfs: Path, ctx: Path) -> None:
    copy(rootfs, ctx, "dir", dest="/c/d", uid=1000, gid=50, chown=True, chmod=0o640)
    for rel in ("c/d", "c/d/one", "c/d/sub", "c/d/sub/two", "c/d/link"):
        assert owner(rootfs / rel) == (1000, 50), rel
    assert owner(rootfs / "c") == (1000, 50)
    assert stat.S_IMODE((rootfs / "c" / "d" / "one").stat().st_mode) == 0o640
    assert stat.S_IMODE((rootfs / "c" / "d" / "sub").stat().st_mode) == 0o640
    # an existing parent keeps its owner
    assert owner(rootfs) == owner(rootfs.parent)


def test_chown_single_file_into_new_dir(rootfs: Path, ctx: Path) -> None:
    copy(rootfs, ctx, "a.txt", dest="/n/", uid=7, gid=8, chown=True)
    assert owner(rootfs / "n") == (7, 8)
    assert owner(rootfs / "n" / "a.txt") == (7, 8)


def test_mode_and_mtime_are_kept(rootfs: Path, ctx: Path) -> None:
    copy(rootfs, ctx, "run.sh", dest="/bin/")
    st = (rootfs / "bin" / "run.sh").stat()
    assert stat.S_IMODE(st.st_mode) == 0o751
    assert st.st_mtime == MTIME


def test_dockerignore_is_honoured(rootfs: Path, ctx: Path) -> None:
    def ignored(rel: str) -> bool:
        return rel.endswith(".md") or rel == "dir/sub"

    copy(rootfs, ctx, ".", dest="/app/", ignored=ignored)
    assert not (rootfs / "app" / "c.md").exists()
    assert not (rootfs / "app" / "dir" / "sub").exists()
    assert (rootfs / "app" / "dir" / "one").exists()


def test_dockerignore_reincluded_file_under_ignored_dir(rootfs: Path, ctx: Path) -> None:
    # .dockerignore: dir  +  !dir/sub/two
    def ignored(rel: str) -> bool:
        return (rel == "dir" or rel.startswith("dir/")) and rel != "dir/sub/two"

    copy(rootfs, ctx, ".", dest="/app/", ignored=ignored, descend_ignored=True)
    assert (rootfs / "app" / "dir" / "sub" / "two").read_text() == "2"
    assert sorted(os.listdir(rootfs / "app" / "dir")) == ["sub"]
    assert os.listdir(rootfs / "app" / "dir" / "sub") == ["two"]


@pytest.mark.parametrize("source", ["dir", "d*"])
def test_ignored_dir_holding_reincluded_file_is_a_source(
    rootfs: Path, ctx: Path, source: str
) -> None:
    """``dir`` + ``!dir/sub/two``: BuildKit's context still holds ``dir`` (with only
    ``sub/two``), so naming or matching it copies that."""

    def ignored(rel: str) -> bool:
        return (rel == "dir" or rel.startswith("dir/")) and rel != "dir/sub/two"

    copy(rootfs, ctx, source, dest="/d/", ignored=ignored, descend_ignored=True)
    assert os.listdir(rootfs / "d") == ["sub"]
    assert os.listdir(rootfs / "d" / "sub") == ["two"]


def test_ignored_explicit_source_is_missing(rootfs: Path, ctx: Path) -> None:
    with pytest.raises(BuildError, match=r"excluded by \.dockerignore"):
        copy(rootfs, ctx, "c.md", dest="/x", ignored=lambda rel: rel == "c.md")


def test_missing_source_error(rootfs: Path, ctx: Path) -> None:
    with pytest.raises(
        BuildError, match=r"COPY failed: 'nope\.txt' not found in the build context"
    ):
        copy(rootfs, ctx, "nope.txt", dest="/x")


def test_symlink_out_of_context_is_refused(rootfs: Path, ctx: Path, tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s")
    os.symlink(tmp_path / "secret", ctx / "out")
    with pytest.raises(BuildError, match="outside the build context"):
        copy(rootfs, ctx, "out", dest="/x")


def test_copy_from_rootfs_keeps_owner_unless_chown(rootfs: Path, tmp_path: Path) -> None:
    other = tmp_path / "stage"
    (other / "out" / "sub").mkdir(parents=True)
    (other / "out" / "sub" / "f").write_text("f")
    for rel in ("out", "out/sub", "out/sub/f"):
        os.chown(other / rel, 1000, 1001)
    tree = SourceTree(other, is_rootfs=True)
    copy_sources(rootfs, tree, CopyRequest(sources=("/out",), dest="/kept", workdir="/"))
    for rel in ("kept/sub", "kept/sub/f"):
        assert owner(rootfs / rel) == (1000, 1001), rel
    assert owner(rootfs / "kept") == (0, 0)  # the new destination itself is made, not copied
    req = CopyRequest(sources=("/out",), dest="/ch", workdir="/", uid=5, gid=6, chown=True)
    copy_sources(rootfs, tree, req)
    for rel in ("ch", "ch/sub", "ch/sub/f"):
        assert owner(rootfs / rel) == (5, 6), rel


def test_copy_from_rootfs_tree(rootfs: Path, tmp_path: Path) -> None:
    other = tmp_path / "stage"
    (other / "usr" / "bin").mkdir(parents=True)
    (other / "usr" / "bin" / "tool").write_text("t")
    os.symlink("/usr/bin", other / "bin")
    tree = SourceTree(other, is_rootfs=True)
    req = CopyRequest(sources=("/bin/tool",), dest="/opt/", workdir="/")
    copy_sources(rootfs, tree, req)
    assert (rootfs / "opt" / "tool").read_text() == "t"
    copy_sources(rootfs, tree, CopyRequest(sources=("/bin/t*",), dest="/glob/", workdir="/"))
    assert (rootfs / "glob" / "tool").read_text() == "t"
    with pytest.raises(BuildError, match="source image"):
        copy_sources(rootfs, tree, CopyRequest(sources=("/missing",), dest="/", workdir="/"))


# --- archives ------------------------------------------------------------------


def make_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def info(name: str, kind: bytes = tarfile.REGTYPE, **kw: object) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mtime = MTIME
    ti.mode = 0o644 if kind != tarfile.DIRTYPE else 0o755
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti


def sample_tar() -> bytes:
    members: list[tuple[tarfile.TarInfo, bytes | None]] = [
        (info("top/", tarfile.DIRTYPE, mode=0o750, uid=10, gid=20), None),
        (info("top/file", size=5, uid=33, gid=44, mode=0o600), b"hello"),
        (info("top/hard", tarfile.LNKTYPE, linkname="top/file", uid=33, gid=44, mode=0o600), None),
        (info("top/sym", tarfile.SYMTYPE, linkname="file"), None),
        (info("./loose", size=1), b"L"),
    ]
    return make_tar(Path(), members)


def compressors() -> dict[str, Callable[[bytes], bytes]]:
    import gzip

    return {
        "tar": lambda b: b,
        "tar.gz": lambda b: gzip.compress(b, mtime=0),
        "tar.bz2": bz2.compress,
        "tar.xz": lzma.compress,
        "tar.zst": lambda b: zstandard.ZstdCompressor().compress(b),
    }


@pytest.mark.parametrize("ext", list(compressors()))
def test_open_and_extract_archive(tmp_path: Path, rootfs: Path, ext: str) -> None:
    archive = tmp_path / f"a.{ext}"
    archive.write_bytes(compressors()[ext](sample_tar()))
    stream = open_archive(archive)
    assert stream is not None
    with stream:
        touched = extract_archive(stream, rootfs, "/dst")
    top = rootfs / "dst" / "top"
    assert (top / "file").read_text() == "hello"
    assert owner(top / "file") == (33, 44)
    assert stat.S_IMODE((top / "file").stat().st_mode) == 0o600
    assert owner(top) == (10, 20)
    assert stat.S_IMODE(top.stat().st_mode) == 0o750
    assert top.stat().st_mtime == MTIME
    assert (top / "hard").stat().st_ino == (top / "file").stat().st_ino
    assert os.readlink(top / "sym") == "file"
    assert (rootfs / "dst" / "loose").read_text() == "L"
    assert {"/dst", "/dst/top", "/dst/top/file", "/dst/top/hard", "/dst/top/sym"} <= set(touched)


@pytest.mark.parametrize("content", [b"just text, not a tar" * 100, b"", b"\x1f\x8bnot gzip"])
def test_non_archive_returns_none(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "f"
    path.write_bytes(content)
    assert open_archive(path) is None


def test_gzipped_non_tar_returns_none(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "f.gz"
    path.write_bytes(gzip.compress(b"plain text " * 200))
    assert open_archive(path) is None


def test_member_with_dotdot_is_refused(tmp_path: Path, rootfs: Path) -> None:
    data = make_tar(Path(), [(info("../../evil", size=1), b"x")])
    with pytest.raises(BuildError, match="escapes"):
        extract_archive(io.BytesIO(data), rootfs, "/dst")
    assert not (tmp_path / "evil").exists()


def test_absolute_symlink_member_is_not_followed_out(tmp_path: Path, rootfs: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    data = make_tar(
        Path(),
        [
            (info("lnk", tarfile.SYMTYPE, linkname=str(outside)), None),
            (info("lnk/pwned", size=1), b"x"),
        ],
    )
    extract_archive(io.BytesIO(data), rootfs, "/dst")
    assert not (outside / "pwned").exists()
    assert os.readlink(rootfs / "dst" / "lnk") == str(outside)


def test_malformed_wildcard_matches_nothing() -> None:
    from pykaniko.executor.copy import _go_pattern

    for bad in ("[a", "[]a]", "[z-a]", "a\\"):
        assert _go_pattern(bad) is None, bad


def test_hardlink_header_sets_the_inode_metadata(rootfs: Path) -> None:
    """Docker (moby's createTarFile) lchowns, chmods and chtimes a hard link with its own
    header, which changes the shared inode: the link's header wins."""
    data = make_tar(
        Path(),
        [
            (info("f", size=1, uid=1000, gid=50, mode=0o640), b"1"),
            (info("h", tarfile.LNKTYPE, linkname="f", uid=0, gid=0, mode=0o644), None),
        ],
    )
    extract_archive(io.BytesIO(data), rootfs, "/dst")
    for name in ("f", "h"):
        path = rootfs / "dst" / name
        assert owner(path) == (0, 0), name
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, name
    assert (rootfs / "dst" / "h").stat().st_ino == (rootfs / "dst" / "f").stat().st_ino


def test_new_dir_dest_is_plain_0755_not_the_source_dir(rootfs: Path, tmp_path: Path) -> None:
    """BuildKit MkdirAll()s a missing destination (0755, --chown ids or root) and then
    copies the source directory's contents: its mode, owner and --chmod stay out."""
    other = tmp_path / "stage"
    (other / "src" / "sub").mkdir(parents=True)
    os.chmod(other / "src", 0o1751)
    os.chown(other / "src", 1000, 1000)
    os.chmod(other / "src" / "sub", 0o700)
    tree = SourceTree(other, is_rootfs=True)
    copy_sources(rootfs, tree, CopyRequest(sources=("/src",), dest="/plain", workdir="/"))
    assert stat.S_IMODE((rootfs / "plain").stat().st_mode) == 0o755
    assert owner(rootfs / "plain") == (0, 0)
    assert stat.S_IMODE((rootfs / "plain" / "sub").stat().st_mode) == 0o700
    req = CopyRequest(
        sources=("/src",), dest="/ch/", workdir="/", uid=7, gid=8, chown=True, chmod=0o700
    )
    copy_sources(rootfs, tree, req)
    assert stat.S_IMODE((rootfs / "ch").stat().st_mode) == 0o755
    assert owner(rootfs / "ch") == (7, 8)
    assert stat.S_IMODE((rootfs / "ch" / "sub").stat().st_mode) == 0o700
    # an existing destination keeps its own metadata
    (rootfs / "kept").mkdir(mode=0o700)
    copy_sources(rootfs, tree, CopyRequest(sources=("/src",), dest="/kept", workdir="/"))
    assert stat.S_IMODE((rootfs / "kept").stat().st_mode) == 0o700


def test_dot_entry_leaves_an_existing_destination_alone(rootfs: Path) -> None:
    """moby's Unpack skips a ``./`` entry over an existing directory: the destination
    keeps its mode and owner (buildah 1.28 applies them instead)."""
    (rootfs / "dst").mkdir(mode=0o751)
    os.chown(rootfs / "dst", 1000, 1000)
    data = make_tar(
        Path(),
        [
            (info("./", tarfile.DIRTYPE, mode=0o700, uid=5, gid=5), None),
            (info("./f", size=1), b"1"),
        ],
    )
    extract_archive(io.BytesIO(data), rootfs, "/dst")
    assert stat.S_IMODE((rootfs / "dst").stat().st_mode) == 0o751
    assert owner(rootfs / "dst") == (1000, 1000)
    assert (rootfs / "dst" / "f").read_text() == "1"


def test_extract_overwrites_file_with_dir(rootfs: Path) -> None:
    (rootfs / "dst").mkdir()
    (rootfs / "dst" / "d").write_text("file")
    data = make_tar(Path(), [(info("d/", tarfile.DIRTYPE), None), (info("d/f", size=1), b"1")])
    extract_archive(io.BytesIO(data), rootfs, "/dst")
    assert (rootfs / "dst" / "d" / "f").read_text() == "1"
