"""Pareto plot of the ``ptd`` suite: ``kappa_2(V)`` against ``sup|ΔG|/max|G|`` per ``n``.

``numlib-bench --suite ptd`` draws it (a plot registered for the suite); to redraw it from
the ``results.json`` of an earlier run::

    python -m validation.suites.ptd_plot bench-results/results.json

writes ``ptd-pareto.png`` beside it (or into ``--out``). Dotted lines mark the issue's
target (``kappa <= 1e4``, error ``<= 5e-2``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from validation.registry import Record, plot
from validation.suites.ptd import SUITE, TARGET_ERROR, TARGET_KAPPA

__all__ = ["main", "pareto_plot"]

_SAME_NORM = "ptd-random at the optimised ||E|| (best of 8)"
_STYLE = {
    "s4d-normal": ("s", "tab:red"),
    "ptd-random": ("o", "tab:blue"),
    "ptd-optimized": ("*", "tab:green"),
    _SAME_NORM: ("^", "tab:purple"),
}


def _points(cases: Sequence[Any]) -> dict[int, dict[str, list[tuple[float, float]]]]:
    """(kappa, rel_transfer_error) per n and method from Records or their JSON form."""
    out: dict[int, dict[str, list[tuple[float, float]]]] = {}
    for rec in cases:
        if isinstance(rec, Record):
            rec = rec.to_json()
        if rec.get("suite") != SUITE or rec.get("skipped"):
            continue
        n = int(rec["case"].rsplit("-", 1)[1])
        panel = out.setdefault(n, {})
        sides = [(rec["method"], rec["metrics"])]
        if rec["peer"] == "s4d-normal":
            sides.append((rec["peer"], rec["peer_metrics"]))
        else:  # the optimiser's peer: random draws of the same size
            sides.append((_SAME_NORM, rec["peer_metrics"]))
        for method, m in sides:
            point = (m["kappa"], m["rel_transfer_error"])
            if point not in panel.setdefault(method, []):
                panel[method].append(point)
    return out


@plot(SUITE)
def pareto_plot(cases: Sequence[Any], out_dir: Path) -> list[Path]:
    """Draw ``kappa`` against ``rel_transfer_error`` per ``n``: ``ptd-pareto.png``.

    Parameters
    ----------
    cases : sequence of Record or dict
        The records of a run (as ``numlib-bench`` holds them) or the ``"cases"`` list of
        a ``results.json``; records of other suites are ignored.
    out_dir : pathlib.Path
        Existing folder to write into.

    Returns
    -------
    list of pathlib.Path
        The file written; empty without ``ptd`` records.
    """
    from matplotlib.figure import Figure

    points = _points(cases)
    if not points:
        return []
    fig = Figure(figsize=(4.2 * len(points), 4.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(points), sharey=True))
    for ax, n in zip(axes, sorted(points), strict=True):
        for method, pts in points[n].items():
            marker, color = _STYLE.get(method, ("x", "black"))
            k, e = np.array(pts).T
            ax.loglog(k, e, marker, color=color, linestyle="none", markersize=8, label=method)
        ax.axvline(TARGET_KAPPA, color="0.5", linestyle=":", linewidth=0.8)
        ax.axhline(TARGET_ERROR, color="0.5", linestyle=":", linewidth=0.8)
        ax.set_title(f"HiPPO-LegS n = {n}")
        ax.set_xlabel("kappa_2(V)")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("sup|dG| / max|G|")
    axes[0].legend(loc="best", fontsize="small")
    path = out_dir / "ptd-pareto.png"
    fig.savefig(path, dpi=110)
    return [path]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m validation.suites.ptd_plot RESULTS [--out DIR]``: draw the Pareto plot."""
    parser = argparse.ArgumentParser(prog="python -m validation.suites.ptd_plot")
    parser.add_argument("results", type=Path, help="results.json of a numlib-bench run")
    parser.add_argument("--out", type=Path, default=None, help="folder (default: beside it)")
    args = parser.parse_args(argv)
    cases = json.loads(args.results.read_text())["cases"]
    out = args.out or args.results.parent
    out.mkdir(parents=True, exist_ok=True)
    paths = pareto_plot(cases, out)
    print(f"wrote {paths[0]}" if paths else "no ptd records in the file")
    return 0 if paths else 1


if __name__ == "__main__":
    raise SystemExit(main())
