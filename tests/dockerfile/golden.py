"""Dumps parsed and planned Dockerfiles as stable text for the golden-file tests."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from pykaniko.dockerfile import Dockerfile, parse_dockerfile, plan_build, render_plan
from pykaniko.errors import Location

CASES = Path(__file__).parent / "cases"
ERRORS = Path(__file__).parent / "errors"


def _value(value: object) -> str:
    if isinstance(value, Location):
        return f"{value.start}-{value.end}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _fields(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(_value(v) for v in value) + ")"
    return repr(value)


def _fields(obj: Any) -> str:
    parts = []
    for field in dataclasses.fields(obj):
        if field.name in ("location", "original"):
            continue
        parts.append(f"{field.name}={_value(getattr(obj, field.name))}")
    return f"{type(obj).__name__}(" + ", ".join(parts) + ")"


def dump_dockerfile(df: Dockerfile) -> str:
    """Every node with its line range, its original text and its typed fields."""
    lines = [f"escape: {df.escape!r}", f"directives: {df.directives!r}"]
    for arg in df.meta_args:
        lines.append(f"meta {arg.location.start}-{arg.location.end}: {_fields(arg)}")
    for stage in df.stages:
        loc = stage.location
        lines.append(f"stage {stage.index} name={stage.name!r} lines {loc.start}-{loc.end}")
        for instr in (stage.from_, *stage.instructions):
            where = f"{instr.location.start}-{instr.location.end}"
            lines.append(f"  {where} {instr.original!r}")
            lines.append(f"      {_fields(instr)}")
    return "\n".join(lines) + "\n"


def options_list(case: Path) -> list[dict[str, Any]]:
    """The plan options of a case: ``options.json`` holds one object or a list."""
    path = case / "options.json"
    if not path.exists():
        return [{}]
    data = json.loads(path.read_text())
    return data if isinstance(data, list) else [data]


def render_case(case: Path) -> str:
    """The golden text of a case directory."""
    text = (case / "Dockerfile").read_bytes().decode()
    df = parse_dockerfile(text)
    out = ["== parse ==", dump_dockerfile(df)]
    for options in options_list(case):
        out.append(f"== plan {json.dumps(options, sort_keys=True)} ==")
        out.append(render_plan(plan_build(df, **options)))
    return "\n".join(out)


def error_of(case: Path) -> str:
    """``str(err)`` of the DockerfileError a negative case raises ('' if none)."""
    from pykaniko.errors import DockerfileError

    text = (case / "Dockerfile").read_bytes().decode()
    try:
        df = parse_dockerfile(text)
        for options in options_list(case):
            plan_build(df, **options)
    except DockerfileError as err:
        return str(err) + "\n"
    return ""
