"""Row-distributed vectors and blocks of vectors: the array namespace numlib's Krylov code runs on.

numlib's Krylov methods (:mod:`solvers.krylov`, :mod:`solvers.gcrodr`,
:mod:`solvers.arnoldi`) are written against the array API: vectors, blocks of
vectors stored as rows, products of a block with a vector, small host
coefficient matrices. This module gives those operations a distributed meaning,
so that the *same* algorithms run on data spread over MPI ranks exactly as a
PETSc ``Vec`` is: every rank owns one contiguous slice of the ``n`` entries (the
``Vec``'s ownership range), element-wise work stays local, and each
contraction over the distributed index becomes a local BLAS product followed by
one ``MPI_Allreduce`` on the PETSc object's communicator (what ``VecMDot`` does).

Three kinds of object appear:

:class:`DistributedVector`
    A length-``n`` vector; ``local`` is this rank's slice (a numpy array, possibly
    a view into a block or a PETSc ``Vec``).
:class:`DistributedRows`
    ``k`` vectors stored as the rows of a ``(k, n)`` array, ``local`` of shape
    ``(k, n_local)``. ``rows @ v`` is the ``k`` inner products (one reduction),
    ``c @ rows`` a combination (no communication), ``rows[j]`` a view.
small host arrays
    Coefficients (Hessenberg columns, Gram matrices, least-squares solutions)
    are plain numpy arrays, identical on every rank because they come out of a
    reduction that every rank receives.

:class:`Layout` is the namespace (``x.__array_namespace__()``): it knows the
communicator and the partition, allocates new arrays in it, and performs the
reductions. Its ``linalg.qr`` is the tall-skinny QR (TSQR) of Demmel et al.:
local Householder QR, one all-gather of the ``k x k`` triangles, one small QR;
stable like Householder QR on the whole matrix, with one collective.

Only the operations numlib's Krylov methods use are provided, and only for
PETSc's real scalar type; anything else raises.

References
----------
.. [1] J. Demmel, L. Grigori, M. Hoemmen, J. Langou, "Communication-optimal
   parallel and sequential QR and LU factorizations", SIAM J. Sci. Comput. 34
   (2012), A206-A239.
.. [2] S. Balay et al., "PETSc/TAO Users Manual", ANL-21/39 rev. 3.18 (2022):
   ``VecMDot``, ``VecMAXPY``, ownership ranges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from solvers.arnoldi import subtract_combination

__all__ = ["DistributedRows", "DistributedVector", "Layout"]


class Layout:
    """A row partition of ``size`` entries over the ranks of a communicator.

    Acts as the array namespace of the arrays laid out by it. Two layouts with
    the same communicator size, rank and ownership ranges compare equal and
    share a ``__name__``, so arrays built from different PETSc objects with the
    same partition mix freely, and arrays of different partitions never do.

    Parameters
    ----------
    comm : petsc4py.PETSc.Comm
        Communicator of the PETSc objects; every reduction runs on it.
    ranges : sequence of int
        Ownership boundaries, ``ranges[r]:ranges[r + 1]`` is rank ``r``'s slice
        (``len(ranges) == comm.size + 1``, from 0 to ``size``).
    """

    def __init__(self, comm: Any, ranges: Any) -> None:
        self.comm = comm
        self.ranges = tuple(int(r) for r in ranges)
        self.nranks = int(comm.getSize())
        self.rank = int(comm.getRank())
        if len(self.ranges) != self.nranks + 1 or self.ranges[0] != 0:
            raise ValueError(f"ranges must run from 0 over {self.nranks} ranks, got {ranges}")
        self.size = self.ranges[-1]
        self.start, self.stop = self.ranges[self.rank], self.ranges[self.rank + 1]
        self.local_size = self.stop - self.start
        self.__name__ = f"solvers.petsc.arrays[{self.nranks}:{','.join(map(str, self.ranges))}]"
        self.linalg = _Linalg(self)
        self._mpi: Any = None

    @classmethod
    def of(cls, vec: Any) -> Layout:
        """Return the layout of a PETSc ``Vec``."""
        return cls(vec.getComm(), vec.getOwnershipRanges())

    def __eq__(self, other: object) -> bool:
        if other is self:
            return True
        return isinstance(other, Layout) and (self.rank, self.__name__) == (
            other.rank,
            other.__name__,
        )

    def __hash__(self) -> int:
        return hash((self.rank, self.__name__))

    def __repr__(self) -> str:
        return f"Layout(rank {self.rank} of {self.nranks}, rows {self.start}:{self.stop})"

    # -- reductions ---------------------------------------------------------------

    def allreduce(self, values: Any) -> np.ndarray:
        """Sum ``values`` (a host array or scalar) over the ranks; every rank gets the sum."""
        if self.nranks == 1:
            return np.asarray(values)
        return _summed(self._mpi_comm(), values)

    def allgather(self, block: np.ndarray) -> np.ndarray:
        """Stack equally shaped host arrays of all ranks along a new first axis."""
        block = np.ascontiguousarray(block)
        if self.nranks == 1:
            return block[None]
        out = np.empty((self.nranks, *block.shape), dtype=block.dtype)
        self._mpi_comm().Allgather(block, out)
        return out

    def _mpi_comm(self) -> Any:
        if self._mpi is None:  # kept: the solvers reduce twice per step
            self._mpi = _mpi4py_comm(self.comm)
        return self._mpi

    # -- the array-API namespace ------------------------------------------------------

    float32, float64, complex64, complex128 = np.float32, np.float64, np.complex64, np.complex128

    def empty(self, shape: Any, dtype: Any = None, device: Any = None) -> Any:
        """Allocate a vector ``(size,)`` or a block ``(k, size)`` in this layout."""
        return self._new(shape, dtype, np.empty)

    def zeros(self, shape: Any, dtype: Any = None, device: Any = None) -> Any:
        """Allocate zeros of shape ``(size,)`` or ``(k, size)`` in this layout."""
        return self._new(shape, dtype, np.zeros)

    def _new(self, shape: Any, dtype: Any, make: Any) -> Any:
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        dtype = np.float64 if dtype is None else dtype
        if shape[-1] != self.size or len(shape) not in (1, 2):
            raise ValueError(f"shape must be ({self.size},) or (k, {self.size}), got {shape}")
        if len(shape) == 1:
            return DistributedVector(make(self.local_size, dtype=dtype), self)
        return DistributedRows(make((shape[0], self.local_size), dtype=dtype), self)

    def zeros_like(self, x: Any, dtype: Any = None, device: Any = None) -> Any:
        """Zeros of the shape and layout of ``x``."""
        return _like(x, np.zeros_like(x.local, dtype=dtype))

    def empty_like(self, x: Any, dtype: Any = None, device: Any = None) -> Any:
        """Uninitialised array of the shape and layout of ``x``."""
        return _like(x, np.empty_like(x.local, dtype=dtype))

    def asarray(self, obj: Any, dtype: Any = None, device: Any = None, copy: Any = None) -> Any:
        """Pass distributed arrays through (copied if asked); host data stays host data.

        Host arrays are the coefficient side of the algorithms: they are the
        same on every rank and are returned as numpy arrays.
        """
        if isinstance(obj, DistributedVector | DistributedRows):
            if obj.layout != self:
                raise ValueError(f"array laid out as {obj.layout!r} cannot be used in {self!r}")
            local = obj.local
            if dtype is not None and local.dtype != np.dtype(dtype):
                local = local.astype(dtype)
            elif copy:
                local = local.copy()
            return obj if local is obj.local else _like(obj, local)
        return np.array(obj, dtype=dtype, copy=True) if copy else np.asarray(obj, dtype=dtype)

    def astype(self, x: Any, dtype: Any, copy: bool = True) -> Any:
        """``x`` converted to ``dtype`` (a copy unless ``copy=False`` and nothing changes)."""
        local = x.local.astype(dtype, copy=copy)
        return x if local is x.local else _like(x, local)

    @staticmethod
    def result_type(*args: Any) -> Any:
        """Promote dtypes as numpy does."""
        return np.result_type(*args)

    @staticmethod
    def isdtype(dtype: Any, kind: Any) -> bool:
        """Test a dtype's kind as ``numpy.isdtype`` does."""
        return bool(np.isdtype(np.dtype(dtype), kind))

    def isfinite(self, x: Any) -> Any:
        """Element-wise finiteness, in the layout of ``x``."""
        return _like(x, np.isfinite(x.local))

    def all(self, x: Any) -> bool:
        """Whether every entry on every rank is true (one reduction)."""
        missing = float(np.count_nonzero(~np.asarray(x.local, dtype=bool)))
        return bool(self.allreduce(missing) == 0)

    def vecdot(self, a: DistributedVector, b: DistributedVector) -> Any:
        """``a^H b`` over all ranks, a host scalar."""
        return self.allreduce(np.vdot(a.local, b.local))[()]

    def subtract_combination(self, w: Any, coefficients: Any, rows: Any) -> None:
        """``w -= coefficients @ rows`` in place (a vector or a block), one local BLAS pass."""
        local = self._check(w).local
        subtract_combination(np, local, np.asarray(coefficients), self._check(rows).local)

    def conj(self, x: Any) -> Any:
        """Complex conjugate, in the layout of ``x``."""
        return _like(x, np.conj(x.local))

    def stack(self, vectors: Any) -> DistributedRows:
        """Stack vectors as the rows of a block."""
        vectors = list(vectors)
        if not vectors:
            return DistributedRows(np.empty((0, self.local_size)), self)
        return DistributedRows(np.stack([self._check(v).local for v in vectors]), self)

    @staticmethod
    def matrix_transpose(x: Any) -> Any:
        """Return the ``(n, k)`` transpose of a block, or the block back from its transpose."""
        if isinstance(x, _Transposed):
            return x.rows
        if isinstance(x, DistributedRows):
            return _Transposed(x)
        raise TypeError(f"matrix_transpose needs a distributed block, got {type(x).__name__}")

    def _check(self, x: Any) -> Any:
        if not isinstance(x, DistributedVector | DistributedRows) or x.layout != self:
            raise ValueError(f"expected an array laid out as {self!r}, got {x!r}")
        return x


