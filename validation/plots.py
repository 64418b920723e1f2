"""PNG plots of a benchmark run: residual histories per case and a speedup chart.

Figures are drawn on :class:`matplotlib.figure.Figure` with the Agg canvas
directly, never through pyplot, so no GUI backend or global figure state is
involved.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from validation.registry import Record

__all__ = ["residual_plots", "speedup_plot"]


def _histories(records: Sequence[Record]) -> dict[str, np.ndarray]:
    """Residual history per method, numlib's and peers', each run drawn once.

    A run compared in several records (one numlib run against two peers, one
    peer run timed with and without its setup) shares its history array; it is
    drawn once, under the shortest of its names.
    """
    pairs = [
        (label, history)
        for r in records
        for label, history in ((r.method, r.history), (r.peer, r.peer_history))
        if history is not None
    ]
    lines: dict[str, np.ndarray] = {}
    for _, history in pairs:
        label = min((name for name, h in pairs if h is history), key=len)
        lines.setdefault(label, history)
    return lines


def residual_plots(records: Sequence[Record], out_dir: Path) -> list[Path]:
    """Draw one semilog plot of relative residual against iteration per case.

    Parameters
    ----------
    records : sequence of Record
        Records of the run; those without histories (skipped) are ignored.
    out_dir : pathlib.Path
        Existing folder to write ``<suite>-<case>-residuals.png`` into.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    by_case: dict[tuple[str, str], list[Record]] = {}
    for r in records:
        by_case.setdefault((r.suite, r.case), []).append(r)
    written = []
    for (suite, case), group in by_case.items():
        # numlib's solid lines first, so that a peer's dashed line on the same
        # curve stays visible on top.
        lines = dict(
            sorted(_histories(group).items(), key=lambda item: not item[0].startswith("numlib"))
        )
        if not lines:
            continue
        fig = Figure(figsize=(6.4, 4.2), layout="constrained")
        ax = fig.subplots()
        for label, history in lines.items():
            style = "-" if label.startswith("numlib") else "--"
            ax.semilogy(np.arange(len(history)), history, style, label=label)
        ax.set_xlabel("iteration")
        ax.set_ylabel("||b - A x_k|| / ||b||")
        ax.set_title(f"{suite}/{case} ({group[0].size})")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend()
        path = out_dir / f"{suite}-{case}-residuals.png"
        fig.savefig(path, dpi=110)
        written.append(path)
    return written


def speedup_plot(records: Sequence[Record], out_dir: Path) -> Path | None:
    """Draw a horizontal bar chart of speedups (log scale, 1 = parity).

    Returns the file written (``speedup.png``), or None if no record has a speedup.
    """
    timed = [r for r in records if r.speedup is not None]
    if not timed:
        return None
    labels = [f"{r.case}: {r.method} vs {r.peer}" for r in timed]
    speedups = np.array([r.speedup for r in timed])
    fig = Figure(figsize=(8, 1.2 + 0.45 * len(timed)), layout="constrained")
    ax = fig.subplots()
    colors = np.where(speedups >= 1, "tab:green", "tab:red")
    y = np.arange(len(timed))
    # Bars grow from parity, right when numlib is faster and left when slower.
    ax.barh(y, speedups - 1.0, left=1.0, color=colors)
    for yi, s in zip(y, speedups, strict=True):
        ax.annotate(
            f"{s:.2f}x",
            (s, yi),
            xytext=(3 if s >= 1 else -3, 0),
            textcoords="offset points",
            va="center",
            ha="left" if s >= 1 else "right",
        )
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xscale("log")
    low, high = min(speedups.min(), 1.0), max(speedups.max(), 1.0)
    ax.set_xlim(low / 1.6, high * 1.6)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}x"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("speedup = peer time / numlib time (> 1: numlib faster)")
    ax.set_title(f"numlib vs peers ({timed[0].size})")
    path = out_dir / "speedup.png"
    fig.savefig(path, dpi=110)
    return path
