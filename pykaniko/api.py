"""The embeddable library: ``build(options, on_event=...) -> BuildResult``.

Wires the default collaborators (registry client with the Docker config keychain, the
isolation ``options.isolation`` asks for) and leaves every one of them replaceable by
keyword.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pykaniko.executor import (
    BuildOptions,
    BuildResult,
    Event,
    EventSink,
    Isolation,
    Notice,
)
from pykaniko.executor import build as _run_build
from pykaniko.executor.options import absolute_paths
from pykaniko.registry import RegistryClient, default_keychain

__all__ = ["build"]


def _ignore(event: Event) -> None:
    del event


def build(
    options: BuildOptions,
    *,
    on_event: EventSink | None = None,
    registry: RegistryClient | None = None,
    isolation: Isolation | None = None,
    env: Mapping[str, str] | None = None,
) -> BuildResult:
    """Build (and push, unless ``options.outputs.no_push``) the image ``options`` describe.

    ``env`` is where credentials are looked up (``DOCKER_CONFIG``, GitLab CI variables);
    it defaults to the process environment, read here and nowhere else. ``isolation``
    replaces the one ``options.isolation`` would choose.
    """
    environ = dict(os.environ if env is None else env)
    options = absolute_paths(options)  # an in-place build works from /
    events = on_event or _ignore
    client = registry or RegistryClient(
        options.registry,
        default_keychain(environ),
        notify=lambda message: events(Notice("warning", message)),
    )
    try:
        return _run_build(
            options,
            registry=client,
            isolation=isolation,
            events=events,
            env=environ,
        )
    finally:
        if registry is None:
            client.close()
