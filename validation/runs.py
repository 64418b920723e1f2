"""Measured runs of linear solvers, numlib's and its peers', on one system.

Every runner times the solve (best of ``repeat``, see :mod:`validation.measure`),
then measures its working memory in a separate run capped at a few iterations:
the peak of CG is reached once its handful of work vectors exist (first
iteration) and that of GMRES(m) once its ``m + 1`` basis vectors exist (first
cycle), so the cap changes the time of the memory run, not its peak.

Accuracy is never taken from a solver: :func:`compare` recomputes the true
residual of each returned ``x`` and its error against a reference.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyamg
import scipy.sparse.linalg as sla

from numlib.result import ConvergenceWarning, SolveResult
from solvers import krylov
from validation.accuracy import Reference, error_metrics, rel_residual
from validation.measure import best_time, peak_memory_mb
from validation.registry import Record

__all__ = [
    "MEMORY_CG_ITERATIONS",
    "MEMORY_GMRES_CYCLES",
    "Run",
    "compare",
    "numlib_cg",
    "numlib_gmres",
    "pyamg_pcg",
    "pyamg_setup",
    "scipy_cg",
    "scipy_gmres",
]

MEMORY_CG_ITERATIONS = 5
MEMORY_GMRES_CYCLES = 2


@dataclass(frozen=True)
class Run:
    """One solver's measured outcome on one system.

    Attributes
    ----------
    method : str
        Name shown in the report (``"numlib.cg"``, ``"scipy.cg"``...).
    time_s : float
        Best-of-``repeat`` wall time of the solve.
    x : numpy.ndarray
        The returned solution.
    iterations : int
        Iterations (operator applications) the solver reported.
    converged : bool
        Whether the solver reported success.
    history : numpy.ndarray
        Relative residual per iteration, entry 0 the initial one.
    memory_mb : float
        Peak traced working memory of the capped memory run, MiB.
    extra : dict
        Case-specific metrics (``setup_s``...).
    """

    method: str
    time_s: float
    x: np.ndarray
    iterations: int
    converged: bool
    history: np.ndarray
    memory_mb: float
    extra: dict[str, Any] = field(default_factory=dict)


def _quiet(solve: Callable[..., SolveResult], *args: Any, **kwargs: Any) -> SolveResult:
    """Call a numlib solver with its ConvergenceWarning silenced.

    Non-convergence still reaches the report through ``converged``; the warning
    would only interleave with the progress bar (or fail a test run).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return solve(*args, **kwargs)


def _from_result(
    method: str, time_s: float, result: SolveResult, b_norm: float, memory_mb: float
) -> Run:
    return Run(
        method=method,
        time_s=time_s,
        x=np.asarray(result.x),
        iterations=result.iterations,
        converged=result.converged,
        history=np.asarray(result.residual_norms) / b_norm,
        memory_mb=memory_mb,
    )


def numlib_cg(
    A: Any,
    b: np.ndarray,
    *,
    rtol: float,
    maxiter: int,
    repeat: int,
    M: Any = None,
    method: str = "numlib.cg",
) -> Run:
    """Time ``solvers.krylov.cg`` (history: its recurrence residual)."""
    time_s, result = best_time(
        lambda: _quiet(krylov.cg, A, b, rtol=rtol, maxiter=maxiter, M=M), repeat
    )
    cap = min(maxiter, MEMORY_CG_ITERATIONS)
    memory = peak_memory_mb(lambda: _quiet(krylov.cg, A, b, rtol=rtol, maxiter=cap, M=M))
    return _from_result(method, time_s, result, float(np.linalg.norm(b)), memory)


def scipy_cg(A: Any, b: np.ndarray, *, rtol: float, maxiter: int, repeat: int) -> Run:
    """Time ``scipy.sparse.linalg.cg``.

    scipy's callback only sees the iterate, so iterations and the history (the
    true residual) come from one extra untimed run with a callback; the timed runs
    have none, so the callback's matvecs do not count against scipy.
    """
    b_norm = float(np.linalg.norm(b))
    norms = [b_norm]
    sla.cg(
        A,
        b,
        rtol=rtol,
        atol=0.0,
        maxiter=maxiter,
        callback=lambda xk: norms.append(float(np.linalg.norm(b - A @ xk))),
    )
    time_s, (x, info) = best_time(
        lambda: sla.cg(A, b, rtol=rtol, atol=0.0, maxiter=maxiter), repeat
    )
    cap = min(maxiter, MEMORY_CG_ITERATIONS)
    memory = peak_memory_mb(lambda: sla.cg(A, b, rtol=rtol, atol=0.0, maxiter=cap))
    return Run("scipy.cg", time_s, x, len(norms) - 1, info == 0, np.array(norms) / b_norm, memory)


def numlib_gmres(
    A: Any, b: np.ndarray, *, restart: int, rtol: float, maxiter: int, repeat: int
) -> Run:
    """Time ``solvers.krylov.gmres`` (``maxiter`` counts iterations, history its estimate)."""
    time_s, result = best_time(
        lambda: _quiet(krylov.gmres, A, b, restart=restart, rtol=rtol, maxiter=maxiter), repeat
    )
    cap = min(maxiter, MEMORY_GMRES_CYCLES * restart)
    memory = peak_memory_mb(
        lambda: _quiet(krylov.gmres, A, b, restart=restart, rtol=rtol, maxiter=cap)
    )
    run = _from_result("numlib.gmres", time_s, result, float(np.linalg.norm(b)), memory)
    return replace(run, extra={"cycles": result.info["cycles"]})


