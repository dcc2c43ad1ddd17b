"""The leak scanner: secrets found wherever they sit in a layer tar (file data, names,
link targets, xattrs, across chunk boundaries, gzip/zstd), named after their tar member,
and never printed."""

from __future__ import annotations

import base64
import io
import json
import tarfile
from pathlib import Path

import pytest
import zstandard
from isal import igzip

from pykaniko.image.leakscan import (
    ENCODED_MAX_FILE,
    Leak,
    LeakScanner,
    Secret,
    redact,
    scan_blob,
    scan_json,
    scanning_reader,
)

TOKEN = b"ghp_Zx81kQm2LpW9vRt"
SECRETS = [Secret('secret "gh"', TOKEN)]


def _tar(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def _file(name: str, data: bytes = b"") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _scan(data: bytes, *, step: int = 1 << 20, segment: int = 1 << 18) -> list[Leak]:
    scanner = LeakScanner(SECRETS, segment=segment)
    for i in range(0, len(data), step):
        scanner.write(memoryview(data)[i : i + step])
    return scanner.close()


def test_file_content_is_named_after_its_member() -> None:
    data = _tar(_file("etc/a", b"x" * 3000), _file("root/.npmrc", b"token=" + TOKEN + b"\n"))
    assert _scan(data) == [Leak('secret "gh"', "/root/.npmrc", "content", "raw")]


@pytest.mark.parametrize("step", [1, 7, 512, 513, 4096])
def test_a_value_straddling_every_chunk_boundary_is_found(step: int) -> None:
    pad = b"y" * 1021
    data = _tar(_file("a", b"x" * 700), _file("b/c", pad + TOKEN + pad), _file("d", b"z" * 900))
    for segment in (1, 8, 512, 1000):
        leaks = _scan(data, step=step, segment=segment)
        assert leaks == [Leak('secret "gh"', "/b/c", "content", "raw")], (step, segment)


def test_every_offset_of_a_straddling_value() -> None:
    data = _tar(_file("f", b"q" * 600 + TOKEN + b"q" * 600))
    start = data.index(TOKEN)
    for cut in range(start - 1, start + len(TOKEN) + 1):
        scanner = LeakScanner(SECRETS, segment=1)
        scanner.write(data[:cut])
        scanner.write(data[cut:])
        assert [x.path for x in scanner.close()] == ["/f"], cut


def test_names_link_targets_and_xattrs() -> None:
    link = tarfile.TarInfo("lnk")
    link.type, link.linkname = tarfile.SYMTYPE, "/x/" + TOKEN.decode()
    hard = tarfile.TarInfo("hard")
    hard.type, hard.linkname = tarfile.LNKTYPE, "dir/" + TOKEN.decode()
    xattr = tarfile.TarInfo("with-xattr")
    xattr.pax_headers = {"SCHILY.xattr.user.note": "k=" + TOKEN.decode()}
    long_name = "deep/" * 30 + TOKEN.decode()
    data = _tar(
        _file(f"dir/{TOKEN.decode()}"),
        (link, b""),
        (hard, b""),
        (xattr, b""),
        _file(long_name, b"plain"),
    )
    leaks = {(x.path, x.where) for x in _scan(data, step=100, segment=64)}
    assert leaks == {
        (f"/dir/{TOKEN.decode()}", "name"),
        ("/lnk", "link target"),
        ("/hard", "link target"),
        ("/with-xattr", "xattr user.note"),
        ("/" + long_name, "name"),
    }


def test_a_ustar_name_split_into_prefix_and_name() -> None:
    # ustar keeps a long path as prefix + "/" + name: the value can span the cut
    head, tail = TOKEN[:9].decode(), TOKEN[9:].decode()
    info = tarfile.TarInfo("p" * 90 + "/" + head + "/" + tail + "/" + "n" * 80)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        tar.addfile(info)
    assert f"{head}/{tail}".encode() not in buf.getvalue()  # prefix field, then name field
    secret = Secret("s", f"{head}/{tail}".encode())
    scanner = LeakScanner([secret])
    scanner.write(buf.getvalue())
    assert [(x.path, x.where) for x in scanner.close()] == [("/" + info.name, "name")]


def test_a_pax_header_cut_from_its_member_is_still_attributed() -> None:
    info = tarfile.TarInfo("x" * 150)  # a PAX path record, then the ustar header
    info.pax_headers = {"comment": TOKEN.decode()}
    data = _tar(_file("first", b"a" * 512), (info, b""))
    for cut in range(1024, len(data), 97):
        scanner = LeakScanner(SECRETS, segment=1)
        scanner.write(data[:cut])
        scanner.write(data[cut:])
        assert [(x.path, x.where) for x in scanner.close()] == [("/" + "x" * 150, "tar header")]


@pytest.mark.parametrize("compress", ["gzip", "zstd", "none"])
def test_compressed_blobs(tmp_path: Path, compress: str) -> None:
    data = _tar(_file("app/.env", b"TOKEN=" + TOKEN))
    blob = tmp_path / "layer"
    if compress == "gzip":
        blob.write_bytes(igzip.compress(data))
    elif compress == "zstd":
        blob.write_bytes(zstandard.ZstdCompressor().compress(data))
    else:
        blob.write_bytes(data)
    assert [x.path for x in scan_blob(blob, SECRETS)] == ["/app/.env"]


def test_short_values_are_not_searched() -> None:
    data = _tar(_file("a", b"pass123 and the token"))
    scanner = LeakScanner([Secret("short", b"pass123"), Secret("spaced", b"  pass123\n")])
    assert not scanner.active
    scanner.write(data)
    assert scanner.close() == []
    exactly = LeakScanner([Secret("eight", b"pass1234")])
    exactly.write(_tar(_file("b", b"xx pass1234 yy")))
    assert [x.path for x in exactly.close()] == ["/b"]


def test_surrounding_whitespace_is_not_part_of_the_value() -> None:
    scanner = LeakScanner([Secret("file", TOKEN + b"\n")])
    scanner.write(_tar(_file("t", b"export T=" + TOKEN + b";")))
    assert [x.path for x in scanner.close()] == ["/t"]


@pytest.mark.parametrize("prefix", [b"", b"u", b"us", b"user:"])
def test_base64_in_every_alignment(prefix: bytes) -> None:
    encoded = base64.b64encode(prefix + TOKEN + b"\n")
    data = _tar(_file("auth", b'{"auth":"' + encoded + b'"}'))
    leaks = _scan(data, step=3, segment=5)
    assert [(x.path, x.encoding) for x in leaks] == [("/auth", "base64")]


def test_base64_is_not_searched_inside_big_files() -> None:
    encoded = base64.b64encode(TOKEN)
    big = b"\0" * ENCODED_MAX_FILE + encoded
    raw = b"\0" * 100 + TOKEN
    data = _tar(_file("big", big), _file("small", encoded), _file("big-raw", big + raw))
    assert [(x.path, x.encoding) for x in _scan(data)] == [
        ("/small", "base64"),
        ("/big-raw", "raw"),
    ]


def test_one_leak_per_secret_and_member() -> None:
    data = _tar(_file("many", TOKEN * 5000), _file("other", TOKEN))
    assert [x.path for x in _scan(data, step=4096, segment=4096)] == ["/many", "/other"]


def test_not_a_tar_is_still_searched() -> None:
    scanner = LeakScanner(SECRETS, tar=False)
    scanner.write(b"{" + TOKEN + b"}")
    assert scanner.close() == [Leak('secret "gh"', "", "content", "raw")]


def test_scanning_reader_sees_what_is_read() -> None:
    data = _tar(_file("r", TOKEN))
    scanner = LeakScanner(SECRETS)
    reader = scanning_reader(io.BytesIO(data), scanner)
    with tarfile.open(fileobj=reader, mode="r|") as tar:
        assert [m.name for m in tar] == ["r"]
    while reader.read(1 << 16):
        pass
    assert [x.path for x in scanner.close()] == ["/r"]


def test_json_fields_are_named_and_escapes_undone() -> None:
    secret = Secret("q", b'pa"ss\\word!')
    raw = json.dumps(
        {"config": {"Env": ["A=1", 'B=pa"ss\\word!'], "Labels": {"k": "v"}}, "history": []}
    ).encode()
    assert scan_json(raw, [secret]) == [Leak("q", "config.Env[1]", "field", "raw")]
    assert scan_json(b"not json " + TOKEN, SECRETS) == [Leak('secret "gh"', "", "content", "raw")]


def test_redact_hides_every_searched_form() -> None:
    text = f"/x/{TOKEN.decode()}/{base64.b64encode(TOKEN).decode()}"
    shown = redact(text, SECRETS)
    assert TOKEN.decode() not in shown
    assert base64.b64encode(TOKEN).decode() not in shown
    assert shown.startswith("/x/***/")
    assert TOKEN.decode() not in repr(SECRETS[0])
