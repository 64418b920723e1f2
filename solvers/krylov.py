"""Krylov solvers for ``A x = b``: preconditioned CG and restarted GMRES(m).

Both accept a dense array (numpy, torch, cupy), a scipy.sparse matrix or a
``LinearOperator``, compute in the array library of ``b``, and return one
:class:`numlib.result.SolveResult`. The stopping test is scipy's::

    ||b - A x||_2 <= max(rtol * ||b||_2, atol)

and ``converged`` is True only after that test passed on a *recomputed* residual,
never on the recurrence's estimate alone. A method that stops short (iteration
budget, breakdown) returns its last iterate with ``converged=False`` and a
:class:`numlib.result.ConvergenceWarning`.

References
----------
.. [1] M. R. Hestenes and E. Stiefel, "Methods of conjugate gradients for solving
   linear systems", J. Res. Nat. Bur. Standards 49 (1952).
.. [2] Y. Saad and M. H. Schultz, "GMRES: a generalized minimal residual algorithm
   for solving nonsymmetric linear systems", SIAM J. Sci. Stat. Comput. 7 (1986).
.. [3] Y. Saad, "Iterative Methods for Sparse Linear Systems", 2nd ed., SIAM 2003,
   Alg. 9.1 (PCG) and 9.5 (right-preconditioned GMRES).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from numlib.backend import inner
from numlib.result import SolveResult
from numlib.validate import check_positive_int
from solvers.arnoldi import (
    HessenbergLeastSquares,
    Reorthogonalize,
    check_reorthogonalize,
    orthogonalize,
)
from solvers.state import Callback, SolveState, device_of, prepare, vector_norm

__all__ = ["CGRun", "cg", "conjugate_gradients", "gmres"]


def cg(
    A: Any,
    b: Any,
    *,
    x0: Any = None,
    rtol: float = 1e-5,
    atol: float = 0.0,
    maxiter: int | None = None,
    M: Any = None,
    callback: Callback | None = None,
) -> SolveResult:
    """Solve ``A x = b`` for Hermitian positive definite ``A`` by preconditioned CG.

    Each iteration applies ``A`` once and ``M`` once. In exact arithmetic the
    iterate minimises the ``A``-norm of the error over ``x0 + K_k(MA, M r0)``, so CG
    terminates in at most as many iterations as ``MA`` has distinct eigenvalues,
    and the error contracts at least by ``2((sqrt(kappa) - 1)/(sqrt(kappa) + 1))^k``.

    When the recurrence residual meets the tolerance the true residual is
    recomputed; if rounding has let the two drift apart, CG restarts from the
    true residual rather than report a false convergence.

    Parameters
    ----------
    A : array, scipy.sparse matrix or LinearOperator, shape (n, n)
        Hermitian positive definite operator. Not checked for symmetry; loss of
        positive definiteness is detected as a breakdown (``p^H A p <= 0``).
    b : array, shape (n,)
        Right-hand side; numpy, torch or cupy. ``x`` is returned in the same kind.
    x0 : array, shape (n,), optional
        Starting guess (default zeros). Not modified.
    rtol, atol : float
        Stop when ``||b - A x|| <= max(rtol ||b||, atol)``; finite, ``>= 0``, not
        both zero.
    maxiter : int, optional
        Largest number of iterations (default ``10 n``).
    M : array, scipy.sparse matrix or LinearOperator, optional
        Hermitian positive definite preconditioner approximating ``A^{-1}``
        (scipy's convention; e.g. ``pyamg``'s ``ml.aspreconditioner()``).
    callback : callable, optional
        Called as ``callback(xk)`` after every iteration; ``xk`` is the live
        iterate, copy it to keep it.

    Returns
    -------
    SolveResult
        ``residual_norms[k]`` is the recurrence residual ``||r_k||`` after
        iteration ``k``; ``info["true_residual_norm"]`` the recomputed final one;
        ``info["breakdown"]`` explains a breakdown.

    Raises
    ------
    TypeError, ValueError
        For inputs of the wrong kind, shape or dtype, NaN/Inf entries, or
        tolerances (``rtol`` and ``atol`` both zero included) and ``maxiter``
        out of range, before any work.

    Warns
    -----
    ConvergenceWarning
        If the tolerance was not met (with ``converged=False``).

    References
    ----------
    .. [1] Hestenes and Stiefel (1952); Saad (2003), Algorithm 9.1.

    Examples
    --------
    >>> from solvers.problems import poisson2d
    >>> system = poisson2d(64)
    >>> result = cg(system.A, system.b, rtol=1e-10)
    >>> result.converged, result.iterations < 300
    (True, True)
    """
    state = prepare(A, b, x0, rtol, atol, maxiter, M, callback)
    if state.b_norm == 0.0 and x0 is None:
        return state.finish("cg", 0, [0.0], true_norm=0.0)

    r, residual_norm = state.residual()
    history = [residual_norm]
    run = conjugate_gradients(state, r, residual_norm, history)
    return state.finish("cg", run.iterations, history, run.breakdown, true_norm=run.residual_norm)


def gmres(
    A: Any,
    b: Any,
    *,
    restart: int = 20,
    x0: Any = None,
    rtol: float = 1e-5,
    atol: float = 0.0,
    maxiter: int | None = None,
    M: Any = None,
    callback: Callback | None = None,
    reorthogonalize: Reorthogonalize = "ifneeded",
) -> SolveResult:
    """Solve ``A x = b`` by restarted GMRES(m) with right preconditioning.

    Each cycle builds an orthonormal basis of ``K_m(A M, r0)`` by Arnoldi with
    classical Gram-Schmidt, reorthogonalised when needed, and chooses
    ``x = x0 + M V y`` minimising the true residual ``||b - A x||`` over it.
    Right preconditioning keeps the minimised quantity the unpreconditioned
    residual, so the stopping test needs no preconditioned norms. With
    ``restart >= n`` (no restarts) GMRES converges in at most ``n`` iterations in
    exact arithmetic; an invariant subspace found earlier ("happy breakdown")
    ends the cycle with the exact solution.

    Parameters
    ----------
    A : array, scipy.sparse matrix or LinearOperator, shape (n, n)
        Nonsingular operator.
    b : array, shape (n,)
        Right-hand side; numpy, torch or cupy. ``x`` is returned in the same kind.
    restart : int
        Cycle length ``m`` (basis size); capped at ``n``.
    x0 : array, shape (n,), optional
        Starting guess (default zeros). Not modified.
    rtol, atol : float
        Stop when ``||b - A x|| <= max(rtol ||b||, atol)``; finite, ``>= 0``, not
        both zero.
    maxiter : int, optional
        Largest number of *iterations* (applications of ``A``) over all cycles,
        default ``10 n``. Note: scipy's ``gmres`` counts cycles instead.
    M : array, scipy.sparse matrix or LinearOperator, optional
        Right preconditioner approximating ``A^{-1}``.
    callback : callable, optional
        Called as ``callback(xk)`` at the end of every cycle (the iterate is
        only formed then).
    reorthogonalize : {"ifneeded", "always", "never"}
        Second Gram-Schmidt pass (:func:`solvers.arnoldi.orthogonalize`):
        when needed (default), always, or never (PETSc's default).

    Returns
    -------
    SolveResult
        ``residual_norms[k]`` is the GMRES least-squares residual after
        iteration ``k`` (equal to ``||b - A x_k||`` in exact arithmetic);
        ``info["cycles"]`` counts restart cycles, ``info["true_residual_norm"]``
        is recomputed.

    Raises
    ------
    TypeError, ValueError
        For inputs of the wrong kind, shape or dtype, NaN/Inf entries, or
        tolerances (``rtol`` and ``atol`` both zero included), ``restart`` and
        ``maxiter`` out of range, before any work.

    Warns
    -----
    ConvergenceWarning
        If the tolerance was not met (with ``converged=False``).

    References
    ----------
    .. [1] Saad and Schultz (1986); Saad (2003), Algorithm 9.5.

    Examples
    --------
    >>> from solvers.problems import convection_diffusion
    >>> system = convection_diffusion(32, 10.0)
    >>> gmres(system.A, system.b, restart=30, rtol=1e-10).converged
    True
    """
    restart = check_positive_int(restart, "restart")
    reorthogonalize = check_reorthogonalize(reorthogonalize)
    state = prepare(A, b, x0, rtol, atol, maxiter, M, callback)
    xp, matvec, precondition, x = state.xp, state.matvec, state.precondition, state.x
    n = x.shape[0]
    m = min(restart, n)
    basis = xp.empty((m + 1, n), dtype=x.dtype, device=device_of(x))
    host_dtype = np.complex128 if "complex" in str(x.dtype) else np.float64
    eps = float(np.finfo(host_dtype).eps)

    r, residual_norm = state.residual()
    history = [residual_norm]
    iterations = cycles = 0
    breakdown = None
    # Largest ||A v_j|| seen without a preconditioner (unit v_j: free, by Pythagoras);
    # a lower bound on ||A|| that only a breakdown report reads.
    a_norm = 0.0
    while residual_norm > state.tolerance and iterations < state.maxiter:
        cycles += 1
        basis[0] = r / residual_norm
        lsq = HessenbergLeastSquares(m, residual_norm, host_dtype)
        invariant = False
        for j in range(m):
            v = basis[j] if precondition is None else precondition(basis[j])
            w = matvec(v)
            h, h_next = orthogonalize(xp, basis, j + 1, w, None, reorthogonalize)
            # ||A M v_j|| by Pythagoras over the orthonormal basis: no extra reduction.
            w_norm = math.hypot(float(np.linalg.norm(h)), h_next)
            if precondition is None:
                a_norm = max(a_norm, w_norm)
            iterations += 1
            history.append(lsq.append(h, h_next))
            # Happy breakdown: A M v_j lies (to rounding) in the current basis, so
            # the Krylov space is invariant and the minimiser is the solution.
            invariant = h_next <= 4 * eps * w_norm
            if invariant or history[-1] <= state.tolerance or iterations >= state.maxiter:
                break
            w /= h_next
            basis[j + 1] = w
        y = xp.asarray(lsq.solve(), dtype=x.dtype, device=device_of(x))
        update = y @ basis[: lsq.columns]
        step = update if precondition is None else precondition(update)
        x += step
        previous, r_previous = residual_norm, r
        r, residual_norm = state.residual()
        if residual_norm > previous:
            # A cycle minimises the residual over a space that contains the current
            # iterate, so it cannot grow unless the small least-squares problem was
            # numerically singular (A M singular on the Krylov space): keep the iterate
            # from before the cycle rather than return a worse, possibly huge, one.
            x -= step
            r, residual_norm = r_previous, previous
            if not invariant:
                breakdown = (
                    "a GMRES cycle increased the residual (A M numerically singular on the "
                    "Krylov space?); the iterate before that cycle is returned"
                )
        if callback is not None:
            callback(x)
        if breakdown is not None:
            break
        if invariant and residual_norm > state.tolerance and residual_norm >= previous:
            scale = max(state.b_norm, history[0])
            x_norm = vector_norm(xp, x)
            if precondition is not None and x_norm > 0:
                # ||A x|| / ||x|| from the recomputed residual (A x = b - r): no norm
                # of M v_j in the loop, where it would cost a reduction per step.
                a_norm = vector_norm(xp, state.b - r) / x_norm
            breakdown = _invariant_breakdown(residual_norm, scale, a_norm, x_norm, n, eps)
            break
    return state.finish(
        "gmres", iterations, history, breakdown, true_norm=residual_norm, cycles=cycles, restart=m
    )


def _invariant_breakdown(
    residual_norm: float, scale: float, a_norm: float, x_norm: float, n: int, eps: float
) -> str:
    """Why a cycle that found an invariant Krylov space left the residual where it was.

    In exact arithmetic the minimiser over an invariant space solves the system, so a
    residual that stays put means ``A`` (or ``A M``) is singular on that space, unless
    it is already small (below ``sqrt(eps)`` relative to ``scale``, the larger of
    ``||b||`` and the initial residual) and at the rounding level of ``b - A x``,
    about ``eps (||b|| + ||A|| ||x||)`` (a normwise backward error of order ``eps``):
    then ``x`` is as accurate as working precision allows and only the tolerance is
    out of reach.
    """
    floor = 4 * math.sqrt(n) * eps * (scale + a_norm * x_norm)
    if residual_norm > floor or residual_norm > math.sqrt(eps) * scale:
        return "Krylov space became invariant without reducing the residual (A singular?)"
    return (
        f"the residual stagnated at the rounding level {floor:.3e} of b - A x: the "
        "tolerance is below the accuracy attainable in this precision"
    )


@dataclass(frozen=True)
class CGRun:
    """How a run of :func:`conjugate_gradients` ended."""

    iterations: int
    breakdown: str | None
    residual: Any  # the recomputed b - A x
    residual_norm: float
    residual_checks: int  # operator applications spent recomputing the residual


def conjugate_gradients(
    state: SolveState,
    r: Any,
    residual_norm: float,
    history: list[float],
    *,
    direction: Callable[[Any], Any] | None = None,
    observe: Callable[[Any, Any], None] | None = None,
) -> CGRun:
    """Run preconditioned CG iterations on ``state`` from the residual ``r``.

    The loop shared by :func:`cg` and :func:`solvers.deflated_cg.deflated_cg`:
    it updates ``state.x`` in place, appends the recurrence residual norm of
    every iteration to ``history``, and stops on the tolerance (checked on the
    recomputed residual: a recurrence that drifted is restarted from the true
    one), on ``state.maxiter`` or on a breakdown (``A`` or ``M`` not positive
    definite).

    Parameters
    ----------
    state : SolveState
        Validated problem; ``state.x`` must satisfy ``r = b - A x``.
    r, residual_norm : array, float
        Current residual and its norm.
    history : list of float
        Residual norms so far; extended in place.
    direction : callable, optional
        Maps a preconditioned residual ``z`` to the part of it used in the search
        direction; deflated CG removes the recycled space's ``A``-component here.
    observe : callable, optional
        Called as ``observe(p, q)`` with each search direction and ``q = A p``.
    """
    xp, matvec, precondition, x = state.xp, state.matvec, state.precondition, state.x
    iterations = checks = 0
    breakdown = None
    while residual_norm > state.tolerance and iterations < state.maxiter and breakdown is None:
        # (Re)start the recurrence from the current residual r.
        z = r if precondition is None else precondition(r)
        rho = inner(xp, r, z).real
        p = xp.asarray(z if direction is None else direction(z), copy=True)
        while iterations < state.maxiter:
            if precondition is not None and rho <= 0.0:
                breakdown = f"M is not positive definite (r^H M r = {rho:.3e})"
                break
            q = matvec(p)
            curvature = inner(xp, p, q).real
            if not curvature > 0.0:
                breakdown = f"A is not positive definite (p^H A p = {curvature:.3e})"
                break
            if observe is not None:
                observe(p, q)
            alpha = rho / curvature
            # Plain numpy updates on purpose: scipy.linalg.blas links a second
            # OpenBLAS whose thread pool fights numpy's when calls alternate.
            x += alpha * p
            r -= alpha * q
            iterations += 1
            if precondition is None:
                z = r
                rho_next = inner(xp, r, r).real
                residual_norm = math.sqrt(rho_next)
            else:
                z = precondition(r)
                rho_next = inner(xp, r, z).real
                residual_norm = vector_norm(xp, r)
            history.append(residual_norm)
            if state.callback is not None:
                state.callback(x)
            if residual_norm <= state.tolerance:
                break
            p *= rho_next / rho
            p += z if direction is None else direction(z)
            rho = rho_next
        if breakdown is None:
            # Trust the recurrence only after checking it: on a drifted
            # residual the outer loop restarts CG from the true one.
            r, residual_norm = state.residual()
            checks += 1
    return CGRun(iterations, breakdown, r, residual_norm, checks)
