"""BitplaneLinear against the numpy oracle numlib.bitplane."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from learned import bitplane_linear
from learned.bitplane_linear import (
    BitplaneLinear,
    integer_product,
    quantize_activations,
)
from numlib import bitplane

bits_st = st.integers(1, 8)
seed_st = st.integers(0, 2**32 - 1)


def _linear(k: int, n: int, *, bias: bool = True, seed: int = 0) -> torch.nn.Linear:
    torch.manual_seed(seed)
    return torch.nn.Linear(k, n, bias=bias)


def _reference(lin: torch.nn.Linear, x: torch.Tensor, wb: int, ab: int, gs: int | None):
    """Independent float64 reference: numlib's quantisers, dequantise, numpy matmul."""
    w = lin.weight.detach().double().numpy()
    if gs is None:
        qw = bitplane.quantize(w, wb)
    else:
        qw = bitplane.quantize(w, wb, granularity="group", group_size=gs)
    x2 = x.detach().reshape(-1, lin.in_features).double().numpy()
    qx = bitplane.quantize(x2, ab)
    y = bitplane.dequantize(qx) @ bitplane.dequantize(qw).T
    if lin.bias is not None:
        y = y + lin.bias.detach().double().numpy()
    return y.reshape(*x.shape[:-1], lin.out_features), qw


# --------------------------------------------------------------------------- integer kernel


@pytest.fixture(params=["int8", "float"])
def cpu_kernel(request, monkeypatch) -> str:
    """Run a test with the CPU's int8 GEMM path and with the float GEMM path.

    Which one a machine takes depends on its int8 GEMM speed; both must be exact.
    """
    monkeypatch.setattr(bitplane_linear, "cpu_int8_gemm_is_fast", lambda: request.param == "int8")
    return request.param


def _exact_ints(p: torch.Tensor) -> np.ndarray:
    """The product as a numpy array, after checking that it holds int64 integers."""
    assert p.dtype == torch.int64
    return p.numpy()


@pytest.mark.usefixtures("cpu_kernel")
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # one patch per test
@given(a=bits_st, b=bits_st, m=st.integers(1, 6), n=st.integers(1, 6), seed=seed_st)
def test_product_equals_numlib_packed_matmul(a: int, b: int, m: int, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 200))
    X = rng.integers(0, 1 << a, (m, k))
    W = rng.integers(0, 1 << b, (n, k))
    got = _exact_ints(integer_product(torch.from_numpy(X), a, torch.from_numpy(W), b, k)[..., 0])
    assert np.array_equal(got, bitplane.packed_matmul(bitplane.pack(X, a), bitplane.pack(W, b)))
    assert np.array_equal(got, bitplane.decode(X, a) @ bitplane.decode(W, b).T)


