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

from numlib.validate import check_finite, check_operator, check_positive_int, check_vector
from solvers.petsc._require import petsc
from solvers.petsc.arrays import DistributedVector, Layout, sum_over_ranks

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
    if comm is None:
        return PETSc.COMM_WORLD
    if not isinstance(comm, PETSc.Comm):
        raise TypeError(f"comm must be a petsc4py.PETSc.Comm, got {type(comm).__name__}")
    return comm


def ownership(n: int, comm: Any = None) -> tuple[int, int]:
    """Return this rank's rows ``(start, stop)`` of ``n`` under PETSc's default split.

    PETSc's ``PETSC_DECIDE`` gives each rank ``n // P`` rows and the first
    ``n % P`` ranks one more, in rank order.

    Parameters
    ----------
    n : int
        Global number of rows, ``>= 0``.
    comm : petsc4py.PETSc.Comm, optional
        Communicator (default ``PETSc.COMM_WORLD``).

    Returns
    -------
    tuple of int
        ``(start, stop)``, this rank's half-open range of rows.

    Raises
    ------
    TypeError, ValueError
        If ``n`` is not a non-negative integer or ``comm`` not a PETSc communicator.
    """
    n = check_positive_int(n, "n", minimum=0)
    comm = _comm(comm)
    size, rank = comm.getSize(), comm.getRank()
    base, extra = divmod(n, size)
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

    Raises
    ------
    TypeError, ValueError
        On every rank, before assembly: if ``local`` is not a 2-D scipy.sparse or
        numpy matrix of real floating point with ``n`` columns and finite
        entries on every rank, ``n`` is not a positive integer, or the ranks'
        row counts do not add up to ``n``.
    """
    PETSc = petsc()
    comm = _comm(comm)
    n = check_positive_int(n, "n")
    if not (sp.issparse(local) or isinstance(local, np.ndarray)) or local.ndim != 2:
        shape = getattr(local, "shape", None)
        raise TypeError(
            "local must be a 2-D scipy.sparse matrix or numpy array, "
            f"got {type(local).__name__} of shape {shape}"
        )
    _check_real(local.dtype, "local")
    csr = sp.csr_array(local, dtype=PETSc.ScalarType)
    # One reduction for all three checks, so that every rank raises together.
    problems = sum_over_ranks(
        comm, np.array([csr.shape[0], csr.shape[1] != n, not np.isfinite(csr.data).all()])
    )
    if problems[1]:
        raise ValueError(f"local must have n={n} columns on every rank, got {csr.shape[1]} here")
    if problems[2]:
        raise ValueError("local must be finite on every rank (NaN or Inf found)")
    if problems[0] != n:
        raise ValueError(f"the ranks' local rows add up to {int(problems[0])}, not n={n}")
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

    Raises
    ------
    TypeError, ValueError
        If ``x`` is not a finite real 1-D numpy array, ``like`` neither a ``Mat``
        nor a ``Vec``, or their lengths differ.
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
    elif isinstance(like, PETSc.Vec):
        vec = like.duplicate()
    else:
        raise TypeError(f"like must be a petsc4py.PETSc.Mat or Vec, got {type(like).__name__}")
    if vec.getSize() != x.shape[0]:
        raise ValueError(f"x has length {x.shape[0]}, but like has {vec.getSize()} rows")
    start, stop = vec.getOwnershipRange()
    vec.setArray(x[start:stop])
    return vec


def gather_vec(vec: Any) -> np.ndarray:
    """Return the whole of a distributed ``Vec`` as a numpy array on every rank.

    Collective. Goes through PETSc's ``VecScatterCreateToAll``; costs ``n``
    numbers per rank.

    Parameters
    ----------
    vec : petsc4py.PETSc.Vec
        The vector; not modified.

    Returns
    -------
    numpy.ndarray, shape (n,)
        A copy of all ``n`` entries, in global order.

    Raises
    ------
    TypeError
        If ``vec`` is not a ``petsc4py.PETSc.Vec``.
    """
    _check_vec(vec, "vec")
    PETSc = petsc()
    scatter, whole = PETSc.Scatter.toAll(vec)
    scatter.scatter(vec, whole, PETSc.InsertMode.INSERT_VALUES, PETSc.ScatterMode.FORWARD)
    out = whole.getArray(readonly=True).copy()
    scatter.destroy()
    whole.destroy()
    return out


def as_distributed(vec: Any, *, name: str = "vec") -> DistributedVector:
    """Copy a PETSc ``Vec`` into a :class:`DistributedVector` for numlib's solvers.

    Collective (the finiteness check is one reduction).

    Parameters
    ----------
    vec : petsc4py.PETSc.Vec
        The vector; not modified.
    name : str
        What the errors call it (the caller's argument).

    Returns
    -------
    DistributedVector
        A copy of this rank's slice, laid out as ``vec``.

    Raises
    ------
    TypeError
        If ``vec`` is not a ``petsc4py.PETSc.Vec``.
    ValueError
        If it holds NaN or Inf (checked over all ranks).
    """
    _check_vec(vec, name)
    out = DistributedVector(vec.getArray(readonly=True).copy(), Layout.of(vec))
    check_finite(out, name)
    return out


def to_vec(x: DistributedVector, out: Any = None) -> Any:
    """Write a :class:`DistributedVector` into a PETSc ``Vec`` (a new one unless ``out``).

    Parameters
    ----------
    x : DistributedVector
        The entries, this rank's slice; copied.
    out : petsc4py.PETSc.Vec, optional
        Destination laid out as ``x``; default a new ``Vec``.

    Returns
    -------
    petsc4py.PETSc.Vec
        ``out``, or the new vector.

    Raises
    ------
    TypeError, ValueError
        If ``x`` is not a :class:`DistributedVector`, or ``out`` not a ``Vec``
        laid out as ``x``.
    """
    PETSc = petsc()
    if not isinstance(x, DistributedVector):
        raise TypeError(f"x must be a DistributedVector, got {type(x).__name__}")
    layout = x.layout
    if out is None:
        out = PETSc.Vec().createMPI((layout.local_size, layout.size), comm=layout.comm)
    else:
        _check_vec(out, "out")
        if Layout.of(out) != layout:
            raise ValueError("out must have the layout of x")
    out.setArray(x.local)
    return out


def _check_vec(value: Any, name: str) -> None:
    PETSc = petsc()
    if not isinstance(value, PETSc.Vec):
        raise TypeError(f"{name} must be a petsc4py.PETSc.Vec, got {type(value).__name__}")


def _check_real(dtype: Any, name: str) -> None:
    PETSc = petsc()
    if np.dtype(dtype).kind == "c" and np.dtype(PETSc.ScalarType).kind != "c":
        raise TypeError(
            f"{name} is complex ({dtype}), but this PETSc is built with real scalars "
            f"({np.dtype(PETSc.ScalarType)})"
        )
