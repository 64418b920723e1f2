"""High-accuracy dense least squares by sketch-and-precondition (Blendenpik / LSRN).

The iteration is preconditioned CG on the normal equations (CGLS), with ``A^T (A p)``
computed in *one* pass over ``A``: each block of rows is used for ``A_i p`` and
``A_i^T (A_i p)`` while it sits in cache. LSQR needs two passes per step (``A v`` and
``A^T u`` depend on each other through a global norm), and for a dense tall ``A`` the
iteration is memory-bound, so one pass per step halves its cost.

References
----------
Avron, Maymounkov, Toledo. Blendenpik: supercharging LAPACK's least-squares solver.
SIAM J. Sci. Comput. 32 (2010).
Meng, Saunders, Mahoney. LSRN: a parallel iterative solver for strongly over- or
underdetermined systems. SIAM J. Sci. Comput. 36 (2014).
Meier, Nakatsukasa, Townsend, Webb. Are sketch-and-precondition least squares solvers
numerically stable? SIAM J. Matrix Anal. Appl. 45 (2024).
Epperly. Fast and forward stable randomized algorithms for linear least-squares
problems. SIAM J. Matrix Anal. Appl. 45 (2024).
Björck, Elfving, Strakoš. Stability of conjugate gradient and Lanczos methods for
linear least squares problems. SIAM J. Matrix Anal. Appl. 19 (1998).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg
from scipy.linalg.lapack import dtrcon
from threadpoolctl import threadpool_limits

from numlib._arrays import usable_cpus
from numlib.result import ConvergenceWarning
from numlib.sketch import (
    SKETCHES,
    SketchOperator,
    SparseSignSketch,
    gram_cholesky,
    make_sketch,
    seminormal_solve,
)
from numlib.validate import check_operator, check_positive_int, check_tolerance, check_vector

__all__ = ["AUTO_MIN_COLS", "AUTO_MIN_RATIO", "LstsqResult", "lstsq"]

# method="auto" uses the sketch only when d >= AUTO_MIN_COLS and n >= AUTO_MIN_RATIO * d.
# Measured (numlib-bench --suite sketch --case lstsq-crossover --size medium --repeat 3,
# 2-core EPYC, otherwise idle, cond 1e6, 2026-11-27 13:13 UTC), gelsd time / sketch time:
# d = 250 at n/d = 10, 20, 40, 100, 400: 1.33 1.25 0.97 0.94 2.03 (loses in the middle);
# d = 500 at n/d = 10, 20, 40, 100: 1.37 1.13 1.30 1.42; d = 1000: 1.43 1.55 1.77 1.97;
# d = 2000 at n/d = 10, 20: 2.16 2.78. So the sketch from d = 500 and n/d = 10; smaller d
# or n/d stay with LAPACK.
AUTO_MIN_COLS = 500
AUTO_MIN_RATIO = 10
# Sketch rows per column of A. Blendenpik samples 4d rows; with the Gram-based (Cholesky
# QR) preconditioner a larger sketch is cheap and saves CG passes: on 100000 x 2000,
# cond 1e6, rtol 1e-12 the step counts at m = 4d / 6d / 8d were 39 / 30 / 26, and the
# total time was lowest at 6d (8d within 8%).
OVERSAMPLING = 6
# Rows of A per block of the fused pass: ~1 MiB of float64, so that a block read for
# A_i p is still in the L2 cache for A_i^T (A_i p).
_BLOCK_BYTES = 1 << 20
_SPARSE_NNZ = 4
# Threads of the one-pass products (None: numlib._arrays.usable_cpus()).
_THREADS: int | None = None


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
        CG iterations (0 for LAPACK); each is one pass over ``A``.
    residual_norm : float
        Recomputed ``||A x - b||``.
    method : str
        ``"lapack"`` or ``"sketch"``.
    converged : bool
        False only when CG hit its iteration limit (a ``ConvergenceWarning`` is
        emitted too).
    info : dict
        Sketched path: ``"sketch"``, ``"m"``, ``"preconditioner"``
        (``"cholesky-qr"``, ``"qr"`` or ``"svd"``), ``"warm_start_residual"``
        (``||A x0 - b||`` of the sketch-and-solve start), ``"passes"`` (passes over
        ``A``, sketch excluded) and ``"normal_residual_history"``
        (``||N^T A^T r_k|| / ||r_k||`` per step, the quantity compared with ``rtol``).
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

    1. Sketch ``A`` and ``b`` with ``m = min(n, 6 d)`` rows (``sketch``: sparse sign
       with 4 nonzeros per column by default, ``O(4 n d)``; or SRHT,
       ``O(n d log n)``).
    2. Factor ``S A = Q R`` by Cholesky QR (:func:`numlib.sketch.gram_cholesky`: the
       Cholesky factor of ``(S A)^T (S A)``, half the flops of Householder QR) and solve
       the sketched problem by corrected semi-normal equations, ``z = R x_s``. Where
       Cholesky QR would lose accuracy (``cond(S A) >~ 2e6``) factor
       ``[S A, S b] = Q [[R, z], [0, rho]]`` by Householder QR instead (no pivoting,
       ``Q`` never formed). If ``R`` is numerically singular (LAPACK's condition
       estimate ``> 1 / (max(m, d) eps_mach)``), take the SVD ``R = U_R diag(s) V^T``
       truncated at ``s_k > max(m, d) eps_mach s_1`` (LSRN), so the preconditioner
       ``N`` is ``R^{-1}`` or ``V_r diag(s_r)^{-1}``.
    3. Warm start from the sketch-and-solve solution ``x0 = N z`` (``N U_r^T z``), which
       Meier-Nakatsukasa-Townsend-Webb show keeps the method stable on
       ill-conditioned problems, then run CG on the preconditioned normal equations
       ``N^T A^T A N y = N^T A^T b`` (CGLS), ``x = N y``. Each step costs one pass over
       ``A`` (``A^T (A p)`` computed block by block while the block is in cache) and
       two triangular solves with ``R``.

    For an ``e``-subspace embedding, ``cond(A N) <= (1 + e) / (1 - e)`` whatever
    ``cond(A)`` (about 2.4 for ``m = 6 d``), so CG reduces the error
    ``||A (x_k - x*)||`` by at least ``2 ((kappa - 1) / (kappa + 1))^k``
    (``~0.41^k``) and the step count does not grow with ``cond(A)``. CG stops when
    ``||N^T A^T r_k|| <= rtol ||r_k||`` (the LSQR test for the preconditioned
    operator, whose norm is ``1 +- e``; ``||r_k||`` by the exact CG recurrence
    ``||r_{k+1}||^2 = ||r_k||^2 - alpha_k gamma_k``) or ``||r_k|| <= rtol ||b||``
    (consistent systems). The forward error is then of order ``rtol * cond(A)``
    plus ``cond(A)^2 ||r|| / (||A|| ||x||)`` times unit roundoff, as for a
    backward-stable solver: the residual and gradient are recomputed from ``x0`` and
    the recurrences only accumulate errors proportional to the (small) corrections
    (Björck-Elfving-Strakoš 1998). Not backward stable in general (FOSSILS, Epperly
    et al. 2024, is). For rank-deficient ``A`` the iterate stays in the row space of
    ``A``, so ``x`` is the minimum-norm solution.

    ``method="lapack"``: ``scipy.linalg.lstsq`` (``gelsd``, SVD-based), real or complex.
    ``method="auto"``: the sketch when ``d >= AUTO_MIN_COLS`` (500),
    ``n >= AUTO_MIN_RATIO * d`` (10) and ``A`` and ``b`` are real, else LAPACK (the
    sketched path is real only). gelsd costs ``~2 n d^2`` flops
    (compute-bound) and a CG step one pass over ``A`` (memory-bound), so the gain
    grows with ``d`` and ``n / d``; the crossover was measured (``numlib-bench
    --suite sketch``, case ``lstsq-crossover``: from ``d = 500`` and ``n / d = 10`` the
    sketch was 1.13-2.8x faster than ``gelsd``; at ``d = 250`` it lost at
    ``n / d = 40-100``).

    Parameters
    ----------
    A : numpy.ndarray, shape (n, d)
        Dense, ``n >= d`` for ``method="sketch"``. numpy only (LAPACK, scipy.sparse):
        other arrays raise ``TypeError``. Complex only with ``method="lapack"`` or
        ``"auto"`` (which then uses LAPACK). Not modified.
    b : numpy.ndarray, shape (n,)
        Complex under the same conditions as ``A``.
    rtol : float
        CG tolerance, ``>= 0`` (see above).
    rng : int, numpy.random.Generator or None
        Randomness of the sketch; the same seed gives the same answer.
    method : {"auto", "sketch", "lapack"}
    sketch : {"sparse_sign", "srht", "gaussian", "countsketch"}
    maxiter : int, optional
        CG iteration limit; default ``max(100, 2 * d)``.

    Returns
    -------
    LstsqResult

    Raises
    ------
    TypeError
        Non-numpy or integer inputs; complex ``A`` or ``b`` with ``method="sketch"``.
    ValueError
        Shape mismatch, empty or NaN/Inf inputs, unknown ``method`` or ``sketch``,
        negative ``rtol``, ``n < d`` with ``method="sketch"``.

    Warns
    -----
    ConvergenceWarning
        CG reached ``maxiter``; ``converged`` is False and the iterate returned.

    Examples
    --------
    >>> import numpy as np
    >>> from numlib.lstsq import lstsq
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((3000, 20)) * np.logspace(0, -6, 20)
    >>> b = rng.standard_normal(3000)
    >>> res = lstsq(A, b, method="sketch", rng=1)
    >>> x_ref = np.linalg.lstsq(A, b, rcond=None)[0]
    >>> bool(res.converged and np.allclose(res.x, x_ref, rtol=1e-6, atol=0))
    True
    """
    n, d = check_operator(A, "A", square=False)
    if not isinstance(A, np.ndarray) or not isinstance(b, np.ndarray):
        raise TypeError("A and b must be numpy arrays (lstsq uses LAPACK)")
    check_vector(b, "b", size=n)
    rtol = check_tolerance(rtol, "rtol")
    if method not in ("auto", "sketch", "lapack"):
        raise ValueError(f"method must be 'auto', 'sketch' or 'lapack', got {method!r}")
    if sketch not in SKETCHES:
        raise ValueError(f"sketch must be one of {sorted(SKETCHES)}, got {sketch!r}")
    if maxiter is None:
        maxiter = max(100, 2 * d)
    maxiter = check_positive_int(maxiter, "maxiter")
    # The sketched CG is written for real arithmetic (transposes, not adjoints).
    real = not (np.iscomplexobj(A) or np.iscomplexobj(b))
    if method == "sketch":
        if not real:
            name, arr = ("A", A) if np.iscomplexobj(A) else ("b", b)
            raise TypeError(
                f"{name} must be real for method='sketch', got {arr.dtype}; "
                "use method='lapack' (or 'auto') for complex least squares"
            )
        if n < d:
            raise ValueError(f"method='sketch' needs a tall A (n >= d), got shape {(n, d)}")
    if method == "auto":
        tall = d >= AUTO_MIN_COLS and n >= AUTO_MIN_RATIO * d
        method = "sketch" if tall and real else "lapack"
    if method == "lapack":
        # inputs already checked: scipy's own finiteness pass would be a second one
        x, _, rank, _ = scipy.linalg.lstsq(A, b, lapack_driver="gelsd", check_finite=False)
        return LstsqResult(
            x=x,
            rank=int(rank),
            iterations=0,
            residual_norm=float(np.linalg.norm(A @ x - b)),
            method="lapack",
            converged=True,
        )
    return _sketch_precondition(A, b, rtol=rtol, rng=rng, sketch=sketch, maxiter=maxiter)


