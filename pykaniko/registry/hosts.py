"""Host names in registry settings: which may use plain HTTP without being told, and
which bypass a proxy (``NO_PROXY`` matching)."""

from __future__ import annotations

import ipaddress

__all__ = ["auto_insecure", "bypass_proxy", "host_name"]


def host_name(host: str) -> str:
    """``host[:port]`` or ``[v6]:port`` without the port."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def auto_insecure(host: str) -> bool:
    """Loopback, ``localhost``, ``*.local`` and private addresses may use plain HTTP."""
    name = host_name(host)
    if name == "localhost" or name.endswith(".local"):
        return True
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private


def bypass_proxy(host: str, no_proxy: str) -> bool:
    """``NO_PROXY`` matching: ``*``, exact hosts, ``host:port``, domain suffixes
    (``example.com`` and ``.example.com`` both match ``a.example.com``), IP networks."""
    name = host_name(host)
    for raw in no_proxy.replace(" ", ",").split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*" or entry == host.lower():
            return True
        try:
            if ipaddress.ip_address(name) in ipaddress.ip_network(entry, strict=False):
                return True
            continue
        except ValueError:
            pass
        domain = entry.lstrip(".")
        if name.lower() == domain or name.lower().endswith("." + domain):
            return True
    return False
