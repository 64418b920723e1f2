"""Suite ``bitplane``, GPU case: exact bit-plane products against cuBLAS INT8 and FP16.

For each shape ``(m, n, k)`` of :data:`GPU_SHAPES` and each precision ``WbAa`` of
:data:`GPU_PRECISIONS` (``b``-bit weights ``n x k``, ``a``-bit activations ``m x k``,
bipolar-INT codes drawn with seed :data:`SEED` on the device), one process times, on the
same device and in the same run:

``numlib.gpu.bitplane:<path>``
    The path :func:`gpu.bitplane.recommended_path` picks (Hopper: ``wgmma`` binary
    Tensor-Core GEMMs for ``a * b <= 4``, else one INT8 GEMM with rank-one corrections;
    ``gemv`` for few rows) on prepared operands: weights packed (or mapped to int8) once,
    as a deployed layer holds them, and activations prepared before timing, as cuBLAS
    gets int8 operands. ``end_to_end_time_s`` adds the activation preparation (packing
    on the GPU, without the host-side range check, as a quantiser's output needs none).
``cublas-int8`` (the peer)
    ``cublasGemmEx`` INT8 x INT8 -> INT32 (:func:`gpu.int8.int8_matmul_gpu`) on the same
    bytes as numlib's codes, read as int8: the same inputs and shapes.
``cublas-fp16``
    ``cupy.matmul`` in float16 (cuBLAS, Tensor Cores) of those int8 values, in the metrics.

Times are device times from CUDA events around a batch of back-to-back calls queued behind
a spin kernel, so host launch overhead is excluded for every method alike (``timing`` says
``"host-bound"`` where the host could not keep up), best of ``repeat``.
``tops = 2 m n k / time`` for every method (the logical product, whatever its precision).
``max_abs_error`` compares with a float64 product of the decoded values on the GPU (exact
at these sizes) and must be 0.
``target`` is the issue's throughput target relative to cuBLAS INT8 where it names one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from validation.registry import Record, case

SUITE = "bitplane"
METHOD = "numlib.gpu.bitplane"
PEER = "cublas-int8"
SEED = 20250402
_LLM = {"llm-m1": 1, "llm-m16": 16, "llm-m128": 128}
GPU_SHAPES: dict[str, dict[str, tuple[int, int, int]]] = {
    "small": {"square-1024": (1024, 1024, 1024)},
    "medium": {
        "square-4096": (4096, 4096, 4096),
        "square-8192": (8192, 8192, 8192),
        **{name: (m, 4096, 4096) for name, m in _LLM.items()},
    },
}
GPU_SHAPES["large"] = GPU_SHAPES["medium"]
# (weight bits, activation bits) and the target vs cuBLAS INT8, where it names one.
GPU_PRECISIONS: dict[tuple[int, int], float | None] = {
    (1, 1): 2.0,
    (1, 2): None,
    (2, 2): 1.0,
    (4, 4): 0.9,
    (8, 8): 0.9,
}
_BATCH_SECONDS = 0.02  # device work per timed batch of calls


_SPIN_SOURCE = r"""
extern "C" __global__ void numlib_spin(long long cycles) {
    const long long start = clock64();
    while (clock64() - start < cycles) {
    }
}
"""


def _device_seconds(fn: Callable[[], Any], repeat: int) -> tuple[float, str]:
    """Best per-call device time of ``fn``: events around ``calls`` back-to-back calls.

    A spin kernel queued first keeps the device busy while the host enqueues the calls,
    so the events see device time only, not launch overhead. ``"host-bound"`` is returned
    when enqueueing took longer than the spin (a call that synchronises, for instance):
    then the time includes the host's share.
    """
    import time

    import cupy

    spin = cupy.RawKernel(_SPIN_SOURCE, "numlib_spin")
    hz = 1e3 * cupy.cuda.Device().attributes["ClockRate"]
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    fn()
    fn()  # compiles kernels and fills the memory pool
    begin = time.perf_counter()
    start.record()
    fn()
    end.record()
    host_once = time.perf_counter() - begin
    end.synchronize()
    once = cupy.cuda.get_elapsed_time(start, end) / 1e3
    calls = max(3, min(500, math.ceil(_BATCH_SECONDS / max(once, 1e-7))))
    cover = 2.0 * host_once * calls + 1e-3
    best, timing = math.inf, "device"
    for _ in range(repeat):
        spin((1,), (1,), (np.int64(cover * hz),))
        begin = time.perf_counter()
        start.record()
        for _ in range(calls):
            fn()
        end.record()
        if time.perf_counter() - begin > cover:
            timing = "host-bound"
        end.synchronize()
        best = min(best, cupy.cuda.get_elapsed_time(start, end) / 1e3 / calls)
    return best, timing


def _bipolar_float(codes: Any, bits: int) -> Any:
    """Return the values ``2u - (2**bits - 1)`` in float64, independently of gpu.int8."""
    import cupy

    return 2.0 * codes.astype(cupy.float64) - float((1 << bits) - 1)


def _compare(
    shape: str, dims: tuple[int, int, int], bw: int, bx: int, size: str, repeat: int
) -> Record:
    import cupy

    from gpu import bitplane as gb
    from gpu.int8 import int8_operand, int8_product

    m, n, k = dims
    cc = gb.compute_capability()
    path = gb.recommended_path(bx, bw, cc)
    if path != "int8":
        path = gb.auto_kernel(m, k, bx, bw, cc)
    rng = cupy.random.default_rng(SEED + 16 * bw + bx)
    X = rng.integers(0, 1 << bx, size=(m, k)).astype(cupy.uint8)
    W = rng.integers(0, 1 << bw, size=(n, k)).astype(cupy.uint8)
    if path == "int8":
        Wp, Xp = int8_operand(W, bw), int8_operand(X, bx)

        def kernel_only() -> Any:
            return int8_product(Xp, Wp)
    else:
        Wp, Xp = gb.pack_gpu(W, bw), gb.pack_gpu(X, bx)

        def kernel_only() -> Any:
            return gb.packed_matmul_gpu(Xp, Wp, kernel=path, out_dtype="int32")

        if path == "gemv" and cc == 90:  # the Tensor-Core kernel on the same rows, to compare
            wgmma_s, _ = _device_seconds(
                lambda: gb.packed_matmul_gpu(Xp, Wp, kernel="wgmma", out_dtype="int32"), repeat
            )

    time_s, timing = _device_seconds(kernel_only, repeat)
    out = kernel_only()
    ref = _bipolar_float(X, bx) @ _bipolar_float(W, bw).T
    error = float(cupy.abs(out.astype(cupy.float64) - ref).max())
    del ref
    end_to_end_s, end_to_end_timing = _device_seconds(
        lambda: gb.bitplane_matmul_gpu(X, Wp, bx, bw, check_codes=False), repeat
    )

    # The peers read the very bytes numlib's codes are made of: same inputs, same shapes.
    Xi, Wi = X.view(cupy.int8), W.view(cupy.int8)
    int8_s, int8_timing = _device_seconds(lambda: gb.int8_matmul_gpu(Xi, Wi), repeat)
    Xh, Wh = Xi.astype(cupy.float16), Wi.astype(cupy.float16)
    fp16_s, fp16_timing = _device_seconds(lambda: cupy.matmul(Xh, Wh.T), repeat)
    ops = 2.0 * m * n * k
    metrics: dict[str, Any] = {
        "path": path,
        "bits_w": bw,
        "bits_x": bx,
        "m": m,
        "n": n,
        "k": k,
        "tops": ops / time_s / 1e12,
        "end_to_end_time_s": end_to_end_s,
        "end_to_end_tops": ops / end_to_end_s / 1e12,
        "end_to_end_timing": end_to_end_timing,
        "max_abs_error": error,
        "timing": timing,
        "target": GPU_PRECISIONS[(bw, bx)],
        "cublas_fp16_time_s": fp16_s,
        "cublas_fp16_tops": ops / fp16_s / 1e12,
        "cublas_fp16_timing": fp16_timing,
        "compute_capability": cc,
    }
    if path == "gemv" and cc == 90:
        metrics["wgmma_tops"] = ops / wgmma_s / 1e12
    if (bw, bx) == (1, 1) and path == "wgmma" and shape.startswith("square"):
        legacy_s, _ = _device_seconds(
            lambda: gb.packed_matmul_gpu(Xp, Wp, kernel="mma", out_dtype="int32"), repeat
        )
        metrics["legacy_mma_tops"] = ops / legacy_s / 1e12
    peer_metrics = {"m": m, "n": n, "k": k, "tops": ops / int8_s / 1e12, "timing": int8_timing}
    name = f"gpu-w{bw}a{bx}-{shape}"
    return Record(
        SUITE, name, size, f"{METHOD}:{path}", PEER, time_s, int8_s, metrics, peer_metrics
    )


def _has_cuda() -> str | None:
    try:
        from gpu._cuda import cupy_module

        cupy_module()
    except RuntimeError as exc:
        return str(exc)
    return None


@case(SUITE, "gpu-bitplane-gemm")
def gpu_bitplane_gemm(size: str, *, repeat: int) -> list[Record]:
    """GPU bit-plane GEMM (W1A1..W8A8) vs cuBLAS INT8 and FP16; skipped without CUDA.

    Shapes ``M = N = K`` in {4096, 8192} and LLM projections ``M`` in {1, 16, 128},
    ``N = K = 4096`` (medium and large; small: 1024 cubed). Device times from CUDA
    events over batches of calls; exactness checked against a float64 product.
    """
    missing = _has_cuda()
    records = []
    for shape, dims in GPU_SHAPES[size].items():
        for bw, bx in GPU_PRECISIONS:
            if missing is not None:
                name = f"gpu-w{bw}a{bx}-{shape}"
                records.append(Record.skip(SUITE, name, size, missing, method=METHOD, peer=PEER))
                continue
            records.append(_compare(shape, dims, bw, bx, size, repeat))
    return records
