"""The registry side through the command line, as a CI job uses it: credentials from
``DOCKER_CONFIG``, Docker Hub names through ``--registry-mirror``, a dead mirror, a
denied push, and faults on the wire with ``--push-retry``."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.conftest import AUTH_PASSWORD, AUTH_USER
from tests.e2e.conftest import run_pykaniko
from tests.support.readers import run_tool, skopeo_inspect
from tests.support.registry import FaultProxy, RegistryServer, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.root]


def _context(tmp_path: Path, dockerfile: str) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "f.txt").write_text("payload\n")
    (ctx / "Dockerfile").write_text(dockerfile)
    return ctx


def _docker_config(tmp_path: Path, host: str, user: str, password: str) -> Path:
    conf = tmp_path / "docker-config"
    conf.mkdir(parents=True)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    (conf / "config.json").write_text(json.dumps({"auths": {host: {"auth": token}}}))
    return conf


def test_push_with_docker_config_credentials(
    auth_registry: RegistryServer, tmp_path: Path, kaniko_dir: Path
) -> None:
    ctx = _context(tmp_path, "FROM scratch\nCOPY f.txt /\n")
    args = [
        "--context", str(ctx), "--dockerfile", str(ctx / "Dockerfile"),
        "--destination", f"{auth_registry.host}/private/app:1", "--insecure",
        "--kaniko-dir", str(kaniko_dir),
    ]  # fmt: skip
    good = _docker_config(tmp_path / "good", auth_registry.host, AUTH_USER, AUTH_PASSWORD)
    ok = run_pykaniko(args, env={"DOCKER_CONFIG": str(good)})
    assert ok.status == 0, ok.stderr

    wrong_password = "not-the-Pa55word-xyz"
    bad = _docker_config(tmp_path / "bad", auth_registry.host, AUTH_USER, wrong_password)
    denied = run_pykaniko(args, env={"DOCKER_CONFIG": str(bad)})
    assert denied.status == 1
    assert auth_registry.host in denied.stderr
    assert "private/app" in denied.stderr
    assert "401" in denied.stderr or "unauthorized" in denied.stderr.lower()
    assert wrong_password not in denied.stdout + denied.stderr
    assert base64.b64encode(f"{AUTH_USER}:{wrong_password}".encode()).decode() not in (
        denied.stdout + denied.stderr
    )
    assert "Traceback" not in denied.stderr


def test_docker_hub_names_through_a_mirror(
    busybox_image: str, registry: RegistryServer, tmp_path: Path, kaniko_dir: Path
) -> None:
    # the mirror holds "library/busybox:1", as a Docker Hub mirror would
    run_tool(
        [
            "skopeo", "copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false",
            f"docker://{busybox_image}", f"docker://{registry.host}/library/busybox:1",
        ]
    )  # fmt: skip
    ctx = _context(tmp_path, "FROM busybox:1\nRUN cat /etc/os-release > /os.txt\n")
    dead = f"127.0.0.1:{free_port()}"
    dest = f"{registry.host}/e2e/mirrored:1"
    result = run_pykaniko(
        [
            "--context", str(ctx), "--dockerfile", str(ctx / "Dockerfile"),
            "--destination", dest, "--insecure", "--insecure-pull",
            "--registry-mirror", dead, "--registry-mirror", registry.host,
            "--skip-default-registry-fallback", "--kaniko-dir", str(kaniko_dir),
        ]
    )  # fmt: skip
    assert result.status == 0, result.stderr
    assert dead in result.stderr  # the dead mirror was reported, then skipped
    assert len(skopeo_inspect(dest)["Layers"]) == 2

    missing = run_pykaniko(
        [
            "--context", str(ctx), "--dockerfile", str(ctx / "Dockerfile"),
            "--destination", dest, "--insecure", "--insecure-pull",
            "--registry-mirror", dead, "--skip-default-registry-fallback",
            "--kaniko-dir", str(kaniko_dir),
        ]
    )  # fmt: skip
    assert missing.status == 1
    assert dead in missing.stderr
    assert len(missing.stderr.strip().splitlines()[-1]) > 0
    assert "Traceback" not in missing.stderr


def test_push_through_faults_with_retries(
    fault_proxy: FaultProxy, registry: RegistryServer, tmp_path: Path, kaniko_dir: Path
) -> None:
    fault_proxy.configure(rate=0.2)
    host = fault_proxy.host
    ctx = _context(tmp_path, "FROM scratch\nCOPY f.txt /\nCOPY Dockerfile /\n")
    dest = f"{host}/e2e/faulty:1"
    result = run_pykaniko(
        [
            "--context", str(ctx), "--dockerfile", str(ctx / "Dockerfile"),
            "--destination", dest, "--insecure", "--push-retry", "5",
            "--kaniko-dir", str(kaniko_dir),
        ]
    )  # fmt: skip
    fault_proxy.configure(rate=0.0)
    if result.status == 0:
        info = skopeo_inspect(f"{registry.host}/e2e/faulty:1")
        assert len(info["Layers"]) == 2
    else:  # a clear failure is allowed; a tag pointing at missing blobs is not
        assert "Traceback" not in result.stderr
        assert host in result.stderr
