"""``.dockerignore`` matching with moby patternmatcher semantics, table-driven."""

from __future__ import annotations

import pytest

from pykaniko.dockerfile import DockerIgnore, load_dockerignore

# (patterns, path, ignored)
MATCH_CASES = [
    # plain names match the path and everything below it
    ("foo", "foo", True),
    ("foo", "foo/bar/baz.txt", True),
    ("foo", "foobar", False),
    ("foo", "x/foo", False),
    # cleaning: leading slash, ./, trailing slash, ..
    ("/foo", "foo/a", True),
    ("./foo", "foo", True),
    ("foo/", "foo/a", True),
    ("foo/../bar", "bar/x", True),
    ("foo//bar", "foo/bar", True),
    # single star does not cross /
    ("*.md", "README.md", True),
    ("*.md", "docs/README.md", False),
    ("*/*.md", "docs/README.md", True),
    ("docs/*", "docs/a/b.txt", True),
    ("*", "anything/at/all", True),
    # ? and character classes
    ("file?.txt", "file1.txt", True),
    ("file?.txt", "file10.txt", False),
    ("file?.txt", "file/.txt", False),
    ("[abc].txt", "b.txt", True),
    ("[abc].txt", "d.txt", False),
    ("[!abc].txt", "d.txt", True),
    ("[^abc].txt", "a.txt", False),
    ("[a-c]x", "bx", True),
    # ** at any depth
    ("**/*.go", "main.go", True),
    ("**/*.go", "a/b/c/main.go", True),
    ("**/vendor", "x/y/vendor/mod/file", True),
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/y/b", True),
    ("a/**", "a/x/y", True),
    ("a/**", "a", False),
    ("**", "deep/down/file", True),
    # escapes and regex metacharacters
    ("\\*.txt", "*.txt", True),
    ("\\*.txt", "a.txt", False),
    ("a+b(c).txt", "a+b(c).txt", True),
    ("a.b", "axb", False),
    ("$HOME", "$HOME", True),
    # exceptions: later rules win
    ("*.md\n!README.md", "README.md", False),
    ("*.md\n!README.md", "CHANGES.md", True),
    ("!README.md\n*.md", "README.md", True),
    ("docs\n!docs/keep.txt", "docs/keep.txt", False),
    ("docs\n!docs/keep.txt", "docs/other.txt", True),
    ("docs\n!docs/keep", "docs/keep/inner.txt", False),
    ("**\n!src\n!src/**", "src/a/b.py", False),
    ("**\n!src\n!src/**", "build/out", True),
    ("*\n!important\nimportant/secret", "important/secret/key", True),
    ("*\n!important\nimportant/secret", "important/public", False),
    # comments and blank lines
    ("# comment\n\n   \nfoo", "foo", True),
    ("# foo", "# foo", False),
    ("  # not a comment when indented", "# not a comment when indented", True),
    ("  foo  ", "foo", True),
    ("!", "x", False),
    ("\ufeffBOM", "BOM", True),
]


@pytest.mark.parametrize(("patterns", "path", "ignored"), MATCH_CASES)
def test_matches(patterns: str, path: str, ignored: bool) -> None:
    assert DockerIgnore.parse(patterns).matches(path) is ignored


def test_context_root_is_never_ignored() -> None:
    rules = DockerIgnore.parse("*")
    assert not rules.matches(".")
    assert not rules.matches("")


def test_paths_are_cleaned() -> None:
    rules = DockerIgnore.parse("foo")
    assert rules.matches("./foo/x")
    assert rules.matches("/foo")


def test_empty_and_exclusions() -> None:
    assert DockerIgnore.parse("# nothing\n\n").is_empty
    assert DockerIgnore().is_empty
    rules = DockerIgnore.parse("a\n!a/b")
    assert not rules.is_empty
    assert rules.has_exclusions
    assert [p.text for p in rules.patterns] == ["a", "a/b"]
    assert [p.exclusion for p in rules.patterns] == [False, True]


PRUNE_CASES = [
    ("node_modules", "node_modules", False),
    ("node_modules", "src", True),
    ("docs\n!docs/keep.txt", "docs", True),
    ("docs\n!other/keep.txt", "docs", False),
    ("docs\n!**/keep.txt", "docs", True),
    ("docs\n!*.txt", "docs", True),
    ("a\n!a/b/c", "a/b", True),
    ("a\n!a/b/c", "a/x", False),
]


@pytest.mark.parametrize(("patterns", "directory", "may_match"), PRUNE_CASES)
def test_may_match_children(patterns: str, directory: str, may_match: bool) -> None:
    assert DockerIgnore.parse(patterns).may_match_children(directory) is may_match


def test_filter_keeps_order() -> None:
    rules = DockerIgnore.parse("*.log\n!keep.log")
    assert rules.filter(["a.log", "b.txt", "keep.log"]) == ["b.txt", "keep.log"]


def test_load_dockerignore_prefers_dockerfile_specific_text() -> None:
    both = load_dockerignore("a", "b")
    assert both.matches("b")
    assert not both.matches("a")
    assert load_dockerignore("a", None).matches("a")
    assert load_dockerignore(None, None).is_empty
    assert load_dockerignore("a", "").is_empty
