"""Malicious base images through the whole pipeline: pull, verify, extract, RUN, COPY
--from, push.

Every case is a real image in the session registry: the busybox base layer (so ``RUN``
has a shell) plus one hand-made layer tar, under a Docker schema 2 or an OCI manifest.
Each is built twice with the pykaniko command, as ``FROM <evil>`` + ``RUN true`` and as
``FROM scratch`` + ``COPY --from=<evil> / /x``. Whatever the outcome, nothing outside
``--kaniko-dir`` may change: a sentinel directory on the host (outside the kaniko dir),
``/etc/passwd`` and the absolute host paths the layer names. A refusal is one
``error:`` line naming the problem; a success keeps the entry inside the image, which
the pushed ``COPY --from`` layer shows.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from pykaniko.image import mediatypes as mt
from pykaniko.image.config import History, ImageConfig
from pykaniko.image.layerfile import LayerWriter
from pykaniko.image.manifest import Descriptor, Manifest
from tests.e2e.conftest import CliResult, run_pykaniko
from tests.support.registry import FaultProxy, RegistryServer

pytestmark = [pytest.mark.e2e, pytest.mark.root]

Outcome = Literal["refused", "contained"]
Adder = Callable[[tarfile.TarFile, "Host"], None]

# -- the host side ------------------------------------------------------------------


@dataclass(frozen=True)
class Host:
    """What the layer aims at: a sentinel directory, /etc/passwd, loose /tmp paths."""

    sentinel: Path
    abs_name: Path  # an absolute name the layer writes (like /tmp/x), must never appear

    @property
    def s(self) -> str:
        """The sentinel path without its leading slash (a tar name, a link climb)."""
        return str(self.sentinel).lstrip("/")

    @property
    def climb(self) -> str:
        return "../" * 24 + self.s


def _make_host(tmp_path: Path) -> Host:
    sentinel = tmp_path / "sentinel"
    (sentinel / "keep").mkdir(parents=True)
    (sentinel / "victim").write_text("original victim\n")
    (sentinel / "keep" / "file").write_text("keep me\n")
    abs_name = Path("/tmp") / f"pykaniko-evil-{hashlib.sha256(bytes(tmp_path)).hexdigest()[:12]}"
    assert not abs_name.exists()
    return Host(sentinel=sentinel, abs_name=abs_name)


def _tree(root: Path) -> dict[str, tuple[int, str]]:
    """Every path below ``root`` (links not followed): mode and content hash."""
    out: dict[str, tuple[int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            p = Path(dirpath) / name
            st = p.lstat()
            digest = ""
            if stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                digest = os.readlink(p)
            out[str(p.relative_to(root))] = (st.st_mode, digest)
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class HostState:
    host: Host
    sentinel_tree: dict[str, tuple[int, str]] = field(default_factory=dict)
    passwd: str = ""
    passwd_stat: tuple[int, int, int] = (0, 0, 0)

    def take(self) -> HostState:
        st = os.stat("/etc/passwd")
        self.sentinel_tree = _tree(self.host.sentinel)
        self.passwd = _sha256(Path("/etc/passwd"))
        self.passwd_stat = (st.st_nlink, st.st_mode, st.st_uid)
        return self

    def assert_untouched(self) -> None:
        st = os.stat("/etc/passwd")
        assert _tree(self.host.sentinel) == self.sentinel_tree, "the host sentinel changed"
        assert _sha256(Path("/etc/passwd")) == self.passwd, "host /etc/passwd changed"
        assert (st.st_nlink, st.st_mode, st.st_uid) == self.passwd_stat
        assert not os.path.lexists(self.host.abs_name), f"{self.host.abs_name} was created"
        assert not os.path.lexists("/escape")
        assert not (self.host.sentinel.parent / "escape").exists()


# -- the layer tars -----------------------------------------------------------------


def _info(name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.mtime = 1_700_000_000
    return ti


def _dir(tf: tarfile.TarFile, name: str) -> None:
    tf.addfile(_info(name, tarfile.DIRTYPE, 0o755))


def _file(tf: tarfile.TarFile, name: str, data: bytes = b"pwned\n", mode: int = 0o644) -> None:
    ti = _info(name, mode=mode)
    ti.size = len(data)
    tf.addfile(ti, io.BytesIO(data))


def _sym(tf: tarfile.TarFile, name: str, target: str) -> None:
    ti = _info(name, tarfile.SYMTYPE, 0o777)
    ti.linkname = target
    tf.addfile(ti)


def _hard(tf: tarfile.TarFile, name: str, target: str) -> None:
    ti = _info(name, tarfile.LNKTYPE)
    ti.linkname = target
    tf.addfile(ti)


def _add_dotdot(tf: tarfile.TarFile, h: Host) -> None:
    _file(tf, "../escape")


def _add_dotdot_deep(tf: tarfile.TarFile, h: Host) -> None:
    _file(tf, h.climb + "/pwned")


def _add_absolute_name(tf: tarfile.TarFile, h: Host) -> None:
    _file(tf, str(h.abs_name))
    _file(tf, str(h.sentinel / "abs"))


def _add_dir_symlink_abs(tf: tarfile.TarFile, h: Host) -> None:
    _sym(tf, "link", str(h.sentinel))
    _file(tf, "link/pwned")
    _file(tf, "link/victim", b"overwritten\n")


def _add_dir_symlink_climb(tf: tarfile.TarFile, h: Host) -> None:
    _sym(tf, "link", h.climb)
    _file(tf, "link/pwned")
    _file(tf, "link/keep/file", b"overwritten\n")


def _add_file_symlink_abs(tf: tarfile.TarFile, h: Host) -> None:
    _sym(tf, "victim", str(h.sentinel / "victim"))
    _file(tf, "victim", b"overwritten through the link\n")
    _sym(tf, "passwd", "/etc/passwd")
    _file(tf, "passwd", b"root::0:0::/:/bin/sh\n")


def _add_chained_symlinks(tf: tarfile.TarFile, h: Host) -> None:
    _sym(tf, "a", "b/..")
    _sym(tf, "b", "/" + "/".join([".."] * 8))
    _file(tf, "a/" + h.s + "/pwned")


def _add_hardlink_abs(tf: tarfile.TarFile, h: Host) -> None:
    _hard(tf, "passwd-link", "/etc/passwd")


def _add_hardlink_climb(tf: tarfile.TarFile, h: Host) -> None:
    _hard(tf, "passwd-link", "../" * 24 + "etc/passwd")


def _add_hardlink_via_symlink(tf: tarfile.TarFile, h: Host) -> None:
    _sym(tf, "etclink", "/etc")
    _hard(tf, "passwd-link", "etclink/passwd")
    _file(tf, "passwd-link", b"root::0:0::/:/bin/sh\n")


def _add_whiteout_via_symlink(tf: tarfile.TarFile, h: Host) -> None:
    _sym(tf, "link", str(h.sentinel))
    _file(tf, "link/.wh.victim", b"")
    _file(tf, "link/.wh.keep", b"")
    _sym(tf, "up", h.climb)
    _file(tf, "up/.wh.victim", b"")


def _add_opaque_via_symlink(tf: tarfile.TarFile, h: Host) -> None:
    _sym(tf, "link", str(h.sentinel))
    _file(tf, "link/.wh..wh..opq", b"")
    _sym(tf, "up", h.climb)
    _file(tf, "up/keep/.wh..wh..opq", b"")


def _add_whiteout_dotdot(tf: tarfile.TarFile, h: Host) -> None:
    _file(tf, "etc/.wh...", b"")


def _add_whiteout_dot(tf: tarfile.TarFile, h: Host) -> None:
    _file(tf, "etc/.wh..", b"")


def _add_device(tf: tarfile.TarFile, h: Host) -> None:
    _dir(tf, "evil")
    ti = _info("evil/zero", tarfile.CHRTYPE, 0o666)
    ti.devmajor, ti.devminor = 1, 5  # /dev/zero: endless if anyone reads it
    tf.addfile(ti)
    ti = _info("evil/sda", tarfile.BLKTYPE, 0o600)
    ti.devmajor, ti.devminor = 8, 0
    tf.addfile(ti)
    ti = _info(h.s + "/node", tarfile.CHRTYPE, 0o666)
    ti.devmajor, ti.devminor = 1, 3
    tf.addfile(ti)


def _add_huge_uid(tf: tarfile.TarFile, h: Host) -> None:
    ti = _info("bigid")
    ti.uid = 2**32 + 7  # chown would truncate it to 7
    tf.addfile(ti, io.BytesIO(b""))


def _add_uid_minus_one(tf: tarfile.TarFile, h: Host) -> None:
    ti = _info("bigid")
    ti.uid = ti.gid = 2**32 - 1  # (uid_t)-1: "leave unchanged" to chown(2)
    tf.addfile(ti, io.BytesIO(b""))


def _add_setuid(tf: tarfile.TarFile, h: Host) -> None:
    _dir(tf, "sbin")
    _file(tf, "sbin/suid", b"#!/bin/sh\n", mode=0o4755)
    _file(tf, "sbin/sgid", b"#!/bin/sh\n", mode=0o2755)


def _add_plain(tf: tarfile.TarFile, h: Host) -> None:
    _file(tf, "plain.txt", b"plain\n")


def _layer_tar(add: Adder, host: Host) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        add(tf, host)
    return buf.getvalue()


# -- pushing images by hand ---------------------------------------------------------


def _http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return resp.status, dict(resp.headers.items()), resp.read()


def _push_blob(host: str, repo: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    _, headers, _ = _http("POST", f"http://{host}/v2/{repo}/blobs/uploads/", b"")
    loc = headers["Location"]
    if loc.startswith("/"):
        loc = f"http://{host}{loc}"
    sep = "&" if "?" in loc else "?"
    status, _, _ = _http(
        "PUT",
        f"{loc}{sep}digest={digest}",
        data,
        {"Content-Type": "application/octet-stream"},
    )
    assert status == 201
    return digest


def _get_blob(host: str, repo: str, digest: str) -> bytes:
    return _http("GET", f"http://{host}/v2/{repo}/blobs/{digest}")[2]


def _get_manifest(host: str, ref: str) -> Manifest:
    repo, _, tag = ref.partition(":")
    accept = ", ".join([mt.DOCKER_MANIFEST, mt.OCI_MANIFEST])
    _, headers, raw = _http(
        "GET", f"http://{host}/v2/{repo}/manifests/{tag}", headers={"Accept": accept}
    )
    return Manifest.parse(raw, headers.get("Content-Type", ""))


def _put_manifest(host: str, repo: str, tag: str, manifest: Manifest) -> None:
    status, _, _ = _http(
        "PUT",
        f"http://{host}/v2/{repo}/manifests/{tag}",
        manifest.raw,
        {"Content-Type": manifest.media_type},
    )
    assert status == 201


def _push_evil_image(
    registry: RegistryServer,
    busybox_image: str,
    repo: str,
    layer_tar: bytes,
    work: Path,
    *,
    oci: bool,
    wrong_diff_id: bool = False,
) -> str:
    """``busybox`` + the given layer, pushed as ``HOST/repo:1``; returns the reference."""
    host = registry.host
    base_repo_tag = busybox_image.removeprefix(host + "/")
    base = _get_manifest(host, base_repo_tag)
    base_repo = base_repo_tag.partition(":")[0]
    base_config = ImageConfig.parse(_get_blob(host, base_repo, base.config.digest))

    writer = LayerWriter(work / "layer.tar.gz", compression="gzip", threads=1)
    writer.write(layer_tar)
    layer = writer.close()
    layer_bytes = layer.path.read_bytes()
    assert _push_blob(host, repo, layer_bytes) == layer.digest
    for desc in base.layers:
        _push_blob(host, repo, _get_blob(host, base_repo, desc.digest))

    diff_id = layer.diff_id
    if wrong_diff_id:
        diff_id = "sha256:" + hashlib.sha256(b"not this layer").hexdigest()
    config = ImageConfig(
        architecture=base_config.architecture,
        os=base_config.os,
        variant=base_config.variant,
        created=base_config.created,
        config=base_config.config,
        diff_ids=(*base_config.diff_ids, diff_id),
        history=(*base_config.history, History.from_json({"created_by": "evil layer"})),
        extra=base_config.extra,
    )
    config_raw = config.to_json()
    config_digest = _push_blob(host, repo, config_raw)
    layer_type = mt.OCI_LAYER_GZIP if oci else mt.DOCKER_LAYER_GZIP
    manifest = Manifest.build(
        media_type=mt.OCI_MANIFEST if oci else mt.DOCKER_MANIFEST,
        config=Descriptor(
            mt.OCI_CONFIG if oci else mt.DOCKER_CONFIG, config_digest, len(config_raw)
        ),
        layers=(
            *(Descriptor(layer_type, d.digest, d.size) for d in base.layers),
            Descriptor(layer_type, layer.digest, layer.size),
        ),
    )
    _put_manifest(host, repo, "1", manifest)
    return f"{host}/{repo}:1"


# -- building -----------------------------------------------------------------------


def _build(tmp_path: Path, name: str, dockerfile: str, dest: str, kaniko_dir: Path) -> CliResult:
    ctx = tmp_path / f"ctx-{name}"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    return run_pykaniko(
        [
            "--context", str(ctx), "--dockerfile", str(ctx / "Dockerfile"),
            "--destination", dest, "--insecure", "--insecure-pull",
            "--kaniko-dir", str(kaniko_dir),
        ]
    )  # fmt: skip


def _assert_refused(result: CliResult, needles: tuple[str, ...]) -> str:
    assert result.status != 0, f"expected a refusal, got success:\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "internal error" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    line = errors[0]
    assert any(n in line for n in needles), f"{line!r} names none of {needles}"
    return line


def _last_layer_members(ref: str) -> dict[str, tarfile.TarInfo]:
    host, _, rest = ref.partition("/")
    manifest = _get_manifest(host, rest)
    repo = rest.partition(":")[0]
    blob = _get_blob(host, repo, manifest.layers[-1].digest)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as tf:
        return {m.name.removeprefix("./").rstrip("/"): m for m in tf.getmembers()}


# -- the cases ----------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    add: Adder
    outcome: Outcome
    needles: tuple[str, ...] = ()
    # for contained cases: checks on the pushed COPY --from layer (names under x/)
    check: Callable[[dict[str, tarfile.TarInfo], Host], None] | None = None


def _has(*names: str) -> Callable[[dict[str, tarfile.TarInfo], Host], None]:
    def check(members: dict[str, tarfile.TarInfo], h: Host) -> None:
        for n in names:
            name = "x/" + n.format(s=h.s, abs=str(h.abs_name).lstrip("/"))
            assert name in members, f"{name} missing from the COPY layer"

    return check


def _check_file_symlink(members: dict[str, tarfile.TarInfo], h: Host) -> None:
    for name in ("x/victim", "x/passwd"):
        assert members[name].isreg(), f"{name} should be the file that replaced the link"


def _check_hardlink_via_symlink(members: dict[str, tarfile.TarInfo], h: Host) -> None:
    assert members["x/etclink"].issym()
    assert members["x/passwd-link"].isreg()


def _check_device(members: dict[str, tarfile.TarInfo], h: Host) -> None:
    if "x/evil/zero" in members:  # mknod permitted here
        assert members["x/evil/zero"].ischr()
        assert (members["x/evil/zero"].devmajor, members["x/evil/zero"].devminor) == (1, 5)
        assert members["x/evil/sda"].isblk()
        assert f"x/{h.s}/node" in members


def _check_setuid(members: dict[str, tarfile.TarInfo], h: Host) -> None:
    assert members["x/sbin/suid"].mode & 0o7777 == 0o4755
    assert members["x/sbin/sgid"].mode & 0o7777 == 0o2755


CASES = [
    Case("dotdot", _add_dotdot, "refused", ("'..'", "climbs out")),
    Case("dotdot-deep", _add_dotdot_deep, "refused", ("'..'", "climbs out")),
    Case("absolute-name", _add_absolute_name, "contained", check=_has("{abs}", "{s}/abs")),
    Case(
        "symlink-abs-dir",
        _add_dir_symlink_abs,
        "contained",
        check=_has("link", "{s}/pwned", "{s}/victim"),
    ),
    Case(
        "symlink-climb-dir",
        _add_dir_symlink_climb,
        "contained",
        check=_has("link", "{s}/pwned", "{s}/keep/file"),
    ),
    Case("symlink-abs-file", _add_file_symlink_abs, "contained", check=_check_file_symlink),
    Case("symlink-chain", _add_chained_symlinks, "contained", check=_has("a", "b", "{s}/pwned")),
    Case("hardlink-abs", _add_hardlink_abs, "refused", ("hardlink", "leaves the root")),
    Case("hardlink-climb", _add_hardlink_climb, "refused", ("hardlink", "leaves the root")),
    Case(
        "hardlink-via-symlink",
        _add_hardlink_via_symlink,
        "contained",
        check=_check_hardlink_via_symlink,
    ),
    Case("whiteout-via-symlink", _add_whiteout_via_symlink, "contained", check=_has("link", "up")),
    Case("opaque-via-symlink", _add_opaque_via_symlink, "contained", check=_has("link", "up")),
    Case("whiteout-dotdot", _add_whiteout_dotdot, "refused", ("bad whiteout",)),
    Case("whiteout-dot", _add_whiteout_dot, "refused", ("bad whiteout",)),
    Case("device-nodes", _add_device, "contained", check=_check_device),
    Case("huge-uid", _add_huge_uid, "refused", ("uid/gid",)),
    Case("uid-minus-one", _add_uid_minus_one, "refused", ("uid/gid",)),
    Case("setuid-kept", _add_setuid, "contained", check=_check_setuid),
]


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    h = _make_host(tmp_path)
    yield h
    if h.abs_name.exists() or h.abs_name.is_symlink():  # never expected; keep /tmp clean
        h.abs_name.unlink()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malicious_base(
    case: Case,
    host: Host,
    registry: RegistryServer,
    busybox_image: str,
    tmp_path: Path,
    kaniko_dir: Path,
) -> None:
    oci = CASES.index(case) % 2 == 1
    state = HostState(host).take()
    repo = f"evil/{case.id}"
    evil = _push_evil_image(
        registry, busybox_image, repo, _layer_tar(case.add, host), tmp_path, oci=oci
    )

    run_result = _build(
        tmp_path,
        "run",
        f"FROM {evil}\nRUN true\n",
        f"{registry.host}/out/{case.id}-run:1",
        kaniko_dir,
    )
    state.assert_untouched()
    copy_ref = f"{registry.host}/out/{case.id}-copy:1"
    copy_result = _build(
        tmp_path, "copy", f"FROM scratch\nCOPY --from={evil} / /x\n", copy_ref, kaniko_dir
    )
    state.assert_untouched()

    if case.outcome == "refused":
        print(_assert_refused(run_result, case.needles))
        print(_assert_refused(copy_result, case.needles))
        return
    assert run_result.status == 0, run_result.stderr[-3000:]
    assert copy_result.status == 0, copy_result.stderr[-3000:]
    members = _last_layer_members(copy_ref)
    assert "x/bin/busybox" in members  # the base layer is under /x as well
    if case.check is not None:
        case.check(members, host)


class _BlobCorrupter(FaultProxy):
    """Flips one byte of every GET of one blob; everything else passes untouched."""

    target = ""

    def _pick(self, method: str, path: str) -> str | None:
        self.requests += 1
        if method == "GET" and self.target and path.endswith("/blobs/" + self.target):
            self.faults.append(("corrupt", method, path))
            return "corrupt"
        return None


@pytest.fixture
def corrupter(registry: RegistryServer) -> Iterator[_BlobCorrupter]:
    proxy = _BlobCorrupter(registry.host)
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.mark.parametrize(
    "dockerfile",
    ["FROM {ref}\nRUN true\n", "FROM scratch\nCOPY --from={ref} / /x\n"],
    ids=["from", "copy-from"],
)
def test_corrupt_blob_body_is_refused(
    dockerfile: str,
    corrupter: _BlobCorrupter,
    registry: RegistryServer,
    busybox_image: str,
    host: Host,
    tmp_path: Path,
) -> None:
    state = HostState(host).take()
    evil = _push_evil_image(
        registry, busybox_image, "evil/corrupt", _layer_tar(_add_plain, host), tmp_path, oci=True
    )
    manifest = _get_manifest(registry.host, "evil/corrupt:1")
    corrupter.target = manifest.layers[-1].digest
    via_proxy = evil.replace(registry.host, corrupter.host, 1)
    # a fresh kaniko dir: a blob already in a shared store would not be fetched again
    result = _build(
        tmp_path,
        "corrupt",
        dockerfile.format(ref=via_proxy),
        f"{registry.host}/out/corrupt:1",
        tmp_path / "kaniko",
    )
    state.assert_untouched()
    line = _assert_refused(result, ("digest", corrupter.target[:19]))
    print(line)
    assert corrupter.target[:19] in line, line
    assert corrupter.faults, "the proxy never saw the blob"


@pytest.mark.parametrize("oci", [False, True], ids=["docker", "oci"])
def test_config_diff_id_mismatch(
    oci: bool,
    registry: RegistryServer,
    busybox_image: str,
    host: Host,
    tmp_path: Path,
    kaniko_dir: Path,
) -> None:
    """The config's diff_id for the layer is not the digest of its uncompressed bytes."""
    state = HostState(host).take()
    evil = _push_evil_image(
        registry,
        busybox_image,
        "evil/diffid",
        _layer_tar(_add_plain, host),
        tmp_path,
        oci=oci,
        wrong_diff_id=True,
    )
    result = _build(
        tmp_path, "diffid", f"FROM {evil}\nRUN true\n", f"{registry.host}/out/diffid:1", kaniko_dir
    )
    state.assert_untouched()
    _assert_refused(result, ("diff_id", "diff ID", "DiffID", "image config says"))
