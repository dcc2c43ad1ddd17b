"""The in-place mode end to end against a throw-away root directory (never ``/``): base
images unpacked onto the root around the "container's" own paths, stages parked,
taken over and brought back, RUN mounts emulated, and the image read back with
skopeo and umoci.

Builds inside a real unprivileged container, with ``/`` as the root, need the container
harness (``tests/container/``). RUN commands here only touch relative paths: a RUN is a
plain process of the host with the root as its cwd.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.readers import pull_to_oci, umoci_unpack
from tests.support.registry import RegistryServer

pytestmark = [pytest.mark.e2e, pytest.mark.root]

ROOT = Path(__file__).resolve().parents[2]
SECRET = "in-place-secret-never-in-images"


def _build(
    tmp_path: Path, root: Path, ctx: Path, dest: str, registry: RegistryServer, *, ok: bool = True
) -> str:
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "root": str(root),
                "context": str(ctx),
                "destination": dest,
                "registry": registry.host,
                "keep": ["/etc/hosts", "/workspace", "/secrets/pod/token"],
                "secrets": {"tok": str(root / "workspace" / "token")},
            }
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.inplace_root", str(spec)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    assert (done.returncode == 0) == ok, done.stdout + done.stderr
    assert SECRET not in done.stdout + done.stderr
    return done.stdout + done.stderr


@pytest.fixture
def container_root(tmp_path: Path) -> Path:
    """What the executor's container holds before the build: its kaniko dir, a bind
    mount at /etc/hosts, the workspace volume, and some files of its own image."""
    root = tmp_path / "root"
    (root / "kaniko" / ".docker").mkdir(parents=True)
    (root / "kaniko" / "executor").write_text("#!/kaniko/python\n")
    (root / "etc").mkdir()
    (root / "etc" / "hosts").write_text("10.0.0.7 runner\n")
    (root / "etc" / "own-image-file").write_text("removed before the base is unpacked\n")
    (root / "workspace").mkdir()
    (root / "workspace" / "token").write_text(SECRET)
    (root / "secrets" / "pod").mkdir(parents=True)  # a pod secret mounted below dirs
    (root / "secrets" / "pod" / "token").write_text("pod token\n")  # the image lacks
    (root / "usr" / "local").mkdir(parents=True)
    (root / "usr" / "local" / "leftover").write_text("x")
    os.chmod(root, 0o755)
    return root


def test_multi_stage_in_place(
    busybox_image: str, registry: RegistryServer, tmp_path: Path, container_root: Path
) -> None:
    ctx = container_root / "workspace" / "ctx"
    (ctx / "src").mkdir(parents=True)
    (ctx / "a.txt").write_text("A\n")
    (ctx / "b.txt").write_text("B\n")
    (ctx / "src" / "in-context.txt").write_text("bound\n")
    (ctx / "Dockerfile").write_text(
        f"FROM {busybox_image} AS a\n"
        "COPY a.txt /a.txt\n"
        "RUN echo ran-in-a > ra.txt\n"
        f"FROM {busybox_image} AS b\n"  # a is parked: COPY --from=a reads it later
        "COPY b.txt /b.txt\n"
        "FROM a AS c\n"  # a is still needed: c clears the root and unpacks a's layers
        "RUN echo c > rc.txt\n"
        "FROM c AS d\n"  # d is c's last user: it takes the root over where it is
        "RUN rm ra.txt && echo d > rd.txt\n"
        "FROM b AS final\n"  # b's last user: b comes back from its park, d is parked
        "COPY --from=a /a.txt /from-a.txt\n"
        "COPY --from=d /rc.txt /rd.txt /from-d/\n"
        "RUN --mount=type=secret,id=tok wc -c < run/secrets/tok > secret.len"
        " && cat from-a.txt from-d/rc.txt from-d/rd.txt > all.txt\n"
        "RUN --mount=type=cache,target=/cache echo 1 >> cache/n && cp cache/n cache.n\n"
        "RUN --mount=type=cache,target=/cache echo 2 >> cache/n && cp cache/n cache.n\n"
        "RUN --mount=type=bind,source=src,target=/src cp src/in-context.txt bound.txt\n"
        "RUN --mount=type=tmpfs,target=/home ls home | wc -l > tmpfs.count\n"
    )
    dest = f"{registry.host}/e2e/inplace:1"
    log = _build(tmp_path, container_root, ctx, dest, registry)
    layout, tag = pull_to_oci(dest, tmp_path / "oci")
    image = umoci_unpack(layout, tag, tmp_path / "bundle")
    assert (image / "b.txt").read_text() == "B\n"
    assert (image / "from-a.txt").read_text() == "A\n"
    assert (image / "all.txt").read_text() == "A\nc\nd\n"
    assert (image / "secret.len").read_text().strip() == str(len(SECRET))
    assert (image / "cache.n").read_text() == "1\n2\n"
    assert (image / "bound.txt").read_text() == "bound\n"
    assert (image / "tmpfs.count").read_text().strip() == "0"
    assert (image / "home" / "user").is_dir()  # the image's /home is back after the tmpfs
    for absent in ("a.txt", "ra.txt", "rc.txt", "run/secrets", "cache", "src", "workspace"):
        assert not (image / absent).exists(), absent
    # the container's own paths are untouched and never in a layer, nor the
    # directories holding them
    assert not (image / "etc" / "hosts").exists()
    assert not (image / "secrets").exists()
    assert (container_root / "secrets" / "pod" / "token").read_text() == "pod token\n"
    assert not (image / "kaniko").exists()
    assert (container_root / "etc" / "hosts").read_text() == "10.0.0.7 runner\n"
    assert (container_root / "kaniko" / "executor").is_file()
    assert (container_root / "workspace" / "token").read_text() == SECRET
    # the root holds the final stage now, and nothing of the container's own image
    assert (container_root / "b.txt").is_file()
    assert (container_root / "bin" / "busybox").is_file()
    assert not (container_root / "etc" / "own-image-file").exists()
    assert not (container_root / "usr" / "local" / "leftover").exists()
    assert not (container_root / "ra.txt").exists()
    # parked stages are gone once nobody reads them
    (work,) = (container_root / "kaniko").glob("build-*")
    assert not (work / "stages").exists() or list((work / "stages").iterdir()) == []
    assert "STEP" in log


def test_copy_into_the_context_is_refused(
    busybox_image: str, registry: RegistryServer, tmp_path: Path, container_root: Path
) -> None:
    """The context is the user's checkout inside the container: ``COPY . <context>``
    would copy every file onto itself."""
    ctx = container_root / "workspace" / "ctx"
    ctx.mkdir(parents=True)
    (ctx / "keep.txt").write_text("the user's file\n")
    (ctx / "Dockerfile").write_text(f"FROM {busybox_image}\nWORKDIR /workspace\nCOPY . ctx/\n")
    log = _build(
        tmp_path, container_root, ctx, f"{registry.host}/e2e/inplace:ctx", registry, ok=False
    )
    assert "COPY destination /workspace/ctx lies in" in log
    assert (ctx / "keep.txt").read_text() == "the user's file\n"


def test_directories_holding_kept_paths_stay_out_of_layers(
    busybox_image: str, registry: RegistryServer, tmp_path: Path, container_root: Path
) -> None:
    """``/secrets/pod`` holds a mounted token: it survives the clearing, and the first
    RUN's snapshot must not take it for something the image made."""
    ctx = container_root / "workspace" / "ctx"
    ctx.mkdir(parents=True)
    (ctx / "Dockerfile").write_text(f"FROM {busybox_image}\nRUN echo hi > made.txt\n")
    dest = f"{registry.host}/e2e/inplace:holders"
    _build(tmp_path, container_root, ctx, dest, registry)
    layout, tag = pull_to_oci(dest, tmp_path / "oci")
    image = umoci_unpack(layout, tag, tmp_path / "bundle")
    assert (image / "made.txt").read_text() == "hi\n"
    assert not (image / "secrets").exists()
