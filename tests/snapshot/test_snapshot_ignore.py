"""The ignore list: pure parsing and matching."""

from __future__ import annotations

from pathlib import Path

import pytest

from pykaniko.snapshot import ALWAYS_IGNORED, IgnoreList, build_ignore_list, mount_points

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
23 22 0:5 / /proc rw,nosuid - proc proc rw
24 22 0:6 / /kaniko/rootfs/etc/hosts rw - ext4 /dev/sda1 rw
25 22 0:7 / /kaniko/rootfs/my\\040volume rw - tmpfs tmpfs rw
26 22 0:8 / /kaniko/rootfs rw - tmpfs tmpfs rw
27 22 0:9 / /kaniko/rootfs-other/x rw - tmpfs tmpfs rw
"""


def test_mount_points_unescape() -> None:
    points = mount_points(MOUNTINFO)
    assert "/kaniko/rootfs/my volume" in points
    assert points[0] == "/"


def test_rootfs_mounts_only_below_rootfs() -> None:
    ig = build_ignore_list(rootfs=Path("/kaniko/rootfs"), mountinfo=MOUNTINFO)
    assert "/my volume" in ig.exact
    assert "/etc/hosts" in ig.exact
    assert "/x" not in ig.exact, "a sibling directory's mount is not ours"
    assert "/" not in ig.exact


def test_building_in_slash_ignores_every_mount_but_root() -> None:
    ig = build_ignore_list(rootfs=Path("/"), mountinfo=MOUNTINFO)
    assert {"/proc", "/kaniko/rootfs", "/kaniko/rootfs-other/x"} <= ig.exact
    assert ig.ignored("/kaniko/rootfs/etc/passwd")
    assert not ig.ignored("/etc/passwd")


def test_defaults_and_options() -> None:
    ig = build_ignore_list(rootfs=Path("/r"), work_dir=Path("/r/kaniko"), extra_paths=["skip//me/"])
    assert set(ALWAYS_IGNORED) <= ig.exact
    assert {"/var/run", "/kaniko", "/skip/me"} <= ig.exact
    assert not build_ignore_list(rootfs=Path("/r"), ignore_var_run=False).ignored("/var/run/x")
    outside = build_ignore_list(rootfs=Path("/r"), work_dir=Path("/kaniko"))
    assert "/kaniko" not in outside.exact


@pytest.mark.parametrize(
    ("path", "ignored"),
    [
        ("/proc", True),
        ("/proc/1/status", True),
        ("/procfs", False),
        ("/etc/hosts", True),
        ("/etc/hosts.allow", False),
        ("/vol", False),
        ("/vol/data", True),
        ("/vol/a/b", True),
        ("/volume", False),
        ("/", False),
    ],
)
def test_exact_and_prefix_matching(path: str, ignored: bool) -> None:
    ig = build_ignore_list(rootfs=Path("/r"), volumes=["/vol/"])
    assert ig.ignored(path) is ignored


def test_with_volumes_returns_a_new_list() -> None:
    base = IgnoreList.of(["/a"])
    more = base.with_volumes(["/v"])
    assert not base.ignored("/v/x")
    assert more.ignored("/v/x")
    assert not more.ignored("/v")
    assert IgnoreList.of(["/"]).exact == frozenset()
