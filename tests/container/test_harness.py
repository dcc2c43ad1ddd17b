"""Self-tests of the unprivileged-container harness (``tests/support/container.py``):
inside, exactly Docker's default capabilities, mount and namespace syscalls refused,
``/proc`` readable; outside, nothing written and nothing left mounted."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.support.container import Bind, Container, UnpackedImage, mounts_below

pytestmark = [pytest.mark.container, pytest.mark.root]

SH = "/busybox/sh"


def _tree_state(root: Path) -> dict[str, tuple[int, int, int, str]]:
    """(mode, size, mtime, content hash of files) of every entry below ``root``."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            digest = ""
            if path.is_file() and not path.is_symlink():
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            state[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return state


def _host_state() -> dict[str, object]:
    etc = {n: (Path("/etc") / n).read_bytes() for n in ("hosts", "resolv.conf", "hostname")
           if (Path("/etc") / n).exists()}  # fmt: skip
    return {
        "top": sorted(os.listdir("/")),
        "etc": etc,
        "root_mtime": Path("/").stat().st_mtime_ns,
        "etc_mtime": Path("/etc").stat().st_mtime_ns,
        "hostname": os.uname().nodename,
    }


def test_capabilities_seccomp_and_proc(debug_image: UnpackedImage, container_scratch: Path) -> None:
    script = (
        "grep -E '^Cap(Eff|Bnd|Prm)' /proc/self/status; "
        "unshare -m true; echo unshare-m=$?; "
        "unshare -U true; echo unshare-U=$?; "
        "mount -t tmpfs none /mnt; echo mount=$?; "
        "echo pid=$$; id -u; hostname; test -f /.dockerenv && echo dockerenv; "
        "grep -c ' /etc/resolv.conf ' /proc/self/mountinfo"
    )
    with Container(debug_image, container_scratch / "harness") as box:
        result = box.run([SH, "-c", script])
    assert result.status == 0, result.output
    out = result.stdout
    for cap in ("CapEff", "CapBnd", "CapPrm"):
        assert f"{cap}:\t00000000a80425fb" in out
    assert "unshare-m=1" in out
    assert "unshare-U=1" in out
    assert result.stderr.count("Operation not permitted") >= 2
    assert "mount=1" in out
    assert "pid=1\n0\npykaniko-container\ndockerenv\n1\n" in out


def test_nothing_written_outside_the_root(
    debug_image: UnpackedImage, container_scratch: Path, tmp_path: Path
) -> None:
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\n")
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "secret").write_text("s3cret\n")
    image_before = _tree_state(debug_image.rootfs)
    context_before = _tree_state(context)
    extra_before = _tree_state(extra)
    host_before = _host_state()
    script = (
        "set -e; echo x > /new-file; echo 1.2.3.4 evil >> /etc/hosts; "
        "echo nameserver 9.9.9.9 > /etc/resolv.conf; echo other > /etc/hostname; "
        "rm -rf /kaniko/ssl /busybox/vi; mkdir -p /tmp /usr/bin; echo y > /tmp/t; "
        "cat /run/extra/secret; ! echo w > /run/extra/secret"
    )
    with Container(
        debug_image, container_scratch / "harness",
        context=context, binds=[Bind(extra, "/run/extra", readonly=True)],
    ) as box:  # fmt: skip
        result = box.run([SH, "-c", script])
        assert result.status == 0, result.output
        assert "s3cret" in result.stdout
        changed = dict(box.changed_files())
        assert changed["/new-file"] == "added"
        assert changed["/busybox/vi"] == "deleted"
        assert changed["/kaniko/ssl"] == "deleted"
        again = box.run([SH, "-c", "cat /new-file; test ! -e /kaniko/ssl && echo gone"])
        assert again.stdout == "x\ngone\n", "the root is kept across runs of one container"
        workdir = box.upper.parent
    assert not workdir.exists()
    assert _tree_state(debug_image.rootfs) == image_before
    assert _tree_state(context) == context_before
    assert _tree_state(extra) == extra_before
    assert _host_state() == host_before


def test_everything_is_unmounted_and_removed(
    executor_image: UnpackedImage, container_scratch: Path
) -> None:
    scratch = container_scratch / "harness-cleanup"
    with Container(executor_image, scratch) as box:
        result = box.run(["/kaniko/executor", "--version"])
        assert result.status == 0, result.output
        assert mounts_below(scratch) == [], "the mounts live in the container's namespace"
    assert mounts_below(container_scratch) == []
    assert list(scratch.iterdir()) == []


def test_setup_failures_exit_125_and_missing_commands_127(
    executor_image: UnpackedImage, container_scratch: Path
) -> None:
    with Container(executor_image, container_scratch / "harness") as box:
        missing = box.run(["/no/such/command"])
        assert missing.status == 127, missing.output
        no_shell = box.run(["sh", "-c", "true"])
        assert no_shell.status == 127, "the executor image has no shell"
        bad_cwd = box.run(["/kaniko/executor", "--version"], cwd="/no/such/dir")
        assert bad_cwd.status == 125, bad_cwd.output
