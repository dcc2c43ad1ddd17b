"""Platform parsing and index-entry matching."""

from __future__ import annotations

import pytest

from pykaniko.errors import ConfigError
from pykaniko.image.platform import Platform, host_platform


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", Platform("linux", "amd64")),
        ("Linux/AMD64", Platform("linux", "amd64")),
        ("linux/x86_64", Platform("linux", "amd64")),
        ("linux/aarch64", Platform("linux", "arm64")),
        ("linux/arm64/v8", Platform("linux", "arm64")),
        ("linux/arm/v7", Platform("linux", "arm", "v7")),
        ("linux/arm/v6", Platform("linux", "arm", "v6")),
        ("windows/amd64", Platform("windows", "amd64")),
        (" linux/s390x ", Platform("linux", "s390x")),
    ],
)
def test_parse(text: str, expected: Platform) -> None:
    assert Platform.parse(text) == expected


@pytest.mark.parametrize("text", ["linux", "", "linux/", "/amd64", "a/b/c/d", "linux//v7"])
def test_parse_bad(text: str) -> None:
    with pytest.raises(ConfigError, match="platform"):
        Platform.parse(text)


def test_str() -> None:
    assert str(Platform("linux", "arm", "v7")) == "linux/arm/v7"
    assert str(Platform("linux", "amd64")) == "linux/amd64"


@pytest.mark.parametrize(
    ("want", "entry", "ok"),
    [
        (Platform("linux", "amd64"), ("linux", "amd64", ""), True),
        (Platform("linux", "amd64"), ("linux", "x86_64", ""), True),
        (Platform("linux", "amd64"), ("windows", "amd64", ""), False),
        (Platform("linux", "amd64"), ("linux", "arm64", ""), False),
        (Platform("linux", "arm", "v7"), ("linux", "arm", "v7"), True),
        (Platform("linux", "arm", "v7"), ("linux", "arm", "v6"), False),
        (Platform("linux", "arm", "v7"), ("linux", "arm", ""), True),
        (Platform("linux", "arm"), ("linux", "arm", "v6"), True),
        (Platform("linux", "arm64"), ("linux", "arm64", "v8"), True),
        (Platform("linux", "arm64"), ("linux", "aarch64", ""), True),
    ],
)
def test_matches(want: Platform, entry: tuple[str, str, str], ok: bool) -> None:
    assert want.matches(*entry) is ok


def test_host_platform_is_linux_and_normalised() -> None:
    host = host_platform()
    assert host.os == "linux"
    assert host.architecture not in ("x86_64", "aarch64")
    assert Platform.parse(str(host)) == host
