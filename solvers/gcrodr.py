"""GCRO-DR(m, k): restarted GMRES that recycles a subspace across cycles and systems.

For a sequence of related systems ``A_i x_i = b_i`` the slow part of GMRES is
rediscovering, system after system, the few eigenvectors that restarting keeps
throwing away. GCRO-DR (Parks, de Sturler, Mackey, Johnson, Maiti 2006) keeps a
``k``-dimensional space ``U`` of harmonic Ritz vectors for the eigenvalues of
smallest magnitude, and solves each system with Krylov cycles of ``m - k``
Arnoldi steps run on ``(I - C C^H) A`` where ``C`` spans ``A U`` — the recycled
directions are deflated from the operator. After every cycle the space is
refined from the cycle's Hessenberg data, and at the end it is handed back so
that the next system of the sequence starts with it.

Notation (rows are vectors: a ``(k, n)`` array holds ``k`` vectors of length
``n``): ``A M U^T = C^T`` with ``C`` orthonormal. A cycle of ``p = m - k``
steps gives ``A M V_p^T = C^T B + V_{p+1}^T Hbar``. Because the recycled block
of the least-squares problem is diagonal and invertible, the residual
minimisation reduces exactly to the GMRES problem ``min ||beta e1 - Hbar y||``
(the recycled coefficients follow as ``-B y`` in the ``U`` basis), so the
progressive Givens solver of :mod:`solvers.arnoldi` gives the residual at every
step, as in GMRES.

With a right preconditioner the space is also kept as solution directions
``Y = M U`` (and each cycle keeps ``Z = M V``, as flexible GMRES does), so the
iterate is updated without applying ``M`` again, and the next system of a
sequence re-derives ``C = qr(A Y^T)`` with ``k`` products with its own ``A``:
the directions handed over are those that solved the previous system, whatever
its preconditioner was. Where the preconditioner is rebuilt for each system
this keeps more of the space's value than re-applying the new ``M`` to ``U``:
30 sorted 100² Darcy systems with a new ILU each took 1291 Arnoldi steps
instead of 2367 (Jacobi: 5709 instead of 6765).

References
----------
.. [1] M. L. Parks, E. de Sturler, G. Mackey, D. D. Johnson, S. Maiti,
   "Recycling Krylov subspaces for sequences of linear systems", SIAM J. Sci.
   Comput. 28(5), 2006, 1651-1674.
.. [2] H. Wang, Z. Hao, et al., "Accelerating data generation for neural
   operators via Krylov subspace recycling", ICLR 2024 (SKR: GCRO-DR on sorted
   sequences, m = 40, k = 20).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

import numpy as np
import scipy.linalg

from numlib.backend import to_numpy
from numlib.result import SolveResult
from numlib.validate import check_positive_int
from solvers.arnoldi import (
    HessenbergLeastSquares,
    Reorthogonalize,
    check_reorthogonalize,
    orthogonalize,
    orthogonalize_row_twice,
    subtract_combination,
)
from solvers.state import Callback, device_of, prepare, vector_norm
from solvers.subspace import RecycleSpace, check_recycle_space

__all__ = ["BASIS_PRECISIONS", "BasisPrecision", "RecycleSpace", "check_cycle",
           "check_orthogonalization", "gcrodr"]  # fmt: skip

BasisPrecision = Literal["working", "single"]
BASIS_PRECISIONS: tuple[BasisPrecision, ...] = ("working", "single")


def gcrodr(
    A: Any,
    b: Any,
    *,
    m: int = 40,
    k: int = 20,
    recycle: RecycleSpace | None = None,
    x0: Any = None,
    rtol: float = 1e-5,
    atol: float = 0.0,
    maxiter: int | None = None,
    M: Any = None,
    callback: Callback | None = None,
    reorthogonalize: Reorthogonalize | None = None,
    basis_precision: BasisPrecision = "working",
) -> SolveResult:
    """Solve ``A x = b`` by GCRO-DR(m, k), optionally starting from a recycled space.

    With ``recycle=None`` the first cycle is GMRES(m); every cycle then extracts
    ``k`` harmonic Ritz vectors (smallest harmonic Ritz values) of the current
    search space and deflates them in later cycles. With ``recycle`` given (the
    ``info["recycle"]`` of a previous solve, possibly for a different matrix),
    ``C = qr(A Y)`` is formed from its solution directions ``Y`` (``k``
    applications of ``A``; ``Y = M U`` costs ``k`` of ``M`` more when the
    space has no ``Y``), the initial residual is projected onto ``C^perp`` —
    the best correction within the recycled space — and deflated cycles start
    at once.

    ``converged`` is True only if the recomputed ``||b - A x||`` meets
    ``max(rtol ||b||, atol)``. Recycling changes the iterates, never the answer:
    every returned solution meets the same test.

    Parameters
    ----------
    A : array, scipy.sparse matrix or LinearOperator, shape (n, n)
        Nonsingular operator.
    b : array, shape (n,)
        Right-hand side; numpy, torch or cupy.
    m : int
        Size of the search space per cycle, recycled vectors included (>= 2).
    k : int
        Number of recycled vectors, ``1 <= k < m``.
    recycle : RecycleSpace, optional
        Space from a previous solve (``result.info["recycle"]``).
    x0 : array, shape (n,), optional
        Starting guess (default zeros). Not modified.
    rtol, atol : float
        Stop when ``||b - A x|| <= max(rtol ||b||, atol)``.
    maxiter : int, optional
        Largest number of Arnoldi steps over all cycles (default ``10 n``).
    M : array, scipy.sparse matrix or LinearOperator, optional
        Right preconditioner approximating ``A^{-1}``; it may change between the
        systems of a sequence.
    callback : callable, optional
        Called as ``callback(xk)`` at the end of every cycle.
    reorthogonalize : {"ifneeded", "always", "never"}, optional
        Second Gram-Schmidt pass against ``C`` and against the Arnoldi basis
        (:func:`solvers.arnoldi.orthogonalize`): when needed (the default with
        a working-precision basis), always (the default, and the only choice,
        with a single-precision one), or never (PETSc's default for its GMRES
        family).
    basis_precision : {"working", "single"}
        Storage of the recycled rows ``U, Y, C`` and of each cycle's ``V, Z``:
        the dtype of ``b`` (default), or single precision (float32 / complex64),
        in which the projections then run. On large sparse systems a step is
        dominated by reading ``[C; V]`` (memory bandwidth); single rows halve
        the bytes, and a basis of 40 vectors of 10⁵ entries then fits a 32 MB
        cache, so two passes cost less than one in double, as in
        compressed-basis GMRES [2]_. ``x`` and the residual stay in working
        precision and the residual is recomputed there after every cycle, so
        each cycle corrects the true residual (iterative refinement): the
        attained accuracy and the convergence test are unchanged; only the
        iterates, and possibly their number, differ.

    Returns
    -------
    SolveResult
        ``iterations`` counts Arnoldi steps (one operator application each);
        ``info`` has ``"recycle"`` (the :class:`RecycleSpace` for the next
        system), ``"matvecs"`` (all operator applications: Arnoldi steps, the
        ``k`` for ``A Y``, one residual check per cycle), ``"cycles"``,
        ``"recycled_residual_reduction"`` (``||r|| / ||r0||`` after projecting
        out the recycled space: how much of the initial residual the recycled
        space removed; 1.0 without one) and ``"true_residual_norm"``.

    Raises
    ------
    TypeError, ValueError
        For inputs of the wrong kind, shape or dtype, NaN/Inf, ``m < 2``,
        ``k`` outside ``[1, m)``, or a recycle space that is not finite floating
        rows of length ``n``, none zero (:func:`solvers.subspace.check_recycle_space`).

    Warns
    -----
    ConvergenceWarning
        If the tolerance was not met (with ``converged=False``).

    References
    ----------
    .. [1] Parks, de Sturler, Mackey, Johnson, Maiti (2006), Algorithm 2.4.
    .. [2] J. I. Aliaga, H. Anzt, T. Grützmacher, E. S. Quintana-Ortí, A. E. Tomás,
       "Compressed basis GMRES on high-performance graphics processing units",
       Int. J. High Perform. Comput. Appl. 37 (2023), 82-100.

    Examples
    --------
    >>> import numpy as np
    >>> from solvers.problems import darcy
    >>> first = gcrodr(darcy(24, rng=1).A, np.ones(576), m=30, k=10, rtol=1e-8)
    >>> second = gcrodr(darcy(24, rng=2).A, np.ones(576), m=30, k=10, rtol=1e-8,
    ...                 recycle=first.info["recycle"])
    >>> second.converged and second.iterations < first.iterations
    True
    """
    m, k = check_cycle(m, k)
    reorthogonalize, basis_precision = check_orthogonalization(reorthogonalize, basis_precision)
    state = prepare(A, b, x0, rtol, atol, maxiter, M, callback)
    xp, x = state.xp, state.x
    n = x.shape[0]
    check_recycle_space(recycle, n)
    m = min(m, n)
    k = min(k, m - 1)
    solver = _Recycler(state, m, k, reorthogonalize, basis_precision)

    r, residual_norm = state.residual()
    history = [residual_norm]
    reduction = 1.0
    if recycle is not None and k > 0 and residual_norm > 0:
        rows = [None if R is None else xp.asarray(R[:k], dtype=solver.storage, device=device_of(x))
                for R in (recycle.U, recycle.Y)]  # fmt: skip
        solver.adopt(*rows)
        r, projected_norm = solver.project(r)
        reduction = projected_norm / residual_norm
        residual_norm = projected_norm
    breakdown = None
    while residual_norm > state.tolerance and solver.iterations < state.maxiter:
        start_norm = residual_norm
        outcome = solver.cycle(r, residual_norm, history)
        r, residual_norm = state.residual()
        solver.matvecs += 1
        if outcome.update_space and k > 0:
            solver.refine(outcome)
        if solver.k_current > 0:
            r, residual_norm = solver.project(r)
        if callback is not None:
            callback(x)
        # An invariant space solves the cycle's problem only to the rounding of its
        # rows (single precision: ~1e-6 of the start); while that still halves the
        # true residual, the next cycle refines it.
        if outcome.invariant and residual_norm > max(state.tolerance, start_norm / 2):
            breakdown = (
                "Krylov space became invariant without reaching the tolerance: A M is "
                "singular there, or the tolerance is below the attainable accuracy"
            )
            break
    space = solver.space() if solver.k_current > 0 else recycle
    return state.finish(
        "gcrodr",
        solver.iterations,
        history,
        breakdown,
        true_norm=residual_norm,
        recycle=space,
        matvecs=solver.matvecs,
        cycles=solver.cycles,
        recycled_residual_reduction=reduction,
        m=m,
        k=k,
        basis_precision=basis_precision,
    )


def check_orthogonalization(
    reorthogonalize: Any,
    basis_precision: Any,
    names: tuple[str, str] = ("reorthogonalize", "basis_precision"),
    working_default: Reorthogonalize = "ifneeded",
) -> tuple[Reorthogonalize, BasisPrecision]:
    """Validate GCRO-DR's ``reorthogonalize`` and ``basis_precision`` together.

    ``reorthogonalize=None`` means ``working_default`` with a working-precision
    basis and ``"always"`` with a single-precision one, the only choice there.
    With one pass (``"never"``) the single-precision basis lost its
    orthogonality within the first cycle of a 10⁴-unknown Darcy system (0.36)
    and the residual then grew without bound; with the DGKS test
    (``"ifneeded"``, which projects out ``C`` and then ``V``) it reached 6e-5 on
    convection-diffusion and Darcy systems, where two passes over ``[C; V]``
    kept it at 1.5e-6. ``names`` are what the errors call the two (e.g. PETSc
    option names).
    """
    if basis_precision not in BASIS_PRECISIONS:
        raise ValueError(f"{names[1]} must be one of {BASIS_PRECISIONS}, got {basis_precision!r}")
    if reorthogonalize is None:
        return ("always" if basis_precision == "single" else working_default), basis_precision
    reorthogonalize = check_reorthogonalize(reorthogonalize, names[0])
    if basis_precision == "single" and reorthogonalize != "always":
        raise ValueError(
            f"{names[1]}='single' needs two Gram-Schmidt passes at every step: "
            f"{names[0]}='always' (or unset), not {reorthogonalize!r}"
        )
    return reorthogonalize, basis_precision


def check_cycle(m: Any, k: Any, names: tuple[str, str] = ("m", "k")) -> tuple[int, int]:
    """Return GCRO-DR's ``(m, k)`` as ints after checking ``m >= 2`` and ``1 <= k < m``.

    ``names`` are what the errors call them (e.g. PETSc option names).

    Raises
    ------
    TypeError, ValueError
        If either is not an integer, or they are out of range.
    """
    m = check_positive_int(m, names[0], minimum=2)
    k = check_positive_int(k, names[1])
    if k >= m:
        raise ValueError(f"{names[1]} must be < {names[0]}, got {names[1]}={k} and {names[0]}={m}")
    return m, k


@dataclass
class _Cycle:
    """Data of one Arnoldi cycle needed to refine the recycled space."""

    V: Any  # (steps + 1, n) orthonormal rows
    Z: Any  # (steps, n) = M V[:steps], the same directions in x (V itself without M)
    H: np.ndarray  # (steps + 1, steps) Hessenberg matrix
    B: np.ndarray  # (k_current, steps) = C A M V^T
    steps: int
    invariant: bool

    @property
    def update_space(self) -> bool:
        return self.steps > 0 and not self.invariant


class _Recycler:
    """The recycled triple ``(U, Y, C)`` and the cycles that use and refine it.

    ``A M U^T = C^T`` with ``C`` orthonormal, as in Parks et al.; with a
    preconditioner the solution directions ``Y`` (``M U`` while ``M`` is the same,
    and ``A Y^T = C^T`` always) are kept beside ``U`` (and
    ``Z = M V`` beside each cycle's basis), so that no update of ``x`` applies
    ``M`` again and a new system re-derives ``C`` from ``A Y`` alone. ``U`` is
    then only read by the harmonic Ritz problem; without a preconditioner ``Y`` is
    ``U`` and ``Z`` is ``V``.

    All rows are stored in ``storage`` (``x``'s dtype, or single precision);
    operators are applied to, and ``x`` and the residual kept in, ``x``'s dtype.
    """

    def __init__(
        self,
        state: Any,
        m: int,
        k: int,
        reorthogonalize: Reorthogonalize,
        basis_precision: BasisPrecision,
    ) -> None:
        self.state = state
        xp: ModuleType = state.xp
        self.xp = xp
        self.m, self.k = m, k
        self.reorthogonalize = reorthogonalize
        x = state.x
        complex_ = "complex" in str(x.dtype)
        self.host_dtype = np.complex128 if complex_ else np.float64
        self.storage = x.dtype
        if basis_precision == "single":
            self.storage = xp.complex64 if complex_ else xp.float32
        # Rounding of the stored rows: the scale of the invariance and rank tests.
        self.eps = _unit_roundoff(self.storage)
        self.preconditioned = state.precondition is not None
        self.U = xp.empty((0, x.shape[0]), dtype=self.storage, device=device_of(x))
        self.Y = self.C = self.U
        # Gram matrices <C_i, U_j> and <U_i, U_j>: formed once per system, then
        # carried through each refinement by the small matrices that define it.
        self.CU = self.UU = np.zeros((0, 0), dtype=self.host_dtype)
        self.iterations = self.matvecs = self.cycles = 0

    @property
    def k_current(self) -> int:
        return int(self.U.shape[0])

    def space(self) -> RecycleSpace:
        """Return the recycled space for the next system (with ``Y`` when preconditioned)."""
        return RecycleSpace(self.U, self.Y if self.preconditioned else None)

    def adopt(self, U: Any, Y: Any) -> None:
        """Take a recycled space: ``C = qr(A Y^T)``, ``U, Y <- R^{-T} U, R^{-T} Y``.

        ``Y`` (solution directions, ``None`` if unknown) is used as it is, so a
        new matrix costs ``k`` products with ``A`` and none with ``M``, however
        the preconditioner changed; it is formed as ``M U`` only when missing.
        Without a preconditioner ``x`` is the iterated variable and ``Y`` (if
        given) is the space.
        """
        xp, state = self.xp, self.state
        if not self.preconditioned:
            U = Y = U if Y is None else Y
        elif Y is None:
            Y = self.stored(xp.stack([state.precondition(self.working(u)) for u in U]))
        AY = xp.stack([state.matvec(self.working(y)) for y in Y])
        self.matvecs += Y.shape[0]
        # Orthonormalised in working precision (Cholesky QR needs it), then stored.
        C, transform, kept = _orthonormal_rows(xp, AY)
        self.C = self.stored(C)
        index = xp.asarray(np.flatnonzero(kept))
        self.U = _combine(xp, transform, U[index])
        self.Y = _combine(xp, transform, Y[index]) if self.preconditioned else self.U
        self.CU, self.UU = _gram(xp, self.C, self.U), _gram(xp, self.U, self.U)

    def working(self, v: Any) -> Any:
        """``v`` in the working precision (itself when it already is)."""
        return self._as(v, self.state.x.dtype)

    def stored(self, v: Any) -> Any:
        """``v`` in the storage precision (itself when it already is)."""
        return self._as(v, self.storage)

    def _as(self, v: Any, dtype: Any) -> Any:
        return v if v.dtype == dtype else self.xp.astype(v, dtype)

    def project(self, r: Any) -> tuple[Any, float]:
        """Minimise the residual over the recycled space: ``r <- (I - C^H C) r`` (in place)."""
        xp = self.xp
        adjoint = xp.conj(self.C) if "complex" in str(r.dtype) else self.C
        coefficients = adjoint @ self.stored(r)
        subtract_combination(xp, self.state.x, -coefficients, self.Y)
        subtract_combination(xp, r, coefficients, self.C)  # r is the caller's fresh residual
        return r, vector_norm(xp, r)

    def cycle(self, r: Any, residual_norm: float, history: list[float]) -> _Cycle:
        """Run up to ``m - k_current`` deflated Arnoldi steps and update ``x``."""
        xp, state = self.xp, self.state
        kc = self.k_current
        p = min(self.m - kc, state.maxiter - self.iterations)
        x = state.x
        # C and the Arnoldi basis in one block: each Gram-Schmidt pass is one projection
        # (one reduction), except for the DGKS mode, which projects out C and V in turn.
        basis = xp.empty((kc + p + 1, x.shape[0]), dtype=self.storage, device=device_of(x))
        if kc:
            basis[:kc] = self.C
        V = basis[kc:]
        Z = V
        if self.preconditioned:
            Z = xp.empty((p, x.shape[0]), dtype=self.storage, device=device_of(x))
        V[0] = r / residual_norm
        H = np.zeros((p + 1, p), dtype=self.host_dtype)
        B = np.zeros((kc, p), dtype=self.host_dtype)
        lsq = HessenbergLeastSquares(p, residual_norm, self.host_dtype, self.eps)
        invariant = False
        self.cycles += 1
        for j in range(p):
            if self.preconditioned:
                Z[j] = state.precondition(self.working(V[j]))
            # A applied to the stored Z[j]: the Arnoldi relation holds for what is kept.
            V[j + 1] = state.matvec(self.working(Z[j]))
            w = V[j + 1]
            if self.reorthogonalize == "ifneeded":  # C first: where the cancellation is
                B[:, j], remaining = orthogonalize(xp, basis, kc, w, None, "ifneeded")
                h, h_next = orthogonalize(xp, V, j + 1, w, remaining, "ifneeded")
            elif self.reorthogonalize == "always":
                # One block, so that a second pass also removes what projecting out V
                # brought back along C: with C and V in turn, the error against C grew
                # geometrically along a cycle (1e-8 to 1e-5 in ten single-precision steps).
                h, h_next, w_norm = orthogonalize_row_twice(xp, basis, kc + j + 1)
                B[:, j], h = h[:kc], h[kc:]
            else:
                h, h_next = orthogonalize(xp, basis, kc + j + 1, w, None, "never")
                B[:, j], h = h[:kc], h[kc:]
            H[: j + 1, j], H[j + 1, j] = h, h_next
            if self.reorthogonalize != "always":
                # ||A M v_j|| by Pythagoras over the orthonormal [C; V]: no extra reduction.
                w_norm = math.hypot(
                    float(np.linalg.norm(B[:, j])), float(np.linalg.norm(h)), h_next
                )
            self.iterations += 1
            self.matvecs += 1
            history.append(lsq.append(h, h_next))
            invariant = h_next <= 4 * self.eps * w_norm
            if invariant:
                break
            w /= h_next
            if history[-1] <= state.tolerance:
                break
        steps = lsq.columns
        y = lsq.solve()
        z = _combine(xp, y, Z[:steps])
        if kc:
            subtract_combination(xp, z, _on_device(xp, B[:, :steps] @ y, self.Y), self.Y)
        x += z
        return _Cycle(
            V[: steps + 1], Z[:steps], H[: steps + 1, :steps], B[:, :steps], steps, invariant
        )

    def refine(self, cycle: _Cycle) -> None:
        """Replace ``(U, C)`` by the ``k`` harmonic Ritz vectors of the cycle's space.

        The search space is ``[U; V_s]`` with ``A M [U_hat; V_s]^T = [C; V_{s+1}]^T G``,
        ``U_hat = D U`` (unit rows), ``G = [[D, B], [0, H]]``. Harmonic Ritz pairs
        solve ``G^H G z = theta G^H (W V_hat^H) z`` with ``W = [C; V_{s+1}]``; the
        ``k`` of smallest ``|theta|`` span the new space (Parks et al., eq. 2.13).
        """
        xp = self.xp
        kc, s = self.k_current, cycle.steps
        scale = 1.0 / np.sqrt(np.diagonal(self.UU).real)
        G = np.zeros((kc + s + 1, kc + s), dtype=self.host_dtype)
        G[:kc, :kc] = np.diag(scale)
        G[:kc, kc:] = cycle.B
        G[kc:, kc:] = cycle.H
        # WV = <[C; V_{s+1}], [U_hat; V_s]>: the Gram matrix with U_hat = diag(scale) U,
        # which is never formed; C is orthogonal to V and V orthonormal.
        WV = np.zeros_like(G)
        WV[kc:, kc:] = np.eye(s + 1, s)
        if kc:
            WV[:kc, :kc] = self.CU * scale
            WV[kc:, :kc] = _gram(xp, cycle.V, self.U) * scale
        P = _smallest_harmonic_ritz(G, WV, min(self.k, kc + s), real=self.host_dtype is np.float64)
        if P.shape[1] == 0:
            return
        Q, R = np.linalg.qr(G @ P)
        diagonal = np.abs(np.diag(R))
        if diagonal.size == 0 or diagonal.min() <= self.eps * diagonal.max() * (kc + s):
            return  # the candidate space is numerically rank deficient; keep the old one
        # U = R^{-T} P^T [U_hat; V_s] and C = Q^T [C; V] in column terms, for row storage.
        to_U = np.linalg.solve(R.T, P.T)
        recycled, krylov = to_U[:, :kc] * scale, to_U[:, kc:]
        U = _span_combination(xp, recycled, self.U, krylov, cycle.V[:s])
        # The same combination of the solution directions (they are U without M).
        Y = _span_combination(xp, recycled, self.Y, krylov, cycle.Z) if self.preconditioned else U
        self.C = _span_combination(xp, Q[:kc].T, self.C, Q[kc:].T, cycle.V)
        self.U, self.Y = U, Y
        # The new grams from the old: C = Q^T W and U = to_U S give
        # <C, U> = Q^H <W, S> to_U^T and <U, U> = conj(to_U) <S, S> to_U^T.
        space = np.eye(kc + s, dtype=self.host_dtype)  # <S, S>, S = [U_hat; V_s]
        space[:kc, :kc] = self.UU * np.outer(scale, scale)
        space[kc:, :kc] = WV[kc : kc + s, :kc]
        space[:kc, kc:] = WV[kc : kc + s, :kc].conj().T
        self.CU = Q.conj().T @ WV @ to_U.T
        self.UU = to_U.conj() @ space @ to_U.T


def _smallest_harmonic_ritz(G: np.ndarray, WV: np.ndarray, k: int, *, real: bool) -> np.ndarray:
    """Orthonormal basis (columns) of the ``k`` harmonic Ritz vectors nearest zero.

    For real problems complex-conjugate pairs are replaced by their real and
    imaginary parts, which span the same real invariant subspace.
    """
    left = G.conj().T @ G
    right = G.conj().T @ WV
    theta, Z = scipy.linalg.eig(left, right)
    magnitude = np.where(np.isfinite(theta), np.abs(theta), np.inf)
    columns: list[np.ndarray] = []
    for index in np.argsort(magnitude, kind="stable"):
        if len(columns) >= k:
            break
        z = Z[:, index]
        if not real:
            columns.append(z)
        elif abs(theta[index].imag) <= 1e-14 * max(abs(theta[index]), 1e-300):
            columns.append(z.real)
        elif theta[index].imag > 0:  # one of each conjugate pair
            columns.extend([z.real, z.imag])
    if not columns:
        return np.zeros((G.shape[1], 0), dtype=G.dtype)
    basis = np.stack(columns[:k], axis=1).astype(G.dtype, copy=False)
    return np.linalg.qr(basis)[0]


def _orthonormal_rows(xp: ModuleType, rows: Any) -> tuple[Any, np.ndarray, np.ndarray]:
    """Orthonormalise ``rows`` (a thin QR), dropping numerically dependent ones.

    Well-conditioned rows (``cond <= 1e5``, read off their Gram matrix) go
    through Cholesky QR twice: a Gram matrix and a triangular combination per
    pass, orthonormal to working precision for condition numbers far above
    that bound (Yamamoto et al. 2015), and several times faster than
    Householder QR on ``k`` tall vectors — one reduction per pass on
    distributed rows. Others go through ``xp.linalg.qr`` (Householder, or
    TSQR on distributed rows), which also finds the dependent rows.

    Returns ``Q`` (orthonormal rows), ``T`` with ``Q = T rows[kept]``, and the
    boolean mask ``kept``.

    References
    ----------
    .. [1] Y. Yamamoto, Y. Nakatsukasa, Y. Yanagisawa, T. Fukaya, "Roundoff error
       analysis of the CholeskyQR2 algorithm", Electron. Trans. Numer. Anal. 44
       (2015), 306-326.
    """
    kept = np.ones(rows.shape[0], dtype=bool)
    gram = _gram(xp, rows, rows)
    if np.linalg.cond(gram) <= 1e10:
        first = _inverse_cholesky(gram)
        once = _combine(xp, first, rows)
        second = _inverse_cholesky(_gram(xp, once, once))
        return _combine(xp, second, once), second @ first, kept
    while True:
        Q, R = xp.linalg.qr(xp.matrix_transpose(rows[xp.asarray(np.flatnonzero(kept))]))
        diagonal = np.abs(np.diag(to_numpy(R)))
        good = diagonal > 1e-12 * diagonal.max()
        if good.all():
            return xp.matrix_transpose(Q), np.linalg.inv(to_numpy(R)).T, kept
        kept[np.flatnonzero(kept)[~good]] = False


def _unit_roundoff(dtype: Any) -> float:
    """Machine epsilon of a float32/complex64 or float64/complex128 dtype of any namespace."""
    single = any(name in str(dtype) for name in ("float32", "complex64"))
    return float(np.finfo(np.float32 if single else np.float64).eps)


def _inverse_cholesky(gram: np.ndarray) -> np.ndarray:
    """``T = conj(L)^-1`` for ``<rows, rows> = L L^H``: the rows of ``T rows`` are orthonormal."""
    factor = np.linalg.cholesky(gram).conj()
    return scipy.linalg.solve_triangular(factor, np.eye(len(gram), dtype=gram.dtype), lower=True)


def _span_combination(
    xp: ModuleType, recycled: np.ndarray, old: Any, krylov: np.ndarray, basis: Any
) -> Any:
    """``recycled @ old + krylov @ basis``: new rows from a recycled block and a cycle's."""
    rows = _combine(xp, krylov, basis)
    if old.shape[0]:
        subtract_combination(xp, rows, -_on_device(xp, recycled, old), old)
    return rows


def _combine(xp: ModuleType, coefficients: np.ndarray, rows: Any) -> Any:
    """``coefficients @ rows`` with host coefficients and device rows."""
    return _on_device(xp, coefficients, rows) @ rows


def _on_device(xp: ModuleType, coefficients: np.ndarray, rows: Any) -> Any:
    return xp.asarray(coefficients, dtype=rows.dtype, device=device_of(rows))


def _gram(xp: ModuleType, left: Any, right: Any) -> np.ndarray:
    """Host matrix of inner products ``<left_i, right_j>`` (conjugating ``left``)."""
    adjoint = xp.conj(left) if "complex" in str(left.dtype) else left
    gram = to_numpy(adjoint @ xp.matrix_transpose(right))
    return gram.astype(np.result_type(gram, np.float64), copy=False)  # single rows: host in double
