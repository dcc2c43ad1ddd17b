"""Kaniko-compatible command line: flags -> BuildOptions, errors, version, --dry-run."""

from __future__ import annotations

from pathlib import Path

import pytest

from pykaniko import __version__
from pykaniko.cli import main, parse_args
from pykaniko.errors import ConfigError
from pykaniko.executor import BuildOptions
from pykaniko.image.platform import Platform
from pykaniko.snapshot import SnapshotMode


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    c = tmp_path / "ctx"
    c.mkdir()
    (c / "Dockerfile").write_text("FROM scratch\nCOPY a.txt /a.txt\nENV X=1\n")
    (c / "a.txt").write_text("a")
    return c


def parse(ctx: Path, *argv: str, env: dict[str, str] | None = None) -> BuildOptions:
    base = ["--context", str(ctx), "--kaniko-dir", str(ctx.parent / "kaniko")]
    _, opts = parse_args([*base, *argv], env or {})
    return opts


def test_minimal_with_destination(ctx: Path) -> None:
    opts = parse(ctx, "--destination", "reg.example/app:1")
    assert opts.context == ctx
    assert opts.dockerfile == ctx / "Dockerfile"
    assert opts.outputs.destinations == ("reg.example/app:1",)
    assert not opts.outputs.no_push
    assert opts.snapshot_mode is SnapshotMode.FULL
    assert opts.ignore_var_run
    assert opts.work_dir == ctx.parent / "kaniko"


def test_no_destination_without_no_push_is_an_error(ctx: Path) -> None:
    with pytest.raises(ConfigError, match="destination"):
        parse(ctx)


def test_repeatable_flags(ctx: Path) -> None:
    opts = parse(
        ctx,
        "-d", "r/a:1", "--destination=r/a:2",
        "--label", "a=1", "--label=b=2=3",
        "--ignore-path", "/x", "--ignore-path=/y",
        "--insecure-registry", "r1", "--insecure-registry", "r2",
        "--skip-tls-verify-registry", "r3",
    )  # fmt: skip
    assert opts.outputs.destinations == ("r/a:1", "r/a:2")
    assert dict(opts.labels) == {"a": "1", "b": "2=3"}
    assert opts.ignore_paths == ("/x", "/y")
    assert opts.registry.insecure_registries == ("r1", "r2")
    assert opts.registry.skip_tls_verify_registries == ("r3",)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--no-push"], True),
        (["--no-push=true"], True),
        (["--no-push=True"], True),
        (["--no-push=1"], True),
        (["--no-push", "--no-push=false", "-d", "r/a"], False),
    ],
)
def test_bool_forms(ctx: Path, argv: list[str], expected: bool) -> None:
    assert parse(ctx, *argv).outputs.no_push is expected


def test_bool_defaults_true_can_be_turned_off(ctx: Path) -> None:
    assert parse(ctx, "--no-push", "--ignore-var-run=false").ignore_var_run is False
    assert parse(ctx, "--no-push", "--whitelist-var-run=false").ignore_var_run is False
    ns, _ = parse_args(
        ["-c", str(ctx), "--kaniko-dir", str(ctx), "--no-push", "--cache-run-layers=false"], {}
    )
    assert ns.cache_run_layers is False


def test_bool_flag_does_not_swallow_next_word(ctx: Path) -> None:
    _, opts = parse_args(["--no-push", "-c", str(ctx), "--kaniko-dir", str(ctx)], {})
    assert opts.outputs.no_push
    assert opts.context == ctx


def test_deprecated_spellings(ctx: Path) -> None:
    opts = parse(ctx, "--no-push", "--tarPath", "/tmp/out.tar", "--snapshotMode=redo")
    assert opts.outputs.tar_path == Path("/tmp/out.tar")
    assert opts.snapshot_mode is SnapshotMode.REDO


