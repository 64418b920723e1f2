"""Monarch matrices: product of two block-diagonal factors with a fixed permutation.

A Monarch matrix ``M`` (``m x n``) with ``bi`` input blocks, ``bo`` output blocks and block
rank ``r`` is ``M = P_out L P R``: ``R`` is block-diagonal with ``bi`` blocks of shape
``(bo r) x (n / bi)``, ``P`` regroups the ``bi * bo * r`` intermediate coordinates from
``(input block, output block, r)`` order to ``(output block, input block, r)``, ``L`` is
block-diagonal with ``bo`` blocks of shape ``(m / bo) x (bi r)``, and ``P_out`` interleaves
the outputs (row ``(l, j)`` of ``M`` is row ``l`` of output block ``j``, ``l`` major).
Entrywise, with ``p = m / bo`` and ``q = n / bi``::

    M[l * bo + j, k * q + i] = sum_s L[j, l, k * r + s] R[k, j * r + s, i]

so every ``p x q`` slice ``M[(:, j), (k, :)]`` has rank ``<= r``: those ``bi * bo``
slices partition the entries of ``M``, and the Frobenius-optimal Monarch approximation
of any dense matrix is the best rank-``r`` approximation of every slice, a batch of small
SVDs (Dao et al. 2022, Theorem 1, for ``r = 1`` and square ``m = n``; the argument is the
same for rectangular shapes and ``r > 1``). Square ``n = b^2`` with ``bi = bo = b`` and
``r = 1`` is the paper's default. Parameters: ``r (bo n + bi m)``; a matvec costs the
same number of multiply-adds.

The layout matches the ``blockdiag_butterfly_project`` reference code of the paper, so
the factors plug into a ``MonarchLinear``: ``y = x @ M.T`` computed as two batched
matmuls (:meth:`Monarch.apply`).

Array-generic: numpy and torch (reshape, permute_dims, matmul and a batched
``linalg.svd``); the factors stay on the input's library and device.

References
----------
Dao, Chen, Sohoni, Desai, Poli, Grogan, Liu, Rao, Rudra, Re. Monarch: expressive
structured matrices for efficient and accurate training. ICML 2022.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from numlib._arrays import check_dense, small_lapack_threads
from numlib.backend import array_namespace
from numlib.calibration import whiten
from numlib.validate import check_positive_int

__all__ = ["Monarch", "monarch_project"]


@dataclass(frozen=True)
class Monarch:
    """A Monarch matrix ``M = P_out L P R`` stored as its two block-diagonal factors.

    Attributes
    ----------
    L : array, shape (bo, m // bo, bi * r)
        Output factor: ``bo`` blocks of shape ``(m / bo) x (bi r)``.
    R : array, shape (bi, bo * r, n // bi)
        Input factor: ``bi`` blocks of shape ``(bo r) x (n / bi)``.
    """

    L: Any
    R: Any

    def __post_init__(self) -> None:
        check_dense(self.L, "L", ndim=3)
        check_dense(self.R, "R", ndim=3)
        bo, _, bir = (int(s) for s in self.L.shape)
        bi, bor, _ = (int(s) for s in self.R.shape)
        if bir % bi or bor % bo or bir // bi != bor // bo:
            raise ValueError(
                f"L {tuple(self.L.shape)} and R {tuple(self.R.shape)} are not Monarch "
                "factors: need L (bo, p, bi*r) and R (bi, bo*r, q)"
            )

    @property
    def nblocks(self) -> tuple[int, int]:
        """``(bi, bo)``: input and output block counts."""
        return int(self.R.shape[0]), int(self.L.shape[0])

    @property
    def block_rank(self) -> int:
        """``r``."""
        return int(self.L.shape[2]) // int(self.R.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        """``(m, n)``."""
        return (
            int(self.L.shape[0] * self.L.shape[1]),
            int(self.R.shape[0] * self.R.shape[2]),
        )

    @property
    def params(self) -> int:
        """Stored numbers, ``r (bo n + bi m)``."""
        return int(np.prod(self.L.shape) + np.prod(self.R.shape))

    def apply(self, x: Any) -> Any:
        """Return ``x @ M.T`` for ``x`` of shape ``(..., n)`` (a batch of ``M x``).

        Two batched matmuls, ``O(r (bo n + bi m))`` per vector, no dense ``M``.

        Raises
        ------
        ValueError
            If the last axis of ``x`` is not ``n``.
        """
        m, n = self.shape
        shape = tuple(int(s) for s in getattr(x, "shape", ()))
        if not shape or shape[-1] != n:
            raise ValueError(f"x must have shape (..., {n}), got {shape}")
        xp = array_namespace(x, self.R)
        bi, bo = self.nblocks
        r = self.block_rank
        batch = shape[:-1]
        t = int(np.prod(batch)) if batch else 1
        X = xp.permute_dims(xp.reshape(x, (t, bi, n // bi)), (1, 2, 0))  # (bi, q, t)
        U = self.R @ X  # (bi, bo r, t)
        U = xp.reshape(U, (bi, bo, r, t))
        U = xp.reshape(xp.permute_dims(U, (1, 0, 2, 3)), (bo, bi * r, t))
        Y = self.L @ U  # (bo, p, t)
        Y = xp.reshape(xp.permute_dims(Y, (2, 1, 0)), (*batch, m))  # row index l*bo + j
        return Y

    def matvec(self, x: Any) -> Any:
        """Return ``M x`` for a vector ``x`` of length ``n``."""
        if len(getattr(x, "shape", ())) != 1:
            raise ValueError("x must be 1-D; use apply for batches")
        return self.apply(x)

    def to_dense(self) -> Any:
        """Return the dense ``m x n`` matrix ``M``."""
        xp = array_namespace(self.L)
        bi, bo = self.nblocks
        r = self.block_rank
        _, p, _ = (int(s) for s in self.L.shape)
        q = int(self.R.shape[2])
        Lb = xp.permute_dims(xp.reshape(self.L, (bo, p, bi, r)), (2, 0, 1, 3))  # k j l s
        Rb = xp.reshape(self.R, (bi, bo, r, q))  # k j s i
        blocks = Lb @ Rb  # (bi, bo, p, q): block (k, j)
        return xp.reshape(xp.permute_dims(blocks, (2, 1, 0, 3)), (p * bo, bi * q))


def _check_blocks(nblocks: int | tuple[int, int], m: int, n: int) -> tuple[int, int]:
    if isinstance(nblocks, numbers.Integral) and not isinstance(nblocks, bool):
        pair = (int(nblocks), int(nblocks))
    elif isinstance(nblocks, tuple) and len(nblocks) == 2:
        pair = nblocks
    else:
        raise TypeError(f"nblocks must be an int or a pair (bi, bo), got {nblocks!r}")
    bi = check_positive_int(pair[0], "nblocks[0]")
    bo = check_positive_int(pair[1], "nblocks[1]")
    if n % bi:
        raise ValueError(f"nblocks: input blocks {bi} must divide n = {n}")
    if m % bo:
        raise ValueError(f"nblocks: output blocks {bo} must divide m = {m}")
    return bi, bo


def monarch_project(
    M: Any,
    nblocks: int | tuple[int, int] | None = None,
    *,
    rank: int = 1,
    C: Any = None,
    damp: float = 0.01,
    sweeps: int = 4,
) -> Monarch:
    """Frobenius-optimal (or activation-aware) Monarch approximation (Dao et al. 2022).

    Reshapes ``M`` into its ``bi * bo`` slices of shape ``(m / bo) x (n / bi)`` (see the
    module docstring) and keeps the best rank-``r`` approximation of each by one batched
    SVD. Because the slices partition the entries and each Monarch slice is an arbitrary
    matrix of rank ``<= r``, the result ``Mhat`` satisfies
    ``||M - Mhat||_F = min over Monarch X ||M - X||_F`` exactly, and ``Mhat = M`` (to
    rounding) when ``M`` is Monarch with the same structure. The singular values are
    split evenly (``sqrt(s)``) between ``L`` and ``R``. Cost: ``bi * bo`` SVDs of
    ``(m/bo) x (n/bi)``, i.e. ``O(m n min(m/bo, n/bi))``.

    With ``C`` (the second moment ``E[x x^T]`` of the inputs, damped as in
    :func:`numlib.calibration.whiten`) it minimises the expected output error
    ``E||(M - X) x||^2 = trace((M - X) C (M - X)^T)`` instead. ``C`` couples the input
    blocks, so the slices no longer separate; starting from the Frobenius projection,
    each of ``sweeps`` passes replaces the slices of one input block ``k`` at a time by
    their exact optimum given the others: with ``G`` the part of ``M`` the other
    blocks leave unexplained, the unconstrained optimum is ``G C[:, k] C[k, k]^{-1}``
    and the best rank-``r`` slices of it in the metric ``C[k, k]`` are truncated SVDs of
    ``G C[:, k] C[k, k]^{-1} F_k`` (``F_k F_k^T = C[k, k]``). Each step can only lower
    the error, so the result is never worse than the Frobenius projection in that
    metric and stays exact on Monarch matrices. ``O(sweeps m n^2)``.

    Parameters
    ----------
    M : array, shape (m, n)
        numpy or torch, real floating point.
    nblocks : int or (int, int), optional
        ``(bi, bo)`` (one int sets both); ``bi`` must divide ``n`` and ``bo`` divide
        ``m``. Default: ``b = sqrt(n)`` when ``m = n`` is a perfect square (the paper's
        square Monarch), otherwise required.
    rank : int
        Block rank ``r``, ``1 <= r <= min(m / bo, n / bi)``; default 1.
    C : array, shape (n, n), optional
        Symmetric positive semi-definite input second moment (activation-aware fit).
    damp : float
        Relative damping of ``C``.
    sweeps : int
        Block coordinate descent passes over the input blocks, ``>= 1``.

    Returns
    -------
    Monarch
        ``L`` and ``R`` on the input's library, device and dtype.

    Raises
    ------
    ValueError
        For block counts that do not divide the shape, a missing ``nblocks`` for a
        non-square-number shape, or ``rank`` out of range.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> exact = Monarch(rng.standard_normal((4, 3, 2)), rng.standard_normal((2, 4, 5)))
    >>> exact.shape
    (12, 10)
    >>> fit = monarch_project(exact.to_dense(), (2, 4))
    >>> bool(np.allclose(fit.to_dense(), exact.to_dense()))
    True
    """
    m, n = check_dense(M, "M")
    if nblocks is None:
        b = round(math.sqrt(n))
        if m != n or b * b != n:
            raise ValueError(
                f"nblocks is required unless M is square with a square size; got shape {(m, n)}"
            )
        nblocks = b
    bi, bo = _check_blocks(nblocks, m, n)
    p, q = m // bo, n // bi
    r = check_positive_int(rank, "rank")
    if r > min(p, q):
        raise ValueError(f"rank must satisfy 1 <= rank <= min(m/bo, n/bi) = {min(p, q)}, got {r}")
    if C is not None:
        check_dense(C, "C", square=True)
        if tuple(int(d) for d in C.shape) != (n, n):
            raise ValueError(f"C must be {n} x {n} (the inputs of M), got {tuple(C.shape)}")
        sweeps = check_positive_int(sweeps, "sweeps")
    xp = array_namespace(M)
    # M[l*bo + j, k*q + i] -> slice (k, j) of shape (p, q).
    blocks = xp.permute_dims(xp.reshape(M, (p, bo, bi, q)), (2, 1, 0, 3))
    if xp is np:
        with small_lapack_threads():
            U, s, Vt = np.linalg.svd(blocks, full_matrices=False)
    else:
        U, s, Vt = xp.linalg.svd(blocks, full_matrices=False)
    root = xp.sqrt(s[..., :r])  # (bi, bo, r)
    Ur = U[..., :r] * root[..., None, :]  # (bi, bo, p, r)
    Vr = root[..., :, None] * Vt[..., :r, :]  # (bi, bo, r, q)
    if C is not None:
        Ur, Vr = _whitened_sweeps(xp, M, C, Ur, Vr, damp=damp, sweeps=sweeps)
    L = xp.reshape(xp.permute_dims(Ur, (1, 2, 0, 3)), (bo, p, bi * r))
    R = xp.reshape(Vr, (bi, bo * r, q))
    return Monarch(L, R)


def _whitened_sweeps(
    xp: Any, M: Any, C: Any, Ur: Any, Vr: Any, *, damp: float, sweeps: int
) -> tuple[Any, Any]:
    """Block coordinate descent of :func:`monarch_project` with ``C``: new ``(Ur, Vr)``."""
    m, n = (int(d) for d in M.shape)
    bi, bo, p, r = (int(d) for d in Ur.shape)
    q = n // bi
    Cd = whiten(C, damp=damp).covariance

    def dense(Uk: Any, Vk: Any) -> Any:  # slices (bo, p, q) of one input block -> (m, q)
        return xp.reshape(xp.permute_dims(Uk @ Vk, (1, 0, 2)), (m, q))

    X = xp.concat([dense(Ur[k], Vr[k]) for k in range(bi)], axis=1)
    Us, Vs = [Ur[k] for k in range(bi)], [Vr[k] for k in range(bi)]
    blocks_of = [slice(k * q, (k + 1) * q) for k in range(bi)]
    factors = [xp.linalg.cholesky(Cd[cols, cols]) for cols in blocks_of]  # F_k F_k^T = C_kk
    for _ in range(sweeps):
        for k, (cols, F) in enumerate(zip(blocks_of, factors, strict=True)):
            G = M - X
            G[:, cols] += X[:, cols]
            # T = G C[:, k] C_kk^{-1} in whitened coordinates: T F = (F^{-1} C[k, :] G^T)^T
            Y = xp.matrix_transpose(xp.linalg.solve(F, Cd[cols, :] @ xp.matrix_transpose(G)))
            blocks = xp.permute_dims(xp.reshape(Y, (p, bo, q)), (1, 0, 2))  # (bo, p, q)
            U, s, Vt = xp.linalg.svd(blocks, full_matrices=False)
            root = xp.sqrt(s[..., :r])
            Us[k] = U[..., :r] * root[..., None, :]
            # Vk F^T = root Vt_r, i.e. Vk = root Vt_r F^{-T}
            Vs[k] = xp.matrix_transpose(
                xp.linalg.solve(
                    xp.matrix_transpose(F), xp.matrix_transpose(root[..., :, None] * Vt[..., :r, :])
                )
            )
            X[:, cols] = dense(Us[k], Vs[k])
    return xp.stack(Us), xp.stack(Vs)
