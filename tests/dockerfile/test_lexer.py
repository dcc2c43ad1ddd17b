"""The shell-word lexer against Docker's rules, table-driven."""

from __future__ import annotations

import pytest

from pykaniko.dockerfile import expand_word
from pykaniko.dockerfile.lexer import ExpansionError, expand_text, split_raw_words, split_words
from pykaniko.errors import DockerfileError

ENV = {
    "SET": "value",
    "EMPTY": "",
    "P": "/usr/local/bin/python3.tar.gz",
    "SPACED": "a b  c",
    "1": "one",
}

EXPAND_CASES = [
    # plain and braced
    ("$SET", "value"),
    ("${SET}", "value"),
    ("$UNSET", ""),
    ("${UNSET}", ""),
    ("pre$SET-post", "prevalue-post"),
    ("$SET_x", ""),
    ("${SET}_x", "value_x"),
    ("$", "$"),
    ("a$", "a$"),
    ("$ x", "$ x"),
    ("$/x", "$/x"),
    ("$1x", "onex"),
    # defaults and alternatives
    ("${SET:-w}", "value"),
    ("${EMPTY:-w}", "w"),
    ("${UNSET:-w}", "w"),
    ("${EMPTY-w}", ""),
    ("${UNSET-w}", "w"),
    ("${SET:+alt}", "alt"),
    ("${EMPTY:+alt}", ""),
    ("${EMPTY+alt}", "alt"),
    ("${UNSET+alt}", ""),
    ("${UNSET:-$SET}", "value"),
    ("${UNSET:-${EMPTY:-deep}}", "deep"),
    ("${UNSET:-a b}", "a b"),
    ("${SET:?must}", "value"),
    ("${EMPTY?must}", ""),
    # pattern removal and replacement
    ("${P#*/}", "usr/local/bin/python3.tar.gz"),
    ("${P##*/}", "python3.tar.gz"),
    ("${P%.*}", "/usr/local/bin/python3.tar"),
    ("${P%%.*}", "/usr/local/bin/python3"),
    ("${P#nomatch}", "/usr/local/bin/python3.tar.gz"),
    ("${P/python/py}", "/usr/local/bin/py3.tar.gz"),
    ("${P//o/0}", "/usr/l0cal/bin/pyth0n3.tar.gz"),
    ("${P/#\\/usr/X}", "/usr/local/bin/python3.tar.gz"),
    ("${SET/a/}", "vlue"),
    ("${SET/?/X}", "Xalue"),
    ("${SET//[aeiou]/_}", "v_l__"),
    ("${UNSET#x}", ""),
    # quoting and escapes
    ("'$SET'", "$SET"),
    ('"$SET"', "value"),
    ('"${SET} and $SET"', "value and value"),
    ('"a\\"b"', 'a"b'),
    ('"a\\$SET"', "a$SET"),
    ('"a\\\\b"', "a\\b"),
    ('"a\\nb"', "a\\nb"),
    ("\\$SET", "$SET"),
    ("a\\ b", "a b"),
    ("a\\", "a"),
    ("'it'\"'\"'s'", "it's"),
    ('""', ""),
    ("''", ""),
    ("'a\\b'", "a\\b"),
    ("C:\\tools", "C:tools"),
]


@pytest.mark.parametrize(("word", "expected"), EXPAND_CASES)
def test_expand(word: str, expected: str) -> None:
    assert expand_text(word, ENV) == expected


BACKTICK_CASES = [
    ("C:\\tools\\bin", "C:\\tools\\bin"),
    ("a`$SET", "a$SET"),
    ('"a`"b"', 'a"b'),
    ("$SET\\x", "value\\x"),
]


@pytest.mark.parametrize(("word", "expected"), BACKTICK_CASES)
def test_expand_with_backtick_escape(word: str, expected: str) -> None:
    assert expand_text(word, ENV, "`") == expected


ERROR_CASES = [
    ("${UNSET:?}", "UNSET: is not allowed to be empty"),
    ("${EMPTY:?}", "EMPTY: is not allowed to be empty"),
    ("${UNSET?}", "UNSET: is not allowed to be unset"),
    ("${UNSET:?custom message}", "UNSET: custom message"),
    ("${UNSET?msg}", "UNSET: msg"),
    ("'open", "unexpected end of statement while looking for matching single-quote"),
    ('"open', "unexpected end of statement while looking for matching double-quote"),
    ("${SET", "unexpected end of statement while looking for matching }"),
    ("${SET:-x", "unexpected end of statement while looking for matching }"),
    ("${SET:=x}", "unsupported modifier (:=) in substitution"),
    ("${SET^}", "unsupported modifier (^) in substitution"),
]


@pytest.mark.parametrize(("word", "message"), ERROR_CASES)
def test_expand_errors(word: str, message: str) -> None:
    with pytest.raises(ExpansionError) as info:
        expand_text(word, ENV)
    assert str(info.value) == message


def test_expand_word_raises_dockerfile_error() -> None:
    with pytest.raises(DockerfileError, match="UNSET: is not allowed to be empty"):
        expand_word("${UNSET:?}", ENV)
    assert expand_word("${SET}", ENV) == "value"


def test_heredoc_expansion_keeps_quotes() -> None:
    assert expand_text("echo '$SET' \"$SET\"\n", ENV, skip_quotes=True) == (
        "echo 'value' \"value\"\n"
    )


SPLIT_CASES = [
    ("a b  c", ["a", "b", "c"]),
    ("$SPACED", ["a", "b", "c"]),
    ('"$SPACED"', ["a b  c"]),
    ("x$SPACED", ["xa", "b", "c"]),
    ("'' b", ["", "b"]),
    ("a\\ b c", ["a b", "c"]),
    ("", []),
    ("$UNSET", []),
]


@pytest.mark.parametrize(("text", "expected"), SPLIT_CASES)
def test_split_words(text: str, expected: list[str]) -> None:
    assert split_words(text, ENV) == expected


RAW_CASES = [
    ('A=1 B="two words" C=3', ["A=1", 'B="two words"', "C=3"]),
    ("A=a\\ b", ["A=a\\ b"]),
    ("K='x y' L=\"p'q\"", ["K='x y'", 'L="p\'q"']),
    ("  spaced   out  ", ["spaced", "out"]),
    ('"unterminated x', ['"unterminated x']),
]


@pytest.mark.parametrize(("text", "expected"), RAW_CASES)
def test_split_raw_words(text: str, expected: list[str]) -> None:
    assert split_raw_words(text) == expected
