"""Result types and warnings shared by every iterative routine in numlib and above."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["ConvergenceWarning", "SolveResult"]


class ConvergenceWarning(UserWarning):
    """An iterative method stopped before meeting its tolerance.

    Emitted together with ``converged=False`` in the result; the partial answer is
    returned, never silently presented as a solution.
    """


@dataclass(frozen=True)
class SolveResult:
    """Outcome of an iterative solve of ``A x = b``.

    Attributes
    ----------
    x : array
        Final iterate, of the same array kind (numpy, torch, cupy) as ``b``.
    converged : bool
        True only if the *recomputed* residual ``||b - A x||`` met the tolerance.
    iterations : int
        Number of iterations (one operator application each, for CG and GMRES).
    residual_norms : numpy.ndarray
        Residual 2-norm history; entry 0 is the initial residual, entry ``k`` the
        residual after iteration ``k`` as tracked by the method's recurrence.
    info : dict
        Method-specific details: ``"true_residual_norm"``, ``"tolerance"``,
        ``"breakdown"`` (a message, when the method broke down) and others.
    """

    x: Any
    converged: bool
    iterations: int
    residual_norms: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
