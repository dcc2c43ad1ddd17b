"""Config transforms for the metadata instructions, one pure function per instruction,
and the ``created_by`` text Docker (BuildKit) writes into history for each step."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace

from pykaniko.dockerfile import (
    Arg,
    Cmd,
    Entrypoint,
    Env,
    Expose,
    Healthcheck,
    Label,
    Maintainer,
    Onbuild,
    Shell,
    StopSignal,
    User,
    Volume,
)
from pykaniko.errors import BuildError
from pykaniko.image.config import ContainerConfig, ImageConfig
from pykaniko.image.config import Healthcheck as ConfigHealthcheck

__all__ = [
    "DEFAULT_PATH",
    "DEFAULT_SHELL",
    "MetadataInstruction",
    "apply_metadata",
    "created_by_metadata",
    "expose_ports",
    "run_created_by",
]

DEFAULT_SHELL = ("/bin/sh", "-c")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

MetadataInstruction = (
    Env
    | Arg
    | Label
    | Expose
    | Volume
    | User
    | Cmd
    | Entrypoint
    | Shell
    | StopSignal
    | Healthcheck
    | Onbuild
    | Maintainer
)

_SIGNALS = {
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "IOT", "BUS", "FPE", "KILL", "USR1", "SEGV",
    "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CLD", "CONT", "STOP", "TSTP", "TTIN",
    "TTOU", "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "POLL", "PWR", "SYS",
    "UNUSED", "RTMIN", "RTMAX",
}  # fmt: skip
_PORT = re.compile(r"^(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp))?$", re.IGNORECASE)


def expose_ports(specs: Sequence[str]) -> list[str]:
    """Docker's port list: default protocol tcp, ranges expanded, sctp accepted."""
    out: list[str] = []
    for spec in specs:
        m = _PORT.match(spec.strip())
        if not m:
            raise BuildError(f"EXPOSE: invalid port {spec!r}")
        start = int(m.group(1))
        end = int(m.group(2) or start)
        proto = (m.group(3) or "tcp").lower()
        if not 0 < start <= end <= 65535:
            raise BuildError(f"EXPOSE: invalid port range {spec!r}")
        out.extend(f"{port}/{proto}" for port in range(start, end + 1))
    return out


def _command(args: Sequence[str], shell: bool, cfg: ContainerConfig) -> tuple[str, ...]:
    if not shell:
        return tuple(args)
    return (*(cfg.shell or DEFAULT_SHELL), args[0])


def _check_signal(sig: str) -> str:
    name = sig.upper().removeprefix("SIG")
    # moby's signal.ParseSignal: a non-zero number, or a name from its Linux map
    if (sig.isdigit() and int(sig) != 0) or name in _SIGNALS:
        return sig
    m = re.fullmatch(r"RTMIN\+(\d+)|RTMAX-(\d+)", name)
    if m and 1 <= int(m.group(1) or m.group(2)) <= 15:
        return sig
    raise BuildError(f"STOPSIGNAL: invalid signal {sig!r}")


