"""Column-subset approximations: ridge leverage scores, Nystrom, and CR (column-row) products.

Both approximations keep ``k`` of the original coordinates instead of rotating into a
singular basis, which is what structured compression needs (keeping ``k`` neurons of an MLP
or ``k`` head dimensions of attention keeps the layers dense and small; MoDeGPT uses
Nystrom for MLPs and CR for the query-key product).

:func:`ridge_leverage_scores`
    ``tau_i(lam) = (K (K + lam I)^{-1})_ii`` of a PSD matrix; they sum to the effective
    dimension ``d_eff(lam)`` and are the sampling distribution of Alaoui & Mahoney.
:func:`nystrom`
    ``K ~ K[:, S] K[S, S]^+ K[S, :]``, with ``S`` the top-``k`` or sampled ridge-leverage
    columns, or chosen by greedy backward elimination of the error
    ``trace(W (K - Khat) W^T)`` seen through an output map ``W`` (the output error of
    ``y = W x`` restricted to ``x_S``; optimal brain surgeon on whole columns).
:func:`cr_approximation`
    ``A B ~ A[:, S] D B[S, :]``, with ``S`` sampled by the Drineas-Kannan-Mahoney
    probabilities ``p_i ~ ||A_{:i}|| ||B_{i:}||`` (unbiased, with a Frobenius error bound)
    or the top-``k`` scores.

References
----------
Alaoui, Mahoney. Fast randomized kernel ridge regression with statistical guarantees.
NeurIPS 2015 (ridge leverage scores).
Musco, Musco. Recursive sampling for the Nystrom method. NeurIPS 2017.
Drineas, Kannan, Mahoney. Fast Monte Carlo algorithms for matrices I: approximating
matrix multiplication. SIAM J. Comput. 36(1), 2006.
Hassibi, Stork. Second order derivatives for network pruning: optimal brain surgeon.
NeurIPS 1992 (the one-column removal cost and update of the greedy selection).
Lin et al. MoDeGPT: modular decomposition for large language model compression. ICLR 2025.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from numlib._arrays import check_dense, check_rank, device_kw, like
from numlib.backend import array_namespace, to_numpy
from numlib.validate import as_generator, check_tolerance

__all__ = [
    "CRApproximation",
    "NystromApproximation",
    "cr_approximation",
    "nystrom",
    "ridge_leverage_scores",
]

Select = Literal["top", "sample"]
NystromSelect = Literal["top", "sample", "greedy"]


def _check_psd_input(K: Any) -> int:
    n = check_dense(K, "K", square=True)[0]
    xp = array_namespace(K)
    scale = float(xp.max(xp.abs(K)))
    if float(xp.max(xp.abs(K - K.T))) > 1e-6 * scale:
        raise ValueError("K must be symmetric (positive semi-definite)")
    return n


def _check_psd_spectrum(lam: Any) -> None:
    """Raise unless the eigenvalues ``lam`` of ``K`` are those of a PSD matrix up to rounding.

    Rounding leaves eigenvalues down to about ``-n eps max|lam|`` on a PSD matrix (a
    Gram matrix ``X^T X`` measured at most 2% of that, ``n <= 600``, float32 and
    float64); anything below is a genuinely indefinite ``K``, which clipping would
    silently turn into a different matrix (``-K`` into zero).
    """
    host = np.asarray(to_numpy(lam))
    tol = host.shape[0] * float(np.finfo(host.dtype).eps) * float(np.max(np.abs(host)))
    low = float(np.min(host))
    if low < -tol:
        raise ValueError(
            f"K must be positive semi-definite: its smallest eigenvalue is {low:.3g}, "
            f"below the rounding tolerance -n eps max|eigenvalue| = {-tol:.3g}"
        )


def _psd_eigh(K: Any) -> tuple[Any, Any, Any]:
    xp = array_namespace(K)
    lam, V = xp.linalg.eigh((K + K.T) / 2)
    _check_psd_spectrum(lam)
    # Rounding can leave tiny negative eigenvalues on a PSD matrix; they carry no energy.
    return xp, xp.clip(lam, 0.0, None), V


def ridge_leverage_scores(K: Any, ridge: float) -> Any:
    """Ridge leverage scores ``tau_i = (K (K + ridge I)^{-1})_ii`` of a PSD matrix.

    ``0 <= tau_i < 1`` and ``sum_i tau_i = d_eff(ridge) = sum_j lam_j / (lam_j + ridge)``.
    For a data matrix ``X`` the column scores of ``X`` are those of ``K = X^T X``. With
    ``ridge = 0`` they are the ordinary leverage scores (diagonal of the projector onto
    ``range(K)``, eigenvalues below ``n eps lam_max`` counted as zero). Computed from one
    ``eigh``: ``O(n^3)``; numpy and torch.

    Parameters
    ----------
    K : array, shape (n, n)
        Symmetric positive semi-definite (eigenvalues below zero from rounding, down
        to ``-n eps max|lam|``, are treated as zero).
    ridge : float
        ``lam >= 0``.

    Returns
    -------
    array, shape (n,)

    Raises
    ------
    TypeError
        ``K`` is not a real floating-point dense array.
    ValueError
        ``K`` is not square, is empty, holds NaN/Inf, is not symmetric, or has an
        eigenvalue below ``-n eps max|lam|`` (not positive semi-definite); ``ridge``
        is negative or not finite.

    Examples
    --------
    >>> import numpy as np
    >>> K = np.diag([4.0, 1.0, 0.0])
    >>> ridge_leverage_scores(K, 1.0).tolist()
    [0.8, 0.5, 0.0]
    """
    _check_psd_input(K)
    ridge = check_tolerance(ridge, "ridge")
    return _scores(*_psd_eigh(K), ridge)


def _scores(xp: Any, lam: Any, V: Any, ridge: float) -> Any:
    if ridge > 0:
        w = lam / (lam + ridge)
    else:
        eps = float(np.finfo(to_numpy(lam[:1]).dtype).eps)
        w = xp.astype(lam > lam.shape[0] * eps * float(xp.max(lam)), lam.dtype)
    return xp.sum(V * V * w[None, :], axis=1)


@dataclass(frozen=True)
class NystromApproximation:
    """``K ~ C W^+ C^T`` with ``C = K[:, index]`` and ``W = K[index, index]``.

    Attributes
    ----------
    index : numpy.ndarray of int, shape (k,)
        Selected columns, ascending.
    columns : array, shape (n, k)
        ``C``.
    core : array, shape (k, k)
        ``W^+`` (pseudo-inverse through ``eigh``, relative cutoff ``k eps``).
    scores : array, shape (n,)
        Ridge leverage scores used for the selection.
    ridge : float
        The ridge of the scores.
    """

    index: np.ndarray
    columns: Any
    core: Any
    scores: Any
    ridge: float

    @property
    def interpolation(self) -> Any:
        """``C W^+`` (``n x k``): ``K ~ interpolation @ K[index, :]``."""
        return self.columns @ self.core

    def matrix(self) -> Any:
        """Return the dense ``n x n`` approximation ``C W^+ C^T``."""
        return self.interpolation @ self.columns.T


def nystrom(
    K: Any,
    k: int,
    *,
    select: NystromSelect = "top",
    ridge: float | None = None,
    weight: Any = None,
    rng: int | np.random.Generator | None = None,
) -> NystromApproximation:
    """Nystrom approximation of a PSD matrix from ``k`` selected columns.

    ``Khat = K[:, S] K[S, S]^+ K[S, :]``. For every ``S``, ``K - Khat`` is PSD (a Schur
    complement) and ``Khat`` equals ``K`` when ``K[:, S]`` spans ``range(K)``;
    ``trace(K - Khat) >= sum_{i>k} lam_i`` (no ``k`` columns beat the eigendecomposition).

    ``select="top"`` keeps the ``k`` largest ridge leverage scores (MoDeGPT's
    deterministic choice); ``"sample"`` draws ``k`` distinct columns with probabilities
    proportional to them (the Alaoui-Mahoney distribution, whose guarantee
    ``||K - Khat||_2 <= ridge`` w.h.p. is proved for ``O(d_eff log d_eff)`` i.i.d. draws).
    The default ridge of the scores is Musco & Musco's ``sum_{i>k} lam_i / k``, for which
    ``d_eff <= 2k``.

    ``select="greedy"`` targets ``err(S) = trace(W (K - Khat) W^T)`` for an output map
    ``W`` (``weight``; the identity when omitted). With ``K = E[x x^T]`` this is
    ``min_V E||W x - V x_S||^2``, attained by ``V = W @ interpolation``: the error of
    dropping the inputs outside ``S`` of a layer ``y = W x`` and refitting it. Starting
    from all ``n`` columns it removes ``n - k`` one at a time, each time the column whose
    removal raises ``err`` least: with ``H = (K + ridge I)^{-1}`` restricted to the
    kept set and ``V`` the current refit, that cost is ``||V_{:,i}||^2 / H_ii`` and
    ``V``, ``H`` follow by rank-one updates (optimal brain surgeon, one column at a time).
    Each step is exactly optimal; the set as a whole is not guaranteed to be. Here
    ``ridge`` (default ``1e-10 mean(diag K)``) only keeps ``H`` defined on singular
    ``K``. ``O(n^3 + (n - k) n (n + m))``.

    numpy and torch.

    Parameters
    ----------
    K : array, shape (n, n)
        Symmetric positive semi-definite, e.g. a correlation ``E[h h^T]`` of hidden units
        (eigenvalues down to ``-n eps max|lam|`` are taken as rounding).
    k : int
        Columns kept, ``1 <= k <= n``.
    select : {"top", "sample", "greedy"}
    ridge : float, optional
        ``>= 0``.
    weight : array, shape (m, n), optional
        Output map ``W`` of ``"greedy"``.
    rng : int, numpy.random.Generator or None
        Used by ``"sample"`` only.

    Returns
    -------
    NystromApproximation
        For ``"greedy"``, ``scores`` holds each removed column's cost when it was removed
        and each kept column's cost had it been removed next.

    Raises
    ------
    TypeError
        ``K`` or ``weight`` is not a real floating-point dense array.
    ValueError
        ``K`` is not square, is empty, holds NaN/Inf, is not symmetric or not positive
        semi-definite (an eigenvalue below ``-n eps max|lam|``); ``k`` outside
        ``[1, n]``; an unknown ``select``; a negative ``ridge``; ``weight`` with the
        wrong number of columns or without ``select="greedy"``.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((3, 6))
    >>> K = X.T @ X  # rank 3
    >>> approx = nystrom(K, 3)
    >>> bool(np.allclose(approx.matrix(), K))
    True
    >>> W = np.eye(6)[:2]  # only the first two coordinates matter
    >>> nystrom(K, 2, select="greedy", weight=W).index.tolist()
    [0, 1]
    """
    n = _check_psd_input(K)
    k = check_rank(k, "k", n)
    if select not in ("top", "sample", "greedy"):
        raise ValueError(f"select must be 'top', 'sample' or 'greedy', got {select!r}")
    if ridge is not None:
        ridge = check_tolerance(ridge, "ridge")
    xp = array_namespace(K)
    if select == "greedy":
        if weight is not None:
            _, cols = check_dense(weight, "weight")
            if cols != n:
                raise ValueError(f"weight must have {n} columns (K is {n} x {n}), got {cols}")
        if ridge is None:
            ridge = 1e-10 * float(xp.mean(xp.abs(xp.linalg.diagonal(K))))
        ridge = check_tolerance(ridge, "ridge")
        _check_psd_spectrum(xp.linalg.eigvalsh((K + K.T) / 2))
        index, scores = _backward_elimination(xp, K, k, weight, ridge)
    elif weight is not None:
        raise ValueError("weight is used by select='greedy' only")
    else:
        xp, lam, V = _psd_eigh(K)
        if ridge is None:
            tail = float(xp.sum(lam[: n - k]))  # eigh sorts ascending: the n - k smallest
            ridge = tail / k
        ridge = check_tolerance(ridge, "ridge")
        scores = _scores(xp, lam, V, ridge)
        host = np.asarray(to_numpy(scores), dtype=np.float64)
        if select == "top":
            index = np.sort(np.argsort(-host, kind="stable")[:k])
        else:
            p = np.clip(host, 0.0, None)
            p = p / p.sum() if p.sum() > 0 else np.full(n, 1.0 / n)
            # numpy cannot draw more distinct items than there are non-zero probabilities.
            p = np.maximum(p, 1e-300) if np.count_nonzero(p) < k else p
            index = np.sort(as_generator(rng).choice(n, size=k, replace=False, p=p / p.sum()))
    idx = index if isinstance(K, np.ndarray) else xp.asarray(index, **device_kw(K))
    C = xp.take(K, idx, axis=1)
    Wk = xp.take(C, idx, axis=0)
    return NystromApproximation(index, C, _pinvh(xp, Wk), scores, float(ridge))


def _backward_elimination(
    xp: Any, K: Any, k: int, weight: Any, ridge: float
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy column removal for :func:`nystrom` ``select="greedy"``: (kept index, costs)."""
    n = K.shape[0]
    eye = xp.eye(n, dtype=K.dtype, **device_kw(K))
    H = xp.linalg.inv((K + K.T) / 2 + ridge * eye)
    V = eye if weight is None else xp.astype(xp.asarray(weight, copy=True), K.dtype)
    removed = np.zeros(n, dtype=bool)
    scores = np.zeros(n)

    def costs() -> np.ndarray:
        # Removed columns have H_ii = 0 and V_{:,i} = 0; the mask keeps them out.
        d = np.asarray(to_numpy(xp.linalg.diagonal(H)), dtype=np.float64)
        v = np.asarray(to_numpy(xp.sum(V * V, axis=0)), dtype=np.float64)
        return np.where(removed, np.inf, v / np.where(removed, 1.0, d))

    for _ in range(n - k):
        cost = costs()
        i = int(np.argmin(cost))
        scores[i] = cost[i]
        hi = H[i, :] / H[i, i]
        V -= V[:, i : i + 1] * hi[None, :]
        H -= H[:, i : i + 1] * hi[None, :]
        removed[i] = True
    scores[~removed] = costs()[~removed]
    return np.flatnonzero(~removed), scores


