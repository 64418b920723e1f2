"""Bit-plane products equal the int64 product exactly, for every pair of widths 1..8.

References are independent of numlib.bitplane: plain int64 numpy matmul, and
per-element formulas evaluated with Python integers (bits read with ``>>`` and
``& 1``, plane values and weights written out here).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numlib.bitplane import (
    ENCODINGS,
    PackedPlanes,
    QuantizedMatrix,
    bitplane_matmul,
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
        (lambda: quantize(np.ones((2, 2), int), 2), TypeError, "A must have a floating-point"),
        (lambda: quantize(np.array([[np.nan]]), 2), ValueError, "A contains NaN or Inf"),
        (lambda: quantize(np.array([[np.inf]]), 2), ValueError, "A contains NaN or Inf"),
        (lambda: quantize(np.ones(3), 2), ValueError, "A must be a non-empty 2-D array"),
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


def test_checks_run_before_work_and_leave_inputs_alone():
    X = np.array([[5, 1]])
    with pytest.raises(ValueError, match="values"):
        encode(X, 2)
    np.testing.assert_array_equal(X, [[5, 1]])
    A = np.array([[1.0, np.nan]])
    with pytest.raises(ValueError, match="A contains NaN"):
        quantize(A, 2)
    assert np.isnan(A[0, 1]) and A[0, 0] == 1.0
    assert isinstance(pack(codes2, 2), PackedPlanes)


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


def test_unchecked_pack_planes_is_not_exported():
    # pack_planes packs any nonzero value as a 1 bit: the checked entry point is pack()
    import numlib.bitplane
    import numlib.bitplane_pack

    assert "pack_planes" not in numlib.bitplane_pack.__all__
    assert "pack_planes" not in numlib.bitplane.__all__
    with pytest.raises(ValueError, match="codes must hold 1-bit codes"):
        pack(np.full((1, 3), 2, np.uint8), 1)
