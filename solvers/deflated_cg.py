"""Deflated conjugate gradients for sequences of symmetric positive definite systems.

The SPD counterpart of GCRO-DR: CG whose search directions are kept
``A``-orthogonal to a subspace ``W`` that approximates the eigenvectors of the
smallest eigenvalues, so that those eigenvalues no longer slow convergence.
While CG runs, its search directions feed a small thick-restarted Rayleigh-Ritz
window (eigCG, Stathopoulos and Orginos 2010) that keeps the best ``k``
approximations of the smallest eigenvectors seen over the whole run; at the end
a Rayleigh-Ritz step on ``W`` plus that window gives the space handed to the
next system.

References
----------
.. [1] Y. Saad, M. Yeung, J. Erhel, F. Guyomarc'h, "A deflated version of the
   conjugate gradient algorithm", SIAM J. Sci. Comput. 21(5), 2000, 1909-1926.
.. [2] M. L. Parks, E. de Sturler, et al. (2006), the recycling framework that
   :mod:`solvers.gcrodr` implements for general matrices.
.. [3] A. Stathopoulos, K. Orginos, "Computing and deflating eigenvalues while
   solving multiple right-hand side linear systems with an application to
   quantum chromodynamics", SIAM J. Sci. Comput. 32(1), 2010, 439-462 (eigCG).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np
import scipy.linalg

from numlib.backend import to_numpy
from numlib.result import SolveResult
from numlib.validate import check_positive_int
from solvers.krylov import conjugate_gradients
from solvers.state import Callback, device_of, prepare, vector_norm
from solvers.subspace import RecycleSpace, check_recycle_space

__all__ = ["deflated_cg"]


def deflated_cg(
    A: Any,
    b: Any,
    *,
    k: int = 20,
    window: int | None = None,
    recycle: RecycleSpace | None = None,
    x0: Any = None,
    rtol: float = 1e-5,
    atol: float = 0.0,
    maxiter: int | None = None,
    M: Any = None,
    callback: Callback | None = None,
) -> SolveResult:
    """Solve SPD ``A x = b`` by CG deflated with a recycled space, and refine the space.

    With ``W`` the recycled space made ``A``-orthonormal, the initial guess is
    corrected by the Galerkin projection ``x += W^T W r`` (so ``r`` is orthogonal
    to ``W``) and every search direction is ``p = z + beta p - W^T (A W z)``: CG
    on the operator restricted to the ``A``-orthogonal complement of ``W``, whose
    effective condition number is ``lambda_max / lambda_{k+1}`` when ``W`` spans
    the eigenvectors of the ``k`` smallest eigenvalues (Saad et al. 2000, Thm 4.2).
    Without ``recycle`` the first solve is plain (P)CG.

    The space is refined as in eigCG (Stathopoulos and Orginos 2010): every
    search direction ``p`` (with ``A p``) joins a window of at most
    ``2 k + window`` vectors; when it is full, it is compressed by Rayleigh-Ritz
    to the ``k`` Ritz vectors of smallest Ritz value plus the ``k`` of the
    window without its newest vector (eigCG's locally optimal restart, which
    keeps the Ritz vectors converging as in unrestarted Lanczos). The search
    directions of one CG run span its Krylov space, as the Lanczos vectors of
    eigCG do; the projected matrices are formed explicitly (``2 s`` inner
    products for the ``s``-th vector of the window) rather than from CG's
    coefficients, which the deflated recurrence would perturb. After
    convergence a Rayleigh-Ritz step for ``A`` on ``span(W) + span(window)``
    returns the ``k`` Ritz vectors of smallest Ritz value in
    ``info["recycle"]``. With a preconditioner the Ritz step still targets
    ``A``'s small eigenvalues, which is what deflation of ``A``-orthogonal
    directions removes; it is a heuristic for ``MA``.

    Parameters
    ----------
    A : array, scipy.sparse matrix or LinearOperator, shape (n, n)
        Hermitian positive definite; loss of definiteness is reported as a
        breakdown.
    b : array, shape (n,)
        Right-hand side; numpy, torch or cupy.
    k : int
        Dimension of the recycled space to return, ``>= 1``.
    window : int, optional
        Number of search directions added to the eigCG window between two
        compressions (default ``k``); the window holds up to ``2 k + window``
        vectors and their images, ``2 (2 k + window) n`` extra memory.
    recycle : RecycleSpace, optional
        Space from a previous solve (``result.info["recycle"]``), any basis.
    x0, rtol, atol, maxiter, M, callback
        As in :func:`solvers.krylov.cg`.

    Returns
    -------
    SolveResult
        ``info`` has ``"recycle"``, ``"matvecs"`` (iterations plus ``k`` to form
        ``A W`` plus residual checks), ``"recycled_residual_reduction"`` and
        ``"true_residual_norm"``.

    Raises
    ------
    TypeError, ValueError
        For bad inputs as in :func:`solvers.krylov.cg`, ``k < 1``,
        ``window < 1`` or a recycle space that is not finite floating rows of
        length ``n``, none zero (:func:`solvers.subspace.check_recycle_space`).

    Warns
    -----
    ConvergenceWarning
        If the tolerance was not met (with ``converged=False``).

    Examples
    --------
    >>> from solvers.problems import darcy
    >>> first = deflated_cg(darcy(32, rng=1).A, darcy(32, rng=1).b, k=10, rtol=1e-8)
    >>> second = deflated_cg(darcy(32, rng=2).A, darcy(32, rng=2).b, k=10, rtol=1e-8,
    ...                      recycle=first.info["recycle"])
    >>> second.converged and second.iterations < first.iterations
    True
    """
    k = check_positive_int(k, "k")
    window = k if window is None else check_positive_int(window, "window")
    state = prepare(A, b, x0, rtol, atol, maxiter, M, callback)
    xp, matvec, x = state.xp, state.matvec, state.x
    n = x.shape[0]
    check_recycle_space(recycle, n)
    window = min(window, n)
    empty = xp.empty((0, n), dtype=x.dtype, device=device_of(x))
    W, AW = empty, empty
    matvecs = 0
    r, residual_norm = state.residual()
    matvecs += 1
    history = [residual_norm]
    reduction = 1.0
    if recycle is not None and residual_norm > 0:
        U = xp.asarray(recycle.U, dtype=x.dtype, device=device_of(x))
        AU = xp.stack([matvec(u) for u in U])
        matvecs += U.shape[0]
        W, AW = _a_orthonormalise(xp, U, AU)
        coefficients = _project(xp, W, r)
        x += coefficients @ W
        r = r - coefficients @ AW
        before, residual_norm = residual_norm, vector_norm(xp, r)
        reduction = residual_norm / before

    ritz_window = _RitzWindow(xp, x, min(k, n), min(2 * k + window, n))
    run = conjugate_gradients(
        state,
        r,
        residual_norm,
        history,
        direction=lambda z: z - _project(xp, AW, z) @ W,
        observe=ritz_window.add,
    )
    matvecs += run.iterations + run.residual_checks
    V, AV = ritz_window.basis()
    space = _rayleigh_ritz(xp, W, AW, V, AV, k)
    return state.finish(
        "deflated_cg",
        run.iterations,
        history,
        run.breakdown,
        true_norm=run.residual_norm,
        recycle=space if space is not None else recycle,
        matvecs=matvecs,
        recycled_residual_reduction=reduction,
    )


class _RitzWindow:
    """eigCG's thick-restarted window: vectors ``V``, images ``A V`` and their Gram matrices."""

    def __init__(self, xp: ModuleType, like: Any, nev: int, capacity: int) -> None:
        self.xp, self.nev = xp, nev
        self.capacity = max(capacity, 2 * nev + 1)
        n = like.shape[0]
        self.V = xp.empty((self.capacity, n), dtype=like.dtype, device=device_of(like))
        self.AV = xp.empty_like(self.V)
        host = np.complex128 if "complex" in str(like.dtype) else np.float64
        self.mass = np.zeros((self.capacity, self.capacity), dtype=host)
        self.stiffness = np.zeros_like(self.mass)
        self.size = 0

    def add(self, p: Any, q: Any) -> None:
        """Append the direction ``p`` with ``q = A p``; compress first when full."""
        if self.size == self.capacity:
            self._compress()
        s, xp = self.size, self.xp
        self.V[s], self.AV[s] = p, q
        overlap = to_numpy(_project(xp, self.V[: s + 1], p))
        energy = to_numpy(_project(xp, self.AV[: s + 1], p))  # V A p, as A is Hermitian
        self.mass[s, : s + 1], self.mass[: s + 1, s] = overlap.conj(), overlap
        self.stiffness[s, : s + 1], self.stiffness[: s + 1, s] = energy.conj(), energy
        self.size = s + 1

    def basis(self) -> tuple[Any, Any]:
        """Return the current window ``(V, A V)``."""
        return self.V[: self.size], self.AV[: self.size]

    def _compress(self) -> None:
        """Keep the ``nev`` smallest Ritz vectors of the window and of the window less one."""
        s = self.size
        mass, stiffness = self.mass[:s, :s], self.stiffness[:s, :s]
        current = _smallest_ritz(stiffness, mass, self.nev)
        previous = np.zeros((s, self.nev), dtype=mass.dtype)
        previous[: s - 1] = _smallest_ritz(stiffness[:-1, :-1], mass[:-1, :-1], self.nev)
        # Rayleigh-Ritz once more on the span of both sets, orthonormal in the
        # mass inner product, so that the compressed window is a Ritz basis.
        candidates = np.hstack([current, previous])
        values, vectors = np.linalg.eigh(_hermitian(candidates.conj().T @ mass @ candidates))
        keep = values > 1e-12 * values.max()
        basis = candidates @ (vectors[:, keep] / np.sqrt(values[keep]))
        ritz_values, ritz_vectors = np.linalg.eigh(_hermitian(basis.conj().T @ stiffness @ basis))
        combination = basis @ ritz_vectors
        xp, r = self.xp, combination.shape[1]
        transform = xp.asarray(combination.T, dtype=self.V.dtype, device=device_of(self.V))
        self.V[:r], self.AV[:r] = transform @ self.V[:s], transform @ self.AV[:s]
        self.mass[:] = 0
        self.stiffness[:] = 0
        self.mass[:r, :r] = np.eye(r)
        self.stiffness[:r, :r] = np.diag(ritz_values)
        self.size = r


