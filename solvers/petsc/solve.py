"""numlib's CG, GMRES and GCRO-DR on PETSc ``Mat``/``Vec``: one call, any number of ranks.

:func:`solve` turns the PETSc objects into the operator and vectors of
:mod:`solvers.petsc.operator` and :mod:`solvers.petsc.arrays` and calls the very
functions of :mod:`solvers.krylov` and :mod:`solvers.gcrodr`; every inner
product, norm and QR of those algorithms is then a local product plus an
``MPI_Allreduce`` on the ``Vec``'s communicator, so the same call runs under
``mpiexec -n P`` unchanged and, up to the order of floating-point sums, takes
the same iterations on every ``P``.
"""

from __future__ import annotations

import math
from typing import Any

from numlib.result import SolveResult
from solvers.arnoldi import Reorthogonalize, check_reorthogonalize
from solvers.gcrodr import BasisPrecision, check_orthogonalization, gcrodr
from solvers.krylov import cg, gmres
from solvers.petsc._require import petsc
from solvers.petsc.arrays import DistributedRows
from solvers.petsc.convert import as_distributed, to_vec
from solvers.petsc.operator import PetscOperator, PetscPreconditioner
from solvers.state import Callback
from solvers.subspace import RecycleSpace

__all__ = ["METHODS", "solve"]

METHODS = ("gcrodr", "gmres", "cg")


