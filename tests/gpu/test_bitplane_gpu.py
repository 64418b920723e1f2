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
KERNELS = ["portable", "mma", "wgmma", "gemv"]


def _cc() -> int:
    from gpu.bitplane import compute_capability

    return compute_capability()


def _skip_unsupported(kernel: str) -> None:
    if kernel == "mma" and _cc() < 80:
        pytest.skip("the mma kernel needs binary mma.sync, compute capability 8.0 or newer")
    if kernel == "int8" and _cc() < 61:
        pytest.skip("cuBLAS INT8 GEMM needs compute capability 6.1 or newer (dp4a)")
    if kernel == "wgmma" and _cc() != 90:
        pytest.skip("the wgmma kernel needs a Hopper device (compute capability 9.0)")


def _operands(rng: np.random.Generator, m: int, n: int, k: int, a: int, b: int) -> tuple[Any, Any]:
    X = rng.integers(0, 1 << a, size=(m, k), dtype=np.uint8)
    W = rng.integers(0, 1 << b, size=(n, k), dtype=np.uint8)
    return pack(X, a), pack(W, b)


@pytest.mark.parametrize("out_dtype", ["int64", "int32"])
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("identity", ["and", "xor"])
@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_matches_oracle(
    a: int, b: int, encoding: str, identity: str, kernel: str, out_dtype: str
) -> None:
    import cupy

    from gpu.bitplane import packed_matmul_gpu, to_device

    _skip_unsupported(kernel)
    rng = np.random.default_rng([a, b, len(encoding), len(identity), len(kernel)])
    for k in KS:
        # m, n not multiples of the tiles (16 x 16 portable, 32 x 16 per MMA block); gemv
        # takes at most 32 rows.
        Xp, Wp = _operands(rng, 29 if kernel == "gemv" else 37, 19, k, a, b)
        want = packed_matmul(Xp, Wp, encoding=encoding, identity=identity)
        got = packed_matmul_gpu(
            to_device(Xp),
            to_device(Wp),
            encoding=encoding,
            identity=identity,
            kernel=kernel,
            out_dtype=out_dtype,
        )
        assert got.dtype == cupy.dtype(out_dtype)
        assert got.shape == want.shape
        np.testing.assert_array_equal(cupy.asnumpy(got), want, err_msg=f"k={k}")


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("identity", ["and", "xor"])
def test_many_blocks_and_extreme_codes(kernel: str, identity: str) -> None:
    import cupy

    from gpu.bitplane import packed_matmul_gpu

    _skip_unsupported(kernel)
    rng = np.random.default_rng(7)
    # gemv: at most 32 rows of X, whose 8 planes fit 96 KiB
    m, n, k = 8 if kernel == "gemv" else 300, 211, 4133
    for encoding in ENCODINGS:
        Xp, Wp = _operands(rng, m, n, k, 8, 8)
        want = packed_matmul(Xp, Wp, encoding=encoding, identity=identity)
        got = packed_matmul_gpu(Xp, Wp, encoding=encoding, identity=identity, kernel=kernel)
        np.testing.assert_array_equal(cupy.asnumpy(got), want)
    # all-ones / all-zeros codes: the largest magnitudes of every encoding
    for fill in (0, 255):
        X = np.full((min(m, 33), k), fill, dtype=np.uint8)
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
        packed_matmul_gpu(Xp, Wp, kernel="bmma")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="out_dtype"):
        packed_matmul_gpu(Xp, Wp, out_dtype="int16")  # type: ignore[arg-type]
    wide = pack(np.full((2, 40000), 255, dtype=np.uint8), 8)
    with pytest.raises(ValueError, match="int32"):
        packed_matmul_gpu(wide, wide, out_dtype="int32")
    with pytest.raises(TypeError, match="PackedPlanes-like"):
        packed_matmul_gpu(np.zeros((2, 2)), Wp)
    if _cc() < 80:
        with pytest.raises(RuntimeError, match=r"8\.0"):
            packed_matmul_gpu(Xp, Wp, kernel="mma")
    if _cc() != 90:
        with pytest.raises(RuntimeError, match=r"9\.0"):
            packed_matmul_gpu(Xp, Wp, kernel="wgmma")
    else:
        with pytest.raises(ValueError, match="wgmma"):
            packed_matmul_gpu(wide, wide, kernel="wgmma")


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


PACK_CASES = [(1, 1, 1), (37, 100, 3), (300, 4133, 8), (5, 256, 2)]


@pytest.mark.parametrize(("rows", "k", "bits"), PACK_CASES)
def test_pack_gpu_equals_pack(rows: int, k: int, bits: int) -> None:
    import cupy

    from gpu.bitplane import pack_gpu

    rng = np.random.default_rng(rows * k + bits)
    codes = rng.integers(0, 1 << bits, size=(rows, k), dtype=np.uint8)
    want = pack(codes, bits)
    got = pack_gpu(cupy.asarray(codes), bits)
    assert got.k == want.k
    np.testing.assert_array_equal(cupy.asnumpy(got.words), want.words)
    np.testing.assert_array_equal(cupy.asnumpy(got.popcounts), want.popcounts)


def test_pack_gpu_errors() -> None:
    from gpu.bitplane import pack_gpu

    with pytest.raises(ValueError, match=r"bits must be in 1\.\.8, got 9"):
        pack_gpu(np.zeros((2, 3), np.uint8), 9)
    with pytest.raises(TypeError, match="bits must be an integer, got bool"):
        pack_gpu(np.zeros((2, 3), np.uint8), True)
    with pytest.raises(ValueError, match=r"\[0, 2\*\*2\)"):
        pack_gpu(np.full((2, 3), 4, np.uint8), 2)
    with pytest.raises(TypeError, match="integer"):
        pack_gpu(np.zeros((2, 3)), 2)
    with pytest.raises(ValueError, match="2-D"):
        pack_gpu(np.zeros(3, np.uint8), 2)


