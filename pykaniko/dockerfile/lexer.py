"""Shell-like word lexing and ``$VAR`` expansion with Docker's rules.

This plays the role of BuildKit's ``shell.Lex``: Dockerfiles are not run by a shell at
parse time, yet Docker expands ENV/ARG/COPY/... fields with a small shell dialect.
Quoting, the escape character and the ``${...}`` modifiers behave as BuildKit's lexer
does, so a Dockerfile builds the same with us as with ``docker build``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "ExpansionError",
    "expand_text",
    "split_quoted_words",
    "split_raw_words",
    "split_words",
]

_SPECIAL_PARAMS = frozenset("@*#?-$!0")


class ExpansionError(ValueError):
    """A word could not be expanded (``${V:?msg}``, unterminated quotes, bad modifier)."""


@dataclass(slots=True)
class _Words:
    """Collects the words of a ProcessWords-style split."""

    words: list[str] = field(default_factory=list)
    current: list[str] = field(default_factory=list)
    in_word: bool = False

    def add_char(self, ch: str) -> None:
        if ch.isspace():
            if self.in_word:
                self.words.append("".join(self.current))
                self.current = []
                self.in_word = False
            return
        self.current.append(ch)
        self.in_word = True

    def add_raw(self, text: str) -> None:
        self.current.append(text)
        self.in_word = True

    def add_expanded(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def finish(self) -> list[str]:
        if self.in_word:
            self.words.append("".join(self.current))
        return self.words


_MAX_DEPTH = 100  # ${A:-${B:-...}} levels; real Dockerfiles use two or three


class _Lexer:
    """One pass over one word; recursive for ``${V:-word}`` bodies."""

    def __init__(
        self,
        text: str,
        env: Mapping[str, str],
        escape: str,
        *,
        raw_quotes: bool = False,
        raw_escapes: bool = False,
        skip_quotes: bool = False,
    ) -> None:
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_quotes = skip_quotes
        self.depth = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        if ch:
            self.pos += 1
        return ch

    def process(self, stop: str = "", raw_escapes: bool | None = None) -> tuple[str, list[str]]:
        """Expand until ``stop`` (or the end); returns the text and its words."""
        saved = self.raw_escapes
        if raw_escapes is not None:
            self.raw_escapes = raw_escapes
        self.depth += 1
        if self.depth > _MAX_DEPTH:  # the recursion would end in a RecursionError
            raise ExpansionError(f"substitutions nested deeper than {_MAX_DEPTH} levels")
        try:
            return self._process(stop)
        finally:
            self.raw_escapes = saved
            self.depth -= 1

    def _process(self, stop: str) -> tuple[str, list[str]]:
        out: list[str] = []
        words = _Words()
        while self.pos < len(self.text):
            ch = self.peek()
            if stop and ch == stop:
                self.next()
                return "".join(out), words.finish()
            if ch == "$":
                value = self.dollar()
                out.append(value)
                words.add_expanded(value)
            elif ch == "'" and not self.skip_quotes:
                value = self.single_quote()
                out.append(value)
                words.add_raw(value)
            elif ch == '"' and not self.skip_quotes:
                value = self.double_quote()
                out.append(value)
                words.add_raw(value)
            else:
                self.next()
                if ch == self.escape:
                    if self.raw_escapes:
                        out.append(ch)
                        words.add_raw(ch)
                    nxt = self.next()
                    if not nxt:
                        break
                    out.append(nxt)
                    words.add_raw(nxt)
                else:
                    out.append(ch)
                    words.add_char(ch)
        if stop:
            raise ExpansionError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(out), words.finish()

    def single_quote(self) -> str:
        self.next()
        out: list[str] = ["'"] if self.raw_quotes else []
        while True:
            ch = self.next()
            if not ch:
                raise ExpansionError(
                    "unexpected end of statement while looking for matching single-quote"
                )
            if ch == "'":
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def double_quote(self) -> str:
        self.next()
        out: list[str] = ['"'] if self.raw_quotes else []
        while True:
            ch = self.peek()
            if not ch:
                raise ExpansionError(
                    "unexpected end of statement while looking for matching double-quote"
                )
            if ch == '"':
                self.next()
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            self.next()
            if ch == self.escape:
                nxt = self.peek()
                if not nxt:
                    continue
                if nxt in ('"', "$", self.escape):
                    if self.raw_escapes:
                        out.append(ch)
                    out.append(self.next())
                    continue
            out.append(ch)

    def name(self) -> str:
        chars: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                break
            if not chars and ch.isdigit():
                while self.peek().isdigit():
                    chars.append(self.next())
                return "".join(chars)
            if not chars and ch in _SPECIAL_PARAMS:
                return self.next()
            if not (ch.isalnum() or ch == "_"):
                break
            chars.append(self.next())
        return "".join(chars)

    def dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            return self.env.get(name, "")
        self.next()
        name = self.name()
        op = self.next()
        value = self.env.get(name)
        if op == "}":
            return value or ""
        if op == ":":
            mod = self.next()
            if mod not in ("-", "+", "?"):
                raise ExpansionError(f"unsupported modifier (:{mod}) in substitution")
            word, _ = self.process("}")
            return self._modifier(name, mod, word, value, colon=True)
        if op in ("-", "+", "?"):
            word, _ = self.process("}")
            return self._modifier(name, op, word, value, colon=False)
        if op in ("#", "%"):
            longest = self.peek() == op
            if longest:
                self.next()
            pattern, _ = self.process("}", raw_escapes=True)
            return _trim(value or "", pattern, self.escape, prefix=op == "#", longest=longest)
        if op == "/":
            every = self.peek() == "/"
            if every:
                self.next()
            pattern = self._until_slash()
            replacement, _ = self.process("}")
            return _replace(value or "", pattern, replacement, self.escape, every=every)
        if not op:
            raise ExpansionError("unexpected end of statement while looking for matching }")
        raise ExpansionError(f"unsupported modifier ({op}) in substitution")

    def _until_slash(self) -> str:
        """Reads a ``${V/pattern/...}`` pattern up to the unescaped ``/`` (or ``}``)."""
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                raise ExpansionError("unexpected end of statement while looking for matching }")
            if ch == "/":
                self.next()
                return "".join(out)
            if ch == "}":
                # ${V/pat} deletes matches: leave "}" for the replacement reader.
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            self.next()
            if ch == self.escape and self.peek():
                out.append(ch + self.next())
                continue
            out.append(ch)

    @staticmethod
    def _modifier(name: str, mod: str, word: str, value: str | None, *, colon: bool) -> str:
        present = value is not None and (value != "" or not colon)
        if mod == "-":
            return value if present and value is not None else word
        if mod == "+":
            return word if present else ""
        if not present:
            if word:
                raise ExpansionError(f"{name}: {word}")
            reason = "is not allowed to be empty" if colon else "is not allowed to be unset"
            raise ExpansionError(f"{name}: {reason}")
        return value or ""


def _glob_regex(pattern: str, escape: str) -> str:
    """Turns a shell pattern (``*``, ``?``, ``[...]``, escapes) into a regex."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == escape and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "^") else i + 1)
            if end == -1:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1 : end]
                negate = body[:1] in ("!", "^")
                if negate:
                    body = body[1:]
                body = body.replace("\\", "\\\\")
                out.append(f"[{'^' if negate else ''}{body}]")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def _compile(pattern: str, escape: str) -> re.Pattern[str]:
    try:
        return re.compile(_glob_regex(pattern, escape), re.DOTALL)
    except re.error as exc:
        raise ExpansionError(f"invalid pattern {pattern!r} in substitution") from exc


