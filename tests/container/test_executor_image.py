"""The executor images themselves: Kaniko's layout and configuration, an interpreter
that needs nothing outside ``/kaniko`` (checked in a chroot holding only the image),
and how fast ``/kaniko/executor`` starts next to the venv's ``pykaniko``."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.container.conftest import ExecutorTars
from tests.support.container import Container, UnpackedImage, remove_tree

pytestmark = [pytest.mark.container, pytest.mark.root]

KANIKO_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/kaniko"


def _config(tarball: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["skopeo", "inspect", "--config", f"docker-archive:{tarball}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    config: dict[str, Any] = json.loads(out)["config"]
    return config


def test_config_is_kanikos(executor_tars: ExecutorTars) -> None:
    for tarball, path, ignore in (
        (executor_tars.latest, KANIKO_PATH, "/kaniko"),
        (executor_tars.debug, KANIKO_PATH + ":/busybox", "/kaniko:/busybox"),
    ):
        config = _config(tarball)
        env = dict(e.split("=", 1) for e in config["Env"])
        assert env["PATH"] == path
        assert env["DOCKER_CONFIG"] == "/kaniko/.docker/"
        assert env["SSL_CERT_DIR"] == "/kaniko/ssl/certs"
        assert env["SSL_CERT_FILE"] == "/kaniko/ssl/certs/ca-certificates.crt"
        assert env["HOME"] == "/root"
        assert env["PYKANIKO_IGNORE_PATHS"] == ignore
        assert config["Entrypoint"] == ["/kaniko/executor"]
        assert config["WorkingDir"] == "/workspace"
    assert "/busybox" in _config(executor_tars.debug)["Volumes"]


def test_layout(executor_image: UnpackedImage, debug_image: UnpackedImage) -> None:
    assert sorted(p.name for p in executor_image.rootfs.iterdir()) == ["kaniko", "workspace"]
    assert sorted(p.name for p in debug_image.rootfs.iterdir()) == [
        "busybox", "kaniko", "workspace",
    ]  # fmt: skip
    kaniko = executor_image.rootfs / "kaniko"
    for path in ("executor", "bin/python3", "lib/ld-linux-x86-64.so.2", ".docker",
                 "ssl/certs/ca-certificates.crt", "ssl/openssl.cnf"):  # fmt: skip
        assert (kaniko / path).exists(), path
    assert (kaniko / "executor").read_text().startswith("#!/kaniko/bin/python3 -I")
    stdlib = kaniko / "lib/python3.11"
    for dropped in ("test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3"):
        assert not (stdlib / dropped).exists(), dropped
    assert list(stdlib.glob("__pycache__/os.cpython-311.pyc"))
    # the CA bundle is Debian's, not this machine's (which may hold local CAs)
    bundle = (kaniko / "ssl/certs/ca-certificates.crt").read_text()
    assert bundle.count("BEGIN CERTIFICATE") > 100
    for link in (debug_image.rootfs / "busybox").iterdir():
        if link.is_symlink():
            assert link.readlink() == Path("busybox")
    assert (debug_image.rootfs / "busybox/sh").is_symlink()


def test_needs_nothing_outside_kaniko(
    executor_image: UnpackedImage, container_scratch: Path, tmp_path: Path
) -> None:
    """``--help`` in a chroot that holds the image's files and nothing else (no
    ``/proc``, ``/dev``, ``/etc``, ``/lib``), and a ``--no-push`` build there with
    ``/dev/null`` added."""
    chroot = shutil.which("chroot")
    assert chroot is not None
    root = container_scratch / "bare-chroot"
    subprocess.run(["cp", "-a", f"{executor_image.rootfs}/.", str(root)], check=True)
    try:
        assert sorted(p.name for p in root.iterdir()) == ["kaniko", "workspace"]
        env = {"PATH": "/kaniko", "DOCKER_CONFIG": "/kaniko/.docker/"}
        helped = subprocess.run(
            [chroot, str(root), "/kaniko/executor", "--help"],
            capture_output=True, text=True, env=env, check=False,
        )  # fmt: skip
        assert helped.returncode == 0, helped.stderr
        assert "--destination" in helped.stdout
        # a build opens /dev/null (the isolation probe's stdin): every container has one
        (root / "dev").mkdir()
        os.mknod(root / "dev/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        (root / "workspace/hello.txt").write_text("hello\n")
        (root / "workspace/Dockerfile").write_text(
            "FROM scratch\nCOPY hello.txt /greeting/\nENV GREETING=hello\n"
        )
        # the root of a container or a machine is a mount point: so is this one, in a
        # private mount namespace (pykaniko's isolation probe needs that, not the files)
        executor = [
            "env", "-i", *[shlex.quote(f"{k}={v}") for k, v in env.items()], chroot, '"$0"',
            "/kaniko/executor", "--context", "/workspace", "--no-push",
            "--destination", "example.test/hello:1", "--tar-path", "/workspace/image.tar",
        ]  # fmt: skip
        built = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             f'mount --bind "$0" "$0" && exec {" ".join(executor)}', str(root)],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        assert built.returncode == 0, built.stderr
        listing = subprocess.run(
            ["tar", "-tf", str(root / "workspace/image.tar")],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert "manifest.json" in listing
        assert sorted(p.name for p in root.iterdir()) == ["dev", "kaniko", "workspace"]
    finally:
        remove_tree(root)


def test_startup_time(debug_image: UnpackedImage, container_scratch: Path) -> None:
    """Reported, never asserted: ``/kaniko/executor --help`` inside the container
    (timed there by busybox's ``time``) against the venv's ``pykaniko --help`` on the
    host; best of three each."""
    script = "for i in 1 2 3; do time /kaniko/executor --help >/dev/null; done"
    with Container(debug_image, container_scratch / "startup") as box:
        result = box.run(["/busybox/sh", "-c", script])
    assert result.status == 0, result.output
    inside = min(_busybox_seconds(line) for line in result.stderr.splitlines()
                 if line.startswith("real"))  # fmt: skip
    pykaniko = shutil.which("pykaniko", path=str(Path(sys.executable).parent))
    assert pykaniko is not None
    venv = []
    for _ in range(3):
        started = time.monotonic()
        subprocess.run([pykaniko, "--help"], capture_output=True, check=True)
        venv.append(time.monotonic() - started)
    print(f"\nstartup: /kaniko/executor --help in the container {inside:.2f}s; "
          f"venv pykaniko --help {min(venv):.2f}s")  # fmt: skip


def _busybox_seconds(line: str) -> float:
    """``real\t0m 0.45s`` -> 0.45"""
    minutes, _, seconds = line.split(None, 1)[1].partition("m")
    return int(minutes) * 60 + float(seconds.strip().rstrip("s"))
