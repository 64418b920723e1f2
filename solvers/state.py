"""State shared by every Krylov method: validated inputs, residuals, the result.

Each method calls :func:`prepare` once, before any work, and
:meth:`SolveState.finish` once at the end, so that argument checking, the
stopping test and the non-convergence warning are written once for all of them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from numlib.backend import array_namespace, inner
from numlib.linop import as_matvec
from numlib.result import ConvergenceWarning, SolveResult
from numlib.validate import check_positive_int, check_tolerances, check_vector

__all__ = ["Callback", "SolveState", "device_of", "prepare", "vector_norm"]

Callback = Callable[[Any], None]


@dataclass
class SolveState:
    """Validated inputs common to every Krylov method."""

    xp: ModuleType
    matvec: Callable[[Any], Any]
    precondition: Callable[[Any], Any] | None
    b: Any
    x: Any  # a private copy of x0 (or zeros) that the method updates
    b_norm: float
    tolerance: float
    maxiter: int
    callback: Callback | None

    def residual(self) -> tuple[Any, float]:
        """Recompute ``r = b - A x`` and its norm."""
        r = self.b - self.matvec(self.x)
        return r, vector_norm(self.xp, r)

    def finish(
        self,
        method: str,
        iterations: int,
        history: list[float],
        breakdown: str | None = None,
        true_norm: float | None = None,
        **info: Any,
    ) -> SolveResult:
        """Build the result, recomputing the residual unless the caller just did."""
        if true_norm is None:
            _, true_norm = self.residual()
        converged = true_norm <= self.tolerance and breakdown is None
        if breakdown is not None and true_norm <= self.tolerance:
            converged, breakdown = True, None
        if not math.isfinite(true_norm):
            # NaN compares false with everything: without this it would read as a
            # spent iteration budget.
            breakdown = "the residual is NaN or Inf (A or M produced non-finite values)"
        info.update(true_residual_norm=true_norm, tolerance=self.tolerance)
        if breakdown is not None:
            info["breakdown"] = breakdown
        if not converged:
            reason = breakdown or f"iteration limit maxiter={self.maxiter} reached"
            relative = true_norm / self.b_norm if self.b_norm > 0 else true_norm
            warnings.warn(
                f"{method} did not converge after {iterations} iterations ({reason}): "
                f"||b - Ax|| = {true_norm:.3e} (relative {relative:.3e}) > "
                f"tolerance {self.tolerance:.3e}",
                ConvergenceWarning,
                stacklevel=3,
            )
        return SolveResult(
            x=self.x,
            converged=converged,
            iterations=iterations,
            residual_norms=np.asarray(history, dtype=np.float64),
            info=info,
        )


def prepare(
    A: Any,
    b: Any,
    x0: Any,
    rtol: float,
    atol: float,
    maxiter: int | None,
    M: Any,
    callback: Callback | None,
) -> SolveState:
    """Check every argument before any work and return the shared state."""
    check_vector(b, "b")
    n = b.shape[0]
    matvec = as_matvec(A, "A", size=n)
    precondition = None if M is None else as_matvec(M, "M", size=n)
    if x0 is not None:
        check_vector(x0, "x0", size=n)
    rtol, atol = check_tolerances(rtol, atol)
    maxiter = 10 * n if maxiter is None else check_positive_int(maxiter, "maxiter")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")

    xp = array_namespace(b, x0, A if hasattr(A, "__array_namespace__") else None)
    dtype = xp.result_type(b.dtype, *(a.dtype for a in (A, x0) if _has_array_dtype(a)))
    b = xp.astype(b, dtype, copy=False) if hasattr(xp, "astype") else b.astype(dtype)
    if x0 is None:
        x = xp.zeros_like(b)
    else:
        x = xp.astype(x0, dtype, copy=True) if hasattr(xp, "astype") else x0.astype(dtype)
    b_norm = vector_norm(xp, b)
    return SolveState(
        xp=xp,
        matvec=matvec,
        precondition=precondition,
        b=b,
        x=x,
        b_norm=b_norm,
        tolerance=max(rtol * b_norm, atol),
        maxiter=maxiter,
        callback=callback,
    )


def vector_norm(xp: ModuleType, v: Any) -> float:
    """Euclidean norm of a 1-D array as a host float."""
    return math.sqrt(abs(inner(xp, v, v)))


def device_of(a: Any) -> Any:
    """Device of an array (``"cpu"`` for numpy), for allocating alongside it."""
    from array_api_compat import device

    return device(a)


def _has_array_dtype(a: Any) -> bool:
    return a is not None and hasattr(a, "dtype") and a.dtype is not None
