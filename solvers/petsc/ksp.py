r"""numlib's methods as PETSc ``KSP`` objects of type ``python``.

Debian's PETSc 3.18 has no HPDDM, so no recycling Krylov method; these contexts
add numlib's GCRO-DR (and its CG and GMRES) to any PETSc program::

    -ksp_type python -ksp_python_type solvers.petsc.ksp.GCRODR \\
        -ksp_gcrodr_m 40 -ksp_gcrodr_k 20 -pc_type gamg

or, from Python, ``ksp.setType("python"); ksp.setPythonContext(GCRODR())`` (see
:func:`set_numlib_ksp`). The protocol is petsc4py's for python KSPs
(``create``/``setFromOptions``/``setUp``/``solve``/``reset``/``view``):

- tolerances are the ``KSP``'s own (``-ksp_rtol``, ``-ksp_atol``,
  ``-ksp_max_it``; divergence tolerance not used): converged means the true
  residual ``||b - A x|| <= max(rtol ||b||, atol)``, as PETSc's default test
  with the unpreconditioned norm;
- the ``KSP``'s ``PC`` (``-pc_type``...) is applied as a *right*
  preconditioner, whatever ``-ksp_pc_side`` says, so the tested residual is the
  true one; ``-pc_type none`` means no preconditioner;
- a nonzero initial guess is honoured (``KSPSetInitialGuessNonzero``);
- the iteration count, the final true residual norm and the converged reason
  (``CONVERGED_RTOL``/``CONVERGED_ATOL``, ``DIVERGED_MAX_IT``,
  ``DIVERGED_NANORINF`` or ``DIVERGED_BREAKDOWN``) are reported back (an AIJ
  matrix with NaN/Inf entries is refused with an error, as by :func:`solve`),
  and the residual history is passed to the ``KSP``'s monitors
  (``-ksp_monitor``) after the solve, so ``-ksp_converged_reason`` and
  ``-ksp_error_if_not_converged`` behave as for built-in types. numlib's
  ``ConvergenceWarning`` is not raised here: PETSc's converged reason is how a
  ``KSP`` reports failure;
- :class:`GCRODR` keeps its recycled space from one ``KSPSolve`` to the next,
  also when the operators change (``KSPSetOperators``) — that is the point for
  a sequence of related systems. A change of size or parallel layout, or
  ``KSPReset``, drops it.

References
----------
.. [1] M. L. Parks, E. de Sturler, G. Mackey, D. D. Johnson, S. Maiti,
   "Recycling Krylov subspaces for sequences of linear systems", SIAM J. Sci.
   Comput. 28 (2006).
.. [2] L. Dalcin, R. Paz, P. Kler, A. Cosimo, "Parallel distributed computing
   using Python", Adv. Water Resour. 34 (2011) (petsc4py, python KSP contexts).
"""

from __future__ import annotations

import atexit
import gc
import math
import warnings
from typing import Any

from numlib.result import ConvergenceWarning
from numlib.validate import check_positive_int
from solvers.arnoldi import REORTHOGONALIZE, Reorthogonalize, check_reorthogonalize
from solvers.gcrodr import BasisPrecision, check_cycle, check_orthogonalization
from solvers.petsc._require import petsc
from solvers.petsc.solve import solve
from solvers.subspace import RecycleSpace

__all__ = ["CG", "GCRODR", "GMRES", "set_numlib_ksp"]


class _NumlibKSP:
    """The python-KSP protocol around :func:`solvers.petsc.solve`."""

    method = ""

    def __init__(self) -> None:
        self.last_result: Any = None

    def _options(self) -> dict[str, Any]:
        return {}

    def create(self, ksp: Any) -> None:
        """Declare right preconditioning and the true residual norm (what is tested)."""
        PETSc = petsc()
        ksp.setPCSide(PETSc.PC.Side.RIGHT)
        ksp.setNormType(PETSc.KSP.NormType.UNPRECONDITIONED)

    def setFromOptions(self, ksp: Any) -> None:
        """Read this method's ``-ksp_<method>_*`` options (none for CG)."""

    def setUp(self, ksp: Any) -> None:
        """Nothing to set up: PETSc sets up the PC, work vectors are made per solve."""

    def reset(self, ksp: Any) -> None:
        """Forget what was carried between solves."""
        self.last_result = None

    def solve(self, ksp: Any, b: Any, x: Any) -> None:
        """Solve ``A x = b`` with the ``KSP``'s operators, PC and tolerances; write ``x``."""
        PETSc = petsc()
        A, _ = ksp.getOperators()
        rtol, atol, _, max_it = ksp.getTolerances()
        pc = ksp.getPC()
        M = None if pc.getType() in (None, "none") else pc
        x0 = x if ksp.getInitialGuessNonzero() else None
        with warnings.catch_warnings():
            # Reported through the converged reason instead (see the module docstring).
            warnings.simplefilter("ignore", ConvergenceWarning)
            result = solve(
                A, b, method=self.method, x0=x0, M=M, rtol=rtol, atol=atol, maxiter=max_it,
                **self._options(),
            )  # fmt: skip
        result.x.copy(x)
        result.x.destroy()
        self.last_result = result
        true_norm = float(result.info["true_residual_norm"])
        for its, norm in enumerate(result.residual_norms[:-1]):
            ksp.logConvergenceHistory(float(norm))
            ksp.monitor(its, float(norm))
        ksp.logConvergenceHistory(true_norm)
        ksp.monitor(result.iterations, true_norm)
        ksp.setIterationNumber(result.iterations)
        reason = PETSc.KSP.ConvergedReason
        if not math.isfinite(true_norm):  # PETSc refuses a NaN residual norm
            ksp.setConvergedReason(reason.DIVERGED_NANORINF)
            return
        ksp.setResidualNorm(true_norm)
        if result.converged:
            b_norm = b.norm()
            met_rtol = true_norm <= rtol * b_norm
            ksp.setConvergedReason(reason.CONVERGED_RTOL if met_rtol else reason.CONVERGED_ATOL)
        elif "breakdown" in result.info:
            ksp.setConvergedReason(reason.DIVERGED_BREAKDOWN)
        else:
            ksp.setConvergedReason(reason.DIVERGED_MAX_IT)

    def view(self, ksp: Any, viewer: Any) -> None:
        """Print the method and its parameters (``-ksp_view``)."""
        settings = ", ".join(f"{key}={value}" for key, value in self._options().items()
                             if key != "recycle")  # fmt: skip
        viewer.printfASCII(f"  numlib {self.method}{f' ({settings})' if settings else ''}\n")


