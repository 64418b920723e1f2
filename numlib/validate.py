"""Input checks shared by every public function.

Each check raises before any work is done, with a message that names the argument
and says what was expected. None of them copies or modifies its input.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

__all__ = [
    "as_generator",
    "check_finite",
    "check_operator",
    "check_positive_int",
    "check_positive_real",
    "check_tolerance",
    "check_tolerances",
    "check_vector",
]


def _is_float_or_complex(dtype: Any) -> bool:
    try:
        return bool(np.issubdtype(np.dtype(dtype), np.inexact))
    except TypeError:
        # Another library's dtype object (torch.float64, ...) that numpy cannot read.
        name = str(dtype)
        return "float" in name or "complex" in name


def check_finite(value: Any, name: str) -> None:
    """Raise ``ValueError`` if the array ``value`` holds NaN or Inf.

    Works for numpy and scipy.sparse directly and for any other array kind through
    its array namespace (torch, cupy).
    """
    if sp.issparse(value):
        data = value.data
    else:
        data = value
    if isinstance(data, np.ndarray):
        # NaN and Inf propagate through a sum (Inf - Inf is NaN), so a finite sum proves
        # every entry finite in one pass without a boolean temporary; only a sum that
        # overflowed needs the entrywise test
        ok = False
        if data.dtype.kind in "fc":
            with np.errstate(over="ignore", invalid="ignore"):
                ok = bool(np.isfinite(data.sum()))
        ok = ok or bool(np.isfinite(data).all())
    else:
        from numlib.backend import array_namespace

        xp = array_namespace(data)
        ok = bool(xp.all(xp.isfinite(data)))
    if not ok:
        raise ValueError(f"{name} contains NaN or Inf")


def check_vector(value: Any, name: str, *, size: int | None = None) -> None:
    """Check that ``value`` is a finite, non-empty, floating-point 1-D array.

    Parameters
    ----------
    value : array
        numpy, torch or cupy array.
    name : str
        Argument name used in error messages.
    size : int, optional
        Required length.

    Raises
    ------
    TypeError
        If ``value`` is not an array or has an integer or boolean dtype.
    ValueError
        If it is not 1-D, is empty, has the wrong length, or holds NaN/Inf.
    """
    shape = getattr(value, "shape", None)
    if shape is None or not hasattr(value, "dtype"):
        raise TypeError(f"{name} must be an array, got {type(value).__name__}")
    if len(shape) != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(shape)}")
    if shape[0] == 0:
        raise ValueError(f"{name} must not be empty")
    if size is not None and shape[0] != size:
        raise ValueError(f"{name} must have length {size}, got {shape[0]}")
    from numlib.backend import is_floating

    if not is_floating(value):
        raise TypeError(f"{name} must have a floating-point dtype, got {value.dtype}")
    check_finite(value, name)


def check_operator(A: Any, name: str = "A", *, square: bool = True) -> tuple[int, int]:
    """Check a matrix or linear operator and return its shape.

    Accepts dense arrays (numpy, torch, cupy), scipy.sparse matrices and arrays, and
    anything following scipy's ``LinearOperator`` protocol (``shape``, ``dtype``,
    ``matvec``). Dense and sparse inputs are checked for NaN/Inf; an operator's
    entries cannot be inspected and are not.

    Raises
    ------
    TypeError
        If ``A`` is none of the above, or has an integer or boolean dtype.
    ValueError
        If ``A`` is not 2-D, is empty, is not square when ``square`` is set, or
        holds NaN/Inf.
    """
    shape = getattr(A, "shape", None)
    if shape is None:
        raise TypeError(
            f"{name} must be an array, a scipy.sparse matrix or a LinearOperator, "
            f"got {type(A).__name__}"
        )
    if len(shape) != 2:
        raise ValueError(f"{name} must be 2-D, got shape {tuple(shape)}")
    m, n = int(shape[0]), int(shape[1])
    if m == 0 or n == 0:
        raise ValueError(f"{name} must not be empty, got shape {(m, n)}")
    if square and m != n:
        raise ValueError(f"{name} must be square, got shape {(m, n)}")
    if isinstance(A, LinearOperator):
        if A.dtype is not None and not _is_float_or_complex(A.dtype):
            raise TypeError(f"{name} must have a floating-point dtype, got {A.dtype}")
        return m, n
    if not hasattr(A, "dtype"):
        if callable(getattr(A, "matvec", None)):
            return m, n
        raise TypeError(f"{name} has a shape but neither a dtype nor a matvec method")
    from numlib.backend import is_floating

    if not (sp.issparse(A) and _is_float_or_complex(A.dtype)) and not (
        not sp.issparse(A) and is_floating(A)
    ):
        raise TypeError(f"{name} must have a floating-point dtype, got {A.dtype}")
    check_finite(A, name)
    return m, n


def check_tolerance(value: float, name: str) -> float:
    """Return ``value`` as a float after checking it is finite and non-negative."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value}")
    return value


def check_tolerances(rtol: float, atol: float) -> tuple[float, float]:
    """Return ``(rtol, atol)`` as floats for the stopping test ``||r|| <= max(rtol ||b||, atol)``.

    Each must be finite and non-negative, and at least one positive: with both zero
    the test asks for a residual of exactly zero, which rounding almost never allows,
    so an iteration would run to its limit and report failure on a solved problem.

    Raises
    ------
    TypeError
        If either is not a real number.
    ValueError
        If either is negative, NaN or infinite, or both are zero.
    """
    rtol = check_tolerance(rtol, "rtol")
    atol = check_tolerance(atol, "atol")
    if rtol == 0 and atol == 0:
        raise ValueError(
            "rtol and atol must not both be 0: the stopping test "
            "||b - A x|| <= max(rtol ||b||, atol) would demand an exact solution"
        )
    return rtol, atol


def check_positive_real(value: float, name: str) -> float:
    """Return ``value`` as a float after checking it is finite and strictly positive."""
    value = check_tolerance(value, name)
    if value == 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def check_positive_int(value: int, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an int after checking it is an integer ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def as_generator(rng: int | np.random.Generator | None) -> np.random.Generator:
    """Turn ``rng`` into a ``numpy.random.Generator``.

    Every randomized routine in numlib takes ``rng``: a seed (int), an existing
    Generator (used as is, so successive calls continue its stream) or ``None`` for
    fresh OS entropy. The same seed always gives the same result.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, numbers.Integral) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be an int seed, a numpy.random.Generator or None, got {rng!r}")
