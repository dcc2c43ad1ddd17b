"""Typed instructions: one frozen dataclass per Dockerfile instruction.

Values keep the words as written (unexpanded); expansion happens later with the
variables known at that point of the build (see ``scope.StageScope.expand``), just as
BuildKit keeps parsing and expansion apart. Flags are checked here so a typo fails
before anything is pulled.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from typing import TypeAlias

from pykaniko.dockerfile.lexer import split_raw_words
from pykaniko.dockerfile.syntax import (
    Heredoc,
    RawNode,
    parse_heredoc_word,
    parse_text,
    split_flags,
)
from pykaniko.errors import DockerfileError, Location

__all__ = [
    "Add",
    "Arg",
    "Cmd",
    "Copy",
    "Entrypoint",
    "Env",
    "Expose",
    "From",
    "Healthcheck",
    "Heredoc",
    "Instruction",
    "Label",
    "Maintainer",
    "Mount",
    "Onbuild",
    "Run",
    "Shell",
    "StopSignal",
    "User",
    "Volume",
    "Workdir",
    "build_instruction",
    "parse_duration",
    "parse_instruction",
]


@dataclass(frozen=True, slots=True)
class From:
    """``FROM [--platform=P] image [AS alias]``; alias lower-cased (names are case-insensitive)."""

    location: Location
    original: str
    image: str
    platform: str | None
    alias: str | None


@dataclass(frozen=True, slots=True)
class Mount:
    """One ``RUN --mount=...`` with BuildKit's defaults filled in.

    bind mounts are read-only unless ``rw``; secret ``target`` defaults to
    ``/run/secrets/<id>``; cache ``id`` defaults to the target; ssh ``id`` to
    ``default``. ``mode`` is the octal permission when given (secret default 0o400,
    ssh 0o600, cache 0o755).
    """

    type: str
    target: str
    source: str | None
    from_: str | None
    id: str | None
    sharing: str
    readonly: bool
    required: bool
    mode: int | None
    uid: int | None
    gid: int | None
    env: str | None
    size: str | None


@dataclass(frozen=True, slots=True)
class Run:
    """``RUN``. Shell form: ``args == (text,)``, ``shell=True``; exec form: the JSON list.

    With heredocs, ``args`` stays the command line as written (``("<<EOF",)`` or
    ``("python3 <<EOF",)``) and ``heredocs`` holds the bodies. What to execute is
    given by ``command_text`` (a string for ``SHELL + [text]``) unless ``script`` is
    set: then, as BuildKit does, the single heredoc starts with ``#!`` and must be
    written to a 0755 file and executed directly.
    """

    location: Location
    original: str
    args: tuple[str, ...]
    shell: bool
    heredocs: tuple[Heredoc, ...]
    mounts: tuple[Mount, ...]
    network: str | None
    security: str | None

    @property
    def script(self) -> Heredoc | None:
        """The heredoc to run as a file when it is the whole command and has a shebang."""
        if self.heredocs and self.shell and parse_heredoc_word(self.args[0].strip()):
            first = self.heredocs[0]
            if first.content.startswith("#!"):
                return first
        return None

    @property
    def command_text(self) -> str:
        """Text for ``SHELL + [text]`` in shell form (BuildKit's heredoc rules applied)."""
        if not self.shell:
            raise ValueError("exec-form RUN has no shell text")
        text = self.args[0]
        if not self.heredocs:
            return text
        if parse_heredoc_word(text.strip()):
            return self.heredocs[0].content
        return text + "".join(f"\n{doc.content}{doc.name}" for doc in self.heredocs)


@dataclass(frozen=True, slots=True)
class Copy:
    """``COPY``. ``sources`` excludes heredoc sources, which are in ``heredocs``.

    A heredoc source becomes a file named after its delimiter inside ``dest``.
    """

    location: Location
    original: str
    sources: tuple[str, ...]
    dest: str
    from_: str | None
    chown: str | None
    chmod: str | None
    link: bool
    parents: bool
    exclude: tuple[str, ...]
    heredocs: tuple[Heredoc, ...]


@dataclass(frozen=True, slots=True)
class Add:
    """``ADD``: Copy's shape plus ``--checksum`` and ``--keep-git-dir``; no ``--from``."""

    location: Location
    original: str
    sources: tuple[str, ...]
    dest: str
    chown: str | None
    chmod: str | None
    link: bool
    exclude: tuple[str, ...]
    checksum: str | None
    keep_git_dir: bool
    heredocs: tuple[Heredoc, ...]
    unpack: bool | None = None


@dataclass(frozen=True, slots=True)
class Cmd:
    """``CMD``: exec form (``shell=False``) or shell form text in ``args[0]``."""

    location: Location
    original: str
    args: tuple[str, ...]
    shell: bool


@dataclass(frozen=True, slots=True)
class Entrypoint:
    """``ENTRYPOINT``: exec form (``shell=False``) or shell form text in ``args[0]``."""

    location: Location
    original: str
    args: tuple[str, ...]
    shell: bool


@dataclass(frozen=True, slots=True)
class Shell:
    """``SHELL [...]``; JSON form only, as Docker requires."""

    location: Location
    original: str
    args: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Env:
    """``ENV``: ordered pairs (both ``k=v ...`` and legacy ``k v`` forms)."""

    location: Location
    original: str
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Arg:
    """``ARG``: ordered pairs; ``None`` means declared without a default."""

    location: Location
    original: str
    pairs: tuple[tuple[str, str | None], ...]


@dataclass(frozen=True, slots=True)
class Label:
    """``LABEL``: ordered pairs."""

    location: Location
    original: str
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Expose:
    """``EXPOSE``: ports as written (``80``, ``80/tcp``, ``53/udp``, ``8000-8010``)."""

    location: Location
    original: str
    ports: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Volume:
    """``VOLUME``: JSON list or whitespace-separated paths."""

    location: Location
    original: str
    paths: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class User:
    """``USER user[:group]``."""

    location: Location
    original: str
    user: str


@dataclass(frozen=True, slots=True)
class Workdir:
    """``WORKDIR path``."""

    location: Location
    original: str
    path: str


@dataclass(frozen=True, slots=True)
class StopSignal:
    """``STOPSIGNAL signal``."""

    location: Location
    original: str
    signal: str


@dataclass(frozen=True, slots=True)
class Healthcheck:
    """``HEALTHCHECK`` in Docker config form.

    ``test`` is ``("NONE",)``, ``("CMD", *argv)`` or ``("CMD-SHELL", text)``. Durations
    are nanoseconds (the config's unit); ``None`` means the option was not given.
    """

    location: Location
    original: str
    test: tuple[str, ...] | None
    interval: int | None
    timeout: int | None
    start_period: int | None
    start_interval: int | None
    retries: int | None


@dataclass(frozen=True, slots=True)
class Maintainer:
    """``MAINTAINER`` (deprecated; Docker records it as the image author)."""

    location: Location
    original: str
    name: str


@dataclass(frozen=True, slots=True)
class Onbuild:
    """``ONBUILD <instruction>``; ``expression`` is the trigger text stored in the config."""

    location: Location
    original: str
    expression: str
    inner: Instruction


Instruction: TypeAlias = (
    From
    | Run
    | Copy
    | Add
    | Cmd
    | Entrypoint
    | Shell
    | Env
    | Arg
    | Label
    | Expose
    | Volume
    | User
    | Workdir
    | StopSignal
    | Healthcheck
    | Maintainer
    | Onbuild
)

KNOWN_INSTRUCTIONS = (
    "FROM",
    "RUN",
    "COPY",
    "ADD",
    "CMD",
    "ENTRYPOINT",
    "SHELL",
    "ENV",
    "ARG",
    "LABEL",
    "EXPOSE",
    "VOLUME",
    "USER",
    "WORKDIR",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "MAINTAINER",
    "ONBUILD",
)

# flag name -> kind: "str" (once), "bool", "list" (repeatable)
_FLAGS: dict[str, dict[str, str]] = {
    "FROM": {"platform": "str"},
    "RUN": {"mount": "list", "network": "str", "security": "str"},
    "COPY": {
        "from": "str",
        "chown": "str",
        "chmod": "str",
        "link": "bool",
        "parents": "bool",
        "exclude": "list",
    },
    "ADD": {
        "chown": "str",
        "chmod": "str",
        "link": "bool",
        "exclude": "list",
        "checksum": "str",
        "keep-git-dir": "bool",
        "unpack": "bool",
    },
    "HEALTHCHECK": {
        "interval": "str",
        "timeout": "str",
        "start-period": "str",
        "start-interval": "str",
        "retries": "str",
    },
}

_STAGE_NAME = re.compile(r"^[a-z][a-z0-9\-_.]*$")
_PORT = re.compile(r"^\d+(-\d+)?(/[a-zA-Z]+)?$")
_CHMOD = re.compile(r"^([0-7]{1,4}|([ugoa]*[-+=][rwxXst]*)(,[ugoa]*[-+=][rwxXst]*)*)$")
_CHECKSUM = re.compile(r"^[a-z0-9]+:[a-fA-F0-9]+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}


def did_you_mean(word: str, choices: list[str] | tuple[str, ...], cutoff: float = 0.6) -> str:
    """`` (did you mean X?)`` when a choice is close enough, else ``""``."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=cutoff)
    return f" (did you mean {close[0]}?)" if close else ""


def _fail(message: str, location: Location) -> DockerfileError:
    return DockerfileError(message, location=location)


@dataclass(frozen=True, slots=True)
class _Flags:
    values: dict[str, str | bool | list[str]]

    def text(self, name: str) -> str | None:
        value = self.values.get(name)
        return value if isinstance(value, str) else None

    def flag(self, name: str) -> bool:
        return self.values.get(name) is True

    def items(self, name: str) -> tuple[str, ...]:
        value = self.values.get(name)
        return tuple(value) if isinstance(value, list) else ()


def _parse_flags(name: str, words: tuple[str, ...], location: Location) -> _Flags:
    allowed = _FLAGS.get(name, {})
    values: dict[str, str | bool | list[str]] = {}
    for word in words:
        if word == "--":
            break
        key, has_value, value = word[2:].partition("=")
        kind = allowed.get(key)
        if kind is None:
            hint = did_you_mean(key, list(allowed))
            hint = hint.replace("mean ", "mean --") if hint else ""
            raise _fail(f"unknown flag --{key} for {name}{hint}", location)
        if kind == "list":
            if not has_value:
                raise _fail(f"missing a value on flag --{key}", location)
            current = values.setdefault(key, [])
            assert isinstance(current, list)
            current.append(value)
            continue
        if key in values:
            raise _fail(f"duplicate flag specified: --{key}", location)
        if kind == "bool":
            lowered = value.lower()
            if has_value and lowered not in ("true", "false"):
                raise _fail(f"expecting boolean value for flag --{key}, not: {value}", location)
            values[key] = not has_value or lowered == "true"
        else:
            if not has_value:
                raise _fail(f"missing a value on flag --{key}", location)
            values[key] = value
    return _Flags(values)


def _json_list(text: str) -> list[str] | None:
    """The JSON (exec) form if ``text`` is a JSON array of strings, else None."""
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    return value


def parse_duration(text: str) -> int:
    """A Go duration (``30s``, ``1m30s``, ``1.5h``, ``0``) in nanoseconds."""
    if text in ("0", "+0", "-0"):
        return 0
    body = text.lstrip("+")
    if body.startswith("-"):
        raise ValueError("negative")
    pos = 0
    total = 0.0
    for match in _DURATION_PART.finditer(body):
        if match.start() != pos:
            raise ValueError(text)
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(body) or pos == 0:
        raise ValueError(text)
    return int(total)


def _pairs(
    name: str, rest: str, escape: str, location: Location, *, allow_bare: bool
) -> list[tuple[str, str | None]]:
    """``k=v`` words (ENV, LABEL, ARG) or the legacy ``k v`` form (ENV, LABEL)."""
    words = split_raw_words(rest, escape)
    if not words:
        raise _fail(f"{name} requires at least one argument", location)
    if not allow_bare and "=" not in words[0]:
        parts = re.split(r"[ \t]+", rest.strip(), maxsplit=1)
        if len(parts) < 2:
            raise _fail(f"{name} must have two arguments", location)
        return [(parts[0], parts[1])]
    pairs: list[tuple[str, str | None]] = []
    for word in words:
        key, has_value, value = word.partition("=")
        if not has_value and not allow_bare:
            raise _fail(
                f"syntax error - can't find = in {word!r}. Must be of the form: name=value",
                location,
            )
        if not key:
            raise _fail(f"{name} names can not be blank", location)
        pairs.append((key, value if has_value else None))
    return pairs


def _mount(spec: str, location: Location) -> Mount:
    """One ``--mount`` value (CSV of key=value) with BuildKit's defaults."""
    fields: dict[str, str | bool] = {}
    for part in _csv_fields(spec, location):
        key, has_value, value = part.partition("=")
        key = key.strip().lower()
        aliases = {
            "src": "source",
            "dst": "target",
            "destination": "target",
            "ro": "readonly",
            "readwrite": "rw",
        }
        key = aliases.get(key, key)
        if key in ("readonly", "rw", "required"):
            if has_value and value.lower() not in ("true", "false"):
                raise _fail(f"invalid value for {key} in --mount: {value!r}", location)
            flag = not has_value or value.lower() == "true"
            if key == "rw":
                key, flag = "readonly", not flag
            fields[key] = flag
            continue
        known = ("type", "source", "target", "from", "id", "sharing", "mode", "uid", "gid")
        if key not in (*known, "env", "size"):
            hint = did_you_mean(key, list(known))
            raise _fail(f"unexpected key {key!r} in --mount={spec}{hint}", location)
        if not has_value:
            raise _fail(f"missing a value for {key!r} in --mount={spec}", location)
        fields[key] = value
    mount_type = str(fields.get("type", "bind"))
    kinds = ("bind", "cache", "tmpfs", "secret", "ssh")
    if mount_type not in kinds:
        raise _fail(
            f"unsupported mount type {mount_type!r}{did_you_mean(mount_type, kinds)}", location
        )

    def text(key: str) -> str | None:
        value = fields.get(key)
        return value if isinstance(value, str) else None

    def number(key: str, base: int) -> int | None:
        value = text(key)
        if value is None or "$" in value:
            return None
        try:
            return int(value, base)
        except ValueError:
            raise _fail(f"invalid {key} {value!r} in --mount", location) from None

    if mount_type in ("secret", "ssh") and text("from") is not None:
        raise _fail(f"a {mount_type} mount cannot have from=", location)
    target = text("target") or ""
    mount_id = text("id")
    source = text("source")
    mode = number("mode", 8)
    if mount_type == "secret":
        mount_id = mount_id or source or (target.rsplit("/", 1)[-1] if target else None)
        if not mount_id:
            raise _fail("secret mount needs an id or a target", location)
        if not target and not text("env"):
            target = f"/run/secrets/{mount_id}"
        mode = 0o400 if mode is None else mode
    elif mount_type == "ssh":
        mount_id = mount_id or "default"
        target = target or "/run/buildkit/ssh_agent.0"
        mode = 0o600 if mode is None else mode
    elif not target:
        raise _fail(f"mount type {mount_type} needs a target", location)
    if mount_type == "cache":
        mount_id = mount_id or target
        mode = 0o755 if mode is None else mode
    sharing = text("sharing") or "shared"
    if sharing not in ("shared", "private", "locked"):
        raise _fail(f"invalid sharing {sharing!r} in --mount (shared|private|locked)", location)
    default_ro = mount_type in ("bind", "secret", "ssh")
    readonly = fields.get("readonly", default_ro)
    for key in ("uid", "gid"):
        number(key, 10)
    return Mount(
        type=mount_type,
        target=target,
        source=source,
        from_=text("from"),
        id=mount_id,
        sharing=sharing,
        readonly=readonly is True,
        required=fields.get("required") is True,
        mode=mode,
        uid=number("uid", 10),
        gid=number("gid", 10),
        env=text("env"),
        size=text("size"),
    )


def _csv_fields(spec: str, location: Location) -> list[str]:
    """Splits a CSV record the way Go's encoding/csv does for one line."""
    fields: list[str] = []
    current: list[str] = []
    i = 0
    quoted = False
    while i < len(spec):
        ch = spec[i]
        if quoted:
            if ch == '"':
                if spec[i + 1 : i + 2] == '"':
                    current.append('"')
                    i += 1
                else:
                    quoted = False
            else:
                current.append(ch)
        elif ch == '"' and (not current or "".join(current).endswith("=")):
            quoted = True
        elif ch == ",":
            fields.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    if quoted:
        raise _fail(f"unterminated quote in --mount={spec}", location)
    fields.append("".join(current))
    return [f for f in fields if f]


def _copy_args(
    name: str, node: RawNode, rest: str, location: Location
) -> tuple[tuple[str, ...], str, tuple[Heredoc, ...]]:
    words = _json_list(rest)
    if words is None:
        words = rest.split()
    if len(words) < 2:
        raise _fail(
            f"{name} requires at least two arguments, but only {len(words)} was provided. "
            "Destination could not be determined",
            location,
        )
    *sources, dest = words
    by_name = {doc.name: doc for doc in node.heredocs}
    plain: list[str] = []
    docs: list[Heredoc] = []
    for source in sources:
        parsed = parse_heredoc_word(source)
        if parsed and parsed[0] in by_name:
            docs.append(by_name[parsed[0]])
        else:
            plain.append(source)
    return tuple(plain), dest, tuple(docs)


def _exec_or_shell(rest: str) -> tuple[tuple[str, ...], bool]:
    words = _json_list(rest)
    if words is None:
        return (rest,), True
    return tuple(words), False


def check_copy_flags(instr: Copy | Add) -> None:
    """Validates --chmod/--checksum once ARG expansion has produced their final text."""
    _check_chmod(instr.chmod, instr.location, expanded=True)
    checksum = instr.checksum if isinstance(instr, Add) else None
    if checksum is not None and not _CHECKSUM.match(checksum):
        raise _fail(f"invalid --checksum={checksum}: expected ALGORITHM:HEX", instr.location)


def _check_chmod(value: str | None, location: Location, *, expanded: bool = False) -> None:
    if value is not None and (expanded or "$" not in value) and not _CHMOD.match(value):
        raise _fail(f"invalid --chmod={value}: expected an octal mode such as 755", location)


def build_instruction(node: RawNode, escape: str = "\\") -> Instruction:
    """Turns a raw node into its typed instruction, checking flags and arguments."""
    name = node.keyword.upper()
    loc = node.location
    rest = node.rest
    if name not in KNOWN_INSTRUCTIONS:
        hint = did_you_mean(name, KNOWN_INSTRUCTIONS)
        raise _fail(f"unknown instruction {node.keyword!r}{hint}".replace("'", '"'), loc)
    flags = _parse_flags(name, node.flags, loc)
    original = node.original
    if name == "FROM":
        words = rest.split()
        if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
            raise _fail("FROM requires either one or three arguments", loc)
        alias = words[2].lower() if len(words) == 3 else None
        if alias is not None and not _STAGE_NAME.match(alias):
            raise _fail(
                f"invalid name for build stage: {words[2]!r}, "
                "name can't start with a number or contain symbols",
                loc,
            )
        return From(loc, original, words[0], flags.text("platform"), alias)
    if name == "RUN":
        args, shell = _exec_or_shell(rest)
        if shell and not rest:
            raise _fail("RUN requires at least one argument", loc)
        network = flags.text("network")
        if network is not None and network not in ("default", "none", "host"):
            raise _fail(f"invalid --network={network}: expected default, none or host", loc)
        security = flags.text("security")
        if security is not None and security not in ("sandbox", "insecure"):
            raise _fail(f"invalid --security={security}: expected sandbox or insecure", loc)
        mounts = tuple(_mount(spec, loc) for spec in flags.items("mount"))
        heredocs = node.heredocs if shell else ()
        return Run(loc, original, args, shell, heredocs, mounts, network, security)
    if name in ("COPY", "ADD"):
        sources, dest, docs = _copy_args(name, node, rest, loc)
        chmod = flags.text("chmod")
        _check_chmod(chmod, loc)
        if name == "COPY":
            return Copy(
                loc,
                original,
                sources,
                dest,
                flags.text("from"),
                flags.text("chown"),
                chmod,
                flags.flag("link"),
                flags.flag("parents"),
                flags.items("exclude"),
                docs,
            )
        checksum = flags.text("checksum")
        if checksum is not None and "$" not in checksum and not _CHECKSUM.match(checksum):
            raise _fail(f"invalid --checksum={checksum}: expected ALGORITHM:HEX", loc)
        return Add(
            loc,
            original,
            sources,
            dest,
            flags.text("chown"),
            chmod,
            flags.flag("link"),
            flags.items("exclude"),
            checksum,
            flags.flag("keep-git-dir"),
            docs,
            flags.flag("unpack") if "unpack" in flags.values else None,
        )
    if name in ("CMD", "ENTRYPOINT"):
        args, shell = _exec_or_shell(rest)
        if shell and not rest:
            args = ()
        return (Cmd if name == "CMD" else Entrypoint)(loc, original, args, shell)
    if name == "SHELL":
        shell_words = _json_list(rest)
        if shell_words is None:
            raise _fail("SHELL requires the arguments to be in JSON form", loc)
        if not shell_words:
            raise _fail("SHELL requires at least one argument", loc)
        return Shell(loc, original, tuple(shell_words))
    if name in ("ENV", "LABEL"):
        pairs = tuple((k, v or "") for k, v in _pairs(name, rest, escape, loc, allow_bare=False))
        return (Env if name == "ENV" else Label)(loc, original, pairs)
    if name == "ARG":
        return Arg(loc, original, tuple(_pairs(name, rest, escape, loc, allow_bare=True)))
    if name == "EXPOSE":
        ports = tuple(rest.split())
        if not ports:
            raise _fail("EXPOSE requires at least one argument", loc)
        for port in ports:
            if "$" not in port and not _PORT.match(port):
                raise _fail(f"invalid port {port!r} in EXPOSE", loc)
        return Expose(loc, original, ports)
    if name == "VOLUME":
        volume_words = _json_list(rest)
        paths = tuple(volume_words if volume_words is not None else rest.split())
        if not paths or any(not p.strip() for p in paths):
            raise _fail("VOLUME specified can not be an empty string", loc)
        return Volume(loc, original, paths)
    if name in ("USER", "WORKDIR", "STOPSIGNAL", "MAINTAINER"):
        if not rest:
            raise _fail(f"{name} requires exactly one argument", loc)
        if name == "USER":
            return User(loc, original, rest)
        if name == "WORKDIR":
            return Workdir(loc, original, rest)
        if name == "MAINTAINER":
            return Maintainer(loc, original, rest)
        if len(rest.split()) != 1:
            raise _fail("STOPSIGNAL requires exactly one argument", loc)
        return StopSignal(loc, original, rest)
    if name == "HEALTHCHECK":
        return _healthcheck(rest, flags, loc, original)
    assert name == "ONBUILD"
    return _onbuild(node, escape)


def _healthcheck(rest: str, flags: _Flags, loc: Location, original: str) -> Healthcheck:
    parts = re.split(r"[ \t]+", rest, maxsplit=1) if rest else []
    if not parts:
        raise _fail("HEALTHCHECK requires at least one argument", loc)
    kind = parts[0].upper()
    if kind == "NONE":
        if len(parts) > 1 or flags.values:
            raise _fail("HEALTHCHECK NONE takes no arguments", loc)
        return Healthcheck(loc, original, ("NONE",), None, None, None, None, None)
    if kind != "CMD":
        raise _fail(f"unknown type {parts[0]!r} in HEALTHCHECK (try CMD)", loc)
    body = parts[1] if len(parts) > 1 else ""
    if not body:
        raise _fail("missing command after HEALTHCHECK CMD", loc)
    args, shell = _exec_or_shell(body)
    test = ("CMD-SHELL", body) if shell else ("CMD", *args)
    durations: dict[str, int | None] = {}
    for key in ("interval", "timeout", "start-period", "start-interval"):
        value = flags.text(key)
        if value is None:
            durations[key] = None
            continue
        try:
            nanos = parse_duration(value)
        except ValueError:
            raise _fail(f"invalid duration --{key}={value}", loc) from None
        if 0 < nanos < 1_000_000:
            raise _fail(f"--{key} cannot be less than 1ms", loc)
        durations[key] = nanos
    retries_text = flags.text("retries")
    retries = None
    if retries_text is not None:
        try:
            retries = int(retries_text)
        except ValueError:
            raise _fail(f"invalid --retries={retries_text}: expected an integer", loc) from None
        if retries < 0:
            raise _fail("--retries cannot be negative", loc)
    return Healthcheck(
        loc,
        original,
        test,
        durations["interval"],
        durations["timeout"],
        durations["start-period"],
        durations["start-interval"],
        retries,
    )


def _onbuild(node: RawNode, escape: str) -> Onbuild:
    loc = node.location
    expression = re.sub(r"(?i)^\s*ONBUILD\s*", "", node.original)
    if not expression:
        raise _fail("ONBUILD requires at least one argument", loc)
    inner = _inner_node(expression, loc, escape)
    keyword = inner.keyword.upper()
    if keyword == "ONBUILD":
        raise _fail("ONBUILD ONBUILD is not allowed", loc)
    if keyword in ("FROM", "MAINTAINER"):
        raise _fail(f"{keyword} is not allowed as an ONBUILD trigger", loc)
    return Onbuild(loc, node.original, expression, build_instruction(inner, escape))


def _inner_node(text: str, location: Location, escape: str) -> RawNode:
    parts = re.split(r"[ \t]+", text.strip(), maxsplit=1)
    flags, rest = split_flags(parts[1] if len(parts) > 1 else "", escape)
    return RawNode(parts[0], flags, rest.strip(), text.strip(), (), location)


def parse_instruction(text: str, location: Location, escape: str = "\\") -> Instruction:
    """Parses one instruction given as text (e.g. an ONBUILD trigger from a base image).

    Heredoc bodies may follow on the next lines, as in a Dockerfile.
    """
    parsed = parse_text(text, location.filename)
    if len(parsed.nodes) != 1:
        raise _fail(f"expected exactly one instruction, got {len(parsed.nodes)}", location)
    node = parsed.nodes[0]
    node = RawNode(node.keyword, node.flags, node.rest, node.original, node.heredocs, location)
    return build_instruction(node, escape)
