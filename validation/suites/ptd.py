"""Suite ``ptd``: diagonal approximations of HiPPO-LegS, perturb-then-diagonalise vs S4D.

Each case ``hippo-legs-{n}`` (n = 16 at every size; 32 and 64 at medium and large)
takes HiPPO-LegS ``(A, B)`` (:func:`numlib.hippo.hippo_legs`)
with output ``C = B^T``, so ``G(iω) = B^T (iωI - A)^{-1} B``, and compares diagonal
systems ``(Λ, V^{-1} B, C V)`` that replace ``A``:

``s4d-normal`` (the peer)
    S4D-LegS: diagonalise the normal part ``N`` of the NPLR form ``A = N - P P^T``
    (:func:`numlib.hippo.hippo_nplr`), unitary ``V`` from the complex Schur form
    (``perturb_then_diagonalize(N, 0)``); the low-rank term is dropped, so its
    effective perturbation is ``E = P P^T``.
``ptd-random-eps{eps}``
    ``perturb_then_diagonalize(A, eps, method="random", rng=SEED)``: complex
    Ginibre ``E`` with ``||E||_2 = eps ||A||_2``; unstable eigenvalues reflected.
``ptd-optimized-eps{eps}``
    ``method="optimized"``: best of :data:`TRIALS` seeded random directions for
    ``kappa^2 + gamma ||E||_F^2`` (``gamma = 1``) — a random search, not Adam.

for ``eps`` in :data:`EPS`. Metrics per side:

``kappa``
    ``kappa_2(V)`` (SVD).
``backward_error``
    ``||A + E - V Λ V^{-1}||_2 / ||A||_2`` with the raw eigenvalues (PTD), and
    ``||A - V Λ V^{-1}||_2 / ||A||_2`` for S4D (the dropped ``P P^T``).
``e_norm_ratio``
    ``||E||_2 / ||A||_2`` (S4D: ``||P P^T||_2 / ||A||_2``).
``rel_transfer_error``
    ``max_ω |G_diag(iω) - G(iω)| / max_ω |G(iω)|`` on :data:`OMEGAS` (601 log-spaced
    points in ``[1e-2, 1e4]``), ``G`` by linear solves with ``A``, ``G_diag`` with
    the returned (possibly reflected) ``Λ``.
``unstable_eigenvalues``
    Eigenvalues of the diagonalised matrix with ``Re λ > 0`` before reflection.
``exact_kappa_A``
    ``kappa_2`` of the eigenvectors of ``A`` itself, in mpmath
    (:func:`numlib.diag.exact_eigenvector_condition_legs`), for scale.

Times are best of ``repeat`` runs of the diagonalisation plus the transfer-error
evaluation on each side; speed is not the point of this suite.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from numlib.diag import (
    UnstableEigenvalueWarning,
    exact_eigenvector_condition_legs,
    perturb_then_diagonalize,
    transfer_function,
)
from numlib.hippo import hippo_nplr
from validation.measure import best_time
from validation.registry import Record, case

SUITE = "ptd"
PEER = "s4d-normal"
SEED = 20240501
EPS = (1e-3, 1e-2)
TRIALS = 8
OMEGAS = np.logspace(-2, 4, 601)


def _metrics(r: Any) -> dict[str, Any]:
    return {
        "kappa": r.kappa,
        "backward_error": r.backward_error,
        "e_norm_ratio": r.e_norm_ratio,
        "rel_transfer_error": r.transfer_error,
        "unstable_eigenvalues": r.unstable_eigenvalues,
        "stability": r.stability,
    }


def _s4d(A: np.ndarray, B: np.ndarray, N: np.ndarray) -> dict[str, Any]:
    """Diagonalise N, then measure that diagonal system against A."""
    r = perturb_then_diagonalize(N, 0.0)
    # Express it as a perturbation of A: A + E = N with E = P P^T.
    lam, V, V_inv = r.eigenvalues, r.V, r.V_inv
    denom = float(np.linalg.norm(A, 2))
    G = transfer_function(A, B, B, OMEGAS)
    Gd = ((B @ V) * (1.0 / (1j * OMEGAS[:, None] - lam))) @ (V_inv @ B)
    return {
        "kappa": r.kappa,
        "backward_error": float(np.linalg.norm(A - (V * lam) @ V_inv, 2)) / denom,
        "e_norm_ratio": float(np.linalg.norm(N - A, 2)) / denom,
        "rel_transfer_error": float(np.abs(Gd - G).max() / np.abs(G).max()),
        "unstable_eigenvalues": int(np.count_nonzero(r.raw_eigenvalues.real > 0)),
        "stability": r.stability,
    }


def _legs_records(size: str, n: int, repeat: int) -> list[Record]:
    name = f"hippo-legs-{n}"
    F = hippo_nplr("legs", n)
    A, B = F.A, F.B
    peer_time, peer_metrics = best_time(lambda: _s4d(A, B, F.N), repeat)
    exact = exact_eigenvector_condition_legs(n)
    peer_metrics["exact_kappa_A"] = exact
    records = []
    for method in ("random", "optimized"):
        for eps in EPS:

            def run(eps: float = eps, method: str = method) -> Any:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UnstableEigenvalueWarning)
                    return perturb_then_diagonalize(
                        A, eps, method=method, rng=SEED, B=B, C=B, omegas=OMEGAS, trials=TRIALS
                    )

            t, r = best_time(run, repeat)
            metrics = {**_metrics(r), "eps": eps, "n": n, "exact_kappa_A": exact}
            label = f"ptd-{method}-eps{eps:.0e}"
            records.append(
                Record(SUITE, name, size, label, PEER, t, peer_time, metrics, dict(peer_metrics))
            )
    return records


@case(SUITE, "hippo-legs-16")
def hippo_legs_16(size: str, *, repeat: int) -> list[Record]:
    """HiPPO-LegS n = 16: PTD random/optimized at eps 1e-3, 1e-2 vs S4D-LegS (normal part)."""
    return _legs_records(size, 16, repeat)


@case(SUITE, "hippo-legs-32", sizes=("medium", "large"))
def hippo_legs_32(size: str, *, repeat: int) -> list[Record]:
    """HiPPO-LegS n = 32: PTD random/optimized at eps 1e-3, 1e-2 vs S4D-LegS (normal part)."""
    return _legs_records(size, 32, repeat)


@case(SUITE, "hippo-legs-64", sizes=("medium", "large"))
def hippo_legs_64(size: str, *, repeat: int) -> list[Record]:
    """HiPPO-LegS n = 64: PTD random/optimized at eps 1e-3, 1e-2 vs S4D-LegS (normal part)."""
    return _legs_records(size, 64, repeat)
