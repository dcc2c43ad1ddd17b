"""Cache keys are pure, unambiguous and pinned: a key that changes by accident silently
throws away every user's cache, so the golden values below must only move on purpose
(and then with ``KEY_VERSION``). The chain tests compute the keys of a real Dockerfile
from a real context, with the registry replaced by fixed digests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pykaniko.dockerfile import DockerIgnore, ImageBase, StageBase, StageScope, parse_dockerfile
from pykaniko.errors import ConfigError
from pykaniko.executor.cache import (
    KeyInputs,
    StageKeys,
    cache_repository,
    copy_key,
    parse_ttl,
    run_key,
    seed_key,
    stage_keys,
    volume_key,
    workdir_key,
)
from pykaniko.executor.cache.sources import context_digest, tree_digest
from pykaniko.executor.copy import CopyRequest, SourceTree
from pykaniko.executor.options import BuildOptions
from pykaniko.executor.prepare import PreparedStage, prepare_stage, scratch_config
from pykaniko.image.platform import Platform
from pykaniko.image.reference import parse_reference

AMD64 = Platform("linux", "amd64")
DIGEST = "sha256:" + "0" * 64


def test_golden_keys() -> None:
    seed = seed_key(DIGEST, AMD64)
    assert seed == "d061d4dbc9da3508733febf93db70dbf667fca947fd2478d02f804653e5e1ade"
    run = run_key(
        seed, "RUN true", env=["B=2", "A=1"], user="", workdir="/", shell=("/bin/sh", "-c")
    )
    assert run == "e274fc35c265066d43e8935e401f0ac509037fd2358599bccfd3bdbf9da2f215"
    assert run == run_key(
        seed, "RUN true", env=["A=1", "B=2"], user="", workdir="/", shell=("/bin/sh", "-c")
    )
    copy = copy_key(run, "COPY a /a", workdir="/", sources=[("context", DIGEST)])
    assert copy == "60fc125e99f08688361d7f0c5374002c75f8cc1737cb3d2ff56ab412134f2ec9"
    workdir = workdir_key(copy, "/app", "")
    assert workdir == "9455621011b5fd820c879afc61bdf7e5d63492652ad6f98359ce77c51a2e6b47"
    volume = volume_key(copy, ["/b", "/a"])
    assert volume == "1f8c012e0793def177fbdbf8440ce091ce7bc6f23afee5646fec501d1f3b3c00"
    assert volume == volume_key(copy, ["/a", "/b"])


def test_keys_change_with_every_input() -> None:
    seed = seed_key("scratch", AMD64)
    sh = ("/bin/sh", "-c")
    base = run_key(seed, "RUN x", env=["A=1"], user="", workdir="/", shell=sh)
    variants = {
        seed_key("scratch", Platform("linux", "arm64")),
        seed_key("scratch", AMD64, layer_options=["mtime-clamp=0"]),
        run_key(seed, "RUN y", env=["A=1"], user="", workdir="/", shell=sh),
        run_key(seed, "RUN x", env=["A=2"], user="", workdir="/", shell=sh),
        run_key(seed, "RUN x", env=["A=1"], user="app", workdir="/", shell=sh),
        run_key(seed, "RUN x", env=["A=1"], user="", workdir="/app", shell=sh),
        run_key(seed, "RUN x", env=["A=1"], user="", workdir="/", shell=("/bin/bash", "-c")),
        run_key(seed, "RUN x", env=["A=1"], user="", workdir="/", shell=sh, mounts=[("/m", "d")]),
        run_key(base, "RUN x", env=["A=1"], user="", workdir="/", shell=sh),
        copy_key(seed, "RUN x", workdir="/", sources=()),
        workdir_key(seed, "/app", ""),
        workdir_key(seed, "/app", "app"),
    }
    assert len(variants) == 12
    assert base not in variants
    assert seed not in variants
    # no ambiguity between fields
    assert copy_key(seed, "a", workdir="b", sources=()) != copy_key(
        seed, "ab", workdir="", sources=()
    )


def _ctx(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    (ctx / "src" / "sub").mkdir(parents=True)
    (ctx / "src" / "a.txt").write_text("a\n")
    (ctx / "src" / "sub" / "b.txt").write_text("b\n")
    (ctx / "src" / "link").symlink_to("a.txt")
    (ctx / "top.txt").write_text("top\n")
    for path in ctx.rglob("*"):  # whatever the umask: the golden keys see modes
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    ctx.chmod(0o755)
    return ctx


def _digest(ctx: Path, *sources: str, chmod: int | None = None, ignore: str = "") -> str:
    matcher = DockerIgnore.parse(ignore) if ignore else None
    tree = SourceTree(root=ctx, ignored=matcher.matches if matcher else None)
    req = CopyRequest(sources=sources, dest="/dst/", workdir="/", chmod=chmod)
    return context_digest(tree, req)


def test_context_digest_ignores_timestamps_and_owners(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    before = _digest(ctx, "src", "top.txt")
    for path in (ctx / "src" / "a.txt", ctx / "src" / "sub", ctx / "top.txt"):
        os.utime(path, (1, 1))
        os.chown(path, 1234, 1234)
    clone = tmp_path / "clone"  # a fresh CI checkout: same content, new mtimes
    shutil.copytree(ctx, clone, symlinks=True, copy_function=shutil.copyfile)
    for f in clone.rglob("*"):
        if not f.is_symlink():
            os.chmod(f, (ctx / f.relative_to(clone)).stat().st_mode)
    assert _digest(ctx, "src", "top.txt") == before
    assert _digest(clone, "src", "top.txt") == before


@pytest.mark.parametrize(
    "change",
    ["content", "mode", "rename", "symlink", "new file", "delete"],
)
def test_context_digest_sees_what_reaches_the_image(tmp_path: Path, change: str) -> None:
    ctx = _ctx(tmp_path)
    before = _digest(ctx, "src")
    a = ctx / "src" / "a.txt"
    match change:
        case "content":
            a.write_text("A\n")  # one byte
        case "mode":
            a.chmod(0o600)
        case "rename":
            a.rename(ctx / "src" / "c.txt")
        case "symlink":
            (ctx / "src" / "link").unlink()
            (ctx / "src" / "link").symlink_to("sub/b.txt")
        case "new file":
            (ctx / "src" / "sub" / "new").write_text("")
        case "delete":
            (ctx / "src" / "sub" / "b.txt").unlink()
        case _:
            raise AssertionError(change)
    assert _digest(ctx, "src") != before


def test_context_digest_follows_ignore_rules_and_chmod(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    ignored = _digest(ctx, "src", ignore="src/sub")
    (ctx / "src" / "sub" / "b.txt").write_text("changed\n")
    assert _digest(ctx, "src", ignore="src/sub") == ignored  # never copied
    with_chmod = _digest(ctx, "src", chmod=0o644)
    (ctx / "src" / "a.txt").chmod(0o600)
    assert _digest(ctx, "src", chmod=0o644) == with_chmod  # --chmod replaces the mode
    assert _digest(ctx, "src") != with_chmod


def test_tree_digest_of_a_bind_source(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    before = tree_digest(ctx / "src")
    os.utime(ctx / "src" / "a.txt", (5, 5))
    assert tree_digest(ctx / "src") == before
    (ctx / "src" / "a.txt").write_text("x")
    assert tree_digest(ctx / "src") != before


DOCKERFILE = """\
FROM scratch AS base
ARG V=1
RUN echo one
WORKDIR /app
RUN echo two
COPY src/ ./src/
LABEL not=keyed
RUN --mount=type=bind,source=top.txt,target=/t cat /t
COPY --from=img /etc/passwd /p
FROM base
ENV X=1
RUN echo $X
"""


def _keys(ctx: Path, text: str = DOCKERFILE, **options: object) -> list[StageKeys]:
    (ctx / "Dockerfile").write_text(text)
    opts = BuildOptions(context=ctx, dockerfile=ctx / "Dockerfile", **options)  # type: ignore[arg-type]
    df = parse_dockerfile(text)
    out: list[StageKeys] = []
    prepared: list[PreparedStage] = []

    def resolve(stage: int, value: str) -> StageBase | ImageBase:
        del stage
        return ImageBase(value, None) if value == "img" else StageBase(int(value))

    inputs = KeyInputs(
        options=opts,
        context_ignored=None,
        context_has_exceptions=False,
        resolve_from=resolve,
        stage_key=lambda i: out[i].final,
        image_digest=lambda ref: DIGEST,
        url_digest=lambda url: DIGEST,
    )
    for stage in df.stages:
        scope_base: tuple[str, ...] = ()
        inherited: StageScope | None = None
        if stage.index == 0:
            base = scratch_config(opts)
        else:
            base = prepared[0].final_config
            scope_base, inherited = base.config.env, prepared[0].final_scope
        scope = StageScope.start(
            stage=stage,
            dockerfile=df,
            image_env=scope_base,
            build_args={},
            target_platform="linux/amd64",
            build_platform="linux/amd64",
            inherited=inherited,
        )
        p = prepare_stage(
            opts, df, index=stage.index, instructions=stage.instructions, base=base, scope=scope
        )
        prepared.append(p)
        seed = seed_key("scratch", AMD64) if stage.index == 0 else out[0].final
        out.append(stage_keys(seed, p, inputs))
    return out


def test_chain_is_deterministic_and_pinned(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    first = _keys(ctx)
    clone = tmp_path / "clone"
    shutil.copytree(ctx, clone, symlinks=True)
    for f in clone.rglob("*"):
        os.utime(f, (7, 7), follow_symlinks=False)
    second = _keys(clone)
    assert [k.steps for k in first] == [k.steps for k in second]
    # pins the instruction encoding too (every expanded field, no line numbers)
    assert first[1].final == "1de0e7153f5fc29ccc1be2c88f22389c5ea0dcde7187fba901acef23cbf81897"
    # RUN, WORKDIR, RUN, COPY, RUN, COPY in stage 0; LABEL and ARG are not keyed
    assert sorted(first[0].steps) == [2, 3, 4, 5, 7, 8]
    assert [first[0].steps[n].cached for n in (2, 3, 4, 5, 7, 8)] == [
        True, True, True, False, True, False,
    ]  # fmt: skip


def test_one_changed_byte_rekeys_exactly_the_later_steps(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    before = _keys(ctx)
    (ctx / "src" / "sub" / "b.txt").write_text("c\n")
    after = _keys(ctx)
    same = [n for n in before[0].steps if before[0].steps[n] == after[0].steps[n]]
    assert same == [2, 3, 4]  # before the COPY
    assert all(before[1].steps[n] != after[1].steps[n] for n in before[1].steps)
    (ctx / "top.txt").write_text("bound\n")  # only read by the RUN's bind mount
    bound = _keys(ctx)
    assert [n for n in after[0].steps if after[0].steps[n] == bound[0].steps[n]] == [2, 3, 4, 5]


def test_label_and_proxy_args_do_not_rekey(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    before = _keys(ctx)
    relabelled = _keys(ctx, DOCKERFILE.replace("not=keyed", "other=value"))
    assert [k.steps for k in before] == [k.steps for k in relabelled]
    proxied = _keys(ctx, build_args={"HTTP_PROXY": "http://proxy:3128"})
    assert [k.steps for k in before] == [k.steps for k in proxied]
    changed = _keys(ctx, DOCKERFILE.replace("V=1", "V=2"))
    assert changed[0].steps[2] != before[0].steps[2]  # a declared ARG reaches RUN's env


def test_unreadable_input_ends_the_chain(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    shutil.rmtree(ctx / "src")
    keys = _keys(ctx)
    assert sorted(keys[0].steps) == [2, 3, 4]
    assert keys[0].final is None
    assert "step 5" in (keys[0].broken or "")
    assert keys[1].final is None
    assert not keys[1].steps


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("336h", 336 * 3600), ("90m", 5400), ("1h30m", 5400), ("45s", 45), ("1.5h", 5400)],
)
def test_parse_ttl(text: str, seconds: float) -> None:
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "1d", "h1", "1h x"])
def test_parse_ttl_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="--cache-ttl"):
        parse_ttl(text)


def test_cache_repository() -> None:
    dest = parse_reference("reg.example:5000/team/app:1")
    assert str(cache_repository("", [dest], no_push=False)).startswith(
        "reg.example:5000/team/app/cache"
    )
    with pytest.raises(ConfigError, match="--cache-repo"):
        cache_repository("", [dest], no_push=True)
    assert cache_repository("oci:/tmp/x", [dest], no_push=False) == Path("/tmp/x")
    with pytest.raises(ConfigError, match="oci"):
        cache_repository("oci:", [dest], no_push=False)
