"""Suite ``completion``: robust alternating minimisation vs exact ALS (numlib.completion).

Planted problems (seed :data:`SEED`): ``M = A B^T`` with ``A`` (m x k), ``B`` (n x k)
i.i.d. N(0, 1) (incoherent with high probability), entries observed independently
with probability ``frac``. Both sides call :func:`numlib.completion.complete` on the
same COO observations with the same seed: ``method="robust"`` (Gu, Song, Yin, Zhang,
arXiv 2302.11068) against ``method="exact"`` (exact per-row least squares, the
Jain-Netrapalli-Sanghavi ALS a user would otherwise write).

Sizes: small 200 x 200 rank 3 at 20%; medium / large 1000 x 1000 rank 10 at 5% and 10%.

Metrics per side: ``rel_error`` (``||U V^T - M||_F / ||M||_F`` against the planted ``M``),
``sweeps``, ``converged``, ``train_error`` (final relative error on observed entries);
robust side also ``sketch_rows`` and ``mean_inner_iterations`` (PCG steps per half-sweep).

Note: registering this suite needs ``completion`` added to
``validation/suites/__init__.py`` (not done by this module's author).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp

from numlib.completion import complete
from numlib.result import ConvergenceWarning
from validation.measure import best_time
from validation.registry import Record, case

SUITE = "completion"
PEER = "exact-als"
SEED = 20240611
SIZES = {
    "small": [(200, 200, 3, 0.2)],
    "medium": [(1000, 1000, 10, 0.05), (1000, 1000, 10, 0.10)],
    "large": [(1000, 1000, 10, 0.05), (1000, 1000, 10, 0.10)],
}


def planted_problem(m: int, n: int, k: int, frac: float, seed: int = SEED):
    """Return ``M`` (dense, for the error metric only) and the COO observations."""
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((m, k)) @ rng.standard_normal((n, k)).T
    i, j = np.nonzero(rng.random((m, n)) < frac)
    return M, sp.coo_array((M[i, j], (i, j)), shape=(m, n))


def _metrics(res: Any, M: np.ndarray) -> dict[str, Any]:
    return {
        "rel_error": float(np.linalg.norm(res.U @ res.V.T - M) / np.linalg.norm(M)),
        "sweeps": res.sweeps,
        "converged": res.converged,
        "train_error": float(res.train_error_history[-1]),
    }


@case(SUITE, "robust-als")
def robust_als(size: str, *, repeat: int) -> list[Record]:
    """complete(method="robust") vs complete(method="exact"), tol 1e-8, 100 sweeps max."""
    records = []
    for m, n, k, frac in SIZES[size]:
        M, obs = planted_problem(m, n, k, frac)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            t, res = best_time(
                lambda obs=obs, k=k: complete(obs, k, method="robust", max_sweeps=100, rng=SEED),
                repeat,
            )
            pt, pres = best_time(
                lambda obs=obs, k=k: complete(obs, k, method="exact", max_sweeps=100, rng=SEED),
                repeat,
            )
        common = {"m": m, "n": n, "k": k, "frac": frac, "nnz": int(obs.nnz)}
        inner = res.info["inner_iterations"]
        metrics = {
            **common,
            **_metrics(res, M),
            "sketch_rows": res.info["sketch_rows"],
            "mean_inner_iterations": float(np.mean(inner)) if inner else 0.0,
        }
        records.append(
            Record(
                SUITE,
                f"robust-als-{round(frac * 100)}pct",
                size,
                "numlib.complete(robust)",
                PEER,
                t,
                pt,
                metrics,
                {**common, **_metrics(pres, M)},
            )
        )
    return records
