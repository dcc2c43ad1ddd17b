"""RUN mounts in chroot mode end to end: cache and bind mounts, and the kaniko-dir secret
convention of Kaniko jobs (``/kaniko/NAME`` written by the job, no ``--secret``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import run_pykaniko
from tests.support.readers import pull_to_oci, umoci_unpack
from tests.support.registry import RegistryServer

pytestmark = [pytest.mark.e2e, pytest.mark.root]

SECRET = "gem-user:gem-pass-never-in-images"


def _build(ctx: Path, dest: str, kaniko_dir: Path, *extra: str) -> tuple[int, str]:
    result = run_pykaniko(
        [
            "--context", str(ctx), "--dockerfile", str(ctx / "Dockerfile"),
            "--destination", dest, "--insecure", "--insecure-pull",
            "--kaniko-dir", str(kaniko_dir), *extra,
        ]
    )  # fmt: skip
    assert SECRET not in result.stdout + result.stderr
    return result.status, result.stdout + result.stderr


def _blobs(ref: str, tmp_path: Path) -> bytes:
    out = tmp_path / "raw"
    subprocess.run(
        ["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{ref}", f"dir:{out}"],
        check=True,
    )
    import gzip

    data = b""
    for blob in out.iterdir():
        raw = blob.read_bytes()
        data += gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    return data


def test_kaniko_dir_secret_cache_and_bind_mounts(
    busybox_image: str, registry: RegistryServer, tmp_path: Path
) -> None:
    kaniko = tmp_path / "kaniko"
    kaniko.mkdir()
    assert kaniko.parts[1] == "tmp"  # the image has /tmp; nothing below it may leak
    (kaniko / "gemserver_credentials").write_text(SECRET)
    (kaniko / "npmrc").write_text("registry=x\n")
    ctx = tmp_path / "ctx"
    (ctx / "src").mkdir(parents=True)
    (ctx / "src" / "a.txt").write_text("from the context\n")
    dst = f"{kaniko}/gemserver_credentials"
    (ctx / "Dockerfile").write_text(
        f"FROM {busybox_image}\n"
        f"RUN --mount=type=secret,id=gemserver_credentials,dst={dst} wc -c < {dst} > /gem.len\n"
        "RUN --mount=type=secret,id=npmrc wc -c < /run/secrets/npmrc > /npmrc.len\n"
        "RUN --mount=type=secret,id=absent ls /run/secrets > /optional.txt 2>&1 || true\n"
        "RUN --mount=type=cache,target=/var/cache/app echo one >> /var/cache/app/log\n"
        "RUN --mount=type=cache,target=/var/cache/app cp /var/cache/app/log /cache-seen\n"
        "RUN --mount=type=bind,source=src,target=/src,rw echo x > /src/a.txt"
        " && cp /src/a.txt /bound-rw\n"
        "RUN --mount=type=bind,source=src,target=/src cp /src/a.txt /bound-ro\n"
    )
    dest = f"{registry.host}/e2e/mounts:1"
    status, log = _build(ctx, dest, kaniko, "--isolation=chroot")
    assert status == 0, log
    assert "RUN isolation: chroot (--isolation=chroot)" in log
    layout, tag = pull_to_oci(dest, tmp_path / "oci")
    rootfs = umoci_unpack(layout, tag, tmp_path / "bundle")
    assert (rootfs / "gem.len").read_text().strip() == str(len(SECRET))
    assert (rootfs / "npmrc.len").read_text().strip() == "11"  # registry=x\n
    assert (rootfs / "cache-seen").read_text() == "one\n"
    assert (rootfs / "bound-rw").read_text() == "x\n"
    assert (rootfs / "bound-ro").read_text() == "from the context\n"  # rw writes dropped
    assert (ctx / "src" / "a.txt").read_text() == "from the context\n"
    # mount points never reach a layer, the kaniko-dir path inside the image included
    assert not (rootfs / "tmp" / kaniko.parts[2]).exists(), "the kaniko-dir mount point leaked"
    for stub in ("run/secrets", "var/cache/app", "src"):
        assert not (rootfs / stub).exists(), f"/{stub} leaked into the image"
    assert SECRET.encode() not in _blobs(dest, tmp_path)
    assert (kaniko / "gemserver_credentials").read_text() == SECRET  # the job's file stays


def test_required_kaniko_dir_secret_missing(
    busybox_image: str, registry: RegistryServer, tmp_path: Path
) -> None:
    kaniko = tmp_path / "kaniko"
    kaniko.mkdir()
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM {busybox_image}\nRUN --mount=type=secret,id=tok,required=true cat /run/secrets/tok\n"
    )
    status, log = _build(ctx, f"{registry.host}/e2e/mounts:missing", kaniko)
    assert status == 1
    expected = "secret 'tok' is required but was not given: no --secret id=tok and no file at"
    assert f"{expected} {kaniko}/tok" in log


def test_explicit_secret_wins_over_the_kaniko_dir(
    busybox_image: str, registry: RegistryServer, tmp_path: Path
) -> None:
    kaniko = tmp_path / "kaniko"
    kaniko.mkdir()
    (kaniko / "tok").write_text("from-kaniko-dir")
    given = tmp_path / "given"
    given.write_text("from-flag")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM {busybox_image}\nRUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /seen\n"
    )
    dest = f"{registry.host}/e2e/mounts:explicit"
    status, log = _build(ctx, dest, kaniko, "--secret", f"id=tok,src={given}")
    assert status == 0, log
    assert "RUN isolation: chroot (mount namespaces work)" in log  # auto, here
    layout, tag = pull_to_oci(dest, tmp_path / "oci")
    rootfs = umoci_unpack(layout, tag, tmp_path / "bundle")
    assert (rootfs / "seen").read_text().strip() == str(len("from-flag"))
