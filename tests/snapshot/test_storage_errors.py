"""Real OS errors in extraction, snapshotting, layer writing and the output writers come
out as StorageError naming the operation and the path inside the image (never the
host work dir); a full disk says how much was needed. The errors are real: a tmpfs of a
few MiB, a read-only mount, a process without root's permission override."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from pykaniko.errors import DiskFullError, ImageError, Location, SnapshotError, StorageError
from pykaniko.image import mediatypes as mt
from pykaniko.image.blobstore import BlobStore
from pykaniko.image.config import ImageConfig
from pykaniko.image.layerfile import Compression, LayerWriter, open_uncompressed
from pykaniko.image.layout import write_oci_layout
from pykaniko.image.manifest import Descriptor, Manifest
from pykaniko.image.tarball import write_docker_archive
from pykaniko.snapshot import ChangeSet, IgnoreList, SnapshotMode, Snapshotter, write_layer
from tests.support.faults import run_without_dac, tmpfs

pytestmark = pytest.mark.root

MiB = 1 << 20


def _layer(name: str, size: int) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        d = tarfile.TarInfo("usr/bin")
        d.type, d.mode = tarfile.DIRTYPE, 0o755
        tf.addfile(d)
        ti = tarfile.TarInfo(name)
        ti.size, ti.mode = size, 0o755
        tf.addfile(ti, io.BytesIO(os.urandom(size)))
    buf.seek(0)
    return buf


def _no_host_path(err: StorageError, *hosts: Path) -> None:
    text = str(err)
    for host in hosts:
        assert str(host) not in text, text


def test_extraction_into_a_full_disk(tmp_path: Path) -> None:
    with tmpfs("2m") as root:
        snap = Snapshotter(root, mode=SnapshotMode.REDO, ignore=IgnoreList())
        with pytest.raises(DiskFullError) as info:
            snap.extract(_layer("usr/bin/big", 4 * MiB), what="base layer sha256:abcd")
    err = info.value
    assert err.operation == "base layer sha256:abcd: extract"
    assert err.path == "/usr/bin/big"
    assert err.needed == 4 * MiB
    assert "no space left on device" in err.message
    assert "4.0 MiB" in err.message
    assert err.code == "disk-full"
    _no_host_path(err, root)
    located = err.located(Location("Dockerfile", 1, 1))
    assert str(located).startswith("Dockerfile:1: base layer sha256:abcd: extract /usr/bin/big:")
    assert isinstance(located, DiskFullError)
    assert located.path == err.path


def test_extraction_below_a_read_only_mount(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "ro").mkdir(parents=True)
    snap = Snapshotter(root, mode=SnapshotMode.STAT, ignore=IgnoreList())
    with tmpfs("1m", read_only=True, at=root / "ro"), pytest.raises(StorageError) as info:
        snap.extract(_layer("ro/x", 10), what="layer sha256:ef01")
    err = info.value
    assert not isinstance(err, DiskFullError)
    assert err.path == "/ro/x"
    assert "read-only file system" in err.message
    _no_host_path(err, root)


_SNAPSHOT_CHILD = """
import os, sys
from pathlib import Path
from pykaniko.errors import StorageError
from pykaniko.snapshot import IgnoreList, SnapshotMode, Snapshotter, write_layer
root = Path(sys.argv[1])
snap = Snapshotter(root, mode=SnapshotMode(sys.argv[2]), ignore=IgnoreList())
try:
    snap.take_baseline()
    (root / sys.argv[3]).chmod(0)
    changes = snap.diff()
    with open(os.devnull, "wb") as sink:
        write_layer(changes, root, sink)
except StorageError as e:
    print(type(e).__name__, e.operation, e.path, e.message, sep="|")
