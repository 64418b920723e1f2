"""The recycled subspace handed from one solve of a sequence to the next."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["RecycleSpace"]


@dataclass(frozen=True)
class RecycleSpace:
    """A recycled subspace carried from one solve to the next.

    Attributes
    ----------
    U : array, shape (k, n)
        Rows spanning the space. For :func:`solvers.gcrodr.gcrodr` it lives in
        the variable GCRO-DR iterates on (``M^{-1} x`` with a right
        preconditioner ``M``); for :func:`solvers.deflated_cg.deflated_cg` in
        ``x`` itself. Any basis will do: each solve re-orthonormalises it for its
        own operator, so a space may be passed to a system whose matrix differs.
    """

    U: Any

    @property
    def dimension(self) -> int:
        """Number of recycled vectors ``k``."""
        return int(self.U.shape[0])
