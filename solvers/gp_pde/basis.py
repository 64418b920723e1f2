"""Whitened per-axis bases of a product kernel on a tensor grid.

For a product kernel ``k(x, x') = Π_d k_d(x_d, x'_d)`` on a grid ``X = X_1 x ... x X_D``
the kernel matrix is ``K = K_1 ⊗ ... ⊗ K_D``. The GP-HM conditional mean of the solution
is ``h(x) = k(x, X) a``; it is parametrised here by a white vector ``z ~ N(0, I)`` through
``a = ⊗_d Q_d (Λ_d + s_d)^{-1/2}`` with ``K_d = Q_d Λ_d Q_d^T`` (one symmetric
eigendecomposition per axis, :func:`numlib.kron.kron_eigh`), so that ``h(X) ~ N(0, K)``
up to the jitter ``s_d``. Any derivative ``∂^alpha h`` at grid or test points is then the
Kronecker operator ``⊗_d [∂^{alpha_d} K_d] Q_d (Λ_d + s_d)^{-1/2}`` applied to ``z``: the
``N x N`` matrices ``K``, ``K^{-1}`` and ``K'' K^{-1}`` are never formed.

Why whiten: ``K_d`` of a smooth kernel on hundreds of points has eigenvalues down to
rounding level, so ``K^{-1} u`` is meaningless in floating point; in ``z`` the prior is
the identity and the derivative factors ``K_d^{(m)} Q_d Λ_d^{-1/2}`` stay bounded (in
the Mercer expansion ``K^{(m)} q_i ≈ λ_i ∂^m φ_i``). Eigen-directions with
``λ_i < truncation · λ_max`` carry no information at working precision and are dropped,
which also shrinks the unknowns from ``Π n_d`` to ``Π r_d``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from numlib.kron import KroneckerOperator, kron_eigh
from solvers.gp_pde.kernels import SpectralMixture

__all__ = ["AxisBasis", "GridBasis"]


@dataclass(frozen=True)
class AxisBasis:
    """Whitened eigenbasis of one axis' kernel matrix.

    Attributes
    ----------
    kernel : SpectralMixture
    points : numpy.ndarray, shape (n,)
    eigenvectors : numpy.ndarray, shape (n, r)
        The kept eigenvectors ``Q_r``.
    scale : numpy.ndarray, shape (r,)
        ``(λ_r + jitter)^{-1/2}``.
    """

    kernel: SpectralMixture
    points: np.ndarray
    eigenvectors: np.ndarray
    scale: np.ndarray

    @classmethod
    def build(
        cls, kernel: SpectralMixture, points: np.ndarray, jitter: float, truncation: float
    ) -> AxisBasis:
        """Eigendecompose ``K_d + s I`` once and keep ``λ > truncation · λ_max``."""
        K = kernel.matrix(points, points)
        K = 0.5 * (K + K.T)  # exact symmetry for eigh; the closed form is symmetric to rounding
        # Relative to trace(K) >= λ_max: kron_eigh certifies positive definiteness only
        # above its rounding bound n eps λ_max, so the shift must clear that.
        n = points.size
        shift = max(jitter, 4.0 * n * np.finfo(np.float64).eps) * float(np.trace(K))
        # The eigenvalues of a PSD kernel matrix reach rounding level (and may come out
        # slightly negative); kron_eigh refuses a shift too small to make K_d + s I
        # positive definite at working precision instead of clamping silently.
        F = kron_eigh([K], shift)
        lam, Q = F.eigenvalues[0], F.eigenvectors[0]
        keep = lam > truncation * lam[-1]
        lam, Q = lam[keep], Q[:, keep]
        scale = 1.0 / np.sqrt(lam + shift)
        return cls(kernel, points, np.ascontiguousarray(Q), scale)

    @property
    def rank(self) -> int:
        """Number of kept eigen-directions ``r``."""
        return int(self.scale.size)

    def factor(self, order: int, at: np.ndarray | None = None) -> np.ndarray:
        """Return ``[∂^order K_d](at, X_d) Q_r (Λ_r + s)^{-1/2}``, shape ``(len(at), r)``."""
        at = self.points if at is None else at
        return (self.kernel.matrix(at, self.points, order, 0) @ self.eigenvectors) * self.scale


class GridBasis:
    """The whitened basis on a tensor grid: per-axis factors and Kronecker operators.

    Parameters
    ----------
    kernels : sequence of SpectralMixture
        One kernel per axis.
    axes : sequence of numpy.ndarray
        Collocation points per axis.
    jitter, truncation : float
        Relative jitter added to each ``K_d`` and relative eigenvalue cut-off.
    """

    def __init__(
        self,
        kernels: list[SpectralMixture],
        axes: list[np.ndarray],
        jitter: float,
        truncation: float,
    ) -> None:
        self.axes = [
            AxisBasis.build(k, x, jitter, truncation) for k, x in zip(kernels, axes, strict=True)
        ]
        self._factors: dict[tuple[int, int], np.ndarray] = {}

    @property
    def ranks(self) -> tuple[int, ...]:
        """Kept directions per axis."""
        return tuple(b.rank for b in self.axes)

    @property
    def size(self) -> int:
        """Number of white unknowns ``Π r_d``."""
        return math.prod(self.ranks)

    def factor(self, axis: int, order: int) -> np.ndarray:
        """Grid factor ``K_d^{(order)} Q_d (Λ_d + s)^{-1/2}`` (cached)."""
        key = (axis, order)
        if key not in self._factors:
            self._factors[key] = self.axes[axis].factor(order)
        return self._factors[key]

    def operator(self, orders: tuple[int, ...]) -> KroneckerOperator:
        """Return the operator ``z -> ∂^orders h(X)`` (grid values, C order)."""
        return KroneckerOperator([self.factor(d, o) for d, o in enumerate(orders)])

    def evaluate(
        self, z: np.ndarray, axes: list[np.ndarray], orders: tuple[int, ...] | None = None
    ) -> np.ndarray:
        """Return ``∂^orders h`` on the tensor grid ``axes`` (shape of that grid)."""
        orders = (0,) * len(self.axes) if orders is None else orders
        factors = [
            b.factor(o, np.asarray(x, dtype=np.float64))
            for b, o, x in zip(self.axes, orders, axes, strict=True)
        ]
        return (KroneckerOperator(factors) @ z).reshape(tuple(len(x) for x in axes))