def test_outputs(ctx: Path) -> None:
    opts = parse(
        ctx,
        "-d", "r/a:1",
        "--tar-path=/o/img.tar", "--oci-layout-path=/o/layout",
        "--digest-file=/o/digest", "--image-name-with-digest-file=/o/n",
        "--image-name-tag-with-digest-file=/o/nt",
        "--compression=zstd", "--compression-level=9", "--reproducible",
    )  # fmt: skip
    o = opts.outputs
    assert o.tar_path == Path("/o/img.tar")
    assert o.oci_layout_path == Path("/o/layout")
    assert o.digest_file == Path("/o/digest")
    assert o.image_name_with_digest_file == Path("/o/n")
    assert o.image_name_tag_with_digest_file == Path("/o/nt")
    assert (o.compression, o.compression_level, o.reproducible) == ("zstd", 9, True)
    assert parse(ctx, "--no-push").outputs.compression_level is None
    # Kaniko applies a level only when > 0; 0 must not mean "gzip without compression"
    assert parse(ctx, "--no-push", "--compression-level=0").outputs.compression_level is None


def test_every_kaniko_flag_is_accepted(ctx: Path) -> None:
    for name in ("ca.pem", "c.pem", "k.pem"):
        (ctx / name).write_text("pem")
    argv = [
        "--dockerfile", str(ctx / "Dockerfile"),
        "--context-sub-path=",
        "--build-arg=A=1", "--target=final", "--skip-unused-stages",
        "--custom-platform=linux/arm64", "--label=k=v", "--force",
        "--annotation=org.opencontainers.image.source=x",
        "--git=branch=main", "--azure-container-registry-config=/dev/null",
        "--no-push", "--no-push-cache", "--push-retry=2",
        "--push-ignore-immutable-tag-errors", "--skip-push-permission-check",
        "--cleanup", "--force-build-metadata",
        "--cache", "--cache-repo=r/cache", "--cache-dir=/cache", "--cache-ttl=1h",
        "--cache-run-layers=true", "--cache-copy-layers", "--compressed-caching=false",
        "--snapshot-mode=time", "--single-snapshot", "--use-new-run",
        "--image-fs-extract-retry=1",
        "--insecure", "--insecure-pull", "--skip-tls-verify", "--skip-tls-verify-pull",
        f"--registry-certificate=r={ctx}/ca.pem",
        f"--registry-client-cert=r={ctx}/c.pem,{ctx}/k.pem",
        "--registry-mirror=mirror.example", "--registry-map=index.docker.io=m.example",
        "--skip-default-registry-fallback", "--image-download-retry=3",
        "-v=debug", "--log-format=json", "--log-timestamp",
    ]  # fmt: skip
    opts = parse(ctx, *argv)
    assert opts.target == "final"
    assert opts.platform == Platform("linux", "arm64")
    assert (opts.skip_unused_stages, opts.single_snapshot, opts.use_new_run) == (True,) * 3
    assert opts.force_build_metadata
    assert opts.snapshot_mode is SnapshotMode.TIME
    r = opts.registry
    assert (r.insecure, r.insecure_pull, r.skip_tls_verify, r.skip_tls_verify_pull) == (True,) * 4
    assert dict(r.registry_certificates) == {"r": f"{ctx}/ca.pem"}
    assert dict(r.registry_client_certs) == {"r": (f"{ctx}/c.pem", f"{ctx}/k.pem")}
    assert r.mirrors == ("mirror.example",)
    assert r.skip_default_registry_fallback
    assert (r.image_download_retry, r.push_retry) == (3, 2)
    assert r.skip_push_permission_check


def test_build_arg_forms(ctx: Path) -> None:
    opts = parse(
        ctx,
        "--no-push",
        "--build-arg", "A=1",
        "--build-arg", "B=",
        "--build-arg", "FROM_ENV",
        "--build-arg", "NOT_IN_ENV",
        "--build-arg", "C=x=y",
        env={"FROM_ENV": "env-value"},
    )  # fmt: skip
    assert dict(opts.build_args) == {"A": "1", "B": "", "FROM_ENV": "env-value", "C": "x=y"}


@pytest.mark.parametrize("value", ["true", "1", "TRUE"])
def test_kaniko_no_push_env(ctx: Path, value: str) -> None:
    assert parse(ctx, env={"KANIKO_NO_PUSH": value}).outputs.no_push


def test_kaniko_no_push_env_false_still_needs_destination(ctx: Path) -> None:
    with pytest.raises(ConfigError, match="destination"):
        parse(ctx, env={"KANIKO_NO_PUSH": "false"})


def test_registry_mirror_env(ctx: Path) -> None:
    env = {"KANIKO_REGISTRY_MIRROR": "m1.example;m2.example"}
    assert parse(ctx, "--no-push", env=env).registry.mirrors == ("m1.example", "m2.example")
    # Kaniko adds the variable to the flags
    opts = parse(ctx, "--no-push", "--registry-mirror=f.example", env=env)
    assert opts.registry.mirrors == ("f.example", "m1.example", "m2.example")


