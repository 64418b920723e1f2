"""Kronecker products and sums of dense factors as operators, applied factor by factor.

See :mod:`numlib.kron` for the vec convention and the array rules.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

from numlib.backend import array_namespace, is_floating
from numlib.validate import check_finite, check_operator

__all__ = ["KroneckerOperator", "KroneckerSum"]


# --------------------------------------------------------------------------- helpers


def _check_factors(factors: Any, name: str, *, square: bool) -> tuple[ModuleType, list[Any]]:
    """Validate a list of dense 2-D factors; return their namespace and the factors."""
    if not isinstance(factors, list | tuple):
        # A bare ndarray is also a sequence (of rows); refusing it avoids a confusing
        # "factors[0] must be 2-D" for the common mistake of passing one matrix.
        raise TypeError(
            f"{name} must be a list or tuple of 2-D arrays, got {type(factors).__name__}"
        )
    if len(factors) == 0:
        raise ValueError(f"{name} must not be empty")
    for i, f in enumerate(factors):
        if (
            isinstance(f, LinearOperator)
            or sp.issparse(f)
            or not hasattr(f, "shape")
            or not hasattr(f, "dtype")
        ):
            raise TypeError(f"{name}[{i}] must be a dense 2-D array, got {type(f).__name__}")
    try:
        xp = array_namespace(*factors)
    except TypeError:
        kinds = sorted({type(f).__module__.partition(".")[0] for f in factors})
        raise TypeError(f"{name} must all come from one array library, got {kinds}") from None
    for i, f in enumerate(factors):
        check_operator(f, f"{name}[{i}]", square=square)
    return xp, list(factors)


def _result_type(xp: ModuleType, *dtypes: Any) -> Any:
    return np.result_type(*dtypes) if xp is np else xp.result_type(*dtypes)


def _astype(xp: ModuleType, a: Any, dtype: Any) -> Any:
    if a.dtype == dtype:
        return a
    return a.astype(dtype) if xp is np else xp.astype(a, dtype)


def _is_complex(xp: ModuleType, dtype: Any) -> bool:
    return bool(xp.isdtype(dtype, "complex floating"))


def _device(a: Any) -> Any:
    if isinstance(a, np.ndarray):
        return None
    from array_api_compat import device

    return device(a)


def _arange(xp: ModuleType, n: int, like: Any) -> Any:
    return np.arange(n) if xp is np else xp.arange(n, device=_device(like))


def _diag(xp: ModuleType, a: Any) -> Any:
    return np.diagonal(a) if xp is np else xp.linalg.diagonal(a)


def _host(v: Any) -> float:
    """Return a 0-d array as a Python float, detached from any autograd graph (checks only)."""
    return float(v.detach()) if hasattr(v, "detach") else float(v)


def _outer(xp: ModuleType, vectors: Sequence[Any], *, add: bool) -> Any:
    """C-order flattened outer product (``add=False``) or outer sum of 1-D arrays."""
    out = vectors[0]
    for v in vectors[1:]:
        pair = out[:, None] + v[None, :] if add else out[:, None] * v[None, :]
        out = xp.reshape(pair, (-1,))
    return out


def _kron_dense(xp: ModuleType, a: Any, b: Any) -> Any:
    (m1, n1), (m2, n2) = a.shape, b.shape
    return xp.reshape(a[:, None, :, None] * b[None, :, None, :], (m1 * m2, n1 * n2))


def _mode_products(xp: ModuleType, mats: Sequence[Any], x: Any) -> Any:
    """Return ``(M_1 ⊗ ... ⊗ M_D) x`` for ``x`` of shape ``(N,)`` or ``(N, k)`` (C-order vec).

    ``x`` is viewed as the tensor ``(n_1, ..., n_D[, k])`` and factor d multiplies
    axis d, with the axes before it (already of sizes ``m_e``) as a batch and the
    axes after it as columns (Saatçi 2012, sec. 5.2.3). Every intermediate stays
    C-contiguous, so reshapes are free and there are no transposes; the first and
    the last mode of a vector are single GEMMs. Cost per column:
    ``Σ_d m_d n_d Π_{e<d} m_e Π_{e>d} n_e`` multiply-adds, ``O(N Σ n_d)`` for square
    factors; the N x N matrix is never formed.
    """
    k = 1 if x.ndim == 1 else x.shape[1]
    after = x.shape[0] * k
    before, y = 1, x
    for m in mats:
        rows, n = m.shape
        after //= n
        if before == 1:
            y = m @ xp.reshape(y, (n, after))
        elif after == 1:
            y = xp.reshape(y, (before, n)) @ m.T
        else:
            y = m @ xp.reshape(y, (before, n, after))  # batched: one GEMM per leading index
        before *= rows
    return xp.reshape(y, (before,) if x.ndim == 1 else (before, k))


def _sum_products(xp: ModuleType, mats: Sequence[Any], x: Any) -> Any:
    """``(M_1 ⊕ ... ⊕ M_D) x``: factor d applied along tensor axis d, terms summed."""
    total = x.shape[0]
    k = 1 if x.ndim == 1 else x.shape[1]
    before, out = 1, None
    for m in mats:
        n = m.shape[0]
        after = total // (before * n) * k
        if after == 1:
            # Last axis and one column: one GEMM rather than `before` matrix-vector products.
            term = xp.reshape(xp.reshape(x, (before, n)) @ m.T, x.shape)
        else:
            term = xp.reshape(m @ xp.reshape(x, (before, n, after)), x.shape)
        out = term if out is None else out + term
        before *= n
    return out


# --------------------------------------------------------------------------- operators


class _KroneckerBase(LinearOperator):
    """Shared machinery: factor validation, checked array-generic application."""

    _square_factors = False

    def __init__(self, factors: Sequence[Any]) -> None:
        xp, checked = _check_factors(factors, "factors", square=self._square_factors)
        self._setup(xp, checked)

    def _setup(self, xp: ModuleType, factors: list[Any]) -> None:
        dtype = _result_type(xp, *(f.dtype for f in factors))
        # torch cannot multiply float32 by float64, so factors share one dtype.
        self._factors = tuple(_astype(xp, f, dtype) for f in factors)
        self._xp = xp
        rows = math.prod(int(f.shape[0]) for f in factors)
        cols = math.prod(int(f.shape[1]) for f in factors)
        # scipy's __init__ would run np.dtype() on a torch dtype; it gets None instead.
        super().__init__(dtype if xp is np else None, (rows, cols))
        self.dtype = dtype

    @classmethod
    def _trusted(cls, xp: ModuleType, factors: list[Any]) -> Any:
        # Transposes and adjoints of checked factors need no second pass over them.
        op = cls.__new__(cls)
        op._setup(xp, factors)
        return op

    @property
    def factors(self) -> tuple[Any, ...]:
        """The factors ``(A_1, ..., A_D)``, referenced (not copied) from the caller."""
        return self._factors

    def _apply(self, x: Any, *, adjoint: bool) -> Any:
        raise NotImplementedError

    def _checked(self, x: Any, name: str, *, adjoint: bool, ndim: int | None) -> Any:
        rows = self.shape[0] if adjoint else self.shape[1]
        x = _check_rhs(self._xp, self._factors[0], x, name, rows, ndim=ndim)
        dtype = _result_type(self._xp, self.dtype, x.dtype)
        # One dtype for factors and vector: torch refuses mixed-precision matmul.
        x = _astype(self._xp, x, dtype)
        if dtype != self.dtype:
            op = self._trusted(self._xp, [_astype(self._xp, f, dtype) for f in self._factors])
            return op._apply(x, adjoint=adjoint)
        return self._apply(x, adjoint=adjoint)

    # Public scipy entry points, overridden so that they neither convert torch arrays
    # to numpy nor skip the argument checks.
    def matvec(self, x: Any) -> Any:
        """Return ``K @ x`` for ``x`` of shape ``(N,)`` or ``(N, 1)`` (same shape out)."""
        if getattr(x, "ndim", None) == 2 and x.shape[1] != 1:
            raise ValueError(f"x must have shape ({self.shape[1]},) or ({self.shape[1]}, 1)")
        return self._checked(x, "x", adjoint=False, ndim=None)

    def matmat(self, X: Any) -> Any:
        """Return ``K @ X`` for ``X`` of shape ``(N, k)``."""
        return self._checked(X, "X", adjoint=False, ndim=2)

    def rmatvec(self, x: Any) -> Any:
        """Return ``K^H @ x`` for ``x`` of shape ``(M,)`` or ``(M, 1)``."""
        if getattr(x, "ndim", None) == 2 and x.shape[1] != 1:
            raise ValueError(f"x must have shape ({self.shape[0]},) or ({self.shape[0]}, 1)")
        return self._checked(x, "x", adjoint=True, ndim=None)

    def rmatmat(self, X: Any) -> Any:
        """Return ``K^H @ X`` for ``X`` of shape ``(M, k)``."""
        return self._checked(X, "X", adjoint=True, ndim=2)

    def dot(self, x: Any) -> Any:
        """``K @ x`` for an array; scipy's operator product for a LinearOperator or scalar."""
        if isinstance(x, LinearOperator) or np.isscalar(x):
            return super().dot(x)
        return self._checked(x, "x", adjoint=False, ndim=None)

    def __matmul__(self, other: Any) -> Any:
        if isinstance(other, LinearOperator) or np.isscalar(other):
            return super().__matmul__(other)
        return self._checked(other, "x", adjoint=False, ndim=None)

    # scipy's internal hooks (its own public methods are replaced above).
    def _matvec(self, x: Any) -> Any:
        return self._apply(x, adjoint=False)

    def _matmat(self, X: Any) -> Any:
        return self._apply(X, adjoint=False)

    def _rmatvec(self, x: Any) -> Any:
        return self._apply(x, adjoint=True)

    def _rmatmat(self, X: Any) -> Any:
        return self._apply(X, adjoint=True)

    def _transpose(self) -> Any:
        return self._trusted(self._xp, [f.T for f in self._factors])

    def _adjoint(self) -> Any:
        return self._trusted(self._xp, list(self._adjoint_factors()))

    def _adjoint_factors(self) -> tuple[Any, ...]:
        if _is_complex(self._xp, self.dtype):
            return tuple(self._xp.conj(f).T for f in self._factors)
        return tuple(f.T for f in self._factors)


