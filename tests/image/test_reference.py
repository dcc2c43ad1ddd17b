"""Reference parsing and Docker normalisation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pykaniko.errors import ImageError
from pykaniko.image.reference import Reference, parse_reference

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("busybox", "docker.io", "library/busybox", "latest", None),
        ("busybox:1.36", "docker.io", "library/busybox", "1.36", None),
        ("user/app", "docker.io", "user/app", "latest", None),
        ("docker.io/busybox", "docker.io", "library/busybox", "latest", None),
        ("index.docker.io/library/busybox:1", "docker.io", "library/busybox", "1", None),
        ("registry-1.docker.io/user/app:x", "docker.io", "user/app", "x", None),
        ("localhost/app", "localhost", "app", "latest", None),
        ("localhost:5000/a/b/c:dev", "localhost:5000", "a/b/c", "dev", None),
        ("127.0.0.1:5000/app", "127.0.0.1:5000", "app", "latest", None),
        ("gcr.io/proj/img:v1.2-rc_3", "gcr.io", "proj/img", "v1.2-rc_3", None),
        (f"busybox@{D}", "docker.io", "library/busybox", None, D),
        (f"quay.io/a/b:1@{D}", "quay.io", "a/b", "1", D),
        ("[::1]:5000/app:1", "[::1]:5000", "app", "1", None),
        ("a__b/c-d.e:T", "docker.io", "a__b/c-d.e", "T", None),
    ],
)
def test_parse(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    assert parse_reference(text) == Reference(registry, repository, tag, digest)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "Busybox",
        "upper/Case",
        "http://registry/app",
        "app:",
        "app:bad/tag",
        "app@sha256:abc",
        f"app@sha256:{'A' * 64}",
        "app:-tag",
        "/app",
        "app//x",
        "host:port:5000/app",
        "a" * 300,
        "app..x",
    ],
)
def test_malformed(text: str) -> None:
    with pytest.raises(ImageError) as info:
        parse_reference(text)
    assert "reference" in str(info.value)


def test_str_and_properties() -> None:
    ref = parse_reference("busybox")
    assert str(ref) == "docker.io/library/busybox:latest"
    assert ref.name == "docker.io/library/busybox"
    assert ref.api_host == "registry-1.docker.io"
    assert ref.identifier == "latest"
    pinned = ref.with_digest(D)
    assert str(pinned) == f"docker.io/library/busybox:latest@{D}"
    assert pinned.identifier == D
    assert str(pinned.with_tag("2")) == "docker.io/library/busybox:2"
    other = parse_reference("localhost:5000/x")
    assert other.api_host == "localhost:5000"
    assert other.with_location("index.docker.io", "library/x").registry == "docker.io"
    with pytest.raises(ImageError):
        ref.with_tag("no/slash")
    with pytest.raises(ImageError):
        ref.with_digest("sha256:xyz")


_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
_component = st.builds(
    lambda a, sep, b: a + (sep + b if b else ""),
    st.text(_ALNUM, min_size=1, max_size=6),
    st.sampled_from([".", "_", "-", "__"]),
    st.text(_ALNUM, max_size=4),
)


@settings(max_examples=40, deadline=None)
@given(
    host=st.sampled_from(["", "localhost:5000/", "reg.example.com/", "docker.io/"]),
    parts=st.lists(_component, min_size=1, max_size=3),
    tag=st.builds(
        lambda a, b: a + b,
        st.sampled_from(list("aZ9_")),
        st.text(_ALNUM + "ABC_.-", max_size=10),
    ),
)
def test_round_trip(host: str, parts: list[str], tag: str) -> None:
    ref = parse_reference(f"{host}{'/'.join(parts)}:{tag}")
    assert parse_reference(str(ref)) == ref
    assert ref.tag == tag
