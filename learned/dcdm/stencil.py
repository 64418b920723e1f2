"""Symmetric 5/7-point grid operators: read from a sparse matrix, applied in torch.

The DCDM loss applies ``A`` to a batch of network outputs at every training step.
For the grid Laplacians of :mod:`solvers.problems` (with or without obstacles) ``A``
is a symmetric nearest-neighbour stencil with *variable* coefficients, so it is
fully described by its diagonal and one coupling array per axis; applying it is a
handful of shifted elementwise products, much faster in torch on a CPU than a
sparse matrix product and batched over several operators at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

__all__ = ["GridStencil", "apply_stencil"]


@dataclass(frozen=True, eq=False)
class GridStencil:
    """A symmetric nearest-neighbour operator on a grid.

    ``(A u)_i = diagonal_i u_i + Σ_axes (c_i u_{i+e} + c_{i-e} u_{i-e})`` with
    ``c = couplings[axis]``, ``e`` the unit step along the axis; ``c`` is zero on the
    last layer of its axis (no neighbour there).

    Attributes
    ----------
    diagonal : numpy.ndarray
        Shape ``grid_shape``.
    couplings : tuple of numpy.ndarray
        One array of shape ``grid_shape`` per axis.
    """

    diagonal: np.ndarray
    couplings: tuple[np.ndarray, ...]

    @property
    def grid_shape(self) -> tuple[int, ...]:
        """Shape of the grid."""
        return tuple(self.diagonal.shape)

    @property
    def active(self) -> np.ndarray:
        """Boolean mask of the nodes coupled to some neighbour (not decoupled rows)."""
        mask = np.zeros(self.grid_shape, dtype=bool)
        for axis, c in enumerate(self.couplings):
            nz = c != 0
            mask |= nz
            mask |= np.roll(nz, 1, axis=axis)  # the neighbour i + e of a coupled i
        return mask

    @classmethod
    def from_matrix(cls, A: Any, grid_shape: tuple[int, ...]) -> GridStencil:
        """Read the stencil of a sparse matrix on ``grid_shape`` (C order).

        Parameters
        ----------
        A : scipy.sparse matrix or array, shape (N, N)
            Symmetric, with entries only on the diagonal and at the offsets of the
            nearest neighbours along each grid axis.
        grid_shape : tuple of int
            Grid of the unknowns, ``prod(grid_shape) == N``.

        Returns
        -------
        GridStencil

        Raises
        ------
        TypeError
            If ``A`` is not a scipy.sparse matrix.
        ValueError
            If the sizes differ, or ``A`` has entries off the stencil or is not
            symmetric.

        Examples
        --------
        >>> from solvers.problems import poisson2d
        >>> stencil = GridStencil.from_matrix(poisson2d(8).A, (8, 8))
        >>> float(stencil.diagonal[0, 0]), float(stencil.couplings[0][0, 0])
        (324.0, -81.0)
        """
        if not sp.issparse(A):
            raise TypeError(f"A must be a scipy.sparse matrix, got {type(A).__name__}")
        shape = tuple(int(s) for s in grid_shape)
        size = math.prod(shape)
        if A.shape != (size, size):
            raise ValueError(f"A must be {size} x {size} for grid_shape {shape}, got {A.shape}")
        A = sp.csr_array(A, dtype=np.float64)
        diagonal = A.diagonal().reshape(shape)
        index = np.arange(size)
        couplings = []
        total = np.count_nonzero(diagonal)
        for axis in range(len(shape)):
            stride = math.prod(shape[axis + 1 :])
            upper = np.asarray(A[index[:-stride], index[stride:]]).ravel()
            lower = np.asarray(A[index[stride:], index[:-stride]]).ravel()
            if not np.array_equal(upper, lower):
                raise ValueError("A must be symmetric")
            c = np.zeros(size)
            c[: size - stride] = upper
            c = c.reshape(shape)
            # Offset +stride also links the last node of one grid line to the first
            # of the next; a grid stencil has no such entry.
            last = [slice(None)] * len(shape)
            last[axis] = -1
            if np.any(c[tuple(last)] != 0):
                raise ValueError(f"A couples nodes across the edge of axis {axis} of the grid")
            total += 2 * np.count_nonzero(c)
            couplings.append(c)
        if total != A.count_nonzero():
            raise ValueError(f"A has entries outside the nearest-neighbour stencil of grid {shape}")
        return cls(diagonal, tuple(couplings))

    def geometry(self) -> np.ndarray:
        """Scale-free description of the operator for the network, shape ``(2 + d, *grid)``.

        Channel 0 is :attr:`active` (1/0); channel 1 the diagonal over ``2d s``, channels
        ``2..`` the couplings over ``s``, with ``s`` the largest coupling magnitude (so
        ``1/h²`` for the Poisson matrices): an interior fluid node reads ``(1, 1, -1, ...)``,
        a node by a closed wall or obstacle has a smaller diagonal and a zero coupling.
        """
        d = len(self.couplings)
        scale = max(float(np.abs(c).max()) for c in self.couplings) or 1.0
        channels = [self.active.astype(np.float64), self.diagonal / (2 * d * scale)]
        channels += [c / scale for c in self.couplings]
        return np.stack(channels)

    @staticmethod
    def box_geometry(grid_shape: tuple[int, ...]) -> np.ndarray:
        """:meth:`geometry` of the constant-coefficient Laplacian with Dirichlet walls."""
        d = len(grid_shape)
        channels = [np.ones(grid_shape), np.ones(grid_shape)]
        for axis in range(d):
            c = -np.ones(grid_shape)
            last = [slice(None)] * d
            last[axis] = -1
            c[tuple(last)] = 0.0
            channels.append(c)
        return np.stack(channels)

    def to_tensor(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Stack diagonal and couplings into one tensor of shape ``(1 + d, *grid_shape)``."""
        stacked = np.stack([self.diagonal, *self.couplings])
        return torch.as_tensor(stacked, dtype=dtype)