class KroneckerOperator(_KroneckerBase):
    r"""Kronecker product ``K = A_1 ⊗ A_2 ⊗ ... ⊗ A_D`` of dense factors, never formed.

    ``K`` has shape ``(Π m_d, Π n_d)`` for factors ``A_d`` of shape ``(m_d, n_d)``,
    which may be rectangular and need not be symmetric (derivative operators such as
    ``D_1 ⊗ K_2`` are Kronecker operators too). Entry-wise ``K`` equals
    ``functools.reduce(np.kron, factors)``; with the C-order vec used throughout,
    ``(A ⊗ B) vec(X) = vec(A X B^T)`` (see the module docstring).

    ``matvec``/``matmat`` reshape ``x`` to the tensor ``(n_1, ..., n_D[, k])`` and apply
    each factor along its axis, one GEMM per factor (Saatçi 2012, sec. 5.2.3):
    ``O(N Σ_d n_d)`` work per column for square factors (``N = Π n_d``), ``O(N)``
    extra memory, against ``O(N^2)`` for the dense matrix.

    Parameters
    ----------
    factors : list or tuple of 2-D arrays
        ``[A_1, ..., A_D]``, ``D >= 1``, all numpy or all from one other array library
        (torch, cupy), real or complex floating point, finite and non-empty. They are
        referenced, not copied (a factor of another dtype is converted to the common
        one); later changes to them change the operator.

    Attributes
    ----------
    factors : tuple of arrays
    shape : tuple of int
    dtype : dtype
        Common dtype of the factors; for non-numpy factors the library's own dtype.

    Raises
    ------
    TypeError
        If ``factors`` is not a list/tuple, a factor is not a dense array (sparse
        matrices and LinearOperators are refused), has an integer or boolean dtype,
        or the factors mix array libraries.
    ValueError
        If ``factors`` is empty or a factor is not 2-D, is empty or holds NaN/Inf.

    Notes
    -----
    Every method is array-generic except scipy's operator arithmetic (``K + L``,
    ``2 * K``, products with other LinearOperators) and scipy's solvers, which need
    numpy factors. Vectors passed to ``matvec`` and friends are checked (library,
    shape, floating dtype, finiteness) before any work, and never modified.

    Examples
    --------
    >>> import numpy as np
    >>> A, B = np.array([[1.0, 2.0], [3.0, 4.0]]), np.diag([1.0, 10.0, 100.0])
    >>> K = KroneckerOperator([A, B])
    >>> X = np.arange(6.0).reshape(2, 3)
    >>> bool(np.allclose(K @ X.ravel(), (A @ X @ B.T).ravel()))
    True
    >>> bool(np.allclose(K.todense(), np.kron(A, B)))
    True
    """

    def _apply(self, x: Any, *, adjoint: bool) -> Any:
        mats = self._adjoint_factors() if adjoint else self._factors
        return _mode_products(self._xp, mats, x)

    def diagonal(self) -> Any:
        """Return the main diagonal of ``K`` (length ``min(M, N)``) without forming ``K``.

        For square factors it is the Kronecker product of the factors' diagonals,
        ``O(N)``; otherwise each entry is a product of one entry per factor, found from
        the row and column multi-indices, ``O(D min(M, N))``.
        """
        xp, fs = self._xp, self._factors
        if all(f.shape[0] == f.shape[1] for f in fs):
            return _outer(xp, [_diag(xp, f) for f in fs], add=False)
        length = min(self.shape)
        idx = _arange(xp, length, fs[0])
        row_stride, col_stride = self.shape
        out = None
        for f in fs:
            m, n = f.shape
            row_stride //= m
            col_stride //= n
            flat = (idx // row_stride % m) * n + idx // col_stride % n
            vals = xp.take(xp.reshape(f, (-1,)), flat)
            out = vals if out is None else out * vals
        return out

    def todense(self) -> Any:
        """Return ``K`` as a dense ``(M, N)`` array (``O(M N)`` memory: tests, small sizes)."""
        out = self._factors[0]
        for f in self._factors[1:]:
            out = _kron_dense(self._xp, out, f)
        return out


class KroneckerSum(_KroneckerBase):
    r"""Kronecker sum ``A_1 ⊕ ... ⊕ A_D = Σ_d I ⊗ .. ⊗ A_d ⊗ .. ⊗ I`` of square factors.

    The identity in term ``d`` has the sizes of the other factors, so the sum is
    ``N x N`` with ``N = Π n_d``; on a tensor grid it applies ``A_d`` along axis ``d``
    and sums (e.g. a finite-difference Laplacian ``L_x ⊕ L_y``). ``matvec`` costs
    ``O(N Σ_d n_d)`` per column, with the C-order vec of the module docstring. For
    symmetric factors the eigenvalues are the sums ``λ_{1,i_1} + ... + λ_{D,i_D}``,
    which :meth:`solve` and :func:`kron_eigh` use.

    Parameters
    ----------
    factors : list or tuple of square 2-D arrays
        ``[A_1, ..., A_D]``, sizes may differ; same requirements as
        :class:`KroneckerOperator` otherwise. Referenced, not copied.

    Raises
    ------
    TypeError, ValueError
        As :class:`KroneckerOperator`, and ``ValueError`` for a non-square factor.
    """

    _square_factors = True

    def _apply(self, x: Any, *, adjoint: bool) -> Any:
        mats = self._adjoint_factors() if adjoint else self._factors
        return _sum_products(self._xp, mats, x)

    def diagonal(self) -> Any:
        """Return the diagonal, ``Σ_d 1 ⊗ .. ⊗ diag(A_d) ⊗ .. ⊗ 1``, in ``O(D N)``."""
        return _outer(self._xp, [_diag(self._xp, f) for f in self._factors], add=True)

    def todense(self) -> Any:
        """Return the sum as a dense ``(N, N)`` array: ``O(N^2)`` memory, for tests only."""
        xp, fs = self._xp, self._factors
        out = None
        for d in range(len(fs)):
            terms = [
                f if e == d else xp.eye(f.shape[0], dtype=self.dtype, device=_device(f))
                for e, f in enumerate(fs)
            ]
            term = terms[0]
            for t in terms[1:]:
                term = _kron_dense(xp, term, t)
            out = term if out is None else out + term
        return out

    def solve(self, b: Any, shift: float = 0.0) -> Any:
        """Solve ``(A_1 ⊕ ... ⊕ A_D + shift * I) x = b`` through the factors' eigenvectors.

        Symmetric factors only. Computes the factorisation afresh on every call,
        ``O(Σ n_d^3)``, then ``O(N Σ n_d)`` per right-hand side; to solve repeatedly
        keep ``kron_eigh(K, shift)`` and call its ``solve``. See :func:`kron_eigh` for
        the parameters, checks and errors (``shift`` may be negative here).
        """
        from numlib.kron.eigh import kron_eigh  # the factorisation builds on these operators

        return kron_eigh(self, shift).solve(b)


def _check_rhs(xp: ModuleType, like: Any, x: Any, name: str, rows: int, *, ndim: int | None) -> Any:
    """Check a vector or block of vectors against an operator with ``rows`` rows."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype") or sp.issparse(x):
        raise TypeError(f"{name} must be a dense array, got {type(x).__name__}")
    try:
        array_namespace(like, x)
    except TypeError:
        raise TypeError(
            f"{name} must come from the same array library as the factors "
            f"({type(like).__module__.partition('.')[0]}), got {type(x).__name__}"
        ) from None
    shape = tuple(x.shape)
    if (ndim is None and len(shape) not in (1, 2)) or (ndim is not None and len(shape) != ndim):
        wanted = "1-D or 2-D" if ndim is None else f"{ndim}-D"
        raise ValueError(f"{name} must be {wanted}, got shape {shape}")
    if shape[0] != rows:
        raise ValueError(f"{name} must have {rows} rows to match the operator, got {shape[0]}")
    if len(shape) == 2 and shape[1] == 0:
        raise ValueError(f"{name} must not be empty, got shape {shape}")
    if not is_floating(x):
        raise TypeError(f"{name} must have a floating-point dtype, got {x.dtype}")
    check_finite(x, name)
    return x


# --------------------------------------------------------------------------- factorisation