@pytest.mark.usefixtures("cpu_kernel")
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # one patch per test
@given(a=bits_st, b=bits_st, groups=st.integers(1, 4), gs=st.integers(1, 70), seed=seed_st)
def test_grouped_product_matches_per_group_oracle(
    a: int, b: int, groups: int, gs: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    k = groups * gs
    X = rng.integers(0, 1 << a, (3, k))
    W = rng.integers(0, 1 << b, (4, k))
    got = _exact_ints(integer_product(torch.from_numpy(X), a, torch.from_numpy(W), b, gs))
    for g in range(groups):
        cols = slice(g * gs, (g + 1) * gs)
        assert np.array_equal(got[..., g], bitplane.bitplane_matmul(X[:, cols], W[:, cols], a, b))


@pytest.mark.usefixtures("cpu_kernel")
@pytest.mark.parametrize("k", [4000, 32767, 32768])
def test_product_extreme_codes_at_the_kernels_bounds(k: int) -> None:
    # All-ones / all-zeros 8-bit codes: |X W^T| = 255^2 k > 2^24, so a float32 GEMM would
    # round. Up to 32767 columns the CPU runs int8 GEMMs whose int32 sums reach 2^31 - 2^16
    # at k = 32767 (stored values -128, scaled by 4 before the corrections); from 32768
    # columns it runs the float64 GEMM. Both must be exact.
    for cx, cw in ((255, 255), (0, 255), (0, 0), (255, 0)):
        X = np.full((2, k), cx)
        W = np.full((3, k), cw)
        got = _exact_ints(integer_product(torch.from_numpy(X), 8, torch.from_numpy(W), 8, k))
        want = bitplane.decode(X, 8) @ bitplane.decode(W, 8).T
        assert np.abs(want).max() > 1 << 24
        assert np.array_equal(got[..., 0], want)


@pytest.mark.parametrize(("a", "b", "chunk"), [(8, 8, 258), (4, 8, 4386), (1, 1, (1 << 24) - 1)])
def test_float32_chunks_are_the_longest_with_sums_below_2_24(a: int, b: int, chunk: int) -> None:
    # |partial sum| <= chunk (2^a - 1)(2^b - 1) < 2^24 <= (chunk + 1)(2^a - 1)(2^b - 1)
    per_column = ((1 << a) - 1) * ((1 << b) - 1)
    assert chunk * per_column < 1 << 24 <= (chunk + 1) * per_column
    x = bitplane_linear.IntegerOperand.from_codes(torch.zeros((1, 1), dtype=torch.int64), a)
    w = bitplane_linear.IntegerOperand.from_codes(torch.zeros((1, 1), dtype=torch.int64), b)
    assert bitplane_linear._float_gemm_plan(x, w, 1 << 25) == (torch.float32, chunk)
    assert bitplane_linear._float_gemm_plan(x, w, 100) == (torch.float32, min(100, chunk))


def test_float32_is_not_used_below_highest_matmul_precision() -> None:
    # TF32 / bf16 GEMMs may stand in for float32 ones there, and they round integers.
    codes = torch.zeros((1, 1), dtype=torch.int64)
    x = bitplane_linear.IntegerOperand.from_codes(codes, 2)
    previous = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("high")
        assert bitplane_linear._float_gemm_plan(x, x, 64) == (torch.float64, 64)
    finally:
        torch.set_float32_matmul_precision(previous)


@pytest.mark.parametrize("k", [258, 259, 517, 1536, 33025, 33026])
def test_chunked_float32_product_is_exact_at_extreme_codes(k: int, monkeypatch) -> None:
    # 8 x 8 bits: chunks of 258 columns (2 x 192 for 384, 6 x 256 for 1536); the sums
    # of the chunks exceed 2^24 and are carried in int32 up to 33025 columns (255^2 k
    # < 2^31), in float64 from 33026.
    monkeypatch.setattr(bitplane_linear, "cpu_int8_gemm_is_fast", lambda: False)
    for cx, cw in ((255, 255), (0, 255), (0, 0)):
        X = torch.full((2, k), cx)
        W = torch.full((3, k), cw)
        got = integer_product(X, 8, W, 8, k)[..., 0].numpy()
        want = bitplane.decode(X.numpy(), 8) @ bitplane.decode(W.numpy(), 8).T
        assert np.array_equal(got, want)


@given(a=bits_st, b=bits_st, seed=seed_st)
@settings(max_examples=10, deadline=None)
def test_float64_product_of_wide_groups_is_exact(a: int, b: int, seed: int) -> None:
    # Groups beyond the int32 kernel's reach take the float64 GEMM (as CUDA without cupy).
    rng = np.random.default_rng(seed)
    k = 40_000
    X = rng.integers(0, 1 << a, (2, k))
    W = rng.integers(0, 1 << b, (3, k))
    got = _exact_ints(integer_product(torch.from_numpy(X), a, torch.from_numpy(W), b, k))
    assert np.array_equal(got[..., 0], bitplane.decode(X, a) @ bitplane.decode(W, b).T)


def test_float_path_refuses_groups_beyond_float64() -> None:
    # Unreachable through integer_product (k would be 1.4e11 columns); the guard stays.
    x = bitplane_linear.IntegerOperand.from_codes(torch.zeros((1, 1), dtype=torch.int64), 8)
    with pytest.raises(ValueError, match="2\\*\\*53"):
        next(bitplane_linear.group_products(x, x, (1 << 53) // 255**2 + 1))


# --------------------------------------------------------------------------- activation quantiser


@given(
    bits=bits_st, m=st.integers(1, 5), k=st.integers(1, 40), seed=seed_st, mode=st.integers(0, 3)
)
def test_activation_quantiser_bit_identical_to_numlib(
    bits: int, m: int, k: int, seed: int, mode: int
) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, k)).astype(np.float32)
    if mode == 1:  # integers hit the ties (even y) of the odd rounding rule
        x = rng.integers(-8, 9, (m, k)).astype(np.float32)
    elif mode == 2:  # an all-zero row
        x[0] = 0.0
    elif mode == 3:
        x = (x * 1e-30).astype(np.float32)
    codes, scales = quantize_activations(torch.from_numpy(x), bits)
    q = bitplane.quantize(x.astype(np.float64), bits)
    assert np.array_equal(codes.numpy(), q.codes.astype(np.int64))
    assert np.array_equal(scales.numpy(), q.scales)  # bit for bit, not approximately


# --------------------------------------------------------------------------- the layer


@pytest.mark.parametrize(
    ("wb", "ab", "gs", "bias"),
    [
        (4, 4, None, True),
        (3, 5, 25, True),
        (1, 1, None, False),
        (8, 2, 50, False),
        (2, 8, 1, True),
        (8, 8, None, True),
        (8, 8, 20, False),
        (7, 8, 10, True),
    ],
)
def test_layer_equals_float64_reference(wb: int, ab: int, gs: int | None, bias: bool) -> None:
    k, n = 100, 7  # k not a multiple of 32
    lin = _linear(k, n, bias=bias, seed=wb * 10 + ab)
    layer = BitplaneLinear.from_linear(lin, weight_bits=wb, activation_bits=ab, group_size=gs)
    x = torch.randn(4, 3, k)
    ref, qw = _reference(lin, x, wb, ab, gs)
    with torch.no_grad():
        y = layer(x)
    assert y.dtype == torch.float32 and y.shape == (4, 3, n)
    np.testing.assert_allclose(y.numpy(), ref, rtol=2e-6, atol=2e-6 * np.abs(ref).max())
    # Stored codes are numlib's, and the words are numlib's packed layout.
    assert np.array_equal(layer.weight_codes().numpy(), qw.codes)
    np.testing.assert_array_equal(layer.weight_scales.numpy(), qw.scales)
    if gs is None:
        words = layer.weight_words[:, :, 0].numpy().view(np.uint32)
        assert np.array_equal(words, bitplane.pack(qw.codes, wb).words)
    np.testing.assert_allclose(layer.dequantized_weight().numpy(), bitplane.dequantize(qw))


def test_cached_weight_operand_follows_the_buffers() -> None:
    # The int8 weights are unpacked once and cached; a load into the buffers must show.
    layer, other = (
        BitplaneLinear.from_linear(_linear(40, 6, seed=s), weight_bits=8, activation_bits=8)
        for s in (0, 1)
    )
    x = torch.randn(5, 40)
    with torch.no_grad():
        before, want = layer(x), other(x)
        layer.load_state_dict(other.state_dict())
        assert not torch.equal(before, want)
        assert torch.equal(layer(x), want)


def test_float64_input_matches_quantized_matmul() -> None:
    lin = _linear(70, 9, seed=3).double()
    layer = BitplaneLinear.from_linear(lin, weight_bits=5, activation_bits=6, group_size=35)
    x = torch.randn(6, 70, dtype=torch.float64)
    qx = bitplane.quantize(x.numpy(), 6)
    qw = bitplane.quantize(lin.weight.detach().numpy(), 5, granularity="group", group_size=35)
    ref = bitplane.quantized_matmul(qx, qw) + lin.bias.detach().numpy()
    with torch.no_grad():
        y = layer(x)
    assert y.dtype == torch.float64 and layer.bias is not None and layer.bias.dtype == torch.float64
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-12, atol=1e-12)


