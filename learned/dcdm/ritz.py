"""Lanczos Ritz vectors of a training operator, stored as npz and reused.

DCDM trains on right-hand sides built from Ritz vectors of ``A`` (Kaneda et al.,
ICML 2023, Sec. 4): Lanczos from ``b0 = A ξ`` (``ξ`` standard normal), the Ritz
pairs of the tridiagonal matrix, Ritz values below a threshold dropped. Full
reorthogonalisation (two Gram-Schmidt passes against every Lanczos vector) keeps
the basis orthonormal to rounding, so no spurious ("ghost") copies of converged
eigenvectors appear, at ``O(m² N)`` cost for ``m`` steps on ``N`` unknowns.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg

from numlib.linop import as_matvec
from numlib.validate import as_generator, check_positive_int

__all__ = ["RitzBasis", "lanczos_ritz", "load_or_compute"]


@dataclass(frozen=True, eq=False)
class RitzBasis:
    """Ritz pairs of one operator, ascending.

    Attributes
    ----------
    values : numpy.ndarray, shape (m,)
        Ritz values, ascending.
    vectors : numpy.ndarray, shape (m, N)
        Orthonormal Ritz vectors as rows (float32 when loaded from disk).
    """

    values: np.ndarray
    vectors: np.ndarray


def lanczos_ritz(
    A: Any,
    steps: int,
    *,
    start: np.ndarray | None = None,
    drop_below: float = 1e-8,
    rng: int | np.random.Generator | None = None,
) -> RitzBasis:
    """Run ``steps`` Lanczos steps with full reorthogonalisation; return the Ritz pairs.

    Guarantee: the returned vectors are orthonormal to ``O(steps · eps)`` and each
    pair satisfies ``||A y - θ y|| = β_m |e_m^T s|`` (the standard Lanczos residual
    bound); the extreme Ritz values converge first. A Krylov space holds one vector
    per distinct eigenvalue, so multiple eigenvalues give one Ritz pair each; the
    run stops early, with fewer pairs, when the space becomes invariant.

    Parameters
    ----------
    A : array, scipy.sparse matrix or LinearOperator, shape (N, N)
        Symmetric operator.
    steps : int
        Lanczos steps ``m`` (``>= 1``; capped at ``N``).
    start : numpy.ndarray, shape (N,), optional
        Starting vector; default ``A ξ`` for standard normal ``ξ`` (as in the paper,
        which damps the smoothest modes in the start and so spreads the Ritz values).
        Pass ``A (mask * ξ)`` to keep the space inside a masked set of unknowns.
    drop_below : float, default 1e-8
        Ritz values below this are dropped (numerically null directions).
    rng : int, numpy.random.Generator or None
        Seed or generator for ``ξ``.

    Returns
    -------
    RitzBasis

    References
    ----------
    .. [1] B. N. Parlett, "The Symmetric Eigenvalue Problem", SIAM, 1998, Ch. 13.

    Examples
    --------
    >>> from solvers.problems import poisson2d
    >>> A = poisson2d(10).A
    >>> basis = lanczos_ritz(A, 40, rng=0)
    >>> exact = np.linalg.eigvalsh(A.toarray())
    >>> bool(np.isclose(basis.values[0], exact[0]) and np.isclose(basis.values[-1], exact[-1]))
    True
    """
    matvec = as_matvec(A, "A")
    n = A.shape[0]
    steps = min(check_positive_int(steps, "steps"), n)
    if start is None:
        start = matvec(as_generator(rng).standard_normal(n))
    v = np.asarray(start, dtype=np.float64)
    norm = float(np.linalg.norm(v))
    if not np.isfinite(norm) or norm == 0.0:
        raise ValueError("start must be a finite, nonzero vector")
    basis = np.empty((steps, n))
    alphas, betas = [], []
    basis[0] = v / norm
    for j in range(steps):
        w = matvec(basis[j])
        alphas.append(float(basis[j] @ w))
        for _ in range(2):  # "twice is enough" (Kahan-Parlett)
            w -= basis[: j + 1].T @ (basis[: j + 1] @ w)
        beta = float(np.linalg.norm(w))
        if j + 1 == steps or beta <= 1e-12 * max(abs(alphas[-1]), 1.0):
            break
        betas.append(beta)
        basis[j + 1] = w / beta
    m = len(alphas)
    values, coefficients = scipy.linalg.eigh_tridiagonal(np.array(alphas), np.array(betas[: m - 1]))
    keep = values >= drop_below
    vectors = coefficients[:, keep].T @ basis[:m]
    return RitzBasis(values[keep], vectors)


def load_or_compute(
    path: Path, A: Any, steps: int, *, start: np.ndarray | None, key: dict[str, Any], rng: int
) -> RitzBasis:
    """Return the Ritz basis stored at ``path`` if it was made from ``key``, else compute it.

    ``key`` (JSON-ready) describes the operator and the run; a stored file with a
    different key is recomputed, so a changed configuration never reuses stale
    vectors. Written atomically (temporary file, then rename): an interrupted
    run leaves either the old file or none. Vectors are stored as float32.
    """
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    if path.exists():
        with np.load(path, allow_pickle=False) as stored:
            if str(stored["key"]) == digest:
                return RitzBasis(stored["values"], stored["vectors"])
    basis = lanczos_ritz(A, steps, start=start, rng=rng)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npz")
    np.savez(partial, key=digest, values=basis.values, vectors=basis.vectors.astype(np.float32))
    partial.replace(path)
    return RitzBasis(basis.values, basis.vectors.astype(np.float32))
