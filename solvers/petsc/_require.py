"""The optional dependencies of :mod:`solvers.petsc`, imported with an actionable message."""

from __future__ import annotations

from types import ModuleType

__all__ = ["mpi", "petsc"]

_HINT = (
    "install the extra with `pip install numlib[petsc]` (petsc4py must be compiled against a "
    "PETSc 3.18 installation: on Debian `apt-get install petsc-dev`, then `make setup`)"
)


def petsc() -> ModuleType:
    """Return ``petsc4py.PETSc``, initialising PETSc (and MPI) on first use.

    Raises
    ------
    ImportError
        If petsc4py is not installed, naming the extra that provides it.
    """
    try:
        from petsc4py import PETSc
    except ImportError as exc:
        raise ImportError(f"solvers.petsc needs petsc4py: {_HINT}") from exc
    return PETSc


def mpi() -> ModuleType:
    """Return ``mpi4py.MPI`` (needed for more than one rank).

    Raises
    ------
    ImportError
        If mpi4py is not installed, naming the extra that provides it.
    """
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError(
            "solvers.petsc needs mpi4py to run on more than one MPI rank: install the extra "
            "with `pip install numlib[petsc]` (mpi4py is built against the system MPI; "
            "`make setup` does it)"
        ) from exc
    return MPI
