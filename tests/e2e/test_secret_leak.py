"""The secret-leak check end to end: a secret a RUN writes into the image fails the build
before anything is pushed (the registry's own storage is searched afterwards), warn
mode pushes with a warning, registry credentials from ``DOCKER_CONFIG`` count as
secrets, and no value ever appears in the output."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import AUTH_PASSWORD, AUTH_USER
from tests.e2e.conftest import CliResult, run_pykaniko
from tests.support.cliout import assert_clean_output
from tests.support.readers import skopeo_inspect
from tests.support.registry import RegistryServer
from tests.support.storage import blobs_containing, repository_tags

pytestmark = [pytest.mark.e2e, pytest.mark.root]

NPM_TOKEN = "npm_8f2Kq9LzW4xTbR7cVn3M"


@pytest.fixture
def dest_registry(tmp_path: Path) -> Iterator[RegistryServer]:
    """A registry of the test's own, so its whole storage can be searched."""
    server = RegistryServer(tmp_path / "dest-registry")
    yield server
    server.stop()


def _context(tmp_path: Path, dockerfile: str) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    return ctx


def _secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "npmrc"
    path.write_text(f"//registry.npmjs.org/:_authToken={NPM_TOKEN}\n")
    return path


def _build(
    ctx: Path, dest: str, kaniko_dir: Path, *extra: str, env: dict[str, str] | None = None
) -> CliResult:
    return run_pykaniko(
        [
            "--context", str(ctx), "--dockerfile", str(ctx / "Dockerfile"),
            "--destination", dest, "--insecure", "--insecure-pull",
            "--kaniko-dir", str(kaniko_dir), *extra,
        ],
        env=env,
    )  # fmt: skip


def _assert_nothing_stored(server: RegistryServer, repo: str, value: str) -> None:
    assert repository_tags(server.storage, repo) == []
    assert blobs_containing(server.storage, value.encode()) == []


def test_the_classic_slip_fails_before_any_push(
    busybox_image: str, dest_registry: RegistryServer, tmp_path: Path, kaniko_dir: Path
) -> None:
    ctx = _context(
        tmp_path,
        f"FROM {busybox_image}\n"
        "RUN mkdir -p /root\n"
        "RUN --mount=type=secret,id=npmrc cat /run/secrets/npmrc > /root/.npmrc && echo built\n"
        "RUN echo more > /more\n",
    )
    secret = _secret_file(tmp_path)
    result = _build(
        ctx, f"{dest_registry.host}/leak/app:1", kaniko_dir, "--secret", f"id=npmrc,src={secret}"
    )
    assert result.status == 1, result.stderr
    assert (
        'error: Dockerfile:3: secret "npmrc" leaked into /root/.npmrc '
        "(RUN --mount=type=secret,id=npmrc cat …); nothing was pushed"
    ) in result.stderr
    assert "[3/3]" not in result.stderr  # failed at the step, not at the end
    _assert_nothing_stored(dest_registry, "leak/app", NPM_TOKEN)
    assert_clean_output(
        result.stdout + result.stderr, kaniko_dirs=[kaniko_dir], secrets=[NPM_TOKEN]
    )
    assert not list(kaniko_dir.glob("build-*")), "the work dir is cleaned up"


def test_warn_mode_pushes_with_a_warning(
    busybox_image: str, dest_registry: RegistryServer, tmp_path: Path, kaniko_dir: Path
) -> None:
    ctx = _context(
        tmp_path,
        f"FROM {busybox_image}\n"
        'RUN --mount=type=secret,id=npmrc,env=TOKEN echo "$TOKEN" | base64 > /token.b64\n',
    )
    secret = _secret_file(tmp_path)
    ref = f"{dest_registry.host}/leak/warned:1"
    result = _build(
        ctx, ref, kaniko_dir, "--secret", f"id=npmrc,src={secret}", "--secret-check=warn"
    )
    assert result.status == 0, result.stderr
    assert 'Dockerfile:2: secret "npmrc" leaked (base64-encoded) into /token.b64' in result.stderr
    assert "pushing the image anyway (--secret-check=warn)" in result.stderr
    assert skopeo_inspect(ref)["Digest"].startswith("sha256:")
    assert_clean_output(
        result.stdout + result.stderr, kaniko_dirs=[kaniko_dir], secrets=[NPM_TOKEN]
    )


