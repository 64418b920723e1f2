"""PETSc matrices and preconditioners as operators numlib's solvers accept.

:class:`PetscOperator` wraps a ``Mat`` and :class:`PetscPreconditioner` a ``PC``.
Both follow scipy's ``LinearOperator`` protocol, which numlib's Krylov methods
take for ``A`` and ``M``, and apply to the row-distributed vectors of
:mod:`solvers.petsc.arrays` through PETSc's own kernels (``MatMult``,
``PCApply``): the local slice is lent to a work ``Vec`` (``VecPlaceArray``), so
no entries are copied. On a numpy vector (the whole vector, the same on every
rank) they also work, gathering the result, so scipy's solvers can use them too,
adjoint included (``rmatvec``: ``MatMultHermitian``, ``PCApplyTranspose``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.sparse.linalg import LinearOperator

from solvers.petsc._require import petsc
from solvers.petsc.arrays import DistributedVector, Layout
from solvers.petsc.convert import gather_vec

__all__ = ["PetscOperator", "PetscPreconditioner", "preconditioner"]


class _PetscApply(LinearOperator):
    """Shared machinery: apply a PETSc kernel ``y = op(x)`` to distributed vectors."""

    def __init__(self, x_work: Any, y_work: Any) -> None:
        PETSc = petsc()
        n = x_work.getSize()
        super().__init__(dtype=np.dtype(PETSc.ScalarType), shape=(n, n))
        self._x, self._y = x_work, y_work
        self.layout = Layout.of(x_work)

    def _kernel(self, x: Any, y: Any) -> None:
        raise NotImplementedError

    def _adjoint_kernel(self, x: Any, y: Any) -> None:
        raise NotImplementedError

    def matvec(self, x: Any) -> Any:
        """Apply to a :class:`DistributedVector`, or as scipy's ``matvec`` to a whole vector."""
        if not isinstance(x, DistributedVector):
            return super().matvec(x)  # scipy's shape handling, then _matvec
        return self._apply(self._kernel, x)

    def _apply(self, kernel: Any, x: DistributedVector) -> DistributedVector:
        if x.layout != self.layout:
            raise ValueError(f"x is laid out as {x.layout!r}, the operator as {self.layout!r}")
        source = np.ascontiguousarray(x.local, dtype=self.dtype)  # PETSc reads its scalars
        out = np.empty(self.layout.local_size, dtype=self.dtype)
        self._x.placeArray(source)
        self._y.placeArray(out)
        try:
            kernel(self._x, self._y)
        finally:
            self._x.resetArray()
            self._y.resetArray()
        return DistributedVector(out, self.layout)

    def _apply_whole(self, kernel: Any, x: Any) -> np.ndarray:
        """Apply ``kernel`` to a whole numpy vector (the same on every rank); gather."""
        x = np.asarray(x, dtype=self.dtype).reshape(-1)
        layout = self.layout
        result = self._apply(
            kernel, DistributedVector(np.array(x[layout.start : layout.stop]), layout)
        )
        self._y.setArray(result.local)
        return gather_vec(self._y)

    def _matvec(self, x: Any) -> np.ndarray:
        return self._apply_whole(self._kernel, x)

    def _rmatvec(self, x: Any) -> np.ndarray:
        return self._apply_whole(self._adjoint_kernel, x)


class PetscOperator(_PetscApply):
    """A square PETSc ``Mat`` as the operator ``A`` of numlib's solvers.

    Parameters
    ----------
    mat : petsc4py.PETSc.Mat
        Any assembled square matrix (AIJ, shell, ...). Referenced, not copied:
        changing its entries changes the operator.

    Examples
    --------
    >>> import numpy as np
    >>> from solvers.petsc import PetscOperator, to_petsc_mat
    >>> from solvers.problems import poisson2d
    >>> A = poisson2d(6).A
    >>> op = PetscOperator(to_petsc_mat(A))
    >>> bool(np.allclose(op.matvec(np.ones(36)), A @ np.ones(36)))
    True
    """

    def __init__(self, mat: Any) -> None:
        PETSc = petsc()
        if not isinstance(mat, PETSc.Mat):
            raise TypeError(f"mat must be a petsc4py.PETSc.Mat, got {type(mat).__name__}")
        rows, cols = mat.getSize()
        if rows != cols:
            raise ValueError(f"mat must be square, got {rows} x {cols}")
        self.mat = mat
        x_work, y_work = mat.createVecs()
        super().__init__(x_work, y_work)

    def _kernel(self, x: Any, y: Any) -> None:
        self.mat.mult(x, y)

    def _adjoint_kernel(self, x: Any, y: Any) -> None:
        self.mat.multHermitian(x, y)


