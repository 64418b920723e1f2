"""Low-rank matrix completion by (robust) alternating minimisation.

:func:`complete` recovers a rank-``k`` matrix ``M ~ U V^T`` from a sparse set of
observed entries ``Omega``. Two row-update rules share one driver:

``method="exact"``
    Classical alternating least squares (Jain, Netrapalli, Sanghavi, STOC 2013):
    every row of ``U`` (then of ``V``) is the exact least-squares solution over its
    observed columns, from batched ``k x k`` normal equations. ``O(|Omega| k^2 + (m+n) k^3)``
    per sweep.
``method="robust"``
    The approximate ("robust") update of Gu, Song, Yin, Zhang (arXiv 2302.11068):
    each row regression is solved only approximately, by two steps of CG preconditioned
    through the row-sampling sketch that the observations form. See :func:`complete`
    for the precise rule. ``O(|Omega| k + (m+n) k^2)`` per sweep.

The row updates live in :mod:`numlib._completion_rows`. scipy.sparse / numpy only (not
array-API generic): the observations are a scipy.sparse matrix and the per-row solves
use LAPACK.

References
----------
Gu, Song, Yin, Zhang. Low rank matrix completion via robust alternating minimization
in nearly linear time. arXiv 2302.11068 (ICLR 2024).
Jain, Netrapalli, Sanghavi. Low-rank matrix completion using alternating minimization.
STOC 2013.
Tropp. An introduction to matrix concentration inequalities. 2015 (matrix Chernoff for
row sampling).
"""

from __future__ import annotations

import math
import numbers
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from numlib._arrays import small_lapack_threads
from numlib._completion_rows import Grouped, exact_update, robust_update
from numlib.lowrank import randomized_svd
from numlib.result import ConvergenceWarning
from numlib.validate import as_generator, check_positive_int

__all__ = ["CompletionResult", "complete"]

_METHODS = ("robust", "exact")
_TRIM_CONSTANT = 2.0  # rows of the initial factor above 2 ||U||_F / sqrt(m) are zeroed
# initial top-k SVD: randomized subspace iteration. Measured (2000 and 5000 square, rank
# 50, 10%; 5000, rank 10, 2%): q = 0 / 1 / 2 / 3 power iterations need 14 / 12 / 11 / 11,
# 38 / 34 / 33 / 32 and 18 / 16 / 15 / 15 robust sweeps; q = 2 costs ~0.3 s at the largest.
_POWER_ITERS = 2
_OVERSAMPLE = 10
# robust update: after inner_steps CG steps a row stops once its residual fell by
# _KAPPA_RTOL / cond(U V^T), at most _INNER_MAXITER steps. Measured (2000 x 2000, 10%, rank
# 50; 5%, rank 10; M = A diag(s) B^T, cond(M) = max s / min s): at cond 1 the constants
# 1.0 / 0.5 take 33 / 36 sweeps at 2.1 / 3.0 steps (exact ALS: 41); at cond 100, rank 50,
# 65 / 39 sweeps (exact 39); at cond 1000, rank 10, 1.0 stalls and 0.5 takes 18 (exact 16).
# A fixed 2 steps stalls at relative error 0.1 from cond 100 on, but at cond 1 takes 33
# sweeps: a target >= _RTOL_FIXED is not tested (the test costs a pass over the rows).
_KAPPA_RTOL = 0.5
_RTOL_FIXED = 0.3
_INNER_MAXITER = 30


@dataclass(frozen=True)
class CompletionResult:
    """Outcome of :func:`complete`.

    Attributes
    ----------
    U : numpy.ndarray, shape (m, k)
    V : numpy.ndarray, shape (n, k)
        Factors with ``M ~ U @ V.T``.
    converged : bool
        True when the relative training error (and the validation error, when a
        validation fraction was held out) fell to ``tol`` or below.
    sweeps : int
        Alternating sweeps done (one sweep updates ``V`` then ``U``).
    train_error_history : numpy.ndarray
        ``||P_train(U V^T - M)||_F / ||P_train(M)||_F``; entry 0 is 1 (the zero matrix,
        before the first sweep), entry ``t`` after sweep ``t``.
    validation_error_history : numpy.ndarray
        The same on the held-out entries (empty when ``validation_fraction == 0``).
    info : dict
        ``"method"``, ``"tol"``, ``"p"`` (sampling rate), ``"n_train"``,
        ``"n_validation"``, ``"trimmed_rows"`` (rows zeroed at initialisation),
        ``"sweep_seconds"`` (wall time of each sweep, error evaluation included);
        robust only: ``"min_count"`` (rows with at most this many observations are
        solved exactly), ``"cg_rows"`` (rows solved by CG) and ``"inner_iterations"``
        (CG steps per row), per half-sweep.
    """

    U: np.ndarray
    V: np.ndarray
    converged: bool
    sweeps: int
    train_error_history: np.ndarray
    validation_error_history: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- input