def test_a_registry_password_from_docker_config_is_caught(
    busybox_image: str, auth_registry: RegistryServer, tmp_path: Path, kaniko_dir: Path
) -> None:
    config = tmp_path / "docker"
    config.mkdir()
    auth = base64.b64encode(f"{AUTH_USER}:{AUTH_PASSWORD}".encode()).decode()
    (config / "config.json").write_text(json.dumps({"auths": {auth_registry.host: {"auth": auth}}}))
    env = {"DOCKER_CONFIG": str(config)}
    ref = f"{auth_registry.host}/leak/pw:1"
    raw = _context(
        tmp_path,
        f'FROM {busybox_image}\nARG PW\nRUN echo "deploy:$PW" > /etc/deploy.conf\n',
    )
    result = _build(raw, ref, kaniko_dir, f"--build-arg=PW={AUTH_PASSWORD}", env=env)
    assert result.status == 1, result.stderr
    assert (
        f"error: Dockerfile:3: the registry password for {auth_registry.host} leaked into "
        "/etc/deploy.conf"
    ) in result.stderr
    assert_clean_output(
        result.stdout + result.stderr, kaniko_dirs=[kaniko_dir], secrets=[AUTH_PASSWORD, auth]
    )

    (raw / "Dockerfile").write_text(
        f"FROM {busybox_image}\nRUN mkdir -p /root/.docker\n"
        f"COPY config.json /root/.docker/config.json\n"
    )
    (raw / "config.json").write_text((config / "config.json").read_text())
    result = _build(raw, ref, kaniko_dir, env=env)
    assert result.status == 1, result.stderr
    assert (
        f"Dockerfile:3: the registry password for {auth_registry.host} leaked (base64-encoded) "
        "into /root/.docker/config.json (COPY config.json …); nothing was pushed"
    ) in result.stderr, result.stderr
    assert repository_tags(auth_registry.storage, "leak/pw") == []
    assert_clean_output(
        result.stdout + result.stderr, kaniko_dirs=[kaniko_dir], secrets=[AUTH_PASSWORD, auth]
    )


def test_config_labels_and_annotations_are_searched(
    busybox_image: str, dest_registry: RegistryServer, tmp_path: Path, kaniko_dir: Path
) -> None:
    ctx = _context(tmp_path, f"FROM {busybox_image}\nARG T\nLABEL token=$T\n")
    ref = f"{dest_registry.host}/leak/label:1"
    env = {"NPM_TOKEN_ENV": NPM_TOKEN}
    secret = ("--secret", "id=tok,env=NPM_TOKEN_ENV")
    result = _build(ctx, ref, kaniko_dir, *secret, f"--build-arg=T={NPM_TOKEN}", env=env)
    assert result.status == 1, result.stderr
    assert (
        'error: secret "tok" leaked into the image config (config.Labels.token), '
        "and 1 more place; nothing was pushed"
    ) in result.stderr, result.stderr
    ctx = _context(tmp_path, f"FROM {busybox_image}\nRUN true\n")
    result = _build(ctx, ref, kaniko_dir, *secret, f"--annotation=x={NPM_TOKEN}", env=env)
    assert result.status == 1, result.stderr
    assert 'secret "tok" leaked into the image manifest (annotations.x)' in result.stderr
    _assert_nothing_stored(dest_registry, "leak/label", NPM_TOKEN)
    assert_clean_output(
        result.stdout + result.stderr, kaniko_dirs=[kaniko_dir], secrets=[NPM_TOKEN]
    )