def _refinement(options: Any, name: str, current: Reorthogonalize) -> Reorthogonalize:
    """Read a ``*_cgs_refinement_type`` option with PETSc's values (``REFINE_NEVER``...)."""
    value = options.getString(name, f"refine_{current}")
    choice = value.lower().removeprefix("refine_")
    if choice not in REORTHOGONALIZE:
        names = ", ".join(f"REFINE_{c.upper()}" for c in REORTHOGONALIZE)
        raise ValueError(f"-{name} must be one of {names}, got {value!r}")
    return choice


class GCRODR(_NumlibKSP):
    """GCRO-DR(m, k) with its recycled space kept across ``KSPSolve`` calls.

    Options: ``-ksp_gcrodr_m`` (cycle size, recycled vectors included,
    default 40) and ``-ksp_gcrodr_k`` (recycled dimension, default 20), the
    SKR paper's values; ``-ksp_gcrodr_cgs_refinement_type`` (``REFINE_NEVER``,
    the default as for PETSc's GMRES, ``REFINE_IFNEEDED`` or ``REFINE_ALWAYS``),
    the second Gram-Schmidt pass; ``-ksp_gcrodr_basis_precision`` (``working``,
    the default, or ``single``, which runs ``REFINE_ALWAYS`` and refuses the
    others), the storage of the recycled and Krylov rows
    (:func:`solvers.gcrodr.gcrodr`). :attr:`recycle` is the space the next
    solve starts from.
    """

    method = "gcrodr"

    def __init__(
        self,
        m: int = 40,
        k: int = 20,
        reorthogonalize: Reorthogonalize | None = None,
        basis_precision: BasisPrecision = "working",
    ) -> None:
        super().__init__()
        self.m, self.k = check_cycle(m, k)
        self._requested = reorthogonalize  # None: PETSc's one pass, two with single rows
        self.reorthogonalize, self.basis_precision = check_orthogonalization(
            reorthogonalize, basis_precision, working_default="never"
        )
        self.recycle: RecycleSpace | None = None

    def setFromOptions(self, ksp: Any) -> None:
        """Read ``-ksp_gcrodr_m``, ``_k``, ``_cgs_refinement_type`` and ``_basis_precision``."""
        prefix = ksp.getOptionsPrefix() or ""
        options = petsc().Options(prefix)
        self.m, self.k = check_cycle(
            options.getInt("ksp_gcrodr_m", self.m),
            options.getInt("ksp_gcrodr_k", self.k),
            (f"-{prefix}ksp_gcrodr_m", f"-{prefix}ksp_gcrodr_k"),
        )
        refinement = "ksp_gcrodr_cgs_refinement_type"
        precision = "ksp_gcrodr_basis_precision"
        requested = self._requested
        if options.hasName(refinement):
            requested = _refinement(options, refinement, "never")
        self.reorthogonalize, self.basis_precision = check_orthogonalization(
            requested,
            options.getString(precision, self.basis_precision).lower(),
            (f"-{prefix}{refinement}", f"-{prefix}{precision}"),
            working_default="never",
        )

    def reset(self, ksp: Any) -> None:
        """Drop the recycled space (``KSPReset``)."""
        super().reset(ksp)
        self.recycle = None

    def _options(self) -> dict[str, Any]:
        return {
            "m": self.m,
            "k": self.k,
            "reorthogonalize": self.reorthogonalize,
            "basis_precision": self.basis_precision,
            "recycle": self.recycle,
        }

    def solve(self, ksp: Any, b: Any, x: Any) -> None:
        """Solve, starting from (and then replacing) the recycled space."""
        if self.recycle is not None:
            from solvers.petsc.arrays import Layout

            if self.recycle.U.layout != Layout.of(b):
                self.recycle = None  # another size or partition: nothing to recycle
        super().solve(ksp, b, x)
        self.recycle = self.last_result.info["recycle"]