def _smallest_ritz(stiffness: np.ndarray, mass: np.ndarray, count: int) -> np.ndarray:
    """Coefficients of the ``count`` smallest Ritz vectors of the pencil, zero-padded."""
    values, vectors = np.linalg.eigh(_hermitian(mass))
    keep = values > 1e-12 * values.max()
    T = vectors[:, keep] / np.sqrt(values[keep])
    ritz = np.linalg.eigh(_hermitian(T.conj().T @ stiffness @ T))[1][:, :count]
    out = np.zeros((mass.shape[0], count), dtype=mass.dtype)
    out[:, : ritz.shape[1]] = T @ ritz
    return out


def _hermitian(a: np.ndarray) -> np.ndarray:
    return (a + a.conj().T) / 2


def _project(xp: ModuleType, rows: Any, v: Any) -> Any:
    """Coefficients ``rows^H v`` (device array)."""
    adjoint = xp.conj(rows) if "complex" in str(rows.dtype) else rows
    return adjoint @ v


def _a_orthonormalise(xp: ModuleType, U: Any, AU: Any) -> tuple[Any, Any]:
    """Return ``(W, A W)`` with ``W A W^H = I`` spanning ``U``, dependent rows dropped."""
    gram = to_numpy(_project(xp, U, xp.matrix_transpose(AU)))
    gram = (gram + gram.conj().T) / 2
    values, vectors = np.linalg.eigh(gram)
    keep = values > 1e-12 * max(values.max(), 0.0)
    transform = (vectors[:, keep] / np.sqrt(values[keep])).T.conj()
    T = xp.asarray(transform, dtype=U.dtype, device=device_of(U))
    return T @ U, T @ AU


