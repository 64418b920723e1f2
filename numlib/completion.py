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
    each row regression is solved only approximately, by sketch-and-precondition.
    See :func:`complete` for the precise rule. ``O~(|Omega| k + (m+n) k^3)`` per sweep.

scipy.sparse / numpy only (not array-API generic): the observations are a
scipy.sparse matrix and the per-row solves use LAPACK.

References
----------
Gu, Song, Yin, Zhang. Low rank matrix completion via robust alternating minimization
in nearly linear time. arXiv 2302.11068 (ICLR 2024).
Jain, Netrapalli, Sanghavi. Low-rank matrix completion using alternating minimization.
STOC 2013.
Nelson, Nguyen. OSNAP. FOCS 2013 (the sparse sign sketch used per row).
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from numlib.result import ConvergenceWarning
from numlib.validate import as_generator, check_positive_int

__all__ = ["CompletionResult", "complete"]

_METHODS = ("robust", "exact")
_TRIM_CONSTANT = 2.0  # rows of the initial factor above 2 ||U||_F / sqrt(m) are zeroed
_SKETCH_NNZ = 4  # nonzeros per column of each per-row sparse sign sketch
_INNER_RTOL = 1e-2  # robust update: PCG stops when ||r_i|| <= 1e-2 ||r_i^0|| for every row
_INNER_MAXITER = 10


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
        ``||P_train(U V^T - M)||_F / ||P_train(M)||_F``; entry 0 is the initialisation,
        entry ``t`` after sweep ``t``.
    validation_error_history : numpy.ndarray
        The same on the held-out entries (empty when ``validation_fraction == 0``).
    info : dict
        ``"method"``, ``"tol"``, ``"p"`` (sampling rate), ``"n_train"``,
        ``"n_validation"``, ``"trimmed_rows"`` (rows zeroed at initialisation),
        ``"sketch_rows"``, ``"sketched_rows_per_sweep"`` and ``"inner_iterations"``
        (robust only; per half-sweep).
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
    keys = rows * n + cols
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    dup = np.flatnonzero(sk[1:] == sk[:-1])
    if dup.size:
        i, j = divmod(int(sk[dup[0]]), n)
        raise ValueError(
            f"observed has duplicate entries ({dup.size} repeated), e.g. at ({i}, {j}); "
            "sum or drop them first"
        )
    if mask is not None:
        if not sp.issparse(mask):
            raise TypeError(f"mask must be a scipy.sparse matrix, got {type(mask).__name__}")
        if tuple(mask.shape) != (m, n):
            raise ValueError(f"mask must have shape {(m, n)}, got {tuple(mask.shape)}")
        mc = mask.tocoo()
        nz = np.asarray(mc.data) != 0
        mkeys = np.asarray(mc.row, dtype=np.int64)[nz] * n + np.asarray(mc.col, dtype=np.int64)[nz]
        keep = np.isin(keys, mkeys)
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


# ----------------------------------------------------------------------------- kernels


class _Grouped:
    """Observations grouped by the row of the factor being updated (CSR order)."""

    def __init__(self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, nrows: int):
        order = np.argsort(rows, kind="stable")
        self.rows, self.cols, self.vals = rows[order], cols[order], vals[order]
        self.nrows = nrows
        self.counts = np.bincount(self.rows, minlength=nrows)
        self.indptr = np.concatenate([[0], np.cumsum(self.counts)])


def _segment_sum(X: np.ndarray, g: _Grouped, nonempty: np.ndarray) -> np.ndarray:
    """Row-group sums of ``X`` (entries in CSR order), zeros for empty groups."""
    out = np.zeros((g.nrows, *X.shape[1:]))
    if X.shape[0]:
        out[nonempty] = np.add.reduceat(X, g.indptr[:-1][nonempty], axis=0)
    return out


