"""Bit-plane products equal the int64 product exactly, for every pair of widths 1..8.

References are independent of numlib.bitplane: plain int64 numpy matmul, and
per-element formulas evaluated with Python integers (bits read with ``>>`` and
``& 1``, plane values and weights written out here).
"""

from __future__ import annotations

import itertools
import tracemalloc

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import numlib.bitplane
import numlib.bitplane_pack
from numlib.bitplane import (
    ENCODINGS,
    PackedPlanes,
    QuantizedMatrix,
    bitplane_matmul,
    check_bits,
    decode,
    decompose,
    dequantize,
    encode,
    pack,
    packed_matmul,
    quantize,
    quantized_matmul,
    recompose,
    unpack,
    value_range,
)
from numlib.bitplane_pack import pack_planes

seeds = st.integers(0, 2**32 - 1)
widths = st.integers(1, 8)
encodings = st.sampled_from(ENCODINGS)
identities = st.sampled_from(["and", "xor"])
# k around the word boundaries: 1, 31, 32, 33, 63, 64, 65 and anything up to 100.
ks = st.one_of(st.sampled_from([1, 31, 32, 33, 63, 64, 65]), st.integers(1, 100))


def random_values(rng, shape, bits, encoding):
    """Uniform random representable values, generated without numlib."""
    top = 2**bits - 1
    if encoding == "bipolar":
        return 2 * rng.integers(0, top + 1, size=shape) - top
    if encoding == "unsigned":
        return rng.integers(0, top + 1, size=shape)
    return rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), size=shape)


def brute_value(code, bits, encoding):
    """Value of one code from its bits, by the defining formula."""
    b = [(int(code) >> i) & 1 for i in range(bits)]
    if encoding == "bipolar":
        return sum(2**i * (2 * b[i] - 1) for i in range(bits))
    if encoding == "unsigned":
        return sum(2**i * b[i] for i in range(bits))
    return sum(2**i * b[i] for i in range(bits - 1)) - 2 ** (bits - 1) * b[bits - 1]


def brute_plane_product(Xc, Wc, a, b, encoding):
    """sum_{i,j} c_i d_j <plane_i(x), plane_j(w)>, every element with Python ints."""
    m, k = Xc.shape
    n = Wc.shape[0]

    def plane_value(bit):
        return 2 * bit - 1 if encoding == "bipolar" else bit

    def weight(i, bits):
        return -(2**i) if encoding == "twos" and i == bits - 1 else 2**i

    out = np.zeros((m, n), dtype=object)
    for r, c in itertools.product(range(m), range(n)):
        total = 0
        for i, j in itertools.product(range(a), range(b)):
            dot = sum(
                plane_value((int(Xc[r, t]) >> i) & 1) * plane_value((int(Wc[c, t]) >> j) & 1)
                for t in range(k)
            )
            total += weight(i, a) * weight(j, b) * dot
        out[r, c] = total
    return out


# --------------------------------------------------------------------- encode / planes


@given(encodings, widths, st.integers(1, 6), ks, seeds)
def test_encode_decompose_recompose_round_trip(encoding, bits, m, k, seed):
    v = random_values(np.random.default_rng(seed), (m, k), bits, encoding)
    v_before = v.copy()
    codes = encode(v, bits, encoding)
    assert codes.dtype == np.uint8
    assert codes.max() < 2**bits
    np.testing.assert_array_equal(v, v_before)
    np.testing.assert_array_equal(decode(codes, bits, encoding), v)
    planes = decompose(codes, bits)
    assert planes.shape == (bits, m, k) and planes.dtype == np.uint8
    for i in range(bits):
        np.testing.assert_array_equal(planes[i], (codes.astype(np.int64) >> i) & 1)
    np.testing.assert_array_equal(recompose(planes, encoding), v)
    brute = np.array([[brute_value(u, bits, encoding) for u in row] for row in codes])
    np.testing.assert_array_equal(brute, v)


# --------------------------------------------------------------------- bit widths


