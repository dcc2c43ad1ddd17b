"""``.dockerignore`` patterns with Docker's (moby patternmatcher) semantics.

Rules are read in order and the last one that matches a path wins; ``!`` re-includes.
A pattern that matches a directory also matches everything below it. Patterns are
cleaned like Go's ``filepath.Clean`` and a leading ``/`` is dropped, so ``/a``,
``./a`` and ``a/`` all mean ``a``. The matcher is pure: the caller reads the files.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

__all__ = ["DockerIgnore", "IgnorePattern", "load_dockerignore"]

_GLOB_CHARS = frozenset("*?[\\")
_SET_OPS = re.compile(r"([-&~|])(?=\1)")


def _clean(path: str) -> str:
    """Go's ``filepath.Clean`` for slash paths."""
    if not path:
        return "."
    rooted = path.startswith("/")
    cleaned = posixpath.normpath(path)
    if cleaned.startswith("//"):
        cleaned = cleaned[1:]
    if rooted and not cleaned.startswith("/"):
        cleaned = "/" + cleaned
    return cleaned


def _to_regex(pattern: str) -> str:
    out = ["^"]
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if pattern[i + 1 : i + 2] == "*":
                i += 1
                if pattern[i + 1 : i + 2] == "/":
                    i += 1
                if i + 1 >= n:
                    out.append(".*")
                else:
                    out.append("(.*/)?")
            else:
                out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            if i + 1 < n:
                out.append(re.escape(pattern[i + 1]))
                i += 1
            else:
                out.append("\\\\")
        elif ch == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "^") else i + 1)
            if end == -1:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1 : end]
                negate = body[:1] in ("!", "^")
                if negate:
                    body = body[1:]
                body = body.replace("\\", "\\\\").replace("[", "\\[")
                # "--", "&&", "~~", "||" would be set operations to a future re
                body = _SET_OPS.sub(r"\1\\", body)
                out.append(f"[{'^' if negate else ''}{body}]")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    return "".join(out)


@dataclass(frozen=True, slots=True)
class IgnorePattern:
    """One cleaned rule; ``exclusion`` for ``!`` rules that re-include paths."""

    text: str
    exclusion: bool
    regex: re.Pattern[str]

    @classmethod
    def parse(cls, line: str) -> IgnorePattern | None:
        """A rule from one stripped line; None for lines that say nothing."""
        exclusion = line.startswith("!")
        if exclusion:
            line = line[1:].strip()
        if not line:
            return None
        cleaned = _clean(line)
        if len(cleaned) > 1 and cleaned.startswith("/"):
            cleaned = cleaned[1:]
        try:
            regex = re.compile(_to_regex(cleaned), re.DOTALL)
        except re.error:
            regex = re.compile(re.escape(cleaned) + r"\Z")
        return cls(cleaned, exclusion, regex)

    def match(self, path: str) -> bool:
        """Whether the rule matches ``path`` itself (no parent logic)."""
        return self.regex.match(path) is not None

    @property
    def literal_prefix(self) -> str:
        """The part before the first wildcard, used to prune directory walks."""
        for index, ch in enumerate(self.text):
            if ch in _GLOB_CHARS:
                return self.text[:index]
        return self.text


@dataclass(frozen=True, slots=True)
class DockerIgnore:
    """An ordered list of rules; ``matches`` says whether a context path is ignored."""

    patterns: tuple[IgnorePattern, ...] = ()

    @classmethod
    def parse(cls, text: str) -> DockerIgnore:
        """Reads ``.dockerignore`` text: ``#`` comments (at column 0), blank lines skipped."""
        patterns: list[IgnorePattern] = []
        for raw in text.removeprefix("\ufeff").splitlines():
            if raw.startswith("#"):
                continue
            pattern = IgnorePattern.parse(raw.strip())
            if pattern is not None:
                patterns.append(pattern)
        return cls(tuple(patterns))

    @property
    def is_empty(self) -> bool:
        """True when nothing can be ignored (no rules)."""
        return not self.patterns

    @property
    def has_exclusions(self) -> bool:
        """True when some ``!`` rule may re-include paths below an ignored directory."""
        return any(p.exclusion for p in self.patterns)

    def matches(self, relpath: str) -> bool:
        """Whether ``relpath`` (``/``-separated, relative to the context) is ignored."""
        path = _clean(relpath).lstrip("/")
        if path in ("", "."):
            return False
        parents = path.split("/")[:-1]
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            hit = pattern.match(path)
            if not hit:
                for depth in range(1, len(parents) + 1):
                    if pattern.match("/".join(parents[:depth])):
                        hit = True
                        break
            if hit:
                matched = not pattern.exclusion
        return matched

    def may_match_children(self, dirpath: str) -> bool:
        """False only when ``dirpath`` and everything below it is surely ignored.

        A directory walk may skip such a directory without visiting its entries.
        """
        path = _clean(dirpath).lstrip("/")
        if not self.matches(path):
            return True
        prefix = path + "/"
        for pattern in self.patterns:
            if not pattern.exclusion:
                continue
            literal = pattern.literal_prefix
            if literal.startswith(prefix) or prefix.startswith(literal):
                return True
            if pattern.text.startswith("**") or literal == "":
                return True
        return False

    def filter(self, relpaths: list[str]) -> list[str]:
        """The paths that are not ignored, in their order."""
        return [p for p in relpaths if not self.matches(p)]


def load_dockerignore(
    context_text: str | None, dockerfile_specific_text: str | None = None
) -> DockerIgnore:
    """The rules in force: ``<Dockerfile>.dockerignore`` wins over the context's file."""
    if dockerfile_specific_text is not None:
        return DockerIgnore.parse(dockerfile_specific_text)
    if context_text is not None:
        return DockerIgnore.parse(context_text)
    return DockerIgnore()
