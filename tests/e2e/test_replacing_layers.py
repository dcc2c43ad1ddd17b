"""A base image whose layers name paths again (a directory, then a file at the same path,
then a hardlink there; a file becoming a directory; symlinks both ways), as containerd
and umoci apply them: the later entry wins. Built on (RUN), copied out of (COPY --from),
pushed, and compared with what ``umoci unpack`` makes of the same base."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from pykaniko.image import mediatypes as mt
from pykaniko.image.config import History, ImageConfig
from pykaniko.image.layerfile import LayerWriter
from pykaniko.image.manifest import Descriptor, Manifest
from tests.e2e.conftest import run_pykaniko
from tests.e2e.test_malicious_bases import _get_blob, _get_manifest, _push_blob, _put_manifest
from tests.support.readers import pull_to_oci, umoci_unpack
from tests.support.registry import RegistryServer

pytestmark = [pytest.mark.e2e, pytest.mark.root]

NAMES = ("target", "dup2", "d2f", "f2d", "s2d", "d2s", "f2l", "merge", "cross", "keep")


def _add(tf: tarfile.TarFile, kind: str, name: str, extra: str = "", mode: int = 0o644) -> None:
    ti = tarfile.TarInfo(name)
    ti.mtime = 1_700_000_000
    ti.mode = mode
    data = b""
    if kind == "dir":
        ti.type = tarfile.DIRTYPE
    elif kind == "file":
        data = extra.encode()
    elif kind == "sym":
        ti.type, ti.linkname = tarfile.SYMTYPE, extra
    elif kind == "link":
        ti.type, ti.linkname = tarfile.LNKTYPE, extra
    ti.size = len(data)
    tf.addfile(ti, io.BytesIO(data))


def _lower() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        _add(tf, "file", "target", "hardlink target\n")
        _add(tf, "dir", "keep", mode=0o755)
        _add(tf, "file", "keep/k", "k\n")
        # the case: one path three times in one layer
        _add(tf, "dir", "dup2", mode=0o755)
        _add(tf, "file", "dup2/child", "child\n")
        _add(tf, "file", "dup2", "file\n")
        _add(tf, "link", "dup2", "target")
        _add(tf, "dir", "d2f", mode=0o755)
        _add(tf, "file", "d2f/x", "x\n")
        _add(tf, "file", "d2f", "now a file\n")
        _add(tf, "file", "f2d", "was a file\n")
        _add(tf, "dir", "f2d", mode=0o750)
        _add(tf, "file", "f2d/y", "y\n")
        _add(tf, "sym", "s2d", "keep")
        _add(tf, "dir", "s2d", mode=0o755)
        _add(tf, "file", "s2d/z", "z\n")
        _add(tf, "dir", "d2s", mode=0o755)
        _add(tf, "file", "d2s/w", "w\n")
        _add(tf, "sym", "d2s", "keep")
        _add(tf, "file", "f2l", "before\n")
        _add(tf, "link", "f2l", "target")
        _add(tf, "dir", "merge", mode=0o700)
        _add(tf, "file", "merge/a", "a\n")
        _add(tf, "dir", "cross", mode=0o755)
        _add(tf, "dir", "cross/sub", mode=0o755)
        _add(tf, "file", "cross/sub/deep", "deep\n")
    return buf.getvalue()


def _upper() -> bytes:
    """The second layer replaces what the first made."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        _add(tf, "dir", "merge", mode=0o751)
        _add(tf, "file", "merge/b", "b\n")
        _add(tf, "file", "cross", "cross is a file now\n")
        _add(tf, "sym", "f2l", "target")
    return buf.getvalue()


def push_image(
    registry: RegistryServer, busybox_image: str, repo: str, tars: list[bytes], work: Path
) -> str:
    """``busybox`` plus the layer ``tars``, pushed as ``HOST/repo:1``."""
    host = registry.host
    base_repo_tag = busybox_image.removeprefix(host + "/")
    base = _get_manifest(host, base_repo_tag)
    base_repo = base_repo_tag.partition(":")[0]
    for desc in base.layers:
        _push_blob(host, repo, _get_blob(host, base_repo, desc.digest))
    config = ImageConfig.parse(_get_blob(host, base_repo, base.config.digest))
    descs = [Descriptor(mt.OCI_LAYER_GZIP, d.digest, d.size) for d in base.layers]
    diff_ids = list(config.diff_ids)
    history = list(config.history)
    for i, tar in enumerate(tars):
        writer = LayerWriter(work / f"layer{i}.tar.gz", compression="gzip", threads=1)
        writer.write(tar)
        layer = writer.close()
        assert _push_blob(host, repo, layer.path.read_bytes()) == layer.digest
        descs.append(Descriptor(mt.OCI_LAYER_GZIP, layer.digest, layer.size))
        diff_ids.append(layer.diff_id)
        history.append(History.from_json({"created_by": f"layer {i}"}))
    new = ImageConfig(
        architecture=config.architecture,
        os=config.os,
        variant=config.variant,
        created=config.created,
        config=config.config,
        diff_ids=tuple(diff_ids),
        history=tuple(history),
        extra=config.extra,
    )
    raw = new.to_json()
    digest = _push_blob(host, repo, raw)
    manifest = Manifest.build(
        media_type=mt.OCI_MANIFEST,
        config=Descriptor(mt.OCI_CONFIG, digest, len(raw)),
        layers=tuple(descs),
    )
    _put_manifest(host, repo, "1", manifest)
    return f"{host}/{repo}:1"


