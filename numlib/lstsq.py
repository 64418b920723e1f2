"""High-accuracy dense least squares by sketch-and-precondition (Blendenpik / LSRN).

References
----------
Avron, Maymounkov, Toledo. Blendenpik: supercharging LAPACK's least-squares solver.
SIAM J. Sci. Comput. 32 (2010).
Meng, Saunders, Mahoney. LSRN: a parallel iterative solver for strongly over- or
underdetermined systems. SIAM J. Sci. Comput. 36 (2014).
Meier, Nakatsukasa, Townsend, Webb. Are sketch-and-precondition least squares solvers
numerically stable? SIAM J. Matrix Anal. Appl. 45 (2024).
Paige, Saunders. LSQR. ACM TOMS 8 (1982).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg
from scipy.sparse.linalg import LinearOperator
from scipy.sparse.linalg import lsqr as _lsqr

from numlib.result import ConvergenceWarning
from numlib.sketch import SKETCHES, make_sketch
from numlib.validate import check_operator, check_positive_int, check_tolerance, check_vector

__all__ = ["AUTO_RATIO", "LstsqResult", "lstsq"]

# method="auto" uses LAPACK when n < AUTO_RATIO * d. Measured on a 2-core machine
# (OpenBLAS, cond 1e6, rtol 1e-12, sparse sign sketch, one run each, noisy): n x d =
# 4000x200, 8000x200, 16000x200, 10000x500, 20000x500 gave sketch/gelsd times 0.041/0.044,
# 0.148/0.132, 0.212/0.150, 0.317/0.377, 0.532/0.502 s (parity for n/d in 20..80), and
# 20000x200 gave 0.375/1.136 s. Below n/d ~ 100 the gain is nil, so gelsd is used there.
AUTO_RATIO = 100
# Sketch rows per column of A (Blendenpik samples 4d rows).
OVERSAMPLING = 4


@dataclass(frozen=True)
class LstsqResult:
    """Outcome of :func:`lstsq`.

    Attributes
    ----------
    x : numpy.ndarray
        The (minimum-norm, for rank-deficient ``A``) least-squares solution.
    rank : int
        Numerical rank of ``A`` (of ``S A`` on the sketched path).
    iterations : int
        LSQR iterations (0 for LAPACK).
    residual_norm : float
        Recomputed ``||A x - b||``.
    method : str
        ``"lapack"`` or ``"sketch"``.
    converged : bool
        False only when LSQR hit its iteration limit (a ``ConvergenceWarning`` is
        emitted too).
    info : dict
        ``"sketch"``, ``"m"``, ``"lsqr_istop"``, ``"warm_start_residual"``.
    """

    x: np.ndarray
    rank: int
    iterations: int
    residual_norm: float
    method: str
    converged: bool
    info: dict[str, Any] = field(default_factory=dict)


def lstsq(
    A: np.ndarray,
    b: np.ndarray,
    *,
    rtol: float = 1e-12,
    rng: int | np.random.Generator | None = None,
    method: str = "auto",
    sketch: str = "sparse_sign",
    maxiter: int | None = None,
) -> LstsqResult:
    """Solve ``min_x ||A x - b||_2`` for dense tall ``A`` to high accuracy.

    ``method="sketch"`` (sketch-and-precondition, Blendenpik/LSRN):

    1. Sketch ``[A, b]`` with ``m = min(n, 4 d)`` rows (``sketch``: sparse sign by
       default, ``O(8 n d)``; or SRHT, ``O(n d log n)``).
    2. Factor ``S A P = Q R`` (QR with column pivoting). If ``R`` is numerically
       rank-deficient (``|R_kk| <= max(m, d) * eps_mach * |R_11|``), switch to the SVD
       ``S A = U S V^T`` truncated at the same threshold (LSRN), so the preconditioner
       ``N`` is ``P R^{-1}`` or ``V_r S_r^{-1}``.
    3. Warm start from the sketch-and-solve solution ``y0 = Q^T S b`` (``U_r^T S b``),
       which Meier-Nakatsukasa-Townsend-Webb show makes the method stable on
       ill-conditioned problems, then run LSQR on ``A N`` (condition number
       ``O(1)`` with high probability, so the iteration count does not grow with
       ``cond(A)``) with ``atol = btol = rtol``; ``x = N y``.

    For rank-deficient ``A`` the iterate stays in the row space of ``A``, so ``x`` is
    the minimum-norm solution. LSQR stops when
    ``||(A N)^T r|| <= rtol ||A N|| ||r||``; the forward error is then of order
    ``rtol * cond(A)`` (plus ``cond(A)^2 * ||r|| / (||A|| ||x||)`` times unit
    roundoff, as for any backward-stable solver). Not backward stable in general
    (FOSSILS, Epperly et al. 2024, is).

    ``method="lapack"``: ``scipy.linalg.lstsq`` (``gelsd``, SVD-based).
    ``method="auto"``: LAPACK when ``n < AUTO_RATIO * d`` (``AUTO_RATIO`` = 100,
    measured on a 2-core machine, see the module constant), else sketch.

    Parameters
    ----------
    A : numpy.ndarray, shape (n, d)
        Dense, ``n >= d`` for ``method="sketch"``. numpy only (LAPACK, scipy LSQR):
        other arrays raise ``TypeError``.
    b : numpy.ndarray, shape (n,)
    rtol : float
        LSQR tolerance (``atol`` and ``btol``), ``>= 0``.
    rng : int, numpy.random.Generator or None
        Randomness of the sketch; the same seed gives the same answer.
    method : {"auto", "sketch", "lapack"}
    sketch : {"sparse_sign", "srht", "gaussian", "countsketch"}
    maxiter : int, optional
        LSQR iteration limit; default ``max(100, 2 * d)``.

    Returns
    -------
    LstsqResult

    Raises
    ------
    TypeError
        Non-numpy or integer inputs.
    ValueError
        Shape mismatch, empty or NaN/Inf inputs, unknown ``method`` or ``sketch``,
        negative ``rtol``, ``n < d`` with ``method="sketch"``.

    Warns
    -----
    ConvergenceWarning
        LSQR reached ``maxiter``; ``converged`` is False and the iterate returned.
    """
    n, d = check_operator(A, "A", square=False)
    if not isinstance(A, np.ndarray) or not isinstance(b, np.ndarray):
        raise TypeError("A and b must be numpy arrays (lstsq uses LAPACK and scipy's LSQR)")
    check_vector(b, "b", size=n)
    rtol = check_tolerance(rtol, "rtol")
    if method not in ("auto", "sketch", "lapack"):
        raise ValueError(f"method must be 'auto', 'sketch' or 'lapack', got {method!r}")
    if sketch not in SKETCHES:
        raise ValueError(f"sketch must be one of {sorted(SKETCHES)}, got {sketch!r}")
    if maxiter is None:
        maxiter = max(100, 2 * d)
    maxiter = check_positive_int(maxiter, "maxiter")
    if method == "sketch" and n < d:
        raise ValueError(f"method='sketch' needs a tall A (n >= d), got shape {(n, d)}")
    if method == "auto":
        method = "lapack" if n < AUTO_RATIO * d else "sketch"
    if method == "lapack":
        x, _, rank, _ = scipy.linalg.lstsq(A, b, lapack_driver="gelsd")
        return LstsqResult(
            x=x,
            rank=int(rank),
            iterations=0,
            residual_norm=float(np.linalg.norm(A @ x - b)),
            method="lapack",
            converged=True,
        )
    return _sketch_precondition(A, b, rtol=rtol, rng=rng, sketch=sketch, maxiter=maxiter)


def _sketch_precondition(
    A: np.ndarray,
    b: np.ndarray,
    *,
    rtol: float,
    rng: int | np.random.Generator | None,
    sketch: str,
    maxiter: int,
) -> LstsqResult:
    n, d = A.shape
    dtype = np.result_type(A.dtype, b.dtype, np.float64)
    m = min(n, OVERSAMPLING * d)
    S = make_sketch(sketch, m, n, rng=rng)
    SAb = S.apply(np.column_stack([A, b]).astype(dtype, copy=False))
    SA, Sb = SAb[:, :d], SAb[:, d]

    Q, R, piv = scipy.linalg.qr(SA, mode="economic", pivoting=True)
    diag = np.abs(np.diag(R))
    tol = max(m, d) * np.finfo(dtype).eps * diag[0]
    rank = int(np.count_nonzero(diag > tol))

    if rank == d:

        def apply_N(y: np.ndarray) -> np.ndarray:
            x = np.empty(d, dtype=dtype)
            x[piv] = scipy.linalg.solve_triangular(R, y, check_finite=False)
            return x

        def apply_Nt(z: np.ndarray) -> np.ndarray:
            return scipy.linalg.solve_triangular(R, z[piv], trans="T", check_finite=False)

        y0 = Q.T @ Sb
    else:
        U, s, Vt = scipy.linalg.svd(SA, full_matrices=False)
        rank = int(np.count_nonzero(s > max(m, d) * np.finfo(dtype).eps * s[0]))
        V_r = Vt[:rank].T / s[:rank]

        def apply_N(y: np.ndarray) -> np.ndarray:
            return V_r @ y

        def apply_Nt(z: np.ndarray) -> np.ndarray:
            return V_r.T @ z

        y0 = U[:, :rank].T @ Sb

    op = LinearOperator(
        (n, rank),
        matvec=lambda y: A @ apply_N(np.ravel(y)),
        rmatvec=lambda r: apply_Nt(A.T @ np.ravel(r)),
        dtype=dtype,
    )
    warm_residual = float(np.linalg.norm(b - op.matvec(y0)))
    out = _lsqr(op, b, atol=rtol, btol=rtol, conlim=1e12, iter_lim=maxiter, x0=y0)
    y, istop, iterations = out[0], int(out[1]), int(out[2])
    x = apply_N(y)
    converged = istop != 7
    if not converged:
        warnings.warn(
            f"lstsq: LSQR stopped after {iterations} iterations without meeting "
            f"rtol={rtol:g} (istop={istop})",
            ConvergenceWarning,
            stacklevel=2,
        )
    return LstsqResult(
        x=x,
        rank=rank,
        iterations=iterations,
        residual_norm=float(np.linalg.norm(A @ x - b)),
        method="sketch",
        converged=converged,
        info={
            "sketch": sketch,
            "m": m,
            "lsqr_istop": istop,
            "warm_start_residual": warm_residual,
        },
    )
