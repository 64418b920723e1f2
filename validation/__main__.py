"""``python -m validation``: the same as the ``numlib-bench`` command."""

from validation.cli import main

raise SystemExit(main())
