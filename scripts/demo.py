"""The README's main job: a real build against a local registry, from an offline base.

1. starts Debian's ``docker-registry`` on a free loopback port (own config, temp storage);
2. makes a busybox base image offline with pykaniko itself (``FROM scratch`` +
   ``ADD rootfs.tar /``, the rootfs made from ``busybox-static``) and pushes it;
3. builds ``examples/multistage`` with ``--target production --skip-unused-stages``
   and pushes it;
4. prints what skopeo sees, and the files umoci unpacks.

Run it with ``make demo``. Everything it starts is stopped at the end.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.baseimages import busybox_dockerfile, make_busybox_rootfs_tar  # noqa: E402
from tests.support.registry import RegistryServer  # noqa: E402


def pykaniko(*args: str) -> None:
    cmd = [sys.executable, "-m", "pykaniko", *args]
    print("$ pykaniko " + " ".join(args), flush=True)
    subprocess.run(cmd, check=True)


def main() -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pykaniko-demo-") as tmp:
        work = Path(tmp)
        server = RegistryServer(work / "registry")
        try:
            host = server.host
            print(f"registry listening on {host}")
            base_ctx = work / "busybox"
            base_ctx.mkdir()
            make_busybox_rootfs_tar(base_ctx)
            (base_ctx / "Dockerfile").write_text(busybox_dockerfile())
            pykaniko(
                "--context", str(base_ctx),
                "--dockerfile", str(base_ctx / "Dockerfile"),
                "--destination", f"{host}/busybox:1",
                "--insecure", "--insecure-pull", "--kaniko-dir", str(work / "kaniko"),
            )  # fmt: skip
            example = ROOT / "examples" / "multistage"
            digest_file = work / "digest"
            pykaniko(
                "--context", str(example),
                "--dockerfile", str(example / "Dockerfile"),
                "--destination", f"{host}/demo/app:1.0",
                "--destination", f"{host}/demo/app:latest",
                "--build-arg", f"BASE={host}/busybox:1",
                "--target", "production", "--skip-unused-stages",
                "--snapshot-mode=redo", "--use-new-run",
                "--insecure=true", "--insecure-pull=true",
                "--digest-file", str(digest_file),
                "--kaniko-dir", str(work / "kaniko"),
            )  # fmt: skip
            print(f"\ndigest file: {digest_file.read_text()}")
            print("\n$ skopeo inspect --tls-verify=false docker://" + f"{host}/demo/app:1.0")
            out = subprocess.run(
                ["skopeo", "inspect", "--tls-verify=false", f"docker://{host}/demo/app:1.0"],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            info = json.loads(out.stdout)
            shown = {k: info[k] for k in ("Name", "Digest", "Architecture", "Os", "Layers")}
            shown["Env"] = info.get("Env")
            shown["Labels"] = info.get("Labels")
            print(json.dumps(shown, indent=2))
            oci = work / "oci"
            subprocess.run(
                ["skopeo", "copy", "-q", "--src-tls-verify=false",
                 f"docker://{host}/demo/app:1.0", f"oci:{oci}:app"],
                check=True,
            )  # fmt: skip
            bundle = work / "bundle"
            subprocess.run(
                ["umoci", "unpack", "--image", f"{oci}:app", str(bundle)],
                check=True, capture_output=True,
            )  # fmt: skip
            app = bundle / "rootfs" / "usr" / "local" / "bin" / "app"
            st = app.stat()
            print(f"\numoci unpack: /usr/local/bin/app mode {oct(st.st_mode & 0o7777)} "
                  f"owner {st.st_uid}:{st.st_gid}; /debug.txt present: "
                  f"{(bundle / 'rootfs' / 'debug.txt').exists()}")  # fmt: skip
            print(f"\ndemo finished in {time.monotonic() - started:.1f}s")
        finally:
            server.stop()
            shutil.rmtree(work / "kaniko", ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
