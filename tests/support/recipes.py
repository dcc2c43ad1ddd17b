"""Command lines out of the recipe files in ``examples/``, so tests run what the docs say.

A recipe marks each pykaniko invocation with a ``# pykaniko-recipe: NAME`` comment
line, directly above one of three YAML shapes:

* a folded list item (``- >-`` and the indented lines under it): GitLab CI;
* a ``run: |`` block with backslash continuations: GitHub Actions;
* an ``args:`` list: a container's arguments (Kubernetes, Tekton).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path

__all__ = ["recipe_argv", "recipe_commands"]

_MARKER = re.compile(r"#\s*pykaniko-recipe:\s*(\S+)")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _unquote(item: str) -> str:
    item = item.strip()
    if len(item) >= 2 and item[0] == item[-1] and item[0] in "\"'":
        return item[1:-1]
    return item


def recipe_commands(path: Path) -> dict[str, str]:
    """Each marked command as one shell-like line, nothing substituted yet."""
    lines = path.read_text().splitlines()
    found: dict[str, str] = {}
    for i, line in enumerate(lines):
        match = _MARKER.search(line)
        if match is None:
            continue
        j = i + 1
        while lines[j].strip().startswith("#"):
            j += 1
        head, depth = lines[j].strip(), _indent(lines[j])
        body: list[str] = []
        for following in lines[j + 1 :]:
            if following.strip() and _indent(following) <= depth:
                break
            if following.strip():
                body.append(following.strip())
        if head.startswith("- >"):
            text = " ".join(body)
        elif head.startswith("run: |"):
            text = " ".join(part.rstrip("\\").strip() for part in body)
        elif head == "args:":
            items = [_unquote(x[2:]) for x in body if x.startswith("- ")]
            text = "pykaniko " + " ".join(shlex.quote(item) for item in items)
        else:
            raise AssertionError(f"{path}:{j + 1}: no command after the recipe marker")
        found[match.group(1)] = text
    return found


def recipe_argv(text: str, values: Mapping[str, str]) -> list[str]:
    """The arguments after the program name, with ``values`` (CI variables, template
    parameters, host names) replaced, longest first; every ``$`` must be accounted for."""
    for key in sorted(values, key=len, reverse=True):
        text = text.replace(key, values[key])
    assert "$" not in text, f"unsubstituted variable in: {text}"
    argv = shlex.split(text)
    program = next(i for i, a in enumerate(argv) if a.endswith("pykaniko"))
    return argv[program + 1 :]
