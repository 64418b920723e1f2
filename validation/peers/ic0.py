"""Zero-fill incomplete Cholesky, IC(0), for nearest-neighbour grid stencils.

scipy has no incomplete Cholesky. For a matrix whose strictly lower neighbours
of every row are never neighbours of each other -- true of the 5/7-point stencils
of :mod:`solvers.problems` in their natural (C) ordering, where row ``i`` couples
to ``i - 1``, ``i - n``, ``i - n²`` -- IC(0) changes only the diagonal:
``A ≈ (D + L) D^{-1} (D + L^T)`` with ``L`` the strict lower triangle of ``A`` and
``d_i = a_ii - Σ_{j < i} a_ij² / d_j`` (Meijerink and van der Vorst, 1977). The
recurrence runs once over the rows; the two triangular solves per application use
SuperLU on the triangular factors in natural order (no fill, no pivoting).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sla

__all__ = ["ic0_preconditioner"]


def ic0_preconditioner(A: Any) -> sla.LinearOperator:
    """Return ``M ≈ A^{-1}``, the IC(0) preconditioner of a grid stencil matrix.

    Raises ``ValueError`` when two lower neighbours of a row are coupled (then IC(0)
    would also change off-diagonal entries and this shortcut is not exact) or when
    a pivot ``d_i`` is not positive.

    References
    ----------
    .. [1] J. A. Meijerink and H. A. van der Vorst, "An iterative solution method for
       linear systems of which the coefficient matrix is a symmetric M-matrix",
       Math. Comp. 31 (1977).
    """
    lower = sp.tril(sp.csr_array(A), k=-1, format="csr")
    lower.sort_indices()
    n = A.shape[0]
    diagonal = np.asarray(A.diagonal(), dtype=np.float64).tolist()
    indptr, indices = lower.indptr.tolist(), lower.indices.tolist()
    squares = (lower.data**2).tolist()
    _check_uncoupled(lower)
    d = [0.0] * n
    for i in range(n):
        start, stop = indptr[i], indptr[i + 1]
        value = diagonal[i]
        for k in range(start, stop):
            value -= squares[k] / d[indices[k]]
        if not value > 0.0:
            raise ValueError(f"IC(0) pivot {i} is {value:.3e}: A is not an M-matrix")
        d[i] = value
    pivots = np.array(d)
    factor = (lower + sp.diags_array(pivots)).tocsc()
    options = {"permc_spec": "NATURAL", "diag_pivot_thresh": 0.0}
    forward = sla.splu(factor, **options)
    backward = sla.splu(factor.T.tocsc(), **options)

    def apply(r: np.ndarray) -> np.ndarray:
        return backward.solve(pivots * forward.solve(np.asarray(r, dtype=np.float64).ravel()))

    return sla.LinearOperator((n, n), matvec=apply, dtype=np.float64)


def _check_uncoupled(lower: sp.csr_array) -> None:
    """Raise if two lower neighbours ``a < b`` of some row are coupled (``A[b, a] != 0``)."""
    counts = np.diff(lower.indptr)
    rows = np.repeat(np.arange(lower.shape[0]), counts)
    positions = np.arange(lower.nnz)
    for gap in range(1, int(counts.max(initial=0))):
        first = positions[: lower.nnz - gap]
        same = rows[first] == rows[first + gap]
        a, b = lower.indices[first[same]], lower.indices[first[same] + gap]
        if a.size and np.any(np.asarray(lower[b, a]) != 0):
            raise ValueError("A's lower neighbours are coupled: IC(0) is not diagonal-only")