def _exact_update(
    g: _Grouped, F: np.ndarray, ridge: float, rows_sel: np.ndarray | None = None
) -> np.ndarray:
    """Exact per-row least squares ``argmin_u sum_j (M_ij - u.F_j)^2 + ridge ||u||^2``.

    Batched normal equations ``(F_O^T F_O + ridge I) u = F_O^T m_O``; rows whose Gram
    matrix is singular (fewer than ``k`` observations, ``ridge = 0``) get the
    minimum-norm solution through the pseudo-inverse, which is ``numpy.linalg.lstsq``'s.
    ``rows_sel`` (bool, length ``nrows``) restricts the rows solved; others are 0.
    """
    k = F.shape[1]
    if rows_sel is None:
        rows_sel = np.ones(g.nrows, dtype=bool)
    ent = rows_sel[g.rows]
    sub_rows = g.rows[ent]
    Fc = F[g.cols[ent]]
    counts = np.bincount(sub_rows, minlength=g.nrows)
    nonempty = counts > 0
    starts = np.concatenate([[0], np.cumsum(counts)])[:-1]
    G = np.zeros((g.nrows, k, k))
    b = np.zeros((g.nrows, k))
    if Fc.shape[0]:
        chunk = max(1, (1 << 22) // (k * k))  # bound the O(|Omega| k^2) outer products
        idx = np.flatnonzero(nonempty)
        # accumulate Gram matrices chunk by chunk over groups of rows
        pos = 0
        while pos < idx.size:
            stop = pos
            tot = 0
            while stop < idx.size and (tot == 0 or tot + counts[idx[stop]] <= chunk):
                tot += counts[idx[stop]]
                stop += 1
            rsel = idx[pos:stop]
            lo, hi = starts[rsel[0]], starts[rsel[-1]] + counts[rsel[-1]]
            E = Fc[lo:hi]
            G[rsel] = np.add.reduceat(E[:, :, None] * E[:, None, :], starts[rsel] - lo, axis=0)
            pos = stop
        b[nonempty] = np.add.reduceat(Fc * g.vals[ent][:, None], starts[nonempty], axis=0)
    if ridge > 0:
        G += ridge * np.eye(k)
    out = np.zeros((g.nrows, k))
    solve = rows_sel & (counts >= k) if ridge == 0 else rows_sel.copy()
    pinv = rows_sel & ~solve
    if solve.any():
        try:
            out[solve] = np.linalg.solve(G[solve], b[solve][:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            pinv |= solve
    if pinv.any():
        out[pinv] = np.einsum("rij,rj->ri", np.linalg.pinv(G[pinv], hermitian=True), b[pinv])
    return out


def _robust_update(
    g: _Grouped, F: np.ndarray, X0: np.ndarray, ridge: float, s_rows: int, rng: np.random.Generator
) -> tuple[np.ndarray, int, int]:
    """Approximate per-row least squares by sketch-and-precondition + warm-started PCG.

    Rows with more than ``s_rows`` observations: sketch ``A_i = F[Omega_i]`` with a
    fresh ``s_rows x |Omega_i|`` sparse sign sketch (:data:`_SKETCH_NNZ` nonzeros per
    column, the block construction of :class:`numlib.sketch.SparseSignSketch`), take
    ``R_i`` from a QR of ``[S_i A_i; sqrt(ridge) I]``, and run preconditioned CG on the
    normal equations with preconditioner ``(R_i^T R_i)^-1`` from the previous iterate
    ``X0[i]`` until every row's residual drops by ``_INNER_RTOL`` (at most
    ``_INNER_MAXITER`` steps). Other rows are solved exactly. Returns the new factor,
    the number of sketched rows and the PCG steps taken.
    """
    k = F.shape[1]
    big = g.counts > s_rows
    out = np.zeros((g.nrows, k))
    if (~big).any():
        out[~big] = _exact_update(g, F, ridge, ~big)[~big]
    nb = int(big.sum())
    if nb == 0:
        return out, 0, 0
    ent = big[g.rows]
    bidx = np.flatnonzero(big)
    local = np.full(g.nrows, -1, dtype=np.int64)
    local[bidx] = np.arange(nb)
    lrow = local[g.rows[ent]]
    Fc = F[g.cols[ent]]
    y = g.vals[ent]
    ne = y.size
    # per-row sparse sign sketch: s nonzeros per column, one in each of s row blocks
    s = min(_SKETCH_NNZ, s_rows)
    bounds = np.linspace(0, s_rows, s + 1).astype(np.int64)
    starts_b, widths = bounds[:-1], np.diff(bounds)
    offs = (rng.random((ne, s)) * widths).astype(np.int64)
    srow = (lrow[:, None] * s_rows + starts_b + offs).ravel()
    scol = np.repeat(np.arange(ne), s)
    sval = rng.choice(np.array([-1.0, 1.0]), size=ne * s) / math.sqrt(s)
    S = sp.csr_array((sval, (srow, scol)), shape=(nb * s_rows, ne))
    SA = np.asarray(S @ Fc).reshape(nb, s_rows, k)
    if ridge > 0:
        SA = np.concatenate([SA, np.broadcast_to(math.sqrt(ridge) * np.eye(k), (nb, k, k))], 1)
    R = np.linalg.qr(SA, mode="r")
    d = np.abs(np.diagonal(R, axis1=1, axis2=2))
    bad = ~(d.min(axis=1) > 1e-12 * np.maximum(d.max(axis=1), np.finfo(float).tiny))
    R[bad] = np.eye(k)  # rank-deficient sketch: unpreconditioned CG for that row
    Rinv = np.linalg.inv(R)

    counts = g.counts[big]
    gstarts = np.concatenate([[0], np.cumsum(counts)])[:-1]

    def normal_op(P: np.ndarray) -> np.ndarray:  # (A_i^T A_i + ridge I) p_i, all rows
        w = np.einsum("ej,ej->e", Fc, P[lrow])
        return np.add.reduceat(Fc * w[:, None], gstarts, axis=0) + ridge * P

    def precond(Rr: np.ndarray) -> np.ndarray:  # (R^T R)^-1 r = Rinv Rinv^T r
        return np.einsum("rij,rj->ri", Rinv, np.einsum("rji,rj->ri", Rinv, Rr))

    X = X0[bidx].copy()
    rhs = np.add.reduceat(Fc * y[:, None], gstarts, axis=0)
    r = rhs - normal_op(X)
    z = precond(r)
    p = z.copy()
    rz = np.einsum("ri,ri->r", r, z)
    r0 = np.linalg.norm(r, axis=1)
    target = _INNER_RTOL * r0
    steps = 0
    tiny = np.finfo(float).tiny
    for _ in range(_INNER_MAXITER):
        active = np.linalg.norm(r, axis=1) > target
        if not active.any():
            break
        steps += 1
        q = normal_op(p)
        pq = np.einsum("ri,ri->r", p, q)
        alpha = np.where(active & (pq > tiny), rz / np.where(pq > tiny, pq, 1.0), 0.0)
        X += alpha[:, None] * p
        r -= alpha[:, None] * q
        z = precond(r)
        rz_new = np.einsum("ri,ri->r", r, z)
        beta = np.where(rz > tiny, rz_new / np.where(rz > tiny, rz, 1.0), 0.0)
        p = z + beta[:, None] * p
        rz = rz_new
    out[bidx] = X
    return out, nb, steps


def _rel_error(
    U: np.ndarray, V: np.ndarray, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray
) -> float:
    if rows.size == 0:
        return 0.0
    pred = np.einsum("ej,ej->e", U[rows], V[cols])
    den = float(np.linalg.norm(vals))
    num = float(np.linalg.norm(pred - vals))
    return num / den if den > 0 else num


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
    sketch_rows_factor: float = 4.0,
    rng: int | np.random.Generator | None = None,
) -> CompletionResult:
    """Complete a low-rank matrix from sampled entries by alternating minimisation.

    Finds ``U`` (m x k), ``V`` (n x k) minimising
    ``sum_{(i,j) in Omega} (M_ij - U_i . V_j)^2 (+ ridge (||U||_F^2 + ||V||_F^2))``.
    The ``m x n`` matrix is never formed: memory is ``O(|Omega| k + (m + n) k^2)``
    (the exact Gram matrices are built in chunks of ``~4M`` floats).

    **Initialisation** (Jain-Netrapalli-Sanghavi; Gu et al., Alg. 1): ``U0`` = top-``k``
    left singular vectors of ``(1/p) P_Omega(M)``, ``p = |Omega| / (m n)``
    (``scipy.sparse.linalg.svds``, ARPACK, ``v0`` drawn from ``rng``). **Trimming**:
    every row ``i`` with ``||U0_i||_2 > 2 ||U0||_F / sqrt(m)`` (``= 2 sqrt(k/m)`` for
    orthonormal ``U0``: twice the average row norm, i.e. incoherence ``mu = 4``) is set
    to zero, and the result re-orthonormalised by QR.

    **Sweeps**: ``V <- rowwise argmin given U``, then ``U <- rowwise argmin given V``.

    - ``"exact"``: batched normal equations, one ``k x k`` solve per row; rows with
      fewer than ``k`` observations (and ``ridge = 0``) get the minimum-norm
      least-squares solution (as ``numpy.linalg.lstsq``). ``O(|Omega| k^2 + (m+n) k^3)``.
    - ``"robust"`` (Gu et al.'s approximate update): a row with ``|Omega_i| > s``
      observations, ``s = ceil(sketch_rows_factor * k)``, is solved by
      sketch-and-precondition: a fresh ``s x |Omega_i|`` sparse sign sketch
      (4 nonzeros per column, OSNAP block construction) compresses the row's
      regression matrix in ``O(|Omega_i| k)``, ``R_i`` from its QR (``O(s k^2)``)
      preconditions CG on the normal equations, started from the row's previous
      value (warm start) and stopped once that row's residual fell by ``1e-2`` (at
      most 10 steps, each ``O(|Omega_i| k)``). Rows with ``|Omega_i| <= s`` are solved
      exactly (sketching them would not save work). A sweep costs
      ``O(T |Omega| k + (m+n) k^3)`` with ``T <= 10`` CG steps, versus
      ``O(|Omega| k^2)`` for exact solves; Gu et al. prove that alternating
      minimisation with such per-row solves of bounded relative error keeps the
      sample complexity and linear convergence of exact ALS. The sketched
      preconditioner has condition number ``(1+e)/(1-e)`` for an ``e``-embedding, so
      CG needs ``O(log 1/eps)`` steps whatever the conditioning of ``F[Omega_i]``.

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
        Target rank ``k``, ``1 <= k <= min(m, n)`` (``< min(m, n)`` for ARPACK).
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
    sketch_rows_factor : float
        Sketch rows per row regression, ``ceil(factor * k)``; ``>= 1``. Robust only.
    rng : int, numpy.random.Generator or None
        Randomness (svds start vector, validation split, sketches). Same seed, same
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
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    rows, cols, vals, m, n = _as_entries(observed, mask)
    if isinstance(rank, bool) or not isinstance(rank, numbers.Integral):
        raise TypeError(f"rank must be an int, got {type(rank).__name__}")
    k = int(rank)
    if not (1 <= k < min(m, n)):
        raise ValueError(f"rank must satisfy 1 <= rank < min(m, n) = {min(m, n)}, got {rank}")
    max_sweeps = check_positive_int(max_sweeps, "max_sweeps")
    tol = _check_real(tol, "tol", 0.0, math.inf, lo_open=False, hi_open=True)
    ridge = _check_real(ridge, "ridge", 0.0, math.inf, lo_open=False, hi_open=True)
    validation_fraction = _check_real(
        validation_fraction, "validation_fraction", 0.0, 1.0, lo_open=False, hi_open=True
    )
    sketch_rows_factor = _check_real(
        sketch_rows_factor, "sketch_rows_factor", 1.0, math.inf, lo_open=False, hi_open=True
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

    # initialisation: top-k SVD of (1/p) P_Omega(M), trimming, re-orthonormalisation
    Mo = sp.csr_array((vals / p, (rows, cols)), shape=(m, n))
    v0 = gen.standard_normal(min(m, n))
    U0, _, _ = svds(Mo, k=k, v0=v0, random_state=gen)
    thresh = _TRIM_CONSTANT * np.linalg.norm(U0) / math.sqrt(m)
    big = np.linalg.norm(U0, axis=1) > thresh
    U0 = U0.copy()
    U0[big] = 0.0
    U, _ = np.linalg.qr(U0)
    V = np.zeros((n, k))

    by_row = _Grouped(rows, cols, vals, m)
    by_col = _Grouped(cols, rows, vals, n)
    s_rows = math.ceil(sketch_rows_factor * k)
    train_hist = [_rel_error(U, np.zeros((n, k)), rows, cols, vals)]
    val_hist = [_rel_error(U, V, vr, vc, vv)] if n_val else []
    inner: list[int] = []
    sketched: list[int] = []
    converged = False
    sweeps = 0
    first = True
    for _ in range(max_sweeps):
        sweeps += 1
        if method == "exact" or first:
            V = _exact_update(by_col, U, ridge)  # first V solve: no warm start exists
        else:
            V, nb, st = _robust_update(by_col, U, V, ridge, s_rows, gen)
            sketched.append(nb)
            inner.append(st)
        if method == "exact":
            U = _exact_update(by_row, V, ridge)
        else:
            U, nb, st = _robust_update(by_row, V, U, ridge, s_rows, gen)
            sketched.append(nb)
            inner.append(st)
        first = False
        err = _rel_error(U, V, rows, cols, vals)
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
        "trimmed_rows": int(big.sum()),
    }
    if method == "robust":
        info.update(sketch_rows=s_rows, sketched_rows_per_sweep=sketched, inner_iterations=inner)
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