def scipy_gmres(
    A: Any, b: np.ndarray, *, restart: int, rtol: float, maxiter: int, repeat: int
) -> Run:
    """Time ``scipy.sparse.linalg.gmres`` under the same iteration budget.

    scipy's ``maxiter`` counts restart cycles, so it gets ``ceil(maxiter / restart)``.
    The ``pr_norm`` callback hands over the relative residual estimate of every
    inner iteration (a Python call, negligible next to an Arnoldi step), which
    gives iterations and history from the timed runs themselves.
    """
    cycles = math.ceil(maxiter / restart)
    estimates: list[float] = []

    def solve(max_cycles: int) -> tuple[np.ndarray, int]:
        estimates[:] = [1.0]
        return sla.gmres(
            A,
            b,
            rtol=rtol,
            atol=0.0,
            restart=restart,
            maxiter=max_cycles,
            callback=estimates.append,
            callback_type="pr_norm",
        )

    time_s, (x, info) = best_time(lambda: solve(cycles), repeat)
    history = np.array(estimates)
    memory = peak_memory_mb(lambda: solve(min(cycles, MEMORY_GMRES_CYCLES)))
    return Run(
        "scipy.gmres",
        time_s,
        x,
        len(history) - 1,
        info == 0,
        history,
        memory,
        {"cycles": math.ceil((len(history) - 1) / restart)},
    )


def pyamg_setup(A: Any, *, repeat: int) -> tuple[Any, dict[str, float]]:
    """Build pyamg's smoothed-aggregation hierarchy for ``A``, timed.

    Returns
    -------
    ml : pyamg.multilevel.MultilevelSolver
        The hierarchy.
    metrics : dict
        ``setup_s`` (best of ``repeat``), ``setup_memory_mb`` (traced peak of one
        setup, the hierarchy included) and ``operator_complexity``.
    """
    setup_s, ml = best_time(lambda: pyamg.smoothed_aggregation_solver(A), repeat)
    memory = peak_memory_mb(lambda: pyamg.smoothed_aggregation_solver(A))
    return ml, {
        "setup_s": setup_s,
        "setup_memory_mb": memory,
        "operator_complexity": float(ml.operator_complexity()),
    }


def pyamg_pcg(A: Any, b: np.ndarray, ml: Any, *, rtol: float, maxiter: int, repeat: int) -> Run:
    """Time pyamg's own CG preconditioned by one V-cycle of ``ml`` (setup excluded).

    ``ml.solve(..., tol=rtol, accel="cg")`` stops when the recurrence residual
    satisfies ``||r|| < rtol ||b||`` (pyamg's ``criteria="rr"``, residual
    recomputed every 8 iterations): the same relative test as numlib's and
    scipy's ``rtol`` with ``atol = 0``.
    """
    residuals: list[float] = []

    def solve(iterations: int) -> tuple[np.ndarray, int]:
        return ml.solve(
            b, tol=rtol, maxiter=iterations, accel="cg", residuals=residuals, return_info=True
        )

    time_s, (x, info) = best_time(lambda: solve(maxiter), repeat)
    history = np.array(residuals) / float(np.linalg.norm(b))
    memory = peak_memory_mb(lambda: solve(min(maxiter, MEMORY_CG_ITERATIONS)))
    return Run("pyamg.sa-pcg", time_s, x, len(history) - 1, info == 0, history, memory)


def _metrics(run: Run, A: Any, b: np.ndarray, reference: Reference | None) -> dict[str, Any]:
    return {
        "iterations": run.iterations,
        "converged": run.converged,
        "rel_residual": rel_residual(A, run.x, b),
        **error_metrics(run.x, reference),
        "memory_mb": run.memory_mb,
        **run.extra,
    }


def compare(
    suite: str,
    case: str,
    size: str,
    ours: Run,
    peer: Run,
    A: Any,
    b: np.ndarray,
    reference: Reference | None,
    *,
    common: dict[str, Any] | None = None,
    peer_time_s: float | None = None,
    peer_method: str | None = None,
) -> Record:
    """Build the record of ``ours`` against ``peer`` on the system ``A x = b``.

    Parameters
    ----------
    suite, case, size : str
        Where the record belongs.
    ours, peer : Run
        The numlib run and the peer run.
    A, b : sparse array, numpy.ndarray
        The system both solved; residuals are recomputed from it.
    reference : Reference or None
        Solution for ``rel_error`` / ``max_abs_error``; None omits them.
    common : dict, optional
        Metrics describing the problem, added to both sides (``unknowns``...).
    peer_time_s : float, optional
        Replaces ``peer.time_s`` when the peer's cost includes more than its solve
        (e.g. setup + solve).
    peer_method : str, optional
        Replaces ``peer.method`` in the record.
    """
    common = common or {}
    return Record(
        suite=suite,
        case=case,
        size=size,
        method=ours.method,
        peer=peer_method or peer.method,
        time_s=ours.time_s,
        peer_time_s=peer.time_s if peer_time_s is None else peer_time_s,
        metrics={**common, **_metrics(ours, A, b, reference)},
        peer_metrics={**common, **_metrics(peer, A, b, reference)},
        history=ours.history,
        peer_history=peer.history,
    )
