"""Platform values (``os/arch[/variant]``) and how an index entry is matched to one."""

from __future__ import annotations

import platform as _host
from dataclasses import dataclass

from pykaniko.errors import ConfigError

__all__ = ["Platform", "host_platform"]

_ARCH_ALIASES = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "aarch64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "i386": "386",
    "i686": "386",
}


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.strip().lower().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ConfigError(
                f"bad platform {text!r}: expected os/arch[/variant]", hint="e.g. linux/amd64"
            )
        arch = _ARCH_ALIASES.get(parts[1], parts[1])
        variant = parts[2] if len(parts) == 3 else ""
        if arch == "arm64" and variant == "v8":
            variant = ""
        return cls(parts[0], arch, variant)

    def __str__(self) -> str:
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base

    def matches(self, os: str, architecture: str, variant: str = "") -> bool:
        """Index-entry matching: a missing variant on either side matches any."""
        arch = _ARCH_ALIASES.get(architecture, architecture)
        if (os, arch) != (self.os, self.architecture):
            return False
        want = self.variant or ""
        have = "" if (arch == "arm64" and variant == "v8") else variant
        return not want or not have or want == have


def host_platform() -> Platform:
    """The platform of the machine running the build (RUN executes host binaries)."""
    machine = _host.machine().lower()
    arch = _ARCH_ALIASES.get(machine, machine)
    variant = "v7" if machine == "armv7l" else "v6" if machine == "armv6l" else ""
    return Platform("linux", arch, variant)