def _rayleigh_ritz(xp: ModuleType, W: Any, AW: Any, P: Any, AP: Any, k: int) -> RecycleSpace | None:
    """Ritz vectors of ``A`` for the ``k`` smallest Ritz values on ``span(W, P)``."""
    Z = xp.concat([W, P])
    if Z.shape[0] == 0:
        return None
    AZ = xp.concat([AW, AP])
    stiffness = to_numpy(_project(xp, Z, xp.matrix_transpose(AZ)))
    mass = to_numpy(_project(xp, Z, xp.matrix_transpose(Z)))
    stiffness = (stiffness + stiffness.conj().T) / 2
    mass = (mass + mass.conj().T) / 2
    # Orthonormalise span(Z) first: late CG directions can be nearly dependent
    # on W, which would make the mass matrix singular.
    values, vectors = np.linalg.eigh(mass)
    keep = values > 1e-12 * values.max()
    T = vectors[:, keep] / np.sqrt(values[keep])
    ritz_values, ritz_vectors = scipy.linalg.eigh(T.conj().T @ stiffness @ T)
    coefficients = (T @ ritz_vectors[:, : min(k, ritz_values.size)]).T
    return RecycleSpace(xp.asarray(coefficients, dtype=Z.dtype, device=device_of(Z)) @ Z)
