"""Suite ``bitplane``: the exact bit-plane product (bipolar-INT) against int64 numpy matmul.

CPU cases build random bipolar-INT values (odd integers in ``[-(2**b - 1), 2**b - 1]``,
seed :data:`SEED`) for activations ``X`` (``m x k``) and weights ``W`` (``n x k``)
at ``W{b}A{b}``, encode them, and compute ``X W^T`` in one process on the same input:

``numlib.bitplane``
    ``bitplane_matmul(X_codes, W_codes, b, b)``: pack the planes, then ``b * b``
    AND+popcount binary GEMMs with rank-one corrections, recovered by shifted sums
    (the integer-exact oracle future GPU kernels are checked against).
``numpy-int64``
    ``X.astype(int64) @ W.T.astype(int64)`` on the decoded values (the issue's peer).
``numpy-float64``
    ``X.astype(float64) @ W.T.astype(float64)``: BLAS, and exact here, since every sum
    is an integer below ``k (2**b - 1)**2 < 2**53``; the fast exact product a user
    would reach for.

The oracle is not meant to be fast and ``speedup`` (``peer_time_s / time_s``) is
recorded as measured: numpy's int64 matmul uses no BLAS, so at 512 the oracle beats
it at W1A1/W2A2 (1 and 4 binary GEMMs) and loses from W4A4 on (cost grows as
``b**2``); float64 BLAS beats the oracle at every width.
Times are the best of ``repeat`` interleaved rounds with one BLAS thread, encoding
excluded. Metrics:

``max_abs_error``
    ``max |bitplane - int64 matmul|``; must be 0. Each peer's is measured against the
    other peer (int64 against float64 and back): both must be 0.
``xor_max_abs_error``
    The same for the XOR identity (``identity="xor"``), run once untimed.
``bits``, ``m``, ``n``, ``k``, ``binary_gemms``
    The problem; ``binary_gemms = b * b``.

The GPU case ``gpu-bitplane-gemm`` (against cuBLAS INT8 and FP16) lives in
:mod:`validation.suites.bitplane_gpu`.
"""

from __future__ import annotations

import numpy as np

from numlib.bitplane import bitplane_matmul, encode
from validation.measure import best_times_interleaved, one_thread
from validation.registry import Record, case

SUITE = "bitplane"
METHOD = "numlib.bitplane"
PEER = "numpy-int64"
SEED = 20250401
SHAPE = {"small": 64, "medium": 512}
PRECISIONS = (1, 2, 4, 8)


def _bipolar_values(rng: np.random.Generator, shape: tuple[int, int], bits: int) -> np.ndarray:
    top = 2**bits - 1
    return 2 * rng.integers(0, top + 1, size=shape) - top


def _exact(name: str, size: str, bits: int, repeat: int) -> list[Record]:
    m = n = k = SHAPE[size]
    rng = np.random.default_rng(SEED + bits)
    X, W = _bipolar_values(rng, (m, k), bits), _bipolar_values(rng, (n, k), bits)
    Xc, Wc = encode(X, bits), encode(W, bits)
    Xi, Wi = X.astype(np.int64), W.astype(np.int64)

    Xf, Wf = X.astype(np.float64), W.astype(np.float64)

    with one_thread():
        time_s, int64_s, float64_s = best_times_interleaved(
            [
                lambda: bitplane_matmul(Xc, Wc, bits, bits),
                lambda: Xi @ Wi.T,
                lambda: Xf @ Wf.T,
            ],
            repeat,
        )
    out, ref, ref_float = bitplane_matmul(Xc, Wc, bits, bits), Xi @ Wi.T, Xf @ Wf.T
    out_xor = bitplane_matmul(Xc, Wc, bits, bits, identity="xor")
    common = {"bits": bits, "m": m, "n": n, "k": k}
    metrics = {
        **common,
        "binary_gemms": bits * bits,
        "max_abs_error": int(np.max(np.abs(out - ref))),
        "xor_max_abs_error": int(np.max(np.abs(out_xor - ref))),
    }
    peers_disagree = float(np.max(np.abs(ref - ref_float)))
    return [
        Record(SUITE, name, size, METHOD, peer, time_s, peer_s, metrics,
               {**common, "max_abs_error": peers_disagree})
        for peer, peer_s in ((PEER, int64_s), ("numpy-float64", float64_s))
    ]  # fmt: skip


def _register_exact(bits: int) -> None:
    name = f"exact-w{bits}a{bits}"

    def run(size: str, *, repeat: int) -> list[Record]:
        return _exact(name, size, bits, repeat)

    run.__doc__ = (
        f"Exact W{bits}A{bits} bipolar-INT product by bit-planes vs int64 and float64 "
        "numpy matmul.\n\n"
        f"m = n = k = 64 / 512 (small / medium); {bits * bits} binary GEMMs; the oracle "
        "is not meant to be fast (cost grows as bits**2); max_abs_error must be 0."
    )
    case(SUITE, name, sizes=("small", "medium"))(run)


for _bits in PRECISIONS:
    _register_exact(_bits)