"""


@pytest.mark.parametrize("mode", ["full", "redo"])
def test_unreadable_file_in_the_snapshot(tmp_path: Path, mode: str) -> None:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc/shadow").write_text("secret")
    tmp_path.chmod(0o755)
    result = run_without_dac(_SNAPSHOT_CHILD, str(root), mode, "etc/shadow")
    kind, op, path, message = result.stdout.strip().split("|")
    assert kind == "StorageError", result.stderr
    assert path == "/etc/shadow"
    assert "permission denied" in message
    assert op in ("snapshot: read", "write layer: read")
    assert str(root) not in result.stdout


def test_unreadable_directory_in_the_walk(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "var/lib/private").mkdir(parents=True)
    (root / "var/lib/private/x").write_text("x")
    tmp_path.chmod(0o755)
    result = run_without_dac(_SNAPSHOT_CHILD, str(root), "redo", "var/lib/private")
    kind, op, path, message = result.stdout.strip().split("|")
    assert kind == "StorageError", result.stderr
    assert (op, path) == ("snapshot: open", "/var/lib/private")
    assert "permission denied" in message


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_layer_writing_into_a_full_disk(tmp_path: Path, compression: Compression) -> None:
    root = tmp_path / "rootfs"
    (root / "data").mkdir(parents=True)
    (root / "data/blob").write_bytes(os.urandom(6 * MiB))  # incompressible
    changes = ChangeSet(entries=("/data", "/data/blob"), added=("/data", "/data/blob"))
    with tmpfs("2m") as work:
        out = work / "layer"
        writer = LayerWriter(out, compression=compression)

        def write() -> None:
            try:
                write_layer(changes, root, writer)
                writer.close()
            except BaseException:
                writer.abort()
                raise

        with pytest.raises(DiskFullError) as info:
            write()
        assert not out.exists(), "the half-written layer is removed"
    err = info.value
    assert err.operation == "write layer"
    assert err.needed is not None
    assert err.needed > 6 * MiB
    assert "no space left on device" in err.message
    assert "6.0 MiB" in err.message
    _no_host_path(err, root, work)


def _image(store: BlobStore, size: int) -> tuple[Manifest, bytes]:
    src = store.temp_path()
    writer = LayerWriter(src, compression="gzip", threads=1)
    data = _layer("usr/bin/big", size).getvalue()
    writer.write(data)
    layer = writer.close()
    store.adopt(src, layer.digest)
    config = ImageConfig(architecture="amd64", os="linux", diff_ids=(layer.diff_id,))
    raw = config.to_json()
    digest = store.put_bytes(raw)
    manifest = Manifest.build(
        media_type=mt.OCI_MANIFEST,
        config=Descriptor(mt.OCI_CONFIG, digest, len(raw)),
        layers=(Descriptor(mt.OCI_LAYER_GZIP, layer.digest, layer.size),),
    )
    return manifest, raw


def test_oci_layout_on_a_full_disk(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "store")
    manifest, _ = _image(store, 3 * MiB)
    with tmpfs("1m") as out, pytest.raises(DiskFullError) as info:
        write_oci_layout(out / "layout", manifest, store, ref_name="v1")
    err = info.value
    assert err.operation == "write OCI layout"
    assert err.path == str(out / "layout"), "the user's own output path is named"
    assert err.needed is not None
    assert err.needed > 3 * MiB
    _no_host_path(err, tmp_path)


def test_oci_layout_in_a_read_only_directory(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "store")
    manifest, _ = _image(store, 1000)
    with tmpfs("1m", read_only=True) as out, pytest.raises(StorageError) as info:
        write_oci_layout(out / "layout", manifest, store, ref_name="v1")
    assert "read-only file system" in info.value.message
    _no_host_path(info.value, tmp_path)


@pytest.mark.parametrize("compressed", [False, True])
def test_docker_archive_on_a_full_disk(tmp_path: Path, compressed: bool) -> None:
    store = BlobStore(tmp_path / "store")
    manifest, raw = _image(store, 3 * MiB)
    with tmpfs("1m") as out:
        with pytest.raises(DiskFullError) as info:
            write_docker_archive(
                out / "image.tar", manifest, raw, store, ["x:1"], compressed=compressed
            )
        assert not list(out.iterdir()), "no temporary file is left"
    err = info.value
    assert err.operation == "write docker archive"
    assert err.path == str(out / "image.tar")
    _no_host_path(err, tmp_path)


def test_blob_store_on_a_full_disk() -> None:
    with tmpfs("1m") as work:
        store = BlobStore(work / "oci")
        with pytest.raises(DiskFullError) as info:
            store.put_bytes(json.dumps({"pad": "x" * (3 * MiB)}).encode())
        assert not list((work / "oci/tmp").iterdir())
    err = info.value
    assert err.operation.startswith("store blob sha256:")
    assert err.needed is not None
    assert err.needed > 3 * MiB
    _no_host_path(err, work)


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_damaged_layer_blob_is_an_image_error(
    tmp_path: Path, compression: Compression, damage: str
) -> None:
    """A cut or corrupted blob fails as ImageError/SnapshotError naming the layer, not
    as a raw EOFError or ZstdError."""
    blob = tmp_path / "blob"
    with LayerWriter(blob, compression=compression, threads=1) as writer:
        writer.write(_layer("usr/bin/x", 300_000).getvalue())
    raw = blob.read_bytes()
    mid = len(raw) // 2
    blob.write_bytes(
        raw[:mid]
        if damage == "truncated"
        else raw[:mid] + bytes([raw[mid] ^ 0xFF]) + raw[mid + 1 :]
    )
    root = tmp_path / "rootfs"
    root.mkdir()
    snap = Snapshotter(root, mode=SnapshotMode.REDO, ignore=IgnoreList())
    with (
        pytest.raises((ImageError, SnapshotError)) as info,
        open_uncompressed(blob, what="base layer sha256:1234") as stream,
    ):
        snap.extract(stream, what="base layer sha256:1234")
    assert "base layer sha256:1234" in str(info.value)
    assert str(tmp_path) not in str(info.value)


def test_from_os_maps_errors_without_host_paths() -> None:
    full = StorageError.from_os(
        OSError(28, "No space left on device", "/kaniko/build-1/rootfs/x"),
        operation="write layer",
        needed=3 << 20,
    )
    assert isinstance(full, DiskFullError)
    assert full.message == "write layer: no space left on device; it needed 3.0 MiB"
    quota = StorageError.from_os(OSError(122, "Disk quota exceeded"), operation="x")
    assert isinstance(quota, DiskFullError)
    denied = StorageError.from_os(
        PermissionError(13, "Permission denied", "/kaniko/build-1/rootfs/etc/x"),
        operation="snapshot: read",
        path="/etc/x",
    )
    assert type(denied) is StorageError
    assert str(denied) == "snapshot: read /etc/x: permission denied"
    assert (denied.errno, denied.path, denied.operation) == (13, "/etc/x", "snapshot: read")
    located = denied.located(Location("Dockerfile", 4, 5))
    assert str(located) == "Dockerfile:4: snapshot: read /etc/x: permission denied"
    assert located.code == denied.code == "storage"


def test_image_path() -> None:
    from pykaniko.errors import image_path

    assert image_path("/k/b/rootfs", "/k/b/rootfs/usr/bin/x") == "/usr/bin/x"
    assert image_path("/k/b/rootfs/", "/k/b/rootfs") == "/"
    assert image_path("/k/b/rootfs", "/k/b/rootfs2/x") == ""
    assert image_path("/k/b/rootfs", 3) == ""
    assert image_path("/k/b/rootfs", None) == ""
