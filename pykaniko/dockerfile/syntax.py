"""Dockerfile text to raw nodes: directives, continuations, flags and heredocs.

The raw layer knows nothing about what an instruction means. It only finds where each
instruction starts and ends (so every error can point at lines), which leading words
are ``--flags`` and which heredoc bodies belong to it. BuildKit's parser is the model:
the same rules decide what is a directive, a comment or a continuation line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pykaniko.dockerfile.lexer import ExpansionError, split_quoted_words, split_words
from pykaniko.errors import DockerfileError, Location

__all__ = ["Heredoc", "ParsedText", "RawNode", "parse_heredoc_word", "parse_text"]

_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_KNOWN_DIRECTIVES = ("syntax", "escape", "check")
_HEREDOC = re.compile(r"^(\d*)<<(-?)([^<]*)$")
HEREDOC_INSTRUCTIONS = frozenset({"run", "copy", "add"})


@dataclass(frozen=True, slots=True)
class Heredoc:
    """An inline file: ``<<NAME`` plus its body, as the executor needs it.

    ``content`` ends with a newline per body line (as BuildKit stores it) and already
    has leading tabs removed for ``<<-NAME``. ``expand`` is False when the delimiter
    was quoted, which turns off variable expansion of the body.
    """

    name: str
    content: str
    expand: bool


@dataclass(frozen=True, slots=True)
class RawNode:
    """One instruction as cut out of the text, before it is typed."""

    keyword: str  # as written, e.g. "run" or "RUN"
    flags: tuple[str, ...]  # "--name=value" words, quotes removed
    rest: str  # the text after the flags
    original: str  # the whole joined line, heredoc bodies excluded
    heredocs: tuple[Heredoc, ...]
    location: Location


@dataclass(frozen=True, slots=True)
class ParsedText:
    """The raw nodes of a file plus its directives and escape character."""

    directives: tuple[tuple[str, str], ...]
    escape: str
    nodes: tuple[RawNode, ...]


def parse_heredoc_word(word: str) -> tuple[str, bool, bool] | None:
    """``<<EOF`` / ``<<-"EOF"`` -> (name, strip_tabs, expand); None if not a heredoc."""
    match = _HEREDOC.match(word)
    if not match:
        return None
    rest = match.group(3)
    if not rest:
        return None
    try:
        words = split_words(rest, {})
    except ExpansionError:
        return None
    if len(words) != 1 or not words[0]:
        return None
    name = words[0]
    expand = not any(q in rest for q in ("'", '"', "\\"))
    return name, match.group(2) == "-", expand


def heredoc_words(text: str) -> list[tuple[str, bool, bool]]:
    """The heredoc openers in a command line, in order."""
    try:
        words = split_quoted_words(text)
    except ExpansionError:
        return []
    found = []
    for word in words:
        parsed = parse_heredoc_word(word)
        if parsed:
            found.append(parsed)
    return found


def _is_comment(line: str) -> bool:
    return line.lstrip(" \t").startswith("#")


def _trim_continuation(line: str, escape: str) -> tuple[str, bool]:
    """Strips a trailing escape char; returns (text, this line ends the instruction)."""
    stripped = line.rstrip(" \t")
    if stripped.endswith(escape):
        return stripped[: -len(escape)], False
    return line, True


def split_flags(text: str, escape: str) -> tuple[tuple[str, ...], str]:
    """Cuts the leading ``--flag`` words off an instruction's arguments."""
    flags: list[str] = []
    i = 0
    n = len(text)
    while True:
        while i < n and text[i] in " \t":
            i += 1
        if not text.startswith("--", i):
            return tuple(flags), text[i:]
        word: list[str] = []
        quote = ""
        while i < n:
            ch = text[i]
            if not quote and ch in " \t":
                break
            if ch == escape and i + 1 < n and quote != "'":
                word.append(text[i + 1])
                i += 2
                continue
            if quote:
                if ch == quote:
                    quote = ""
                else:
                    word.append(ch)
            elif ch in ("'", '"'):
                quote = ch
            else:
                word.append(ch)
            i += 1
        flags.append("".join(word))


def _parse_directives(lines: list[str], filename: str) -> tuple[dict[str, str], int]:
    """Reads directives at the very top; returns them and the first non-directive line."""
    found: dict[str, str] = {}
    for index, line in enumerate(lines):
        match = _DIRECTIVE.match(line.strip(" \t"))
        if not match:
            return found, index
        key = match.group(1).lower()
        if key not in _KNOWN_DIRECTIVES:
            return found, index
        if key in found:
            raise DockerfileError(
                f"only one {key} parser directive can be used",
                location=Location(filename, index + 1, index + 1),
            )
        found[key] = match.group(2)
    return found, len(lines)


def parse_text(text: str, filename: str = "Dockerfile") -> ParsedText:
    """Cuts a Dockerfile into raw nodes with line ranges."""
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    directives, first = _parse_directives(lines, filename)
    escape = directives.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise DockerfileError(
            f"invalid escape token {escape!r}: only \\ and ` are allowed",
            location=Location(filename, 1, first or 1),
        )
    nodes: list[RawNode] = []
    i = first
    while i < len(lines):
        line = lines[i].lstrip(" \t")
        i += 1
        start = i
        if _is_comment(line):
            continue
        joined, done = _trim_continuation(line, escape)
        if done and not joined.strip():
            continue
        while not done and i < len(lines):
            nxt = lines[i]
            i += 1
            if _is_comment(nxt):
                continue
            if not nxt.strip():
                continue
            part, done = _trim_continuation(nxt, escape)
            joined += part
        original = joined.strip()
        parts = re.split(r"[ \t]+", original, maxsplit=1)
        keyword, args = parts[0], (parts[1] if len(parts) > 1 else "")
        flags, rest = split_flags(args, escape)
        heredocs: list[Heredoc] = []
        if keyword.lower() in HEREDOC_INSTRUCTIONS and "<<" in rest:
            for name, strip_tabs, expand in heredoc_words(rest):
                body: list[str] = []
                terminated = False
                while i < len(lines):
                    body_line = lines[i]
                    i += 1
                    candidate = body_line.lstrip("\t") if strip_tabs else body_line
                    if candidate == name:
                        terminated = True
                        break
                    body.append(candidate + "\n")
                if not terminated:
                    raise DockerfileError(
                        f"unterminated heredoc {name!r}",
                        location=Location(filename, start, max(i, start)),
                    )
                heredocs.append(Heredoc(name, "".join(body), expand))
        nodes.append(
            RawNode(
                keyword=keyword,
                flags=flags,
                rest=rest.strip(),
                original=original,
                heredocs=tuple(heredocs),
                location=Location(filename, start, i),
            )
        )
    return ParsedText(tuple(directives.items()), escape, tuple(nodes))
