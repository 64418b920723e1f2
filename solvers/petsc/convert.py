"""Conversions between scipy.sparse / numpy and PETSc ``Mat`` / ``Vec``, distributed by rows.

PETSc distributes a matrix by contiguous blocks of rows and a vector by the
matching blocks of entries (the ownership range). Here every rank passes the
same global scipy/numpy object — the usual way a replicated problem set-up
meets PETSc — and keeps only its own rows; :func:`mat_from_local_rows` takes the
rows a rank owns when the global matrix should never exist on one rank.
:func:`as_distributed` and :func:`to_vec` move between a PETSc ``Vec`` and
the :class:`solvers.petsc.arrays.DistributedVector` numlib's solvers compute on.

All functions are collective over ``comm``: every rank must call them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from numlib.validate import check_finite, check_operator, check_vector
from solvers.petsc._require import petsc
from solvers.petsc.arrays import DistributedVector, Layout

__all__ = [
    "as_distributed",
    "gather_vec",
    "mat_from_local_rows",
    "ownership",
    "to_petsc_mat",
    "to_petsc_vec",
    "to_vec",
]


def _comm(comm: Any) -> Any:
    PETSc = petsc()
    return PETSc.COMM_WORLD if comm is None else comm


def ownership(n: int, comm: Any = None) -> tuple[int, int]:
    """Return this rank's rows ``(start, stop)`` of ``n`` under PETSc's default split.

    PETSc's ``PETSC_DECIDE`` gives each rank ``n // P`` rows and the first
    ``n % P`` ranks one more, in rank order.
    """
    comm = _comm(comm)
    size, rank = comm.getSize(), comm.getRank()
    base, extra = divmod(int(n), size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def mat_from_local_rows(local: Any, n: int, comm: Any = None) -> Any:
    """Assemble a distributed ``n x n`` AIJ matrix from the rows this rank owns.

    Parameters
    ----------
    local : scipy.sparse matrix, shape (n_local, n)
        This rank's rows, columns in global numbering; consecutive ranks own
        consecutive row blocks (rank order), and the row counts add up to ``n``.
    n : int
        Global size.
    comm : petsc4py.PETSc.Comm, optional
        Communicator (default ``PETSc.COMM_WORLD``).

    Returns
    -------
    petsc4py.PETSc.Mat
        Assembled ``aij`` matrix (``seqaij`` on one rank, ``mpiaij`` otherwise),
        preallocated exactly from the CSR structure.
    """
    PETSc = petsc()
    comm = _comm(comm)
    csr = sp.csr_array(local, dtype=PETSc.ScalarType)
    if csr.shape[1] != n:
        raise ValueError(f"local rows must have {n} columns, got {csr.shape[1]}")
    csr.sum_duplicates()
    csr.sort_indices()
    index = PETSc.IntType
    mat = PETSc.Mat().createAIJ(
        size=((csr.shape[0], n), (PETSc.DECIDE, n)),
        csr=(csr.indptr.astype(index), csr.indices.astype(index), csr.data),
        comm=comm,
    )
    mat.assemble()
    return mat


def to_petsc_mat(A: Any, comm: Any = None) -> Any:
    """Distribute a square scipy.sparse or dense numpy matrix into a PETSc AIJ ``Mat``.

    Every rank passes the same ``A``; each keeps its rows of PETSc's default
    split (:func:`ownership`). ``A`` is not modified.

    Parameters
    ----------
    A : scipy.sparse matrix or numpy.ndarray, shape (n, n)
        Finite, real floating point (PETSc's scalar type).
    comm : petsc4py.PETSc.Comm, optional
        Communicator (default ``PETSc.COMM_WORLD``).

    Returns
    -------
    petsc4py.PETSc.Mat

    Raises
    ------
    TypeError, ValueError
        For a non-square, empty, non-floating or non-finite ``A``, or one that is
        neither scipy.sparse nor numpy.

    Examples
    --------
    >>> from solvers.problems import poisson2d
    >>> A = poisson2d(8).A
    >>> M = to_petsc_mat(A)
    >>> M.getSize(), M.getInfo()["nz_used"] == A.nnz
    ((64, 64), True)
    """
    if not (sp.issparse(A) or isinstance(A, np.ndarray)):
        raise TypeError(f"A must be a scipy.sparse matrix or a numpy array, got {type(A).__name__}")
    n, _ = check_operator(A, "A")
    _check_real(A.dtype, "A")
    start, stop = ownership(n, comm)
    rows = sp.csr_array(A)[start:stop] if sp.issparse(A) else sp.csr_array(A[start:stop])
    return mat_from_local_rows(rows, n, comm)


def to_petsc_vec(x: np.ndarray, comm: Any = None, *, like: Any = None) -> Any:
    """Distribute a numpy vector (the same on every rank) into a PETSc ``Vec``.

    Parameters
    ----------
    x : numpy.ndarray, shape (n,)
        Finite, real floating point. Not modified (its entries are copied).
    comm : petsc4py.PETSc.Comm, optional
        Communicator (default ``PETSc.COMM_WORLD``); ignored with ``like``.
    like : petsc4py.PETSc.Mat or Vec, optional
        Take the row layout of this matrix (its right vectors) or vector, so the
        result can be multiplied with it; default PETSc's split.

    Returns
    -------
    petsc4py.PETSc.Vec
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a numpy array, got {type(x).__name__}")
    check_vector(x, "x")
    _check_real(x.dtype, "x")
    PETSc = petsc()
    if like is None:
        vec = PETSc.Vec().createMPI((PETSc.DECIDE, x.shape[0]), comm=_comm(comm))
    elif isinstance(like, PETSc.Mat):
        vec = like.createVecRight()
    else:
        vec = like.duplicate()
    if vec.getSize() != x.shape[0]:
        raise ValueError(f"x has length {x.shape[0]}, but like has {vec.getSize()} rows")
    start, stop = vec.getOwnershipRange()
    vec.setArray(x[start:stop])
    return vec


def gather_vec(vec: Any) -> np.ndarray:
    """Return the whole of a distributed ``Vec`` as a numpy array on every rank.

    Goes through PETSc's ``VecScatterCreateToAll``; costs ``n`` numbers per rank.
    """
    PETSc = petsc()
    scatter, whole = PETSc.Scatter.toAll(vec)
    scatter.scatter(vec, whole, PETSc.InsertMode.INSERT_VALUES, PETSc.ScatterMode.FORWARD)
    out = whole.getArray(readonly=True).copy()
    scatter.destroy()
    whole.destroy()
    return out


def as_distributed(vec: Any) -> DistributedVector:
    """Copy a PETSc ``Vec`` into a :class:`DistributedVector` for numlib's solvers.

    The copy is this rank's slice only; the ``Vec`` is not modified.

    Raises
    ------
    TypeError
        If ``vec`` is not a ``petsc4py.PETSc.Vec``.
    ValueError
        If it holds NaN or Inf (checked over all ranks).
    """
    PETSc = petsc()
    if not isinstance(vec, PETSc.Vec):
        raise TypeError(f"vec must be a petsc4py.PETSc.Vec, got {type(vec).__name__}")
    out = DistributedVector(vec.getArray(readonly=True).copy(), Layout.of(vec))
    check_finite(out, "vec")
    return out


def to_vec(x: DistributedVector, out: Any = None) -> Any:
    """Write a :class:`DistributedVector` into a PETSc ``Vec`` (a new one unless ``out``)."""
    PETSc = petsc()
    if not isinstance(x, DistributedVector):
        raise TypeError(f"x must be a DistributedVector, got {type(x).__name__}")
    layout = x.layout
    if out is None:
        out = PETSc.Vec().createMPI((layout.local_size, layout.size), comm=layout.comm)
    elif Layout.of(out) != layout:
        raise ValueError("out must have the layout of x")
    out.setArray(x.local)
    return out


def _check_real(dtype: Any, name: str) -> None:
    PETSc = petsc()
    if np.dtype(dtype).kind == "c" and np.dtype(PETSc.ScalarType).kind != "c":
        raise TypeError(
            f"{name} is complex ({dtype}), but this PETSc is built with real scalars "
            f"({np.dtype(PETSc.ScalarType)})"
        )
