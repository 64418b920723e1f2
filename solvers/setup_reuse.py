"""Reusing an expensive preconditioner set-up across a sequence of related matrices.

Two set-ups are worth carrying from one matrix of a family to the next when
the sparsity pattern is fixed:

* **The prolongators of an algebraic multigrid hierarchy.** Smoothed-aggregation
  set-up spends most of its time on strength of connection, aggregation and
  prolongator smoothing; for a new matrix on the same graph the same
  prolongators ``P_l`` remain good, and only the Galerkin coarse operators
  ``A_{l+1} = P_l^T A_l P_l`` must be recomputed (PETSc GAMG's
  ``-pc_gamg_reuse_interpolation``). The result is the hierarchy pyamg itself
  would build from the new matrix with those prolongators, and its V-cycle
  remains a symmetric positive definite preconditioner for SPD matrices.
* **A sparse (incomplete) LU factorisation of a neighbour**, used as right
  preconditioner with a fresh diagonal scaling: ``F`` factorises
  ``A_ref D_ref^{-1}`` (``D`` the diagonal), and system ``A`` is preconditioned
  by ``M = D_A^{-1} F^{-1}``, so that ``A M = (A D_A^{-1}) (A_ref D_ref^{-1})^{-1}``.
  The rescaling costs one vector division and makes ``M`` exact whenever the
  matrices differ by a column scaling; in general ``A M`` is the identity plus
  the difference of the column-scaled matrices (the cheap diagonal update of a
  reused factorisation, Tebbens and Tůma 2007).

Both objects are scipy-only (scipy.sparse matrices, numpy vectors).

References
----------
.. [1] P. Vaněk, J. Mandel, M. Brezina, "Algebraic multigrid by smoothed
   aggregation for second and fourth order elliptic problems", Computing 56
   (1996), 179-196.
.. [2] J. D. Tebbens, M. Tůma, "Efficient preconditioning of sequences of
   nonsymmetric linear systems", SIAM J. Sci. Comput. 29(5), 2007, 1918-1941.
.. [3] PETSc manual, PCGAMG, option ``-pc_gamg_reuse_interpolation``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from numlib.validate import check_operator

__all__ = ["ScaledFactor", "galerkin_hierarchy", "smoothed_aggregation"]

# Smoothed aggregation's default smoother: one symmetric Gauss-Seidel sweep. It
# reads the level matrix at every call and precomputes nothing, so a hierarchy
# whose level matrices are replaced needs no smoother set-up.
SMOOTHER = ("gauss_seidel", {"sweep": "symmetric"})


def smoothed_aggregation(A: Any) -> Any:
    """Build pyamg's smoothed-aggregation hierarchy of ``A``, reproducibly.

    pyamg draws the start vectors of its spectral-radius estimates (and so its
    prolongator-smoothing weights) from numpy's legacy global generator; a fixed
    seed makes every hierarchy reproducible, and the caller's generator state is
    restored. Not thread-safe, as that generator is global.

    Parameters
    ----------
    A : scipy.sparse matrix, shape (n, n)
        Symmetric positive definite (smoothed aggregation's setting).

    Returns
    -------
    pyamg.multilevel.MultilevelSolver
        With symmetric Gauss-Seidel smoothing, so that
        :func:`galerkin_hierarchy` can reuse it, and scalar (1 x 1 block) levels
        stored as CSR: pyamg keeps them as BSR, whose Gauss-Seidel kernel takes
        about three times as long per entry as the CSR one.

    Raises
    ------
    TypeError, ValueError
        If ``A`` is not a square scipy.sparse matrix with finite entries.

    Notes
    -----
    ``A`` is not modified: a CSR matrix with unsorted or duplicate indices is copied
    before pyamg (which sorts indices in place) sees it.
    """
    A = _check_sparse(A, "A")
    import pyamg

    state = np.random.get_state()  # noqa: NPY002
    np.random.seed(0)  # noqa: NPY002
    try:
        hierarchy = pyamg.smoothed_aggregation_solver(
            A, presmoother=SMOOTHER, postsmoother=SMOOTHER
        )
    finally:
        np.random.set_state(state)  # noqa: NPY002
    for level in hierarchy.levels:
        for name in ("A", "P", "R"):
            if hasattr(level, name):
                setattr(level, name, _scalar_csr(getattr(level, name)))
    return hierarchy


def galerkin_hierarchy(hierarchy: Any, A: Any) -> Any:
    """Return ``hierarchy``'s multigrid with its prolongators and new matrix ``A``.

    Level ``0`` holds ``A``; level ``l + 1`` holds ``R_l A_l P_l`` with the
    stored prolongator ``P_l`` and restriction ``R_l = P_l^T``, computed by the
    same sparse products, in the same order, as pyamg's own set-up, so for the
    matrix the hierarchy was built from the result equals it operator for
    operator. Cost: one sparse triple product per level (about a tenth of a
    smoothed-aggregation set-up at 10^4 unknowns); the aggregation and the
    smoothed prolongators are not recomputed. The coarsest level is solved by a
    fresh pseudo-inverse; smoothing is symmetric Gauss-Seidel on the new level
    matrices. ``hierarchy`` itself is not modified.

    For symmetric positive definite ``A`` every ``A_l`` is SPD (``P_l`` has full
    column rank) and the V-cycle is an SPD preconditioner for CG; how well it
    works depends on how well the old prolongators fit the new matrix, which
    the caller measures by iteration counts.

    Parameters
    ----------
    hierarchy : pyamg.multilevel.MultilevelSolver
        A hierarchy built for a matrix with ``A``'s shape (e.g. by
        :func:`smoothed_aggregation`).
    A : scipy.sparse matrix, shape (n, n)
        The new fine-level matrix.

    Returns
    -------
    pyamg.multilevel.MultilevelSolver

    Raises
    ------
    TypeError, ValueError
        If ``hierarchy`` has no levels with prolongators, or ``A`` is not a
        finite square sparse matrix of the hierarchy's size.

    Examples
    --------
    >>> import numpy as np
    >>> from solvers.krylov import cg
    >>> from solvers.problems import darcy
    >>> first, second = darcy(32, rng=1), darcy(32, rng=2)
    >>> reused = galerkin_hierarchy(smoothed_aggregation(first.A), second.A)
    >>> cg(second.A, second.b, M=reused.aspreconditioner(), rtol=1e-8).converged
    True
    """
    from pyamg.multilevel import MultilevelSolver
    from pyamg.relaxation.smoothing import change_smoothers

    levels_in = getattr(hierarchy, "levels", None)
    if not levels_in or not all(hasattr(level, "P") for level in levels_in[:-1]):
        raise TypeError("hierarchy must be a pyamg MultilevelSolver with prolongators P")
    A = _check_sparse(A, "A")
    n = levels_in[0].A.shape[0]
    if A.shape[0] != n:
        raise ValueError(f"A must have shape ({n}, {n}) like the hierarchy, got {A.shape}")
    levels = []
    for old in levels_in[:-1]:
        level = MultilevelSolver.Level()
        level.A, level.P, level.R = A, old.P, old.R
        levels.append(level)
        A = _scalar_csr(old.R @ A @ old.P)
    coarsest = MultilevelSolver.Level()
    coarsest.A = A
    levels.append(coarsest)
    reused = MultilevelSolver(levels, coarse_solver="pinv")
    change_smoothers(reused, SMOOTHER, SMOOTHER)
    return reused


class ScaledFactor:
    """A sparse (incomplete) LU of one matrix, reused for others with a diagonal update.

    Factorises ``A_ref D_ref^{-1}`` once; :meth:`preconditioner` returns, for any
    ``A`` of the same size, the right preconditioner ``M = D_A^{-1} F^{-1}``.
    ``A M`` is the identity when ``A = A_ref`` (exact factor) or when ``A`` and
    ``A_ref`` differ by a column scaling, and close to it when the
    column-scaled matrices are close: the Krylov iteration count measures that
    distance, and a caller refactorises when it grows. A matrix with a zero on
    its diagonal cannot be rescaled: if ``A_ref`` has one, ``F`` factorises
    ``A_ref`` itself and ``M = F^{-1}`` for every ``A``; if only a later ``A``
    has one, that ``A`` gets ``M = D_ref^{-1} F^{-1} = A_ref^{-1}``.

    Parameters
    ----------
    A : scipy.sparse matrix, shape (n, n)
        Reference matrix with a nonzero diagonal.
    incomplete : bool
        ``spilu`` (drop tolerance 1e-4, fill factor 10) instead of the exact
        ``splu``. At 10^4-10^5 unknowns in 2-D the exact factor costs about
        the same and is far more accurate; the incomplete one bounds memory
        for larger or 3-D problems.

    Raises
    ------
    TypeError, ValueError
        If ``A`` is not a finite square sparse matrix.

    Examples
    --------
    >>> from solvers.krylov import gmres
    >>> from solvers.problems import convection_diffusion
    >>> near = convection_diffusion(24, 30.0, angle=0.30)
    >>> system = convection_diffusion(24, 32.0, angle=0.35)
    >>> M = ScaledFactor(near.A).preconditioner(system.A)
    >>> result = gmres(system.A, system.b, M=M, rtol=1e-8)
    >>> result.converged and result.iterations <= 8
    True
    """

    def __init__(self, A: Any, *, incomplete: bool = False) -> None:
        A = _check_sparse(A, "A")
        diagonal = A.diagonal()
        self._reference_scale = diagonal if np.all(diagonal != 0) else None
        scaled = sp.csc_array(
            A if self._reference_scale is None else A @ sp.diags_array(1.0 / diagonal)
        )
        if incomplete:
            self._factor = spla.spilu(scaled, drop_tol=1e-4, fill_factor=10)
        else:
            self._factor = spla.splu(scaled)
        self.shape = A.shape
        self.dtype = np.result_type(A.dtype, np.float64)

    @property
    def nnz(self) -> int:
        """Number of stored entries of the factors ``L`` and ``U``."""
        return int(self._factor.L.nnz + self._factor.U.nnz)

    def preconditioner(self, A: Any) -> spla.LinearOperator:
        """Return ``M = D_A^{-1} F^{-1}``, the right preconditioner of ``A``.

        Parameters
        ----------
        A : scipy.sparse matrix, shape (n, n)
            A matrix of the family.

        Returns
        -------
        scipy.sparse.linalg.LinearOperator
            One triangular solve pair and one division per application.

        Raises
        ------
        TypeError, ValueError
            If ``A`` is not a finite sparse matrix of the factor's shape.
        """
        A = _check_sparse(A, "A")
        if A.shape != self.shape:
            raise ValueError(f"A must have shape {self.shape} like the factor, got {A.shape}")
        solve = self._factor.solve
        dtype = np.result_type(self.dtype, A.dtype)
        if self._reference_scale is None:
            return spla.LinearOperator(self.shape, matvec=lambda v: solve(np.ravel(v)), dtype=dtype)
        diagonal = A.diagonal()
        inverse_scale = 1.0 / (diagonal if np.all(diagonal != 0) else self._reference_scale)
        return spla.LinearOperator(
            self.shape, matvec=lambda v: inverse_scale * solve(np.ravel(v)), dtype=dtype
        )


def _check_sparse(A: Any, name: str) -> sp.csr_array:
    if not sp.issparse(A):
        raise TypeError(f"{name} must be a scipy.sparse matrix, got {type(A).__name__}")
    check_operator(A, name)  # square, float, finite
    # pyamg sorts the indices of the matrices it is given in place: hand it a CSR
    # whose arrays are not the caller's unless they are already canonical.
    return _canonical_csr(A)


def _canonical_csr(A: Any) -> sp.csr_array:
    """CSR with sorted, unique indices, copying only when the input is not (never in place)."""
    A = sp.csr_array(A)
    if not A.has_canonical_format:
        A = A.copy()
        A.sum_duplicates()
    return A


def _scalar_csr(A: Any) -> Any:
    """CSR for a BSR matrix of 1 x 1 blocks (same entries); anything else unchanged."""
    if sp.issparse(A) and A.format == "bsr" and A.blocksize == (1, 1):
        return sp.csr_array(A)
    return A
