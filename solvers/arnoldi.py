"""Orthogonalisation and the Hessenberg least-squares problem shared by Krylov methods.

GMRES, flexible and deflated variants, and GCRO-DR (subspace recycling) all build an
orthonormal basis one vector at a time and then minimise ``||beta e1 - H y||`` over a
growing upper-Hessenberg ``H``. These two pieces live here once.

Bases are stored as the *rows* of a ``(capacity, n)`` array so that projecting a
vector onto the first ``k`` basis vectors is one contiguous matrix-vector product.
"""

from __future__ import annotations

import functools
import math
from types import ModuleType
from typing import Any, Literal

import numpy as np
from scipy.linalg import get_blas_funcs, lstsq, solve_triangular

__all__ = [
    "REORTHOGONALIZE",
    "HessenbergLeastSquares",
    "check_reorthogonalize",
    "orthogonalize",
    "orthogonalize_row_twice",
    "subtract_combination",
]

# DGKS threshold: reorthogonalise when a pass keeps less than 1/sqrt(2) of the norm.
REORTHOGONALIZE_BELOW = 1 / np.sqrt(2)
Reorthogonalize = Literal["ifneeded", "always", "never"]
REORTHOGONALIZE: tuple[Reorthogonalize, ...] = ("ifneeded", "always", "never")


def orthogonalize(
    xp: ModuleType,
    basis: Any,
    k: int,
    w: Any,
    norm: float | None = None,
    reorthogonalize: Reorthogonalize = "ifneeded",
) -> tuple[np.ndarray, float]:
    """Remove from ``w`` its components along the first ``k`` rows of ``basis``.

    Classical Gram-Schmidt with one selective reorthogonalisation (the
    Daniel-Gragg-Kaufman-Stewart criterion): a second block projection runs only
    when the first removed more than ``1 - 1/sqrt(2)`` of ``w``'s norm, the
    cancellation that costs classical Gram-Schmidt its orthogonality. Twice is
    enough (Giraud, Langou, Rozloznik 2005), so the result is orthogonal to
    working precision, and steps without cancellation pay for one pass.

    ``reorthogonalize`` chooses the second pass as PETSc's
    ``-ksp_gmres_cgs_refinement_type`` does: ``"ifneeded"`` (the criterion
    above, the default), ``"always"`` (CGS2) or ``"never"`` (one pass, PETSc's
    default for its GMRES family). With ``"never"`` the loss of orthogonality
    grows with the condition number of the basis block ``[basis[:k]; w]``; Arnoldi
    still converges in practice, and each step reads the basis half as often when
    the criterion would fire on most steps, as it does on Krylov spaces that
    capture ``A w`` well.

    Parameters
    ----------
    xp : module
        Array namespace of ``basis`` and ``w``.
    basis : array, shape (capacity, n)
        Rows ``0..k-1`` are orthonormal.
    k : int
        Number of rows to orthogonalise against (0 allowed).
    w : array, shape (n,)
        Overwritten with the orthogonalised vector (not normalised).
    norm : float, optional
        ``||w||`` on entry, when the caller already has it (read only by
        ``"ifneeded"``).
    reorthogonalize : {"ifneeded", "always", "never"}
        When to run the second pass.

    Returns
    -------
    coefficients : numpy.ndarray, shape (k,)
        ``basis[:k]^H w`` of the original ``w``, summed over both passes.
    norm : float
        2-norm of the orthogonalised ``w``.

    References
    ----------
    .. [1] J. W. Daniel, W. B. Gragg, L. Kaufman, G. W. Stewart,
       "Reorthogonalization and stable algorithms for updating the Gram-Schmidt
       QR factorization", Math. Comp. 30 (1976).
    .. [2] L. Giraud, J. Langou, M. Rozloznik, "The loss of orthogonality in the
       Gram-Schmidt orthogonalization process", Comput. Math. Appl. 50 (2005).
    """
    coefficients = np.zeros(k, dtype=_host_dtype(w))
    if k == 0:
        return coefficients, _norm(xp, w) if norm is None else norm
    rows = basis[:k]
    adjoint = xp.conj(rows) if _is_complex(w) else rows
    before = norm
    if before is None and reorthogonalize == "ifneeded":
        before = _norm(xp, w)  # only the criterion reads it: one reduction saved otherwise
    for second in (False, True):
        h = adjoint @ w
        subtract_combination(xp, w, h, rows)
        coefficients += _to_host(h)
        after = _norm(xp, w)
        if second or reorthogonalize == "never":
            break
        if reorthogonalize == "ifneeded" and after > REORTHOGONALIZE_BELOW * before:
            break
        before = after
    return coefficients, after


