"""The ``pykaniko`` command: Kaniko's executor flags, logs and progress, ``bench``.

This package is the only code that reads ``sys.argv``, prints, or exits. ``main``
dispatches: ``pykaniko version``, ``pykaniko bench ...`` (snapshot modes compared on
your Dockerfile), and otherwise a build with Kaniko's executor flags.
"""

from pykaniko.cli.flags import build_parser, options_from_args, parse_args
from pykaniko.cli.main import main

__all__ = ["build_parser", "main", "options_from_args", "parse_args"]
