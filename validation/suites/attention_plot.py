"""Redraw the ``attention`` suite's plots from a saved ``results.json``.

``numlib-bench`` draws them after each run
(:func:`validation.suites.attention.attention_plots`, registered for the suite)::

    python -m validation.suites.attention_plot bench-results/results.json [--out DIR]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from validation.registry import Record
from validation.suites.attention import attention_plots

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m validation.suites.attention_plot RESULTS [--out DIR]``: draw the plots."""
    parser = argparse.ArgumentParser(prog="python -m validation.suites.attention_plot")
    parser.add_argument("results", type=Path, help="results.json of a numlib-bench run")
    parser.add_argument("--out", type=Path, default=None, help="folder (default: beside it)")
    args = parser.parse_args(argv)
    cases = json.loads(args.results.read_text())["cases"]
    records = [
        Record(**{k: v for k, v in c.items() if k != "speedup"})
        for c in cases
        if c["suite"] == "attention"
    ]
    out = args.out or args.results.parent
    out.mkdir(parents=True, exist_ok=True)
    for path in attention_plots(records, out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