def test_eight_bit_close_to_linear_and_one_bit_runs() -> None:
    lin = _linear(512, 256, seed=1)
    x = torch.randn(32, 512)
    with torch.no_grad():
        y0 = lin(x)
        y8 = BitplaneLinear.from_linear(lin, weight_bits=8, activation_bits=8)(x)
        rel = float((y8 - y0).norm() / y0.norm())
        assert rel < 2e-2
        y8g = BitplaneLinear.from_linear(lin, weight_bits=8, activation_bits=8, group_size=64)(x)
        assert float((y8g - y0).norm() / y0.norm()) < 2e-2
        layer1 = BitplaneLinear.from_linear(lin, weight_bits=1, activation_bits=1)
        y1 = layer1(x)
    ref, _ = _reference(lin, x, 1, 1, None)
    assert torch.isfinite(y1).all()
    np.testing.assert_allclose(y1.numpy(), ref, rtol=2e-6, atol=2e-6 * np.abs(ref).max())


@pytest.mark.parametrize("shape", [(37,), (2, 3, 4, 37), (0, 37), (5, 0, 37)])
def test_batch_shapes(shape: tuple[int, ...]) -> None:
    lin = _linear(37, 6)
    layer = BitplaneLinear.from_linear(lin, weight_bits=3, activation_bits=4)
    x = torch.randn(shape)
    with torch.no_grad():
        y = layer(x)
        flat = layer(x.reshape(-1, 37))
    assert y.shape == (*shape[:-1], 6)
    assert torch.equal(y.reshape(-1, 6), flat)
    if x.numel():
        reference, _ = _reference(lin, x, 3, 4, None)
        assert np.allclose(y.double().numpy(), reference, rtol=1e-6, atol=1e-6)