class PetscPreconditioner(_PetscApply):
    """A set-up PETSc ``PC`` as the preconditioner ``M`` (``M ~ A^{-1}``) of numlib's solvers.

    numlib's GMRES and GCRO-DR apply ``M`` on the right, so the residual they
    minimise and test is the true one, whatever the ``PC`` is.

    Parameters
    ----------
    pc : petsc4py.PETSc.PC
        A ``PC`` with operators set. PETSc sets it up at its first application
        (``PCApply``) if it is not yet, so wrapping it costs nothing.

    Raises
    ------
    TypeError, ValueError
        If ``pc`` is not a ``PC``, or has no operators.
    """

    def __init__(self, pc: Any) -> None:
        PETSc = petsc()
        if not isinstance(pc, PETSc.PC):
            raise TypeError(f"pc must be a petsc4py.PETSc.PC, got {type(pc).__name__}")
        _, P = pc.getOperators()  # PETSc lends an empty Mat (type None) when none is set
        if P.getType() is None:
            raise ValueError("pc has no operators: call pc.setOperators(mat) first")
        self.pc = pc
        x_work, y_work = P.createVecs()
        super().__init__(x_work, y_work)

    def _kernel(self, x: Any, y: Any) -> None:
        self.pc.apply(x, y)

    def _adjoint_kernel(self, x: Any, y: Any) -> None:
        if self.dtype.kind == "c":
            raise NotImplementedError("PETSc's PCs have no Hermitian apply (complex build)")
        self.pc.applyTranspose(x, y)  # with real scalars the transpose is the adjoint


def preconditioner(
    mat: Any, pc_type: str = "ilu", *, options_prefix: str | None = None
) -> PetscPreconditioner:
    """Build a PETSc preconditioner of ``pc_type`` for ``mat`` (set up, ready to apply).

    Parameters
    ----------
    mat : petsc4py.PETSc.Mat
        The matrix to precondition.
    pc_type : str
        Any PETSc ``PCType``: ``"ilu"`` (one rank), ``"bjacobi"`` (ILU(0) per
        rank by default), ``"asm"``, ``"gamg"``, ``"jacobi"``, ``"none"``...
    options_prefix : str, optional
        Prefix under which PETSc's options database may refine the ``PC``
        (``-<prefix>pc_gamg_threshold 0.02``...); read by ``setFromOptions``.

    Returns
    -------
    PetscPreconditioner

    Raises
    ------
    TypeError, ValueError
        If ``mat`` is not a ``Mat``, ``pc_type`` not a type this PETSc has, or
        ``options_prefix`` not a str; PETSc's own error if its set-up fails.
    """
    PETSc = petsc()
    if not isinstance(mat, PETSc.Mat):
        raise TypeError(f"mat must be a petsc4py.PETSc.Mat, got {type(mat).__name__}")
    if not isinstance(pc_type, str):
        raise TypeError(f"pc_type must be a str, got {type(pc_type).__name__}")
    if options_prefix is not None and not isinstance(options_prefix, str):
        raise TypeError(f"options_prefix must be a str, got {type(options_prefix).__name__}")
    pc = PETSc.PC().create(comm=mat.getComm())
    try:
        pc.setType(pc_type)
    except PETSc.Error:
        pc.destroy()
        raise ValueError(f"pc_type {pc_type!r} is not a PETSc PCType of this build") from None
    pc.setOperators(mat)
    if options_prefix is not None:
        pc.setOptionsPrefix(options_prefix)
        pc.setFromOptions()
    pc.setUp()
    return PetscPreconditioner(pc)
