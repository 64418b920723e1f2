"""Accuracy metrics the harness computes itself, never trusting a solver's estimate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse.linalg as sla

__all__ = ["DIRECT_SOLVE_LIMIT", "Reference", "error_metrics", "reference_solution", "rel_residual"]

# Above this many unknowns a sparse direct solve stops being cheap next to the
# benchmark itself (a 2D 512 x 512 grid factors in a few seconds on 2 cores).
DIRECT_SOLVE_LIMIT = 300_000


def rel_residual(A: Any, x: np.ndarray, b: np.ndarray) -> float:
    """Return the true relative residual ``||b - A x|| / ||b||`` (absolute if ``b`` = 0)."""
    b_norm = float(np.linalg.norm(b))
    r_norm = float(np.linalg.norm(b - A @ x))
    return r_norm / b_norm if b_norm > 0 else r_norm


@dataclass(frozen=True)
class Reference:
    """A solution to measure errors against.

    Attributes
    ----------
    x : numpy.ndarray
        The reference solution.
    kind : str
        ``"direct"``: the discrete solution from a sparse direct solve, so errors
        measure the iterative solver alone. ``"x_exact"``: the continuous solution
        sampled at the unknowns, so errors include the discretisation error.
    """

    x: np.ndarray
    kind: str


def error_metrics(x: np.ndarray, reference: Reference | None) -> dict[str, Any]:
    """``rel_error``, ``max_abs_error`` and ``error_reference`` of ``x``.

    Returns an empty dict when there is no reference, so that the metrics name
    only what was measured.
    """
    if reference is None:
        return {}
    diff = x - reference.x
    ref_norm = float(np.linalg.norm(reference.x))
    err_norm = float(np.linalg.norm(diff))
    return {
        "rel_error": err_norm / ref_norm if ref_norm > 0 else err_norm,
        "max_abs_error": float(np.max(np.abs(diff))),
        "error_reference": reference.kind,
    }


def reference_solution(A: Any, b: np.ndarray, x_exact: np.ndarray | None) -> Reference | None:
    """Choose the solution to measure errors against, preferring the discrete one.

    Parameters
    ----------
    A : scipy.sparse array
        System matrix.
    b : numpy.ndarray
        Right-hand side.
    x_exact : numpy.ndarray or None
        The problem's exact continuous solution at the unknowns, when it has one.

    Returns
    -------
    Reference or None
        ``spsolve(A, b)`` when ``A`` has at most :data:`DIRECT_SOLVE_LIMIT` rows;
        else ``x_exact`` when given; else None (no error metrics).
    """
    if A.shape[0] <= DIRECT_SOLVE_LIMIT:
        return Reference(sla.spsolve(A.tocsc(), b), "direct")
    if x_exact is not None:
        return Reference(np.asarray(x_exact), "x_exact")
    return None