@given(st.integers(1, 8), st.sampled_from([int, np.int8, np.uint8, np.int64]))
def test_check_bits_returns_every_width_as_int(bits, kind):
    out = check_bits(kind(bits), "bits_w")
    assert out == bits and type(out) is int


@pytest.mark.parametrize(
    ("bits", "error", "match"),
    [
        (True, TypeError, "bits_w must be an integer, got bool"),  # bool is not a width
        (np.True_, TypeError, "bits_w must be an integer, got bool"),
        (2.0, TypeError, "bits_w must be an integer, got float"),
        ("2", TypeError, "bits_w must be an integer, got str"),
        (0, ValueError, "bits_w must be >= 1, got 0"),
        (-3, ValueError, "bits_w must be >= 1, got -3"),
        (9, ValueError, r"bits_w must be in 1\.\.8, got 9"),
        (np.int64(256), ValueError, r"bits_w must be in 1\.\.8, got 256"),
    ],
)
def test_check_bits_refuses_what_is_not_a_width(bits, error, match):
    with pytest.raises(error, match=match):
        check_bits(bits, "bits_w")
    with pytest.raises(error, match=match.replace("bits_w", "bits")):
        check_bits(bits)  # the default name


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("bits", range(1, 9))
def test_every_code_round_trips(encoding, bits):
    codes = np.arange(2**bits, dtype=np.uint8)[None, :]
    values = decode(codes, bits, encoding)
    lo, hi = value_range(bits, encoding)
    assert values.min() == lo and values.max() == hi
    assert [brute_value(u, bits, encoding) for u in codes[0]] == values[0].tolist()
    np.testing.assert_array_equal(encode(values, bits, encoding), codes)
    if encoding == "bipolar":
        assert np.all(values % 2 == 1)
        np.testing.assert_array_equal(np.sort(values[0]), -np.sort(values[0])[::-1])


