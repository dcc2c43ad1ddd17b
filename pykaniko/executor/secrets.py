"""Every secret value a build used, as the leak check searches for them.

Values come from three places: ``--secret`` sources (files and environment variables,
read once when the build starts, whether or not a RUN mounts them: a secret file that
also sits in the context can reach a layer through ``COPY .``), secrets a RUN step
serves from elsewhere (recorded with :meth:`SecretValues.record` as they are served),
and the registry credentials the build resolved (asked for at each check, since a
login can happen mid-build). One instance per build; thread-safe.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from pykaniko.executor.options import SecretSource
from pykaniko.image.leakscan import MAX_SECRET_LENGTH, Secret

__all__ = ["SecretValues", "secret_label"]

SecretProvider = Callable[[], Iterable[Secret]]


def secret_label(secret_id: str) -> str:
    """How a report names a build secret: ``secret "npmrc"``."""
    return f'secret "{secret_id}"'


class SecretValues:
    """The values recorded so far plus what the ``providers`` know now."""

    def __init__(self, providers: Sequence[SecretProvider] = ()) -> None:
        self._lock = threading.Lock()
        self._values: dict[tuple[str, bytes], Secret] = {}
        self._providers = tuple(providers)

    @classmethod
    def for_build(
        cls,
        sources: Sequence[SecretSource],
        environ: Mapping[str, str],
        providers: Sequence[SecretProvider] = (),
    ) -> SecretValues:
        """The ``--secret`` values (unreadable ones are left to the RUN that mounts
        them, which fails with its own message) and ``providers``."""
        values = cls(providers)
        for source in sources:
            value: bytes | None = None
            if source.env is not None:
                text = environ.get(source.env)
                value = text.encode() if text is not None else None
            elif source.path is not None:
                value = _read_head(Path(source.path))
            if value is not None:
                values.record(secret_label(source.id), value)
        return values

    def record(self, label: str, value: bytes) -> None:
        """Remember ``value``; a RUN step calls this for each secret it serves."""
        with self._lock:
            self._values.setdefault((label, value), Secret(label, value))

    def current(self) -> tuple[Secret, ...]:
        with self._lock:
            found = dict(self._values)
        for provider in self._providers:
            for secret in provider():
                found.setdefault((secret.label, secret.value), secret)
        return tuple(found.values())


def _read_head(path: Path) -> bytes | None:
    """The start of a secret file (only that much is searched)."""
    try:
        with open(path, "rb") as f:
            return f.read(MAX_SECRET_LENGTH + 64)
    except OSError:
        return None
