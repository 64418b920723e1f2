"""Plot of the ``sketch`` suite: l-infinity error of sketch-and-solve against ``m``.

``numlib-bench --suite sketch`` draws it (a plot registered for the suite, from the
``linf-vs-m`` cases); to redraw it from the ``results.json`` of an earlier run::

    python -m validation.suites.sketch_plot bench-results/results.json

writes ``sketch-linf-vs-m.png`` beside it (or into ``--out``): the median (line) and
worst (markers) over seeds of ``||x' - x*||_inf / (eps / sqrt(d) ||A x* - b|| ||A^+||)``
for each sketch, with the bound (ratio 1) dotted. The paper's ``m`` (Song et al.,
constant 1) lies beyond ``n`` and is printed in the title.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from validation.registry import Record, plot
from validation.suites.sketch import SUITE

__all__ = ["linf_plot", "main"]

_STYLE = {
    "gaussian": ("o", "tab:blue"),
    "srht": ("s", "tab:green"),
    "sparse_sign": ("^", "tab:orange"),
    "countsketch": ("v", "tab:red"),
}


@plot(SUITE)
def linf_plot(cases: Sequence[Any], out_dir: Path) -> list[Path]:
    """Draw l-inf error / bound against ``m / d`` per sketch: ``sketch-linf-vs-m.png``.

    Parameters
    ----------
    cases : sequence of Record or dict
        The records of a run (as ``numlib-bench`` holds them) or the ``"cases"`` list of
        a ``results.json``; those of case ``linf-vs-m-*`` are used.
    out_dir : Path
        Folder to write into.

    Returns
    -------
    list of Path
        The file written; empty when there is no such record.
    """
    from matplotlib.figure import Figure

    recs = [
        c
        for c in (r.to_json() if isinstance(r, Record) else r for r in cases)
        if c.get("suite") == SUITE and c["case"].startswith("linf-vs-m") and not c.get("skipped")
    ]
    if not recs:
        return []
    variants = sorted({c["metrics"].get("variant", "incoherent") for c in recs}, reverse=True)
    fig = Figure(figsize=(5.2 * len(variants), 4.4))
    axes = fig.subplots(1, len(variants), sharey=True, squeeze=False)[0]
    meta = recs[0]["metrics"]
    for ax, variant in zip(axes, variants, strict=True):
        for rec in recs:
            mt = rec["metrics"]
            if mt.get("variant", "incoherent") != variant or not mt["m"]:
                continue
            x = [m / mt["d"] for m in mt["m"]]
            marker, color = _STYLE.get(mt["sketch"], ("x", "k"))
            ax.plot(x, mt["median_linf_over_bound"], marker=marker, color=color, label=mt["sketch"])
            ax.plot(x, mt["max_linf_over_bound"], marker=marker, color=color, ls="none", alpha=0.4)
        ax.axhline(1.0, color="k", ls=":", lw=1)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sketch rows m / d")
        ax.set_title(f"{variant} A", fontsize=9)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("||x' - x*||_inf / bound (median; markers: worst seed)")
    fig.suptitle(
        f"sketch-and-solve, n={meta['n']}, d={meta['d']}, eps={meta['eps']}, "
        f"{meta['seeds']} seeds (paper's m = {meta['m_paper']:.2g} > n)",
        fontsize=9,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "sketch-linf-vs-m.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return [path]


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m validation.suites.sketch_plot results.json [--out DIR]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    cases = json.loads(args.results.read_text())["cases"]
    paths = linf_plot(cases, args.out or args.results.parent)
    print(paths[0] if paths else "no linf-vs-m records")
    return 0 if paths else 1


if __name__ == "__main__":
    raise SystemExit(main())
