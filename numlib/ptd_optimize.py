"""Gradient optimisation of the perturbation in perturb-then-diagonalise.

The objective is a smooth surrogate of ``kappa_2(V)``: with ``V`` scaled to unit
columns and ``W = V^{-1}``,

``kappa_F(V)^2 = ||V||_F^2 ||W||_F^2 = n Σ_i ||v_i||^2 ||w_i||^2 = n Σ_i κ(λ_i)^2``,

the sum of squared eigenvalue condition numbers ``κ(λ_i) = ||v_i|| ||w_i||`` (``w_i``
the left eigenvector normalised by ``w_i v_i = 1``), a quantity independent of how the
columns of ``V`` are scaled, and ``kappa_2 <= kappa_F <= n kappa_2``. Its gradient
with respect to ``E`` follows from first-order eigenvector perturbation theory
(``dV = V (F ∘ (W dE V))`` with ``F_ij = 1/(λ_j - λ_i)``), at ``O(n^3)`` per
evaluation on top of one ``geev``; see :func:`condition_objective`.

Everything here is numpy/scipy (``scipy.optimize.minimize`` with L-BFGS-B).

References
----------
A. Yu, D. Lyu, S. H. Lim, M. W. Mahoney, N. B. Erichson, "Robustifying state-space
models for long sequences via approximate diagonalization", ICLR 2024 (they minimise
``cond(V)^2 + λ ||E||_F`` with Adam through ``torch.linalg.eig``).
J. H. Wilkinson, *The Algebraic Eigenvalue Problem*, 1965, ch. 2 (eigenvalue and
eigenvector perturbation).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.linalg

from numlib._arrays import small_lapack_threads
from numlib.result import ConvergenceWarning
from numlib.validate import check_positive_int, check_positive_real, check_tolerance

__all__ = [
    "ConditionObjective",
    "PerturbationOptimum",
    "condition_objective",
    "optimize_perturbation",
]

# Above this size one geev is big enough for a threaded BLAS to pay off.


def _square(M: object, name: str) -> np.ndarray:
    if not isinstance(M, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(M).__name__}")
    if M.ndim != 2 or M.shape[0] != M.shape[1] or M.size == 0:
        raise ValueError(f"{name} must be a non-empty square matrix, got shape {M.shape}")
    if not np.issubdtype(M.dtype, np.inexact):
        raise TypeError(f"{name} must have a floating-point or complex dtype, got {M.dtype}")
    if not np.isfinite(M).all():
        raise ValueError(f"{name} contains NaN or Inf")
    return M


@dataclass(frozen=True)
class ConditionObjective:
    """Value and gradient of ``Σ_i κ(λ_i)^2`` at a matrix ``M``, with its eigensystem.

    Attributes
    ----------
    value : float
        ``Σ_i κ(λ_i)^2 = kappa_F(V)^2 / n`` (unit-column ``V``); ``inf`` if ``V`` is
        numerically singular or two eigenvalues coincide.
    gradient : numpy.ndarray, complex, shape (n, n)
        ``G`` with ``d value = Re Σ conj(G) ∘ dM`` for every complex ``dM``: the real
        part is the gradient in ``Re M``, the imaginary part in ``Im M``.
    eigenvalues : numpy.ndarray, complex, shape (n,)
    V, W : numpy.ndarray, complex, shape (n, n)
        Eigenvectors as ``geev`` returns them (unit columns) and ``W = V^{-1}``.
    """

    value: float
    gradient: np.ndarray
    eigenvalues: np.ndarray
    V: np.ndarray
    W: np.ndarray


def condition_objective(M: np.ndarray) -> ConditionObjective:
    r"""Sum of squared eigenvalue condition numbers of ``M`` and its gradient.

    With ``M = V Λ W``, ``W = V^{-1}``, ``a_i = ||v_i||^2``, ``b_i = ||w_i||^2`` the
    value is ``f = Σ a_i b_i``. For ``K = W dM V`` the eigenvector derivative is
    ``dV = V C``, ``C_ij = K_ij / (λ_j - λ_i)`` (``C_ii = 0``: ``f`` does not depend on
    column scaling) and ``dW = -C W``, hence

    ``df = 2 Re Σ_ij K_ij D_ij (b_j G_ji - a_i H_ji)``, ``G = V^H V``, ``H = W W^H``,

    ``D_ij = 1/(λ_j - λ_i)``, and the gradient is ``2 conj(W^T N V^T)`` with
    ``N = D ∘ (b_j G_ji - a_i H_ji)``. Valid where the eigenvalues are simple; the
    value tends to infinity as two coalesce, so a descent method stays away.
    Accuracy: ``W`` is formed by an LU solve, so the gradient carries a relative
    error of order ``u kappa_2(V)^2``, negligible while ``kappa_2(V) << 1e8``.

    Parameters
    ----------
    M : numpy.ndarray, shape (n, n)
        Square, finite, floating or complex.

    Returns
    -------
    ConditionObjective

    Raises
    ------
    TypeError, ValueError
        ``M`` not a square finite floating-point numpy array.
    """
    M = _square(M, "M")
    n = M.shape[0]
    lam, V = scipy.linalg.eig(M)
    lam = lam.astype(np.complex128)
    V = V.astype(np.complex128)
    try:
        W = np.linalg.solve(V, np.eye(n))
    except np.linalg.LinAlgError:
        return ConditionObjective(np.inf, np.zeros((n, n), complex), lam, V, V)
    a = np.sum(np.abs(V) ** 2, axis=0)
    b = np.sum(np.abs(W) ** 2, axis=1)
    value = float(np.sum(a * b))
    gap = lam[None, :] - lam[:, None]
    np.fill_diagonal(gap, 1.0)
    if not np.isfinite(value) or np.any(gap == 0):
        return ConditionObjective(np.inf, np.zeros((n, n), complex), lam, V, W)
    D = 1.0 / gap
    np.fill_diagonal(D, 0.0)
    G = V.conj().T @ V
    H = W @ W.conj().T
    N = D * (b[None, :] * G.T - a[:, None] * H.T)
    grad = 2.0 * np.conj(W.T @ N @ V.T)
    return ConditionObjective(value, grad, lam, V, W)


@dataclass(frozen=True)
class PerturbationOptimum:
    """Outcome of :func:`optimize_perturbation`.

    Attributes
    ----------
    E : numpy.ndarray, complex, shape (n, n)
        The optimised perturbation (the initial one if no step was taken).
    converged : bool
        True when L-BFGS-B met its gradient or relative-decrease test before
        ``maxiter`` (a :class:`~numlib.result.ConvergenceWarning` otherwise).
    iterations, evaluations : int
        L-BFGS-B iterations and objective evaluations.
    objective : numpy.ndarray
        Objective after each iteration, entry 0 at the initial ``E``.
    message : str
        L-BFGS-B's stopping message.
    """

    E: np.ndarray
    converged: bool
    iterations: int
    evaluations: int
    objective: np.ndarray
    message: str


def optimize_perturbation(
    A: np.ndarray,
    E0: np.ndarray,
    scale: float,
    *,
    gamma: float = 1.0,
    barrier: float = 10.0,
    margin: float = 0.0,
    maxiter: int = 200,
    gtol: float = 1e-5,
    ftol: float = 1e-9,
) -> PerturbationOptimum:
    r"""Minimise a conditioning-plus-size objective over complex perturbations ``E``.

    Objective, with ``s = scale`` and ``κ(λ_i)`` the condition numbers of the
    eigenvalues of ``A + E`` (:func:`condition_objective`):

    ``J(E) = ln Σ_i κ(λ_i)^2 + gamma ||E||_F^2 / s^2 + barrier Σ_i (max(0, Re λ_i + δ) / t)^2``

    with ``δ = margin`` and ``t = δ`` (``t = s`` when ``δ = 0``).

    The logarithm makes the first term scale-free (a random ``E`` of size ``s`` gives
    ``kappa ~ 1/s``, so ``ln kappa^2`` and the ``||E||^2/s^2`` term trade relative
    changes, and ``gamma`` sets how far ``||E||`` may grow past ``s``); the last term
    is a quadratic penalty that pushes every eigenvalue to ``Re λ <= -δ``, so stability
    is the optimiser's business and not left to reflection afterwards (a penalty, not a
    constraint: an eigenvalue may end slightly right of ``-δ``). The unknowns
    are ``Re E / s`` and ``Im E / s`` (``2 n^2`` reals), optimised by L-BFGS-B with
    the analytic gradient from :func:`condition_objective` from the initial ``E0``.

    Stopping rule: L-BFGS-B stops when the largest gradient component is
    ``<= gtol``, when the relative decrease of ``J`` in one iteration is
    ``<= ftol``, or after ``maxiter`` iterations; only the last counts as not
    converged. ``J`` never increases across accepted iterations, so the result is no
    worse than ``E0`` in ``J``. Cost per evaluation: one ``geev`` plus ``O(n^3)``.

    Parameters
    ----------
    A : numpy.ndarray, shape (n, n)
        Matrix to perturb (validated by the caller).
    E0 : numpy.ndarray, shape (n, n)
        Initial perturbation.
    scale : float
        ``s > 0``, the reference size of ``E`` (``eps ||A||_2`` in
        :func:`numlib.diag.perturb_then_diagonalize`).
    gamma, barrier : float
        Weights, >= 0.
    margin : float
        ``δ >= 0``: eigenvalues right of ``-δ`` are penalised.
    maxiter : int
        Iteration cap.
    gtol, ftol : float
        L-BFGS-B tolerances (``pgtol`` and ``ftol``).

    Returns
    -------
    PerturbationOptimum

    Raises
    ------
    TypeError, ValueError
        ``A`` not square, finite and floating; ``E0`` of another shape or not finite;
        ``scale`` not > 0; a negative weight, ``margin`` or tolerance; ``maxiter < 1``.

    Warns
    -----
    ConvergenceWarning
        If the iteration cap was hit.
    """
    A = _square(A, "A")
    E0 = _square(E0, "E0")
    if E0.shape != A.shape:
        raise ValueError(f"E0 must have the shape of A, {A.shape}, got {E0.shape}")
    scale = check_positive_real(scale, "scale")
    gamma = check_tolerance(gamma, "gamma")
    barrier = check_tolerance(barrier, "barrier")
    margin = check_tolerance(margin, "margin")
    gtol = check_tolerance(gtol, "gtol")
    ftol = check_tolerance(ftol, "ftol")
    maxiter = check_positive_int(maxiter, "maxiter")
    n = A.shape[0]
    A = A.astype(np.complex128)
    history: list[float] = []
    width = margin if margin > 0 else scale

    def unpack(x: np.ndarray) -> np.ndarray:
        return (x[: n * n] + 1j * x[n * n :]).reshape(n, n) * scale

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        E = unpack(x)
        obj = condition_objective(A + E)
        if not np.isfinite(obj.value):
            # L-BFGS-B backtracks on a huge value; inf would abort its line search.
            return 1e300, np.zeros(2 * n * n)
        push = np.maximum(obj.eigenvalues.real + margin, 0.0) / width
        J = np.log(obj.value) + gamma * float(np.vdot(E, E).real) / scale**2
        J += barrier * float(push @ push)
        c = 2.0 * barrier * push / width
        grad = obj.gradient / obj.value + 2.0 * gamma * E / scale**2
        grad = grad + np.conj((obj.W.T * c) @ obj.V.T)
        grad = grad * scale  # chain rule for the scaled unknowns
        return float(J), np.concatenate([grad.real.ravel(), grad.imag.ravel()])

    # Imported here: scipy.optimize takes longer to import than all of numlib.diag.
    import scipy.optimize

    Z0 = np.asarray(E0, dtype=np.complex128) / scale
    x0 = np.concatenate([Z0.real.ravel(), Z0.imag.ravel()])
    with small_lapack_threads(n):
        history.append(fun(x0)[0])
        res = scipy.optimize.minimize(
            fun,
            x0,
            jac=True,
            method="L-BFGS-B",
            callback=lambda intermediate_result: history.append(float(intermediate_result.fun)),
            options={"maxiter": maxiter, "gtol": gtol, "ftol": ftol},
        )
    converged = bool(res.success)
    if not converged:
        warnings.warn(
            f"PTD optimisation stopped after {res.nit} iterations without meeting its "
            f"tolerances ({res.message})",
            ConvergenceWarning,
            stacklevel=3,
        )
    return PerturbationOptimum(
        E=unpack(res.x),
        converged=converged,
        iterations=int(res.nit),
        evaluations=int(res.nfev),
        objective=np.array(history),
        message=str(res.message),
    )