def solve(
    A: Any,
    b: Any,
    *,
    method: str = "gcrodr",
    x0: Any = None,
    M: Any = None,
    rtol: float = 1e-5,
    atol: float = 0.0,
    maxiter: int | None = None,
    m: int = 40,
    k: int = 20,
    restart: int = 40,
    recycle: RecycleSpace | None = None,
    callback: Callback | None = None,
    reorthogonalize: Reorthogonalize | None = None,
    basis_precision: BasisPrecision = "working",
) -> SolveResult:
    """Solve ``A x = b`` on PETSc objects with numlib's CG, GMRES(m) or GCRO-DR(m, k).

    Collective: every rank of ``b``'s communicator calls it with its part.
    The guarantee is the one of the serial methods: ``converged`` is True only
    if the recomputed ``||b - A x||_2 <= max(rtol ||b||_2, atol)``, otherwise a
    :class:`numlib.result.ConvergenceWarning` is issued (on every rank).

    Parameters
    ----------
    A : petsc4py.PETSc.Mat or PetscOperator
        Square operator, distributed like ``b``.
    b : petsc4py.PETSc.Vec
        Right-hand side. Not modified.
    method : {"gcrodr", "gmres", "cg"}
        :func:`solvers.gcrodr.gcrodr`, :func:`solvers.krylov.gmres` or
        :func:`solvers.krylov.cg` (Hermitian positive definite ``A`` and ``M``).
    x0 : petsc4py.PETSc.Vec, optional
        Starting guess (default zero). Not modified.
    M : petsc4py.PETSc.PC or PetscPreconditioner, optional
        Preconditioner, applied on the right by GMRES and GCRO-DR.
    rtol, atol : float
        Stopping test on the true residual.
    maxiter : int, optional
        Largest number of iterations (operator applications), default ``10 n``.
    m, k : int
        GCRO-DR's cycle size and recycled dimension.
    restart : int
        GMRES's cycle size.
    recycle : RecycleSpace, optional
        GCRO-DR's space from an earlier solve in the same layout
        (``result.info["recycle"]``): pass it along a sequence of systems.
    callback : callable, optional
        Passed to the method; it sees :class:`solvers.petsc.arrays.DistributedVector` iterates.
    reorthogonalize : {"ifneeded", "always", "never"}, optional
        GMRES's and GCRO-DR's second Gram-Schmidt pass
        (:func:`solvers.arnoldi.orthogonalize`): by default ``"ifneeded"``, and
        ``"always"`` for GCRO-DR with a single-precision basis; ``"never"`` is
        PETSc's default.
    basis_precision : {"working", "single"}
        GCRO-DR's storage of its recycled and Krylov rows (see
        :func:`solvers.gcrodr.gcrodr`); ``"single"`` halves the memory traffic
        of its projections and takes two Gram-Schmidt passes at every step.

    Returns
    -------
    SolveResult
        ``x`` is a new ``petsc4py.PETSc.Vec`` laid out like ``b``; ``info`` as
        for the serial method (GCRO-DR's ``info["recycle"]`` holds distributed
        rows, valid for systems with the same layout).

    Raises
    ------
    TypeError, ValueError
        For objects of the wrong kind or layout, an unknown ``method``, NaN or Inf
        in ``b``, ``x0`` or an AIJ ``A``, a ``recycle`` space from another layout
        or with another method, and the serial methods' argument errors, all
        before any iteration or preconditioner set-up.

    References
    ----------
    .. [1] M. L. Parks et al., "Recycling Krylov subspaces for sequences of
       linear systems", SIAM J. Sci. Comput. 28 (2006).

    Examples
    --------
    >>> import numpy as np
    >>> from solvers.petsc import preconditioner, solve, to_petsc_mat, to_petsc_vec
    >>> from solvers.problems import darcy
    >>> A = to_petsc_mat(darcy(32, rng=0).A)
    >>> b = to_petsc_vec(np.ones(32 * 32), like=A)
    >>> result = solve(A, b, M=preconditioner(A, "bjacobi"), rtol=1e-8, m=30, k=10)
    >>> result.converged, result.iterations < 60
    (True, True)
    """
    petsc()  # the install hint before anything else, if petsc4py is missing
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "gcrodr":
        reorthogonalize, basis_precision = check_orthogonalization(reorthogonalize, basis_precision)
    else:
        reorthogonalize = check_reorthogonalize(reorthogonalize or "ifneeded")
    if recycle is not None and method != "gcrodr":
        raise ValueError(f"recycle is GCRO-DR's (method='gcrodr'), not {method!r}'s")
    operator = A if isinstance(A, PetscOperator) else PetscOperator(A)
    rhs = as_distributed(b, name="b")
    if rhs.layout != operator.layout:
        raise ValueError(f"b is laid out as {rhs.layout!r}, A as {operator.layout!r}")
    start = None
    if x0 is not None:
        start = as_distributed(x0, name="x0")
        if start.layout != operator.layout:
            raise ValueError(f"x0 is laid out as {start.layout!r}, A as {operator.layout!r}")
    if recycle is not None:
        if not isinstance(recycle, RecycleSpace):
            raise TypeError(f"recycle must be a RecycleSpace, got {type(recycle).__name__}")
        if not isinstance(recycle.U, DistributedRows) or recycle.U.layout != rhs.layout:
            raise ValueError(
                "recycle must come from a solve in the same layout (a PETSc solve of the "
                "same size on the same ranks)"
            )
    _check_finite_entries(operator.mat)
    if M is not None and not isinstance(M, PetscPreconditioner):
        M = PetscPreconditioner(M)
    if M is not None and M.layout != operator.layout:
        raise ValueError(f"M is laid out as {M.layout!r}, A as {operator.layout!r}")
    options: dict[str, Any] = {
        "x0": start,
        "rtol": rtol,
        "atol": atol,
        "maxiter": maxiter,
        "M": M,
        "callback": callback,
    }
    if method == "gcrodr":
        result = gcrodr(
            operator, rhs, m=m, k=k, recycle=recycle, reorthogonalize=reorthogonalize,
            basis_precision=basis_precision, **options,
        )  # fmt: skip
    elif method == "gmres":
        result = gmres(operator, rhs, restart=restart, reorthogonalize=reorthogonalize, **options)
    else:
        result = cg(operator, rhs, **options)
    return SolveResult(
        x=to_vec(result.x),
        converged=result.converged,
        iterations=result.iterations,
        residual_norms=result.residual_norms,
        info=result.info,
    )


def _check_finite_entries(mat: Any) -> None:
    """Refuse NaN/Inf in an assembled AIJ matrix: one pass over its entries, collective.

    Other types (shell matrices...) cannot be read; a non-finite product then ends
    the solve as a breakdown.
    """
    if "aij" in (mat.getType() or "") and not math.isfinite(mat.norm(petsc().NormType.FROBENIUS)):
        raise ValueError("A has NaN or Inf entries")
