"""``python -m pykaniko``: the same as the ``pykaniko`` console script."""

from pykaniko.cli import main

raise SystemExit(main())
