"""numlib's solvers on PETSc ``Mat``/``Vec`` and MPI: the optional ``petsc`` extra.

Users whose systems or data sets outgrow one machine already run PETSc; this
package brings numlib's Krylov and recycling solvers to them without a
distribution layer of its own:

:mod:`solvers.petsc.convert`
    scipy.sparse / numpy to and from PETSc ``Mat``/``Vec``, distributed by rows.
:mod:`solvers.petsc.arrays`
    Row-distributed vectors and blocks: the array namespace on which the
    unchanged algorithms of :mod:`solvers.krylov` and :mod:`solvers.gcrodr`
    run, every reduction an ``MPI_Allreduce`` on the PETSc communicator.
:mod:`solvers.petsc.operator`
    ``Mat`` and ``PC`` as the ``A`` and ``M`` numlib's solvers accept.
:mod:`solvers.petsc.solve`
    :func:`solve`: CG, GMRES or GCRO-DR on PETSc objects, collective.
:mod:`solvers.petsc.ksp`
    The same methods as a PETSc ``KSP`` of type ``python``
    (``-ksp_type python -ksp_python_type solvers.petsc.ksp.GCRODR``), using
    whatever ``-pc_type`` is set and keeping the recycled space across
    ``KSPSolve`` calls.
:mod:`solvers.petsc.sequence`, :mod:`solvers.petsc.dataset`
    :func:`solvers.recycle.solve_sequence` and the data set generator fanned
    out over MPI ranks with mpi4py (one recycling chain per rank).

``numlib`` itself never imports this package; importing it imports petsc4py
(which initialises MPI) and raises an ``ImportError`` naming
``pip install numlib[petsc]`` when petsc4py is missing.
"""

from solvers.petsc._require import petsc as _petsc

_petsc()

from solvers.petsc.arrays import DistributedRows, DistributedVector, Layout  # noqa: E402
from solvers.petsc.convert import (  # noqa: E402
    as_distributed,
    gather_vec,
    mat_from_local_rows,
    ownership,
    to_petsc_mat,
    to_petsc_vec,
    to_vec,
)
from solvers.petsc.operator import (  # noqa: E402
    PetscOperator,
    PetscPreconditioner,
    preconditioner,
)
from solvers.petsc.solve import METHODS, solve  # noqa: E402

__all__ = [
    "METHODS",
    "DistributedRows",
    "DistributedVector",
    "Layout",
    "PetscOperator",
    "PetscPreconditioner",
    "as_distributed",
    "gather_vec",
    "mat_from_local_rows",
    "ownership",
    "preconditioner",
    "solve",
    "to_petsc_mat",
    "to_petsc_vec",
    "to_vec",
]
