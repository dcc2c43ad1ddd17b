"""COPY --exclude and --parents (BuildKit flags Kaniko parses and ignores)."""

from __future__ import annotations

from pathlib import Path

from pykaniko.executor.copy import CopyRequest, SourceTree, copy_sources


def _tree(tmp_path: Path) -> tuple[Path, Path]:
    ctx = tmp_path / "ctx"
    for rel in ("src/a.txt", "src/b.go", "src/sub/c.txt", "src/sub/d.go", "pkg/x/package.json"):
        (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
        (ctx / rel).write_text(rel)
    root = tmp_path / "root"
    root.mkdir()
    return ctx, root


def _files(root: Path) -> list[str]:
    return sorted("/" + p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_exclude_hides_matches_in_the_copied_tree(tmp_path: Path) -> None:
    ctx, root = _tree(tmp_path)
    req = CopyRequest(sources=("src",), dest="/app/", workdir="/", exclude=("*.go",))
    copy_sources(root, SourceTree(root=ctx), req)
    # .dockerignore syntax: "*" does not cross "/", so only the top-level .go goes
    assert _files(root) == ["/app/a.txt", "/app/sub/c.txt", "/app/sub/d.go"]
    req = CopyRequest(sources=("src",), dest="/all/", workdir="/", exclude=("**/*.go",))
    copy_sources(root, SourceTree(root=ctx), req)
    assert [f for f in _files(root) if f.startswith("/all/")] == ["/all/a.txt", "/all/sub/c.txt"]


def test_exclude_with_wildcard_sources_and_exceptions(tmp_path: Path) -> None:
    ctx, root = _tree(tmp_path)
    req = CopyRequest(
        sources=("src/*",), dest="/app/", workdir="/", exclude=("**/*.txt", "!sub/c.txt")
    )
    copy_sources(root, SourceTree(root=ctx), req)
    # a matched directory's contents land in the destination, as without --exclude
    assert _files(root) == ["/app/b.go", "/app/c.txt", "/app/d.go"]


def test_parents_keeps_the_source_path(tmp_path: Path) -> None:
    ctx, root = _tree(tmp_path)
    req = CopyRequest(
        sources=("pkg/*/package.json", "src/sub/c.txt"), dest="/app/", workdir="/", parents=True
    )
    copy_sources(root, SourceTree(root=ctx), req)
    assert _files(root) == ["/app/pkg/x/package.json", "/app/src/sub/c.txt"]


def test_parents_pivot_drops_the_prefix(tmp_path: Path) -> None:
    ctx, root = _tree(tmp_path)
    req = CopyRequest(sources=("./src/./sub",), dest="/app/", workdir="/", parents=True)
    copy_sources(root, SourceTree(root=ctx), req)
    assert _files(root) == ["/app/sub/c.txt", "/app/sub/d.go"]
