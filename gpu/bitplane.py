"""Exact bit-plane matrix products on CUDA: the GPU counterpart of :mod:`numlib.bitplane`.

Kernels live in ``gpu/kernels`` (see :mod:`gpu._cuda` for how they are compiled):

``bitplane_gemm_popc_*`` (``kernel="portable"``)
    Any CUDA device CuPy supports: ``__popc`` on uint32 words, shared-memory tiles of
    16 rows x 16 words, a 16 x 16 output tile per block, all plane pairs and the
    recovery ``sum_ij c_i d_j P_ij`` fused, so the output is the final integer product.
``bitplane_gemm_mma_*`` (``kernel="mma"``)
    sm_80 and newer: binary Tensor-Core MMA
    ``mma.sync.aligned.m16n8k256.row.col.s32.b1.b1.s32.and.popc``, one warp per
    16 x 8 output tile, rank-one corrections and recovery in the epilogue. The XOR
    identity is evaluated through the AND product (same integer).
``bitplane_gemm_wgmma_*`` (``kernel="wgmma"``)
    Hopper (compute capability 9.0, target sm_90a): the warpgroup instruction
    ``wgmma.mma_async.sync.aligned.m64n128k256.s32.b1.b1.and.popc`` on 128 x 128 tiles
    fed by a four-stage cp.async pipeline, all plane pairs in one accumulator (Horner's
    rule), recovery in the epilogue, K split across blocks when the grid is small.
``bitplane_gemv{4,16,32}_*`` (``kernel="gemv"``)
    Few rows of ``X`` (decoding one to a few tokens): the weight planes are streamed once
    from global memory, ``X`` sits in shared memory, ``__popc`` on words, one warp per
    output column; the product is bandwidth-bound, so reading ``b`` bits per weight instead
    of 8 is what it gains.
``bitplane_pack`` (:func:`pack_gpu`)
    Codes to packed planes and popcounts on the device (the preprocessing step).

All reproduce :func:`numlib.bitplane.packed_matmul` bit for bit (every step is exact
integer arithmetic). ``|result| <= K (2**a - 1)(2**b - 1)``: int64 output holds it for
every ``K`` below ``2**31`` (the limit of the int32 popcount accumulators, checked here).
int32 output (``out_dtype="int32"``), and the ``wgmma`` and ``gemv`` kernels whatever the
output type (they recover in int32 registers), need ``K (2**a - 1)(2**b - 1) < 2**31``,
also checked.

Which path is fastest (Jia et al., arXiv:2409.17870; see ``/work/shared/ANCHORS.md``):
a ``WxAy`` bit-serial product costs ``x * y`` binary GEMMs. On A100-class parts (sm_80,
sm_86, sm_89) binary MMA runs at 8x the INT8 rate, so bit-serial wins for ``x * y < 8``.
On Hopper (sm_90) the legacy ``mma.sync`` b1 path is slow; binary AND runs through
``wgmma`` (sm_90a) at 4x the INT8 rate, so bit-serial only wins for ``x * y <= 4`` and
wider products go through one INT8 GEMM (:mod:`gpu.int8`). :func:`recommended_path`
encodes this rule and :func:`bitplane_matmul_gpu` follows it.

Importing this module does not import cupy; cupy is imported inside the functions.
Every public function raises :class:`RuntimeError` naming what is missing (cupy, a CUDA
device, the architecture a kernel needs) before any work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from gpu._codes import device_codes
from gpu._cuda import KERNEL_PATH, SM90A_KERNEL_PATH, compute_capability, cupy_module
from gpu._cuda import kernel as _kernel
from gpu.int8 import int8_matmul_gpu, int8_operand, int8_product
from numlib.bitplane import MAX_BITS, check_bits
from numlib.bitplane_pack import PackedPlanes

if TYPE_CHECKING:  # pragma: no cover
    import cupy

__all__ = [
    "KERNEL_PATH",
    "SM90A_KERNEL_PATH",
    "auto_kernel",
    "bitplane_matmul_gpu",
    "compute_capability",
    "int8_matmul_gpu",
    "pack_gpu",
    "packed_matmul_gpu",
    "recommended_path",
    "to_device",
    "to_host",
]

Kernel = Literal["auto", "portable", "mma", "wgmma", "gemv"]
ProductPath = Literal["auto", "portable", "mma", "wgmma", "gemv", "int8"]
OutDtype = Literal["int64", "int32"]

_ENCODINGS = {"bipolar": 0, "unsigned": 1, "twos": 2}
_IDENTITIES = {"and": 0, "xor": 1}
_KERNELS = ("auto", "portable", "mma", "wgmma", "gemv")
_PATHS = (*_KERNELS, "int8")
_OUT_DTYPES = ("int64", "int32")
_MAX_K = (1 << 31) - 1  # int32 popcount accumulators in every kernel
_INT32_MAX = (1 << 31) - 1
_PT_TILE = 16  # bitplane_gemm_popc: 16 x 16 threads, one output element each
_MMA_WARPS_M, _MMA_WARPS_N = 2, 2  # bitplane_gemm_mma: 4 warps, each a 16 x 8 tile
# bitplane_sm90a.cu: 128 x 128 tiles, 256 threads, 4 stages of 16 words (A and B tiles),
# two blocks per multiprocessor (__launch_bounds__).
_WG_TILE, _WG_THREADS, _WG_STAGE_WORDS, _WG_BLOCKS_PER_SM = 128, 256, 16, 2
_WG_SMEM = 4 * 2 * _WG_TILE * _WG_STAGE_WORDS * 4
_WG_SPLIT_MAX_ROWS = 64  # split K only while the atomics (m n per split) stay cheap
# bitplane_gemv{rows}_*: 8 warps per block, X in (dynamic) shared memory; per accumulator
# count (rows of X), the blocks per multiprocessor of its __launch_bounds__.
_GV_THREADS, _GV_MAX_SMEM = 256, 96 * 1024
_GV_VARIANTS = {4: 6, 16: 4, 32: 2}
_GV_MAX_ROWS = max(_GV_VARIANTS)
_PACK_WORDS_PER_BLOCK = 8
_MAX_GRID_Y = 65535


def _fits_int32(k: int, bits_x: int, bits_w: int) -> bool:
    return k * ((1 << bits_x) - 1) * ((1 << bits_w) - 1) <= _INT32_MAX


def recommended_path(
    bits_x: int, bits_w: int, cc: int
) -> Literal["portable", "mma", "wgmma", "int8"]:
    """Return the fastest exact path for a ``bits_x`` x ``bits_w`` product on capability ``cc``.

    Bit-serial costs ``bits_x * bits_w`` binary GEMMs; the rule compares that with the
    binary-to-INT8 rate ratio of each generation (Jia et al. 2025; ANCHORS.md):

    * ``cc == 90`` (Hopper, sm_90a): ``"wgmma"`` while ``bits_x * bits_w <= 4``, else ``"int8"``;
    * ``80 <= cc < 90`` (Ampere, Ada): ``"mma"`` while ``bits_x * bits_w < 8``, else ``"int8"``;
    * ``cc > 90``: no measured binary path (``wgmma`` is sm_90a only): ``"mma"`` while
      ``bits_x * bits_w <= 4``, else ``"int8"``;
    * below 8.0: ``"portable"``.

    A bit-serial choice is refined by the number of rows (:func:`auto_kernel`: ``"gemv"``
    when decoding a few tokens), which :func:`bitplane_matmul_gpu` does.

    Parameters
    ----------
    bits_x, bits_w : int
        Operand widths, 1..8.
    cc : int
        Compute capability as ``10 * major + minor``.

    Returns
    -------
    {"portable", "mma", "wgmma", "int8"}

    Raises
    ------
    TypeError
        If a width is not an integer (or is a bool).
    ValueError
        If a width is outside 1..8.

    Examples
    --------
    >>> recommended_path(1, 1, 90), recommended_path(4, 4, 90), recommended_path(2, 2, 80)
    ('wgmma', 'int8', 'mma')
    """
    planes = check_bits(bits_x, "bits_x") * check_bits(bits_w, "bits_w")
    if cc < 80:
        return "portable"
    if cc == 90:
        return "wgmma" if planes <= 4 else "int8"
    if cc < 90:
        return "mma" if planes < 8 else "int8"
    return "mma" if planes <= 4 else "int8"


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
    cupy = cupy_module()
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
    cupy = cupy_module()
    return PackedPlanes(cupy.asnumpy(packed.words), int(packed.k), cupy.asnumpy(packed.popcounts))


def pack_gpu(codes: Any, bits: int, *, check_codes: bool = True) -> PackedPlanes:
    """Pack ``bits``-bit codes (``rows x k``) into planes and popcounts on the device.

    The GPU form of :func:`numlib.bitplane.pack` (same layout, bit for bit): one warp
    per 32 columns of a row gathers each plane's bits with a ballot, so packing costs
    one read of the codes and one write of ``bits * rows * ceil(k / 32)`` words.

    Parameters
    ----------
    codes : cupy.ndarray or numpy.ndarray
        Integer codes in ``[0, 2**bits)``, shape ``(rows, k)``; host input is copied.
    bits : int
        Planes to keep, 1..8.
    check_codes : bool
        Check that every code lies in ``[0, 2**bits)``. The check reads two numbers back
        to the host, a synchronisation per call; pass False for codes known to be in
        range (a quantiser's output), as ``check_finite=False`` in scipy: codes out of
        range then give wrong planes silently (the bits above ``bits`` are dropped).

    Returns
    -------
    PackedPlanes
        With cupy ``words`` (uint32) and ``popcounts`` (int64).

    Raises
    ------
    RuntimeError
        If cupy or a CUDA device is missing.
    TypeError
        If ``codes`` is not an integer array, or ``bits`` is not an integer.
    ValueError
        If ``bits`` is outside 1..8, ``codes`` is not 2-D or is empty, holds codes outside
        ``[0, 2**bits)`` (when checked), or has more than ``8 * 65535 * 32`` columns.
    """
    cupy = cupy_module()
    bits = check_bits(bits, "bits")
    c = device_codes(codes, bits, check_codes=check_codes)
    rows, k = c.shape
    kw = -(-k // 32)
    blocks_y = -(-kw // _PACK_WORDS_PER_BLOCK)
    if blocks_y > _MAX_GRID_Y:
        raise ValueError(f"codes has too many columns for one launch ({k})")
    c8 = cupy.ascontiguousarray(c.astype(cupy.uint8, copy=False))
    words = cupy.empty((bits, rows, kw), dtype=cupy.uint32)
    popcounts = cupy.zeros((bits, rows), dtype=cupy.uint64)
    args = (c8, words, popcounts, np.int32(rows), np.int32(k), np.int32(kw), np.int32(bits))
    _kernel("bitplane_pack")((rows, blocks_y, 1), (32, _PACK_WORDS_PER_BLOCK, 1), args)
    return PackedPlanes(words, k, popcounts.view(cupy.int64))


# --------------------------------------------------------------------------- products


def packed_matmul_gpu(
    X: Any,
    W: Any,
    *,
    encoding: Literal["bipolar", "unsigned", "twos"] = "bipolar",
    identity: Literal["and", "xor"] = "and",
    kernel: Kernel = "auto",
    out_dtype: OutDtype = "int64",
) -> cupy.ndarray:
    """Exact ``X W^T`` on the GPU from packed bit-planes; equals ``packed_matmul`` bit for bit.

    Computes ``sum_ij c_i d_j P_ij`` with the plane products ``P_ij`` and weights of
    :func:`numlib.bitplane.packed_matmul` (AND identity
    ``4 popc(x & w) - 2 popc(x) - 2 popc(w) + K`` or XOR identity ``K - 2 popc(x ^ w)``
    for bipolar-INT, ``popc(x & w)`` for unsigned / two's complement).
    ``|result| <= K (2**a - 1)(2**b - 1)``; all accumulation is exact. Cost: ``a * b``
    binary GEMMs of ``m x n x ceil(K / 32)`` words (Jia et al., ASP-DAC 2025,
    arXiv:2409.17870, sec. 3).

    Parameters
    ----------
    X, W : numlib.bitplane_pack.PackedPlanes
        Packed ``m x k`` and ``n x k`` codes (``a`` and ``b`` planes, 1..8 each); host
        planes are copied to the device first (:func:`to_device`).
    encoding : {"bipolar", "unsigned", "twos"}
    identity : {"and", "xor"}
        Plane-product identity (the Tensor-Core kernels evaluate both through AND + popc,
        which gives the same integer).
    kernel : {"auto", "portable", "mma", "wgmma", "gemv"}
        ``"auto"``: ``"gemv"`` for at most 32 rows of ``X`` whose planes fit 96 KiB, else
        ``"wgmma"`` on compute capability 9.0, ``"mma"`` on 8.0 and newer, ``"portable"``
        below (``"gemv"`` and ``"wgmma"`` only within the int32 bound below). For the
        precision rule (one INT8 GEMM for wide codes) use :func:`bitplane_matmul_gpu`.
    out_dtype : {"int64", "int32"}
        int32 halves the output traffic and needs ``K (2**a - 1)(2**b - 1) < 2**31``.

    Returns
    -------
    cupy.ndarray
        ``out_dtype``, shape ``(m, n)``, on the current device.

    Raises
    ------
    RuntimeError
        If cupy or a CUDA device is missing, or the device lacks the kernel's architecture
        (``"mma"``: 8.0 or newer, ``"wgmma"``: exactly 9.0).
    TypeError
        If an operand is not PackedPlanes-like.
    ValueError
        If ``encoding``, ``identity``, ``kernel`` or ``out_dtype`` is unknown, a width is
        outside 1..8, the ``k`` differ, ``k >= 2**31``, int32 (asked for, or needed by
        ``"wgmma"`` and ``"gemv"``) cannot hold the result, or ``"gemv"`` gets too many rows.
    """
    cupy = cupy_module()
    if encoding not in _ENCODINGS:
        raise ValueError(f"encoding must be one of {tuple(_ENCODINGS)}, got {encoding!r}")
    if identity not in _IDENTITIES:
        raise ValueError(f"identity must be one of {tuple(_IDENTITIES)}, got {identity!r}")
    if kernel not in _KERNELS:
        raise ValueError(f"kernel must be one of {_KERNELS}, got {kernel!r}")
    if out_dtype not in _OUT_DTYPES:
        raise ValueError(f"out_dtype must be one of {_OUT_DTYPES}, got {out_dtype!r}")
    Xd, Wd = to_device(X), to_device(W)
    for name, p in (("X", Xd), ("W", Wd)):
        if not 1 <= p.bits <= MAX_BITS:
            raise ValueError(f"{name} must have 1..{MAX_BITS} planes, got {p.bits}")
    if Xd.k != Wd.k:
        raise ValueError(f"X and W must have the same k (columns), got {Xd.k} and {Wd.k}")
    if Xd.k > _MAX_K:
        raise ValueError(f"k must be below 2**31 (int32 popcount accumulators), got {Xd.k}")
    fits = _fits_int32(Xd.k, Xd.bits, Wd.bits)
    if out_dtype == "int32" and not fits:
        raise ValueError(
            f"out_dtype='int32' cannot hold k (2**a - 1)(2**b - 1) for k={Xd.k}, "
            f"a={Xd.bits}, b={Wd.bits}; use 'int64'"
        )
    cc = compute_capability()
    if kernel == "auto":
        kernel = auto_kernel(Xd.rows, Xd.k, Xd.bits, Wd.bits, cc)
    _check_architecture(kernel, cc)
    if kernel in ("wgmma", "gemv") and not fits:
        raise ValueError(
            f"kernel={kernel!r} recovers in int32, which cannot hold k (2**a - 1)(2**b - 1) "
            f"for k={Xd.k}, a={Xd.bits}, b={Wd.bits}; use kernel='mma'"
        )
    if kernel == "wgmma":
        return _wgmma(Xd, Wd, encoding, out_dtype)
    if kernel == "gemv":
        return _gemv(Xd, Wd, encoding, out_dtype)
    m, n = Xd.rows, Wd.rows
    out = cupy.empty((m, n), dtype=out_dtype)
    suffix = "_i32" if out_dtype == "int32" else "_i64"
    codes = np.int32(_ENCODINGS[encoding])
    if kernel == "portable":
        block = (_PT_TILE, _PT_TILE, 1)
        grid = (-(-n // _PT_TILE), -(-m // _PT_TILE), 1)
        name = "bitplane_gemm_popc"
    else:
        block = (32 * _MMA_WARPS_M * _MMA_WARPS_N, 1, 1)
        grid = (-(-n // (8 * _MMA_WARPS_N)), -(-m // (16 * _MMA_WARPS_M)), 1)
        name = "bitplane_gemm_mma"
    _check_grid(grid)
    operands = (Xd.words, Wd.words, Xd.popcounts, Wd.popcounts, out)
    sizes = (m, n, Xd.words.shape[2], Xd.k, Xd.bits, Wd.bits)
    identity_code = np.int32(_IDENTITIES[identity])
    _kernel(name + suffix)(grid, block, (*operands, *map(np.int32, sizes), codes, identity_code))
    return out


def auto_kernel(m: int, k: int, bits_x: int, bits_w: int, cc: int) -> str:
    """Return the kernel ``kernel="auto"`` runs for an ``m x k`` by ``n x k`` product.

    ``"gemv"`` for at most 32 rows of X whose planes fit 96 KiB (the product is then
    bandwidth-bound and reads ``bits_w`` bits per weight); otherwise ``"wgmma"`` on
    compute capability 9.0, ``"mma"`` on 8.0 and newer, ``"portable"`` below. The
    int32-recovering kernels (``"gemv"``, ``"wgmma"``) only when
    ``k (2**bits_x - 1)(2**bits_w - 1) < 2**31``.

    Raises
    ------
    TypeError
        If a width is not an integer (or is a bool).
    ValueError
        If a width is outside 1..8.

    Examples
    --------
    >>> auto_kernel(1, 4096, 1, 1, 90), auto_kernel(4096, 4096, 1, 1, 90)
    ('gemv', 'wgmma')
    """
    bits_x, bits_w = check_bits(bits_x, "bits_x"), check_bits(bits_w, "bits_w")
    fits = _fits_int32(k, bits_x, bits_w)
    if fits and _gemv_smem(m, bits_x, -(-k // 32)) is not None:
        return "gemv"
    if cc == 90 and fits:
        return "wgmma"
    return "mma" if cc >= 80 else "portable"


def _affine_recovery(
    X: PackedPlanes, W: PackedPlanes, encoding: str
) -> tuple[PackedPlanes, PackedPlanes, tuple[int, int, int, int]]:
    """Operands and ``(alpha, beta_x, beta_w, gamma)`` of the single-accumulator kernels.

    ``out = alpha D + beta_x PX + beta_w PW + gamma K`` with ``D = sum_ij 2^(i+j) s_ij``
    (see bitplane_sm90a.cu); two's complement goes through offset binary.
    """
    a, b = X.bits, W.bits
    if encoding == "twos":
        return (
            _offset_binary(X),
            _offset_binary(W),
            (1, -(1 << (b - 1)), -(1 << (a - 1)), 1 << (a + b - 2)),
        )
    if encoding == "bipolar":
        top_x, top_w = (1 << a) - 1, (1 << b) - 1
        return X, W, (4, -2 * top_w, -2 * top_x, top_x * top_w)
    return X, W, (1, 0, 0, 0)


def _multiprocessors() -> int:
    import cupy

    return int(cupy.cuda.Device().attributes["MultiProcessorCount"])


def _wgmma(X: PackedPlanes, W: PackedPlanes, encoding: str, out_dtype: str) -> Any:
    """Launch bitplane_gemm_wgmma_* (see the file comment of bitplane_sm90a.cu).

    K is split across blocks when the grid would leave the device half idle and X has
    few rows (the split adds with atomics, ``m n`` per split).
    """
    import cupy

    m, n, k = X.rows, W.rows, X.k
    X, W, constants = _affine_recovery(X, W, encoding)
    Xw, Ww = _words_multiple_of_4(X.words), _words_multiple_of_4(W.words)
    kw = int(Xw.shape[2])
    grid_x, grid_y = -(-n // _WG_TILE), -(-m // _WG_TILE)
    _check_grid((grid_x, grid_y, 1))
    stages = -(-kw // _WG_STAGE_WORDS)
    splits = 1
    if m <= _WG_SPLIT_MAX_ROWS:
        wanted = _WG_BLOCKS_PER_SM * _multiprocessors()
        splits = min(stages, -(-wanted // (grid_x * grid_y)))
    per_split = -(-stages // splits)
    splits = -(-stages // per_split)
    out = (cupy.zeros if splits > 1 else cupy.empty)((m, n), dtype=out_dtype)
    sizes = (m, n, kw, k, X.bits, W.bits, *constants, per_split)
    args = (Xw, Ww, X.popcounts, W.popcounts, out, *map(np.int32, sizes))
    fn = _kernel("bitplane_gemm_wgmma_" + ("i32" if out_dtype == "int32" else "i64"))
    fn.max_dynamic_shared_size_bytes = _WG_SMEM
    fn((grid_x, grid_y, splits), (_WG_THREADS, 1, 1), args, shared_mem=_WG_SMEM)
    return out


def _gemv_smem(m: int, bits_x: int, kw: int) -> int | None:
    """Shared memory of bitplane_gemv_* for X (bytes), or None when it does not apply."""
    smem = 4 * m * bits_x * kw
    return smem if m <= _GV_MAX_ROWS and smem <= _GV_MAX_SMEM else None


def _gemv(X: PackedPlanes, W: PackedPlanes, encoding: str, out_dtype: str) -> Any:
    """Launch bitplane_gemv{4,16,32}_* (few rows of X; see its comment in bitplane.cu)."""
    import cupy

    m, n, k = X.rows, W.rows, X.k
    kw = int(X.words.shape[2])
    smem = _gemv_smem(m, X.bits, kw)
    if smem is None:
        raise ValueError(
            f"kernel='gemv' needs at most {_GV_MAX_ROWS} rows of X whose planes fit "
            f"{_GV_MAX_SMEM} bytes of shared memory, got {m} rows of {X.bits} planes and k={k}"
        )
    X, W, constants = _affine_recovery(X, W, encoding)
    out = cupy.empty((m, n), dtype=out_dtype)
    rows = min(r for r in _GV_VARIANTS if r >= m)
    blocks = min(-(-n // (_GV_THREADS // 32)), _GV_VARIANTS[rows] * _multiprocessors())
    sizes = (m, n, kw, k, X.bits, W.bits, *constants)
    args = (X.words, W.words, X.popcounts, W.popcounts, out, *map(np.int32, sizes))
    fn = _kernel(f"bitplane_gemv{rows}_" + ("i32" if out_dtype == "int32" else "i64"))
    fn.max_dynamic_shared_size_bytes = max(smem, 1)
    fn((blocks, 1, 1), (_GV_THREADS, 1, 1), args, shared_mem=smem)
    return out


def _offset_binary(P: PackedPlanes) -> PackedPlanes:
    """Two's-complement planes as offset binary: the top plane inverted on the ``k`` bits."""
    import cupy

    words, popcounts = P.words.copy(), P.popcounts.copy()
    mask = cupy.full(words.shape[2], 0xFFFFFFFF, dtype=cupy.uint32)
    if P.k % 32:
        mask[-1] = (1 << (P.k % 32)) - 1  # pad bits stay zero
    words[-1] = ~words[-1] & mask
    popcounts[-1] = P.k - popcounts[-1]
    return PackedPlanes(words, P.k, popcounts)


def _check_architecture(kernel: str, cc: int) -> None:
    version = f"{cc // 10}.{cc % 10}"
    if kernel == "mma" and cc < 80:
        raise RuntimeError(
            f"kernel='mma' needs a device of compute capability 8.0 or newer (binary "
            f"mma.sync m16n8k256), this one is {version}; use kernel='portable'"
        )
    if kernel == "wgmma" and cc != 90:
        raise RuntimeError(
            f"kernel='wgmma' needs a Hopper device (compute capability 9.0, sm_90a), "
            f"this one is {version}; use kernel='mma' or 'portable'"
        )


def _check_grid(grid: tuple[int, int, int]) -> None:
    if grid[1] > _MAX_GRID_Y:
        raise ValueError("X has too many rows for one launch; split it into row blocks")


def _words_multiple_of_4(words: Any) -> Any:
    """Pad each row with zero words to a multiple of 4 (16-byte cp.async chunks)."""
    import cupy

    extra = -words.shape[2] % 4
    if extra == 0:
        return words
    return cupy.pad(words, ((0, 0), (0, 0), (0, extra)))


def bitplane_matmul_gpu(
    X_codes: Any,
    W: Any,
    bits_x: int,
    bits_w: int,
    *,
    encoding: Literal["bipolar", "unsigned", "twos"] = "bipolar",
    path: ProductPath = "auto",
    check_codes: bool = True,
) -> cupy.ndarray:
    """Exact ``X W^T`` from codes on the GPU, by the path the device and widths favour.

    ``X_codes`` (activations, ``m x k``) is packed on the device (:func:`pack_gpu`) or,
    on the INT8 path, mapped to int8 (:func:`gpu.int8.int8_operand`); ``W`` may be given
    prepared once (packed planes, or an ``Int8Operand``) so that repeated calls pay only
    for the activations. ``path="auto"`` follows :func:`recommended_path` between INT8 and
    bit-serial, and a bit-serial product then picks its kernel as
    :func:`packed_matmul_gpu` does (``"gemv"`` for few rows). The result equals
    ``decode(X_codes) @ decode(W_codes).T`` exactly for every path.

    Parameters
    ----------
    X_codes : cupy.ndarray or numpy.ndarray
        Integer codes in ``[0, 2**bits_x)``, shape ``(m, k)``.
    W : cupy.ndarray, numpy.ndarray, PackedPlanes or gpu.int8.Int8Operand
        Weight codes (``n x k``) in ``[0, 2**bits_w)``, or the prepared form of the path.
    bits_x, bits_w : int
        Code widths, 1..8.
    encoding : {"bipolar", "unsigned", "twos"}
    path : {"auto", "portable", "mma", "wgmma", "gemv", "int8"}
    check_codes : bool
        Check the range of ``X_codes`` (and of ``W`` given as codes) on packing; see
        :func:`pack_gpu` (a host synchronisation per call).

    Returns
    -------
    cupy.ndarray
        int32 when ``k (2**bits_x - 1)(2**bits_w - 1) < 2**31``, else int64; ``(m, n)``.

    Raises
    ------
    RuntimeError
        If cupy, a CUDA device or the path's architecture is missing.
    TypeError
        If a width is not an integer (or is a bool).
    ValueError
        If a width, ``encoding`` or ``path`` is invalid, the codes are out of range, the
        ``k`` differ, a prepared ``W`` does not match the path or ``bits_w``, or
        ``path="int8"`` with a result beyond int32.
    """
    from gpu.int8 import Int8Operand

    cupy_module()
    bits_x, bits_w = check_bits(bits_x, "bits_x"), check_bits(bits_w, "bits_w")
    if path not in _PATHS:
        raise ValueError(f"path must be one of {_PATHS}, got {path!r}")
    if encoding not in _ENCODINGS:
        raise ValueError(f"encoding must be one of {tuple(_ENCODINGS)}, got {encoding!r}")
    k = int(X_codes.shape[1]) if X_codes.ndim == 2 else 0
    fits = _fits_int32(k, bits_x, bits_w)
    if path == "auto":
        # INT8 or bit-serial by the widths; a bit-serial product then picks its kernel as
        # packed_matmul_gpu does (gemv for few rows)
        binary = recommended_path(bits_x, bits_w, compute_capability()) != "int8"
        path = "auto" if binary else "int8"
    if path == "int8":
        if not fits:
            raise ValueError(
                f"path='int8' returns int32, which cannot hold k (2**a - 1)(2**b - 1) for "
                f"k={k}, a={bits_x}, b={bits_w}; use path='mma'"
            )
        if isinstance(W, PackedPlanes):
            raise ValueError("path='int8' needs W as codes or an Int8Operand, not PackedPlanes")
        Wi = W if isinstance(W, Int8Operand) else int8_operand(W, bits_w, encoding, check_codes)
        return int8_product(int8_operand(X_codes, bits_x, encoding, check_codes), Wi)
    if isinstance(W, Int8Operand):
        raise ValueError(f"path={path!r} needs W as codes or PackedPlanes, not an Int8Operand")
    Wp = W if isinstance(W, PackedPlanes) else pack_gpu(W, bits_w, check_codes=check_codes)
    if Wp.bits != bits_w:
        raise ValueError(f"W has {Wp.bits} planes but bits_w is {bits_w}")
    return packed_matmul_gpu(
        pack_gpu(X_codes, bits_x, check_codes=check_codes),
        Wp,
        encoding=encoding,
        kernel=path,
        out_dtype="int32" if fits else "int64",
    )
