"""The recycled subspace handed from one solve of a sequence to the next."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from numlib.backend import array_namespace, is_floating, to_numpy
from numlib.validate import check_finite
from solvers.state import device_of

__all__ = ["RecycleSpace", "check_recycle_space"]


@dataclass(frozen=True)
class RecycleSpace:
    """A recycled subspace carried from one solve to the next.

    Attributes
    ----------
    U : array, shape (k, n)
        Rows spanning the space. For :func:`solvers.gcrodr.gcrodr` it lives in
        the variable GCRO-DR iterates on (``M^{-1} x`` with a right
        preconditioner ``M``); for :func:`solvers.deflated_cg.deflated_cg` in
        ``x`` itself. Any basis will do: each solve re-orthonormalises it for its
        own operator, so a space may be passed to a system whose matrix differs.
    Y : array, shape (k, n), optional
        The same combination of solution directions in ``x`` itself (``Y = M U``
        row by row while ``M`` stays the same), kept by a preconditioned GCRO-DR
        solve so that the next system re-derives its recycled images ``A Y``
        without applying its (possibly new) preconditioner. ``None`` when ``U``
        already lives in ``x``.
    """

    U: Any
    Y: Any = None

    @property
    def dimension(self) -> int:
        """Number of recycled vectors ``k``."""
        return int(self.U.shape[0])


def check_recycle_space(recycle: Any, n: int) -> None:
    """Check that ``recycle`` is None or a usable :class:`RecycleSpace` for length-``n`` vectors.

    ``U`` (and ``Y`` when given) must be a finite floating-point 2-D array (numpy,
    torch, cupy or the row-distributed arrays of :mod:`solvers.petsc`) with ``n``
    columns and at least one row, and no row may be zero: a zero row spans nothing,
    and a space of zero rows only would leave GCRO-DR nothing to orthonormalise.
    Rows that are merely linearly dependent are fine; each solver drops them.

    Raises
    ------
    TypeError
        If ``recycle`` is not a RecycleSpace, or ``U`` or ``Y`` is not an array or
        has an integer or boolean dtype.
    ValueError
        If ``U`` or ``Y`` is not 2-D, has no rows, has a number of columns other
        than ``n``, holds NaN/Inf or has a zero row, or if ``Y``'s shape differs
        from ``U``'s.
    """
    if recycle is None:
        return
    if not isinstance(recycle, RecycleSpace):
        raise TypeError(f"recycle must be a RecycleSpace, got {type(recycle).__name__}")
    _check_rows(recycle.U, "recycle.U", n)
    if recycle.Y is not None:
        _check_rows(recycle.Y, "recycle.Y", n)
        if tuple(recycle.Y.shape) != tuple(recycle.U.shape):
            raise ValueError(
                f"recycle.Y must have the shape of recycle.U, {tuple(recycle.U.shape)}, "
                f"got {tuple(recycle.Y.shape)}"
            )


def _check_rows(rows: Any, name: str, n: int) -> None:
    """``rows``: a finite floating ``(k, n)`` array, ``k >= 1``, with no zero row."""
    shape = getattr(rows, "shape", None)
    if shape is None or not hasattr(rows, "dtype"):
        raise TypeError(f"{name} must be an array, got {type(rows).__name__}")
    if len(shape) != 2 or shape[1] != n:
        raise ValueError(f"{name} must have shape (k, {n}), got {tuple(shape)}")
    if shape[0] == 0:
        raise ValueError(f"{name} must have at least one row, got shape {tuple(shape)}")
    if not is_floating(rows):
        raise TypeError(f"{name} must have a floating-point dtype, got {rows.dtype}")
    check_finite(rows, name)
    # Squared row norms as one product with a vector of ones: a single reduction
    # for the row-distributed arrays of solvers.petsc as well. A row whose squared
    # norm underflows is no more usable than a zero one.
    xp = array_namespace(rows)
    squares = xp.conj(rows) * rows if "complex" in str(rows.dtype) else rows * rows
    ones = xp.zeros((n,), dtype=rows.dtype, device=device_of(rows)) + 1
    zero = np.flatnonzero(np.real(to_numpy(squares @ ones)) == 0)
    if zero.size:
        raise ValueError(f"{name} must have no zero row, but row {zero[0]} is zero")
