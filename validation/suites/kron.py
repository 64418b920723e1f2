"""Suite ``kron``: Kronecker GP solve + log-determinant, numlib against linear_operator.

Each case builds squared-exponential kernel factors ``K_d`` on a regular grid in the
unit cube (``n`` points per axis, lengthscale ``LENGTHSCALES[d]`` along axis d, so
that no two factors are the same array and neither side can reuse one
eigendecomposition for two axes), one random
right-hand side ``b`` (seed :data:`SEED`), and computes on the same factors, in one
process, in float64:

``numlib.kron``
    ``F = kron_eigh([K_1, ..., K_D], shift)``, then ``F.solve(b)`` and
    ``F.logdet()``: one ``eigh`` per factor, reused by both.
``linear_operator``
    gpytorch's ``KroneckerProductLinearOperator(K_1, ..., K_D)
    .add_diagonal(torch.tensor(shift))``, then ``.solve(b)`` and ``.logdet()``, the
    calls a gpytorch user writes (torch CPU tensors, ``torch.no_grad``). In
    linear_operator 0.6.1 the solve and the log-determinant each run their own
    per-factor ``eigh``, and eigenvalues are clamped at 0 silently.

with ``shift`` = :data:`SHIFT`. Times (``time_s`` / ``peer_time_s``) are the best of
``repeat`` runs of factorise + solve + logdet, operator construction included, kernel
construction excluded. Metrics per side:

``rel_residual``
    ``||b - (K + shift I) x|| / ||b||``, recomputed with a :class:`KroneckerOperator`
    matvec (itself tested against ``np.kron``).
``logdet``
    The log-determinant returned.
``rel_error``, ``max_abs_error``, ``logdet_abs_error``, ``error_reference``
    Small size only: against a dense Cholesky solve and log-determinant of the
    ``N x N`` matrix (``error_reference="dense"``).
``rel_diff_vs_peer``, ``logdet_abs_diff_vs_peer``
    numlib only: ``||x - x_peer|| / ||x_peer||`` and ``|logdet - logdet_peer|``.
``memory_mb``
    numlib only: traced peak of one further factorise + solve + logdet run
    (:func:`validation.measure.peak_memory_mb`); torch's allocator is invisible to
    tracemalloc, so the peer has none.
``unknowns``, ``grid``, ``shift``, ``lengthscales``
    The problem.
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Any

import numpy as np
import scipy.linalg

from numlib.kron import KroneckerOperator, kron_eigh
from validation.accuracy import Reference, error_metrics
from validation.measure import best_time, peak_memory_mb
from validation.registry import Record, case

SUITE = "kron"
METHOD = "numlib.kron"
PEER = "linear_operator"
SHIFT = 1e-2
LENGTHSCALES = (0.1, 0.15, 0.2)
SEED = 20240917
GRID2D_N = {"small": 64, "medium": 1024, "large": 2048}
GRID3D_N = {"small": 16, "medium": 128, "large": 256}
# A dense reference (N x N Cholesky) is formed only up to this many unknowns.
DENSE_LIMIT = 4096


def se_kernel(n: int, lengthscale: float) -> np.ndarray:
    """Squared-exponential kernel matrix on ``n`` equispaced points of [0, 1]."""
    t = np.linspace(0.0, 1.0, n)
    return np.exp(-0.5 * ((t[:, None] - t[None, :]) / lengthscale) ** 2)


def _residual(factors: list[np.ndarray], x: np.ndarray, b: np.ndarray) -> float:
    r = b - (KroneckerOperator(factors) @ x + SHIFT * x)
    return float(np.linalg.norm(r) / np.linalg.norm(b))


def _dense_reference(factors: list[np.ndarray], b: np.ndarray) -> tuple[np.ndarray, float]:
    dense = functools.reduce(np.kron, factors)
    dense[np.diag_indices_from(dense)] += SHIFT
    c, lower = scipy.linalg.cho_factor(dense, overwrite_a=True, check_finite=False)
    x = scipy.linalg.cho_solve((c, lower), b, check_finite=False)
    return x, float(2.0 * np.sum(np.log(np.diag(c))))


def _compare(name: str, size: str, n: int, dims: int, repeat: int) -> Record:
    if importlib.util.find_spec("linear_operator") is None:
        return Record.skip(
            SUITE, name, size, "linear_operator is not installed", method=METHOD, peer=PEER
        )
    import torch
    from linear_operator.operators import KroneckerProductLinearOperator

    factors = [se_kernel(n, ell) for ell in LENGTHSCALES[:dims]]
    b = np.random.default_rng(SEED).standard_normal(n**dims)

    def ours() -> tuple[np.ndarray, float]:
        F = kron_eigh(factors, SHIFT)
        return F.solve(b), float(F.logdet())

    torch_factors = [torch.from_numpy(f) for f in factors]
    torch_b = torch.from_numpy(b)

    def peer() -> tuple[np.ndarray, float]:
        with torch.no_grad():
            op = KroneckerProductLinearOperator(*torch_factors)
            op = op.add_diagonal(torch.tensor(SHIFT, dtype=torch.float64))
            x = op.solve(torch_b)
            return x.numpy(), float(op.logdet())

    time_s, (x, logdet) = best_time(ours, repeat)
    peer_time_s, (x_peer, logdet_peer) = best_time(peer, repeat)
    common: dict[str, Any] = {
        "unknowns": n**dims,
        "grid": "x".join([str(n)] * dims),
        "shift": SHIFT,
        "lengthscales": "/".join(str(ell) for ell in LENGTHSCALES[:dims]),
    }
    metrics = {
        **common,
        "rel_residual": _residual(factors, x, b),
        "logdet": logdet,
        "rel_diff_vs_peer": float(np.linalg.norm(x - x_peer) / np.linalg.norm(x_peer)),
        "logdet_abs_diff_vs_peer": abs(logdet - logdet_peer),
    }
    peer_metrics = {**common, "rel_residual": _residual(factors, x_peer, b), "logdet": logdet_peer}
    if n**dims <= DENSE_LIMIT:
        x_ref, logdet_ref = _dense_reference(factors, b)
        reference = Reference(x_ref, "dense")
        metrics.update(error_metrics(x, reference), logdet_abs_error=abs(logdet - logdet_ref))
        peer_metrics.update(
            error_metrics(x_peer, reference), logdet_abs_error=abs(logdet_peer - logdet_ref)
        )
    metrics["memory_mb"] = peak_memory_mb(ours)
    return Record(SUITE, name, size, METHOD, PEER, time_s, peer_time_s, metrics, peer_metrics)


@case(SUITE, "se-grid2d-solve-logdet")
def se_grid2d_solve_logdet(size: str, *, repeat: int) -> Record:
    """Solve and log-determinant of K1 ⊗ K2 + 1e-2 I, SE kernels, numlib vs linear_operator.

    n x n grid with n = 64 / 1024 / 2048 (small / medium / large): 4096, 10^6 and
    4.2 x 10^6 unknowns. The medium size is the GP-HM scale (ANCHORS.md).
    """
    return _compare("se-grid2d-solve-logdet", size, GRID2D_N[size], 2, repeat)


@case(SUITE, "se-grid3d-solve-logdet")
def se_grid3d_solve_logdet(size: str, *, repeat: int) -> Record:
    """Solve and log-determinant of K1 ⊗ K2 ⊗ K3 + 1e-2 I, SE kernels, vs linear_operator.

    n^3 grid with n = 16 / 128 / 256: 4096, 2.1 x 10^6 and 1.7 x 10^7 unknowns; small
    factors, so the Kronecker matvecs rather than the eigendecompositions dominate.
    """
    return _compare("se-grid3d-solve-logdet", size, GRID3D_N[size], 3, repeat)