def orthogonalize_row_twice(xp: ModuleType, basis: Any, k: int) -> tuple[np.ndarray, float, float]:
    """Orthogonalise row ``k`` of ``basis`` against rows ``0..k-1`` by two CGS passes.

    Classical Gram-Schmidt twice (CGS2: orthogonal to working precision, Giraud,
    Langou, Rozloznik 2005) with two reductions, as one pass with its norm
    costs: each pass multiplies rows ``0..k`` by row ``k``, so the vector's own
    squared norm arrives with its coefficients, and the final norm follows by
    Pythagoras from the second pass, whose coefficients are at rounding level.

    Parameters
    ----------
    xp : module
        Array namespace of ``basis``.
    basis : array, shape (capacity, n)
        Rows ``0..k-1`` are orthonormal; row ``k`` is overwritten with its
        orthogonalised (not normalised) self.
    k : int
        Index of the row to orthogonalise.

    Returns
    -------
    coefficients : numpy.ndarray, shape (k,)
        ``basis[:k]^H w`` of the original row ``w``, summed over both passes.
    norm : float
        2-norm of the orthogonalised row.
    norm_before : float
        2-norm of the original row.
    """
    rows, w = basis[: k + 1], basis[k]
    coefficients = np.zeros(k, dtype=_host_dtype(w))
    squares = []
    for _ in range(2):
        # conj makes a copy: taken per pass, so that it holds the current row k
        products = (xp.conj(rows) if _is_complex(w) else rows) @ w
        if k:
            subtract_combination(xp, w, products[:k], basis[:k])
        host = _to_host(products)
        h = host[:k]
        coefficients += h
        squares.append(float(host[k].real))
    remaining = squares[1] - float(np.vdot(h, h).real)
    return coefficients, math.sqrt(max(remaining, 0.0)), math.sqrt(max(squares[0], 0.0))


def check_reorthogonalize(value: Any, name: str = "reorthogonalize") -> Reorthogonalize:
    """Validate a ``reorthogonalize`` argument, naming it ``name`` in the error."""
    if value not in REORTHOGONALIZE:
        raise ValueError(f"{name} must be one of {REORTHOGONALIZE}, got {value!r}")
    return value


def subtract_combination(xp: ModuleType, w: Any, coefficients: Any, rows: Any) -> None:
    """Overwrite ``w`` with ``w - coefficients @ rows``, reading ``rows`` once.

    The expression ``w -= coefficients @ rows`` makes a temporary and streams it
    twice more; on a basis too large for the caches that is a third more memory
    traffic than the product itself. Here numpy arrays go through one BLAS
    ``gemv`` (``w`` a vector) or ``gemm`` (``w`` a block of rows) with
    ``beta = 1`` into ``w``, torch tensors through ``addmv_``/``addmm_``, and a
    namespace that defines ``subtract_combination`` (the row-distributed arrays
    of :mod:`solvers.petsc.arrays`) through its own; anything else, and rows of
    another dtype than ``w`` (single-precision rows updating a double ``w``),
    through the expression.

    Parameters
    ----------
    xp : module
        Array namespace of ``w`` and ``rows``.
    w : array, shape (n,) or (p, n)
        Updated in place.
    coefficients : array, shape (k,) or (p, k)
        In the namespace of ``w`` (e.g. ``rows @ w``).
    rows : array, shape (k, n)
    """
    if isinstance(w, np.ndarray):
        _blas_subtract(w, np.asarray(coefficients), rows)
    elif hasattr(xp, "subtract_combination"):
        xp.subtract_combination(w, coefficients, rows)
    elif hasattr(w, "addmv_") and w.dtype == rows.dtype:  # torch
        if w.ndim == 1:
            w.addmv_(rows.mT, coefficients, alpha=-1)
        else:
            w.addmm_(coefficients, rows, alpha=-1)
    else:
        w -= coefficients @ rows


def _blas_subtract(w: np.ndarray, coefficients: np.ndarray, rows: np.ndarray) -> None:
    eligible = (
        w.dtype.char in "fdFD"
        and rows.dtype == w.dtype
        and w.flags.c_contiguous
        and rows.flags.c_contiguous
        and rows.shape[0] > 0
    )
    if not eligible:
        w -= coefficients @ rows
        return
    coefficients = coefficients.astype(w.dtype, copy=False)
    # Transposes of C-ordered rows are Fortran-ordered: BLAS reads them without copies.
    if w.ndim == 1:  # w^T -= rows^T c
        out = _blas("gemv", w.dtype)(-1.0, rows.T, coefficients, beta=1.0, y=w, overwrite_y=True)
    else:  # w^T -= rows^T coefficients^T
        out = _blas("gemm", w.dtype)(-1.0, rows.T, coefficients.T, beta=1.0, c=w.T,
                                     overwrite_c=True).T  # fmt: skip
    if not np.may_share_memory(out, w):  # f2py copied instead of writing in place
        w[...] = out


