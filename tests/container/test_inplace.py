"""The in-place mode where it is meant to run: ``/kaniko/executor`` in an unprivileged
container (mount and unshare refused), so ``auto`` takes in-place and the stage rootfs
is the container's own ``/``. RUN sees the container's ``/proc``; RUN mounts are
emulated; stages are parked and brought back; daemons are killed after their step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.readers import pull_to_oci, umoci_unpack
from tests.support.registry import RegistryServer

# the harness (tests/support/container.py) and its fixtures come with the executor image
harness = pytest.importorskip("tests.support.container", reason="needs the container harness")

pytestmark = [pytest.mark.container, pytest.mark.root, pytest.mark.e2e]

SECRET = "in-place-secret-5d2a"
GEM = "gem-credential-in-place-81f0"
FLAGS = ("--insecure", "--insecure-pull")


def _context(tmp_path: Path, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    ctx = tmp_path / "context"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    for name, text in (files or {}).items():
        (ctx / name).parent.mkdir(parents=True, exist_ok=True)
        (ctx / name).write_text(text)
    return ctx


def _run(image: Any, scratch: Path, ctx: Path, flags: list[str], binds: Any = ()) -> Any:
    """``/kaniko/executor`` with ``flags`` in a fresh container of ``image``."""
    with harness.Container(image, scratch, context=ctx, binds=list(binds)) as box:
        result = box.run(["/kaniko/executor", "--context", "/workspace", *flags, *FLAGS])
    assert result.status == 0, f"exit {result.status}\n{result.output[-6000:]}"
    assert "RUN isolation: in-place (mount namespaces are refused" in result.output
    return result


def _image(ref: str, tmp_path: Path) -> Path:
    layout, tag = pull_to_oci(ref, tmp_path / "oci")
    return umoci_unpack(layout, tag, tmp_path / "bundle")


@pytest.fixture
def scratch(container_scratch: Path) -> Path:
    return container_scratch / "inplace"


def test_proc_heredoc_and_daemons(
    executor_image: Any,
    bases: Any,
    registry: RegistryServer,
    scratch: Path,
    tmp_path: Path,
) -> None:
    busybox = bases.busybox
    ctx = _context(
        tmp_path,
        f"FROM {busybox}\n"
        "RUN grep -c . /proc/self/status > /status-lines && readlink /proc/self/exe > /exe\n"
        "RUN <<'EOF'\n#!/bin/sh\necho \"script $0\" > /heredoc\nEOF\n"
        "RUN (setsid sleep 1000 &) ; echo started\n"
        "RUN ps -o args | grep -c '^sleep 1000' > /daemons || true\n",
    )
    dest = f"{registry.host}/container/inplace-proc:1"
    _run(executor_image, scratch, ctx, ["--destination", dest])
    image = _image(dest, tmp_path)
    assert int((image / "status-lines").read_text()) > 10
    assert (image / "exe").read_text() == "/bin/busybox\n"
    assert (image / "heredoc").read_text() == "script /dev/pipes/EOF\n"
    assert (image / "daemons").read_text().strip() == "0"  # killed after its step
    for absent in ("dev/pipes", "kaniko", ".dockerenv", "proc/self"):
        assert not (image / absent).exists(), absent


def test_every_mount_type_and_the_kaniko_dir_secret(
    executor_image: Any,
    bases: Any,
    registry: RegistryServer,
    scratch: Path,
    tmp_path: Path,
) -> None:
    busybox = bases.busybox
    secret, gem = tmp_path / "secret", tmp_path / "gem"
    secret.write_text(SECRET)
    gem.write_text(GEM)
    dst = "/kaniko/gemserver_credentials"
    ctx = _context(
        tmp_path,
        f"FROM {busybox}\n"
        "RUN --mount=type=secret,id=tok,mode=0440 wc -c < /run/secrets/tok > /tok.len"
        " && stat -c %a /run/secrets/tok > /tok.mode\n"
        f"RUN --mount=type=secret,id=gemserver_credentials,dst={dst} wc -c < {dst} > /gem.len\n"
        "RUN --mount=type=secret,id=gemserver_credentials wc -c"
        " < /run/secrets/gemserver_credentials > /gem2.len\n"
        "RUN --mount=type=cache,target=/var/cache/app echo 1 >> /var/cache/app/n\n"
        "RUN --mount=type=cache,target=/var/cache/app cp /var/cache/app/n /cache.n\n"
        "RUN --mount=type=bind,source=src,target=/src,rw echo x > /src/a.txt"
        " && cp /src/a.txt /bound-rw\n"
        "RUN --mount=type=bind,source=src,target=/src cp /src/a.txt /bound-ro\n"
        "RUN --mount=type=tmpfs,target=/home ls /home | wc -l > /tmpfs.count\n",
        {"src/a.txt": "from the context\n"},
    )
    dest = f"{registry.host}/container/inplace-mounts:1"
    binds = [harness.Bind(secret, "/secrets/tok", True), harness.Bind(gem, dst, True)]
    result = _run(
        executor_image,
        scratch,
        ctx,
        ["--destination", dest, "--secret", "id=tok,src=/secrets/tok"],
        binds,
    )
    assert SECRET not in result.output
    assert GEM not in result.output
    image = _image(dest, tmp_path)
    assert (image / "tok.len").read_text().strip() == str(len(SECRET))
    assert (image / "tok.mode").read_text().strip() == "440"
    assert (image / "gem.len").read_text().strip() == str(len(GEM))
    assert (image / "gem2.len").read_text().strip() == str(len(GEM))
    assert (image / "cache.n").read_text() == "1\n"
    assert (image / "bound-rw").read_text() == "x\n"
    assert (image / "bound-ro").read_text() == "from the context\n"
    assert (image / "tmpfs.count").read_text().strip() == "0"
    assert (image / "home" / "user").is_dir()  # the image's /home is back
    for absent in ("run/secrets", "var/cache/app", "src", "kaniko", "secrets"):
        assert not (image / absent).exists(), absent
    assert (ctx / "src" / "a.txt").read_text() == "from the context\n"
    for layer in image.rglob("*"):
        if layer.is_file() and not layer.is_symlink():
            data = layer.read_bytes()
            assert SECRET.encode() not in data
            assert GEM.encode() not in data


def test_multi_stage_parks_and_takes_over(
    executor_image: Any,
    bases: Any,
    registry: RegistryServer,
    scratch: Path,
    tmp_path: Path,
) -> None:
    b = bases  # busybox and trap: two different bases
    ctx = _context(
        tmp_path,
        f"FROM {b.busybox} AS a\n"
        "COPY a.txt /a.txt\n"
        "RUN echo ran-in-a > /ra.txt\n"
        f"FROM {b.trap} AS other\n"
        "RUN ls /lib > /other-lib.txt\n"
        "FROM a AS c\n"
        "RUN echo c > /rc.txt\n"
        "FROM c AS d\n"
        "RUN rm /ra.txt && echo d > /rd.txt\n"
        f"FROM {b.busybox} AS final\n"
        "COPY --from=a /a.txt /from-a.txt\n"
        "COPY --from=other /other-lib.txt /from-other.txt\n"
        "COPY --from=d /rc.txt /rd.txt /from-d/\n"
        "RUN cat /from-a.txt /from-d/rc.txt /from-d/rd.txt > /all.txt"
        " && ls /lib 2>&1 | wc -l > /lib.count\n",
        {"a.txt": "A\n"},
    )
    dest = f"{registry.host}/container/inplace-stages:1"
    _run(executor_image, scratch, ctx, ["--destination", dest])
    image = _image(dest, tmp_path)
    assert (image / "all.txt").read_text() == "A\nc\nd\n"
    assert "libc.so.6" not in (image / "from-other.txt").read_text()  # /lib is a dir there
    assert (image / "from-other.txt").read_text().split() == ["ld-musl-x86_64.so.1",
                                                              "x86_64-linux-gnu"]  # fmt: skip
    assert not (image / "lib").exists()  # nothing of the other base leaked into final
    assert not (image / "a.txt").exists()
    assert not (image / "ra.txt").exists()
