"""Every recipe in ``examples/`` runs as written against local registries.

The command lines come out of the recipe files (``tests/support/recipes.py``); only
what a CI system or Kubernetes would fill in is substituted: variables, template
parameters, registry host names (a local registry stands for each, and for the Docker
Hub mirror), and paths. Local registries speak plain HTTP, so ``--insecure
--insecure-pull`` and a work directory are added to every command.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, CliResult
from tests.support.readers import run_tool, skopeo_inspect
from tests.support.recipes import recipe_argv, recipe_commands
from tests.support.registry import RegistryServer

pytestmark = [pytest.mark.e2e, pytest.mark.root]

EXAMPLES = ROOT / "examples"
SECRET = "gem-token-5b1e0c7d"


def _run(
    argv: Sequence[str], work: Path, *, cwd: Path = ROOT, env: Mapping[str, str] | None = None
) -> CliResult:
    args = [*argv, "--insecure", "--insecure-pull"]
    if not any(a.startswith("--kaniko-dir") for a in argv):
        args.append(f"--kaniko-dir={work}")
    proc = subprocess.run(
        [sys.executable, "-m", "pykaniko", *args],
        capture_output=True, text=True, timeout=600, check=False, cwd=cwd,
        env={**os.environ, "CI": "true", **(env or {})},
    )  # fmt: skip
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="module")
def hub(busybox_image: str, registry: RegistryServer) -> str:
    """The local registry as a Docker Hub mirror holding ``library/busybox:1.36``."""
    run_tool(
        [
            "skopeo", "copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false",
            f"docker://{busybox_image}", f"docker://{registry.host}/library/busybox:1.36",
        ]
    )  # fmt: skip
    return registry.host


def _app(tmp_path: Path, name: str = "app") -> Path:
    """A small application context whose base comes through the Docker Hub mirror."""
    ctx = tmp_path / name
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM busybox:1.36\nRUN echo {name} > /name\nCOPY . /src\nRUN ls /src > /listing\n"
    )
    return ctx


def _digest(ref: str) -> str:
    return str(skopeo_inspect(ref)["Digest"])


def test_gitlab_ci_job(hub: str, tmp_path: Path) -> None:
    recipe = EXAMPLES / "gitlab-ci" / ".gitlab-ci.yml"
    commands = recipe_commands(recipe)
    assert list(commands) == ["test", "production"]
    project = tmp_path / "project"
    shutil.copytree(EXAMPLES / "gitlab-ci", project, ignore=shutil.ignore_patterns("*.md"))
    secret = tmp_path / "gemserver_credentials"  # what before_script writes
    secret.write_text(SECRET)
    image = f"{hub}/group/app"
    values = {
        "$CI_PROJECT_DIR": str(project),
        "$CACHE_REPO": f"{image}/cache",
        "$IMAGE": image,
        "$CI_COMMIT_SHORT_SHA": "4f2a9c1",
        "$CI_COMMIT_REF_SLUG": "main",
        "$DOCKER_HUB_MIRROR": hub,
        "/kaniko/gemserver_credentials": str(secret),
    }
    test = _run(recipe_argv(commands["test"], values), tmp_path / "kaniko")
    assert test.status == 0, test.stderr
    assert "tests passed" in test.stdout
    # the base can only have come through the mirror: Docker Hub is not reachable here

    production = _run(recipe_argv(commands["production"], values), tmp_path / "kaniko")
    assert production.status == 0, production.stderr
    summary = json.loads((project / "build-summary.json").read_text())
    assert summary["steps"]["skipped"] == 2  # the test stage's steps
    tags = [f"{image}:4f2a9c1", f"{image}:main", f"{image}:latest"]
    assert summary["pushed"] == tags
    digest = (project / "image-digest").read_text()
    assert digest == summary["digest"]
    assert {_digest(t) for t in tags} == {digest}
    for result in (test, production):
        assert SECRET not in result.stdout + result.stderr


def test_github_actions_workflow(hub: str, tmp_path: Path) -> None:
    commands = recipe_commands(EXAMPLES / "github-actions" / "build.yml")
    ctx = _app(tmp_path)
    runner_temp = tmp_path / "runner"
    runner_temp.mkdir()
    values = {
        'sudo --preserve-env=DOCKER_CONFIG,CI "$(command -v pykaniko)"': "pykaniko",
        "$GITHUB_WORKSPACE": str(ctx),
        "$RUNNER_TEMP": str(runner_temp),
        "${{ github.repository }}": "owner/repo",
        "${{ github.sha }}": "0a1b2c3",
        "${{ github.event_name == 'pull_request' }}": "false",
        "ghcr.io": hub,
    }
    argv = recipe_argv(commands["build"], values)
    result = _run([*argv, "--registry-mirror", hub], tmp_path / "kaniko")
    assert result.status == 0, result.stderr
    summary = json.loads((runner_temp / "build-summary.json").read_text())
    assert summary["pushed"] == [f"{hub}/owner/repo:0a1b2c3", f"{hub}/owner/repo:latest"]

    # a pull request: built, nothing pushed, the cache read
    values["${{ github.event_name == 'pull_request' }}"] = "true"
    values["0a1b2c3"] = "pr-head"
    argv = recipe_argv(commands["build"], values)
    pr = _run([*argv, "--registry-mirror", hub], tmp_path / "kaniko")
    assert pr.status == 0, pr.stderr
    summary = json.loads((runner_temp / "build-summary.json").read_text())
    assert summary["pushed"] == []
    assert summary["steps"]["cached"] >= 1  # the first RUN, from the push build's cache


def _docker_config(tmp_path: Path) -> Path:
    """What a dockerconfigjson Secret mounted at /kaniko/.docker provides."""
    conf = tmp_path / "docker-config"
    conf.mkdir()
    (conf / "config.json").write_text(json.dumps({"auths": {}}))
    return conf


def test_kubernetes_job(hub: str, tmp_path: Path) -> None:
    commands = recipe_commands(EXAMPLES / "kubernetes" / "job.yaml")
    workspace = _app(tmp_path, "workspace")
    termination = tmp_path / "termination-log"
    values = {
        "dir:///workspace": f"dir://{workspace}",
        "/workspace/Dockerfile": str(workspace / "Dockerfile"),
        "registry.example.com": hub,
        "/dev/termination-log": str(termination),
    }
    argv = recipe_argv(commands["job"], values)
    env = {"DOCKER_CONFIG": str(_docker_config(tmp_path))}
    result = _run([*argv, "--registry-mirror", hub], tmp_path / "kaniko", env=env)
    assert result.status == 0, result.stderr
    digest = termination.read_text()
    assert _digest(f"{hub}/team/app:1.4.2") == digest
    assert _digest(f"{hub}/team/app:latest") == digest


def test_tekton_task(hub: str, tmp_path: Path) -> None:
    commands = recipe_commands(EXAMPLES / "tekton" / "task.yaml")
    source = _app(tmp_path, "source")
    results = tmp_path / "results"
    results.mkdir()
    values = {
        "$(params.DOCKERFILE)": "./Dockerfile",  # the Task's defaults
        "$(params.CONTEXT)": "./",
        "$(workspaces.source.path)": str(source),
        "$(params.IMAGE)": f"{hub}/team/tekton:1",
        "$(params.CACHE_REPO)": f"{hub}/team/tekton/cache",
        "$(results.IMAGE_DIGEST.path)": str(results / "IMAGE_DIGEST"),
    }
    argv = recipe_argv(commands["task"], values)
    env = {"DOCKER_CONFIG": str(_docker_config(tmp_path))}
    result = _run(
        [*argv, "--registry-mirror", hub], tmp_path / "kaniko", cwd=source, env=env
    )  # workingDir: the source workspace
    assert result.status == 0, result.stderr
    assert (results / "IMAGE_DIGEST").read_text() == _digest(f"{hub}/team/tekton:1")


def test_build_fleet_shares_only_the_registry(hub: str, tmp_path: Path) -> None:
    commands = recipe_commands(EXAMPLES / "build-fleet" / "job-template.yaml")
    env = {"DOCKER_CONFIG": str(_docker_config(tmp_path))}

    def argv(app: str, runner: str) -> list[str]:
        ctx = tmp_path / runner / "workspace"
        ctx.parent.mkdir(exist_ok=True)
        if not ctx.exists():
            shutil.copytree(_app(tmp_path / runner, app), ctx)
        values = {
            "${APP}": app,
            "${REVISION}": "4f2a9c1",
            "mirror.registry.example.com": hub,
            "registry.example.com": hub,
            "/workspace": str(ctx),
            "/scratch": str(tmp_path / runner / "scratch"),
            "/dev/termination-log": str(tmp_path / runner / "termination-log"),
        }
        return recipe_argv(commands["build"], values)

    def summary(runner: str) -> dict[str, Any]:
        data = json.loads((tmp_path / runner / "termination-log").read_text())
        assert isinstance(data, dict)
        return data

    first = _run(argv("billing", "runner-1"), tmp_path / "unused", env=env)
    assert first.status == 0, first.stderr
    assert all(json.loads(line)["level"] != "error" for line in first.stderr.splitlines())
    # another pod, nothing local: the RUN before the COPY comes from the registry's cache
    second = _run(argv("billing", "runner-2"), tmp_path / "unused", env=env)
    assert second.status == 0, second.stderr
    assert summary("runner-2")["steps"]["cached"] >= 1

    # two applications at the same time, each in its own pod
    procs = []
    for app, runner in (("search", "runner-3"), ("checkout", "runner-4")):
        args = [*argv(app, runner), "--insecure", "--insecure-pull"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "pykaniko", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT,
            env={**os.environ, **env},
        )  # fmt: skip
        procs.append(proc)
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    assert _digest(f"{hub}/apps/search:4f2a9c1") == summary("runner-3")["digest"]
    assert _digest(f"{hub}/apps/checkout:4f2a9c1") == summary("runner-4")["digest"]


def test_steps_after_copy_and_workdir_hit_the_cache_on_another_runner(
    hub: str, tmp_path: Path
) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM busybox:1.36\nWORKDIR /app\nCOPY . ./\nRUN ls > /listing\n"
    )
    args = [
        "--context", str(ctx), "--destination", f"{hub}/apps/rebuild:1", "--cache=true",
        "--cache-repo", f"{hub}/build-cache/rebuild", "--registry-mirror", hub,
    ]  # fmt: skip
    for runner in ("runner-1", "runner-2"):
        result = _run([*args, f"--summary-file={tmp_path / runner}.json"], tmp_path / runner)
        assert result.status == 0, result.stderr
    # the WORKDIR and the RUN after the COPY (COPY layers are cached with --cache-copy-layers)
    assert json.loads((tmp_path / "runner-2.json").read_text())["steps"]["cached"] == 2
