"""One-off faults survived end to end through the command line, with default flags:
the base is pulled and the result pushed through a proxy that cuts, resets or
corrupts one request, and the pushed image is complete and right."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import run_pykaniko
from tests.support.readers import skopeo_inspect
from tests.support.registry import FaultProxy, RegistryServer

pytestmark = [pytest.mark.e2e, pytest.mark.root]

CASES = [
    ("truncate", "GET", r"/blobs/sha256:"),
    ("reset-mid-body", "GET", r"/blobs/sha256:"),
    ("corrupt", "GET", r"/blobs/sha256:"),
    ("corrupt", "GET", r"/manifests/"),
    ("corrupt-request", "PUT", r"/blobs/uploads/"),
    ("truncate-request", "PUT", r"/blobs/uploads/"),
    ("reset-request", "PUT", r"/blobs/uploads/"),
    ("corrupt-request", "PUT", r"/manifests/"),
]


@pytest.mark.parametrize(("kind", "method", "path"), CASES, ids=[f"{m}-{k}" for k, m, _ in CASES])
def test_one_off_fault_is_survived(
    kind: str,
    method: str,
    path: str,
    busybox_image: str,
    registry: RegistryServer,
    fault_proxy: FaultProxy,
    tmp_path: Path,
) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "f.txt").write_text("payload\n" * 500)
    base = busybox_image.replace(registry.host, fault_proxy.host, 1)
    (ctx / "Dockerfile").write_text(f"FROM {base}\nRUN echo {kind} > /kind\nCOPY f.txt /f.txt\n")
    fault_proxy.add_rule(kind, method, path)
    repo = f"faults/{method.lower()}-{kind}"
    result = run_pykaniko(
        [
            "--context", str(ctx), "--dockerfile", str(ctx / "Dockerfile"),
            "--destination", f"{fault_proxy.host}/{repo}:1",
            "--kaniko-dir", str(tmp_path / "kaniko"),  # a fresh store: the base is pulled
        ]
    )  # fmt: skip
    assert result.status == 0, result.stderr[-3000:]
    assert [f[0] for f in fault_proxy.faults] == [kind]
    assert "Traceback" not in result.stderr
    info = skopeo_inspect(f"{registry.host}/{repo}:1")
    assert len(info["Layers"]) == 3


def _build(ctx: Path, base: str, dest: str, tmp_path: Path, *extra: str) -> tuple[int, str]:
    (ctx / "Dockerfile").write_text(f"FROM {base}\nRUN true\n")
    result = run_pykaniko(
        [
            "--context", str(ctx), "--dockerfile", str(ctx / "Dockerfile"),
            "--destination", dest, "--kaniko-dir", str(tmp_path / "kaniko"), *extra,
        ]
    )  # fmt: skip
    return result.status, result.stderr


def test_a_registry_that_stays_broken_is_named(
    busybox_image: str, registry: RegistryServer, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    fault_proxy.add_rule("503", "GET", r"/manifests/", times=1000)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    base = busybox_image.replace(registry.host, fault_proxy.host, 1)
    status, stderr = _build(ctx, base, f"{registry.host}/faults/never:1", tmp_path)
    assert status == 1
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("error: ")
    assert fault_proxy.host in line
    assert "busybox" in line
    assert "HTTP 503" in line
    assert "Traceback" not in stderr


def test_no_retries_when_the_flag_says_none(
    busybox_image: str, registry: RegistryServer, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    fault_proxy.add_rule("corrupt", "GET", r"/blobs/sha256:")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    base = busybox_image.replace(registry.host, fault_proxy.host, 1)
    dest = f"{registry.host}/faults/noretry:1"
    status, stderr = _build(ctx, base, dest, tmp_path, "--image-download-retry=0")
    assert status == 1
    assert "pull blob sha256:" in stderr
    assert "with digest sha256:" in stderr
