"""SoftImpute: nuclear-norm regularised matrix completion, the baseline of suite ``completion``.

Mazumder, Hastie, Tibshirani, "Spectral regularization algorithms for learning large
incomplete matrices", JMLR 11 (2010), Algorithm 1, solves

    min_Z  1/2 ||P_Omega(M - Z)||_F^2 + lam ||Z||_*

by the fixed-point iteration ``Z <- S_lam(P_Omega(M) + P_Omega^perp(Z))``, ``S_lam`` the
soft-thresholded SVD, along a decreasing path of ``lam`` with warm starts. The filled
matrix is *sparse + low rank*: ``P_Omega(M - Z) + Z`` with ``Z = U diag(d) V^T``, so a
product with it costs ``O(|Omega| l + (m + n) r l)`` for ``l`` vectors and the ``m x n``
matrix is never formed (their Section 5). The top singular triplets come from one step
of block subspace iteration per outer iteration, started from the previous right
singular vectors (warm start; Hastie, Mazumder, Lee, Zadeh, JMLR 16 (2015), do the
same with alternating ridge steps), with ``rank_max`` columns.

fancyimpute's SoftImpute densifies ``m x n`` and breaks with recent scikit-learn
(ANCHORS.md), so this module is the peer.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from numlib.validate import as_generator, check_positive_int

__all__ = ["SoftImputeResult", "soft_impute"]


@dataclass(frozen=True)
class SoftImputeResult:
    """Outcome of :func:`soft_impute`: ``Z = U diag(d) V^T`` and the error history."""

    U: np.ndarray
    d: np.ndarray
    V: np.ndarray
    converged: bool
    iterations: int
    train_error_history: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


def _sampled(U: np.ndarray, V: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``(U V^T)_ij`` at the observed ``(i, j)``, in blocks of bounded size."""
    out = np.empty(rows.size)
    step = max(1, (1 << 22) // max(1, U.shape[1]))
    for i in range(0, rows.size, step):
        sl = slice(i, i + step)
        out[sl] = np.einsum("ej,ej->e", U[rows[sl]], V[cols[sl]])
    return out


def soft_impute(
    rows: np.ndarray,
    cols: np.ndarray,
    vals: np.ndarray,
    shape: tuple[int, int],
    rank_max: int,
    *,
    lam_final_ratio: float = 1e-9,
    lam_decay: float = 0.8,
    tol: float = 1e-6,
    max_iters: int = 500,
    time_limit: float | None = None,
    rng: int | np.random.Generator | None = None,
) -> SoftImputeResult:
    """Complete ``M`` from ``vals = M[rows, cols]`` by SoftImpute along a ``lam`` path.

    ``lam`` starts at ``lam_0 = sigma_1(P_Omega(M))`` (where ``Z = 0`` is optimal) and
    is multiplied by ``lam_decay`` every outer iteration down to
    ``lam_final_ratio * lam_0``. Stops when the relative training error
    ``||P_Omega(Z - M)|| / ||P_Omega(M)||`` is ``<= tol``, after ``max_iters``
    iterations, or after ``time_limit`` seconds. Each iteration costs
    ``O(|Omega| rank_max + (m + n) rank_max^2)``.

    Parameters
    ----------
    rows, cols, vals : numpy.ndarray
        Observed entries (distinct positions).
    shape : tuple of int
        ``(m, n)``.
    rank_max : int
        Columns of the subspace iteration (the largest rank ``Z`` can take).
    lam_final_ratio, lam_decay : float
        The ``lam`` path, both in ``(0, 1)``.
    tol : float
        Relative training error target.
    max_iters : int
        Iteration limit.
    time_limit : float, optional
        Wall-clock limit in seconds.
    rng : int, numpy.random.Generator or None
        Start subspace.

    Returns
    -------
    SoftImputeResult
    """
    m, n = (check_positive_int(s, "shape") for s in shape)
    r = check_positive_int(rank_max, "rank_max")
    if r >= min(m, n):
        raise ValueError(f"rank_max must be < min(m, n) = {min(m, n)}, got {r}")
    for val, name in ((lam_final_ratio, "lam_final_ratio"), (lam_decay, "lam_decay")):
        if not 0.0 < val < 1.0:
            raise ValueError(f"{name} must lie in (0, 1), got {val}")
    gen = as_generator(rng)
    start = time.perf_counter()
    norm_m = float(np.linalg.norm(vals)) or 1.0
    P = sp.csr_array((vals, (rows, cols)), shape=(m, n))
    PT = P.T.tocsr()

    # lam_0 = sigma_1(P_Omega(M)) by a few power steps on the sparse matrix
    x = gen.standard_normal(n)
    for _ in range(30):
        y = P @ x
        x = PT @ y
        x /= np.linalg.norm(x)
    lam = float(np.linalg.norm(P @ x))
    lam_final = lam_final_ratio * lam

    U = np.zeros((m, r))
    d = np.zeros(r)
    V, _ = np.linalg.qr(gen.standard_normal((n, r)))
    hist = [1.0]
    converged = False
    it = 0
    while it < max_iters:
        it += 1
        lam = max(lam * lam_decay, lam_final)
        # filled matrix X = R + U diag(d) V^T, R = P_Omega(M - Z) (sparse, pattern of Omega)
        Ud = U * d
        R = sp.csr_array((vals - _sampled(Ud, V, rows, cols), (rows, cols)), shape=(m, n))
        RT = R.T.tocsr()
        Y = R @ V + Ud @ (V.T @ V)  # X V: one step of subspace iteration from V
        Q, _ = np.linalg.qr(Y)
        B = RT @ Q + V @ (Ud.T @ Q)  # X^T Q, n x r
        Wb, s, Zt = np.linalg.svd(B, full_matrices=False)  # X ~ Q Q^T X = Q Zt^T s Wb^T
        U = Q @ Zt.T
        V = Wb
        d = np.maximum(s - lam, 0.0)
        err = math.sqrt(float(np.sum((_sampled(U * d, V, rows, cols) - vals) ** 2))) / norm_m
        hist.append(err)
        if err <= tol:
            converged = True
            break
        if time_limit is not None and time.perf_counter() - start > time_limit:
            break
    return SoftImputeResult(
        U=U,
        d=d,
        V=V,
        converged=converged,
        iterations=it,
        train_error_history=np.asarray(hist),
        info={"lam": lam, "rank": int(np.count_nonzero(d)), "seconds": time.perf_counter() - start},
    )