PATHS = ["portable", "mma", "wgmma", "gemv", "int8"]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize(("a", "b"), [(1, 1), (2, 2), (1, 4), (4, 4), (7, 3), (8, 8), (8, 1)])
def test_bitplane_matmul_gpu_every_path_is_exact(a: int, b: int, encoding: str, path: str) -> None:
    """Codes in, exact integers out, by every path (INT8: affine int8 maps + corrections)."""
    import cupy

    from gpu.bitplane import bitplane_matmul_gpu
    from numlib.bitplane import decode

    _skip_unsupported(path)
    rng = np.random.default_rng([a, b, len(encoding), len(path)])
    for m, n, k in [(1, 1, 1), (10, 19, 70), (37, 19, 33), (130, 260, 1030)]:
        if path == "gemv" and m > 32:
            continue
        X = rng.integers(0, 1 << a, size=(m, k), dtype=np.uint8)
        W = rng.integers(0, 1 << b, size=(n, k), dtype=np.uint8)
        want = decode(X, a, encoding).astype(np.int64) @ decode(W, b, encoding).astype(np.int64).T
        got = bitplane_matmul_gpu(cupy.asarray(X), W, a, b, encoding=encoding, path=path)
        assert got.dtype == cupy.int32  # every case here fits int32
        np.testing.assert_array_equal(cupy.asnumpy(got), want, err_msg=f"{m}x{n}x{k}")


def test_bitplane_matmul_gpu_prepared_weights_and_errors() -> None:
    import cupy

    from gpu.bitplane import bitplane_matmul_gpu, pack_gpu
    from gpu.int8 import int8_operand

    rng = np.random.default_rng(11)
    X = cupy.asarray(rng.integers(0, 4, size=(9, 200), dtype=np.uint8))
    W = cupy.asarray(rng.integers(0, 256, size=(7, 200), dtype=np.uint8))
    direct = bitplane_matmul_gpu(X, W, 2, 8)
    np.testing.assert_array_equal(
        cupy.asnumpy(bitplane_matmul_gpu(X, int8_operand(W, 8), 2, 8, path="int8")),
        cupy.asnumpy(direct),
    )
    np.testing.assert_array_equal(
        cupy.asnumpy(bitplane_matmul_gpu(X, pack_gpu(W, 8), 2, 8, path="portable")),
        cupy.asnumpy(direct),
    )
    with pytest.raises(ValueError, match="PackedPlanes"):
        bitplane_matmul_gpu(X, pack_gpu(W, 8), 2, 8, path="int8")
    with pytest.raises(ValueError, match="Int8Operand"):
        bitplane_matmul_gpu(X, int8_operand(W, 8), 2, 8, path="portable")
    with pytest.raises(ValueError, match="bits_w"):
        bitplane_matmul_gpu(X, pack_gpu(W, 8), 2, 7, path="portable")
    with pytest.raises(ValueError, match="path"):
        bitplane_matmul_gpu(X, W, 2, 8, path="fp16")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bits_x must be an integer, got bool"):
        bitplane_matmul_gpu(X, W, True, 8)
    with pytest.raises(TypeError, match="bits must be an integer, got float"):
        int8_operand(W, 8.0)  # type: ignore[arg-type]
    for path in ("int8", "auto"):  # codes of W above 2**7 - 1, on either path
        with pytest.raises(ValueError, match=r"\[0, 2\*\*7\)"):
            bitplane_matmul_gpu(X, W, 2, 7, path=path)  # type: ignore[arg-type]
    big = cupy.full((2, 40000), 255, dtype=cupy.uint8)
    with pytest.raises(ValueError, match="int32"):
        bitplane_matmul_gpu(big, big, 8, 8, path="int8")
    assert bitplane_matmul_gpu(big, big, 8, 8, path="portable").dtype == cupy.int64


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_wgmma_many_tiles_and_split_k(encoding: str) -> None:
    """Full waves of tiles and the split-K atomics reproduce the oracle.

    1536 x 2816 is 12 x 22 tiles of 128 x 128; 20 x 300 with k = 4133 is a three-tile grid
    that splits its nine k-stages across blocks.
    """
    import cupy

    from gpu.bitplane import packed_matmul_gpu

    _skip_unsupported("wgmma")
    rng = np.random.default_rng(len(encoding))
    for m, n, k, a, b in [(1536, 2816, 300, 1, 1), (1536, 2816, 100, 2, 2), (20, 300, 4133, 2, 2)]:
        Xp, Wp = _operands(rng, m, n, k, a, b)
        want = packed_matmul(Xp, Wp, encoding=encoding)
        for out_dtype in ("int32", "int64"):
            got = packed_matmul_gpu(Xp, Wp, encoding=encoding, kernel="wgmma", out_dtype=out_dtype)
            np.testing.assert_array_equal(cupy.asnumpy(got), want, err_msg=f"{m}x{n}x{k}")


def test_gemv_rejects_too_many_rows() -> None:
    from gpu.bitplane import packed_matmul_gpu

    rng = np.random.default_rng(5)
    Xp, Wp = _operands(rng, 33, 8, 64, 1, 1)
    with pytest.raises(ValueError, match="gemv"):
        packed_matmul_gpu(Xp, Wp, kernel="gemv")
