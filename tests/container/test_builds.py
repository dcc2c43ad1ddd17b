"""Builds inside an unprivileged container, through ``/kaniko/executor`` and Kaniko's
flags, as GitLab's and Kubernetes' executors run Kaniko's image: Docker's default
capabilities, mount and namespace syscalls refused, the context on ``/workspace``.

Each build runs twice: in ``pykaniko/executor:latest`` (the entry point with flags;
``/kaniko/.docker/config.json`` and the seed's secret file bound in, as a pod mounts
secrets) and in ``:debug`` driven by its shell (``/busybox/sh -c '... >
/kaniko/.docker/config.json && /kaniko/executor ...'``, as a GitLab job script).
What was pushed is read back with skopeo and umoci.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import AUTH_PASSWORD, AUTH_USER
from tests.container.conftest import Bases
from tests.support.container import Bind, Container, ContainerResult, UnpackedImage
from tests.support.debian import DebianBase
from tests.support.readers import pull_to_oci, skopeo_inspect, umoci_unpack
from tests.support.registry import RegistryServer

pytestmark = [pytest.mark.container, pytest.mark.root, pytest.mark.e2e]

FLAVORS = ("latest", "debug")
GEM_SECRET = "gem-credential-7e1c4f"  # never in a log, a layer or the config
REGISTRY_FLAGS = ("--insecure", "--insecure-pull")


@dataclass
class Executor:
    """Runs ``/kaniko/executor`` in a fresh container of one flavor of the image."""

    flavor: str
    image: UnpackedImage
    scratch: Path
    tmp: Path

    def run(
        self,
        context: Path,
        flags: Sequence[str],
        *,
        files: Mapping[str, str] | None = None,
        container: Container | None = None,
    ) -> ContainerResult:
        """Build with ``flags``; ``files`` (container path -> text, e.g. the docker
        config or the seed's secret) are bound in (latest) or written by the shell
        before the executor starts (debug)."""
        files = dict(files or {})
        argv = ["/kaniko/executor", *flags]
        binds: list[Bind] = []
        if self.flavor == "debug":
            writes = [
                f"mkdir -p {shlex.quote(str(Path(p).parent))} && "
                f"printf '%s' {shlex.quote(text)} > {shlex.quote(p)}"
                for p, text in files.items()
            ]
            script = " && ".join([*writes, shlex.join(argv)])
            argv = ["/busybox/sh", "-c", script]
        else:
            for index, (path, text) in enumerate(files.items()):
                source = self.tmp / f"bound-{index}"
                source.write_text(text)
                binds.append(Bind(source, path, readonly=True))
        if container is not None:
            return container.run(argv)
        with Container(self.image, self.scratch, context=context, binds=binds) as box:
            return box.run(argv)


@pytest.fixture(params=FLAVORS)
def executor(
    request: pytest.FixtureRequest,
    executor_image: UnpackedImage,
    debug_image: UnpackedImage,
    container_scratch: Path,
    tmp_path: Path,
) -> Executor:
    image = executor_image if request.param == "latest" else debug_image
    return Executor(request.param, image, container_scratch / "builds", tmp_path)


def _context(tmp_path: Path, dockerfile: str, files: Mapping[str, str] | None = None) -> Path:
    ctx = tmp_path / "context"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    for name, text in (files or {}).items():
        (ctx / name).parent.mkdir(parents=True, exist_ok=True)
        (ctx / name).write_text(text)
    return ctx


def _rootfs(ref: str, tmp_path: Path, name: str = "pulled", *, creds: str | None = None) -> Path:
    layout, tag = pull_to_oci(ref, tmp_path / f"{name}-oci", creds=creds)
    return umoci_unpack(layout, tag, tmp_path / f"{name}-bundle")


def _ok(result: ContainerResult) -> ContainerResult:
    assert result.status == 0, f"exit {result.status}\n{result.output[-6000:]}"
    return result


def test_run_reads_proc_self_status(
    executor: Executor, bases: Bases, registry: RegistryServer, tmp_path: Path
) -> None:
    ctx = _context(
        tmp_path,
        f"FROM {bases.busybox}\n"
        "RUN grep CapEff /proc/self/status > /capeff && ps > /ps.txt && "
        "readlink /proc/self/exe > /exe\n",
    )
    dest = f"{registry.host}/container/proc-{executor.flavor}:1"
    _ok(executor.run(ctx, ["--destination", dest, *REGISTRY_FLAGS]))
    rootfs = _rootfs(dest, tmp_path)
    assert (rootfs / "capeff").read_text().split() == ["CapEff:", "00000000a80425fb"]
    assert (rootfs / "exe").read_text() == "/bin/busybox\n"
    assert not (rootfs / "kaniko").exists()
    assert not (rootfs / ".dockerenv").exists()


def test_base_without_glibc(
    executor: Executor, bases: Bases, registry: RegistryServer, tmp_path: Path
) -> None:
    """A base whose ``/lib`` holds files named as glibc's that are not libraries (a
    musl Alpine would have its own): the executor keeps working once they are on
    ``/`` (pull, RUN, snapshot, push all come after)."""
    ctx = _context(tmp_path, f"FROM {bases.trap}\nRUN echo ok > /ok && ls /lib > /lib.txt\n")
    dest = f"{registry.host}/container/trap-{executor.flavor}:1"
    _ok(executor.run(ctx, ["--destination", dest, *REGISTRY_FLAGS]))
    rootfs = _rootfs(dest, tmp_path)
    assert (rootfs / "ok").read_text() == "ok\n"
    assert (rootfs / "lib/x86_64-linux-gnu/libc.so.6").read_text() == "not a library\n"


def test_multistage_copy_from_another_base(
    executor: Executor, bases: Bases, registry: RegistryServer, tmp_path: Path
) -> None:
    ctx = _context(
        tmp_path,
        f"FROM {bases.busybox} AS build\n"
        "COPY src/ /src/\n"
        "RUN mkdir /out && cat /src/a.txt /src/b.txt > /out/artifact && "
        "grep -c . /proc/self/mountinfo > /out/mounts\n"
        f"FROM {bases.trap} AS final\n"
        "COPY --from=build /out/artifact /app/artifact\n"
        "RUN test ! -e /src && test ! -e /out && wc -c < /app/artifact > /app/size\n"
        'CMD ["cat", "/app/artifact"]\n',
        {"src/a.txt": "alpha\n", "src/b.txt": "beta\n"},
    )
    dest = f"{registry.host}/container/multistage-{executor.flavor}:1"
    _ok(executor.run(ctx, ["--destination", dest, *REGISTRY_FLAGS]))
    rootfs = _rootfs(dest, tmp_path)
    assert (rootfs / "app/artifact").read_text() == "alpha\nbeta\n"
    assert (rootfs / "app/size").read_text().strip() == "11"
    assert not (rootfs / "src").exists()
    assert not (rootfs / "out").exists()
    assert (rootfs / "lib/x86_64-linux-gnu/libc.so.6").exists()
    assert skopeo_inspect(dest, config=True)["config"]["Cmd"] == ["cat", "/app/artifact"]


def test_failing_run_keeps_its_status_and_kaniko(
    executor: Executor, bases: Bases, registry: RegistryServer, tmp_path: Path
) -> None:
    ctx = _context(
        tmp_path, f"FROM {bases.busybox}\nRUN echo about to fail && exit 3\nRUN echo never\n"
    )
    dest = f"{registry.host}/container/failing-{executor.flavor}:1"
    with Container(executor.image, executor.scratch, context=ctx) as box:
        result = executor.run(ctx, ["--destination", dest, *REGISTRY_FLAGS], container=box)
        assert result.status == 3, result.output
        assert "about to fail" in result.output
        assert "never" not in result.stdout
        assert "Traceback" not in result.output
        touched = [(p, how) for p, how in box.changed_files("/kaniko") if how != "added"]
        assert touched == [], "the image's /kaniko files are intact"
        again = box.run(["/kaniko/executor", "--version"])
        assert again.status == 0, again.output


def test_registry_ca_mounted_into_kaniko_ssl_certs(
    executor: Executor, tls_registry: RegistryServer, tmp_path: Path
) -> None:
    """Kaniko's documented way to trust a private registry: its CA file placed in
    ``/kaniko/ssl/certs`` (``SSL_CERT_DIR``), under any name."""
    assert tls_registry.ca is not None
    ctx = _context(tmp_path, "FROM scratch\nCOPY hello.txt /\n", {"hello.txt": "hi\n"})
    dest = f"{tls_registry.host}/container/tls-{executor.flavor}:1"
    ca = tls_registry.ca.read_text()
    _ok(executor.run(ctx, ["--destination", dest], files={"/kaniko/ssl/certs/my-ca.crt": ca}))
    untrusted = executor.run(ctx, ["--destination", dest])
    assert untrusted.status != 0
    assert "certificate verify failed" in untrusted.output


def _docker_config(*hosts: str) -> str:
    token = base64.b64encode(f"{AUTH_USER}:{AUTH_PASSWORD}".encode()).decode()
    return json.dumps({"auths": {host: {"auth": token} for host in hosts}})


SEED_DOCKERFILE = """\
FROM busybox:1 AS base
WORKDIR /app
COPY Gemfile /app/
RUN --mount=type=secret,id=gemserver_credentials,dst=/kaniko/gemserver_credentials \\
    sha256sum < /kaniko/gemserver_credentials | cut -d' ' -f1 > /app/credentials.sha256 && \\
    echo "gems installed with $(wc -c < /kaniko/gemserver_credentials)-byte credentials" \\
      > /app/bundle.log

