"""ARG/ENV scoping and Docker's expansion of instruction fields.

Docker expands only some fields (FROM, COPY/ADD, ENV, ARG, LABEL, EXPOSE, USER,
WORKDIR, VOLUME, STOPSIGNAL and RUN ``--mount`` options) and leaves commands to the
shell. Which variables a field sees depends on where it is: FROM lines see the global
ARGs, a stage sees its declared ARGs and ENV (ENV wins). ``StageScope`` is that state
as an immutable value the executor threads through a stage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from pykaniko.dockerfile.instructions import (
    Add,
    Arg,
    Copy,
    Env,
    Expose,
    From,
    Instruction,
    Label,
    Mount,
    Run,
    StopSignal,
    User,
    Volume,
    Workdir,
    check_copy_flags,
)
from pykaniko.dockerfile.lexer import ExpansionError, expand_text, split_words
from pykaniko.dockerfile.stages import Dockerfile, Stage
from pykaniko.errors import DockerfileError, Location

__all__ = [
    "PLATFORM_ARGS",
    "PROXY_ARGS",
    "StageScope",
    "expand_word",
    "global_args",
    "platform_args",
]

PROXY_ARGS = (
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
)

PLATFORM_ARGS = (
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
)


def expand_word(
    word: str,
    env: Mapping[str, str],
    escape: str = "\\",
    *,
    location: Location | None = None,
) -> str:
    """Expands one word with Docker's shell-lexer rules; errors become DockerfileError."""
    try:
        return expand_text(word, env, escape)
    except ExpansionError as exc:
        raise DockerfileError(str(exc), location=location) from None


def platform_args(target_platform: str, build_platform: str) -> dict[str, str]:
    """The automatic TARGET*/BUILD* ARG values for ``os/arch[/variant]`` platforms."""
    values: dict[str, str] = {}
    for prefix, platform in (("TARGET", target_platform), ("BUILD", build_platform)):
        os_, _, rest = platform.partition("/")
        arch, _, variant = rest.partition("/")
        values[f"{prefix}PLATFORM"] = platform
        values[f"{prefix}OS"] = os_
        values[f"{prefix}ARCH"] = arch
        values[f"{prefix}VARIANT"] = variant
    return values


def global_args(
    dockerfile: Dockerfile,
    build_args: Mapping[str, str],
    target_platform: str,
    build_platform: str,
) -> dict[str, str | None]:
    """The global scope: platform ARGs, then the ARGs before the first FROM, in order."""
    scope: dict[str, str | None] = dict(platform_args(target_platform, build_platform))
    for arg in dockerfile.meta_args:
        env = {k: v for k, v in scope.items() if v is not None}
        updates: dict[str, str | None] = {}
        for key, default in arg.pairs:
            if key in build_args:
                updates[key] = build_args[key]
            elif default is not None:
                updates[key] = expand_word(default, env, dockerfile.escape, location=arg.location)
            else:
                updates[key] = scope.get(key)
        scope.update(updates)
    return scope


def _set(pairs: tuple[tuple[str, str], ...], key: str, value: str) -> tuple[tuple[str, str], ...]:
    if any(k == key for k, _ in pairs):
        return tuple((k, value if k == key else v) for k, v in pairs)
    return (*pairs, (key, value))


def _parse_env(image_env: Sequence[str]) -> tuple[tuple[str, str], ...]:
    pairs: tuple[tuple[str, str], ...] = ()
    for entry in image_env:
        key, _, value = entry.partition("=")
        if key:
            pairs = _set(pairs, key, value)
    return pairs


