"""The recycled subspace handed from one solve of a sequence to the next."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["RecycleSpace", "check_recycle_space"]


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
    Y : array, shape (k, n), optional
        The same combination of solution directions in ``x`` itself (``Y = M U``
        row by row while ``M`` stays the same), kept by a preconditioned GCRO-DR
        solve so that the next system re-derives its recycled images ``A Y``
        without applying its (possibly new) preconditioner. ``None`` when ``U``
        already lives in ``x``.
    """

    U: Any
    Y: Any = None

    @property
    def dimension(self) -> int:
        """Number of recycled vectors ``k``."""
        return int(self.U.shape[0])


def check_recycle_space(recycle: Any, n: int) -> None:
    """Raise unless ``recycle`` is None or a :class:`RecycleSpace` of vectors of length ``n``."""
    if recycle is None:
        return
    if not isinstance(recycle, RecycleSpace):
        raise TypeError(f"recycle must be a RecycleSpace, got {type(recycle).__name__}")
    if recycle.U.ndim != 2 or recycle.U.shape[1] != n:
        raise ValueError(f"recycle.U must have shape (k, {n}), got {tuple(recycle.U.shape)}")
    if recycle.Y is not None and tuple(recycle.Y.shape) != tuple(recycle.U.shape):
        raise ValueError(
            f"recycle.Y must have the shape of recycle.U, {tuple(recycle.U.shape)}, "
            f"got {tuple(recycle.Y.shape)}"
        )
