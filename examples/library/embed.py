"""Embedding pykaniko: build an image from Python, follow its structured events, read
the closing summary, and cancel the build from another thread.

    python examples/library/embed.py --context DIR --destination REG/REPO:TAG [--insecure]
    python examples/library/embed.py ... --cancel-on-output TEXT   # cancel mid-RUN

Exit status: 0 built, 130 cancelled, else the error's own status. CI runs this file
(``tests/e2e/test_library_example.py``), so it stays in step with the library.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path

import pykaniko


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--context", required=True, type=Path)
    p.add_argument("--destination", required=True)
    p.add_argument("--insecure", action="store_true", help="plain HTTP to the registry")
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/pykaniko-embed"))
    p.add_argument("--cancel-on-output", metavar="TEXT", help="cancel when a RUN prints TEXT")
    args = p.parse_args(argv)

    options = pykaniko.BuildOptions(
        context=args.context,
        dockerfile=args.context / "Dockerfile",
        outputs=pykaniko.OutputOptions(destinations=(args.destination,)),
        registry=pykaniko.RegistryOptions(insecure=args.insecure, insecure_pull=args.insecure),
        work_dir=args.work_dir,
    )
    cancel = threading.Event()

    def on_event(event: pykaniko.Event) -> None:
        """Called from the build thread and, for RUN output, from a reader thread:
        keep it quick and never block."""
        match event:
            case pykaniko.StepStarted(stage=stage, number=n, total=total, text=text):
                print(f"stage {stage} step {n}/{total}: {text}", flush=True)
            case pykaniko.StepOutput(line=line):
                print(f"  | {line}", flush=True)
                if args.cancel_on_output and args.cancel_on_output in line:
                    cancel.set()  # what a "Stop" button or a timeout would do
            case pykaniko.LayerCreated(digest=digest, size=size):
                print(f"  layer {digest[:19]} {size} bytes", flush=True)
            case pykaniko.ImagePushed(reference=ref, digest=digest):
                print(f"pushed {ref}@{digest}", flush=True)
            case _:
                pass

    try:
        result = pykaniko.build(options, on_event=on_event, cancel=cancel)
    except pykaniko.BuildCancelledError as err:
        print(f"cancelled: {err}", file=sys.stderr)
        return err.exit_status
    except pykaniko.PykanikoError as err:  # every error pykaniko raises on purpose
        print(f"error [{err.code}]: {err}", file=sys.stderr)
        return err.exit_status
    assert result.summary is not None
    print(json.dumps(result.summary.to_dict(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
