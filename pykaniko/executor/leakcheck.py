"""The secret-leak check (``--secret-check=error|warn|off``): no secret value the build
used may leave it inside a layer, the config, the history, a label or an annotation.

Layers are searched while they are written (the tar stream passes through a
:class:`~pykaniko.image.leakscan.LeakScanner` on its way to the compressor), so the
check costs no extra read and is done the moment a layer exists, before it is put in
the blob store under its digest. What happens to a hit depends on where the layer goes:

* a layer of a stage the final image is built from fails the build at once (``error``)
  or is reported (``warn``): it would be pushed;
* a layer of an intermediate stage is only noted: it never leaves the work directory,
  unless it is about to be pushed as a cache image, which :meth:`LeakGuard.clear_for_push`
  refuses. Whatever uploads a blob (the final push, the layer cache, a background
  uploader) asks :meth:`LeakGuard.clear_for_push` first.

The final image's config and manifest are searched field by field before anything is
delivered. Reports name the secret, the path in the image and the step; every printed
text goes through :func:`~pykaniko.image.leakscan.redact` first.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from pykaniko.dockerfile import BuildPlan, StageBase
from pykaniko.errors import Location, SecretLeakError
from pykaniko.executor.events import EventSink, Notice
from pykaniko.executor.options import BuildOptions, SecretCheck
from pykaniko.executor.secrets import SecretValues, secret_label
from pykaniko.image.leakscan import (
    Leak,
    LeakScanner,
    Secret,
    mask,
    mask_patterns,
    redact,
    scan_json,
    scanning_reader,
)
from pykaniko.registry import RegistryClient
from pykaniko.snapshot import ExtractReport, LayerSink

__all__ = [
    "LeakGuard",
    "Origin",
    "ScanningSink",
    "registry_secrets",
    "scanning",
    "shipped_stages",
    "short_step",
]

_LAYER_HINT = (
    "a file a step writes stays in its layer even when a later step deletes it: mount "
    "the secret where the tool reads it, or delete the file in the same RUN; "
    "--secret-check=warn pushes anyway"
)
_METADATA_HINT = (
    "build args, labels, annotations and ENV values are stored in the image: pass the "
    "value with --secret and RUN --mount=type=secret instead; --secret-check=warn "
    "pushes anyway"
)


@dataclass(frozen=True, slots=True)
class Origin:
    """The step that made a layer (or wrote a metadata field)."""

    stage: int
    location: Location | None = None
    text: str = ""


def short_step(text: str, limit: int = 40) -> str:
    """The start of an instruction, cut at a word: ``RUN --mount=type=secret,id=x cat …``."""
    words = text.split()
    shown: list[str] = []
    for word in words:
        if shown and len(" ".join([*shown, word])) > limit:
            return " ".join(shown) + " …"
        shown.append(word)
    return " ".join(shown)


class ScanningSink:
    """A layer sink that hands every byte to ``scanner`` and then to ``inner``."""

    def __init__(self, inner: LayerSink, scanner: LeakScanner) -> None:
        self._inner = inner
        self._scanner = scanner

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        self._scanner.write(data)
        return self._inner.write(data)

    def flush(self) -> None:
        self._inner.flush()


def scanning(
    apply: Callable[..., ExtractReport], scanner: LeakScanner
) -> Callable[..., ExtractReport]:
    """``apply`` (a layer extraction) with the stream it reads also going to ``scanner``."""

    def wrapped(stream: BinaryIO, *, what: str) -> ExtractReport:
        return apply(scanning_reader(stream, scanner), what=what)

    return wrapped


def registry_secrets(credentials: Iterable[tuple[str, object]]) -> list[Secret]:
    """The passwords and tokens of resolved registry credentials, labelled by registry."""
    out: list[Secret] = []
    for registry, cred in credentials:
        for attr, what in (
            ("password", "password"),
            ("identity_token", "identity token"),
            ("registry_token", "token"),
        ):
            value = getattr(cred, attr, "")
            if isinstance(value, str) and value:
                out.append(Secret(f"the registry {what} for {registry}", value.encode()))
    return out


def shipped_stages(plan: BuildPlan) -> frozenset[int]:
    """The target stage and the stages it is built on (``FROM <stage>``): their layers
    are the image's."""
    by_index = {p.stage.index: p for p in plan.stages}
    out: set[int] = set()
    index: int | None = plan.target_index
    while index is not None and index not in out:
        out.add(index)
        planned = by_index.get(index)
        base = planned.base if planned is not None else None
        index = base.index if isinstance(base, StageBase) else None
    return frozenset(out)