class GMRES(_NumlibKSP):
    """Restarted GMRES(m).

    Options: ``-ksp_numlib_gmres_restart`` (default 40) and
    ``-ksp_numlib_gmres_cgs_refinement_type`` (as for :class:`GCRODR`).
    """

    method = "gmres"

    def __init__(self, restart: int = 40, reorthogonalize: Reorthogonalize = "never") -> None:
        super().__init__()
        self.restart = check_positive_int(restart, "restart")
        self.reorthogonalize = check_reorthogonalize(reorthogonalize)

    def setFromOptions(self, ksp: Any) -> None:
        """Read ``-ksp_numlib_gmres_restart`` and ``-ksp_numlib_gmres_cgs_refinement_type``."""
        prefix = ksp.getOptionsPrefix() or ""
        options = petsc().Options(prefix)
        self.restart = check_positive_int(
            options.getInt("ksp_numlib_gmres_restart", self.restart),
            f"-{prefix}ksp_numlib_gmres_restart",
        )
        self.reorthogonalize = _refinement(
            options, "ksp_numlib_gmres_cgs_refinement_type", self.reorthogonalize
        )

    def _options(self) -> dict[str, Any]:
        return {"restart": self.restart, "reorthogonalize": self.reorthogonalize}


class CG(_NumlibKSP):
    """Preconditioned CG (Hermitian positive definite operator and PC)."""

    method = "cg"


def set_numlib_ksp(ksp: Any, method: str = "gcrodr", **parameters: Any) -> Any:
    """Make ``ksp`` a python ``KSP`` running numlib's ``method``; return the context.

    Parameters
    ----------
    ksp : petsc4py.PETSc.KSP
        The solver to configure (its operators and PC are left as they are).
    method : {"gcrodr", "gmres", "cg"}
        Which context: :class:`GCRODR`, :class:`GMRES` or :class:`CG`.
    **parameters
        Passed to the context (``m``, ``k``, ``basis_precision`` for GCRO-DR;
        ``restart`` for GMRES; ``reorthogonalize`` for both, default ``"never"``
        as PETSc's GMRES, ``"always"`` with single-precision rows).

    Returns
    -------
    GCRODR, GMRES or CG
        The context, e.g. to read ``context.recycle`` or ``context.last_result``.

    Raises
    ------
    TypeError, ValueError
        For a ``ksp`` that is not a ``KSP``, an unknown ``method``, or parameters
        the context refuses (``m >= 2``, ``1 <= k < m``, ``restart >= 1``), before
        ``ksp`` is changed.

    Examples
    --------
    >>> import numpy as np
    >>> from petsc4py import PETSc
    >>> from solvers.petsc import to_petsc_mat, to_petsc_vec
    >>> from solvers.problems import darcy
    >>> ksp = PETSc.KSP().create()
    >>> context = set_numlib_ksp(ksp, "gcrodr", m=30, k=10)
    >>> ksp.getPC().setType("jacobi")
    >>> ksp.setTolerances(rtol=1e-8)
    >>> iterations = []
    >>> for seed in (0, 1):
    ...     A = to_petsc_mat(darcy(24, rng=seed).A)
    ...     b, x = to_petsc_vec(np.ones(576), like=A), A.createVecLeft()
    ...     ksp.setOperators(A)
    ...     ksp.solve(b, x)
    ...     iterations.append(ksp.getIterationNumber())
    >>> ksp.getConvergedReason() > 0, iterations[1] < iterations[0]
    (True, True)
    """
    if not isinstance(ksp, petsc().KSP):
        raise TypeError(f"ksp must be a petsc4py.PETSc.KSP, got {type(ksp).__name__}")
    contexts = {"gcrodr": GCRODR, "gmres": GMRES, "cg": CG}
    if method not in contexts:
        raise ValueError(f"method must be one of {tuple(contexts)}, got {method!r}")
    context = contexts[method](**parameters)
    ksp.setType("python")
    ksp.setPythonContext(context)
    return context


@atexit.register
def _destroy_live_contexts() -> None:
    """Destroy the python KSPs running numlib's contexts that are still alive at exit.

    petsc4py 3.18 crashes (SIGSEGV) in the teardown of a python ``KSP`` that is
    still referenced when the interpreter exits, after PETSc is finalised.
    Registered after petsc4py's own exit handler, this runs before it.
    """
    try:
        from petsc4py import PETSc
    except ImportError:
        return
    for obj in gc.get_objects():
        # ``type(...) is``, not isinstance: isinstance reads ``__class__``, which some
        # lazily imported modules' objects answer with warnings or imports at exit.
        if type(obj) is PETSc.KSP and obj.handle and obj.getType() == "python":
            if isinstance(obj.getPythonContext(), _NumlibKSP):
                obj.destroy()
