"""Low-rank approximation: randomized SVD, weighted and whitened SVD, DCT projection.

Every approximation of a weight matrix ``W`` (``m x n``, ``y = W x``) comes back as a
:class:`LowRankFactors` ``W ~ left @ right`` (``m x k`` times ``k x n``), the two matrices a
low-rank layer stores, together with the spectrum of the problem that was truncated, so
that a caller can allocate ranks across layers. The rank is given directly, or chosen by
:func:`choose_rank` from a kept-energy fraction or a parameter budget.

============================  ===========================================  ================
function                      minimises over rank-``k`` ``X``              arrays
============================  ===========================================  ================
:func:`randomized_svd`        ``||A - X||`` within the HMT bound            numpy, torch,
                                                                           sparse, operator
:func:`weighted_svd`          ``||diag(r) (W - X) diag(c)||_F`` (exactly)  numpy, torch
:func:`whitened_svd`          ``||(W - X) F||_F``, ``F F^T = C`` (exactly)  numpy, torch
:func:`dct_project`           ``||W - X||_F`` over ``X = W P_S``, ``P_S``   numpy (fast),
                              a projector on ``k`` DCT-II vectors          torch (matmul)
============================  ===========================================  ================

Column-subset methods (Nystrom, CR) are in :mod:`numlib.nystrom`.

References
----------
Halko, Martinsson, Tropp. Finding structure with randomness: probabilistic algorithms for
constructing approximate matrix decompositions. SIAM Review 53(2), 2011 (HMT).
Hsu, Hsu, Lin, Shen, Jin. Language model compression with weighted low-rank factorization
(FWSVD). ICLR 2022.
Wang, Zheng, Zhang, Zhang. SVD-LLM: truncation-aware singular value decomposition for large
language model compression. ICLR 2025.
Lin et al. MoDeGPT: modular decomposition for large language model compression. ICLR 2025.
Kaushal et al. LoRD: low rank decomposition of monolingual code LLMs for one-shot
compression. 2023 (parameter-budget ranks).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np
import scipy.fft
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

from numlib._arrays import check_dense, check_rank, device_kw, like
from numlib.backend import array_namespace, to_numpy
from numlib.calibration import Whitening, WhitenMethod, whiten
from numlib.validate import as_generator, check_finite, check_operator, check_positive_int

__all__ = [
    "LowRankFactors",
    "choose_rank",
    "dct_basis",
    "dct_project",
    "randomized_svd",
    "weighted_svd",
    "whitened_svd",
]

Split = Literal["balanced", "left", "right"]
_SPLITS = ("balanced", "left", "right")


@dataclass(frozen=True)
class LowRankFactors:
    """``W ~ left @ right``: the factors of a rank-``k`` approximation.

    Attributes
    ----------
    left : array, shape (m, k)
    right : array, shape (k, n)
    spectrum : array
        All singular values of the matrix that was truncated (the weighted or whitened
        ``W`` where applicable; DCT coefficient-column norms for :func:`dct_project`),
        descending, on the input's library. ``spectrum[k:]`` is what was discarded.
    energy : float
        Fraction of ``sum(spectrum**2)`` kept, in ``[0, 1]``.
    info : dict
        Method details (e.g. ``"whitening"``: the :class:`~numlib.calibration.Whitening`).
    """

    left: Any
    right: Any
    spectrum: Any
    energy: float
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def rank(self) -> int:
        """The rank ``k``."""
        return int(self.left.shape[1])

    @property
    def shape(self) -> tuple[int, int]:
        """Shape ``(m, n)`` of the approximated matrix."""
        return (int(self.left.shape[0]), int(self.right.shape[1]))

    @property
    def params(self) -> int:
        """Stored numbers ``k (m + n)``."""
        m, n = self.shape
        return self.rank * (m + n)

    def matrix(self) -> Any:
        """Return the dense ``m x n`` approximation ``left @ right``."""
        return self.left @ self.right


def _check_ratio(value: float, name: str, *, closed: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    ok = 0.0 < value <= 1.0 if closed else 0.0 < value < 1.0
    if not ok:
        interval = "(0, 1]" if closed else "(0, 1)"
        raise ValueError(f"{name} must lie in {interval}, got {value}")
    return value


class _RankRequest(NamedTuple):
    """Checked rank-selection arguments: exactly one of ``rank``, ``energy``, ``param_ratio``."""

    rank: int | None
    energy: float | None
    param_ratio: float | None
    multiple_of: int
    shape: tuple[int, int]


def _check_shape(shape: Any) -> tuple[int, int]:
    if not isinstance(shape, tuple | list) or len(shape) != 2:
        raise ValueError(f"shape must be a pair (m, n) of positive integers, got {shape!r}")
    return check_positive_int(shape[0], "shape[0]"), check_positive_int(shape[1], "shape[1]")


def _check_rank_request(
    rank: int | None,
    energy: float | None,
    param_ratio: float | None,
    multiple_of: int,
    shape: Any,
    limit: int,
) -> _RankRequest:
    """Check the rank-selection arguments of :func:`choose_rank` (ranks up to ``limit``).

    Shared by :func:`choose_rank` and the SVD routines, which call it before any work.
    """
    given = [c is not None for c in (rank, energy, param_ratio)]
    if sum(given) != 1:
        raise ValueError("give exactly one of rank, energy, param_ratio")
    multiple_of = check_positive_int(multiple_of, "multiple_of")
    checked_shape = _check_shape(shape)
    if rank is not None:
        rank = check_rank(rank, "rank", limit)
    if energy is not None:
        energy = _check_ratio(energy, "energy", closed=True)
    if param_ratio is not None:
        param_ratio = _check_ratio(param_ratio, "param_ratio")
    return _RankRequest(rank, energy, param_ratio, multiple_of, checked_shape)


def _check_spectrum(spectrum: Any) -> np.ndarray:
    """Return ``spectrum`` as float64 numpy after checking it is a valid singular-value list."""
    s = np.asarray(to_numpy(spectrum))
    if s.dtype.kind not in "fiu":
        raise TypeError(f"spectrum must hold real numbers, got dtype {s.dtype}")
    if s.ndim != 1:
        raise ValueError(f"spectrum must be 1-D, got shape {s.shape}")
    if s.size == 0:
        raise ValueError("spectrum must not be empty")
    s = s.astype(np.float64, copy=False)
    check_finite(s, "spectrum")
    if s.min() < 0:
        raise ValueError(f"spectrum must be non-negative (singular values), got {s.min()}")
    if s.size > 1 and not bool(np.all(s[1:] <= s[:-1])):
        raise ValueError("spectrum must be in descending order (as returned by an SVD)")
    return s


def _rank_from_spectrum(s: np.ndarray, request: _RankRequest) -> int:
    """:func:`choose_rank` on a checked request and a descending spectrum ``s``."""
    kmax = int(s.shape[0])
    multiple_of = request.multiple_of
    if request.rank is not None:
        return min(request.rank, kmax)
    if request.energy is not None:
        cum = np.cumsum(s**2)
        total = cum[-1]
        if total == 0:
            return min(multiple_of, kmax)
        k = int(np.searchsorted(cum, request.energy * total * (1 - 1e-12))) + 1
        k = -(-k // multiple_of) * multiple_of
    else:
        assert request.param_ratio is not None
        m, n = request.shape
        budget = math.floor(request.param_ratio * m * n / (m + n))
        k = max(budget // multiple_of * multiple_of, multiple_of)
    return int(min(max(k, 1), kmax))


def choose_rank(
    spectrum: Any,
    shape: tuple[int, int],
    *,
    rank: int | None = None,
    energy: float | None = None,
    param_ratio: float | None = None,
    multiple_of: int = 1,
) -> int:
    """Choose a truncation rank from exactly one of ``rank``, ``energy``, ``param_ratio``.

    ``energy``: the smallest ``k`` with ``sum_{i<k} s_i^2 >= energy * sum s_i^2`` (rounded
    *up* to ``multiple_of``, so at least that energy is kept). ``param_ratio``: the largest
    ``k`` with ``k (m + n) <= param_ratio * m n`` (LoRD-style budget; rounded *down*, so
    the budget holds, but at least ``min(multiple_of, len(spectrum))``). Ranks that are
    multiples of 16 run much faster in BLAS, hence ``multiple_of``. The result is clipped to
    ``[1, len(spectrum)]``.

    Parameters
    ----------
    spectrum : array
        Singular values: 1-D, non-empty, finite, non-negative and descending (any
        library).
    shape : tuple of int
        ``(m, n)`` of the matrix, positive integers, for the parameter budget.
    rank, energy, param_ratio
        Exactly one: an int in ``[1, len(spectrum)]``, a fraction in ``(0, 1]``, a
        fraction in ``(0, 1)``.
    multiple_of : int
        Granularity of the result, ``>= 1``.

    Returns
    -------
    int

    Raises
    ------
    TypeError
        A non-real ``spectrum``; a non-integer ``rank``, ``multiple_of`` or entry of
        ``shape``; a non-real ``energy`` or ``param_ratio``.
    ValueError
        Unless exactly one criterion is given; a ``spectrum`` that is not 1-D, is empty,
        holds NaN/Inf or negative values or is not descending; a ``shape`` that is not
        two positive integers; values out of range.

    Examples
    --------
    >>> import numpy as np
    >>> choose_rank(np.array([3.0, 2.0, 1.0]), (3, 3), energy=0.9)
    2
    >>> choose_rank(np.ones(256), (512, 256), param_ratio=0.5, multiple_of=16)
    80
    """
    s = _check_spectrum(spectrum)
    request = _check_rank_request(rank, energy, param_ratio, multiple_of, shape, s.shape[0])
    return _rank_from_spectrum(s, request)


def randomized_svd(
    A: Any,
    rank: int,
    *,
    oversample: int = 10,
    power_iters: int = 2,
    rng: int | np.random.Generator | None = None,
) -> tuple[Any, Any, Any]:
    """Rank-``k`` truncated SVD by a randomized range finder with power iterations.

    HMT Algorithms 4.4 (subspace iteration, re-orthonormalised by QR after every product
    so that rounding does not collapse the basis) and 5.1: ``Q`` is an orthonormal basis
    of ``(A A^T)^q A Omega`` with Gaussian ``Omega`` of ``l = k + p`` columns, then
    ``Q^T A = U_B diag(s) V^T`` and ``U = Q U_B``, truncated to ``k``. Cost
    ``O((2q + 2) m n l)`` plus ``O((m + n) l^2)``.

    Guarantee. With ``tau_{k+1}^2 = sum_{j>k} sigma_j^2`` and ``Ahat = U diag(s) Vt``,
    deterministically ``||A - Ahat||_F^2 <= ||(I - Q Q^T) A||_F^2 + tau_{k+1}^2`` and
    ``||A - Ahat||_2 <= ||(I - Q Q^T) A||_2 + sigma_{k+1}``. For ``q = 0`` and
    ``p >= 2``, ``E ||(I - QQ^T) A||_F^2 <= (1 + k/(p-1)) tau_{k+1}^2`` (HMT Thm 10.5) and
    with probability ``>= 1 - 2 t^-p - exp(-u^2/2)``,
    ``||(I - QQ^T) A||_F <= (1 + t sqrt(3k/(p+1))) tau_{k+1} + u t e sqrt(k+p)/(p+1)
    sigma_{k+1}`` (HMT Thm 10.7); power iterations sharpen the spectral bound to
    ``E||(I-QQ^T)A||_2 <= [(1 + sqrt(k/(p-1))) sigma_{k+1}^{2q+1} + e sqrt(k+p)/p
    (sum_{j>k} sigma_j^{2(2q+1)})^{1/2}]^{1/(2q+1)}`` (HMT Cor 10.10).

    Parameters
    ----------
    A : array, scipy.sparse matrix or LinearOperator, shape (m, n)
        Real. Dense numpy or torch arrays compute on their library and device; sparse
        matrices and operators (``A @ X`` and ``A.T @ X``) compute in numpy.
    rank : int
        ``k``, ``1 <= k <= min(m, n)``.
    oversample : int
        ``p >= 0``; ``l = min(k + p, min(m, n))``.
    power_iters : int
        ``q >= 0``.
    rng : int, numpy.random.Generator or None
        Randomness of ``Omega``; the same seed gives the same result.

    Returns
    -------
    U : array, shape (m, k)
        Orthonormal columns.
    s : array, shape (k,)
        Approximate singular values, descending.
    Vt : array, shape (k, n)
        Orthonormal rows.

    Raises
    ------
    TypeError, ValueError
        For a non-float, empty or non-finite ``A``, or parameters out of range.

    Examples
    --------
    >>> import numpy as np
    >>> A = np.random.default_rng(0).standard_normal((60, 8)) @ np.diag(
    ...     [10, 5, 1, 0.1, 0, 0, 0, 0]) @ np.random.default_rng(1).standard_normal((8, 40))
    >>> U, s, Vt = randomized_svd(A, 4, rng=0)
    >>> bool(np.allclose(U * s @ Vt, A))
    True
    """
    dense = not (sp.issparse(A) or isinstance(A, LinearOperator))
    if dense:
        m, n = check_dense(A, "A")
    else:
        m, n = check_operator(A, "A", square=False)
        if A.dtype is not None and np.dtype(A.dtype).kind == "c":
            raise TypeError(f"A must be real, got {A.dtype}")
    k = check_rank(rank, "rank", min(m, n))
    p = check_positive_int(oversample, "oversample", minimum=0)
    q = check_positive_int(power_iters, "power_iters", minimum=0)
    gen = as_generator(rng)
    ell = min(k + p, m, n)
    omega = gen.standard_normal((n, ell))
    if dense and not isinstance(A, np.ndarray):
        xp = array_namespace(A)
        omega = like(omega, A, xp)
    else:
        xp = np
        if dense:
            omega = omega.astype(A.dtype, copy=False)
    Q = _orth(xp, A @ omega)
    for _ in range(q):
        Q = _orth(xp, A @ _orth(xp, A.T @ Q))
    B = (A.T @ Q).T
    Ub, s, Vt = xp.linalg.svd(B, full_matrices=False)
    return Q @ Ub[:, :k], s[:k], Vt[:k, :]


def _orth(xp: Any, Y: Any) -> Any:
    return xp.linalg.qr(Y)[0]


def _svd_truncate(M: Any, request: _RankRequest) -> tuple[Any, Any, Any, Any, int, float]:
    xp = array_namespace(M)
    U, s, Vt = xp.linalg.svd(M, full_matrices=False)
    k = _rank_from_spectrum(np.asarray(to_numpy(s), dtype=np.float64), request)
    total = float(xp.sum(s * s))
    kept = float(xp.sum(s[:k] * s[:k]))
    return xp, U[:, :k], s, Vt[:k, :], k, (kept / total if total > 0 else 1.0)


def _check_split(split: Any) -> None:
    if split not in _SPLITS:
        raise ValueError(f"split must be 'balanced', 'left' or 'right', got {split!r}")


def _split(xp: Any, U: Any, s: Any, Vt: Any, split: Split) -> tuple[Any, Any]:
    if split == "balanced":
        r = xp.sqrt(s)
        return U * r[None, :], r[:, None] * Vt
    if split == "left":
        return U * s[None, :], Vt
    return U, s[:, None] * Vt


def _check_weights(w: Any, name: str, size: int) -> None:
    check_dense(w, name, ndim=1)
    if int(w.shape[0]) != size:
        raise ValueError(f"{name} must have length {size}, got {int(w.shape[0])}")
    xp = array_namespace(w)
    if not bool(xp.all(w > 0)):
        raise ValueError(f"{name} must be strictly positive (a zero weight is not invertible)")


def weighted_svd(
    W: Any,
    *,
    row_weights: Any = None,
    col_weights: Any = None,
    rank: int | None = None,
    energy: float | None = None,
    param_ratio: float | None = None,
    multiple_of: int = 1,
    split: Split = "balanced",
) -> LowRankFactors:
    """Rank-``k`` minimiser of the diagonally weighted error ``||D_r (W - X) D_c||_F``.

    With ``D_r = diag(row_weights)``, ``D_c = diag(col_weights)`` (positive; identity when
    omitted) and ``D_r W D_c = U S V^T``, the minimiser over rank-``k`` ``X`` is
    ``X = D_r^{-1} U_k S_k V_k^T D_c^{-1}``, exactly (Eckart-Young after the invertible
    change of variables). Fisher-weighted SVD (FWSVD) is ``row_weights = sqrt(F_i)`` with
    ``F_i = sum_j (dL/dW_ij)^2`` summed over a task's data. Without weights this is the
    plain truncated SVD. Cost: one dense SVD, ``O(m n min(m, n))``.

    Array-generic (numpy, torch). Inputs are not modified.

    Parameters
    ----------
    W : array, shape (m, n)
    row_weights : array, shape (m,), optional
    col_weights : array, shape (n,), optional
    rank, energy, param_ratio, multiple_of
        Rank selection, see :func:`choose_rank` (exactly one criterion); ``energy`` is
        the fraction of the *weighted* energy kept.
    split : {"balanced", "left", "right"}
        Where the singular values go: ``sqrt(S)`` on both factors (default), all on
        ``left``, or all on ``right``.

    Returns
    -------
    LowRankFactors
        ``spectrum``: singular values of ``D_r W D_c``.

    Raises
    ------
    TypeError, ValueError
        For a non-float, empty or non-finite ``W``, non-positive or mis-sized weights,
        an unknown ``split`` and the rank-selection errors of :func:`choose_rank` (with
        ``rank <= min(m, n)``), all before the SVD.

    Examples
    --------
    >>> import numpy as np
    >>> W = np.random.default_rng(0).standard_normal((6, 5))
    >>> f = weighted_svd(W, row_weights=np.arange(1.0, 7.0), rank=5)
    >>> bool(np.allclose(f.matrix(), W))
    True
    """
    m, n = check_dense(W, "W")
    request = _check_rank_request(rank, energy, param_ratio, multiple_of, (m, n), min(m, n))
    _check_split(split)
    if row_weights is not None:
        _check_weights(row_weights, "row_weights", m)
    if col_weights is not None:
        _check_weights(col_weights, "col_weights", n)
    M = W
    if row_weights is not None:
        M = row_weights[:, None] * M
    if col_weights is not None:
        M = M * col_weights[None, :]
    xp, U, s, Vt, k, kept = _svd_truncate(M, request)
    left, right = _split(xp, U, s[:k], Vt, split)
    if row_weights is not None:
        left = left / row_weights[:, None]
    if col_weights is not None:
        right = right / col_weights[None, :]
    return LowRankFactors(left, right, s, kept, {"method": "weighted_svd"})


def whitened_svd(
    W: Any,
    C: Any = None,
    *,
    whitening: Whitening | None = None,
    rank: int | None = None,
    energy: float | None = None,
    param_ratio: float | None = None,
    multiple_of: int = 1,
    split: Split = "balanced",
    damp: float = 0.01,
    ridge: float = 0.0,
    method: WhitenMethod = "cholesky",
    clamp: float | None = None,
) -> LowRankFactors:
    """Activation-aware truncated SVD: the rank-``k`` minimiser of ``||(W - X) F||_F``.

    For a layer ``y = W x`` with input second moment ``C = E[x x^T] = F F^T`` the expected
    output error of ``X`` is ``E||(W - X) x||^2 = ||(W - X) F||_F^2``. With
    ``W F = U S V^T``, the exact minimiser over rank ``k`` is
    ``X = U_k S_k V_k^T F^{-1}`` (whiten, truncate, un-whiten: SVD-LLM, MoDeGPT type III,
    EoRA's eigenspace projection when applied to an error matrix). The singular values
    of ``W F`` are truncation-aware: ``||(W - X) F||_F^2 = sum_{i>k} s_i^2``.

    ``F`` comes from :func:`numlib.calibration.whiten` (damping, ridge and clamping guard
    a singular ``C``); pass either ``C`` or a precomputed ``whitening``. The optimality
    holds for the matrix ``F F^T`` actually used (``whitening.covariance``).

    Array-generic (numpy, torch). Inputs are not modified. Cost: the whitening
    (``O(n^3)``) plus one SVD of ``m x n``.

    Parameters
    ----------
    W : array, shape (m, n)
    C : array, shape (n, n), optional
        Input second moment, e.g. ``CalibrationStats.second_moment()``.
    whitening : Whitening, optional
        A factor of ``C`` (instead of ``C``).
    rank, energy, param_ratio, multiple_of, split
        As in :func:`weighted_svd`; energy is the fraction of ``||W F||_F^2`` kept.
    damp, ridge, method, clamp
        Passed to :func:`~numlib.calibration.whiten` when ``C`` is given.

    Returns
    -------
    LowRankFactors
        ``spectrum``: singular values of ``W F``; ``info["whitening"]``: the factor used.

    Raises
    ------
    TypeError, ValueError
        Unless exactly one of ``C`` and ``whitening`` is given, for shape mismatches,
        an unknown ``split``, and for the errors of :func:`~numlib.calibration.whiten`
        and :func:`choose_rank` (with ``rank <= min(m, n)``); the rank selection and
        ``split`` are checked before the whitening and the SVD.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> W, X = rng.standard_normal((8, 6)), rng.standard_normal((200, 6))
    >>> f = whitened_svd(W, X.T @ X / 200, rank=3, damp=0.0)
    >>> plain = weighted_svd(W, rank=3)
    >>> def err(A): return float(np.linalg.norm(X @ (W - A).T))
    >>> err(f.matrix()) <= err(plain.matrix())
    True
    """
    m, n = check_dense(W, "W")
    request = _check_rank_request(rank, energy, param_ratio, multiple_of, (m, n), min(m, n))
    _check_split(split)
    if (C is None) == (whitening is None):
        raise ValueError("give exactly one of C and whitening")
    if whitening is None:
        if int(getattr(C, "shape", (0,))[0]) != n:
            raise ValueError(f"C must be ({n}, {n}) to match W's {n} columns")
        whitening = whiten(C, damp=damp, ridge=ridge, method=method, clamp=clamp)
    elif not isinstance(whitening, Whitening):
        raise TypeError(f"whitening must be a Whitening, got {type(whitening).__name__}")
    F = whitening.factor
    if tuple(F.shape) != (n, n):
        raise ValueError(f"whitening factor must be ({n}, {n}), got {tuple(F.shape)}")
    xp, U, s, Vt, k, kept = _svd_truncate(W @ F, request)
    left, right = _split(xp, U, s[:k], Vt, split)
    return LowRankFactors(
        left,
        right @ whitening.inverse,
        s,
        kept,
        {"method": "whitened_svd", "whitening": whitening},
    )


def dct_basis(n: int, k: int | None = None) -> np.ndarray:
    """First ``k`` vectors of the orthonormal DCT-II basis of ``R^n``, as columns.

    Column ``j`` is ``sqrt(2/n) c_j cos(pi (2 i + 1) j / (2 n))``, ``c_0 = 1/sqrt(2)``,
    ``c_j = 1`` otherwise: ``D^T D = I_k``, and ``D^T x`` are the ``k`` lowest-frequency
    coefficients of ``scipy.fft.dct(x, norm="ortho")``. A data-independent basis: no SVD
    is needed to project onto it. numpy (float64).

    Parameters
    ----------
    n : int
        Dimension, ``>= 1``.
    k : int, optional
        Number of vectors, ``1 <= k <= n``; default ``n``.

    Returns
    -------
    numpy.ndarray, shape (n, k)

    Examples
    --------
    >>> import numpy as np
    >>> D = dct_basis(8, 3)
    >>> bool(np.allclose(D.T @ D, np.eye(3)))
    True
    """
    n = check_positive_int(n, "n")
    k = n if k is None else check_rank(k, "k", n)
    return _dct_columns(n, np.arange(k))


def _dct_columns(n: int, freqs: np.ndarray) -> np.ndarray:
    i = np.arange(n)[:, None]
    D = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * i + 1) * freqs[None, :] / (2 * n))
    D[:, freqs == 0] /= np.sqrt(2.0)
    return D


def dct_project(
    W: Any,
    rank: int,
    *,
    select: Literal["energy", "lowest"] = "energy",
) -> LowRankFactors:
    """SVD-free rank-``k`` approximation ``W ~ (W D_S) D_S^T`` on ``k`` DCT-II vectors.

    ``D`` is the orthonormal DCT-II basis of the input space (:func:`dct_basis`) and ``S``
    a set of ``k`` frequencies: the ``k`` of largest coefficient energy
    ``||W d_j||_2`` (``select="energy"``, which by Parseval minimises ``||W - W P_S||_F``
    over all ``k``-sets of DCT vectors) or the ``k`` lowest (``"lowest"``, a fixed,
    data-independent projection). Error ``||W - X||_F^2 = sum_{j not in S} ||W d_j||^2``,
    never below the optimal SVD error; it is close when the rows of ``W`` are smooth.
    ``left = W D_S`` (``m x k``), ``right = D_S^T`` (``k x n``).

    Cost: numpy computes ``W D`` with a fast DCT, ``O(m n log n)`` (no SVD); other arrays
    (torch) multiply by the dense basis, ``O(m n^2)``, on their library and device.

    Parameters
    ----------
    W : array, shape (m, n)
    rank : int
        ``1 <= k <= n``.
    select : {"energy", "lowest"}

    Returns
    -------
    LowRankFactors
        ``spectrum``: the coefficient-column norms ``||W d_j||``, descending (the
        analogue of singular values for this fixed basis).

    Examples
    --------
    >>> import numpy as np
    >>> t = np.linspace(0, 1, 64)
    >>> W = np.stack([np.cos(np.pi * f * t) for f in (1.0, 2.0, 3.0)])
    >>> f = dct_project(W, 8)
    >>> bool(np.linalg.norm(W - f.matrix()) < 0.05 * np.linalg.norm(W))
    True
    """
    n = check_dense(W, "W")[1]
    k = check_rank(rank, "rank", n)
    if select not in ("energy", "lowest"):
        raise ValueError(f"select must be 'energy' or 'lowest', got {select!r}")
    if isinstance(W, np.ndarray):
        xp = np
        coeffs = scipy.fft.dct(W, type=2, norm="ortho", axis=1)  # = W @ D, no D formed
    else:
        xp = array_namespace(W)
        coeffs = W @ like(dct_basis(n), W, xp)
    norms = xp.sqrt(xp.sum(coeffs * coeffs, axis=0))
    order = xp.argsort(-norms) if select == "energy" else xp.arange(n, **device_kw(W))
    chosen = order[:k]
    total = float(xp.sum(norms * norms))
    kept = float(xp.sum(norms[chosen] ** 2))
    left = xp.take(coeffs, chosen, axis=1)
    right = like(_dct_columns(n, np.asarray(to_numpy(chosen))).T.copy(), W, xp)
    spectrum = xp.sort(norms)[::-1] if xp is np else xp.flip(xp.sort(norms))
    return LowRankFactors(
        left,
        right,
        spectrum,
        kept / total if total > 0 else 1.0,
        {"method": "dct_project", "frequencies": chosen},
    )