@functools.cache
def _blas(name: str, dtype: np.dtype) -> Any:
    return get_blas_funcs(name, dtype=dtype)


def _norm(xp: ModuleType, w: Any) -> float:
    return float(abs(_scalar(xp.linalg.vector_norm(w))))


class HessenbergLeastSquares:
    """Progressive QR factorisation of an upper-Hessenberg matrix by Givens rotations.

    Solves ``min_y ||beta e1 - H y||`` where columns of the ``(m+1) x m`` Hessenberg
    matrix ``H`` arrive one at a time from Arnoldi. After each column the current
    least-squares residual norm is known at no extra cost, which is the GMRES
    residual norm ``||b - A x_k||`` in exact arithmetic.

    Parameters
    ----------
    capacity : int
        Largest number of columns ``m``.
    beta : float
        Norm of the starting residual.
    dtype : numpy dtype
        Real or complex scalar type of ``H``.
    rounding : float, optional
        Relative accuracy of the columns (default: the machine epsilon of
        ``dtype``); larger when they come from single-precision vectors.
    """

    def __init__(
        self, capacity: int, beta: float, dtype: Any, rounding: float | None = None
    ) -> None:
        self.rounding = float(np.finfo(dtype).eps) if rounding is None else rounding
        self._r = np.zeros((capacity + 1, capacity), dtype=dtype)
        self._g = np.zeros(capacity + 1, dtype=dtype)
        self._g[0] = beta
        self._cos = np.zeros(capacity, dtype=dtype)
        self._sin = np.zeros(capacity, dtype=dtype)
        self.columns = 0

    def append(self, h: np.ndarray, subdiagonal: float) -> float:
        """Add the next Hessenberg column and return the new residual norm.

        Parameters
        ----------
        h : numpy.ndarray, shape (j+1,)
            Entries ``H[0..j, j]`` of column ``j`` (the Arnoldi coefficients).
        subdiagonal : float
            ``H[j+1, j]``, the norm of the new basis vector before normalisation.
        """
        j = self.columns
        col = self._r[: j + 2, j]
        col[: j + 1] = h
        col[j + 1] = subdiagonal
        for i in range(j):
            upper = self._cos[i] * col[i] + self._sin[i] * col[i + 1]
            col[i + 1] = -np.conj(self._sin[i]) * col[i] + np.conj(self._cos[i]) * col[i + 1]
            col[i] = upper
        c, s, radius = _givens(col[j], col[j + 1])
        self._cos[j], self._sin[j] = c, s
        col[j], col[j + 1] = radius, 0.0
        self._g[j + 1] = -np.conj(s) * self._g[j]
        self._g[j] = c * self._g[j]
        self.columns = j + 1
        return float(abs(self._g[j + 1]))

    def solve(self) -> np.ndarray:
        """Return the minimiser ``y`` over the columns appended so far.

        A diagonal entry of the triangular factor at rounding level (below
        ``k rounding`` times the largest) means ``H`` is numerically rank
        deficient (the operator is singular on the Krylov space); back
        substitution would then divide by rounding noise, so the minimum-norm
        least-squares solution with singular values below that level dropped is
        returned instead.
        """
        k = self.columns
        triangle, rhs = self._r[:k, :k], self._g[:k]
        diagonal = np.abs(np.diagonal(triangle))
        level = k * self.rounding
        if k == 0 or diagonal.min() > level * diagonal.max():
            return solve_triangular(triangle, rhs, lower=False)
        return lstsq(triangle, rhs, cond=level)[0]


def _givens(a: complex, b: complex) -> tuple[Any, Any, Any]:
    """Rotation with ``[[c, s], [-conj(s), conj(c)]] @ [a, b] = [r, 0]``, ``c`` real."""
    if b == 0:
        return 1.0, 0.0, a
    if a == 0:
        return 0.0, np.conj(b) / abs(b), abs(b)
    scale = np.hypot(abs(a), abs(b))
    c = abs(a) / scale
    phase = a / abs(a)
    s = phase * np.conj(b) / scale
    return c, s, phase * scale


def _is_complex(a: Any) -> bool:
    return "complex" in str(a.dtype)


def _host_dtype(a: Any) -> type:
    return np.complex128 if _is_complex(a) else np.float64


def _to_host(a: Any) -> np.ndarray:
    from numlib.backend import to_numpy

    return to_numpy(a)


def _scalar(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