def test_zero_input_gives_bias() -> None:
    lin = _linear(40, 5)
    layer = BitplaneLinear.from_linear(lin, weight_bits=2, activation_bits=2)
    with torch.no_grad():
        y = layer(torch.zeros(3, 40))
    assert torch.equal(y, lin.bias.detach().expand(3, 5))


def test_original_linear_not_modified() -> None:
    for dtype in (torch.float32, torch.float64):
        lin = _linear(64, 8).to(dtype)
        w0, b0 = lin.weight.detach().clone(), lin.bias.detach().clone()
        BitplaneLinear.from_linear(lin, weight_bits=4, activation_bits=4, group_size=16)
        assert torch.equal(lin.weight, w0) and torch.equal(lin.bias, b0)
        assert lin.weight.dtype == dtype and lin.weight.grad is None


@settings(max_examples=15)
@given(wb=bits_st, gs=st.sampled_from([None, 1, 25, 50]), bias=st.booleans(), seed=seed_st)
def test_weight_only_layer_multiplies_by_the_dequantised_weight(
    wb: int, gs: int | None, bias: bool, seed: int
) -> None:
    # y = x (s_w W_int)^T + b with x unquantised; the weight is numlib's RTN grid.
    lin = _linear(100, 7, bias=bias, seed=seed % 1000)
    layer = BitplaneLinear.from_linear(lin, weight_bits=wb, activation_bits=None, group_size=gs)
    w = lin.weight.detach().double().numpy()
    if gs is None:
        qw = bitplane.quantize(w, wb, granularity="row")
    else:
        qw = bitplane.quantize(w, wb, granularity="group", group_size=gs)
    x = torch.randn(3, 5, 100, generator=torch.Generator().manual_seed(seed))
    ref = x.double().numpy() @ bitplane.dequantize(qw).T
    if bias:
        ref = ref + lin.bias.detach().double().numpy()
    with torch.no_grad():
        y = layer(x)
    assert y.dtype == torch.float32 and y.shape == (3, 5, 7)
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    np.testing.assert_allclose(layer.dequantized_weight().numpy(), bitplane.dequantize(qw))
    narrow = layer.dequantized_weight(torch.float32)
    assert narrow.dtype == torch.float32
    assert torch.allclose(narrow.double(), layer.dequantized_weight(), rtol=2e-7, atol=0)