def apply_metadata(
    config: ImageConfig, instr: MetadataInstruction, *, cmd_set: bool = False
) -> ImageConfig:
    """The config after one (already expanded) metadata instruction."""
    cfg = config.config
    match instr:
        case Env(pairs=pairs):
            for key, value in pairs:
                cfg = cfg.with_env(key, value)
        case Arg():
            pass
        case Label(pairs=pairs):
            cfg = replace(cfg, labels={**cfg.labels, **dict(pairs)})
        case Expose(ports=ports):
            merged = list(cfg.exposed_ports)
            merged += [p for p in expose_ports(ports) if p not in merged]
            cfg = replace(cfg, exposed_ports=tuple(merged))
        case Volume(paths=paths):
            vols = list(cfg.volumes)
            vols += [p for p in paths if p not in vols]
            cfg = replace(cfg, volumes=tuple(vols))
        case User(user=user):
            cfg = replace(cfg, user=user)
        case Cmd(args=args, shell=shell):
            # BuildKit marks every CMD ArgsEscaped (kept for Docker image-spec compatibility)
            cfg = replace(cfg, cmd=_command(args, shell, cfg), args_escaped=True)
        case Entrypoint(args=args, shell=shell):
            # Docker: a new ENTRYPOINT resets an inherited CMD unless this stage set one
            cfg = replace(
                cfg,
                entrypoint=_command(args, shell, cfg),
                cmd=cfg.cmd if cmd_set else None,
            )
        case Shell(args=args):
            if not args:
                raise BuildError("SHELL requires at least one argument")
            cfg = replace(cfg, shell=tuple(args))
        case StopSignal(signal=sig):
            cfg = replace(cfg, stop_signal=_check_signal(sig))
        case Healthcheck():
            cfg = replace(cfg, healthcheck=_health(instr))
        case Onbuild(expression=expression):
            cfg = replace(cfg, on_build=(*cfg.on_build, expression))
        case Maintainer(name=name):
            return replace(config, author=name)
    return replace(config, config=cfg)


def _health(instr: Healthcheck) -> ConfigHealthcheck:
    test = instr.test or ("NONE",)
    if test == ("NONE",):
        return ConfigHealthcheck(test=("NONE",))
    return ConfigHealthcheck(
        test=test,
        interval=instr.interval if instr.interval is not None else 0,
        timeout=instr.timeout if instr.timeout is not None else 0,
        start_period=instr.start_period if instr.start_period is not None else 0,
        start_interval=instr.start_interval if instr.start_interval is not None else 0,
        retries=instr.retries if instr.retries is not None else 0,
    )


def created_by_metadata(instr: MetadataInstruction, config: ContainerConfig) -> str:
    """History text as BuildKit writes it for a metadata step."""
    match instr:
        case Env(pairs=pairs):
            return "ENV " + " ".join(f"{k}={v}" for k, v in pairs)
        case Arg(pairs=pairs):
            return "ARG " + " ".join(k if v is None else f"{k}={v}" for k, v in pairs)
        case Label(pairs=pairs):
            return "LABEL " + " ".join(f"{k}={v}" for k, v in pairs)
        case Expose(ports=ports):
            # Go prints the port map with its keys sorted
            ports_text = " ".join(f"{p}:{{}}" for p in sorted(set(expose_ports(ports))))
            return f"EXPOSE map[{ports_text}]"
        case Volume(paths=paths):
            return "VOLUME [" + " ".join(paths) + "]"
        case User(user=user):
            return f"USER {user}"
        case Cmd():
            return "CMD " + _go_quoted(config.cmd or ())
        case Entrypoint():
            return "ENTRYPOINT " + _go_quoted(config.entrypoint or ())
        case Shell(args=args):
            return "SHELL [" + " ".join(args) + "]"
        case StopSignal(signal=sig):
            return f"STOPSIGNAL {sig}"
        case Healthcheck():
            test = config.healthcheck.test if config.healthcheck else ("NONE",)
            return "HEALTHCHECK " + json.dumps(list(test))
        case Onbuild(expression=expression):
            return f"ONBUILD {expression}"
        case Maintainer(name=name):
            return f"MAINTAINER {name}"


def _go_quoted(items: Sequence[str]) -> str:
    """Go's ``fmt.Sprintf("%q", []string{...})``: ``["a" "b c"]``."""
    return "[" + " ".join(json.dumps(item, ensure_ascii=False) for item in items) + "]"


def run_created_by(argv: Sequence[str], args: Mapping[str, str]) -> str:
    """``RUN |N K=V ... <argv> # buildkit`` as Docker records a RUN step; the build
    args in the order they were declared, as BuildKit lists them."""
    prefix = ""
    if args:
        prefix = f"|{len(args)} " + " ".join(f"{k}={v}" for k, v in args.items()) + " "
    return f"RUN {prefix}{' '.join(argv)} # buildkit"
