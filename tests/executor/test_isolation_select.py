"""Choosing the isolation: container detection (fake files), the auto rules, the refusal
outside a container, and the in-place keep list built from a mountinfo text."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyfakefs.fake_filesystem import FakeFilesystem

from pykaniko.errors import ConfigError
from pykaniko.executor import BuildOptions, ChrootIsolation, InPlaceIsolation, SecretSource
from pykaniko.executor.isolation.select import choose_isolation, detect_container, in_place_keep


def test_no_container(fs: FakeFilesystem) -> None:
    fs.create_file("/proc/1/cgroup", contents="0::/\n")
    fs.create_file("/proc/self/cgroup", contents="0::/user.slice/session-2.scope\n")
    assert detect_container({}) is None


@pytest.mark.parametrize(
    ("files", "env", "expected"),
    [
        ({"/.dockerenv": ""}, {}, "/.dockerenv"),
        ({"/run/.containerenv": ""}, {}, "/run/.containerenv"),
        ({}, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, "$KUBERNETES_SERVICE_HOST"),
        ({}, {"container": "podman"}, "container=podman"),
        ({"/proc/1/cgroup": "12:memory:/docker/0123abcd\n"}, {}, "/proc/1/cgroup: docker"),
        (
            {"/proc/self/cgroup": "0::/kubepods/burstable/pod1/abc\n"},
            {},
            "/proc/self/cgroup: kubepods",
        ),
    ],
)
def test_container_markers(
    fs: FakeFilesystem, files: dict[str, str], env: dict[str, str], expected: str
) -> None:
    for path, text in files.items():
        fs.create_file(path, contents=text)
    assert detect_container(env) == expected


def _options(tmp_path: Path, **kw: object) -> BuildOptions:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    return BuildOptions(
        context=ctx,
        dockerfile=ctx / "Dockerfile",
        work_dir=tmp_path / "kaniko",
        **kw,  # type: ignore[arg-type]
    )


def _container_root(tmp_path: Path, *, docker: bool) -> Path:
    root = tmp_path / "fake-root"
    root.mkdir(exist_ok=True)
    if docker:
        (root / ".dockerenv").touch()
    return root


def _refused() -> str:
    return "unshare(CLONE_NEWNS): Operation not permitted"


def test_auto_takes_chroot_where_namespaces_work(tmp_path: Path) -> None:
    choice = choose_isolation(_options(tmp_path), {}, "", probe=lambda: None)
    assert isinstance(choice.isolation, ChrootIsolation)
    assert choice.reason == "mount namespaces work"


def test_auto_takes_in_place_in_a_container_where_namespaces_are_refused(tmp_path: Path) -> None:
    root = _container_root(tmp_path, docker=True)
    choice = choose_isolation(_options(tmp_path), {}, "", probe=_refused, root=root)
    assert isinstance(choice.isolation, InPlaceIsolation)
    assert choice.isolation.root == Path("/")
    assert choice.reason == (
        "mount namespaces are refused: unshare(CLONE_NEWNS): Operation not permitted; "
        "container: /.dockerenv"
    )


def test_auto_refuses_in_place_outside_a_container(tmp_path: Path) -> None:
    root = _container_root(tmp_path, docker=False)
    with pytest.raises(ConfigError) as err:
        choose_isolation(_options(tmp_path), {}, "", probe=_refused, root=root)
    assert "replace this machine's own /" in err.value.message
    assert "checked /.dockerenv" in err.value.message
    assert "Operation not permitted" in err.value.message
    assert err.value.hint is not None
    assert "--isolation=in-place --force" in err.value.hint
    # --force alone does not make auto take in-place: it must be asked for
    with pytest.raises(ConfigError):
        choose_isolation(_options(tmp_path, force=True), {}, "", probe=_refused, root=root)


def test_explicit_in_place_outside_a_container_needs_force(tmp_path: Path) -> None:
    root = _container_root(tmp_path, docker=False)
    opts = _options(tmp_path, isolation="in-place")
    with pytest.raises(ConfigError, match="outside a container"):
        choose_isolation(opts, {}, "", probe=_refused, root=root)
    forced = _options(tmp_path, isolation="in-place", force=True)
    choice = choose_isolation(forced, {}, "", probe=_refused, root=root)
    assert isinstance(choice.isolation, InPlaceIsolation)
    assert choice.reason == "--isolation=in-place; --force, no container detected"


def test_explicit_chroot_never_probes(tmp_path: Path) -> None:
    def probe() -> str | None:
        raise AssertionError("probed")

    choice = choose_isolation(_options(tmp_path, isolation="chroot"), {}, "", probe=probe)
    assert isinstance(choice.isolation, ChrootIsolation)


def test_unknown_mode_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--isolation=sandbox"):
        _options(tmp_path, isolation="sandbox")


MOUNTINFO = r"""22 1 0:21 / / rw,relatime - overlay overlay rw,lowerdir=/l
23 22 0:22 / /proc rw,nosuid - proc proc rw
24 22 0:23 / /dev rw,nosuid - tmpfs tmpfs rw,mode=755
25 24 0:24 / /dev/pts rw - devpts devpts rw
26 22 8:1 /builds/group/project /builds/group/project rw - ext4 /dev/sda1 rw
27 22 8:1 /docker/containers/abc/hosts /etc/hosts rw - ext4 /dev/sda1 rw
28 22 0:40 / /var/run/secrets/kubernetes.io/serviceaccount ro - tmpfs tmpfs ro
29 22 8:1 /x /mnt/with\040space rw - ext4 /dev/sda1 rw
"""


def test_keep_list_from_mountinfo_env_and_options(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("t")
    opts = _options(
        tmp_path,
        ignore_paths=("/opt/agent",),
        ignore_var_run=False,
        secrets=(SecretSource(id="t", path=str(secret)), SecretSource(id="e", env="E")),
    )
    env = {"PYKANIKO_IGNORE_PATHS": "/kaniko:/busybox:", "DOCKER_CONFIG": str(tmp_path / "no")}
    keep = in_place_keep(opts, env, MOUNTINFO)
    for path in (
        "/proc",
        "/sys",
        "/dev",
        "/dev/pts",
        "/etc/hosts",
        "/etc/resolv.conf",
        "/builds/group/project",
        "/var/run/secrets/kubernetes.io/serviceaccount",
        "/mnt/with space",
        "/kaniko",
        "/busybox",
        "/opt/agent",
        str(tmp_path / "kaniko"),  # --kaniko-dir
        str(tmp_path / "ctx"),  # the context, although no mount point
        str(secret),
    ):
        assert keep.ignored(path), path
    assert not keep.ignored("/")
    assert not keep.ignored("/var/run")  # --ignore-var-run=false
    assert not keep.ignored("/etc/passwd")
    assert not keep.ignored("/usr")


def test_docker_config_is_kept_when_it_exists(tmp_path: Path) -> None:
    config = tmp_path / "docker"
    config.mkdir()
    keep = in_place_keep(_options(tmp_path), {"DOCKER_CONFIG": str(config)}, "")
    assert keep.ignored(str(config / "config.json"))
    assert keep.ignored("/var/run")  # the default
