"""Independent readers of pushed images: skopeo (inspect, copy to an OCI layout) and
umoci (unpack a layout with whiteouts applied). None of them shares code with pykaniko,
so what they see is what any other client would see.

Every helper raises AssertionError carrying the tool's stderr when the tool fails.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

__all__ = [
    "dir_to_oci",
    "docker_ref",
    "pull_raw",
    "pull_to_oci",
    "raw_config",
    "readers_available",
    "run_tool",
    "skopeo_inspect",
    "umoci_unpack",
]


def readers_available() -> bool:
    return all(shutil.which(tool) for tool in ("skopeo", "umoci"))


def run_tool(argv: list[str], *, timeout: float = 300) -> str:
    """Run ``argv``; its stdout, or AssertionError naming the command and its stderr."""
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} exited {proc.returncode}\n"
            f"stderr:\n{proc.stderr.strip()}\nstdout:\n{proc.stdout.strip()[-2000:]}"
        )
    return proc.stdout


def docker_ref(ref: str) -> str:
    """``HOST/REPO:TAG`` -> ``docker://HOST/REPO:TAG``; a ref with a transport is kept."""
    return ref if ref.startswith("docker://") else f"docker://{ref}"


def skopeo_inspect(
    ref: str, *, config: bool = False, raw: bool = False, creds: str | None = None
) -> dict[str, Any]:
    """``skopeo inspect`` over plain HTTP: the summary, or the config (``config=True``),
    or the manifest as stored (``raw=True``), parsed.

    ``config=True`` shows the config converted to the OCI shape, which has no
    ``Healthcheck``, ``OnBuild`` or ``Shell``: read those with :func:`raw_config`.
    """
    argv = ["skopeo", "inspect", "--tls-verify=false"]
    if creds:
        argv += ["--creds", creds]
    if config:
        argv.append("--config")
    if raw:
        argv.append("--raw")
    argv.append(docker_ref(ref))
    out: dict[str, Any] = json.loads(run_tool(argv))
    return out


def pull_to_oci(
    ref: str, dest_dir: Path, tag: str = "image", *, creds: str | None = None
) -> tuple[Path, str]:
    """Copy ``ref`` from the registry into the OCI layout ``dest_dir``; (layout, tag).
    ``creds`` is ``USER:PASSWORD`` for a registry that wants them."""
    dest_dir.parent.mkdir(parents=True, exist_ok=True)
    auth = ["--src-creds", creds] if creds else []
    run_tool(
        [
            "skopeo",
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            *auth,
            docker_ref(ref),
            f"oci:{dest_dir}:{tag}",
        ]
    )
    return dest_dir, tag


def umoci_unpack(layout_dir: Path, tag: str, bundle_dir: Path) -> Path:
    """``umoci unpack`` the layout's ``tag`` into ``bundle_dir``; the bundle's rootfs."""
    if bundle_dir.exists():
        shutil.rmtree(bundle_dir)
    run_tool(["umoci", "unpack", "--image", f"{layout_dir}:{tag}", str(bundle_dir)])
    return bundle_dir / "rootfs"


def pull_raw(ref: str, dest_dir: Path) -> Path:
    """Copy ``ref`` unchanged (manifest, config and layers as pushed) into the skopeo
    ``dir:`` layout ``dest_dir``. Unlike ``oci:``, this converts nothing, so a Docker
    config keeps its Docker-only fields."""
    dest_dir.parent.mkdir(parents=True, exist_ok=True)
    run_tool(
        ["skopeo", "copy", "--quiet", "--src-tls-verify=false", docker_ref(ref), f"dir:{dest_dir}"]
    )
    return dest_dir


def raw_config(dir_layout: Path) -> dict[str, Any]:
    """The image config, as pushed, of a ``dir:`` layout made by :func:`pull_raw`."""
    manifest = json.loads((dir_layout / "manifest.json").read_text())
    if "config" not in manifest:
        raise AssertionError(f"{dir_layout}: not a single-image manifest: {manifest}")
    digest: str = manifest["config"]["digest"]
    out: dict[str, Any] = json.loads((dir_layout / digest.partition(":")[2]).read_bytes())
    return out


def dir_to_oci(dir_layout: Path, dest_dir: Path, tag: str = "image") -> tuple[Path, str]:
    """Convert a ``dir:`` layout into an OCI layout (for umoci); (layout, tag)."""
    run_tool(["skopeo", "copy", "--quiet", f"dir:{dir_layout}", f"oci:{dest_dir}:{tag}"])
    return dest_dir, tag