def _pinvh(xp: Any, W: Any) -> Any:
    lam, V = xp.linalg.eigh((W + W.T) / 2)
    cut = W.shape[0] * float(np.finfo(np.float64).eps) * float(xp.max(xp.abs(lam)))
    keep = lam > cut
    inv = xp.where(keep, 1.0 / xp.where(keep, lam, xp.ones_like(lam)), xp.zeros_like(lam))
    return (V * inv[None, :]) @ V.T


@dataclass(frozen=True)
class CRApproximation:
    """``A B ~ A[:, index] diag(scale) B[index, :]``.

    Attributes
    ----------
    index : numpy.ndarray of int, shape (k',)
        Distinct selected inner indices, ascending (``k' <= k`` when sampling repeats).
    scale : numpy.ndarray, shape (k',)
        Weight of each: ``count_i / (k p_i)`` for sampling (unbiased), 1 for ``"top"``.
    probabilities : numpy.ndarray, shape (p,)
        The selection distribution (normalised scores).
    """

    index: np.ndarray
    scale: np.ndarray
    probabilities: np.ndarray

    def factors(self, A: Any, B: Any) -> tuple[Any, Any]:
        """Return ``(A[:, index] diag(scale), B[index, :])`` on ``A``'s library."""
        xp = array_namespace(A, B)
        if xp is np:
            return A[:, self.index] * self.scale[None, :], B[self.index, :]
        idx = xp.asarray(self.index, **device_kw(A))
        scale = like(self.scale, A, xp)
        return xp.take(A, idx, axis=1) * scale[None, :], xp.take(B, idx, axis=0)

    def matrix(self, A: Any, B: Any) -> Any:
        """Return the dense approximation of ``A @ B``."""
        left, right = self.factors(A, B)
        return left @ right