class _Passes:
    """One-pass products with ``A``, split over threads by contiguous row ranges.

    Each thread streams its rows block by block (``_BLOCK_BYTES`` per block) and keeps
    a partial sum; BLAS is held to one thread meanwhile (``threadpoolctl``), so every
    core streams its own part of ``A`` instead of all cores splitting each small
    block. numpy releases the GIL inside the BLAS calls.
    """

    def __init__(self, A: np.ndarray, b: np.ndarray, threads: int) -> None:
        self.A, self.b = A, b
        n, d = A.shape
        self.step = max(8, _BLOCK_BYTES // (8 * d))
        nblocks = -(-n // self.step)
        threads = max(1, min(threads, nblocks))
        cuts = np.linspace(0, nblocks, threads + 1).astype(int) * self.step
        self.ranges = [(int(lo), int(min(hi, n))) for lo, hi in itertools.pairwise(cuts)]
        self.pool = ThreadPoolExecutor(threads) if threads > 1 else None

    def _map(self, fn: Callable[[int, int], Any]) -> list[Any]:
        if self.pool is None:
            return [fn(*r) for r in self.ranges]
        return list(self.pool.map(lambda r: fn(*r), self.ranges))

    def gradient(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        """``A^T (b - A x)`` and ``||b - A x||^2``."""
        A, b, step = self.A, self.b, self.step

        def part(lo: int, hi: int) -> tuple[np.ndarray, float]:
            g = np.zeros(A.shape[1], dtype=x.dtype)
            rr = 0.0
            for i in range(lo, hi, step):
                Ai = A[i : min(i + step, hi)]
                r = b[i : min(i + step, hi)] - Ai @ x
                g += r @ Ai
                rr += float(r @ r)
            return g, rr

        parts = self._map(part)
        return sum(p[0] for p in parts), sum(p[1] for p in parts)

    def normal(self, p: np.ndarray) -> np.ndarray:
        """``A^T (A p)``."""
        A, step = self.A, self.step

        def part(lo: int, hi: int) -> np.ndarray:
            q = np.zeros(A.shape[1], dtype=p.dtype)
            for i in range(lo, hi, step):
                Ai = A[i : min(i + step, hi)]
                q += (Ai @ p) @ Ai
            return q

        return sum(self._map(part))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


_Apply = Callable[[np.ndarray], np.ndarray]


def _preconditioner(SA: np.ndarray, Sb: np.ndarray) -> tuple[_Apply, _Apply, np.ndarray, int, str]:
    """``N``, ``N^T``, the warm start ``y0`` (``x0 = N y0``), the rank, and the kind."""
    m, d = SA.shape
    dtype = SA.dtype
    R = gram_cholesky(SA)
    kind = "cholesky-qr"
    if R is not None:
        z = R @ seminormal_solve(SA, Sb, R)
    else:
        # QR of [SA, Sb]: the last column of R is Q^T S b, so Q is never formed.
        Rfull = scipy.linalg.qr(np.column_stack([SA, Sb]), mode="r", check_finite=False)[0]
        R = np.triu(Rfull[:d, :d])
        z = Rfull[:d, d].copy()
        kind = "qr"
    thresh = max(m, d) * np.finfo(dtype).eps
    diag = np.abs(np.diag(R))
    rcond = 0.0
    if diag.min() > thresh * diag.max():
        rcond, info = dtrcon(R, norm="1", uplo="U", diag="N")
        rcond = rcond if info == 0 else 0.0
    if rcond > thresh:

        def apply_N(y: np.ndarray) -> np.ndarray:
            return scipy.linalg.solve_triangular(R, y, check_finite=False)

        def apply_Nt(v: np.ndarray) -> np.ndarray:
            return scipy.linalg.solve_triangular(R, v, trans="T", check_finite=False)

        return apply_N, apply_Nt, z, d, kind
    # SA = Q R = (Q U_R) diag(s) V^T: the SVD of the small R gives that of SA.
    U_R, s, Vt = scipy.linalg.svd(R, check_finite=False)
    rank = int(np.count_nonzero(s > thresh * s[0]))
    V_r = Vt[:rank].T / s[:rank]

    def apply_N_svd(y: np.ndarray) -> np.ndarray:
        return V_r @ y

    def apply_Nt_svd(v: np.ndarray) -> np.ndarray:
        return V_r.T @ v

    return apply_N_svd, apply_Nt_svd, U_R[:, :rank].T @ z, rank, "svd"


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
    A = A.astype(dtype, copy=False)
    b = b.astype(dtype, copy=False)
    m = min(n, OVERSAMPLING * d)
    if sketch == "sparse_sign":
        # 4 nonzeros per column, not 8: the sketch is a memory-bound pass per nonzero, and
        # the CG step count measured for 4 and 8 is the same (36 at m = 4d, cond 1e6).
        S: SketchOperator = SparseSignSketch(m, n, rng=rng, s=min(_SPARSE_NNZ, m))
    else:
        S = make_sketch(sketch, m, n, rng=rng)
    apply_N, apply_Nt, y, rank, kind = _preconditioner(S.apply(A), S.apply(b))

    passes = _Passes(A, b, _threads())
    with threadpool_limits(1 if passes.pool is not None else None, user_api="blas"):
        try:
            return _cg(A, b, passes, apply_N, apply_Nt, y, rank, kind, rtol, maxiter, sketch, m)
        finally:
            passes.close()


def _threads() -> int:
    return _THREADS if _THREADS is not None else usable_cpus()


def _cg(
    A: np.ndarray,
    b: np.ndarray,
    passes: _Passes,
    apply_N: _Apply,
    apply_Nt: _Apply,
    y: np.ndarray,
    rank: int,
    kind: str,
    rtol: float,
    maxiter: int,
    sketch: str,
    m: int,
) -> LstsqResult:
    dtype = A.dtype
    x = apply_N(y)
    g_x, rr = passes.gradient(x)
    warm_residual = float(np.sqrt(rr))
    g = apply_Nt(g_x)  # gradient of ||A N y - b||^2 / 2 with respect to y, negated
    gamma = float(g @ g)
    bnorm = float(np.linalg.norm(b))
    history = [np.sqrt(gamma) / max(np.sqrt(rr), np.finfo(dtype).tiny)]
    p = g.copy()
    iterations = 0
    converged = np.sqrt(gamma) <= rtol * np.sqrt(rr) or np.sqrt(rr) <= rtol * bnorm
    while not converged and iterations < maxiter:
        iterations += 1
        q = apply_Nt(passes.normal(apply_N(p)))
        pq = float(p @ q)
        if not pq > 0.0:  # p is (numerically) in the null space of A N: nothing left
            converged = True
            break
        alpha = gamma / pq
        y += alpha * p
        g -= alpha * q
        rr = max(rr - alpha * gamma, 0.0)
        gamma_new = float(g @ g)
        history.append(np.sqrt(gamma_new) / max(np.sqrt(rr), np.finfo(dtype).tiny))
        converged = np.sqrt(gamma_new) <= rtol * np.sqrt(rr) or np.sqrt(rr) <= rtol * bnorm
        p = g + (gamma_new / gamma) * p
        gamma = gamma_new
    x = apply_N(y)
    if not converged:
        warnings.warn(
            f"lstsq: CG stopped after {iterations} iterations without meeting "
            f"rtol={rtol:g} (||N^T A^T r|| / ||r|| = {history[-1]:.3g})",
            ConvergenceWarning,
            stacklevel=4,
        )
    return LstsqResult(
        x=x,
        rank=rank,
        iterations=iterations,
        residual_norm=float(np.linalg.norm(A @ x - b)),
        method="sketch",
        converged=bool(converged),
        info={
            "sketch": sketch,
            "m": m,
            "preconditioner": kind,
            "warm_start_residual": warm_residual,
            "passes": iterations + 2,
            "normal_residual_history": np.asarray(history),
        },
    )
