"""numlib: a linear-algebra-first numerical library.

Submodules are imported on first access, so ``import numlib`` stays fast and never
pulls in torch, cupy or petsc4py.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = frozenset(
    {
        "attention",
        "backend",
        "bitplane",
        "bitplane_pack",
        "calibration",
        "completion",
        "diag",
        "hippo",
        "kron",
        "linop",
        "lowrank",
        "lstsq",
        "monarch",
        "nystrom",
        "pseudospectra",
        "ptd_optimize",
        "result",
        "sketch",
        "spectra",
        "validate",
    }
)

__all__ = sorted(_SUBMODULES)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"numlib.{name}")
    raise AttributeError(f"module 'numlib' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_SUBMODULES))
