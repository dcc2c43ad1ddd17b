"""User and group resolution against the rootfs's own ``/etc/passwd`` and ``/etc/group``
(never the host's), as Docker resolves ``USER`` and ``--chown``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pykaniko.errors import BuildError
from pykaniko.executor.fsutil import resolve_in_root

__all__ = ["Identity", "resolve_chown", "resolve_user"]


@dataclass(frozen=True, slots=True)
class Identity:
    uid: int
    gid: int
    groups: tuple[int, ...] = ()
    home: str = "/"


def _read_db(root: Path, name: str) -> list[list[str]]:
    """The rows of the rootfs's /etc/NAME (symlinks resolved inside the rootfs); rows
    whose id fields are not numbers are dropped, as the C library skips them."""
    try:
        text = resolve_in_root(root, f"/etc/{name}").read_text(errors="replace")
    except OSError:
        return []
    rows = [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]
    ids = 4 if name == "passwd" else 3
    return [r for r in rows if len(r) >= ids and all(f.isdigit() for f in r[2:ids])]


def _group_id(root: Path, group: str, what: str) -> int:
    if group.isdigit():
        return int(group)
    for fields in _read_db(root, "group"):
        if len(fields) >= 3 and fields[0] == group and fields[2].isdigit():
            return int(fields[2])
    raise BuildError(f"{what}: unable to find group {group!r} in the image's /etc/group")


def resolve_user(root: Path, user: str) -> Identity:
    """``USER name|uid[:group|gid]`` for RUN: primary gid from passwd unless given, plus
    the supplementary groups the user is listed in."""
    name, _, group = (user or "root").partition(":")
    passwd = _read_db(root, "passwd")
    entry = next(
        (f for f in passwd if len(f) >= 7 and (f[0] == name or (name.isdigit() and f[2] == name))),
        None,
    )
    if entry is None:
        if not name.isdigit():
            raise BuildError(f"unable to find user {name!r} in the image's /etc/passwd")
        uid, gid, home, login = int(name), 0, "/", ""
    else:
        uid, gid, home, login = int(entry[2]), int(entry[3]), entry[5] or "/", entry[0]
    if group:
        gid = _group_id(root, group, f"USER {user}")
        extra: tuple[int, ...] = ()
    else:
        extra = tuple(
            sorted(
                {
                    int(f[2])
                    for f in _read_db(root, "group")
                    if len(f) >= 4 and f[2].isdigit() and login and login in f[3].split(",")
                }
                - {gid}
            )
        )
    return Identity(uid=uid, gid=gid, groups=(gid, *extra), home=home)


def resolve_chown(root: Path, chown: str, *, what: str | None = None) -> tuple[int, int]:
    """``--chown=user[:group]``: names looked up in the rootfs, numbers need not exist;
    a user without a group gets gid = the user's primary gid (uid when numeric).

    BuildKit resolves the owner of a directory WORKDIR creates the same way from
    ``USER`` (``what`` names it in errors): ``USER 1234`` gives 1234:1234 there,
    although a RUN as that user runs with gid 0."""
    what = what or f"--chown={chown}"
    user, sep, group = chown.partition(":")
    if user.isdigit():
        uid = int(user)
        gid = uid
    else:
        entry = next((f for f in _read_db(root, "passwd") if len(f) >= 4 and f[0] == user), None)
        if entry is None:
            raise BuildError(f"{what}: unable to find user {user!r} in /etc/passwd")
        uid, gid = int(entry[2]), int(entry[3])
    if sep and group:
        gid = _group_id(root, group, what)
    return uid, gid
