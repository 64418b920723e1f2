"""GPU bit-plane products equal the CPU oracle ``numlib.bitplane.packed_matmul`` bit for bit.

Runs only with cupy and a CUDA device (``gpu`` marker; tests/conftest.py skips otherwise).
The INT8 cuBLAS path is checked against plain int64 numpy matmul.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from numlib.bitplane import ENCODINGS, pack, packed_matmul

pytestmark = pytest.mark.gpu

# A sample of (bits_x, bits_w) in 1..8: the corners, the diagonal and asymmetric pairs.
PAIRS = [(1, 1), (1, 2), (2, 1), (2, 2), (3, 5), (4, 4), (1, 8), (8, 1), (5, 7), (8, 8)]
# k not a multiple of 32 (and of 256, the MMA chunk), one below a word, one exact multiple.
KS = [1, 31, 33, 100, 257, 300, 512]
KERNELS = ["portable", "mma"]


def _cc() -> int:
    from gpu.bitplane import compute_capability

    return compute_capability()


def _skip_unsupported(kernel: str) -> None:
    if kernel == "mma" and _cc() < 80:
        pytest.skip("the mma kernel needs compute capability 8.0 or newer")


def _operands(rng: np.random.Generator, m: int, n: int, k: int, a: int, b: int) -> tuple[Any, Any]:
    X = rng.integers(0, 1 << a, size=(m, k), dtype=np.uint8)
    W = rng.integers(0, 1 << b, size=(n, k), dtype=np.uint8)
    return pack(X, a), pack(W, b)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("identity", ["and", "xor"])
@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_matches_oracle(a: int, b: int, encoding: str, identity: str, kernel: str) -> None:
    import cupy

    from gpu.bitplane import packed_matmul_gpu, to_device

    _skip_unsupported(kernel)
    rng = np.random.default_rng([a, b, len(encoding), len(identity), len(kernel)])
    for k in KS:
        # m, n not multiples of the tiles (16 x 16 portable, 32 x 16 per MMA block).
        Xp, Wp = _operands(rng, 37, 19, k, a, b)
        want = packed_matmul(Xp, Wp, encoding=encoding, identity=identity)
        got = packed_matmul_gpu(
            to_device(Xp), to_device(Wp), encoding=encoding, identity=identity, kernel=kernel
        )
        assert got.dtype == cupy.int64
        assert got.shape == want.shape
        np.testing.assert_array_equal(cupy.asnumpy(got), want, err_msg=f"k={k}")


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("identity", ["and", "xor"])
def test_many_blocks_and_extreme_codes(kernel: str, identity: str) -> None:
    import cupy

    from gpu.bitplane import packed_matmul_gpu

    _skip_unsupported(kernel)
    rng = np.random.default_rng(7)
    m, n, k = 300, 211, 4133
    for encoding in ENCODINGS:
        Xp, Wp = _operands(rng, m, n, k, 8, 8)
        want = packed_matmul(Xp, Wp, encoding=encoding, identity=identity)
        got = packed_matmul_gpu(Xp, Wp, encoding=encoding, identity=identity, kernel=kernel)
        np.testing.assert_array_equal(cupy.asnumpy(got), want)
    # all-ones / all-zeros codes: the largest magnitudes of every encoding
    for fill in (0, 255):
        X = np.full((33, k), fill, dtype=np.uint8)
        Xp, Wp = pack(X, 8), pack(np.full((17, k), 255 - fill, dtype=np.uint8), 8)
        for encoding in ENCODINGS:
            want = packed_matmul(Xp, Wp, encoding=encoding, identity=identity)
            got = packed_matmul_gpu(Xp, Wp, encoding=encoding, identity=identity, kernel=kernel)
            np.testing.assert_array_equal(cupy.asnumpy(got), want)


def test_auto_dispatch_and_errors() -> None:
    import cupy

    from gpu.bitplane import packed_matmul_gpu, to_device, to_host

    rng = np.random.default_rng(3)
    Xp, Wp = _operands(rng, 20, 10, 70, 3, 2)
    want = packed_matmul(Xp, Wp)
    np.testing.assert_array_equal(cupy.asnumpy(packed_matmul_gpu(Xp, Wp)), want)
    back = to_host(to_device(Xp))
    np.testing.assert_array_equal(back.words, Xp.words)
    np.testing.assert_array_equal(back.popcounts, Xp.popcounts)
    assert back.k == Xp.k
    other = pack(rng.integers(0, 2, size=(4, 71), dtype=np.uint8), 1)
    with pytest.raises(ValueError, match="same k"):
        packed_matmul_gpu(Xp, other)
    with pytest.raises(ValueError, match="encoding"):
        packed_matmul_gpu(Xp, Wp, encoding="ones")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="identity"):
        packed_matmul_gpu(Xp, Wp, identity="or")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kernel"):
        packed_matmul_gpu(Xp, Wp, kernel="wgmma")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="PackedPlanes-like"):
        packed_matmul_gpu(np.zeros((2, 2)), Wp)
    if _cc() < 80:
        with pytest.raises(RuntimeError, match=r"8\.0"):
            packed_matmul_gpu(Xp, Wp, kernel="mma")


@pytest.mark.parametrize(("m", "n", "k"), [(1, 1, 4), (37, 19, 100), (256, 128, 4096)])
def test_int8_matches_numpy(m: int, n: int, k: int) -> None:
    import cupy

    from gpu.bitplane import int8_matmul_gpu

    rng = np.random.default_rng(m + n + k)
    X = rng.integers(-128, 128, size=(m, k), dtype=np.int8)
    W = rng.integers(-128, 128, size=(n, k), dtype=np.int8)
    want = X.astype(np.int64) @ W.astype(np.int64).T
    got = int8_matmul_gpu(cupy.asarray(X), cupy.asarray(W))
    assert got.dtype == cupy.int32
    np.testing.assert_array_equal(cupy.asnumpy(got).astype(np.int64), want)
    # extremes: every product is (-128)(-128)
    Xe = np.full((m, k), -128, dtype=np.int8)
    got = int8_matmul_gpu(Xe, Xe[:n] if n <= m else np.full((n, k), -128, np.int8))
    np.testing.assert_array_equal(cupy.asnumpy(got), np.full((m, n), 16384 * k))


def test_int8_errors() -> None:
    from gpu.bitplane import int8_matmul_gpu

    X = np.zeros((4, 6), dtype=np.int8)
    with pytest.raises(ValueError, match="multiple of 4"):
        int8_matmul_gpu(X, X)
    with pytest.raises(TypeError, match="int8"):
        int8_matmul_gpu(X.astype(np.int16), X)
    with pytest.raises(ValueError, match="same k"):
        int8_matmul_gpu(np.zeros((4, 8), np.int8), np.zeros((4, 12), np.int8))
