"""``python -m solvers.datasets``: the ``numlib-dataset`` command line."""

from solvers.datasets.cli import main

raise SystemExit(main())
