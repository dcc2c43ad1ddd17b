"""The first real path: Dockerfile -> chroot RUN/COPY -> layers -> a real registry, read
back by skopeo and umoci (independent readers), plus the failure modes a CI user sees."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.e2e.conftest import run_pykaniko
from tests.support.readers import pull_to_oci, run_tool, skopeo_inspect, umoci_unpack
from tests.support.registry import RegistryServer

pytestmark = [pytest.mark.e2e, pytest.mark.root]


def _build(ctx: Path, dest: str, kaniko_dir: Path, *extra: str) -> tuple[int, str]:
    result = run_pykaniko(
        [
            "--context", str(ctx), "--dockerfile", str(ctx / "Dockerfile"),
            "--destination", dest, "--insecure", "--insecure-pull",
            "--kaniko-dir", str(kaniko_dir), *extra,
        ]
    )  # fmt: skip
    return result.status, result.stderr


def _unpack(ref: str, tmp_path: Path) -> Path:
    layout, tag = pull_to_oci(ref, tmp_path / "oci")
    return umoci_unpack(layout, tag, tmp_path / "bundle")


def test_run_copy_env_workdir_cmd(
    busybox_image: str, registry: RegistryServer, tmp_path: Path, kaniko_dir: Path
) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "conf" / "sub").mkdir(parents=True)
    (ctx / "hello.txt").write_text("hello\n")
    (ctx / "conf" / "a.conf").write_text("a=1\n")
    (ctx / "conf" / "sub" / "b.conf").write_text("b=2\n")
    os.chmod(ctx / "conf" / "a.conf", 0o640)
    os.utime(ctx / "hello.txt", (1_600_000_000, 1_600_000_000))
    (ctx / "Dockerfile").write_text(
        f"FROM {busybox_image}\n"
        "ENV APP_HOME=/srv/app GREETING=hi\n"
        "WORKDIR $APP_HOME\n"
        "COPY hello.txt ./\n"
        "COPY conf /etc/app/\n"
        'RUN echo "$GREETING from $(pwd) as $(id -u)" > built.txt && rm /etc/os-release\n'
        'CMD ["cat", "/srv/app/built.txt"]\n'
    )
    dest = f"{registry.host}/e2e/first:1"
    status, stderr = _build(ctx, dest, kaniko_dir)
    assert status == 0, stderr

    info = skopeo_inspect(dest)
    # busybox base layer + WORKDIR (creates /srv/app) + 2 COPY + 1 RUN
    assert len(info["Layers"]) == 5
    config = skopeo_inspect(dest, config=True)
    assert config["config"]["Cmd"] == ["cat", "/srv/app/built.txt"]
    assert config["config"]["WorkingDir"] == "/srv/app"
    assert "APP_HOME=/srv/app" in config["config"]["Env"]
    history = config["history"]
    assert [h.get("empty_layer", False) for h in history[-6:]] == [
        True, False, False, False, False, True,
    ]  # fmt: skip
    assert config["architecture"]
    assert config["os"] == "linux"

    rootfs = _unpack(dest, tmp_path)
    assert (rootfs / "srv/app/built.txt").read_text() == "hi from /srv/app as 0\n"
    hello = rootfs / "srv/app/hello.txt"
    assert hello.read_text() == "hello\n"
    assert hello.stat().st_mtime == 1_600_000_000
    assert (hello.stat().st_uid, hello.stat().st_gid) == (0, 0)
    assert stat.S_IMODE((rootfs / "etc/app/a.conf").stat().st_mode) == 0o640
    assert (rootfs / "etc/app/sub/b.conf").read_text() == "b=2\n"
    assert not (rootfs / "etc/os-release").exists()  # whiteout applied by umoci
    assert (rootfs / "bin/busybox").is_file()
    for host_file in ("etc/resolv.conf", "etc/hostname"):
        assert not (rootfs / host_file).exists(), f"{host_file} leaked into the image"


def test_from_scratch_copy(registry: RegistryServer, tmp_path: Path, kaniko_dir: Path) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "data").mkdir(parents=True)
    (ctx / "data" / "x.bin").write_bytes(os.urandom(4096))
    (ctx / "Dockerfile").write_text('FROM scratch\nCOPY data /data\nCMD ["/nothing"]\n')
    dest = f"{registry.host}/e2e/scratch:1"
    status, stderr = _build(ctx, dest, kaniko_dir)
    assert status == 0, stderr
    info = skopeo_inspect(dest)
    assert len(info["Layers"]) == 1
    rootfs = _unpack(dest, tmp_path)
    assert (rootfs / "data/x.bin").read_bytes() == (ctx / "data" / "x.bin").read_bytes()


def test_multistage_target(
    busybox_image: str, registry: RegistryServer, tmp_path: Path, kaniko_dir: Path
) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM {busybox_image} AS build\n"
        "RUN echo artefact > /out.txt\n"
        f"FROM {busybox_image} AS unused\n"
        "RUN exit 3\n"
        "FROM build AS production\n"
        "RUN cat /out.txt > /copy.txt\n"
        f"FROM {busybox_image}\n"
        "RUN exit 4\n"
    )
    dest = f"{registry.host}/e2e/multi:1"
    status, stderr = _build(ctx, dest, kaniko_dir, "--target", "production", "--skip-unused-stages")
    assert status == 0, stderr
    rootfs = _unpack(dest, tmp_path)
    assert (rootfs / "copy.txt").read_text() == "artefact\n"


def test_failing_run_exits_with_its_status(
    busybox_image: str, registry: RegistryServer, tmp_path: Path, kaniko_dir: Path
) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {busybox_image}\nRUN echo before\nRUN exit 7\n")
    status, stderr = _build(ctx, f"{registry.host}/e2e/fail:1", kaniko_dir)
    assert status == 7
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: Dockerfile:3: RUN exit 7"), stderr
    assert "non-zero code: 7" in last
    assert "Traceback" not in stderr


def test_bad_dockerfile_is_a_located_one_line_error(
    registry: RegistryServer, tmp_path: Path, kaniko_dir: Path
) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\nRUNN echo hi\n")
    status, stderr = _build(ctx, f"{registry.host}/e2e/bad:1", kaniko_dir)
    assert status == 1
    assert stderr.strip() == 'error: Dockerfile:2: unknown instruction "RUNN" (did you mean RUN?)'


def test_missing_base_image_names_the_registry(
    registry: RegistryServer, tmp_path: Path, kaniko_dir: Path
) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {registry.host}/no/such:image\nRUN true\n")
    status, stderr = _build(ctx, f"{registry.host}/e2e/missing:1", kaniko_dir)
    assert status == 1
    assert registry.host in stderr
    assert "no/such" in stderr
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr


def test_annotations_and_zstd(registry: RegistryServer, tmp_path: Path, kaniko_dir: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "f.txt").write_text("zstd layer\n")
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY f.txt /\n")
    dest = f"{registry.host}/e2e/annotated:1"
    status, stderr = _build(
        ctx, dest, kaniko_dir, "--annotation", "org.example.key=value", "--compression=zstd"
    )
    assert status == 0, stderr
    raw = skopeo_inspect(dest, raw=True)
    assert raw["annotations"] == {"org.example.key": "value"}
    assert raw["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert raw["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd"
    # umoci 0.4 cannot read zstd: skopeo (which can) recompresses it to gzip first
    layout = tmp_path / "oci"
    run_tool(
        [
            "skopeo", "copy", "-q", "--src-tls-verify=false", "--dest-compress",
            "--dest-compress-format=gzip", f"docker://{dest}", f"oci:{layout}:image",
        ]
    )  # fmt: skip
    rootfs = umoci_unpack(layout, "image", tmp_path / "bundle")
    assert (rootfs / "f.txt").read_text() == "zstd layer\n"
