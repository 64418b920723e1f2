"""The :class:`LinearSystem` record and the grid helpers every problem shares."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["Field", "LinearSystem"]

Field = Callable[..., Any]
"""A vectorised function of the coordinates, ``f(x, y)`` or ``f(x, y, z)``."""


@dataclass(frozen=True, eq=False)
class LinearSystem:
    """A discretised PDE ``A x = b`` with the data that produced it.

    Equality is identity (``eq=False``): the fields are arrays, for which
    field-by-field ``==`` has no single truth value.

    Attributes
    ----------
    A : scipy.sparse.csr_array
        The ``N x N`` matrix, float64, canonical CSR (sorted indices, no duplicates).
    b : numpy.ndarray
        Right-hand side of length ``N``: the source plus the boundary terms.
    x_exact : numpy.ndarray or None
        The manufactured continuous solution sampled at the unknowns, length ``N``;
        ``None`` when the problem has no known solution (random data).
    name : str
        The generating function, e.g. ``"poisson2d"``.
    grid_shape : tuple of int
        Grid of the unknowns, C order: ``x.reshape(grid_shape)``.
    h : float
        Mesh width.
    params : dict
        The parameters that produced the system (``n``, ``k``, ``peclet``, ...), and
        for the random families the drawn data (``coefficient``, ``u_prev``).
    """

    A: sp.csr_array
    b: np.ndarray
    x_exact: np.ndarray | None
    name: str
    grid_shape: tuple[int, ...]
    h: float
    params: dict[str, Any]


def _interior_nodes(n: int) -> np.ndarray:
    return np.arange(1, n + 1) / (n + 1)


def _grid(axes: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
    # Dense rather than sparse meshgrid: user callables may assume full-shape inputs.
    return tuple(np.meshgrid(*axes, indexing="ij"))


def _canonical(A: Any) -> sp.csr_array:
    A = sp.csr_array(A, dtype=np.float64)
    # Bands hold explicit zeros (Darcy's y band at row ends) and stencil weights can
    # cancel exactly (central convection at cell Péclet number 1); CSR should not
    # store them.
    A.eliminate_zeros()
    A.sum_duplicates()
    return A


def _check_solution(solution: Any) -> tuple[Field, Field]:
    if not (isinstance(solution, tuple) and len(solution) == 2 and all(map(callable, solution))):
        raise TypeError(f"solution must be a pair (u, f) of callables, got {solution!r}")
    return solution


def _default_or(
    solution: tuple[Field, Field] | None, default: tuple[Field, Field]
) -> tuple[Field, Field]:
    return default if solution is None else _check_solution(solution)


def _sample(func: Field, coords: tuple[np.ndarray, ...], name: str) -> np.ndarray:
    """Evaluate a user callable on the grid as a fresh, finite float64 array."""
    values = np.asarray(func(*coords))
    if values.dtype.kind not in "iuf":
        raise TypeError(f"{name} must return real numbers, got dtype {values.dtype}")
    shape = coords[0].shape
    try:
        values = np.broadcast_to(values, shape)
    except ValueError:
        raise ValueError(
            f"{name} returned shape {values.shape}, not broadcastable to the grid {shape}"
        ) from None
    if not np.isfinite(values).all():
        raise ValueError(f"{name} returned NaN or Inf")
    return values.astype(np.float64)


def _grid_values(value: Any, name: str, coords: tuple[np.ndarray, ...]) -> np.ndarray:
    """Turn a constant, array or callable into a fresh float64 array on the grid."""
    shape = coords[0].shape
    if callable(value):
        return _sample(value, coords, name)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value}")
        return np.full(shape, float(value))
    if not isinstance(value, np.ndarray):
        raise TypeError(
            f"{name} must be a number, a numpy array or a callable, got {type(value).__name__}"
        )
    if not np.issubdtype(value.dtype, np.floating):
        raise TypeError(f"{name} must have a real floating-point dtype, got {value.dtype}")
    size = math.prod(shape)
    if value.shape not in (shape, (size,)):
        raise ValueError(f"{name} must have shape {shape} or {(size,)}, got {value.shape}")
    if not np.isfinite(value).all():
        raise ValueError(f"{name} contains NaN or Inf")
    return value.reshape(shape).astype(np.float64)