def _as_entries(observed: Any, mask: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Return copies ``rows, cols, vals, m, n`` of the observations, validated."""
    if sp.issparse(observed):
        m, n = (int(s) for s in observed.shape)
        coo = observed.tocoo()  # new arrays for CSR/CSC; COO may share: we copy below
        rows = np.array(coo.row, dtype=np.int64)
        cols = np.array(coo.col, dtype=np.int64)
        vals = np.asarray(coo.data)
    elif isinstance(observed, tuple) and len(observed) == 4:
        r, c, v, shape = observed
        if not (isinstance(shape, tuple) and len(shape) == 2):
            raise ValueError(f"observed's shape must be a pair (m, n), got {shape!r}")
        m = check_positive_int(shape[0], "observed's shape[0]")
        n = check_positive_int(shape[1], "observed's shape[1]")
        rows, cols, vals = np.asarray(r), np.asarray(c), np.asarray(v)
        for arr, nm in ((rows, "rows"), (cols, "cols"), (vals, "values")):
            if arr.ndim != 1:
                raise ValueError(f"observed's {nm} must be 1-D, got shape {arr.shape}")
        if not (rows.size == cols.size == vals.size):
            raise ValueError(
                f"observed's rows, cols and values must have equal lengths, got "
                f"{rows.size}, {cols.size}, {vals.size}"
            )
        for arr, nm in ((rows, "rows"), (cols, "cols")):
            if arr.size and not np.issubdtype(arr.dtype, np.integer):
                raise TypeError(f"observed's {nm} must be integers, got dtype {arr.dtype}")
        rows, cols = rows.astype(np.int64), cols.astype(np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= m):
            raise ValueError(
                f"observed's rows must lie in [0, {m}), got range [{rows.min()}, {rows.max()}]"
            )
        if cols.size and (cols.min() < 0 or cols.max() >= n):
            raise ValueError(
                f"observed's cols must lie in [0, {n}), got range [{cols.min()}, {cols.max()}]"
            )
    else:
        raise TypeError(
            "observed must be a scipy.sparse matrix or a tuple (rows, cols, values, shape), "
            f"got {type(observed).__name__}"
        )
    if vals.size and (np.issubdtype(vals.dtype, np.complexfloating) or vals.dtype == object):
        raise TypeError(f"observed must have real values, got dtype {vals.dtype}")
    if vals.dtype == bool:
        raise TypeError("observed must have real numeric values, got dtype bool")
    vals = np.array(vals, dtype=np.float64)  # always a copy
    if rows.size == 0:
        raise ValueError("observed has no observed (stored) entries")
    if not np.isfinite(vals).all():
        raise ValueError("observed contains NaN or Inf values")
    # COO -> CSR merges repeated positions (a counting sort, O(|Omega|)): fewer stored
    # entries afterwards means duplicates; only then pay for a sort that names one
    merged = sp.coo_array((np.ones(rows.size), (rows, cols)), shape=(m, n)).tocsr().nnz
    if merged < rows.size:
        keys = np.sort(rows * n + cols)
        i, j = divmod(int(keys[np.flatnonzero(keys[1:] == keys[:-1])[0]]), n)
        raise ValueError(
            f"observed has duplicate entries ({rows.size - merged} repeated), e.g. at "
            f"({i}, {j}); sum or drop them first"
        )
    if mask is not None:
        if not sp.issparse(mask):
            raise TypeError(f"mask must be a scipy.sparse matrix, got {type(mask).__name__}")
        if tuple(mask.shape) != (m, n):
            raise ValueError(f"mask must have shape {(m, n)}, got {tuple(mask.shape)}")
        mc = mask.tocoo()
        nz = np.asarray(mc.data) != 0
        mkeys = np.asarray(mc.row, dtype=np.int64)[nz] * n + np.asarray(mc.col, dtype=np.int64)[nz]
        keep = np.isin(rows * n + cols, mkeys)
        rows, cols, vals = rows[keep], cols[keep], vals[keep]
        if rows.size == 0:
            raise ValueError("mask selects none of observed's stored entries")
    return rows, cols, vals, m, n


def _check_real(
    value: float, name: str, lo: float, hi: float, *, lo_open: bool, hi_open: bool
) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    ok = math.isfinite(v) or (hi == math.inf and v == math.inf and not hi_open)
    ok = ok and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok:
        lb, rb = ("(" if lo_open else "["), (")" if hi_open else "]")
        raise ValueError(f"{name} must lie in {lb}{lo}, {hi}{rb}, got {value!r}")
    return v


def _rel_error(
    U: np.ndarray, V: np.ndarray, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray
) -> float:
    if rows.size == 0:
        return 0.0
    num = 0.0
    step = max(1, (1 << 22) // U.shape[1])  # bound the gathered (entries x k) blocks
    for i in range(0, rows.size, step):
        sl = slice(i, i + step)
        pred = np.einsum("ej,ej->e", U[rows[sl]], V[cols[sl]])
        num += float(np.sum((pred - vals[sl]) ** 2))
    den = float(np.linalg.norm(vals))
    return math.sqrt(num) / den if den > 0 else math.sqrt(num)


def _inner_rtol(X: np.ndarray, F: np.ndarray) -> float | None:
    """``_KAPPA_RTOL / cond(X F^T)``: the robust update's relative residual target.

    ``None`` (no test: ``inner_steps`` steps) when the target is ``>= _RTOL_FIXED``.

    Gu et al.'s perturbation bounds carry the condition number of ``M``: an update error
    in the weakest singular direction is amplified by ``cond(M)`` in the subspace
    distance their induction tracks, so the per-row accuracy must scale like
    ``1 / cond``. The singular values of the current estimate ``X F^T`` are the square
    roots of the eigenvalues of ``(X^T X)(F^T F)`` (``O((m + n) k^2)``).
    """
    ev = np.linalg.eigvals((X.T @ X) @ (F.T @ F)).real
    top = float(ev.max())
    if not top > 0:
        return 0.0
    rtol = _KAPPA_RTOL * math.sqrt(max(float(ev.min()), 0.0) / top)
    return None if rtol >= _RTOL_FIXED else rtol


def _spectral_init(
    rows: np.ndarray,
    cols: np.ndarray,
    vals: np.ndarray,
    shape: tuple[int, int],
    k: int,
    gen: np.random.Generator,
    warm: bool,
) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Trimmed top-``k`` SVD of ``(1/p) P_Omega(M)``: ``U``, ``V`` and the trimmed rows.

    With ``warm``, ``V = (1/p) P_Omega(M)^T U``, the least-squares ``V`` given ``U`` had
    every entry been observed: the robust update's first warm start (else ``None``).
    """
    m, n = shape
    Mo = sp.csr_array((vals * (m * n / rows.size), (rows, cols)), shape=shape)
    U0, _, _ = randomized_svd(Mo, k, oversample=_OVERSAMPLE, power_iters=_POWER_ITERS, rng=gen)
    big = np.linalg.norm(U0, axis=1) > _TRIM_CONSTANT * np.linalg.norm(U0) / math.sqrt(m)
    U0[big] = 0.0
    U = np.linalg.qr(U0)[0]
    return U, (Mo.T @ U if warm else None), int(big.sum())


# ----------------------------------------------------------------------------- driver


def complete(
    observed: Any,
    rank: int,
    *,
    mask: Any = None,
    method: str = "robust",
    max_sweeps: int = 50,
    tol: float = 1e-8,
    ridge: float = 0.0,
    validation_fraction: float = 0.0,
    min_rows_factor: float = 2.0,
    inner_steps: int = 2,
    rng: int | np.random.Generator | None = None,
) -> CompletionResult:
    """Complete a low-rank matrix from sampled entries by alternating minimisation.

    Finds ``U`` (m x k), ``V`` (n x k) minimising
    ``sum_{(i,j) in Omega} (M_ij - U_i . V_j)^2 (+ ridge (||U||_F^2 + ||V||_F^2))``.
    The ``m x n`` matrix is never formed: memory is ``O(|Omega| k + (m + n) k^2)``
    (observations are processed in padded chunks of ``~2M`` gathered floats).

    **Initialisation** (Jain-Netrapalli-Sanghavi; Gu et al., Alg. 1): ``U0`` = top-``k``
    left singular vectors of ``(1/p) P_Omega(M)``, ``p = |Omega| / (m n)``, by
    randomized subspace iteration (:func:`numlib.lowrank.randomized_svd`, two power
    iterations, ``k + 10`` columns, sparse products: ``O(|Omega| k)``, as the paper's
    nearly-linear total time requires of the initialisation too). **Trimming**:
    every row ``i`` with ``||U0_i||_2 > 2 ||U0||_F / sqrt(m)`` (``= 2 sqrt(k/m)`` for
    orthonormal ``U0``: twice the average row norm, i.e. incoherence ``mu = 4``) is set
    to zero, and the result re-orthonormalised by QR.

    **Sweeps**: ``V <- rowwise argmin given U``, then ``U <- rowwise argmin given V``.

    - ``"exact"``: batched normal equations, one ``k x k`` solve per row; rows with
      fewer than ``k`` observations (and ``ridge = 0``) get the minimum-norm
      least-squares solution (as ``numpy.linalg.lstsq``). ``O(|Omega| k^2 + (m+n) k^3)``.
    - ``"robust"`` (Gu et al.'s approximate update): each row regression is solved only
      approximately, by a few steps of preconditioned CG started from the
      row's previous value (warm start; ``V``'s first start is ``(1/p) P_Omega(M)^T U0``,
      the least-squares ``V`` of the fully observed case). The preconditioner comes from
      a sketch: row ``i``'s regression matrix ``F_{Omega_i}`` *is* a uniform
      row-sampling sketch of the other factor ``F`` (rate ``c_i = |Omega_i| / n``), so
      for incoherent ``F`` and ``|Omega_i| >~ k log k``,
      ``F_{Omega_i}^T F_{Omega_i} ~ c_i F^T F`` (matrix Chernoff, the concentration
      Gu et al.'s analysis rests on), and one eigendecomposition of ``F^T F``
      (``O(n k^2)``) preconditions every row: ``(c_i F^T F + ridge I)^{-1}``, applied
      as a diagonal scaling after whitening ``F``. Each step costs ``O(|Omega_i| k)``;
      the residual on the observations is carried from one half-sweep to the next, so
      ``T`` steps read the gathered rows about ``2T`` times. Rows with
      ``|Omega_i| <= min_rows_factor * k`` are solved exactly (few samples: weak
      concentration, cheap Gram matrix). A sweep costs
      ``O(T |Omega| k + (m + n) k^2 + k^3)`` versus ``O(|Omega| k^2 + (m + n) k^3)`` for
      exact solves.

      Inner accuracy: Gu et al. show that alternating minimisation keeps the sample
      complexity and linear convergence of exact ALS when every update is within a
      small relative error of the exact one; their bounds carry the condition number of
      ``M`` (an error in the weakest direction is amplified by it).
      With the sketch preconditioner a CG step contracts a row's error by about the
      distortion ``delta ~ sqrt(k / |Omega_i|)`` of ``F_{Omega_i}^T F_{Omega_i}``
      against ``c_i F^T F``, and the warm start's error is itself of the order of the
      current distance to ``M``. So every row takes ``inner_steps`` (default 2) steps
      and then stops once its normal-equation residual fell by
      ``0.5 / cond(U V^T)`` (the current estimate's condition number, from two
      ``k x k`` Gram matrices), at most 30 steps: 2-3 steps on well-conditioned
      problems, more as ``cond(M)`` grows. A target ``>= 0.3`` is not tested (the
      test costs one more pass over the gathered rows; two steps were measured to do
      as well there). Measured (sweeps to ``1e-7``; exact ALS in
      brackets): 2000 x 2000, rank 50, 10%, Gaussian factors: 1 / 2 / 3 fixed steps
      take 83 / 33 / 39 sweeps (41), the rule 36 at ~3 steps; singular values spread
      over ``[1, 100]``: fixed 2 steps stall at error 0.1, the rule takes 39 (39) at
      ~9 steps; rank 10, 5%, spread ``[1, 1000]``: the rule takes 18 (16).
      (A fresh sparse sign sketch and QR per row, the paper's literal solver, costs
      ``O(k^3)`` per row, more than the exact Gram matrix whenever
      ``|Omega_i| < ~8 k``, which covers every realistic sampling rate at ``k = 50``.)

    **Stopping**: converged when the relative training error
    ``||P_train(U V^T - M)|| / ||P_train(M)|| <= tol`` and, if
    ``validation_fraction > 0``, the same on the held-out entries; otherwise after
    ``max_sweeps`` a :class:`numlib.result.ConvergenceWarning` is emitted and
    ``converged=False`` returned.

    Guarantee: for an incoherent rank-``k`` ``M`` and ``|Omega| = O~(n k^{O(1)})``
    uniform samples, both methods converge linearly to ``M`` (Jain et al. 2013;
    Gu et al. 2023, Thm. 1.2); in practice (tests) 20-30% of a 300x250 rank-5
    matrix suffices for relative error ``< 1e-6``.

    Parameters
    ----------
    observed : scipy.sparse matrix or tuple (rows, cols, values, shape)
        The observations: every *stored* entry (explicit zeros included) is an
        observed ``M_ij``. Not modified. Duplicates are an error.
    rank : int
        Target rank ``k``, ``1 <= k <= min(m, n)``.
    mask : scipy.sparse matrix, optional
        Same shape; only stored entries of ``observed`` at positions where ``mask``
        stores a nonzero are used.
    method : {"robust", "exact"}
    max_sweeps : int
        Maximum alternating sweeps, ``>= 1``.
    tol : float
        Relative error target, ``>= 0``.
    ridge : float
        Tikhonov weight ``>= 0`` added to every row regression.
    validation_fraction : float
        Fraction in ``[0, 1)`` of the observations held out (chosen by ``rng``) to
        monitor generalisation; they are not used for fitting.
    min_rows_factor : float
        Robust only: rows with at most ``min_rows_factor * k`` observations are solved
        exactly; ``>= 0``.
    inner_steps : int
        Robust only: CG steps every row update takes before its stopping test,
        ``>= 1``.
    rng : int, numpy.random.Generator or None
        Randomness (the initial SVD's test matrix, validation split). Same seed, same
        result.

    Returns
    -------
    CompletionResult

    Raises
    ------
    TypeError
        ``observed`` not sparse / tuple, complex values, non-integer indices,
        bad ``rng`` or non-numeric parameters.
    ValueError
        ``rank`` out of range, out-of-range indices, duplicate entries, NaN/Inf,
        no observations, unknown ``method``, parameters out of range.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> rng = np.random.default_rng(0)
    >>> M = rng.standard_normal((200, 3)) @ rng.standard_normal((3, 150))
    >>> i, j = np.nonzero(rng.random(M.shape) < 0.3)
    >>> res = complete(sp.coo_array((M[i, j], (i, j)), shape=M.shape), 3, rng=0)
    >>> bool(res.converged and np.linalg.norm(res.U @ res.V.T - M) < 1e-6 * np.linalg.norm(M))
    True
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    rows, cols, vals, m, n = _as_entries(observed, mask)
    if isinstance(rank, bool) or not isinstance(rank, numbers.Integral):
        raise TypeError(f"rank must be an int, got {type(rank).__name__}")
    k = int(rank)
    if not (1 <= k <= min(m, n)):
        raise ValueError(f"rank must satisfy 1 <= rank <= min(m, n) = {min(m, n)}, got {rank}")
    max_sweeps = check_positive_int(max_sweeps, "max_sweeps")
    inner_steps = check_positive_int(inner_steps, "inner_steps")
    max_steps = max(inner_steps, _INNER_MAXITER)
    tol = _check_real(tol, "tol", 0.0, math.inf, lo_open=False, hi_open=True)
    ridge = _check_real(ridge, "ridge", 0.0, math.inf, lo_open=False, hi_open=True)
    validation_fraction = _check_real(
        validation_fraction, "validation_fraction", 0.0, 1.0, lo_open=False, hi_open=True
    )
    min_rows_factor = _check_real(
        min_rows_factor, "min_rows_factor", 0.0, math.inf, lo_open=False, hi_open=True
    )
    gen = as_generator(rng)

    n_val = round(validation_fraction * rows.size)
    if n_val and rows.size - n_val < 1:
        raise ValueError("validation_fraction leaves no training entries")
    if n_val:
        perm = gen.permutation(rows.size)
        vi, ti = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        vr, vc, vv = rows[vi], cols[vi], vals[vi]
        rows, cols, vals = rows[ti], cols[ti], vals[ti]
    else:
        vr = vc = np.zeros(0, dtype=np.int64)
        vv = np.zeros(0)
    p = rows.size / (m * n)

    # everything below is sparse products and many small BLAS/LAPACK calls (row kernels,
    # k x k and (m + n) x k factorisations): a threaded OpenBLAS only adds wake-ups
    # (measured 5000 x 5000, rank 50, 10% on a loaded 2-core machine: 2 threads 3.0 / 1.2 s
    # per exact / robust sweep, 1 thread 1.2 / 0.30 s)
    with small_lapack_threads(k):
        U, V, trimmed = _spectral_init(rows, cols, vals, (m, n), k, gen, method == "robust")
        by_row = Grouped(rows, cols, vals, m)
        by_col = Grouped(cols, rows, vals, n)
        min_count = math.floor(min_rows_factor * k)
        train_den = float(np.linalg.norm(vals))
        train_den = train_den if train_den > 0 else 1.0
        train_hist = [1.0]
        val_hist = [1.0] if n_val else []
        inner: list[int] = []
        cg_rows: list[int] = []
        sweep_seconds: list[float] = []
        # robust: the residual on the observations by entry number, handed from each
        # half-sweep to the next (valid once the first one has written it)
        resid = np.zeros(rows.size + 1) if method == "robust" else None

        def half(
            g: Grouped, F: np.ndarray, X0: np.ndarray, reuse: bool
        ) -> tuple[np.ndarray, int, int, float]:
            return robust_update(
                g,
                F,
                X0,
                ridge,
                min_count,
                min_steps=inner_steps,
                max_steps=max_steps,
                rtol=_inner_rtol(X0, F),
                resid=resid,
                reuse=reuse,
            )

        converged = False
        sweeps = 0
        for _ in range(max_sweeps):
            sweeps += 1
            t0 = time.perf_counter()
            if method == "exact":
                V = exact_update(by_col, U, ridge)
                sqs: list[float] = []
                U = exact_update(by_row, V, ridge, errors=sqs)
                sq = sqs[0]
            else:
                V, nb_v, st_v, _ = half(by_col, U, V, sweeps > 1)
                U, nb_u, st_u, sq = half(by_row, V, U, True)
                cg_rows += [nb_v, nb_u]
                inner += [st_v, st_u]
            sweep_seconds.append(time.perf_counter() - t0)
            err = math.sqrt(sq) / train_den
            train_hist.append(err)
            ok = err <= tol
            if n_val:
                verr = _rel_error(U, V, vr, vc, vv)
                val_hist.append(verr)
                ok = ok and verr <= tol
            if not np.isfinite(err):
                break
            if ok:
                converged = True
                break
    info: dict[str, Any] = {
        "method": method,
        "tol": tol,
        "p": p,
        "n_train": int(rows.size),
        "n_validation": n_val,
        "trimmed_rows": trimmed,
        "sweep_seconds": sweep_seconds,
    }
    if method == "robust":
        info.update(min_count=min_count, cg_rows=cg_rows, inner_iterations=inner)
    if not converged:
        warnings.warn(
            f"complete(method={method!r}) did not reach tol={tol:g} in {sweeps} sweeps "
            f"(relative training error {train_hist[-1]:.3g})",
            ConvergenceWarning,
            stacklevel=2,
        )
    return CompletionResult(
        U=U,
        V=V,
        converged=converged,
        sweeps=sweeps,
        train_error_history=np.asarray(train_hist),
        validation_error_history=np.asarray(val_hist),
        info=info,
    )