def cr_approximation(
    A: Any,
    B: Any,
    k: int,
    *,
    select: Select = "sample",
    scores: Any = None,
    rng: int | np.random.Generator | None = None,
) -> CRApproximation:
    """Approximate ``A @ B`` by ``k`` column-row outer products.

    ``"sample"``: ``k`` i.i.d. draws with ``p_i = s_i / sum s`` and default scores
    ``s_i = ||A_{:,i}||_2 ||B_{i,:}||_2``, each kept term scaled by ``1/(k p_i)``. Then
    ``E[CR] = A B`` and ``E||A B - CR||_F^2 <= ||A||_F^2 ||B||_F^2 / k`` (Drineas, Kannan,
    Mahoney 2006, Lemma 4 with the optimal probabilities; these probabilities minimise the
    expected error). ``"top"``: the ``k`` largest scores, unscaled (MoDeGPT type II, where
    the scores are norms of the whitened query/key columns, passed through ``scores``).
    Other importance measures plug in the same way, e.g. ridge leverage scores of the
    inner index, ``scores = ridge_leverage_scores(A.T @ A, lam)``; the unbiasedness holds
    for any positive scores, the error bound only for the default ones.

    numpy and torch for ``A``, ``B``; the selection itself is computed on the host.

    Parameters
    ----------
    A : array, shape (m, p)
    B : array, shape (p, n)
    k : int
        Draws (``"sample"``) or terms kept (``"top"``), ``1 <= k <= p`` for ``"top"``,
        ``k >= 1`` for ``"sample"``.
    select : {"sample", "top"}
    scores : array, shape (p,), optional
        Non-negative importance per inner index, replacing the norm products.
    rng : int, numpy.random.Generator or None
        Used by ``"sample"`` only.

    Returns
    -------
    CRApproximation

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> A, B = rng.standard_normal((5, 4)), rng.standard_normal((4, 3))
    >>> cr = cr_approximation(A, B, 4, select="top")
    >>> bool(np.allclose(cr.matrix(A, B), A @ B))
    True
    """
    p = check_dense(A, "A")[1]
    p2, _ = check_dense(B, "B")
    if p2 != p:
        raise ValueError(f"A and B must be conformable: A has {p} columns, B has {p2} rows")
    if select not in ("top", "sample"):
        raise ValueError(f"select must be 'top' or 'sample', got {select!r}")
    k = check_rank(k, "k", p if select == "top" else 2**62)
    if scores is None:
        a = np.linalg.norm(np.asarray(to_numpy(A), dtype=np.float64), axis=0)
        b = np.linalg.norm(np.asarray(to_numpy(B), dtype=np.float64), axis=1)
        s = a * b
    else:
        check_dense(scores, "scores", ndim=1)
        s = np.asarray(to_numpy(scores), dtype=np.float64)
        if s.shape != (p,) or np.any(s < 0):
            raise ValueError(f"scores must be non-negative with shape ({p},)")
    total = s.sum()
    if total <= 0:
        raise ValueError("the scores are all zero: A @ B has no column-row mass")
    prob = s / total
    if select == "top":
        index = np.sort(np.argsort(-s, kind="stable")[:k])
        return CRApproximation(index, np.ones(k), prob)
    draws = as_generator(rng).choice(p, size=k, replace=True, p=prob)
    index, counts = np.unique(draws, return_counts=True)
    return CRApproximation(index, counts / (k * prob[index]), prob)
