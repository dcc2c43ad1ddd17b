"""Run one build in the in-place mode against a throw-away root directory, never ``/``.

``python -m tests.support.inplace_root SPEC.json`` (a process of its own: in-place
isolation chdirs to its root and makes the process a child subreaper). The spec gives
``root``, ``context``, ``destination``, ``registry`` and ``keep`` (rootfs paths of the
"container"). The kaniko dir is ``<root>/kaniko``, as in the executor image.

Only for Dockerfiles whose RUN commands touch relative paths: a RUN is a plain process
of the host with the root as cwd, so an absolute path would be the host's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pykaniko.api import build
from pykaniko.executor import BuildOptions, InPlaceIsolation, OutputOptions, SecretSource
from pykaniko.executor.events import Event, Notice, StepOutput, StepStarted
from pykaniko.registry import RegistryOptions
from pykaniko.snapshot import IgnoreList


def _show(event: Event) -> None:
    match event:
        case StepStarted(text=text):
            print(f"STEP {text}", flush=True)
        case StepOutput(line=line):
            print(f"OUT {line}", flush=True)
        case Notice(level=level, message=message):
            print(f"{level.upper()} {message}", flush=True)
        case _:
            pass


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    root = Path(spec["root"])
    context = Path(spec["context"])
    kaniko = root / "kaniko"
    options = BuildOptions(
        context=context,
        dockerfile=context / "Dockerfile",
        outputs=OutputOptions(destinations=(spec["destination"],)),
        work_dir=kaniko,
        registry=RegistryOptions(insecure_registries=(spec["registry"],)),
        secrets=tuple(SecretSource(id=k, path=v) for k, v in spec.get("secrets", {}).items()),
        cleanup=False,
    )
    isolation = InPlaceIsolation(
        keep=IgnoreList.of(exact=["/kaniko", *spec["keep"]]), kaniko_dir=kaniko, root=root
    )
    result = build(options, isolation=isolation, on_event=_show, env={})
    print(f"DIGEST {result.digest}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
