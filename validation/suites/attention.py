"""Suite ``attention``: fast (polynomial-feature) vs exact tensor and softmax attention.

Inputs (seed :data:`SEED`): ``Q, K1, K2`` uniform in ``[-1, 1]^(n x d)``, ``Q`` then
scaled so that the logit bound of :func:`numlib.attention.logit_bound`,
``max_i sum_t |q_it| max_j |k1_jt| max_l |k2_lt|``, equals ``b`` exactly (so every
``|<q_i, k1_j ∘ k2_l>| <= b``); ``V1, V2`` standard normal, ``d_v = d``. The matrix pair
uses ``Q, K1, V1`` with ``Q`` scaled to ``max_i sum_t |q_it| max_j |k_jt| = b``.

Records, one per ``(n, d, b)``, case ``n{n}-d{d}-b{b}`` (``b`` printed with ``g``):

- ``method: "tensor-fast"`` (:func:`numlib.attention.fast_tensor_attention`) vs
  ``peer: "tensor-exact"`` (:func:`numlib.attention.tensor_attention`, blocked numpy),
- ``method: "matrix-fast"`` vs ``peer: "matrix-exact"`` (the softmax pair).

The fast side uses ``tol = TOL`` (1e-4), basis ``chebyshev``, ``max_features =
MAX_FEATURES``; where no admissible degree reaches ``tol`` at that ``(b, d)`` the
library refuses, and the record is ``skipped`` with its message (this is the
hardness regime of Alman & Song, not a failure of the run).

Exact tensor attention costs ``n^3`` exponentials; its rows are independent and its
cost is exactly linear in the number of query rows, so for ``n > FULL_EXACT_MAX`` (256) the
exact side runs on :data:`ROWS` (32) random query rows (against all keys),
``peer_time_s`` is that time times ``n / rows``, the error is measured on those rows,
and the record says ``extrapolated: True`` with ``rows_compared``. Both sides are the best
of ``repeat`` runs, except an exact side whose first run takes 10 s or more
(:func:`validation.measure.best_time_unless_slow`; ``peer_metrics["timed_runs"]`` says
how many runs it had).

Metrics (numlib side):

``max_rel_error``
    ``max_{i, c} |out_fast[i, c] - out_exact[i, c]| / ||V1 ⊘ V2||_max`` over the
    compared rows, with ``||V1 ⊘ V2||_max = max_c max_j |V1[j, c]| max_l |V2[l, c]|`` the
    largest entry of the value rows (``max |V|`` for the matrix pair). Relative to the
    value scale, not to ``out_exact``: with near-uniform weights the exact rows average
    ~n^2 values and are close to 0, where an output-relative error means nothing.
``error_bound``
    The a-priori bound on ``max_rel_error`` (:func:`numlib.attention.plan_attention`).
``degree``, ``feature_size``, ``logit_bound``, ``n``, ``d``, ``b``
    The plan and the problem.
``extrapolated``, ``rows_compared``
    As above.
``memory_mb``
    Peak traced memory of the fast call (tracemalloc; numpy buffers).

Slope records, case ``slope-d{d}-b{b}``, one per ``(d, b)`` and pair: ``loglog_slope`` is
the least-squares slope of ``log time_s`` against ``log n`` over the size's ``n``
(fast side), ``peer_loglog_slope`` the same for the exact side. Target (issue 10):
fast slope ``<= 1.15``.

Case ``error-vs-degree``: at one ``(n, d)`` and each ``b``, the fast tensor path at every
degree whose a-priori bound is finite, both bases (``method: tensor-fast-{basis}``,
case ``n{n}-d{d}-b{b}-g{g}``), with ``max_rel_error`` and ``error_bound``.

Plots (:func:`attention_plots`, registered for the suite, so ``numlib-bench`` draws
them): ``attention-error-vs-degree.png`` and
``attention-time-vs-n.png``; ``python -m validation.suites.attention_plot RESULTS``
redraws them from a saved ``results.json``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from numlib.attention import (
    fast_softmax_attention,
    fast_tensor_attention,
    logit_bound,
    output_error_bound,
    plan_attention,
    softmax_attention,
    tensor_attention,
)
from validation.measure import best_time, best_time_unless_slow, peak_memory_mb
from validation.registry import Record, case, plot

SUITE = "attention"
SEED = 20240501
TOL = 1e-4
BASIS = "chebyshev"
MAX_FEATURES = 2**17
FULL_EXACT_MAX = 256
ROWS = 32
DIMS = (4, 8, 16)
BOUNDS = (0.5, 1.0, 2.0)
NS = {
    "small": (128, 256, 512),
    "medium": (256, 512, 1024, 2048, 4096, 8192),
    "large": (256, 512, 1024, 2048, 4096, 8192, 16384),
}
# The small size (well under a minute) covers these (d, b); medium and large all.
SMALL = ((4, 0.5), (4, 1.0), (8, 1.0))
DEGREE_CASE = {"small": (128, 4), "medium": (512, 8), "large": (1024, 8)}


def problem(n: int, d: int, b: float, factors: int, seed: int = SEED):
    """Return ``Q, keys, values`` (``factors`` key and value sets), logit bound exactly ``b``."""
    rng = np.random.default_rng([seed, n, d, factors])
    keys = [rng.uniform(-1, 1, (n, d)) for _ in range(factors)]
    Q = rng.uniform(-1, 1, (n, d))
    Q *= b / logit_bound(Q, *keys)
    values = [rng.standard_normal((n, d)) for _ in range(factors)]
    return Q, keys, values


def value_scale(values: list[np.ndarray]) -> float:
    """``max_c prod_f max_j |values_f[j, c]|``, the largest entry of the value rows."""
    cols = np.prod([np.abs(v).max(axis=0) for v in values], axis=0)
    return float(cols.max())


def _rows(n: int) -> np.ndarray | None:
    if n <= FULL_EXACT_MAX:
        return None
    return np.sort(np.random.default_rng([SEED, n]).choice(n, ROWS, replace=False))


def _label(b: float) -> str:
    return f"{b:g}"


def _pair(kind: str, n: int, d: int, b: float, size: str, repeat: int) -> Record:
    """One fast-vs-exact record for ``kind`` in {"tensor", "matrix"}."""
    factors = 2 if kind == "tensor" else 1
    name = f"n{n}-d{d}-b{_label(b)}"
    Q, keys, values = problem(n, d, b, factors)
    method, peer = f"{kind}-fast", f"{kind}-exact"
    try:
        plan = plan_attention(Q, *keys, tol=TOL, basis=BASIS, max_features=MAX_FEATURES)
    except ValueError as err:
        return Record.skip(SUITE, name, size, f"refused: {err}", method=method, peer=peer)
    opts = {"degree": plan.degree, "basis": BASIS, "max_features": MAX_FEATURES}

    def fast() -> Any:
        if kind == "tensor":
            return fast_tensor_attention(Q, *keys, *values, **opts)
        return fast_softmax_attention(Q, keys[0], values[0], **opts)

    rows = _rows(n) if kind == "tensor" else None
    Qe = Q if rows is None else Q[rows]

    def exact() -> Any:
        if kind == "tensor":
            return tensor_attention(Qe, *keys, *values)
        return softmax_attention(Qe, keys[0], values[0])

    time_s, out = best_time(fast, repeat)
    peer_time_s, ref, peer_runs = best_time_unless_slow(exact, repeat)
    compared = out if rows is None else out[rows]
    err = float(np.abs(compared - ref).max()) / value_scale(values)
    if rows is not None:
        peer_time_s *= n / rows.size
    common = {"n": n, "d": d, "b": b}
    metrics = {
        **common,
        "max_rel_error": err,
        "error_bound": plan.error_bound,
        "degree": plan.degree,
        "feature_size": plan.feature_size,
        "logit_bound": plan.logit_bound,
        "extrapolated": rows is not None,
        "rows_compared": n if rows is None else int(rows.size),
        "memory_mb": peak_memory_mb(fast),
    }
    peer_metrics = {**common, "extrapolated": rows is not None, "timed_runs": peer_runs}
    return Record(SUITE, name, size, method, peer, time_s, peer_time_s, metrics, peer_metrics)


def _slope(records: list[Record], size: str, d: int, b: float) -> list[Record]:
    out = []
    for kind in ("tensor", "matrix"):
        timed = [r for r in records if r.method == f"{kind}-fast" and r.time_s is not None]
        if len(timed) < 2:
            continue
        logn = np.log([r.metrics["n"] for r in timed])
        slope = float(np.polyfit(logn, np.log([r.time_s for r in timed]), 1)[0])
        peer = float(np.polyfit(logn, np.log([r.peer_time_s for r in timed]), 1)[0])
        common = {
            "d": d,
            "b": b,
            "n_min": int(np.exp(logn.min()).round()),
            "n_max": int(np.exp(logn.max()).round()),
        }
        out.append(
            Record(
                SUITE,
                f"slope-d{d}-b{_label(b)}",
                size,
                f"{kind}-fast",
                f"{kind}-exact",
                None,
                None,
                {**common, "loglog_slope": slope},
                {**common, "loglog_slope": peer},
            )
        )
    return out


def _register(d: int, b: float) -> None:
    def run(size: str, *, repeat: int) -> list[Record]:
        ns = NS[size]
        records = [_pair(kind, n, d, b, size, repeat) for n in ns for kind in ("tensor", "matrix")]
        return records + _slope(records, size, d, b)

    run.__doc__ = (
        f"tensor/matrix attention, fast (tol {TOL:g}) vs exact, d={d}, |logits|<={_label(b)}, "
        "every n of the size."
    )
    sizes = ("small", "medium", "large") if (d, b) in SMALL else ("medium", "large")
    case(SUITE, f"d{d}-b{_label(b)}", sizes=sizes)(run)


for _d in DIMS:
    for _b in BOUNDS:
        _register(_d, _b)


@case(SUITE, "error-vs-degree")
def error_vs_degree(size: str, *, repeat: int) -> list[Record]:
    """Fast tensor attention error at each degree (both bases) vs its a-priori bound."""
    n, d = DEGREE_CASE[size]
    records = []
    for b in BOUNDS:
        Q, keys, values = problem(n, d, b, 2)
        scale = value_scale(values)
        _, ref = best_time(
            lambda Q=Q, keys=keys, values=values: tensor_attention(Q, *keys, *values), 1
        )
        for basis in ("taylor", "chebyshev"):
            for g in range(1, 11):
                if not math.isfinite(output_error_bound(b, g, basis)):
                    continue
                plan = plan_attention(Q, *keys, degree=g, basis=basis, max_features=MAX_FEATURES)
                time_s, out = best_time(
                    lambda g=g, basis=basis, Q=Q, keys=keys, values=values: fast_tensor_attention(
                        Q, *keys, *values, degree=g, basis=basis, max_features=MAX_FEATURES
                    ),
                    repeat,
                )
                metrics = {
                    "n": n,
                    "d": d,
                    "b": b,
                    "degree": g,
                    "basis": basis,
                    "feature_size": plan.feature_size,
                    "max_rel_error": float(np.abs(out - ref).max()) / scale,
                    "error_bound": plan.error_bound,
                }
                records.append(
                    Record(
                        SUITE,
                        f"n{n}-d{d}-b{_label(b)}-g{g}",
                        size,
                        f"tensor-fast-{basis}",
                        "tensor-exact",
                        time_s,
                        None,
                        metrics,
                    )
                )
    return records


@plot(SUITE)
def attention_plots(records: Sequence[Record], out_dir: Path) -> list[Path]:
    """Draw the ``attention`` suite's error-vs-degree and time-vs-n plots.

    ``attention-error-vs-degree.png``: measured ``max_rel_error`` (solid) and the
    a-priori ``error_bound`` (dashed) of the fast tensor path against the degree, per
    logit bound and basis. ``attention-time-vs-n.png``: log-log time of the fast and
    exact paths (exact extrapolated from a row subset where marked) against ``n``, one
    panel per ``d``, tensor and matrix pairs.

    Returns
    -------
    list of pathlib.Path
        The files written (none when the run has no such records).
    """
    ours = [r for r in records if r.suite == "attention" and r.skipped is None]
    written = []
    by_degree = [r for r in ours if "basis" in r.metrics]
    if by_degree:
        fig = Figure(figsize=(6.4, 4.4), layout="constrained")
        ax = fig.subplots()
        keys = sorted({(r.metrics["b"], r.metrics["basis"]) for r in by_degree})
        for b, basis in keys:
            rs = sorted(
                (r for r in by_degree if (r.metrics["b"], r.metrics["basis"]) == (b, basis)),
                key=lambda r: r.metrics["degree"],
            )
            g = [r.metrics["degree"] for r in rs]
            (line,) = ax.semilogy(
                g,
                [max(r.metrics["max_rel_error"], 1e-17) for r in rs],
                "o-",
                label=f"|logit|<={b:g} {basis}",
            )
            ax.semilogy(g, [r.metrics["error_bound"] for r in rs], "--", color=line.get_color())
        ax.set_xlabel("degree g")
        ax.set_ylabel("max |fast - exact| / ||V1 ⊘ V2||_max")
        n, d = by_degree[0].metrics["n"], by_degree[0].metrics["d"]
        ax.set_title(f"tensor attention, n={n}, d={d}\nmeasured (solid), a-priori bound (dashed)")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize="small")
        path = out_dir / "attention-error-vs-degree.png"
        fig.savefig(path, dpi=110)
        written.append(path)
    scaling = [r for r in ours if "basis" not in r.metrics and "n" in r.metrics]
    dims = sorted({r.metrics["d"] for r in scaling})
    if dims:
        fig = Figure(figsize=(4.2 * len(dims), 4.2), layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, len(dims), sharey=True))
        for ax, d in zip(axes, dims, strict=True):
            for method in ("tensor-fast", "matrix-fast"):
                for b in sorted({r.metrics["b"] for r in scaling}):
                    rs = sorted(
                        (
                            r
                            for r in scaling
                            if r.method == method and r.metrics["d"] == d and r.metrics["b"] == b
                        ),
                        key=lambda r: r.metrics["n"],
                    )
                    if not rs:
                        continue
                    n = [r.metrics["n"] for r in rs]
                    style = "-" if method.startswith("tensor") else ":"
                    (line,) = ax.loglog(
                        n, [r.time_s for r in rs], style + "o", ms=3, label=f"{method} b={b:g}"
                    )
                    ax.loglog(
                        n,
                        [r.peer_time_s for r in rs],
                        style + "x",
                        ms=4,
                        alpha=0.5,
                        color=line.get_color(),
                    )
            ax.set_xlabel("n")
            ax.set_title(f"d = {d} (x: exact, o: fast)")
            ax.grid(True, which="major", alpha=0.3)
            ax.legend(fontsize="x-small")
        axes[0].set_ylabel("time [s]")
        path = out_dir / "attention-time-vs-n.png"
        fig.savefig(path, dpi=110)
        written.append(path)
    return written