def test_an_intermediate_stage_is_not_the_image_but_its_cache_push_is(
    busybox_image: str, dest_registry: RegistryServer, tmp_path: Path, kaniko_dir: Path
) -> None:
    ctx = _context(
        tmp_path,
        f"FROM {busybox_image} AS build\n"
        "RUN --mount=type=secret,id=npmrc cp /run/secrets/npmrc /npmrc && echo ok > /artifact\n"
        f"FROM {busybox_image}\n"
        "COPY --from=build /artifact /artifact\n",
    )
    secret = ("--secret", f"id=npmrc,src={_secret_file(tmp_path)}")
    ref = f"{dest_registry.host}/leak/multi:1"
    result = _build(ctx, ref, kaniko_dir, *secret)
    assert result.status == 0, result.stderr
    assert "which is not part of the image" in result.stderr
    assert skopeo_inspect(ref)["Digest"].startswith("sha256:")

    cache = f"{dest_registry.host}/leak/cache"
    result = _build(ctx, ref, kaniko_dir, *secret, "--cache=true", f"--cache-repo={cache}")
    assert result.status == 1, result.stderr
    assert 'Dockerfile:2: secret "npmrc" leaked into /npmrc' in result.stderr
    assert repository_tags(dest_registry.storage, "leak/cache") == []
    assert blobs_containing(dest_registry.storage, NPM_TOKEN.encode()) == []
    assert_clean_output(
        result.stdout + result.stderr, kaniko_dirs=[kaniko_dir], secrets=[NPM_TOKEN]
    )


def test_off_pushes_silently(
    busybox_image: str, dest_registry: RegistryServer, tmp_path: Path, kaniko_dir: Path
) -> None:
    ctx = _context(
        tmp_path,
        f"FROM {busybox_image}\nRUN --mount=type=secret,id=npmrc cp /run/secrets/npmrc /n\n",
    )
    secret = ("--secret", f"id=npmrc,src={_secret_file(tmp_path)}")
    ref = f"{dest_registry.host}/leak/off:1"
    result = _build(ctx, ref, kaniko_dir, *secret, "--secret-check=off")
    assert result.status == 0, result.stderr
    assert "leaked" not in result.stderr
    assert blobs_containing(dest_registry.storage, NPM_TOKEN.encode())


def test_run_output_never_shows_a_secret(
    busybox_image: str, tmp_path: Path, kaniko_dir: Path
) -> None:
    ctx = _context(
        tmp_path,
        f"FROM {busybox_image}\n"
        "RUN --mount=type=secret,id=npmrc cat /run/secrets/npmrc && base64 /run/secrets/npmrc\n",
    )
    secret = _secret_file(tmp_path)
    result = run_pykaniko(
        [
            "--context", str(ctx), "--no-push", "--insecure-pull",
            "--kaniko-dir", str(kaniko_dir), "--secret", f"id=npmrc,src={secret}",
        ]
    )  # fmt: skip
    assert result.status == 0, result.stderr
    assert result.stdout.splitlines()[0] == "***"  # the file's whole content is the value
    encoded = base64.b64encode(secret.read_bytes()).decode()
    assert_clean_output(
        result.stdout + result.stderr,
        kaniko_dirs=[kaniko_dir],
        secrets=[NPM_TOKEN, encoded[8:40]],
    )


def test_a_cached_layer_is_searched_too(
    busybox_image: str, dest_registry: RegistryServer, tmp_path: Path, kaniko_dir: Path
) -> None:
    ctx = _context(
        tmp_path,
        f"FROM {busybox_image}\nRUN --mount=type=secret,id=npmrc cp /run/secrets/npmrc /npmrc\n",
    )
    secret = ("--secret", f"id=npmrc,src={_secret_file(tmp_path)}")
    cache = ("--cache=true", f"--cache-repo={dest_registry.host}/leak/cache")
    ref = f"{dest_registry.host}/leak/cached:1"
    warned = _build(ctx, ref, kaniko_dir, *secret, *cache, "--secret-check=warn")
    assert warned.status == 0, warned.stderr
    assert "pushing the cache image anyway" in warned.stderr
    assert len(repository_tags(dest_registry.storage, "leak/cache")) == 1

    result = _build(ctx, f"{dest_registry.host}/leak/cached:2", kaniko_dir, *secret, *cache)
    assert result.status == 1, result.stderr
    assert 'error: Dockerfile:2: secret "npmrc" leaked into /npmrc' in result.stderr
    assert repository_tags(dest_registry.storage, "leak/cached") == ["1"]
    assert_clean_output(
        result.stdout + result.stderr, kaniko_dirs=[kaniko_dir], secrets=[NPM_TOKEN]
    )