def test_registry_map(ctx: Path) -> None:
    opts = parse(
        ctx,
        "--no-push",
        "--registry-map=index.docker.io=a.example;index.docker.io=b.example/pfx",
        "--registry-map=gcr.io=c.example",
        env={"KANIKO_REGISTRY_MAP": "quay.io=d.example"},
    )
    maps = dict(opts.registry.registry_maps)
    assert maps["docker.io"] == ("a.example", "b.example/pfx")  # Hub, normalised
    assert maps["gcr.io"] == ("c.example",)
    assert maps["quay.io"] == ("d.example",)


def test_registry_map_hub_spellings_are_one_key(ctx: Path) -> None:
    opts = parse(ctx, "--no-push", "--registry-map=docker.io=a.example;index.docker.io=b.example")
    assert dict(opts.registry.registry_maps) == {"docker.io": ("a.example", "b.example")}


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--no-push=maybe"], "--no-push"),
        (["--push-retry=many"], "--push-retry"),
        (["--compression=lz4"], "--compression"),
        (["--snapshot-mode=fast"], "--snapshot-mode"),
        (["--label=novalue"], "--label"),
        (["--registry-map=nohost"], "--registry-map"),
        (["--registry-certificate=x"], "--registry-certificate"),
        (["--registry-client-cert=r=/only-cert"], "--registry-client-cert"),
        (["--custom-platform=linux"], "linux"),
        (["--secret=id=x"], "--secret"),
        (["--bogus-flag"], "--bogus-flag"),
        (["--context=gs://bucket/ctx.tgz"], "--context"),
        (["--bucket=my-bucket"], "--bucket"),
        (["--dockerfile=missing/Dockerfile"], "--dockerfile"),
        (["--git=nokv"], "--git"),
        (["--verbosity=loud"], "--verbosity"),
        (["--log-format=xml"], "--log-format"),
    ],
)
def test_bad_values_name_the_flag(ctx: Path, argv: list[str], flag: str) -> None:
    with pytest.raises(ConfigError, match=flag):
        parse(ctx, "--no-push", *argv)


def test_context_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--context"):
        parse_args(["--no-push", "-c", str(tmp_path / "nope"), "--kaniko-dir", "/tmp"], {})


def test_dir_context_prefix_and_sub_path(ctx: Path) -> None:
    sub = ctx / "sub"
    sub.mkdir()
    (sub / "Dockerfile").write_text("FROM scratch\n")
    opts = parse(ctx, "--no-push", f"--context=dir://{ctx}", "--context-sub-path=sub")
    assert opts.context == sub
    assert opts.dockerfile == sub / "Dockerfile"


def test_secrets(ctx: Path) -> None:
    opts = parse(ctx, "--no-push", "--secret=id=a,src=/run/a", "--secret", "id=b,env=TOKEN")
    assert [(s.id, s.path, s.env) for s in opts.secrets] == [
        ("a", "/run/a", None),
        ("b", None, "TOKEN"),
    ]


def test_kaniko_dir_env(ctx: Path) -> None:
    _, opts = parse_args(["--no-push", "-c", str(ctx)], {"KANIKO_DIR": str(ctx / "kd")})
    assert opts.work_dir == ctx / "kd"


def test_version_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert __version__ in capsys.readouterr().out
    assert main(["--version"]) == 0


def test_main_bad_flag_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--no-push", "--push-retry=x"]) == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert "--push-retry" in lines[0]
    assert "Traceback" not in err


def test_main_missing_destination(capsys: pytest.CaptureFixture[str], ctx: Path) -> None:
    assert main(["-c", str(ctx), "--kaniko-dir", str(ctx.parent / "k")]) == 1
    assert capsys.readouterr().err.startswith("error: no --destination given")


def test_main_dry_run_prints_plan(capsys: pytest.CaptureFixture[str], ctx: Path) -> None:
    rc = main(["--dry-run", "--no-push", "-c", str(ctx), "--kaniko-dir", str(ctx.parent / "k")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "FROM scratch" in out
    assert "COPY a.txt /a.txt" in out
    assert "ENV X=1" in out
