"""Array namespace of the inputs: numpy by default, torch and cupy when given.

Primitives call :func:`array_namespace` on their array arguments and compute with
the namespace it returns, so that torch or cupy inputs stay on their library and
device. numpy inputs get numpy itself (numpy >= 2 implements the array API), which
keeps the common path free of wrapper overhead.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["array_namespace", "inner", "is_floating", "is_numpy", "to_numpy"]


def array_namespace(*arrays: Any) -> ModuleType:
    """Return the array-API namespace shared by ``arrays``.

    ``None`` entries and Python scalars are ignored. numpy arrays (and scipy.sparse
    matrices, which compute through numpy) give the ``numpy`` module itself; other
    libraries go through ``array_api_compat``.

    Raises
    ------
    TypeError
        If the arrays come from different libraries.
    """
    present = [a for a in arrays if a is not None and not isinstance(a, int | float | complex)]
    if all(isinstance(a, np.ndarray | np.generic) or _is_scipy_sparse(a) for a in present):
        return np
    import array_api_compat

    dense = [a for a in present if not _is_scipy_sparse(a)]
    try:
        return array_api_compat.array_namespace(*dense, use_compat=None)
    except TypeError as err:
        raise TypeError(f"arrays from different libraries cannot be mixed: {err}") from None


def _is_scipy_sparse(a: Any) -> bool:
    # Checking the module avoids importing scipy.sparse for the plain-array path.
    return type(a).__module__.startswith("scipy.sparse")


def is_numpy(xp: ModuleType) -> bool:
    """Whether ``xp`` is numpy (plain or wrapped by array_api_compat)."""
    return xp is np or xp.__name__ == "array_api_compat.numpy"


def is_floating(a: Any) -> bool:
    """Whether the array ``a`` has a real or complex floating-point dtype."""
    if isinstance(a, np.ndarray | np.generic):
        return bool(np.issubdtype(a.dtype, np.inexact))
    xp = array_namespace(a)
    return bool(xp.isdtype(a.dtype, ("real floating", "complex floating")))


def to_numpy(a: Any) -> np.ndarray:
    """Copy (or view) any array as a host numpy array, for reporting and plotting."""
    if isinstance(a, np.ndarray):
        return a
    if hasattr(a, "get"):  # cupy
        return a.get()
    if hasattr(a, "detach"):  # torch
        return a.detach().cpu().numpy()
    return np.asarray(a)


def inner(xp: ModuleType, a: Any, b: Any) -> Any:
    """Return the Euclidean inner product ``a^H b`` of two 1-D arrays as a host scalar.

    numpy goes through BLAS ``dot``/``dotc`` (``numpy.vdot``); other namespaces use
    ``vecdot``, which conjugates its first argument as the array API specifies.
    """
    if xp is np:
        return np.vdot(a, b)
    value = xp.vecdot(a, b)
    return value.item() if hasattr(value, "item") else value