@pytest.mark.parametrize(("gs", "bias", "ab"), [(None, True, 5), (20, False, 5), (20, True, None)])
def test_state_dict_and_safetensors_round_trip(
    tmp_path, gs: int | None, bias: bool, ab: int | None
) -> None:
    lin = _linear(60, 11, bias=bias, seed=7)
    layer = BitplaneLinear.from_linear(lin, weight_bits=3, activation_bits=ab, group_size=gs)
    x = torch.randn(2, 4, 60)
    with torch.no_grad():
        y = layer(x)
        # state_dict into a fresh, zero-initialised module of the same configuration
        fresh = BitplaneLinear(60, 11, weight_bits=3, activation_bits=ab, group_size=gs, bias=bias)
        fresh.load_state_dict(layer.state_dict())
        assert torch.equal(fresh(x), y)
        path = tmp_path / "layer.safetensors"
        layer.save_safetensors(path)
        loaded = BitplaneLinear.load_safetensors(path)
        assert torch.equal(loaded(x), y)
    assert repr(loaded) == repr(layer)
    assert f"weight_bits=3, activation_bits={ab}, group_size={gs}, bias={bias}" in repr(layer)
    for name, t in layer.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], t)
        assert loaded.state_dict()[name].dtype == t.dtype
    assert list(layer.parameters()) == []
    assert path.read_bytes()[8:10] == b'{"'  # safetensors: u64 header size, JSON header


def test_to_dtype_casts_the_bias_and_keeps_the_scales_float64() -> None:
    # A float16 scale would be subnormal at 1e-8 and lose every digit below 1e-7.
    lin = _linear(64, 4)
    with torch.no_grad():
        lin.weight.mul_(1e-6)
    layer = BitplaneLinear.from_linear(lin, weight_bits=4, activation_bits=4)
    scales = layer.weight_scales.clone()
    for cast, dtype in (
        (BitplaneLinear.half, torch.float16),
        (BitplaneLinear.double, torch.float64),
    ):
        cast(layer)
        assert layer.weight_scales.dtype == torch.float64
        assert torch.equal(layer.weight_scales, scales)
        assert layer.bias.dtype == dtype
    x = torch.randn(3, 64, dtype=torch.float64)
    with torch.no_grad():
        y = layer(x)
    reference, _ = _reference(lin, x, 4, 4, None)
    # the bias itself went through float16
    reference += (layer.bias - lin.bias.detach().double()).numpy()
    assert np.allclose(y.numpy(), reference, rtol=1e-12, atol=1e-12)


def _checkpoint(tmp_path, *, tensors=None, drop=(), **metadata):
    """Write a layer's checkpoint with tensors and metadata fields replaced or dropped."""
    from safetensors.torch import save_file

    layer = BitplaneLinear.from_linear(_linear(16, 3), weight_bits=4, activation_bits=8)
    good = tmp_path / "good.safetensors"
    layer.save_safetensors(good)
    from safetensors import safe_open

    with safe_open(str(good), framework="pt") as f:
        meta = dict(f.metadata())
        stored = {k: f.get_tensor(k) for k in f.keys()}
    stored.update(tensors or {})
    meta.update(metadata)
    for key in drop:
        meta.pop(key)
    path = tmp_path / "bad.safetensors"
    save_file(stored, str(path), metadata=meta)
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"drop": ("in_features",)}, "lacks the field 'in_features'"),
        ({"drop": ("activation_bits",)}, "lacks the field 'activation_bits'"),
        ({"drop": ("bias",)}, "'bias' must be '0' or '1'"),
        ({"weight_bits": "four"}, "'weight_bits' is not an int"),
        ({"out_features": ""}, "lacks the field 'out_features'"),
        ({"tensors": {"weight_words": torch.zeros(4, 3, 1, 1)}}, "'weight_words' is torch.float32"),
        (
            {"tensors": {"weight_scales": torch.ones(3, 1, dtype=torch.int64)}},
            "'weight_scales' is torch.int64",
        ),
        (
            {"tensors": {"weight_scales": torch.full((3, 1), float("nan"), dtype=torch.float64)}},
            "finite and non-negative",
        ),
        (
            {"tensors": {"weight_scales": -torch.ones(3, 1, dtype=torch.float64)}},
            "finite and non-negative",
        ),
        ({"tensors": {"bias": torch.ones(3, dtype=torch.int64)}}, "'bias' is torch.int64"),
        ({"tensors": {"bias": torch.full((3,), float("inf"))}}, "bias"),
    ],
)
def test_load_refuses_malformed_checkpoints(tmp_path, change, message) -> None:
    path = _checkpoint(tmp_path, **change)
    with pytest.raises(ValueError, match=message):
        BitplaneLinear.load_safetensors(path)


