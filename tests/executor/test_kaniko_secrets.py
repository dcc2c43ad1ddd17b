"""The kaniko-dir secret convention: where a secret without ``--secret`` is looked up."""

from __future__ import annotations

from pathlib import Path

from pyfakefs.fake_filesystem import FakeFilesystem

from pykaniko.executor.run_mounts import find_kaniko_secret


def test_the_seeds_convention(fs: FakeFilesystem) -> None:
    fs.create_file("/kaniko/gemserver_credentials", contents="user:pw")
    found, looked = find_kaniko_secret(
        Path("/kaniko"), "gemserver_credentials", "/kaniko/gemserver_credentials"
    )
    assert found == Path("/kaniko/gemserver_credentials")
    assert looked == ["/kaniko/gemserver_credentials"]


def test_id_in_the_kaniko_dir_with_a_target_elsewhere(fs: FakeFilesystem) -> None:
    fs.create_file("/kaniko/npmrc", contents="x")
    found, looked = find_kaniko_secret(Path("/kaniko"), "npmrc", "/run/secrets/npmrc")
    assert found == Path("/kaniko/npmrc")
    assert looked == ["/kaniko/npmrc"]


def test_a_target_inside_the_kaniko_dir_wins(fs: FakeFilesystem) -> None:
    fs.create_file("/kaniko/creds/a", contents="by target")
    fs.create_file("/kaniko/tok", contents="by id")
    found, _ = find_kaniko_secret(Path("/kaniko"), "tok", "/kaniko/creds/a")
    assert found == Path("/kaniko/creds/a")


def test_missing_reports_both_places(fs: FakeFilesystem) -> None:
    fs.create_dir("/kaniko")
    found, looked = find_kaniko_secret(Path("/kaniko"), "tok", "/kaniko/elsewhere")
    assert found is None
    assert looked == ["/kaniko/elsewhere", "/kaniko/tok"]


def test_no_escape_from_the_kaniko_dir(fs: FakeFilesystem) -> None:
    fs.create_file("/etc/shadow", contents="root:*")
    fs.create_dir("/kaniko")
    for sid, target in (
        ("../etc/shadow", "/run/secrets/x"),
        ("x", "/kaniko/../etc/shadow"),
        ("..", "/run/secrets/x"),
    ):
        found, _ = find_kaniko_secret(Path("/kaniko"), sid, target)
        assert found is None, (sid, target)


def test_a_directory_is_no_secret(fs: FakeFilesystem) -> None:
    fs.create_dir("/kaniko/tok")
    assert find_kaniko_secret(Path("/kaniko"), "tok", "/run/secrets/tok")[0] is None


def test_a_relative_kaniko_dir_is_made_absolute(fs: FakeFilesystem) -> None:
    fs.create_file("/work/k/tok", contents="t")
    fs.cwd = "/work"
    assert find_kaniko_secret(Path("k"), "tok", "/work/k/tok")[0] == Path("/work/k/tok")