class LeakGuard:
    """One build's leak check: the secret values, the mode, and what was found where."""

    def __init__(
        self,
        mode: SecretCheck,
        values: SecretValues,
        events: EventSink,
        *,
        shipped_stages: Iterable[int] = (),
    ) -> None:
        self.mode = mode
        self.values = values
        self.events = events
        self.shipped_stages = frozenset(shipped_stages)
        self._lock = threading.Lock()
        self._layers: dict[str, tuple[tuple[Leak, ...], Origin]] = {}
        self._warned: set[tuple[str, str]] = set()
        self._pushed = False
        self._mask: tuple[tuple[Secret, ...], tuple[bytes, ...]] = ((), ())

    def redact(self, text: str) -> str:
        """``text`` with every secret value (raw or base64) masked: for log lines."""
        secrets = self.values.current()
        if not secrets:
            return text
        with self._lock:
            known, patterns = self._mask
        if known != secrets:
            patterns = mask_patterns(secrets)
            with self._lock:
                self._mask = (secrets, patterns)
        return mask(text, patterns)

    @classmethod
    def for_build(
        cls,
        options: BuildOptions,
        plan: BuildPlan,
        registry: RegistryClient,
        events: EventSink,
        env: Mapping[str, str],
    ) -> LeakGuard:
        """The build's guard: ``--secret`` values now, registry credentials as they are
        resolved, secrets RUN steps serve as they are served."""
        values = SecretValues.for_build(
            options.secrets, env, providers=[lambda: registry_secrets(registry.used_credentials())]
        )
        return cls(options.secret_check, values, events, shipped_stages=shipped_stages(plan))

    def record_secret(self, secret_id: str, value: bytes) -> None:
        """A RUN step serves the secret ``secret_id``: search for its value from now on."""
        self.values.record(secret_label(secret_id), value)

    def scanner(self) -> LeakScanner | None:
        """A scanner for the next layer; None when the check is off or nothing is long
        enough to search for."""
        if self.mode == "off":
            return None
        scanner = LeakScanner(self.values.current())
        return scanner if scanner.active else None

    def layer_done(self, digest: str, leaks: Sequence[Leak], origin: Origin) -> None:
        """A layer was written (or a cached one applied) and searched: fail now, warn,
        or keep the hits for :meth:`clear_for_push`."""
        if not leaks:
            return
        with self._lock:
            self._layers[digest] = (tuple(leaks), origin)
        if origin.stage in self.shipped_stages:
            self._found(leaks, origin, going="the image")
            return
        first = leaks[0]
        self.events(
            Notice(
                "info",
                f"{self._where(origin)}{self._leak_text(first)} in stage {origin.stage}, "
                "which is not part of the image (fine unless it is pushed as a cache layer)",
            )
        )

    def clear_for_push(self, digests: Iterable[str], going: str) -> None:
        """Called before blobs are uploaded anywhere: refuses (``error``) or reports
        (``warn``) a layer a secret was found in."""
        with self._lock:
            found = [self._layers[d] for d in digests if d in self._layers]
        for leaks, origin in found:
            self._found(leaks, origin, going=going)
        with self._lock:
            self._pushed = True

    def check_metadata(
        self, raw: bytes, what: str, *, origin: Origin | None = None, going: str = "the image"
    ) -> None:
        """Search a config or manifest (every string, JSON escapes undone)."""
        if self.mode == "off":
            return
        leaks = scan_json(raw, self.values.current())
        if leaks:
            self._found(leaks, origin, going=going, what=what)

    def check_fields(
        self, fields: Mapping[str, str], what: str, *, origin: Origin | None, going: str
    ) -> None:
        """:meth:`check_metadata` for a few named strings (a cache image's history)."""
        self.check_metadata(json.dumps(fields).encode(), what, origin=origin, going=going)

    def _found(
        self,
        leaks: Sequence[Leak],
        origin: Origin | None,
        *,
        going: str,
        what: str | None = None,
    ) -> None:
        secrets = self.values.current()
        first = leaks[0]
        text = self._leak_text(first, what)
        if origin is not None and origin.text:
            text += f" ({short_step(redact(origin.text, secrets))})"
        more = len(leaks) - 1
        if more:
            text += f", and {more} more place{'s' if more > 1 else ''}"
        location = origin.location if origin is not None else None
        if self.mode == "error":
            with self._lock:
                pushed = self._pushed
            tail = "nothing was pushed" if not pushed else f"{going} was not pushed"
            hint = _LAYER_HINT if what is None else _METADATA_HINT
            raise SecretLeakError(f"{text}; {tail}", location=location, hint=hint)
        for leak in leaks:
            key = (going, f"{leak.label}|{leak.path}|{what}")
            with self._lock:
                if key in self._warned:
                    continue
                self._warned.add(key)
            line = self._leak_text(leak, what)
            if origin is not None and origin.text:
                line += f" ({short_step(redact(origin.text, secrets))})"
            prefix = f"{location}: " if location is not None else ""
            self.events(
                Notice("warning", f"{prefix}{line}; pushing {going} anyway (--secret-check=warn)")
            )

    def _leak_text(self, leak: Leak, what: str | None = None) -> str:
        secrets = self.values.current()
        path = redact(leak.path, secrets)
        encoded = " (base64-encoded)" if leak.encoding == "base64" else ""
        if what is not None:
            place = f"{what} ({path})" if path else what
        elif leak.where == "content":
            place = path or "the layer"
        elif leak.where in ("name", "link target", "tar header", "tar padding"):
            place = f"the {leak.where} of {path}"
        else:  # an xattr
            place = f"the {leak.where} of {path}"
        return f"{leak.label} leaked{encoded} into {place}"

    @staticmethod
    def _where(origin: Origin) -> str:
        return f"{origin.location}: " if origin.location is not None else ""
