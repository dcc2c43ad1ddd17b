"""Instruction semantics end to end: what Docker/BuildKit would put in the image, read back
with skopeo and umoci. Cases buildah cannot judge (heredocs, ONBUILD, RUN mounts,
SHELL) are checked against expected files and config here."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

import pykaniko
from tests.e2e.conftest import run_pykaniko
from tests.support.readers import pull_to_oci, skopeo_inspect, umoci_unpack
from tests.support.registry import RegistryServer

pytestmark = [pytest.mark.e2e, pytest.mark.root]

SECRET = "s3cr3t-value-never-in-images"


def _build(ctx: Path, dest: str, kaniko_dir: Path, *extra: str) -> None:
    result = run_pykaniko(
        [
            "--context", str(ctx), "--dockerfile", str(ctx / "Dockerfile"),
            "--destination", dest, "--insecure", "--insecure-pull",
            "--kaniko-dir", str(kaniko_dir), *extra,
        ]
    )  # fmt: skip
    assert result.status == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr


def _unpack(ref: str, tmp_path: Path) -> Path:
    layout, tag = pull_to_oci(ref, tmp_path / "oci")
    return umoci_unpack(layout, tag, tmp_path / "bundle")


def _all_blobs_text(ref: str, tmp_path: Path) -> bytes:
    """Every byte the registry holds for ``ref``: manifest, config, uncompressed layers."""
    out = tmp_path / "raw"
    subprocess.run(
        ["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{ref}", f"dir:{out}"],
        check=True,
    )
    data = b""
    for blob in out.iterdir():
        raw = blob.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            import gzip

            raw = gzip.decompress(raw)
        data += raw
    return data


def test_heredocs_onbuild_shell_user_mounts(
    busybox_image: str, registry: RegistryServer, tmp_path: Path, kaniko_dir: Path
) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    (ctx / "Dockerfile").write_text(
        f"FROM {busybox_image} AS base\n"
        "ONBUILD RUN echo triggered > /onbuild.txt\n"
        'SHELL ["/bin/sh", "-ec"]\n'
        "RUN <<EOF\n"
        "echo heredoc > /h1.txt\n"
        'echo "home=$HOME" >> /h1.txt\n'
        "EOF\n"
        "RUN <<EOT sh\n"
        "echo via sh > /h2.txt\n"
        "EOT\n"
        "RUN <<'EOF'\n"
        "#!/bin/sh\n"
        "echo shebang $0 > /h3.txt\n"
        "EOF\n"
        "COPY <<EOF /etc/conf.d/app.conf\n"
        "key=$HOSTNAME-value\n"
        "EOF\n"
        "FROM base\n"
        "USER user\n"
        "RUN id > /tmp/id.txt && touch /home/user/mine\n"
        "USER root\n"
        "RUN (sleep 1000 &) ; echo started\n"
        "RUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /secret-len.txt\n"
        "RUN --mount=type=tmpfs,target=/scratch echo x > /scratch/file"
        " && ls /scratch > /tmpfs.txt\n"
        'ENTRYPOINT ["/bin/echo"]\n'
    )
    dest = f"{registry.host}/e2e/heredocs:1"
    _build(ctx, dest, kaniko_dir, "--secret", f"id=tok,src={secret}")
    rootfs = _unpack(dest, tmp_path)
    assert (rootfs / "onbuild.txt").read_text() == "triggered\n"
    assert (rootfs / "h1.txt").read_text() == "heredoc\nhome=/root\n"
    assert (rootfs / "h2.txt").read_text() == "via sh\n"
    assert (rootfs / "h3.txt").read_text().startswith("shebang /")
    assert (rootfs / "etc/conf.d/app.conf").read_text() == "key=-value\n"
    assert (
        (rootfs / "tmp/id.txt")
        .read_text()
        .startswith("uid=1000(user) gid=1000(user) groups=50(staff),1000(user)")
    )
    assert (rootfs / "home/user/mine").stat().st_uid == 1000
    assert (rootfs / "secret-len.txt").read_text().strip() == str(len(SECRET))
    assert (rootfs / "tmpfs.txt").read_text() == "file\n"
    for stub in ("run/secrets", "scratch", "proc", "sys", "dev"):
        assert not (rootfs / stub).exists(), f"mount point /{stub} leaked into the image"
    leftover = [p.name for p in rootfs.iterdir() if p.name.startswith(".pykaniko")]
    assert leftover == []
    config = skopeo_inspect(dest, config=True)
    assert config["config"]["Entrypoint"] == ["/bin/echo"]
    assert "Cmd" not in config["config"]  # a new ENTRYPOINT clears the inherited CMD
    assert "OnBuild" not in config["config"]
    assert SECRET.encode() not in _all_blobs_text(dest, tmp_path)
    ps = subprocess.run(["ps", "ax"], capture_output=True, check=True)
    assert b"sleep 1000" not in ps.stdout


def test_volume_add_archive_copy_from_image(
    busybox_image: str, registry: RegistryServer, tmp_path: Path, kaniko_dir: Path
) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "src" / "d").mkdir(parents=True)
    (ctx / "src" / "d" / "a.txt").write_text("a\n")
    (ctx / "src" / "b.txt").write_text("b\n")
    with tarfile.open(ctx / "arch.tar.gz", "w:gz") as tar:
        tar.add(ctx / "src", arcname="pkg")
    (ctx / "Dockerfile").write_text(
        "# escape=`\n"
        f"FROM {busybox_image}\n"
        "ADD arch.tar.gz /opt/\n"
        "COPY --from=" + busybox_image + " /etc/passwd /from-image/passwd\n"
        "VOLUME /data\n"
        "RUN echo inside > /data/x.txt && `\n"
        "    echo outside > /y.txt\n"
        "EXPOSE 80 53/udp 9000-9001\n"
        'HEALTHCHECK --interval=5s CMD ["true"]\n'
        "STOPSIGNAL SIGTERM\n"
        "LABEL a=b\n"
    )
    dest = f"{registry.host}/e2e/volume:1"
    _build(ctx, dest, kaniko_dir, "--label", "from-flag=yes")
    rootfs = _unpack(dest, tmp_path)
    assert (rootfs / "opt/pkg/d/a.txt").read_text() == "a\n"
    assert (rootfs / "from-image/passwd").read_text().startswith("root:x:0:0")
    assert (rootfs / "y.txt").read_text() == "outside\n"
    assert not (rootfs / "data/x.txt").exists()  # changes in a declared volume are dropped
    config = skopeo_inspect(dest, config=True)["config"]
    assert sorted(config["ExposedPorts"]) == ["53/udp", "80/tcp", "9000/tcp", "9001/tcp"]
    assert config["Volumes"] == {"/data": {}}
    assert config["Labels"] == {"a": "b", "from-flag": "yes"}
    assert config["StopSignal"] == "SIGTERM"


def test_outputs_and_two_builds_in_one_process(
    registry: RegistryServer, tmp_path: Path, kaniko_dir: Path
) -> None:
    """The library: two builds in one process do not interfere, and --no-push writes
    every local output in a form skopeo reads."""
    results = []
    for name in ("one", "two"):
        ctx = tmp_path / name
        ctx.mkdir()
        (ctx / f"{name}.txt").write_text(name)
        (ctx / "Dockerfile").write_text(f"FROM scratch\nCOPY {name}.txt /\n")
        events: list[pykaniko.Event] = []
        options = pykaniko.BuildOptions(
            context=ctx,
            dockerfile=ctx / "Dockerfile",
            outputs=pykaniko.OutputOptions(
                destinations=(f"{registry.host}/e2e/lib-{name}:1",),
                no_push=True,
                tar_path=tmp_path / f"{name}.tar",
                oci_layout_path=tmp_path / f"{name}-oci",
                digest_file=tmp_path / f"{name}.digest",
                image_name_tag_with_digest_file=tmp_path / f"{name}.names",
            ),
            work_dir=kaniko_dir,
        )
        results.append(pykaniko.build(options, on_event=events.append))
        assert any(isinstance(e, pykaniko.LayerCreated) for e in events)
    assert results[0].digest != results[1].digest
    for name, result in zip(("one", "two"), results, strict=True):
        assert (tmp_path / f"{name}.digest").read_text() == result.digest
        names = (tmp_path / f"{name}.names").read_text()
        assert names == f"{registry.host}/e2e/lib-{name}:1@{result.digest}\n"
        for source in (f"docker-archive:{tmp_path / name}.tar", f"oci:{tmp_path / name}-oci"):
            out = subprocess.run(
                ["skopeo", "inspect", source], check=True, capture_output=True, text=True
            )
            assert json.loads(out.stdout)["Layers"], source
    assert not os.listdir(kaniko_dir) or all(
        not p.name.startswith("build-") for p in kaniko_dir.iterdir()
    )


def test_copy_and_workdir_through_an_image_symlink_stay_in_the_image(
    busybox_image: str, registry: RegistryServer, tmp_path: Path, kaniko_dir: Path
) -> None:
    """``/opt/link -> /`` inside the image: COPY and WORKDIR through it write the image's
    own /etc and /srv, and no host file ever lands in a layer."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "f.txt").write_text("ours\n")
    (ctx / "Dockerfile").write_text(
        f"FROM {busybox_image}\n"
        "RUN mkdir -p /opt && ln -s / /opt/link\n"
        "COPY f.txt /opt/link/etc/copied.txt\n"
        "WORKDIR /opt/link/srv/app\n"
    )
    dest = f"{registry.host}/e2e/symlinked:1"
    _build(ctx, dest, kaniko_dir)
    out = tmp_path / "raw"
    subprocess.run(
        ["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{dest}", f"dir:{out}"],
        check=True,
    )
    manifest = json.loads((out / "manifest.json").read_text())
    names: list[list[str]] = []
    for layer in manifest["layers"][1:]:
        with tarfile.open(out / layer["digest"].split(":")[1]) as tar:
            names.append(sorted(tar.getnames()))
    assert names[1] == ["etc", "etc/copied.txt"]
    assert names[2] == ["srv", "srv/app"]
    rootfs = _unpack(dest, tmp_path)
    assert (rootfs / "etc/copied.txt").read_text() == "ours\n"
    assert (rootfs / "srv/app").is_dir()
