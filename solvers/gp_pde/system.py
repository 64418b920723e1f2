"""The GP-HM MAP problem in the white variable: residuals, normal equations, solves.

Used by :class:`solvers.gp_pde.solver.GPPDESolver`; see its module docstring for the
model. This module holds the linear algebra: the normal matrix as a short sum of
Kronecker products of per-axis Gram matrices, its dense Cholesky factor as the CG
preconditioner (or the exact Jacobi diagonal), the dense QR path for 1-D problems, and
Gauss-Newton for the Allen-Cahn cubic term.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.linalg
from scipy.sparse.linalg import LinearOperator

from numlib.kron import KroneckerOperator
from numlib.result import ConvergenceWarning
from solvers.gp_pde.basis import GridBasis
from solvers.krylov import cg

if TYPE_CHECKING:
    from solvers.gp_pde.solver import GPPDESolver

__all__ = ["MAPSystem"]


class MAPSystem:
    """The MAP problem in the white variable: residuals, normal equations, solves.

    With ``J z = diag(e) (Σ_t c_t T_t z + v ∘ (W z))`` (``e`` the interior indicator,
    ``T_t = ⊗_d F_{d,alpha_t}`` the operator terms, ``v`` the Gauss-Newton coefficient
    ``3 u_k²``, absent for linear operators) the normal matrix is
    ``N = I + β_r J^T J + β_b W^T diag(m) W``. Its constant-coefficient part is
    a short sum of Kronecker products of ``r_d x r_d`` Gram matrices,

        β_r Σ_{s,t} c_s c_t ⊗_d F_{d,alpha_s}^T E_d F_{d,alpha_t}
        + β_b (⊗_d W_d^T W_d - ⊗_d W_d^T E_d W_d),     E_d = interior indicator of axis d,

    (the interior indicator is ``⊗_d e_d``, the boundary mask ``1 - ⊗_d e_d``), so it is
    applied in the reduced space ``Π r_d`` without touching the grid, and, when ``Π r_d``
    is moderate, factorised densely by Cholesky as the CG preconditioner. Only the ``v``
    terms need grid-sized Kronecker products.
    """

    def __init__(
        self,
        solver: GPPDESolver,
        basis: GridBasis,
        f: np.ndarray,
        g: np.ndarray,
        sigma_r: float,
        sigma_b: float,
    ) -> None:
        self.solver = solver
        self.basis = basis
        self.ndim = len(solver.axes)
        self.sigma_r, self.sigma_b = sigma_r, sigma_b
        self.beta_r, self.beta_b = 1.0 / sigma_r**2, 1.0 / sigma_b**2
        self.f = f.ravel()
        self.mask = solver.boundary_mask().ravel().astype(np.float64)
        self.g = np.where(self.mask > 0, g.ravel(), 0.0)
        # The PDE is collocated at interior points only; the boundary carries the data.
        self.interior = 1.0 - self.mask
        self.zero = (0,) * self.ndim
        self.value = basis.operator(self.zero)
        self.terms = [
            (float(c), alpha, basis.operator(alpha)) for c, alpha in solver.operator.terms
        ]
        self.cubic = solver.operator.cubic
        size = basis.size
        method = solver.method
        if method == "auto":
            # The dense path forms the grid-sized design matrix: QR costs Π n_d (Π r_d)^2,
            # cheap for 1-D problems, minutes for a 2-D grid that PCG solves in seconds.
            small = self.ndim == 1 and size <= solver.dense_limit
            method = "dense-lstsq" if small else "kronecker-pcg"
        self.method = method
        self.preconditioner = "none"
        self.logdet_normal: float | None = None
        self._gram: dict[tuple[int, int, int, bool], np.ndarray] = {}
        self.const = self._pairs([(c, a) for c, a, _ in self.terms])

    # ---------------------------------------------------------------- pieces

    def _gram_matrix(self, d: int, a: int, b: int, interior: bool) -> np.ndarray:
        key = (d, a, b, interior)
        if key not in self._gram:
            left = self.basis.factor(d, a)
            if interior:
                left = left.copy()
                left[[0, -1]] = 0.0
            self._gram[key] = left.T @ self.basis.factor(d, b)
        return self._gram[key]

    def _pairs(
        self, terms: list[tuple[float, tuple[int, ...]]]
    ) -> list[tuple[float, KroneckerOperator]]:
        """Return ``β_r J^T J + β_b W^T diag(m) W`` (constant coefficients) as Kronecker terms."""
        out = []
        for cs, a in terms:
            for ct, b in terms:
                mats = [self._gram_matrix(d, a[d], b[d], True) for d in range(self.ndim)]
                out.append((self.beta_r * cs * ct, KroneckerOperator(mats)))
        full = [self._gram_matrix(d, 0, 0, False) for d in range(self.ndim)]
        inner = [self._gram_matrix(d, 0, 0, True) for d in range(self.ndim)]
        out.append((self.beta_b, KroneckerOperator(full)))
        out.append((-self.beta_b, KroneckerOperator(inner)))
        return out

    def _lin(self, z: np.ndarray) -> np.ndarray:
        return sum(c * (op @ z) for c, _, op in self.terms)

    def _lin_t(self, r: np.ndarray) -> np.ndarray:
        r = self.interior * r
        return sum(op.rmatvec(c * r) for c, _, op in self.terms)

    def residual(self, z: np.ndarray) -> np.ndarray:
        """Return ``N(h) - f`` at the interior grid points (0 on the boundary)."""
        r = self._lin(z) - self.f
        if self.cubic:
            r = r + self.cubic * (self.value @ z) ** 3
        return self.interior * r

    def objective(self, z: np.ndarray) -> float:
        """Return ``J(z)``."""
        r = self.residual(z)
        b = self.mask * (self.value @ z - self.g)
        return float(0.5 * z @ z + 0.5 * self.beta_r * r @ r + 0.5 * self.beta_b * b @ b)

    # ---------------------------------------------------------------- drivers

    def run(self) -> tuple[np.ndarray, bool, int, int]:
        """Return ``(z, converged, CG iterations, Gauss-Newton steps)`` from ``z = 0``."""
        z = np.zeros(self.basis.size)
        if not self.cubic:
            z, ok, its = self._linear_solve(None, self.f, z)
            return z, ok, its, 0
        # Gauss-Newton: linearise u³ at u_k, u³ ≈ 3 u_k² u - 2 u_k³.
        total, ok_all, current = 0, True, self.objective(z)
        converged = False
        step = 0
        for step in range(1, self.solver.newton_steps + 1):  # noqa: B007 (reported after)
            u = self.value @ z
            target = self.f + 2.0 * self.cubic * u**3
            z_new, ok, its = self._linear_solve(3.0 * self.cubic * u * u, target, z)
            total += its
            ok_all = ok_all and ok
            dz = z_new - z
            t, trial = 1.0, self.objective(z_new)
            while trial > current and t > 1e-4:
                t *= 0.5
                trial = self.objective(z + t * dz)
            z = z + t * dz
            previous, current = current, trial
            small_step = np.linalg.norm(t * dz) <= self.solver.newton_tol * max(
                np.linalg.norm(z), 1e-300
            )
            if small_step or previous - current <= 1e-14 * abs(previous):
                converged = True
                break
        if not converged:
            warnings.warn(
                f"Gauss-Newton did not converge in {self.solver.newton_steps} steps",
                ConvergenceWarning,
                stacklevel=4,
            )
        return z, converged and ok_all, total, step

    def _linear_solve(
        self, v: np.ndarray | None, y: np.ndarray, z0: np.ndarray
    ) -> tuple[np.ndarray, bool, int]:
        """Minimise ½||z||² + β_r/2 ||L z + v ∘ (W z) - y||² + β_b/2 ||m ∘ (W z - g)||²."""
        if self.method == "dense-lstsq":
            return self._dense_solve(v, y), True, 0
        n = self.basis.size
        W, beta_r = self.value, self.beta_r
        const = self.const

        def normal(z: np.ndarray) -> np.ndarray:
            out = z + sum(w * (op @ z) for w, op in const)
            if v is not None:
                wz = W @ z
                vi = self.interior * v
                out += beta_r * (W.rmatvec(vi * (self._lin(z) + v * wz)) + self._lin_t(v * wz))
            return out

        jt_y = self._lin_t(y) + (W.rmatvec(self.interior * v * y) if v is not None else 0.0)
        rhs = beta_r * jt_y + self.beta_b * W.rmatvec(self.mask * self.g)
        precondition, kind = self._preconditioner(v)
        A = LinearOperator((n, n), matvec=normal, dtype=np.float64)
        M = LinearOperator((n, n), matvec=precondition, dtype=np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            res = cg(A, rhs, x0=z0, rtol=self.solver.rtol, maxiter=self.solver.maxiter, M=M)
        self.preconditioner = kind
        if not res.converged:
            relative = res.info["true_residual_norm"] / max(float(np.linalg.norm(rhs)), 1e-300)
            warnings.warn(
                f"CG on the GP-HM normal equations stopped after {res.iterations} iterations "
                f"at relative residual {relative:.2e} > rtol {self.solver.rtol:.1e}",
                ConvergenceWarning,
                stacklevel=5,
            )
        return res.x, res.converged, res.iterations

    def _preconditioner(self, v: np.ndarray | None) -> tuple[Any, str]:
        """Cholesky of the constant-coefficient normal matrix (``v`` -> its mean), else Jacobi."""
        n = self.basis.size
        if n <= self.solver.direct_limit:
            pairs = self.const
            if v is not None:
                pairs = self._pairs(
                    [(c, a) for c, a, _ in self.terms] + [(float(np.mean(v)), self.zero)]
                )
            dense = np.eye(n)
            for w, op in pairs:
                _add_kron(dense, w, op.factors)
            # Symmetric to rounding ((s, t) and (t, s) pairs are both present);
            # cho_factor reads one triangle.
            scale = float(np.max(np.diag(dense)))
            # N is SPD, but its condition may exceed 1/eps: then shift the factorised copy
            # (only the preconditioner, never the system) until Cholesky succeeds.
            for shift in (0.0, 1e-15, 1e-13, 1e-11, 1e-9):
                try:
                    factor = scipy.linalg.cho_factor(
                        dense + shift * scale * np.eye(n), check_finite=False
                    )
                except np.linalg.LinAlgError:
                    continue
                if shift == 0.0 and v is None:
                    self.logdet_normal = 2.0 * float(np.sum(np.log(np.diag(factor[0]))))
                return functools.partial(_cho_apply, factor), "cholesky"
        inv = 1.0 / self._normal_diagonal(v)
        return (lambda r: inv * r), "jacobi"

    def _normal_diagonal(self, v: np.ndarray | None) -> np.ndarray:
        """Exact diagonal of ``N`` from per-axis factors.

        ``diag(⊗ A_d) = ⊗ diag(A_d)`` for the constant part, and for the ``v`` terms
        ``diag((⊗ A_d)^T diag(c) (⊗ B_d)) = (⊗ (A_d ∘ B_d))^T c``.
        """
        diag = np.ones(self.basis.size)
        for w, op in self.const:
            diag += w * _outer_all([np.diagonal(m) for m in op.factors])
        if v is not None:
            vi = self.interior * v
            w0 = [self.basis.factor(d, 0) for d in range(self.ndim)]
            diag += self.beta_r * KroneckerOperator([a * a for a in w0]).rmatvec(vi * v)
            for c, alpha, _ in self.terms:
                had = [w0[d] * self.basis.factor(d, alpha[d]) for d in range(self.ndim)]
                diag += 2.0 * self.beta_r * c * KroneckerOperator(had).rmatvec(vi)
        return diag

    def _dense_solve(self, v: np.ndarray | None, y: np.ndarray) -> np.ndarray:
        """Return the same minimiser from one stacked least-squares problem, solved by QR."""
        n = self.basis.size
        eye = np.eye(n)
        W = self.value @ eye
        J = sum(c * (op @ eye) for c, _, op in self.terms)
        if v is not None:
            J = J + v[:, None] * W
        rows = self.mask > 0
        inner = ~rows
        A = np.vstack([eye, math.sqrt(self.beta_r) * J[inner], math.sqrt(self.beta_b) * W[rows]])
        b = np.concatenate(
            [np.zeros(n), math.sqrt(self.beta_r) * y[inner], math.sqrt(self.beta_b) * self.g[rows]]
        )
        q, r = np.linalg.qr(A)
        self.logdet_normal = 2.0 * float(np.sum(np.log(np.abs(np.diag(r)))))  # N = R^T R
        return scipy.linalg.solve_triangular(r, q.T @ b)


def _add_kron(dense: np.ndarray, weight: float, factors: tuple[np.ndarray, ...]) -> None:
    """``dense += weight * (A_1 ⊗ ... ⊗ A_D)`` one block row at a time (no N x N temporary)."""
    last = factors[-1]
    front = functools.reduce(np.kron, factors[:-1]) if len(factors) > 1 else np.ones((1, 1))
    m = last.shape[0]
    for i in range(front.shape[0]):
        dense[i * m : (i + 1) * m] += weight * np.kron(front[i : i + 1], last)


def _cho_apply(factor: tuple[np.ndarray, bool], r: np.ndarray) -> np.ndarray:
    return scipy.linalg.cho_solve(factor, r, check_finite=False)


def _outer_all(vectors: list[np.ndarray]) -> np.ndarray:
    out = vectors[0]
    for v in vectors[1:]:
        out = np.multiply.outer(out, v).ravel()
    return out
