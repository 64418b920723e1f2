"""Exact bit-plane matrix products on CUDA: the GPU counterpart of :mod:`numlib.bitplane`.

Kernels live in ``gpu/kernels/bitplane.cu`` and are loaded with ``cupy.RawModule``
(compiled by NVRTC for the current device on first use):

``bitplane_gemm_popc`` (``kernel="portable"``)
    Any CUDA device CuPy supports: ``__popc`` on uint32 words, shared-memory tiles of
    16 rows x 16 words, a 16 x 16 int64 output tile per block, all plane pairs and the
    recovery ``sum_ij c_i d_j P_ij`` fused, so the output is the final integer product.
``bitplane_gemm_mma`` (``kernel="mma"``)
    sm_80 and newer: binary Tensor-Core MMA
    ``mma.sync.aligned.m16n8k256.row.col.s32.b1.b1.s32.and.popc``, one warp per
    16 x 8 output tile, rank-one corrections and recovery in the epilogue. The XOR
    identity is evaluated through the AND product (same integer).

Both reproduce :func:`numlib.bitplane.packed_matmul` bit for bit (every step is exact
integer arithmetic). ``|result| <= K (2**a - 1)(2**b - 1)``, which int64 holds for every
``K`` below ``2**31`` (the limit of the kernels' int32 popcount accumulators, checked here).

Which path is fastest (Jia et al., arXiv:2409.17870; see ``/work/shared/ANCHORS.md``):
a ``WxAy`` bit-serial product costs ``x * y`` binary GEMMs. On A100-class parts (sm_80,
sm_86, sm_89) binary MMA runs at 8x the INT8 rate, so the ``mma`` kernel wins for
``x * y < 8``. On Hopper (sm_90) the legacy ``mma.sync`` b1 path is slow and there is no
INT4 or binary row in the spec; binary AND needs ``wgmma ... b1.b1.and.popc`` on sm_90a
(not implemented here), and even then bit-serial only wins for ``x * y <= 4``. For
``bits_x * bits_w > 4`` on Hopper use :func:`int8_matmul_gpu` (cuBLAS ``cublasGemmEx``
with INT8 inputs and INT32 compute on the signed values, when they fit in int8).
:func:`recommended_path` encodes this rule.

Importing this module does not import cupy; cupy is imported inside the functions.
Every public function raises :class:`RuntimeError` naming what is missing (cupy, a CUDA
device, sm_80 for the MMA kernel) before any work.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from numlib.bitplane_pack import PackedPlanes

if TYPE_CHECKING:  # pragma: no cover
    import cupy

__all__ = [
    "KERNEL_PATH",
    "compute_capability",
    "int8_matmul_gpu",
    "packed_matmul_gpu",
    "recommended_path",
    "to_device",
    "to_host",
]

KERNEL_PATH: Path = Path(__file__).resolve().parent / "kernels" / "bitplane.cu"
Kernel = Literal["auto", "portable", "mma"]

_ENCODINGS = {"bipolar": 0, "unsigned": 1, "twos": 2}
_IDENTITIES = {"and": 0, "xor": 1}
_KERNELS = ("auto", "portable", "mma")
_MAX_BITS = 8
_MAX_K = (1 << 31) - 1  # int32 popcount accumulators in both kernels
# int8 x int8 products summed in int32: |x|, |w| <= 128, so exact while k * 2**14 < 2**31.
_MAX_K_INT8 = ((1 << 31) - 1) // (1 << 14)
_PT_TILE = 16  # bitplane_gemm_popc: 16 x 16 threads, one output element each
_MMA_WARPS_M, _MMA_WARPS_N = 2, 2  # bitplane_gemm_mma: 4 warps, each a 16 x 8 tile
_MAX_GRID_Y = 65535

# cuBLAS / CUDA enum values, used when the cupy build does not export the name.
_CUDA_R_8I, _CUDA_R_32I = 3, 10
_CUBLAS_COMPUTE_32I = 72
_CUBLAS_GEMM_DEFAULT = -1


# --------------------------------------------------------------------------- environment


def _cupy() -> Any:
    """Import cupy and check for a CUDA device; raise RuntimeError naming what is missing."""
    try:
        import cupy
    except ImportError as exc:
        raise RuntimeError(
            "gpu.bitplane needs cupy, which is not installed "
            "(pip install 'numlib[gpu]', i.e. cupy-cuda13x)"
        ) from exc
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError as exc:
        raise RuntimeError(
            f"gpu.bitplane needs a CUDA device; the CUDA runtime says: {exc}"
        ) from exc
    if count == 0:
        raise RuntimeError("gpu.bitplane needs a CUDA device, but none is visible")
    return cupy


def compute_capability() -> int:
    """Return the compute capability of the current CUDA device as an int, e.g. 80 or 90.

    Raises
    ------
    RuntimeError
        If cupy is not installed or no CUDA device is visible.
    """
    cupy = _cupy()
    return int(cupy.cuda.Device().compute_capability)


@functools.cache
def _module(device_id: int) -> Any:
    """Return the RawModule for one device (NVRTC compiles for its architecture)."""
    import cupy

    with cupy.cuda.Device(device_id):
        return cupy.RawModule(
            code=KERNEL_PATH.read_text(encoding="utf-8"),
            options=("-std=c++17",),
        )


def _kernel(name: str) -> Any:
    import cupy

    return _module(int(cupy.cuda.Device().id)).get_function(name)


def recommended_path(bits_x: int, bits_w: int, cc: int) -> Literal["portable", "mma", "int8"]:
    """Return the fastest exact path for a ``bits_x`` x ``bits_w`` product on capability ``cc``.

    ``"int8"`` (:func:`int8_matmul_gpu`) on Hopper and newer (``cc >= 90``) when
    ``bits_x * bits_w > 4``, where bit-serial binary GEMMs lose to INT8 IMMA; otherwise
    ``"mma"`` on ``cc >= 80`` and ``"portable"`` below. Only a recommendation: the INT8 path
    needs the signed values to fit in int8 (at most 7 bits bipolar-INT, 8 bits two's
    complement, 7 bits unsigned), which the caller decides.

    Parameters
    ----------
    bits_x, bits_w : int
        Operand widths, 1..8.
    cc : int
        Compute capability as ``10 * major + minor``.

    Returns
    -------
    {"portable", "mma", "int8"}

    Raises
    ------
    ValueError
        If a width is outside 1..8.

    Examples
    --------
    >>> recommended_path(1, 1, 90), recommended_path(4, 4, 90), recommended_path(4, 4, 80)
    ('mma', 'int8', 'mma')
    """
    for name, b in (("bits_x", bits_x), ("bits_w", bits_w)):
        if not isinstance(b, int | np.integer) or not 1 <= int(b) <= _MAX_BITS:
            raise ValueError(f"{name} must be an int in 1..{_MAX_BITS}, got {b!r}")
    if cc >= 90 and int(bits_x) * int(bits_w) > 4:
        return "int8"
    return "mma" if cc >= 80 else "portable"


# --------------------------------------------------------------------------- device planes


def to_device(packed: Any) -> PackedPlanes:
    """Copy a packed-planes object (``words``, ``k``, ``popcounts``) to the current device.

    Arrays already on the device are made C-contiguous with the expected dtypes
    (no copy when they already are).

    Parameters
    ----------
    packed : numlib.bitplane_pack.PackedPlanes
        Anything with ``words`` (uint32, 3-D), ``k`` and ``popcounts`` (2-D).

    Returns
    -------
    PackedPlanes

    Raises
    ------
    RuntimeError
        If cupy or a CUDA device is missing.
    TypeError
        If ``packed`` lacks ``words``, ``k`` or ``popcounts``, or ``words`` is not uint32.
    ValueError
        If the shapes are inconsistent with each other or with ``k``.
    """
    cupy = _cupy()
    for attr in ("words", "k", "popcounts"):
        if not hasattr(packed, attr):
            raise TypeError(
                "packed must be a PackedPlanes-like object with words, k and popcounts, "
                f"got {type(packed).__name__} without {attr!r}"
            )
    words, popcounts, k = packed.words, packed.popcounts, int(packed.k)
    if np.dtype(words.dtype) != np.uint32:
        raise TypeError(f"packed.words must be uint32, got {words.dtype}")
    if words.ndim != 3 or popcounts.shape != words.shape[:2]:
        raise ValueError(
            "packed.words must have shape (bits, rows, words) and packed.popcounts "
            f"(bits, rows), got {words.shape} and {popcounts.shape}"
        )
    if k < 1 or words.shape[2] != -(-k // 32):
        raise ValueError(
            f"packed.words must hold ceil(k / 32) words per row for k={k}, got {words.shape[2]}"
        )
    return PackedPlanes(
        cupy.ascontiguousarray(cupy.asarray(words, dtype=cupy.uint32)),
        k,
        cupy.ascontiguousarray(cupy.asarray(popcounts, dtype=cupy.int64)),
    )


def to_host(packed: PackedPlanes) -> Any:
    """Copy device planes back to host numpy arrays in a :class:`PackedPlanes`.

    Raises
    ------
    RuntimeError
        If cupy or a CUDA device is missing.
    """
    cupy = _cupy()
    return PackedPlanes(cupy.asnumpy(packed.words), int(packed.k), cupy.asnumpy(packed.popcounts))


# --------------------------------------------------------------------------- products


def packed_matmul_gpu(
    X: Any,
    W: Any,
    *,
    encoding: Literal["bipolar", "unsigned", "twos"] = "bipolar",
    identity: Literal["and", "xor"] = "and",
    kernel: Kernel = "auto",
) -> cupy.ndarray:
    """Exact ``X W^T`` in int64 on the GPU from packed bit-planes; equals ``packed_matmul``.

    Computes ``sum_ij c_i d_j P_ij`` with the plane products ``P_ij`` and weights of
    :func:`numlib.bitplane.packed_matmul` (AND identity
    ``4 popc(x & w) - 2 popc(x) - 2 popc(w) + K`` or XOR identity ``K - 2 popc(x ^ w)``
    for bipolar-INT, ``popc(x & w)`` for unsigned / two's complement), bit for bit.
    ``|result| <= K (2**a - 1)(2**b - 1)``; all accumulation is exact (int32 popcounts,
    int64 output). Cost: ``a * b`` binary GEMMs of ``m x n x ceil(K / 32)`` words
    (Jia et al., ASP-DAC 2025, arXiv:2409.17870, sec. 3).

    Parameters
    ----------
    X, W : numlib.bitplane_pack.PackedPlanes
        Packed ``m x k`` and ``n x k`` codes (``a`` and ``b`` planes, 1..8 each); host
        planes are copied to the device first (:func:`to_device`).
    encoding : {"bipolar", "unsigned", "twos"}
    identity : {"and", "xor"}
        Plane-product identity (the MMA kernel evaluates both through AND + popc).
    kernel : {"auto", "portable", "mma"}
        ``"auto"``: ``"mma"`` on compute capability 8.0 and newer, ``"portable"`` below.
        For the precision rule (INT8 GEMM on Hopper when ``a * b > 4``) see
        :func:`recommended_path`; ``"auto"`` does not switch to INT8 by itself.

    Returns
    -------
    cupy.ndarray
        int64, shape ``(m, n)``, on the current device.

    Raises
    ------
    RuntimeError
        If cupy or a CUDA device is missing, or ``kernel="mma"`` on a device below sm_80.
    TypeError
        If an operand is not PackedPlanes-like.
    ValueError
        If ``encoding``, ``identity`` or ``kernel`` is unknown, a width is outside 1..8,
        the ``k`` differ, or ``k >= 2**31``.
    """
    cupy = _cupy()
    if encoding not in _ENCODINGS:
        raise ValueError(f"encoding must be one of {tuple(_ENCODINGS)}, got {encoding!r}")
    if identity not in _IDENTITIES:
        raise ValueError(f"identity must be one of {tuple(_IDENTITIES)}, got {identity!r}")
    if kernel not in _KERNELS:
        raise ValueError(f"kernel must be one of {_KERNELS}, got {kernel!r}")
    Xd, Wd = to_device(X), to_device(W)
    for name, p in (("X", Xd), ("W", Wd)):
        if not 1 <= p.bits <= _MAX_BITS:
            raise ValueError(f"{name} must have 1..{_MAX_BITS} planes, got {p.bits}")
    if Xd.k != Wd.k:
        raise ValueError(f"X and W must have the same k (columns), got {Xd.k} and {Wd.k}")
    if Xd.k > _MAX_K:
        raise ValueError(f"k must be below 2**31 (int32 popcount accumulators), got {Xd.k}")
    cc = compute_capability()
    if kernel == "auto":
        kernel = "mma" if cc >= 80 else "portable"
    if kernel == "mma" and cc < 80:
        raise RuntimeError(
            f"kernel='mma' needs a device of compute capability 8.0 or newer (binary "
            f"mma.sync m16n8k256), this one is {cc // 10}.{cc % 10}; use kernel='portable'"
        )
    m, n, kw = Xd.rows, Wd.rows, int(Xd.words.shape[2])
    if kernel == "portable":
        block = (_PT_TILE, _PT_TILE, 1)
        grid = (-(-n // _PT_TILE), -(-m // _PT_TILE), 1)
        name = "bitplane_gemm_popc"
    else:
        block = (32 * _MMA_WARPS_M * _MMA_WARPS_N, 1, 1)
        grid = (-(-n // (8 * _MMA_WARPS_N)), -(-m // (16 * _MMA_WARPS_M)), 1)
        name = "bitplane_gemm_mma"
    if grid[1] > _MAX_GRID_Y:
        raise ValueError(f"X has too many rows for one launch ({m}); split it into row blocks")
    out = cupy.empty((m, n), dtype=cupy.int64)
    args = (
        Xd.words,
        Wd.words,
        Xd.popcounts,
        Wd.popcounts,
        out,
        np.int32(m),
        np.int32(n),
        np.int32(kw),
        np.int32(Xd.k),
        np.int32(Xd.bits),
        np.int32(Wd.bits),
        np.int32(_ENCODINGS[encoding]),
        np.int32(_IDENTITIES[identity]),
    )
    _kernel(name)(grid, block, args)
    return out


def int8_matmul_gpu(X: Any, W: Any) -> cupy.ndarray:
    """Exact ``X W^T`` in int32 for int8 ``X`` (``m x k``) and ``W`` (``n x k``) via cuBLAS.

    Calls ``cublasGemmEx`` with ``CUDA_R_8I`` inputs, ``CUDA_R_32I`` output and
    ``CUBLAS_COMPUTE_32I`` (INT8 Tensor-Core IMMA where cuBLAS picks it; CuPy's own int8
    matmul does not use Tensor Cores). Both operands are row-major with ``k`` contiguous,
    which is cuBLAS's "TN" form: column-major ``C^T (n x m) = op(W) X^T`` with
    ``transa = T``, ``transb = N``, ``lda = ldb = k``, ``ldc = n``. Exact while
    ``k <= 131071`` (``|x|, |w| <= 128``, so ``|result| <= k 2**14 < 2**31``). This is the
    path for ``bits_x * bits_w > 4`` on Hopper (see :func:`recommended_path`).

    Parameters
    ----------
    X : cupy.ndarray or numpy.ndarray
        int8, shape ``(m, k)``; numpy input is copied to the device.
    W : cupy.ndarray or numpy.ndarray
        int8, shape ``(n, k)``.

    Returns
    -------
    cupy.ndarray
        int32, shape ``(m, n)``.

    Raises
    ------
    RuntimeError
        If cupy or a CUDA device is missing.
    TypeError
        If an operand is not int8.
    ValueError
        If an operand is not 2-D or is empty, the ``k`` differ, ``k % 4 != 0`` (cuBLAS
        INT8 requirement on the leading dimensions) or ``k > 131071``.
    """
    cupy = _cupy()
    from cupy.cuda import cublas, runtime

    for name, a in (("X", X), ("W", W)):
        if np.dtype(a.dtype) != np.int8:
            raise TypeError(f"{name} must be int8, got {a.dtype}")
        if a.ndim != 2 or a.size == 0:
            raise ValueError(f"{name} must be a non-empty 2-D array, got shape {a.shape}")
    (m, k), (n, kW) = X.shape, W.shape
    if k != kW:
        raise ValueError(f"X and W must have the same k (columns), got {k} and {kW}")
    if k % 4:
        raise ValueError(f"k must be a multiple of 4 for cuBLAS INT8 GEMM, got {k}; pad with zeros")
    if k > _MAX_K_INT8:
        raise ValueError(f"k must be at most {_MAX_K_INT8} for an exact int32 result, got {k}")
    Xd = cupy.ascontiguousarray(cupy.asarray(X))
    Wd = cupy.ascontiguousarray(cupy.asarray(W))
    out = cupy.empty((m, n), dtype=cupy.int32)
    alpha = np.ones(1, dtype=np.int32)
    beta = np.zeros(1, dtype=np.int32)
    handle = cupy.cuda.device.get_cublas_handle()
    mode = cublas.getPointerMode(handle)
    cublas.setPointerMode(handle, cublas.CUBLAS_POINTER_MODE_HOST)
    try:
        cublas.gemmEx(
            handle,
            cublas.CUBLAS_OP_T,
            cublas.CUBLAS_OP_N,
            n,
            m,
            k,
            alpha.ctypes.data,
            Wd.data.ptr,
            getattr(runtime, "CUDA_R_8I", _CUDA_R_8I),
            k,
            Xd.data.ptr,
            getattr(runtime, "CUDA_R_8I", _CUDA_R_8I),
            k,
            beta.ctypes.data,
            out.data.ptr,
            getattr(runtime, "CUDA_R_32I", _CUDA_R_32I),
            n,
            getattr(cublas, "CUBLAS_COMPUTE_32I", _CUBLAS_COMPUTE_32I),
            getattr(cublas, "CUBLAS_GEMM_DEFAULT", _CUBLAS_GEMM_DEFAULT),
        )
    finally:
        cublas.setPointerMode(handle, mode)
    return out