FROM base AS test
COPY spec/ /app/spec/
RUN cat /app/spec/*.txt > /app/test-report && grep -c . /proc/self/status > /app/proc-lines

FROM base AS production
COPY app.rb /app/
RUN echo production > /app/stage
CMD ["cat", "/app/app.rb"]
"""


def test_seed_gitlab_job(
    executor: Executor,
    bases: Bases,
    registry: RegistryServer,
    auth_registry: RegistryServer,
    tmp_path: Path,
) -> None:
    """The seed's job: the secret file written to ``/kaniko/gemserver_credentials``
    (no ``--secret`` flag), ``--target test`` then ``--target production`` with two
    destinations, the cache repo, a Docker Hub base through ``--registry-mirror``;
    the whole job twice, the second time from the cache."""
    ctx = _context(
        tmp_path,
        SEED_DOCKERFILE,
        {"Gemfile": "source 'https://gems.example'\n", "spec/a.txt": "1 example, 0 failures\n",
         "app.rb": "puts 'hello'\n"},
    )  # fmt: skip
    project = f"{auth_registry.host}/group/project-{executor.flavor}"
    common = [
        "--context", "/workspace", "--dockerfile", "/workspace/Dockerfile",
        "--cache=true", f"--cache-repo={project}/cache",
        f"--registry-mirror={registry.host}",
        "--skip-unused-stages", "--snapshot-mode=redo", "--use-new-run",
        *REGISTRY_FLAGS,
    ]  # fmt: skip
    jobs = [
        ["--target", "test", "--destination", f"{project}:test"],
        ["--target", "production", "--destination", f"{project}:sha1",
         "--destination", f"{project}:latest"],
    ]  # fmt: skip
    files = {
        "/kaniko/.docker/config.json": _docker_config(auth_registry.host),
        "/kaniko/gemserver_credentials": GEM_SECRET,
    }
    logs = []
    for _attempt in range(2):
        for flags in jobs:
            result = _ok(executor.run(ctx, [*common, *flags], files=files))
            assert GEM_SECRET not in result.output
            logs.append(result.output)
    print(f"\n[{executor.flavor}] cached layers used per run:",
          [log.lower().count("using cached layer") for log in logs])  # fmt: skip
    hits = [log.lower().count("using cached layer") for log in logs[2:]]
    assert all(hits), "the second job hits the cache"

    test_fs = _rootfs(f"{project}:test", tmp_path, "test", creds=f"{AUTH_USER}:{AUTH_PASSWORD}")
    assert (test_fs / "app/test-report").read_text() == "1 example, 0 failures\n"
    assert f"{len(GEM_SECRET)}-byte credentials" in (test_fs / "app/bundle.log").read_text()
    expected = hashlib.sha256(GEM_SECRET.encode()).hexdigest()
    assert (test_fs / "app/credentials.sha256").read_text().strip() == expected
    assert not (test_fs / "kaniko").exists()
    creds = f"{AUTH_USER}:{AUTH_PASSWORD}"
    prod = skopeo_inspect(f"{project}:sha1", creds=creds)
    assert prod["Digest"] == skopeo_inspect(f"{project}:latest", creds=creds)["Digest"]
    prod_fs = _rootfs(f"{project}:latest", tmp_path, "prod", creds=f"{AUTH_USER}:{AUTH_PASSWORD}")
    assert (prod_fs / "app/stage").read_text() == "production\n"
    assert not (prod_fs / "app/spec").exists()
    for layer in prod_fs.rglob("*"):
        if layer.is_file() and not layer.is_symlink():
            assert GEM_SECRET.encode() not in layer.read_bytes(), layer


@pytest.mark.slow
def test_debian_apt_get(
    executor: Executor, debian_base: DebianBase, registry: RegistryServer, tmp_path: Path
) -> None:
    ctx = _context(
        tmp_path,
        f"FROM {debian_base.ref}\n"
        "RUN apt-get update && apt-get install -y --no-install-recommends hello && "
        "rm -rf /var/lib/apt/lists/* && hello > /greeting\n",
    )
    dest = f"{registry.host}/container/debian-apt-{executor.flavor}:1"
    _ok(executor.run(ctx, ["--destination", dest, *REGISTRY_FLAGS]))
    rootfs = _rootfs(dest, tmp_path)
    assert (rootfs / "greeting").read_text() == "Hello, world!\n"
    assert (rootfs / "usr/bin/hello").is_file()


def test_warm_rebuild_in_place(
    executor: Executor, bases: Bases, registry: RegistryServer, tmp_path: Path
) -> None:
    """The layer cache in place (the stage's rootfs is the container's ``/``): the second
    build runs no RUN, and its COPY, the last step of the stage to need files, unpacks
    only its destination (through a symlink a cached layer made) onto ``/``."""
    ctx = _context(
        tmp_path,
        f"FROM {bases.busybox}\n"
        "RUN mkdir -p /real && ln -s /real /link && echo same > /real/same\n"
        "COPY files/ /link/\n"
        "RUN cat /link/new /link/same > /copied\n",
        {"files/new": "new\n", "files/same": "same\n"},
    )
    cache = f"{registry.host}/container/layer-cache-{executor.flavor}"
    outputs = []
    for n in (1, 2):
        dest = f"{registry.host}/container/warm-{executor.flavor}:{n}"
        flags = ["--destination", dest, "--cache=true", f"--cache-repo={cache}"]
        outputs.append(
            _ok(executor.run(ctx, [*flags, "--verbosity=debug", *REGISTRY_FLAGS])).output
        )
    assert outputs[1].lower().count("using cached layer") == 2, outputs[1]
    assert "step 2: unpacking only" in outputs[1], outputs[1]
    for n in (1, 2):
        rootfs = _rootfs(f"{registry.host}/container/warm-{executor.flavor}:{n}", tmp_path, str(n))
        assert (rootfs / "copied").read_text() == "new\nsame\n"
        assert (rootfs / "real/new").read_text() == "new\n"
        assert (rootfs / "link").is_symlink()
        assert not (rootfs / "kaniko").exists()