@dataclass(frozen=True, slots=True)
class StageScope:
    """The ARG/ENV state at one point of a stage."""

    escape: str
    env: tuple[tuple[str, str], ...]
    args: tuple[tuple[str, str | None], ...]
    global_args: tuple[tuple[str, str | None], ...]
    build_args: tuple[tuple[str, str], ...]

    @classmethod
    def start(
        cls,
        *,
        stage: Stage,
        dockerfile: Dockerfile,
        image_env: Sequence[str],
        build_args: Mapping[str, str],
        target_platform: str,
        build_platform: str,
        inherited: StageScope | None = None,
    ) -> StageScope:
        """The scope right after ``FROM``: base image env, plus the parent stage's ARGs."""
        del stage  # every stage starts the same way; kept for callers' clarity
        scope = global_args(dockerfile, build_args, target_platform, build_platform)
        return cls(
            escape=dockerfile.escape,
            env=_parse_env(image_env),
            args=inherited.args if inherited is not None else (),
            global_args=tuple(scope.items()),
            build_args=tuple(build_args.items()),
        )

    @property
    def declared_args(self) -> Mapping[str, str | None]:
        """ARGs declared so far with their values (None = declared, no value)."""
        return dict(self.args)

    def global_env(self) -> dict[str, str]:
        """What ``$VAR`` sees on a FROM line."""
        return {k: v for k, v in self.global_args if v is not None}

    def expansion_env(self) -> dict[str, str]:
        """What ``$VAR`` sees now: declared ARGs with a value, overridden by ENV."""
        env = {k: v for k, v in self.args if v is not None}
        env.update(self.env)
        return env

    def run_env(self, image_env: Sequence[str]) -> list[str]:
        """Env for RUN: the image env, then declared ARGs ENV does not set, then proxies."""
        pairs = _parse_env(image_env)
        names = {k for k, _ in pairs}
        out = [f"{k}={v}" for k, v in pairs]
        for key, value in self.args:
            if value is not None and key not in names:
                out.append(f"{key}={value}")
                names.add(key)
        for key, value in self.build_args:
            if key in PROXY_ARGS and key not in names:
                out.append(f"{key}={value}")
                names.add(key)
        return out

    def after(self, instr: Instruction) -> StageScope:
        """The scope after an (already expanded) ENV or ARG; unchanged for others."""
        if isinstance(instr, Env):
            env = self.env
            for key, text in instr.pairs:
                env = _set(env, key, text)
            return replace(self, env=env)
        if isinstance(instr, Arg):
            build = dict(self.build_args)
            glob = dict(self.global_args)
            args = dict(self.args)
            for key, default in instr.pairs:
                value: str | None
                if key in build:
                    value = build[key]
                elif default is not None:
                    value = default
                else:
                    value = glob.get(key)
                args.pop(key, None)
                args[key] = value
            return replace(self, args=tuple(args.items()))
        return self

    def expand(self, instr: Instruction) -> Instruction:
        """A copy of ``instr`` with the fields Docker expands expanded (others unchanged)."""
        loc = instr.location
        if isinstance(instr, From):
            genv = self.global_env()
            platform = instr.platform
            return replace(
                instr,
                image=self._word(instr.image, genv, loc),
                platform=None if platform is None else self._word(platform, genv, loc),
            )
        env = self.expansion_env()

        def word(text: str) -> str:
            return self._word(text, env, loc)

        def opt(text: str | None) -> str | None:
            return None if text is None else word(text)

        if isinstance(instr, Copy | Add):
            heredocs = tuple(
                replace(doc, content=self._heredoc(doc.content, env, loc)) if doc.expand else doc
                for doc in instr.heredocs
            )
            sources = tuple(word(s) for s in instr.sources)
            dest = word(instr.dest)
            exclude = tuple(word(e) for e in instr.exclude)
            if isinstance(instr, Copy):
                copy = replace(
                    instr,
                    sources=sources,
                    dest=dest,
                    from_=opt(instr.from_),
                    chown=opt(instr.chown),
                    chmod=opt(instr.chmod),
                    exclude=exclude,
                    heredocs=heredocs,
                )
                check_copy_flags(copy)
                return copy
            add = replace(
                instr,
                sources=sources,
                dest=dest,
                chown=opt(instr.chown),
                chmod=opt(instr.chmod),
                exclude=exclude,
                heredocs=heredocs,
                checksum=opt(instr.checksum),
            )
            check_copy_flags(add)
            return add
        if isinstance(instr, Env):
            return replace(instr, pairs=tuple((word(k), word(v)) for k, v in instr.pairs))
        if isinstance(instr, Label):
            return replace(instr, pairs=tuple((word(k), word(v)) for k, v in instr.pairs))
        if isinstance(instr, Arg):
            return self._expand_arg(instr, env)
        if isinstance(instr, Expose):
            ports: list[str] = []
            for port in instr.ports:
                try:
                    ports.extend(split_words(port, env, self.escape))
                except ExpansionError as exc:
                    raise DockerfileError(str(exc), location=loc) from None
            return replace(instr, ports=tuple(ports))
        if isinstance(instr, Volume):
            return replace(instr, paths=tuple(word(p) for p in instr.paths))
        if isinstance(instr, User):
            return replace(instr, user=word(instr.user))
        if isinstance(instr, Workdir):
            return replace(instr, path=word(instr.path))
        if isinstance(instr, StopSignal):
            return replace(instr, signal=word(instr.signal))
        if isinstance(instr, Run) and instr.mounts:
            return replace(instr, mounts=tuple(self._mount(m, env, loc) for m in instr.mounts))
        return instr

    def _expand_arg(self, instr: Arg, env: dict[str, str]) -> Arg:
        """ARG defaults, left to right: a default sees the ARGs before it on the line.

        A default that a build arg overrides is never needed, so its errors are ignored.
        """
        build = dict(self.build_args)
        env_names = {k for k, _ in self.env}
        pairs: list[tuple[str, str | None]] = []
        for key, default in instr.pairs:
            value = default
            if default is not None:
                try:
                    value = expand_text(default, env, self.escape)
                except ExpansionError as exc:
                    if key not in build:
                        raise DockerfileError(str(exc), location=instr.location) from None
            pairs.append((key, value))
            resolved = build.get(key, value)
            if resolved is None:
                resolved = dict(self.global_args).get(key)
            if resolved is not None and key not in env_names:
                env[key] = resolved
        return replace(instr, pairs=tuple(pairs))

    def _word(self, text: str, env: Mapping[str, str], loc: Location) -> str:
        return expand_word(text, env, self.escape, location=loc)

    def _heredoc(self, text: str, env: Mapping[str, str], loc: Location) -> str:
        try:
            return expand_text(text, env, self.escape, skip_quotes=True)
        except ExpansionError as exc:
            raise DockerfileError(str(exc), location=loc) from None

    def _mount(self, mount: Mount, env: Mapping[str, str], loc: Location) -> Mount:
        def opt(text: str | None) -> str | None:
            return None if text is None else self._word(text, env, loc)

        return replace(
            mount,
            target=self._word(mount.target, env, loc),
            source=opt(mount.source),
            from_=opt(mount.from_),
            id=opt(mount.id),
        )