def sum_over_ranks(comm: Any, values: Any) -> np.ndarray:
    """Sum a host array or scalar over the ranks of PETSc communicator ``comm``.

    For reductions outside any :class:`Layout`; a partition's arrays use
    :meth:`Layout.allreduce`. Every rank gets the sum.
    """
    if comm.getSize() == 1:
        return np.asarray(values)
    return _summed(_mpi4py_comm(comm), values)


def _mpi4py_comm(comm: Any) -> Any:
    from solvers.petsc._require import mpi

    mpi()  # a clear message if mpi4py is missing
    return comm.tompi4py()


def _summed(mpi_comm: Any, values: Any) -> np.ndarray:
    # np.array, not ascontiguousarray: that one turns a 0-d scalar into shape (1,).
    values = np.array(values, dtype=np.result_type(values, np.float64))
    out = np.empty_like(values)
    mpi_comm.Allreduce(values, out)
    return out


def _like(x: Any, local: np.ndarray) -> Any:
    return type(x)(local, x.layout)


class _Linalg:
    """``xp.linalg`` of a :class:`Layout`."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def vector_norm(self, x: DistributedVector) -> float:
        """Euclidean norm over all ranks."""
        local = np.vdot(x.local, x.local).real
        return math.sqrt(float(self.layout.allreduce(local)))

    def qr(self, a: _Transposed) -> tuple[_Transposed, np.ndarray]:
        """Thin QR of a distributed ``(n, k)`` matrix, ``n >= k``, by TSQR (one all-gather).

        Each rank factors its ``(n_local, k)`` slice, the ``k x k`` triangles of
        all ranks are gathered and factored once more, and the local ``Q`` is the
        product of the two orthogonal factors. ``R`` is the same on every rank.
        """
        if not isinstance(a, _Transposed):
            raise TypeError("qr needs the transpose of a distributed block, (n, k)")
        layout = self.layout
        local = a.rows.local.T  # (n_local, k)
        k = local.shape[1]
        if k > layout.size:
            raise ValueError(f"qr needs a tall matrix, got {layout.size} x {k}")
        q1, r1 = np.linalg.qr(local)
        # A rank with fewer rows than columns gets a short triangle; padding it
        # with zero rows (and q1 with zero columns) changes neither Q nor R.
        rows = r1.shape[0]
        triangle = np.zeros((k, k), dtype=r1.dtype)
        triangle[:rows] = r1
        q1_padded = np.zeros((local.shape[0], k), dtype=q1.dtype)
        q1_padded[:, :rows] = q1
        q2, r = np.linalg.qr(layout.allgather(triangle).reshape(layout.nranks * k, k))
        q_local = q1_padded @ q2[layout.rank * k : (layout.rank + 1) * k]
        return _Transposed(DistributedRows(np.ascontiguousarray(q_local.T), layout)), r


def _operand(layout: Layout, other: Any, kind: type) -> Any:
    """Return the local data of ``other`` if an array of ``kind`` in ``layout``, else it."""
    if isinstance(other, kind):
        if other.layout != layout:
            raise ValueError(f"cannot combine arrays laid out as {other.layout!r} and {layout!r}")
        return other.local
    if isinstance(other, DistributedVector | DistributedRows | np.ndarray):
        raise TypeError(f"unsupported operand {type(other).__name__} for {kind.__name__}")
    return other


class _Elementwise:
    """Element-wise arithmetic on ``local`` shared by vectors and blocks."""

    # Makes numpy defer: ``coefficients @ rows`` and ``2.0 * v`` reach our
    # reflected operators instead of numpy converting us to an object array.
    __array_ufunc__ = None
    local: np.ndarray
    layout: Layout

    def __init__(self, local: np.ndarray, layout: Layout) -> None:
        self.local = local
        self.layout = layout

    @property
    def dtype(self) -> np.dtype:
        """Scalar type of the entries."""
        return self.local.dtype

    @property
    def device(self) -> str:
        """Always ``"cpu"``: PETSc's host vectors."""
        return "cpu"

    def __array_namespace__(self, api_version: str | None = None) -> Layout:
        return self.layout

    def _apply(self, other: Any, op: Any) -> Any:
        return _like(self, op(self.local, _operand(self.layout, other, type(self))))

    def _inplace(self, other: Any, op: Any) -> Any:
        op(self.local, _operand(self.layout, other, type(self)), out=self.local)
        return self

    def __add__(self, other: Any) -> Any:
        return self._apply(other, np.add)

    def __radd__(self, other: Any) -> Any:
        return self._apply(other, np.add)

    def __sub__(self, other: Any) -> Any:
        return self._apply(other, np.subtract)

    def __rsub__(self, other: Any) -> Any:
        return _like(self, np.subtract(other, self.local))

    def __mul__(self, other: Any) -> Any:
        return self._apply(other, np.multiply)

    def __rmul__(self, other: Any) -> Any:
        return self._apply(other, np.multiply)

    def __truediv__(self, other: Any) -> Any:
        return self._apply(other, np.true_divide)

    def __neg__(self) -> Any:
        return _like(self, -self.local)

    def __iadd__(self, other: Any) -> Any:
        return self._inplace(other, np.add)

    def __isub__(self, other: Any) -> Any:
        return self._inplace(other, np.subtract)

    def __imul__(self, other: Any) -> Any:
        return self._inplace(other, np.multiply)

    def __itruediv__(self, other: Any) -> Any:
        return self._inplace(other, np.true_divide)

    def copy(self) -> Any:
        """Return a copy with its own storage."""
        return _like(self, self.local.copy())