def test_load_refuses_unreadable_files(tmp_path) -> None:
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        BitplaneLinear.load_safetensors(garbage)
    with pytest.raises(OSError):
        BitplaneLinear.load_safetensors(tmp_path / "missing.safetensors")


def test_load_rejects_foreign_file(tmp_path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(2, 2)}, str(path))
    with pytest.raises(ValueError, match="BitplaneLinear checkpoint"):
        BitplaneLinear.load_safetensors(path)


# --------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("name", ["weight_bits", "activation_bits"])
@pytest.mark.parametrize(("value", "exc"), [(0, ValueError), (9, ValueError), (True, TypeError)])
def test_bad_bits(name: str, value: object, exc: type[Exception]) -> None:
    kwargs = {"weight_bits": 4, "activation_bits": 4, name: value}
    with pytest.raises(exc, match=name):
        BitplaneLinear.from_linear(_linear(8, 2), **kwargs)
    with pytest.raises(exc, match=name):
        BitplaneLinear(8, 2, **kwargs)


@pytest.mark.parametrize("dtype", [torch.complex64, torch.int64, torch.bool])
def test_bias_dtype_must_be_real_floating(dtype) -> None:
    with pytest.raises(TypeError, match="real floating dtype"):
        BitplaneLinear(8, 2, weight_bits=2, activation_bits=2, dtype=dtype)


def test_non_finite_bias_is_refused() -> None:
    lin = _linear(8, 2)
    with torch.no_grad():
        lin.bias[1] = float("nan")
    with pytest.raises(ValueError, match=r"linear\.bias"):
        BitplaneLinear.from_linear(lin, weight_bits=4, activation_bits=4)


def _codes(shape, bits=8, dtype=torch.int64):
    return torch.zeros(shape, dtype=dtype) + (1 << bits) - 1


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        (
            (_codes((1, 4)) + 45, 8, _codes((2, 4)), 8, 2),
            ValueError,
            r"codes_x must lie in \[0, 2\*\*8\)",
        ),
        ((_codes((1, 4)), 8, -_codes((2, 4)), 8, 2), ValueError, "codes_w must lie"),
        ((_codes((1, 4)), 9, _codes((2, 4)), 8, 2), ValueError, "bits_x must be in 1..8"),
        ((_codes((1, 4)), 8, _codes((2, 4)), True, 2), TypeError, "bits_w"),
        (
            (_codes((1, 4)).double(), 8, _codes((2, 4)), 8, 2),
            TypeError,
            "codes_x must be an integer",
        ),
        ((_codes((1, 4)).bool(), 1, _codes((2, 4)), 8, 2), TypeError, "codes_x must be an integer"),
        ((_codes((1, 4)), 8, _codes((2, 6)), 8, 2), ValueError, "same columns"),
        ((_codes((1, 5)), 8, _codes((2, 5)), 8, 2), ValueError, "group_size must divide k=5"),
        ((_codes((1, 4)), 8, _codes((2, 4)), 8, 0), ValueError, "group_size must be >= 1"),
        ((_codes((4,)), 8, _codes((2, 4)), 8, 2), ValueError, "codes_x must be 2-D"),
        ((_codes((0, 4)), 8, _codes((2, 4)), 8, 2), ValueError, "not empty"),
    ],
)
def test_integer_product_refuses_bad_codes_before_any_product(
    arguments, error, message, monkeypatch
):
    def no_product(*args, **kwargs):
        raise AssertionError("a product ran before the arguments were checked")

    monkeypatch.setattr(bitplane_linear, "group_products", no_product)
    with pytest.raises(error, match=message):
        integer_product(*arguments)