def _trim(value: str, pattern: str, escape: str, *, prefix: bool, longest: bool) -> str:
    regex = _compile(pattern, escape)
    cuts = range(len(value) + 1)
    order = reversed(cuts) if longest else iter(cuts)
    for n in order:
        part = value[:n] if prefix else value[len(value) - n :]
        if regex.fullmatch(part):
            return value[n:] if prefix else value[: len(value) - n]
    return value


def _replace(value: str, pattern: str, replacement: str, escape: str, *, every: bool) -> str:
    if not pattern:
        return value
    regex = _compile(pattern, escape)
    out: list[str] = []
    i = 0
    while i <= len(value):
        found = None
        for end in range(len(value), i - 1, -1):
            if regex.fullmatch(value, i, end):
                found = end
                break
        if found is None or found == i:
            if i < len(value):
                out.append(value[i])
            i += 1
            continue
        out.append(replacement)
        i = found
        if not every:
            out.append(value[i:])
            return "".join(out)
    return "".join(out)


def expand_text(
    word: str,
    env: Mapping[str, str],
    escape: str = "\\",
    *,
    skip_quotes: bool = False,
) -> str:
    """Expands one word: quotes removed, escapes applied, ``$V`` substituted."""
    text, _ = _Lexer(word, env, escape, skip_quotes=skip_quotes).process()
    return text


def split_words(word: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Expands and splits on unquoted whitespace, as BuildKit's ProcessWords does."""
    _, words = _Lexer(word, env, escape).process()
    return words


def split_quoted_words(text: str) -> list[str]:
    """Words of a command line with quotes and escapes kept, no variables expanded.

    This is how BuildKit looks for heredoc openers (``<<EOF``) on a line.
    """
    _, words = _Lexer(text, {}, "\\", raw_quotes=True, raw_escapes=True).process()
    return words


def split_raw_words(text: str, escape: str = "\\") -> list[str]:
    """Splits on whitespace keeping quotes and escapes, expanding nothing.

    This is how Docker cuts ``ENV a="b c" d=e`` into ``name=value`` words before any
    expansion happens.
    """
    words: list[str] = []
    current: list[str] = []
    quote = ""
    i = 0
    in_word = False
    while i < len(text):
        ch = text[i]
        if not quote and ch.isspace():
            if in_word:
                words.append("".join(current))
                current = []
                in_word = False
            i += 1
            continue
        in_word = True
        if ch == escape and i + 1 < len(text) and quote != "'":
            current.append(ch + text[i + 1])
            i += 2
            continue
        if quote:
            if ch == quote:
                quote = ""
        elif ch in ("'", '"'):
            quote = ch
        current.append(ch)
        i += 1
    if in_word:
        words.append("".join(current))
    return words