class DistributedVector(_Elementwise):
    """A vector of length ``layout.size`` of which this rank holds ``local``.

    Parameters
    ----------
    local : numpy.ndarray, shape (layout.local_size,)
        This rank's entries (referenced, not copied).
    layout : Layout
        The partition.
    """

    def __init__(self, local: np.ndarray, layout: Layout) -> None:
        if local.shape != (layout.local_size,):
            raise ValueError(f"local must have shape ({layout.local_size},), got {local.shape}")
        super().__init__(local, layout)

    ndim = 1

    @property
    def shape(self) -> tuple[int]:
        """Global shape ``(n,)``."""
        return (self.layout.size,)

    def __repr__(self) -> str:
        return f"DistributedVector({self.layout!r})"


class DistributedRows(_Elementwise):
    """``k`` distributed vectors stored as the rows of a ``(k, n)`` block.

    Parameters
    ----------
    local : numpy.ndarray, shape (k, layout.local_size)
        This rank's columns of the block (referenced, not copied).
    layout : Layout
        The partition of the ``n`` columns.
    """

    def __init__(self, local: np.ndarray, layout: Layout) -> None:
        if local.ndim != 2 or local.shape[1] != layout.local_size:
            raise ValueError(f"local must have shape (k, {layout.local_size}), got {local.shape}")
        super().__init__(local, layout)

    ndim = 2

    @property
    def shape(self) -> tuple[int, int]:
        """Global shape ``(k, n)``."""
        return (self.local.shape[0], self.layout.size)

    def __len__(self) -> int:
        return self.local.shape[0]

    def __iter__(self) -> Any:
        return (DistributedVector(row, self.layout) for row in self.local)

    def __getitem__(self, index: Any) -> Any:
        """Return a row for an int, a block for a slice (views) or an index array (a copy)."""
        if isinstance(index, int | np.integer):
            return DistributedVector(self.local[index], self.layout)
        if isinstance(index, slice) or (isinstance(index, np.ndarray) and index.ndim == 1):
            return DistributedRows(self.local[index], self.layout)
        raise TypeError(f"rows can be indexed by an int, a slice or a 1-D array, got {index!r}")

    def __setitem__(self, index: Any, value: Any) -> None:
        """Copy a vector into row ``index`` (an int) or a block into rows ``index`` (a slice)."""
        kind = DistributedRows if isinstance(index, slice) else DistributedVector
        self.local[index] = _operand(self.layout, value, kind)

    def __matmul__(self, other: Any) -> np.ndarray:
        """Inner products with a vector (``(k,)``) or a transposed block (``(k, k2)``)."""
        if isinstance(other, DistributedVector):
            right = _operand(self.layout, other, DistributedVector)
        elif isinstance(other, _Transposed):
            right = _operand(self.layout, other.rows, DistributedRows).T
        else:
            raise TypeError(f"rows @ {type(other).__name__} is not supported")
        return self.layout.allreduce(self.local @ right)

    def __rmatmul__(self, coefficients: Any) -> Any:
        """Combine the rows, ``c @ rows``: a vector for ``c`` of shape ``(k,)``, else rows."""
        c = np.asarray(coefficients)
        if c.ndim not in (1, 2) or c.shape[-1] != self.local.shape[0]:
            raise ValueError(f"coefficients of shape {c.shape} do not match {self.shape[0]} rows")
        combined = c @ self.local
        if c.ndim == 1:
            return DistributedVector(combined, self.layout)
        return DistributedRows(combined, self.layout)

    def __repr__(self) -> str:
        return f"DistributedRows({self.local.shape[0]} rows, {self.layout!r})"


@dataclass(frozen=True)
class _Transposed:
    """The ``(n, k)`` transpose of a block: an operand of ``@`` and ``linalg.qr`` only."""

    rows: DistributedRows

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows.layout.size, self.rows.local.shape[0])

    @property
    def dtype(self) -> np.dtype:
        return self.rows.dtype

    def __array_namespace__(self, api_version: str | None = None) -> Layout:
        return self.rows.layout