def _tree(root: Path) -> dict[str, tuple[str, int, str]]:
    """Our names below ``root``: kind, permission bits, content or link target."""
    out: dict[str, tuple[str, int, str]] = {}
    for top in NAMES:
        start = root / top
        if not os.path.lexists(start):
            continue
        todo = [start]
        while todo:
            p = todo.pop()
            st = p.lstat()
            rel = str(p.relative_to(root))
            if stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), "")
                todo.extend(p.iterdir())
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = ("sym", 0, os.readlink(p))
            else:
                data = hashlib.sha256(p.read_bytes()).hexdigest()[:16]
                out[rel] = ("file", stat.S_IMODE(st.st_mode), data)
    return out


def _build(tmp: Path, name: str, dockerfile: str, dest: str, kaniko_dir: Path, *extra: str) -> None:
    ctx = tmp / f"ctx-{name}"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    result = run_pykaniko(
        [
            "--context", str(ctx), "--dockerfile", str(ctx / "Dockerfile"),
            "--destination", dest, "--insecure", "--insecure-pull",
            "--kaniko-dir", str(kaniko_dir), *extra,
        ]
    )  # fmt: skip
    assert result.status == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr


def _unpack(ref: str, work: Path) -> Path:
    layout, tag = pull_to_oci(ref, work / "layout")
    return umoci_unpack(layout, tag, work / "bundle")


def _last_layer_names(ref: str) -> set[str]:
    host, _, rest = ref.partition("/")
    manifest = _get_manifest(host, rest)
    blob = _get_blob(host, rest.partition(":")[0], manifest.layers[-1].digest)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as tf:
        return {m.name.removeprefix("./").rstrip("/") for m in tf.getmembers()}


@pytest.fixture(scope="module")
def base(
    registry: RegistryServer, busybox_image: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, dict[str, tuple[str, int, str]]]:
    """The base, pushed, and its tree as umoci unpacks it."""
    work = tmp_path_factory.mktemp("replacing")
    ref = push_image(registry, busybox_image, "replacing/base", [_lower(), _upper()], work)
    rootfs = _unpack(ref, work / "umoci")
    tree = _tree(rootfs)
    assert tree["dup2"][0] == "file"  # umoci: the last entry wins
    assert "dup2/child" not in tree
    assert (rootfs / "dup2").stat().st_ino == (rootfs / "target").stat().st_ino
    assert tree["merge"][1] == 0o751
    assert {"merge/a", "merge/b"} <= tree.keys()
    assert tree["cross"][0] == "file"
    return ref, tree


def test_copy_from_replacing_base_matches_umoci(
    base: tuple[str, dict[str, tuple[str, int, str]]],
    registry: RegistryServer,
    tmp_path: Path,
    kaniko_dir: Path,
) -> None:
    ref, expected = base
    out = f"{registry.host}/replacing/copy:1"
    _build(tmp_path, "copy", f"FROM scratch\nCOPY --from={ref} / /x\n", out, kaniko_dir)
    assert _tree(_unpack(out, tmp_path / "out") / "x") == expected


@pytest.mark.parametrize("mode", ["full", "redo", "time", "stat"])
def test_run_on_replacing_base_sees_only_its_changes(
    base: tuple[str, dict[str, tuple[str, int, str]]],
    registry: RegistryServer,
    tmp_path: Path,
    kaniko_dir: Path,
    mode: str,
) -> None:
    ref, before = base
    out = f"{registry.host}/replacing/run-{mode}:1"
    dockerfile = (
        f"FROM {ref}\n"
        "RUN rm -rf /f2d /cross && echo new > /merge/c && "
        "test \"$(cat /dup2)\" = 'hardlink target'\n"
    )
    _build(tmp_path, "run", dockerfile, out, kaniko_dir, f"--snapshot-mode={mode}")
    # no phantom change from the base's replacements, and the whiteouts the RUN made
    names = _last_layer_names(out)
    if mode == "stat":
        # the sandbox's /etc/hosts and resolv.conf stubs move /etc's ctime (busybox has
        # neither file): stat mode carries the directory entry, nothing below it
        names.discard("etc")
    assert names == {".wh.f2d", ".wh.cross", "merge", "merge/c"}
    expected = {k: v for k, v in before.items() if not k.startswith(("f2d", "cross"))}
    got = _tree(_unpack(out, tmp_path / "out"))
    assert got.pop("merge/c")[0] == "file"
    assert got == expected
