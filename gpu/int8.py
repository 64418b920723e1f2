"""Exact integer products through cuBLAS INT8 Tensor Cores, for the wider bit-plane formats.

On Hopper a ``WaAb`` bit-serial product costs ``a * b`` binary GEMMs and only wins over one
INT8 GEMM for ``a * b <= 4`` (``/work/shared/ANCHORS.md``). Wider codes go through INT8:
every supported code reads as ``v = alpha t + beta`` with ``t`` in int8,

========================  ===================  =======  ======
format                    ``t``                 alpha    beta
========================  ===================  =======  ======
bipolar, 1..7 bits        ``v = 2u - (2^n-1)``   1        0
bipolar, 8 bits           ``u - 128``            2        1
unsigned, 1..7 bits       ``u``                  1        0
unsigned, 8 bits          ``u - 128``            1        128
two's complement, 1..8    ``v``                  1        0
========================  ===================  =======  ======

so ``X W^T = ax aw Tx Tw^T + ax bw rowsum(Tx) 1^T + bx aw 1 rowsum(Tw)^T + bx bw K``: one
cuBLAS GEMM with integer ``alpha = ax aw`` and, where a ``beta`` is non-zero, one fused
rank-one correction pass (the same algebra as the rank-one corrections of the AND identity,
Jia et al., arXiv:2409.17870, sec. 3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from gpu._codes import device_codes
from gpu._cuda import cupy_module, kernel
from numlib.bitplane import check_bits

if TYPE_CHECKING:  # pragma: no cover
    import cupy

__all__ = ["Int8Operand", "int8_matmul_gpu", "int8_operand", "int8_product"]

# int8 x int8 products summed in int32: |t| <= 128, so exact while k * 2**14 < 2**31.
MAX_K_INT8 = ((1 << 31) - 1) // (1 << 14)
_ENCODINGS = ("bipolar", "unsigned", "twos")
_MIN_CC_INT8 = 61  # dp4a; INT8 Tensor Cores from 7.5

# cuBLAS / CUDA enum values, used when the cupy build does not export the name.
_CUDA_R_8I, _CUDA_R_32I = 3, 10
_CUBLAS_COMPUTE_32I = 72
_CUBLAS_GEMM_DEFAULT = -1


@dataclass(frozen=True)
class Int8Operand:
    """Codes of one operand as ``v = alpha t + beta`` with ``t`` int8 on the device.

    Attributes
    ----------
    t : cupy.ndarray
        int8, shape ``(rows, k4)``, C-contiguous, with ``k4`` the true ``k`` rounded up to a
        multiple of 4 (cuBLAS INT8's requirement) by zero columns, which add nothing to
        ``Tx Tw^T`` or the row sums.
    k : int
        The true reduction length, which the constant correction ``bx bw K`` uses.
    alpha, beta : int
        The affine map from ``t`` to the values (table in the module docstring).
    row_sums : cupy.ndarray
        int32 ``sum_k t``, shape ``(rows,)``; what the rank-one corrections need.
    """

    t: Any
    k: int
    alpha: int
    beta: int
    row_sums: Any


def int8_operand(
    codes: Any, bits: int, encoding: str = "bipolar", check_codes: bool = True
) -> Int8Operand:
    """Turn ``bits``-bit codes (device or host, ``rows x k``) into an :class:`Int8Operand`.

    ``check_codes`` as in :func:`gpu.bitplane.pack_gpu` (a host synchronisation).

    Raises
    ------
    RuntimeError
        If cupy or a CUDA device is missing.
    TypeError
        If ``codes`` is not an integer array, or ``bits`` is not an integer.
    ValueError
        If ``bits`` is outside 1..8, ``encoding`` is unknown, ``codes`` is not 2-D or is
        empty, or (when checked) holds codes outside ``[0, 2**bits)``.
    """
    cupy = cupy_module()
    bits = check_bits(bits, "bits")
    if encoding not in _ENCODINGS:
        raise ValueError(f"encoding must be one of {_ENCODINGS}, got {encoding!r}")
    u = device_codes(codes, bits, check_codes=check_codes).astype(cupy.int16)
    alpha, beta = 1, 0
    if encoding == "twos":
        t = cupy.where(u >= (1 << (bits - 1)), u - (1 << bits), u)
    elif bits == 8:
        t = u - 128
        alpha, beta = (2, 1) if encoding == "bipolar" else (1, 128)
    else:
        t = 2 * u - ((1 << bits) - 1) if encoding == "bipolar" else u
    k = int(codes.shape[1])
    t8 = cupy.zeros((codes.shape[0], -(-k // 4) * 4), dtype=cupy.int8)
    t8[:, :k] = t
    return Int8Operand(t8, k, alpha, beta, t8.sum(axis=1, dtype=cupy.int32))


_ROWS_PER_LAUNCH = 65535  # grid.y limit of int8_rank_one


def _add_rank_one(out: Any, row: Any, col: Any) -> None:
    """``out += row[:, None] + col[None, :]`` in place (int32), by bitplane.cu's int8_rank_one."""
    m, n = out.shape
    fn = kernel("int8_rank_one")
    for r0 in range(0, m, _ROWS_PER_LAUNCH):
        rows = min(_ROWS_PER_LAUNCH, m - r0)
        fn((-(-n // 1024), rows, 1), (256, 1, 1), (out[r0 : r0 + rows], row[r0:], col, np.int32(n)))


def int8_product(X: Int8Operand, W: Int8Operand) -> cupy.ndarray:
    """Exact ``X W^T`` in int32 from two :class:`Int8Operand`: one INT8 GEMM plus corrections.

    Exact when ``|X W^T|`` fits int32, which holds for every format in the module table
    while ``k (2^a - 1)(2^b - 1) < 2^31`` (the caller checks it) and ``k <= 131071``.

    Raises
    ------
    ValueError
        If the ``k`` differ, or as :func:`int8_matmul_gpu`.
    """
    if X.k != W.k:
        raise ValueError(f"X and W must have the same k (columns), got {X.k} and {W.k}")
    out = int8_matmul_gpu(X.t, W.t, alpha=X.alpha * W.alpha)
    if X.beta or W.beta:
        k = X.k
        r = (X.alpha * W.beta) * X.row_sums
        c = (X.beta * W.alpha) * W.row_sums + X.beta * W.beta * k
        _add_rank_one(out, r.astype(out.dtype), c.astype(out.dtype))
    return out


def int8_matmul_gpu(X: Any, W: Any, *, alpha: int = 1) -> cupy.ndarray:
    """Exact ``alpha X W^T`` in int32 for int8 ``X`` (``m x k``) and ``W`` (``n x k``) via cuBLAS.

    Calls ``cublasGemmEx`` with ``CUDA_R_8I`` inputs, ``CUDA_R_32I`` output and
    ``CUBLAS_COMPUTE_32I`` (INT8 Tensor-Core IMMA where cuBLAS picks it; CuPy's own int8
    matmul does not use Tensor Cores). Both operands are row-major with ``k`` contiguous,
    which is cuBLAS's "TN" form: column-major ``C^T (n x m) = op(W) X^T`` with
    ``transa = T``, ``transb = N``, ``lda = ldb = k``, ``ldc = n``. Exact while
    ``k <= 131071`` and ``|alpha| k 2**14 < 2**31``.

    Parameters
    ----------
    X : cupy.ndarray or numpy.ndarray
        int8, shape ``(m, k)``; numpy input is copied to the device.
    W : cupy.ndarray or numpy.ndarray
        int8, shape ``(n, k)``.
    alpha : int
        Integer scale applied by cuBLAS (``int32``).

    Returns
    -------
    cupy.ndarray
        int32, shape ``(m, n)``.

    Raises
    ------
    RuntimeError
        If cupy or a CUDA device is missing, or the device is older than compute
        capability 6.1 (cuBLAS INT8 GEMM needs dp4a or INT8 Tensor Cores).
    TypeError
        If an operand is not int8.
    ValueError
        If an operand is not 2-D or is empty, the ``k`` differ, ``k % 4 != 0`` (cuBLAS
        INT8 requirement on the leading dimensions) or ``k > 131071``.
    """
    cupy = cupy_module()
    from cupy.cuda import cublas, runtime

    cc = int(cupy.cuda.Device().compute_capability)
    if cc < _MIN_CC_INT8:
        raise RuntimeError(
            f"cuBLAS INT8 GEMM needs compute capability 6.1 or newer, this device is "
            f"{cc // 10}.{cc % 10}; use gpu.bitplane.packed_matmul_gpu(kernel='portable')"
        )

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
    if k > MAX_K_INT8:
        raise ValueError(f"k must be at most {MAX_K_INT8} for an exact int32 result, got {k}")
    Xd = cupy.ascontiguousarray(cupy.asarray(X))
    Wd = cupy.ascontiguousarray(cupy.asarray(W))
    out = cupy.empty((m, n), dtype=cupy.int32)
    scale = np.full(1, alpha, dtype=np.int32)
    beta = np.zeros(1, dtype=np.int32)
    handle = cupy.cuda.device.get_cublas_handle()
    cublas.setStream(handle, cupy.cuda.get_current_stream().ptr)  # as cupy's own BLAS calls do
    mode = cublas.getPointerMode(handle)
    cublas.setPointerMode(handle, cublas.CUBLAS_POINTER_MODE_HOST)
    i8 = getattr(runtime, "CUDA_R_8I", _CUDA_R_8I)
    try:
        cublas.gemmEx(
            handle,
            cublas.CUBLAS_OP_T,
            cublas.CUBLAS_OP_N,
            n,
            m,
            k,
            scale.ctypes.data,
            Wd.data.ptr,
            i8,
            k,
            Xd.data.ptr,
            i8,
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
