"""Suite ``sketch``: sketched least squares, numlib against LAPACK ``gelsd`` / ``gelsy``.

Problems are planted (seed :data:`SEED`): ``A = U diag(s) V^T`` with ``U`` (n x d) the
columns ``k_1..k_d`` (random, distinct) of the orthonormal DCT-II matrix times random
row signs (orthonormal and incoherent: every row has squared norm ``<= 2 d / n``, built
in ``O(n d)`` instead of a QR of an ``n x d`` Gaussian), ``V`` a Haar random orthogonal
d x d and ``s`` log-spaced from 1 to ``1/COND`` (so ``||A|| = 1``, ``||A^+|| = COND``);
``x*`` Gaussian; ``b = A x* + r`` with ``r`` orthogonal to ``range(A)`` and
``||r|| = RESID``, so ``x*`` is the exact least-squares solution and
``||A x* - b|| = RESID``.

Cases:

``lstsq``
    :func:`numlib.lstsq.lstsq` with its defaults (``method="auto"``: the sketch-and-
    precondition path or LAPACK, metric ``dispatched``) against ``gelsd`` (scipy's
    default) and ``gelsy`` (one record each, same numlib timing), cond 1e6.
``lstsq-crossover``
    ``lstsq(method="sketch")`` and ``lstsq`` with its default dispatch (method
    ``lstsq``, metric ``dispatched``) against ``gelsd`` on a grid of ``(n, d)``: where
    the sketch wins, which fixes ``AUTO_MIN_COLS`` / ``AUTO_MIN_RATIO``, and that the
    dispatch is never much slower than LAPACK.
``sketch-and-solve-<sketch>``
    :func:`numlib.sketch.sketch_and_solve` at ``eps = 0.1`` with ``m = d / eps^2``
    (:data:`M_CONSTANT` = 1; capped at ``n``), SRHT (dense), sparse sign and CountSketch, against
    ``gelsd``, with ``linf_bound_met``:
    ``||x' - x*||_inf <= eps / sqrt(d) ||A x* - b|| ||A^+||`` (planted ``x*``, exact
    ``||A^+|| = COND``). ``m_paper`` is Song et al.'s ``d ln(n/delta)^3 / eps^2``
    (constant 1, ``delta = 0.01``) and ``m_meets_paper_formula`` whether ``m`` reaches
    it: it never does here (the formula exceeds ``n``), so a met bound is an
    observation on this problem, not the theorem's guarantee.
``linf-vs-m-<variant>-<sketch>``
    ``||x' - x*||_inf / bound`` for ``m`` on :data:`M_OVER_D` times ``d``, per sketch
    (Gaussian only where ``2 m n d`` flops stay affordable), :data:`LINF_SEEDS` seeds;
    untimed (``time_s`` null), on the planted problem (``incoherent``) and on
    :func:`coherent_problem` (``coherent``: its first ``d / 10`` rows scaled by
    :data:`HEAVY`; ``x*``, ``||A x* - b||`` and ``||A^+||`` from gelsd).
    ``numlib-bench`` draws it (``validation.suites.sketch_plot``).

Metrics per side:

``rel_error``
    ``||x - x*|| / ||x*||`` against the planted solution (forward error).
``backward_error``
    Normwise ``||A^T r_x|| / (||A||_2 ||r_x||)`` with ``r_x = b - A x`` (``||A||_2 = 1``
    by construction): the least-squares optimality measure, 0 at the exact solution.
``residual_ratio``
    ``||A x - b|| / ||A x* - b||`` (>= 1; 1 is optimal).
``threads``
    Threads each side ran with: LAPACK's BLAS limit, which numlib's own thread pools
    follow (:func:`numlib._arrays.usable_cpus`), so ``OPENBLAS_NUM_THREADS=t`` or
    ``threadpool_limits(t)`` gives both sides ``t``.
``iterations``, ``m``, ``dispatched``
    numlib only.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.linalg

from numlib._arrays import usable_cpus
from numlib.lstsq import lstsq
from numlib.sketch import sketch_and_solve, sketch_size
from validation.measure import best_time
from validation.registry import Record, case

SUITE = "sketch"
SEED = 20240501
COND = 1e6
RESID = 1e-3
EPS = 0.1
M_CONSTANT = 1.0
SIZES = {
    "small": [(4000, 50)],
    "medium": [(200_000, 500), (100_000, 2000)],
    "large": [(200_000, 500), (100_000, 2000), (200_000, 2000)],
}
# (n, d) grid of the crossover case: n / d from 10 to 400 at d = 250, 500, 1000, 2000
_CROSSOVER_GRID = [
    (2_500, 250),
    (5_000, 250),
    (10_000, 250),
    (25_000, 250),
    (100_000, 250),
    (5_000, 500),
    (10_000, 500),
    (20_000, 500),
    (50_000, 500),
    (10_000, 1000),
    (20_000, 1000),
    (40_000, 1000),
    (100_000, 1000),
    (20_000, 2000),
    (40_000, 2000),
]
CROSSOVER = {
    "small": [(2000, 50), (4000, 100)],
    "medium": _CROSSOVER_GRID,
    "large": _CROSSOVER_GRID,
}
SOLVE_SIZES = {"small": (10_000, 40), "medium": (200_000, 500), "large": (200_000, 500)}
HEAVY = 1e3  # row scale of the coherent variant of linf-vs-m
M_OVER_D = (2, 4, 8, 16, 32, 64, 128)
LINF_SEEDS = 3
LINF_SKETCHES = ("gaussian", "srht", "sparse_sign", "countsketch")
GAUSSIAN_FLOPS = 2e11  # skip Gaussian sketches costing more than this (2 m n d)


def planted_problem(n: int, d: int, seed: int = SEED):
    """Return ``A, b, x_star`` as described in the module docstring."""
    rng = np.random.default_rng(seed)
    k = np.sort(rng.choice(n, size=d, replace=False))
    # cos(pi k (2i+1) / (2n)) with the angle reduced exactly in integers (mod 4n)
    phase = (np.outer(2 * np.arange(n, dtype=np.int64) + 1, k) % (4 * n)).astype(np.float64)
    U = np.cos(phase * (np.pi / (2 * n)))
    del phase
    U *= np.where(k == 0, math.sqrt(1.0 / n), math.sqrt(2.0 / n))
    U *= rng.choice(np.array([-1.0, 1.0]), size=n)[:, None]
    V, _ = np.linalg.qr(rng.standard_normal((d, d)))
    s = np.logspace(0.0, -math.log10(COND), d)
    A = (U * s) @ V.T
    x_star = rng.standard_normal(d)
    r = rng.standard_normal(n)
    r -= U @ (U.T @ r)
    r *= RESID / np.linalg.norm(r)
    return A, A @ x_star + r, x_star


def _metrics(A: np.ndarray, b: np.ndarray, x: np.ndarray, x_star: np.ndarray) -> dict[str, Any]:
    r = b - A @ x
    rn = float(np.linalg.norm(r))
    return {
        "rel_error": float(np.linalg.norm(x - x_star) / np.linalg.norm(x_star)),
        "backward_error": float(np.linalg.norm(A.T @ r) / rn) if rn > 0 else 0.0,
        "residual_ratio": rn / RESID,
        # numlib's own thread pools follow the BLAS limit, so both sides had this many
        "threads": usable_cpus(),
    }


def _lapack(A: np.ndarray, b: np.ndarray, driver: str) -> np.ndarray:
    return scipy.linalg.lstsq(A, b, lapack_driver=driver)[0]


@case(SUITE, "lstsq")
def lstsq_cases(size: str, *, repeat: int) -> list[Record]:
    """numlib.lstsq (defaults: auto dispatch) vs gelsd and gelsy, cond 1e6, rtol 1e-12."""
    records = []
    for n, d in SIZES[size]:
        A, b, x_star = planted_problem(n, d)
        t, res = best_time(lambda A=A, b=b: lstsq(A, b, rng=SEED), repeat)
        metrics = {
            "n": n,
            "d": d,
            "cond": COND,
            **_metrics(A, b, res.x, x_star),
            "dispatched": res.method,
            "iterations": res.iterations,
            "m": res.info.get("m", 0),
            "converged": res.converged,
        }
        for driver in ("gelsd", "gelsy"):
            pt, xp = best_time(lambda A=A, b=b, drv=driver: _lapack(A, b, drv), repeat)
            peer = {"n": n, "d": d, "cond": COND, **_metrics(A, b, xp, x_star)}
            records.append(
                Record(
                    SUITE, f"lstsq-{n}x{d}", size, "lstsq", f"scipy-{driver}", t, pt, metrics, peer
                )
            )
        del A
    return records


@case(SUITE, "lstsq-crossover")
def lstsq_crossover(size: str, *, repeat: int) -> list[Record]:
    """lstsq(method="sketch") and lstsq (auto dispatch) vs gelsd on a grid of (n, d)."""
    records = []
    for n, d in CROSSOVER[size]:
        A, b, x_star = planted_problem(n, d)
        pt, xp = best_time(lambda A=A, b=b: _lapack(A, b, "gelsd"), repeat)
        common = {"n": n, "d": d, "n_over_d": n / d}
        peer = {**common, **_metrics(A, b, xp, x_star)}
        for method in ("sketch", "auto"):
            t, res = best_time(lambda A=A, b=b, m=method: lstsq(A, b, method=m, rng=SEED), repeat)
            metrics = {
                **common,
                **_metrics(A, b, res.x, x_star),
                "iterations": res.iterations,
                "dispatched": res.method,
            }
            name = "lstsq(method=sketch)" if method == "sketch" else "lstsq"
            records.append(
                Record(SUITE, f"crossover-{n}x{d}", size, name, "scipy-gelsd", t, pt, metrics, peer)
            )
    return records


def _linf(x: np.ndarray, x_star: np.ndarray, d: int) -> tuple[float, float]:
    bound = EPS / math.sqrt(d) * RESID * COND
    return float(np.max(np.abs(x - x_star))), bound


@case(SUITE, "sketch-and-solve")
def sketch_and_solve_cases(size: str, *, repeat: int) -> list[Record]:
    """sketch_and_solve at eps=0.1, m = d/eps^2, SRHT and two sparse sketches, vs gelsd; l-inf."""
    n, d = SOLVE_SIZES[size]
    A, b, x_star = planted_problem(n, d)
    m = min(n, math.ceil(M_CONSTANT * d / EPS**2))
    m_paper = sketch_size(d, EPS, 0.01, "linf", n=n)
    pt, xp = best_time(lambda: _lapack(A, b, "gelsd"), repeat)
    peer = _metrics(A, b, xp, x_star)
    peer["linf_error"], _ = _linf(xp, x_star, d)
    records = []
    for kind in ("srht", "sparse_sign", "countsketch"):
        t, res = best_time(
            lambda kind=kind: sketch_and_solve(A, b, eps=EPS, sketch=kind, m=m, rng=SEED), repeat
        )
        linf, bound = _linf(res.x, x_star, d)
        metrics = {
            "n": n,
            "d": d,
            **_metrics(A, b, res.x, x_star),
            "sketch": kind,
            "m": m,
            "eps": EPS,
            "m_paper": m_paper,
            "m_meets_paper_formula": m >= m_paper,
            "linf_error": linf,
            "linf_bound": bound,
            "linf_bound_met": linf <= bound,
        }
        records.append(
            Record(
                SUITE,
                f"sketch-and-solve-{kind}",
                size,
                "sketch-and-solve",
                "scipy-gelsd",
                t,
                pt,
                metrics,
                peer,
            )
        )
    return records


def coherent_problem(n: int, d: int, seed: int = SEED):
    """Return the planted problem with its first ``d // 10`` rows scaled by :data:`HEAVY`.

    A few dominant rows (the coherent matrices on which sparse sketches provably fail
    the l-inf bound). Returns ``A, b, x_star, ||A x* - b||, ||A^+||``, the last three
    from LAPACK (``gelsd``, whose singular values give ``||A^+||``).
    """
    A, b, _ = planted_problem(n, d, seed)
    rows = max(1, d // 10)
    A[:rows] *= HEAVY
    b[:rows] *= HEAVY
    x_star, _, _, sv = scipy.linalg.lstsq(A, b, lapack_driver="gelsd")
    return A, b, x_star, float(np.linalg.norm(A @ x_star - b)), float(1.0 / sv[-1])


@case(SUITE, "linf-vs-m")
def linf_vs_m(size: str, *, repeat: int) -> list[Record]:
    """l-inf error / bound vs sketch rows m, dense vs sparse sketches (untimed)."""
    del repeat
    n, d = SOLVE_SIZES[size]
    ms = [mult * d for mult in M_OVER_D if mult * d <= n]
    records = []
    for variant in ("incoherent", "coherent"):
        if variant == "incoherent":
            A, b, x_star = planted_problem(n, d)
            resid, pinv_norm = RESID, COND
        else:
            A, b, x_star, resid, pinv_norm = coherent_problem(n, d)
        bound = EPS / math.sqrt(d) * resid * pinv_norm
        for kind in LINF_SKETCHES:
            grid = [m for m in ms if kind != "gaussian" or 2.0 * m * n * d <= GAUSSIAN_FLOPS]
            ratios = np.empty((len(grid), LINF_SEEDS))
            for i, m in enumerate(grid):
                for seed in range(LINF_SEEDS):
                    x = sketch_and_solve(A, b, eps=EPS, sketch=kind, m=m, rng=SEED + seed).x
                    ratios[i, seed] = float(np.max(np.abs(x - x_star))) / bound
            metrics = {
                "n": n,
                "d": d,
                "eps": EPS,
                "variant": variant,
                "sketch": kind,
                "m": [int(m) for m in grid],
                "median_linf_over_bound": [float(v) for v in np.median(ratios, axis=1)],
                "max_linf_over_bound": [float(v) for v in ratios.max(axis=1)],
                "seeds": LINF_SEEDS,
                "m_paper": sketch_size(d, EPS, 0.01, "linf", n=n),
            }
            records.append(
                Record(
                    SUITE,
                    f"linf-vs-m-{variant}-{kind}",
                    size,
                    "sketch-and-solve",
                    "planted-x*",
                    None,
                    None,
                    metrics,
                )
            )
        del A
    return records
