"""Operators rather than matrices: one way to apply whatever the caller passed.

Solvers accept a dense array (numpy, torch, cupy), a scipy.sparse matrix or array,
or anything with scipy's ``LinearOperator`` protocol (``shape``, ``dtype``,
``matvec``). :func:`as_matvec` turns each of these into a plain function
``x -> A @ x`` so the solvers' inner loops never branch on the operator's kind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from numlib.validate import check_operator

__all__ = ["as_matvec"]

Matvec = Callable[[Any], Any]


def as_matvec(A: Any, name: str = "A", *, size: int | None = None) -> Matvec:
    """Validate a square operator and return a function computing ``A @ x``.

    Parameters
    ----------
    A : array, scipy.sparse matrix or LinearOperator
        The operator. Dense and sparse inputs are checked for NaN/Inf; an
        operator's entries are not visible and are not checked.
    name : str
        Argument name used in error messages.
    size : int, optional
        Required dimension (``A`` must be ``size x size``).

    Returns
    -------
    callable
        ``matvec(x)`` returning ``A @ x`` for a 1-D ``x``. ``A`` is referenced,
        never copied or modified.

    Raises
    ------
    TypeError, ValueError
        From :func:`numlib.validate.check_operator`, or when the size differs.
    """
    m, _ = check_operator(A, name, square=True)
    if size is not None and m != size:
        raise ValueError(f"{name} must be {size} x {size} to match b, got {m} x {m}")
    if hasattr(A, "__matmul__") and hasattr(A, "dtype") and not _is_linear_operator(A):
        return A.__matmul__
    return A.matvec


def _is_linear_operator(A: Any) -> bool:
    # scipy's LinearOperator also defines __matmul__, but through extra checks;
    # its matvec is the direct route.
    from scipy.sparse.linalg import LinearOperator

    return isinstance(A, LinearOperator)
