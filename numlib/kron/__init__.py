"""Kronecker algebra: products and sums of dense factors, applied and solved factor by factor.

Vec convention (read this first)
--------------------------------
Everything here uses the **row-major (C-order) vec** of ``numpy.kron`` and
``numpy.ravel``: factor 0 acts on the slowest-varying index. For two factors::

    (A ⊗ B) vec(X) = vec(A X B^T),    vec(X) = X.ravel()  (C order),
    X of shape (A.shape[1], B.shape[1]),

so ``KroneckerOperator([A, B]) @ X.ravel()`` equals ``(A @ X @ B.T).ravel()`` and
``np.kron(A, B) @ X.ravel()``. The column-major textbook identity
``(B^T ⊗ A) vec_F(X) = vec_F(A X B)`` describes the same numbers with the factor order
reversed; mixing the two conventions is the classic Kronecker bug (gpytorch's
``GridKernel`` orders its factors the other way round from ``np.kron``). On a grid built
with ``numpy.meshgrid(..., indexing="ij")``, factor ``d`` belongs to grid axis ``d``.

Contents
--------
:class:`KroneckerOperator`
    ``K = A_1 ⊗ ... ⊗ A_D`` for any number of (possibly rectangular, non-symmetric)
    dense factors; derivative operators such as ``D_1 ⊗ K_2`` are just instances.
:class:`KroneckerSum`
    ``A_1 ⊕ ... ⊕ A_D = Σ_d I ⊗ .. ⊗ A_d ⊗ .. ⊗ I`` for square factors.
:func:`kron_eigh` -> :class:`KroneckerEigh`
    one symmetric eigendecomposition per factor, reused for solves, quadratic forms
    and log-determinants of ``K + shift * I`` (Saatçi 2012; Wilson & Nickisch 2015).

Both operators are ``scipy.sparse.linalg.LinearOperator`` subclasses, so they plug into
scipy's and numlib's solvers, and they never form the N x N matrix (``N = Π n_d``).

Arrays
------
``matvec``, ``matmat``, ``rmatvec``, ``rmatmat``, ``@``, ``dot``, ``diagonal``,
``todense``, ``.T``/``.H`` and everything in :class:`KroneckerEigh` are array-generic:
torch (or cupy) factors and vectors compute on that library and device and return its
arrays. The factors and the vectors must come from the same library. What scipy's
``LinearOperator`` machinery adds on top (operator arithmetic such as ``K + L``,
``2 * K``, ``K.dot(L)``; ``scipy.sparse.linalg`` solvers) is numpy-only; for non-numpy
factors ``dtype`` is the library's own dtype object (e.g. ``torch.float64``), which
numpy-based code cannot interpret.

References
----------
Y. Saatçi, "Scalable inference for structured Gaussian process models", PhD thesis,
University of Cambridge, 2012 (ch. 5: Kronecker matvec and eigendecomposition).
A. G. Wilson, E. Gilboa, A. Nehorai, J. P. Cunningham, "Fast kernel learning for
multidimensional pattern extrapolation", NeurIPS 2014.
A. G. Wilson, H. Nickisch, "Kernel interpolation for scalable structured Gaussian
processes (KISS-GP)", ICML 2015.
"""

from numlib.kron.eigh import KroneckerEigh, kron_eigh
from numlib.kron.operators import KroneckerOperator, KroneckerSum

__all__ = ["KroneckerEigh", "KroneckerOperator", "KroneckerSum", "kron_eigh"]
