"""Private helpers shared by the compression primitives (lowrank, monarch, calibration, spectra).

Dense-matrix argument checks that name the argument, and moving host-side numpy data
(random draws, DCT bases) onto the library, device and dtype of an input array.
"""

from __future__ import annotations

import contextlib
import functools
import numbers
import os
from types import ModuleType
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController, threadpool_limits

from numlib.backend import array_namespace, is_floating
from numlib.validate import check_finite

__all__ = [
    "SMALL_LAPACK_MAX_N",
    "check_dense",
    "check_rank",
    "device_kw",
    "like",
    "small_lapack_threads",
    "usable_cpus",
]

#: Matrix order up to which :func:`small_lapack_threads` pins BLAS to one thread.
SMALL_LAPACK_MAX_N = 256


def check_dense(A: Any, name: str, *, square: bool = False, ndim: int = 2) -> tuple[int, ...]:
    """Check that ``A`` is a finite, non-empty, floating-point dense array; return its shape.

    Raises
    ------
    TypeError
        If ``A`` is not a dense array (scipy.sparse and LinearOperators are refused) or
        has an integer, boolean or complex dtype.
    ValueError
        If it has the wrong number of dimensions, is empty, is not square when
        ``square`` is set, or holds NaN/Inf.
    """
    shape = getattr(A, "shape", None)
    if shape is None or not hasattr(A, "dtype") or type(A).__module__.startswith("scipy"):
        raise TypeError(f"{name} must be a dense array, got {type(A).__name__}")
    shape = tuple(int(s) for s in shape)
    if len(shape) != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {shape}")
    if 0 in shape:
        raise ValueError(f"{name} must not be empty, got shape {shape}")
    if square and shape[0] != shape[1]:
        raise ValueError(f"{name} must be square, got shape {shape}")
    if not is_floating(A) or _is_complex(A):
        raise TypeError(f"{name} must have a real floating-point dtype, got {A.dtype}")
    check_finite(A, name)
    return shape


def check_rank(rank: int, name: str, limit: int) -> int:
    """Return ``rank`` as an int after checking ``1 <= rank <= limit``."""
    if isinstance(rank, bool) or not isinstance(rank, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(rank).__name__}")
    if not 1 <= rank <= limit:
        raise ValueError(f"{name} must satisfy 1 <= {name} <= {limit}, got {rank}")
    return int(rank)


def like(values: np.ndarray, ref: Any, xp: ModuleType | None = None) -> Any:
    """Return host array ``values`` on the library, device and dtype of array ``ref``."""
    if isinstance(ref, np.ndarray):
        return values.astype(ref.dtype, copy=False)
    xp = xp or array_namespace(ref)
    device = getattr(ref, "device", None)
    out = xp.asarray(values, device=device) if device is not None else xp.asarray(values)
    return xp.astype(out, ref.dtype)


def _is_complex(A: Any) -> bool:
    if isinstance(A, np.ndarray):
        return bool(np.iscomplexobj(A))
    return bool(array_namespace(A).isdtype(A.dtype, "complex floating"))


def device_kw(A: Any) -> dict[str, Any]:
    """``{"device": A.device}`` for non-numpy arrays (creation functions), else ``{}``."""
    device = getattr(A, "device", None)
    return {} if isinstance(A, np.ndarray) or device is None else {"device": device}


def small_lapack_threads(n: int | None = None) -> contextlib.AbstractContextManager[Any]:
    """Context limiting numpy's BLAS/LAPACK to one thread for many small factorisations.

    Batched LAPACK calls on many small matrices (numpy's ``linalg`` gufuncs, the PTD
    optimiser's ``geev`` per step, a pseudospectrum grid) run one small factorisation
    after another; a multi-threaded OpenBLAS wakes its pool for each and was 10-30x
    slower than one thread on a shared 2-core machine (4096 SVDs of 64 x 64: 81 s vs
    2.6 s; one ``geev`` plus gradient at n = 64: 117 ms vs 4 ms).

    Parameters
    ----------
    n : int, optional
        Order of the matrices; above :data:`SMALL_LAPACK_MAX_N` the limit is not applied,
        because large factorisations do gain from threads.
    """
    if n is not None and n > SMALL_LAPACK_MAX_N:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def usable_cpus() -> int:
    """Return how many threads numlib's own thread pools may use.

    The CPUs this process may run on (its affinity mask where known), capped by the
    BLAS thread limit in force (``OPENBLAS_NUM_THREADS``, ``threadpool_limits``): one
    setting governs numlib's threads and BLAS's alike, so that a caller, or a benchmark
    timing numlib beside LAPACK, that limits BLAS to ``t`` threads limits numlib too.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    limits = [library.num_threads for library in _blas_libraries().lib_controllers]
    return max(1, min([cpus, *limits]))


@functools.cache
def _blas_libraries() -> Any:
    # Scanning the loaded libraries takes ~0.2 ms; reading a limit afterwards, ~2 us.
    return ThreadpoolController().select(user_api="blas")