def apply_stencil(coefficients: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Apply stencils to a batch of grid functions.

    Parameters
    ----------
    coefficients : torch.Tensor, shape (B, 1 + d, *grid) or (1 + d, *grid)
        :meth:`GridStencil.to_tensor` of each sample's operator (or one for all).
    u : torch.Tensor, shape (B, 1, *grid)
        Grid functions (one channel).

    Returns
    -------
    torch.Tensor
        ``A u``, shape ``(B, 1, *grid)``. Differentiable in ``u``.

    Examples
    --------
    >>> import numpy as np
    >>> from solvers.problems import poisson3d
    >>> system = poisson3d(5)
    >>> coeffs = GridStencil.from_matrix(system.A, (5, 5, 5)).to_tensor(torch.float64)
    >>> u = torch.randn(1, 1, 5, 5, 5, dtype=torch.float64)
    >>> ref = system.A @ u.numpy().ravel()
    >>> bool(np.allclose(apply_stencil(coeffs, u).numpy().ravel(), ref))
    True
    """
    d = u.ndim - 2
    if coefficients.ndim == d + 1:
        coefficients = coefficients.unsqueeze(0)
    coefficients = coefficients.unsqueeze(2)  # (B, 1 + d, 1, *grid): channel axis of u
    out = coefficients[:, 0] * u
    for axis in range(d):
        dim = 2 + axis
        n = u.shape[dim]
        c = coefficients[:, 1 + axis].narrow(dim, 0, n - 1)
        ahead = c * u.narrow(dim, 1, n - 1)  # c_i u_{i+e}, lands on node i
        behind = c * u.narrow(dim, 0, n - 1)  # c_i u_i, lands on node i + e
        pad = [0, 0] * d
        pad[2 * (d - 1 - axis) + 1] = 1  # F.pad counts from the last axis
        out = out + torch.nn.functional.pad(ahead, pad)
        pad = [0, 0] * d
        pad[2 * (d - 1 - axis)] = 1
        out = out + torch.nn.functional.pad(behind, pad)
    return out