@given(widths, st.integers(1, 5), ks, seeds)
def test_pack_layout_padding_and_popcounts(bits, rows, k, seed):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 2**bits, size=(rows, k)).astype(np.uint8)
    p = pack(codes, bits)
    assert p.words.dtype == np.uint32 and p.words.shape == (bits, rows, -(-k // 32))
    assert p.k == k and p.bits == bits and p.rows == rows
    for i, r, c in itertools.product(range(bits), range(rows), range(k)):
        assert (int(p.words[i, r, c // 32]) >> (c % 32)) & 1 == (int(codes[r, c]) >> i) & 1
    if k % 32:  # padding bits are zero
        assert np.all(p.words[:, :, -1] >> np.uint32(k % 32) == 0)
    np.testing.assert_array_equal(unpack(p), decompose(codes, bits))
    np.testing.assert_array_equal(p.popcounts, decompose(codes, bits).sum(axis=2))


def bit_of(words, c):
    """Column ``c`` of every plane row, read from the words as the layout defines it."""
    return (words[:, :, c // 32] >> np.uint32(c % 32)) & np.uint32(1)


@given(widths, st.integers(1, 5), ks, seeds)
def test_every_consistent_record_is_accepted_and_is_what_pack_makes(bits, rows, k, seed):
    # any words with zero padding, with their popcounts counted bit by bit here
    rng = np.random.default_rng(seed)
    words = rng.integers(0, 2**32, size=(bits, rows, -(-k // 32)), dtype=np.uint32)
    if k % 32:
        words[:, :, -1] &= np.uint32((1 << (k % 32)) - 1)
    columns = np.stack([bit_of(words, c) for c in range(k)], axis=2).astype(np.int64)
    p = PackedPlanes(words, np.int64(k), columns.sum(axis=2))
    assert type(p.k) is int and p.k == k
    codes = sum(columns[i] << i for i in range(bits))
    q = pack(codes, bits)
    np.testing.assert_array_equal(q.words, p.words)
    np.testing.assert_array_equal(q.popcounts, p.popcounts)


P40 = pack(np.zeros((2, 40), dtype=np.int64), 1)  # 2 words per row, bits 8..31 of the second pad


def _pad_bit_set():
    words = P40.words.copy()
    words[0, 0, 1] |= np.uint32(1 << 31)
    return words, 40, P40.popcounts + np.array([[1, 0]])  # popcounts consistent: only the pad


class DeviceArray:
    """Shape and dtype without values, as a cupy array looks to the record's checks."""

    def __init__(self, shape, dtype):
        self.shape, self.dtype = shape, np.dtype(dtype)
        self.ndim = len(shape)


@pytest.mark.parametrize(
    ("fields", "error", "match"),
    [
        # the first six used to be accepted: packed_matmul then returned wrong numbers
        # (k=1000: 1000s for a zero product), or a raw broadcast error (k=70)
        ((P40.words, 1000, P40.popcounts), ValueError, r"ceil\(k / 32\) = 32 words .* got 2"),
        ((P40.words, 70, P40.popcounts), ValueError, r"= 3 words per row for k=70, got 2"),
        ((P40.words, 0, P40.popcounts), ValueError, "k must be >= 1, got 0"),
        ((P40.words, 40, P40.popcounts + 13), ValueError, "popcounts must equal"),
        (_pad_bit_set(), ValueError, "zero padding bits beyond column k=40"),
        (
            (np.zeros((9, 2, 2), np.uint32), 40, np.zeros((9, 2), np.int64)),
            ValueError,
            r"words must hold 1\.\.8 planes, got 9",
        ),
        ((P40.words, True, P40.popcounts), TypeError, "k must be an integer, got bool"),
        ((P40.words, 40.0, P40.popcounts), TypeError, "k must be an integer, got float"),
        ((P40.words.astype(np.int64), 40, P40.popcounts), TypeError, "words must have dtype"),
        ((P40.words, 40, P40.popcounts.astype(np.int32)), TypeError, "popcounts must have dtype"),
        ((P40.words.tolist(), 40, P40.popcounts), TypeError, "words must be an array, got list"),
        ((P40.words[0], 40, P40.popcounts), ValueError, "words must be a non-empty 3-D array"),
        ((P40.words[:, :0], 40, P40.popcounts[:, :0]), ValueError, "non-empty 3-D"),
        ((P40.words, 40, P40.popcounts[:, :1]), ValueError, r"popcounts must have shape"),
        (
            (DeviceArray((1, 2, 2), np.uint32), 40, P40.popcounts),
            TypeError,
            "must both be numpy arrays or both device arrays",
        ),
        (
            (DeviceArray((1, 2, 2), np.uint32), 40, DeviceArray((1, 3), np.int64)),
            ValueError,
            r"popcounts must have shape \(bits, rows\) = \(1, 2\)",
        ),
    ],
)
def test_inconsistent_packed_planes_are_refused(fields, error, match):
    with pytest.raises(error, match=match):
        PackedPlanes(*fields)


def test_device_records_are_checked_without_reading_their_values():
    # gpu.bitplane builds records of cupy arrays: reading them would synchronise
    p = PackedPlanes(DeviceArray((2, 3, 2), np.uint32), 40, DeviceArray((2, 3), np.int64))
    assert (p.bits, p.rows, p.k) == (2, 3, 40)
    with pytest.raises(TypeError, match="X must hold numpy arrays"):
        packed_matmul(p, P40)


# --------------------------------------------------------------------- exact products


@given(encodings, widths, widths, st.integers(1, 6), st.integers(1, 6), ks, seeds)
def test_both_identities_equal_int64_matmul(encoding, a, b, m, n, k, seed):
    rng = np.random.default_rng(seed)
    X = random_values(rng, (m, k), a, encoding)
    W = random_values(rng, (n, k), b, encoding)
    Xc, Wc = encode(X, a, encoding), encode(W, b, encoding)
    Xc_before, Wc_before = Xc.copy(), Wc.copy()
    ref = X.astype(np.int64) @ W.T.astype(np.int64)
    for identity in ("and", "xor"):
        out = bitplane_matmul(Xc, Wc, a, b, encoding=encoding, identity=identity)
        assert out.dtype == np.int64 and out.shape == (m, n)
        np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(Xc, Xc_before)
    np.testing.assert_array_equal(Wc, Wc_before)


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("k", [1, 33])
def test_exhaustive_width_pairs_match_brute_force(encoding, k):
    rng = np.random.default_rng(k)
    for a, b in itertools.product(range(1, 9), range(1, 9)):
        X = random_values(rng, (2, k), a, encoding)
        W = random_values(rng, (3, k), b, encoding)
        Xc, Wc = encode(X, a, encoding), encode(W, b, encoding)
        brute = brute_plane_product(Xc, Wc, a, b, encoding)
        np.testing.assert_array_equal(brute, X @ W.T)
        for identity in ("and", "xor"):
            out = bitplane_matmul(Xc, Wc, a, b, encoding=encoding, identity=identity)
            np.testing.assert_array_equal(out, brute.astype(np.int64), err_msg=f"W{b}A{a}")


@pytest.mark.parametrize("identity", ["and", "xor"])
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_extreme_values_long_k(encoding, identity):
    k = 1000
    lo, hi = value_range(8, encoding)
    for xv, wv in [(lo, lo), (lo, hi), (hi, hi)]:
        X, W = np.full((2, k), xv), np.full((3, k), wv)
        out = bitplane_matmul(
            encode(X, 8, encoding),
            encode(W, 8, encoding),
            8,
            8,
            identity=identity,
            encoding=encoding,
        )
        assert np.all(out == k * xv * wv)


@given(widths, widths, identities, seeds)
def test_packed_matmul_reuses_packed_operands(a, b, identity, seed):
    rng = np.random.default_rng(seed)
    X, W = random_values(rng, (4, 70), a, "bipolar"), random_values(rng, (5, 70), b, "bipolar")
    out = packed_matmul(pack(encode(X, a), a), pack(encode(W, b), b), identity=identity)
    np.testing.assert_array_equal(out, X @ W.T)


@given(
    st.sampled_from([1, 2, 3, 5, 7, 64]),
    encodings,
    widths,
    widths,
    st.integers(1, 5),
    st.integers(1, 5),
    ks,
    identities,
    seeds,
)
def test_any_block_size_gives_the_int64_matmul(chunk, encoding, a, b, m, n, k, identity, seed):
    # blocks of `chunk` words split rows of X, rows of W and, below a row's words, k
    rng = np.random.default_rng(seed)
    X = random_values(rng, (m, k), a, encoding)
    W = random_values(rng, (n, k), b, encoding)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(numlib.bitplane_pack, "_CHUNK_WORDS", chunk)
        out = bitplane_matmul(
            encode(X, a, encoding),
            encode(W, b, encoding),
            a,
            b,
            encoding=encoding,
            identity=identity,
        )
    np.testing.assert_array_equal(out, X.astype(np.int64) @ W.T.astype(np.int64))


def random_packed(rng, rows, k):
    """One random plane of ``rows x k`` bits (k a multiple of 32), packed."""
    words = rng.integers(0, 2**32, size=(1, rows, k // 32), dtype=np.uint32)
    return PackedPlanes(words, k, np.bitwise_count(words).sum(axis=2, dtype=np.int64))


def test_wide_operands_stay_within_the_documented_temporary_memory():
    # one row of X against all of W is 4096 x 1000 words, twice the 2**21-word block
    m, n, k = 2, 4096, 32000
    rng = np.random.default_rng(0)
    X, W = random_packed(rng, m, k), random_packed(rng, n, k)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        out = packed_matmul(X, W)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    blocks = 2**21 * (4 + 1)  # documented: 2**21 words and their uint8 popcounts
    recovery = 8 * (8 * m * n)  # the int64 output and a few m x n temporaries
    assert peak <= blocks + recovery, f"{peak / 2**20:.1f} MiB"
    # still exact, on both sides of a block edge (2097 rows of W per block)
    cols = [0, 2096, 2097, n - 1]
    Wc = PackedPlanes(W.words[:, cols], k, W.popcounts[:, cols])
    x, w = (2 * unpack(p)[0].astype(np.int64) - 1 for p in (X, Wc))
    np.testing.assert_array_equal(out[:, cols], x @ w.T)


# --------------------------------------------------------------------- quantisation


@st.composite
def float_matrices(draw):
    rng = np.random.default_rng(draw(seeds))
    m, k = draw(st.integers(1, 6)), draw(st.sampled_from([1, 4, 8, 12, 32, 40]))
    A = rng.standard_normal((m, k)) * 10.0 ** rng.uniform(-3, 3, size=(m, 1))
    if draw(st.booleans()):
        A[0] = 0.0  # an all-zero row
    return A


@given(float_matrices(), widths, st.sampled_from(["row", "column", "group"]))
def test_quantiser_error_at_most_half_a_level(A, bits, granularity):
    group_size = 4 if granularity == "group" and A.shape[1] % 4 == 0 else None
    if granularity == "group" and group_size is None:
        granularity = "row"
    A_before = A.copy()
    q = quantize(A, bits, granularity=granularity, group_size=group_size)
    np.testing.assert_array_equal(A, A_before)
    v = decode(q.codes, bits)
    top = 2**bits - 1
    assert np.all(v % 2 == 1) and np.abs(v).max() <= top
    s = q.expanded_scales()
    err = np.abs(A - dequantize(q))
    assert np.all(err <= s * (1 + 1e-12))  # levels are 2s apart
    # scales are absmax / top, computed independently here
    if granularity == "row":
        np.testing.assert_allclose(q.scales[:, 0], np.abs(A).max(axis=1) / top)
    elif granularity == "column":
        np.testing.assert_allclose(q.scales[0], np.abs(A).max(axis=0) / top)
    else:
        g = np.abs(A).reshape(A.shape[0], -1, group_size).max(axis=2)
        np.testing.assert_allclose(q.scales, g / top)
    # odd symmetry: quantising -A gives -v wherever A is nonzero
    v_neg = decode(quantize(-A, bits, granularity=granularity, group_size=group_size).codes, bits)
    np.testing.assert_array_equal(v_neg[A != 0], -v[A != 0])


def test_quantiser_rounds_to_nearest_odd_level():
    # scale 1 (max 7 at 3 bits): y in [2t, 2t + 2) -> 2t + 1, ties away from zero
    A = np.array([[7.0, 0.0, 0.4, 1.9, 2.0, 2.1, 3.9, 4.0, -2.0, -0.1, -7.0]])
    v = decode(quantize(A, 3).codes, 3)
    assert v.tolist() == [[7, 1, 1, 1, 3, 3, 3, 5, -3, -1, -7]]


SMALLEST = 5e-324  # the smallest subnormal float64
tiny_values = st.one_of(
    st.integers(-3000, 3000).map(lambda i: i * SMALLEST),  # multiples of it
    st.floats(-3e-310, 3e-310),  # subnormal, around 1e-310
    st.floats(-3e-306, 3e-306),  # up to normal values whose scales are subnormal
)


@st.composite
def tiny_matrices(draw):
    shape = (draw(st.integers(1, 4)), draw(st.sampled_from([1, 2, 4, 6])))
    return draw(arrays(np.float64, shape, elements=tiny_values))


@given(tiny_matrices())
@example(np.array([[SMALLEST]]))  # s used to be 0: 5e-324 / 255 rounds to 0
@example(np.array([[3 * SMALLEST, -SMALLEST]]))
def test_subnormal_magnitudes_keep_the_error_within_half_a_level(A):
    for bits, granularity in itertools.product(range(1, 9), ["row", "column", "group"]):
        group_size = 2 if granularity == "group" and A.shape[1] % 2 == 0 else None
        if granularity == "group" and group_size is None:
            continue
        q = quantize(A, bits, granularity=granularity, group_size=group_size)
        s = q.expanded_scales()
        err = np.abs(A - dequantize(q))
        assert np.all(err <= s), (bits, granularity, A[err > s], s[err > s])
        # s is max|A| / (2**bits - 1) rounded, or one float above it where a subnormal
        # quotient fell short; then s (2**bits - 1) covers the group's max|A|.
        top = 2**bits - 1
        amax = _group_amax(A, granularity, group_size)
        quotient = amax / top
        assert np.all((q.scales == quotient) | (q.scales == np.nextafter(quotient, np.inf)))
        subnormal = quotient < np.finfo(np.float64).tiny
        assert np.all(q.scales[subnormal] * top >= amax[subnormal])


def _group_amax(A, granularity, group_size):
    if granularity == "row":
        return np.abs(A).max(axis=1, keepdims=True)
    if granularity == "column":
        return np.abs(A).max(axis=0, keepdims=True)
    return np.abs(A).reshape(A.shape[0], -1, group_size).max(axis=2)


@given(float_matrices(), float_matrices(), widths, widths, st.booleans(), identities)
def test_scales_after_recovery_match_dequantised_matmul(A, B, a, b, grouped, identity):
    k = min(A.shape[1], B.shape[1])
    A, B = A[:, :k], B[:, :k]
    kw = {"granularity": "group", "group_size": 4} if grouped and k % 4 == 0 else {}
    qx, qw = quantize(A, a, **kw), quantize(B, b)
    out = quantized_matmul(qx, qw, identity=identity)
    ref = dequantize(qx) @ dequantize(qw).T
    bound = np.abs(dequantize(qx)) @ np.abs(dequantize(qw)).T
    assert np.all(np.abs(out - ref) <= 1e-13 * k * bound + 1e-300)


# --------------------------------------------------------------------- bad input


codes2 = np.zeros((2, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: encode(np.ones((2, 2), int), 0), ValueError, "bits must be >= 1"),
        (lambda: encode(np.ones((2, 2), int), 9), ValueError, r"bits must be in 1\.\.8"),
        (lambda: encode(np.ones((2, 2), int), 2.0), TypeError, "bits must be an integer"),
        (lambda: encode(np.ones((2, 2)), 2), TypeError, "values must have an integer dtype"),
        (lambda: encode(np.ones((2, 2), bool), 2), TypeError, "values must have an integer"),
        (lambda: encode([[1]], 2), TypeError, "values must be a numpy array"),
        (lambda: encode(np.ones(3, int), 2), ValueError, "values must be 2-D"),
        (lambda: encode(np.ones((0, 3), int), 2), ValueError, "values must not be empty"),
        (lambda: encode(np.array([[2]]), 2), ValueError, "values must all be odd"),
        (lambda: encode(np.array([[5]]), 2), ValueError, r"values must lie in \[-3, 3\]"),
        (lambda: encode(np.array([[-1]]), 2, "unsigned"), ValueError, "values must lie in"),
        (lambda: encode(np.array([[2]]), 2, "twos"), ValueError, r"values must lie in \[-2, 1\]"),
        (lambda: encode(np.array([[1]]), 2, "sign"), ValueError, "encoding must be one of"),
        (lambda: decode(np.array([[4]]), 2), ValueError, "codes must hold 2-bit codes"),
        (lambda: decompose(np.array([[-1]]), 2), ValueError, "codes must hold 2-bit codes"),
        (lambda: recompose(np.full((2, 1, 1), 2)), ValueError, "planes must hold only 0 and 1"),
        (lambda: recompose(np.zeros((9, 1, 1), int)), ValueError, r"planes.shape\[0\] must be"),
        (lambda: recompose(np.zeros((2, 2), int)), ValueError, "planes must be 3-D"),
        (lambda: bitplane_matmul(codes2, codes2, 0, 2), ValueError, "bits_x must be >= 1"),
        (lambda: bitplane_matmul(codes2, codes2, 2, 9), ValueError, "bits_w must be in 1..8"),
        (lambda: bitplane_matmul(codes2 * 1.0, codes2, 2, 2), TypeError, "X_codes must have an"),
        (lambda: bitplane_matmul(codes2, codes2 + 4, 2, 2), ValueError, "W_codes must hold"),
        (lambda: bitplane_matmul(codes2, codes2[:, :2], 2, 2), ValueError, "same number of col"),
        (lambda: bitplane_matmul(codes2, codes2, 2, 2, identity="or"), ValueError, "identity"),
        (lambda: packed_matmul(codes2, pack(codes2, 1)), TypeError, "X must be a PackedPlanes"),
        (lambda: packed_matmul(pack(codes2, 1), pack(codes2[:, :1], 1)), ValueError, "same k"),
        (lambda: packed_matmul(pack(codes2, 1), pack(codes2, 1), encoding="x"), ValueError, "enc"),
        (lambda: packed_matmul(pack(codes2, 1), pack(codes2, 1), identity="or"), ValueError, "ide"),
        (lambda: pack(np.full((1, 3), 2, np.uint8), 1), ValueError, "codes must hold 1-bit codes"),
        (lambda: pack(codes2, True), TypeError, "bits must be an integer, got bool"),
        (lambda: unpack(np.zeros((1, 1, 1))), TypeError, "packed must be a PackedPlanes"),
        (lambda: quantize(np.ones((2, 2), int), 2), TypeError, "A must have a real floating-p"),
        (lambda: quantize(np.ones((2, 2), complex), 2), TypeError, "A must have a real floating"),
        (lambda: quantize([[1.0]], 2), TypeError, "A must be a numpy array, got list"),
        (lambda: quantize(np.array([[np.nan]]), 2), ValueError, "A contains NaN or Inf"),
        (lambda: quantize(np.array([[np.inf]]), 2), ValueError, "A contains NaN or Inf"),
        (lambda: quantize(np.ones(3), 2), ValueError, r"A must be 2-D, got shape \(3,\)"),
        (lambda: quantize(np.ones((0, 2)), 2), ValueError, "A must not be empty"),
        (lambda: quantize(np.ones((2, 2)), 0), ValueError, "bits must be >= 1"),
        (lambda: quantize(np.ones((2, 2)), 2, granularity="x"), ValueError, "granularity must"),
        (lambda: quantize(np.ones((2, 6)), 2, granularity="group"), ValueError, "group_size is"),
        (
            lambda: quantize(np.ones((2, 6)), 2, granularity="group", group_size=4),
            ValueError,
            "group_size must divide",
        ),
        (lambda: quantize(np.ones((2, 6)), 2, group_size=3), ValueError, "group_size applies"),
        (
            lambda: quantized_matmul(
                quantize(np.ones((2, 4)), 2, granularity="column"), quantize(np.ones((2, 4)), 2)
            ),
            ValueError,
            "X has per-column scales",
        ),
        (
            lambda: quantized_matmul(quantize(np.ones((2, 4)), 2), quantize(np.ones((2, 3)), 2)),
            ValueError,
            "same k",
        ),
        (lambda: dequantize(np.ones((2, 2))), TypeError, "q must be a QuantizedMatrix"),
        (lambda: value_range(9), ValueError, r"bits must be in 1\.\.8"),
    ],
)
def test_bad_input_raises_naming_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_checks_run_before_work_and_leave_inputs_alone(monkeypatch):
    # every inner step fails if reached: a bad argument must be refused before any work
    def work(*args, **kwargs):
        raise AssertionError("work began before the arguments were checked")

    for step in ("_planes", "pack_planes", "popc_pairs", "_product", "_expand", "bitplane_matmul"):
        monkeypatch.setattr(numlib.bitplane, step, work)
    X = np.array([[5, 1]])
    A = np.array([[1.0, np.nan, 2.0, 3.0]])
    good = np.array([[1.0, 0.5, 2.0, 3.0]])
    per_column = QuantizedMatrix(codes2, np.ones((1, 3)), 2, "column")
    per_row = QuantizedMatrix(codes2, np.ones((2, 1)), 2, "row")
    P = pack_planes(np.zeros((1, 2, 3), np.uint8))
    calls = [
        (lambda: encode(X, 2), "values must lie in"),
        (lambda: decompose(X, 2), "codes must hold 2-bit codes"),
        (lambda: pack(X, 2), "codes must hold 2-bit codes"),
        (lambda: bitplane_matmul(codes2, X, 2, 2), "W_codes must hold"),
        (lambda: bitplane_matmul(codes2, codes2, 2, 2, identity="or"), "identity"),
        (lambda: bitplane_matmul(codes2, codes2, 2, 2, encoding="sign"), "encoding"),
        (lambda: bitplane_matmul(codes2, codes2[:, :2], 2, 2), "same number of columns"),
        (lambda: packed_matmul(P, P, identity="or"), "identity"),
        (lambda: packed_matmul(P, pack_planes(np.zeros((1, 2, 4), np.uint8))), "same k"),
        (lambda: quantize(A, 2), "A contains NaN"),
        (lambda: quantize(good, 9), "bits must be in"),
        (lambda: quantize(good, 2, granularity="group", group_size=3), "group_size must divide"),
        (lambda: quantized_matmul(per_column, per_row), "per-column scales"),
        (lambda: quantized_matmul(per_row, per_row, identity="or"), "identity"),
    ]
    inputs = [X, A, good, codes2, P.words, P.popcounts, per_row.scales]
    before = [a.copy() for a in inputs]
    for call, match in calls:
        with pytest.raises(ValueError, match=match):
            call()
    for a, b in zip(inputs, before, strict=True):
        np.testing.assert_array_equal(a, b)


def _qm(codes=None, scales=None, bits=2, granularity="row", group_size=None):
    codes = np.zeros((2, 4), np.uint8) if codes is None else codes
    scales = np.ones((2, 1)) if scales is None else scales
    return QuantizedMatrix(codes, scales, bits, granularity, group_size)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        # NaN scales used to dequantise to all-NaN; wrong shapes to a raw broadcast error
        ({"scales": np.full((2, 1), np.nan)}, ValueError, "scales contains NaN or Inf"),
        ({"scales": np.array([[1.0], [np.inf]])}, ValueError, "scales contains NaN or Inf"),
        ({"scales": np.ones((3, 1))}, ValueError, r"scales must have shape \(2, 1\)"),
        ({"scales": np.ones((2, 4))}, ValueError, r"scales must have shape \(2, 1\)"),
        ({"scales": np.ones((2, 1)), "granularity": "column"}, ValueError, r"shape \(1, 4\)"),
        (
            {"scales": np.ones((2, 4)), "granularity": "group", "group_size": 2},
            ValueError,
            r"scales must have shape \(2, 2\)",
        ),
        ({"scales": np.ones((2, 1), int)}, TypeError, "scales must have a real floating"),
        ({"scales": [[1.0], [1.0]]}, TypeError, "scales must be a numpy array"),
        ({"codes": np.full((2, 4), 4, np.uint8)}, ValueError, "codes must hold 2-bit codes"),
        ({"codes": np.zeros((2, 4))}, TypeError, "codes must have an integer dtype"),
        ({"codes": np.zeros(4, np.uint8)}, ValueError, "codes must be 2-D"),
        ({"bits": 9}, ValueError, r"bits must be in 1\.\.8"),
        ({"granularity": "tile"}, ValueError, "granularity must be"),
        ({"granularity": "group"}, ValueError, "group_size is required"),
        ({"granularity": "group", "group_size": 3}, ValueError, "group_size must divide"),
        ({"group_size": 2}, ValueError, "group_size applies only"),
    ],
)
def test_quantized_matrix_is_checked_on_construction(kwargs, error, match):
    with pytest.raises(error, match=match):
        _qm(**kwargs)


def test_valid_quantized_matrices_still_construct():
    for granularity, group_size in (("row", None), ("column", None), ("group", 2)):
        q = quantize(
            np.arange(8.0).reshape(2, 4) - 3.5, 3, granularity=granularity, group_size=group_size
        )
        again = QuantizedMatrix(q.codes, q.scales, q.bits, q.granularity, q.group_size)
        np.testing.assert_array_equal(dequantize(again), dequantize(q))
