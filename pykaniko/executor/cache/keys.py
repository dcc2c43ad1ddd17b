"""Cache keys: pure functions over an unambiguous encoding (a JSON list) of what decides
a step's result, and nothing else.

A key chains from its parent: a stage starts from :func:`seed_key` (the base's manifest
digest, the target platform and the options that shape every layer) or, built FROM an
earlier stage, from that stage's final key. Each filesystem step (RUN, COPY, ADD,
WORKDIR, VOLUME) extends the chain with its own key; metadata steps (LABEL, CMD,
EXPOSE...) do not, since they change no file: what they change that a later step reads
(env, user, workdir, shell) is an explicit input of that step's key instead.

Never an input: anything that changes from one build to the next by itself. That rules
out the digest of a layer this build made (it holds build-time timestamps), and source
timestamps: a CI job clones the repository afresh each pipeline, so mtimes differ on
every build even when nothing changed (BuildKit's content checksums and Kaniko's keys
leave mtime out too). The consequence: a cached COPY layer may carry the mtimes of the
build that made it. Secret values never enter a key (a secret's id is in the text).

The golden values in ``tests/executor/test_cache_keys.py`` pin this encoding: a key
that moves by accident throws away every user's cache, so change it only on purpose and
then bump ``KEY_VERSION``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from pykaniko.image.platform import Platform

__all__ = [
    "KEY_VERSION",
    "copy_key",
    "run_key",
    "seed_key",
    "volume_key",
    "workdir_key",
]

KEY_VERSION = "pykaniko-cache-v2"


def _digest(kind: str, parts: Sequence[object]) -> str:
    encoded = json.dumps([KEY_VERSION, kind, *parts], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()


def seed_key(base: str, platform: Platform, *, layer_options: Sequence[str] = ()) -> str:
    """Where a stage built on an image (its manifest digest) or ``scratch`` starts.

    The platform is in (Kaniko leaves it out and poisons caches across architectures),
    and so are ``layer_options``: build options that change what every layer holds
    (``--reproducible``'s mtime clamp, ignore paths).
    """
    return _digest("seed", [base, str(platform), sorted(layer_options)])


def run_key(
    parent: str,
    text: str,
    *,
    env: Sequence[str],
    user: str,
    workdir: str,
    shell: Sequence[str],
    mounts: Sequence[tuple[str, str]] = (),
) -> str:
    """A RUN: its expanded text, the environment it sees (sorted ``K=V``), user, working
    directory and shell, and for each mount that feeds it files ``(target, digest)``:
    a bind source by content or by the key/digest of the stage/image it comes from."""
    return _digest("run", [parent, text, sorted(env), user, workdir, list(shell), sorted(mounts)])


def copy_key(parent: str, text: str, *, workdir: str, sources: Sequence[tuple[str, str]]) -> str:
    """A COPY or ADD: its expanded text, the working directory a relative destination
    starts from, and ``(kind, digest)`` per source group, in order: the context
    sources' content and metadata, a ``--from`` stage's key or image's manifest
    digest, a URL's checksum or fetched content."""
    return _digest("copy", [parent, text, workdir, [list(s) for s in sources]])


def workdir_key(parent: str, path: str, user: str) -> str:
    """A WORKDIR: the directory (absolute) and the user that owns it if it is made."""
    return _digest("workdir", [parent, path, user])


def volume_key(parent: str, paths: Sequence[str]) -> str:
    """A VOLUME: no layer, but later snapshots leave its paths out."""
    return _digest("volume", [parent, sorted(paths)])
