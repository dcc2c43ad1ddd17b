"""USER and --chown resolution against the rootfs's /etc/passwd and /etc/group."""

from __future__ import annotations

from pathlib import Path

import pytest

from pykaniko.errors import BuildError
from pykaniko.executor.users import Identity, resolve_chown, resolve_user

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
# a comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:App:/home/app:/bin/sh
nohome:x:1001:1001:::/bin/sh
"""
GROUP = """\
root:x:0:
wheel:x:10:app,root
audio:x:29:daemon,app
app:x:1000:
staff:x:50:
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text(PASSWD)
    (tmp_path / "etc" / "group").write_text(GROUP)
    return tmp_path


def test_default_is_root(root: Path) -> None:
    assert resolve_user(root, "") == Identity(uid=0, gid=0, groups=(0, 10), home="/root")


def test_user_by_name_gets_primary_gid_home_and_supplementary_groups(root: Path) -> None:
    ident = resolve_user(root, "app")
    assert ident == Identity(uid=1000, gid=1000, groups=(1000, 10, 29), home="/home/app")


def test_user_by_uid_found_in_passwd(root: Path) -> None:
    ident = resolve_user(root, "1000")
    assert (ident.uid, ident.gid, ident.home) == (1000, 1000, "/home/app")
    assert ident.groups == (1000, 10, 29)


def test_name_with_group_name_uses_group_and_no_supplementary(root: Path) -> None:
    ident = resolve_user(root, "app:staff")
    assert ident == Identity(uid=1000, gid=50, groups=(50,), home="/home/app")


def test_uid_gid_numeric(root: Path) -> None:
    assert resolve_user(root, "1000:29") == Identity(1000, 29, (29,), "/home/app")


def test_unknown_numeric_uid_gets_gid_0_and_home_root(root: Path) -> None:
    assert resolve_user(root, "4242") == Identity(uid=4242, gid=0, groups=(0,), home="/")


def test_unknown_numeric_uid_with_numeric_gid(root: Path) -> None:
    assert resolve_user(root, "4242:4343") == Identity(4242, 4343, (4343,), "/")


def test_empty_home_field_is_slash(root: Path) -> None:
    assert resolve_user(root, "nohome").home == "/"


def test_unknown_name_is_an_error(root: Path) -> None:
    with pytest.raises(BuildError, match="nobody"):
        resolve_user(root, "nobody")


def test_unknown_group_name_is_an_error(root: Path) -> None:
    with pytest.raises(BuildError, match="nogroup"):
        resolve_user(root, "app:nogroup")


def test_no_passwd_file_numeric_user_works(tmp_path: Path) -> None:
    assert resolve_user(tmp_path, "7:8") == Identity(7, 8, (8,), "/")


def test_no_passwd_file_named_user_fails(tmp_path: Path) -> None:
    with pytest.raises(BuildError):
        resolve_user(tmp_path, "app")


@pytest.mark.parametrize(
    ("chown", "expected"),
    [
        ("app", (1000, 1000)),
        ("daemon", (1, 1)),
        ("1000", (1000, 1000)),
        ("4242", (4242, 4242)),
        ("app:staff", (1000, 50)),
        ("app:29", (1000, 29)),
        ("1000:50", (1000, 50)),
        ("4242:4343", (4242, 4343)),
        ("4242:staff", (4242, 50)),
        ("0:0", (0, 0)),
    ],
)
def test_resolve_chown(root: Path, chown: str, expected: tuple[int, int]) -> None:
    assert resolve_chown(root, chown) == expected


@pytest.mark.parametrize("chown", ["ghost", "ghost:staff", "app:ghosts", "1000:ghosts"])
def test_resolve_chown_unknown_names_fail(root: Path, chown: str) -> None:
    with pytest.raises(BuildError, match="ghost"):
        resolve_chown(root, chown)


def test_workdir_owner_follows_chown_rules_not_run_rules(root: Path) -> None:
    """A directory WORKDIR creates under ``USER 4242`` is 4242:4242 (BuildKit's mkdir
    WithUser), while a RUN as that user gets gid 0."""
    assert resolve_chown(root, "4242", what="USER 4242") == (4242, 4242)
    assert resolve_user(root, "4242").gid == 0
    with pytest.raises(BuildError, match=r"^USER ghost: unable to find user"):
        resolve_chown(root, "ghost", what="USER ghost")
