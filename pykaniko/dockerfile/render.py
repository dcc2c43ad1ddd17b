"""Instructions back to one line of Dockerfile text (for plans and logs)."""

from __future__ import annotations

import json

from pykaniko.dockerfile.instructions import (
    Add,
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Instruction,
    Label,
    Maintainer,
    Mount,
    Onbuild,
    Run,
    Shell,
    StopSignal,
    User,
    Volume,
    Workdir,
)

__all__ = ["format_instruction", "format_mount"]


def _quote(value: str) -> str:
    """Quotes a value only when it would not survive word splitting as is."""
    if value and not any(c in value for c in " \t\"'\\$") and value.isprintable():
        return value
    return json.dumps(value, ensure_ascii=False)


def format_mount(mount: Mount) -> str:
    """``type=cache,target=/x,...``: the non-default options of a mount."""
    parts = [f"type={mount.type}"]
    for key, value in (
        ("target", mount.target),
        ("source", mount.source),
        ("from", mount.from_),
        ("id", mount.id),
        ("env", mount.env),
        ("size", mount.size),
    ):
        if value:
            parts.append(f"{key}={value}")
    if mount.sharing != "shared":
        parts.append(f"sharing={mount.sharing}")
    parts.append("ro" if mount.readonly else "rw")
    if mount.required:
        parts.append("required")
    if mount.mode is not None:
        parts.append(f"mode={mount.mode:o}")
    if mount.uid is not None:
        parts.append(f"uid={mount.uid}")
    if mount.gid is not None:
        parts.append(f"gid={mount.gid}")
    return ",".join(parts)


def _args(args: tuple[str, ...], shell: bool) -> str:
    if shell:
        return args[0] if args else ""
    return json.dumps(list(args), ensure_ascii=False)


def _copy_like(instr: Copy | Add) -> str:
    name = "COPY" if isinstance(instr, Copy) else "ADD"
    flags: list[str] = []
    if isinstance(instr, Copy) and instr.from_ is not None:
        flags.append(f"--from={instr.from_}")
    if instr.chown is not None:
        flags.append(f"--chown={instr.chown}")
    if instr.chmod is not None:
        flags.append(f"--chmod={instr.chmod}")
    if instr.link:
        flags.append("--link")
    if isinstance(instr, Copy) and instr.parents:
        flags.append("--parents")
    flags.extend(f"--exclude={e}" for e in instr.exclude)
    if isinstance(instr, Add):
        if instr.checksum is not None:
            flags.append(f"--checksum={instr.checksum}")
        if instr.keep_git_dir:
            flags.append("--keep-git-dir")
        if instr.unpack is not None:
            flags.append(f"--unpack={str(instr.unpack).lower()}")
    words = [*(f"<<{d.name}" for d in instr.heredocs), *instr.sources, instr.dest]
    return " ".join([name, *flags, *(_quote(w) for w in words)])


def format_instruction(instr: Instruction) -> str:
    """One line that reads like the instruction (expanded if ``instr`` was)."""
    if isinstance(instr, From):
        text = "FROM "
        if instr.platform is not None:
            text += f"--platform={instr.platform} "
        text += instr.image
        return text + (f" AS {instr.alias}" if instr.alias else "")
    if isinstance(instr, Run):
        flags = [f"--mount={format_mount(m)}" for m in instr.mounts]
        if instr.network is not None:
            flags.append(f"--network={instr.network}")
        if instr.security is not None:
            flags.append(f"--security={instr.security}")
        return " ".join(["RUN", *flags, _args(instr.args, instr.shell)])
    if isinstance(instr, Copy | Add):
        return _copy_like(instr)
    if isinstance(instr, Cmd):
        return f"CMD {_args(instr.args, instr.shell)}"
    if isinstance(instr, Entrypoint):
        return f"ENTRYPOINT {_args(instr.args, instr.shell)}"
    if isinstance(instr, Shell):
        return f"SHELL {_args(instr.args, False)}"
    if isinstance(instr, Env | Label):
        name = "ENV" if isinstance(instr, Env) else "LABEL"
        return name + "".join(f" {_quote(k)}={_quote(v)}" for k, v in instr.pairs)
    if isinstance(instr, Arg):
        return "ARG" + "".join(
            f" {k}" if v is None else f" {k}={_quote(v)}" for k, v in instr.pairs
        )
    if isinstance(instr, Expose):
        return "EXPOSE " + " ".join(instr.ports)
    if isinstance(instr, Volume):
        return f"VOLUME {json.dumps(list(instr.paths), ensure_ascii=False)}"
    if isinstance(instr, User):
        return f"USER {instr.user}"
    if isinstance(instr, Workdir):
        return f"WORKDIR {instr.path}"
    if isinstance(instr, StopSignal):
        return f"STOPSIGNAL {instr.signal}"
    if isinstance(instr, Maintainer):
        return f"MAINTAINER {instr.name}"
    if isinstance(instr, Onbuild):
        return f"ONBUILD {instr.expression}"
    assert isinstance(instr, Healthcheck)
    test = instr.test or ("NONE",)
    if test[0] == "NONE":
        return "HEALTHCHECK NONE"
    flags = []
    for key, nanos in (
        ("interval", instr.interval),
        ("timeout", instr.timeout),
        ("start-period", instr.start_period),
        ("start-interval", instr.start_interval),
    ):
        if nanos is not None:
            flags.append(f"--{key}={nanos / 1e9:g}s")
    if instr.retries is not None:
        flags.append(f"--retries={instr.retries}")
    body = test[1] if test[0] == "CMD-SHELL" else json.dumps(list(test[1:]), ensure_ascii=False)
    return " ".join(["HEALTHCHECK", *flags, "CMD", body])
