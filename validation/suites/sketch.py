"""Suite ``sketch``: sketched least squares, numlib against LAPACK ``gelsd``.

Problems are planted (seed :data:`SEED`): ``A = U diag(s) V^T`` with ``U`` (n x d,
orthonormal, from a Gaussian QR), ``V`` a random orthogonal d x d and ``s`` log-spaced
from 1 to ``1/COND`` (so ``||A|| = 1``, ``||A^+|| = COND`` exactly); ``x*`` Gaussian;
``b = A x* + r`` with ``r`` orthogonal to ``range(A)`` and ``||r|| = RESID``, so ``x*`` is
the exact least-squares solution and ``||A x* - b|| = RESID``.

Metrics per side:

``rel_error``
    ``||x - x*|| / ||x*||`` against the planted solution.
``backward_error``
    Normwise ``||A^T r_x|| / (||A||_2 ||r_x||)`` with ``r_x = b - A x`` (``||A||_2 = 1``
    by construction): the LSQR stopping quantity, 0 at the exact solution.
``residual_ratio``
    ``||A x - b|| / ||A x* - b||`` (>= 1; 1 is optimal).
``iterations``, ``m``
    numlib only.

Case ``sketch-and-solve`` also times :func:`numlib.sketch.sketch_and_solve` (Gaussian
at small, SRHT at medium/large, ``eps = 0.3``, ``m = 5 d / eps^2`` capped at ``n``, the
ANCHORS.md measurement; at ``eps = 0.1`` that ``m`` exceeds ``n`` at every size) with
``linf_bound_met``: whether
``||x' - x*||_inf <= eps / sqrt(d) * ||A x* - b|| * ||A^+||`` holds, using the planted
``x*`` and the exact ``||A^+|| = COND``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.linalg

from numlib.lstsq import lstsq
from numlib.sketch import sketch_and_solve
from validation.measure import best_time
from validation.registry import Record, case

SUITE = "sketch"
PEER = "scipy-gelsd"
SEED = 20240501
COND = 1e6
RESID = 1e-3
SIZES = {"small": (4000, 50), "medium": (100_000, 500), "large": (200_000, 500)}


def planted_problem(n: int, d: int, seed: int = SEED):
    """Return ``A, b, x_star`` as described in the module docstring."""
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((n, d)))
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
    }


_CACHE: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def _problem(size: str):
    if size not in _CACHE:
        _CACHE.clear()
        _CACHE[size] = planted_problem(*SIZES[size])
    return _CACHE[size]


@case(SUITE, "lstsq-cond1e6")
def lstsq_cond1e6(size: str, *, repeat: int) -> Record:
    """numlib.lstsq (sparse sign sketch-and-precondition + LSQR) vs gelsd, cond 1e6.

    4000x50 / 100000x500 / 200000x500 (small / medium / large), rtol 1e-12.
    """
    A, b, x_star = _problem(size)
    n, d = A.shape
    time_s, res = best_time(lambda: lstsq(A, b, method="sketch", rng=SEED), repeat)
    peer_time_s, x_peer = best_time(
        lambda: scipy.linalg.lstsq(A, b, lapack_driver="gelsd")[0], repeat
    )
    common = {"n": n, "d": d, "cond": COND}
    metrics = {
        **common,
        **_metrics(A, b, res.x, x_star),
        "iterations": res.iterations,
        "m": res.info["m"],
        "converged": res.converged,
    }
    peer_metrics = {**common, **_metrics(A, b, x_peer, x_star)}
    return Record(
        SUITE,
        "lstsq-cond1e6",
        size,
        "numlib.lstsq",
        PEER,
        time_s,
        peer_time_s,
        metrics,
        peer_metrics,
    )


@case(SUITE, "sketch-and-solve")
def sketch_and_solve_linf(size: str, *, repeat: int) -> Record:
    """numlib.sketch_and_solve at eps=0.3 (m = 5d/eps^2) vs gelsd, with the l-inf bound check."""
    A, b, x_star = _problem(size)
    n, d = A.shape
    eps = 0.3  # at eps = 0.1, m = 5d/eps^2 exceeds n at every size (a no-op sketch)
    m = min(n, math.ceil(5 * d / eps**2))
    kind = "gaussian" if size == "small" else "srht"
    time_s, res = best_time(
        lambda: sketch_and_solve(A, b, eps=eps, sketch=kind, m=m, rng=SEED), repeat
    )
    peer_time_s, x_peer = best_time(
        lambda: scipy.linalg.lstsq(A, b, lapack_driver="gelsd")[0], repeat
    )
    bound = eps / math.sqrt(d) * RESID * COND
    linf = float(np.max(np.abs(res.x - x_star)))
    metrics = {
        **_metrics(A, b, res.x, x_star),
        "sketch": kind,
        "m": m,
        "eps": eps,
        "linf_error": linf,
        "linf_bound": bound,
        "linf_bound_met": linf <= bound,
    }
    return Record(
        SUITE,
        "sketch-and-solve",
        size,
        "numlib.sketch_and_solve",
        PEER,
        time_s,
        peer_time_s,
        metrics,
        _metrics(A, b, x_peer, x_star),
    )