def test_bad_construction_arguments() -> None:
    with pytest.raises(ValueError, match="group_size"):
        BitplaneLinear.from_linear(_linear(10, 2), weight_bits=2, activation_bits=2, group_size=3)
    with pytest.raises(ValueError, match="group_size"):
        BitplaneLinear(10, 2, weight_bits=2, activation_bits=2, group_size=0)
    with pytest.raises(TypeError, match="bits"):
        BitplaneLinear(10, 2, weight_bits=2.0, activation_bits=2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="in_features"):
        BitplaneLinear(0, 2, weight_bits=2, activation_bits=2)
    with pytest.raises(TypeError, match="linear"):
        BitplaneLinear.from_linear(torch.nn.Conv1d(2, 2, 1), weight_bits=2, activation_bits=2)  # type: ignore[arg-type]
    lin = _linear(4, 2)
    with torch.no_grad():
        lin.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="weight"):
        BitplaneLinear.from_linear(lin, weight_bits=2, activation_bits=2)


def test_bad_forward_inputs() -> None:
    layer = BitplaneLinear.from_linear(_linear(8, 3), weight_bits=2, activation_bits=2)
    with torch.no_grad():
        with pytest.raises(ValueError, match="in_features=8"):
            layer(torch.randn(4, 9))
        with pytest.raises(ValueError, match="in_features=8"):
            layer(torch.tensor(1.0))
        with pytest.raises(TypeError, match="x must be a floating-point"):
            layer(torch.ones(4, 8, dtype=torch.int64))
        with pytest.raises(TypeError, match="x must be a floating-point"):
            layer(np.ones((4, 8), dtype=np.float32))  # type: ignore[arg-type]
        bad = torch.randn(4, 8)
        bad[1, 2] = float("inf")
        with pytest.raises(ValueError, match="x must be finite"):
            layer(bad)


def test_inference_only() -> None:
    layer = BitplaneLinear.from_linear(_linear(8, 3), weight_bits=2, activation_bits=2)
    x = torch.randn(4, 8, requires_grad=True)
    with pytest.raises(RuntimeError, match="inference-only"):
        layer(x)
    with torch.no_grad():
        y = layer(x)
    with torch.inference_mode():
        assert torch.equal(layer(x), y)
    assert not y.requires_grad
    assert torch.equal(layer(x.detach()), y)  # grad enabled but nothing to differentiate


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_quantize_activations_rejects_non_finite_input(bad: float) -> None:
    x = torch.randn(2, 8)
    x[0, 1] = bad
    with pytest.raises(ValueError, match="finite"):
        quantize_activations(x, 4)


@given(bits=bits_st, seed=seed_st, magnitude=st.sampled_from([5e-324, 1e-310, 3e-306]))
def test_activation_quantiser_matches_numlib_on_subnormal_scales(
    bits: int, seed: int, magnitude: float
) -> None:
    # max|x| / (2^bits - 1) is subnormal (or near it): both round the scale up where it
    # fell short, so the codes agree; numlib's tests hold the error bound itself.
    rng = np.random.default_rng(seed)
    x = rng.integers(-300, 301, (3, 7)) * magnitude
    codes, scales = quantize_activations(torch.from_numpy(x), bits)
    q = bitplane.quantize(x, bits)
    assert np.array_equal(codes.numpy(), q.codes.astype(np.int64))
    assert np.array_equal(scales.numpy(), q.scales)


@pytest.mark.parametrize("shape", [(0, 8), (2, 0), (8,)])
def test_quantize_activations_refuses_what_numlib_refuses(shape) -> None:
    # numlib.bitplane.quantize has nothing to scale in an empty matrix either.
    with pytest.raises(ValueError, match="not empty"):
        quantize_activations(torch.zeros(shape), 4)
    with pytest.raises(ValueError):
        bitplane.quantize(np.zeros(shape), 4)
