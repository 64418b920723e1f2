"""Tests of learned.layers against torch's own attention and a naive einsum reference."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from learned.layers import SoftmaxAttention, TensorAttention

pytestmark = pytest.mark.usefixtures("one_torch_thread")


FEW = settings(max_examples=10, deadline=None)


def _heads(layer, x, stream):
    y = layer.proj[stream](x).reshape(*x.shape[:-1], layer.heads, layer.head_dim)
    return y.transpose(-2, -3)


def tensor_layer_reference(layer: TensorAttention, x: torch.Tensor, causal: bool) -> torch.Tensor:
    q = _heads(layer, x, "q") / layer.head_dim**0.5
    k1, k2, v1, v2 = (_heads(layer, x, s) for s in ("k1", "k2", "v1", "v2"))
    logits = torch.einsum("...it,...jt,...lt->...ijl", q, k1, k2)
    if causal:
        n = x.shape[-2]
        i = torch.arange(n)
        tri = i[None, :] <= i[:, None]
        logits = logits.masked_fill(~(tri[:, :, None] & tri[:, None, :]), float("-inf"))
    w = torch.softmax(logits.flatten(-2), dim=-1).reshape(logits.shape)
    y = torch.einsum("...ijl,...jc,...lc->...ic", w, v1, v2).transpose(-2, -3)
    return layer.out(y.reshape(*y.shape[:-2], layer.heads * layer.head_dim))


@FEW
@given(
    st.integers(1, 3),
    st.integers(1, 6),
    st.sampled_from([(8, 2), (6, 1), (12, 3)]),
    st.booleans(),
    st.integers(0, 1000),
)
def test_tensor_attention_matches_einsum(batch, n, dims, causal, seed) -> None:
    torch.manual_seed(seed)
    dim, heads = dims
    layer = TensorAttention(dim, heads, causal=causal).double()
    x = torch.randn(batch, n, dim, dtype=torch.float64)
    torch.testing.assert_close(layer(x), tensor_layer_reference(layer, x, causal))


@FEW
@given(st.integers(1, 3), st.integers(1, 7), st.booleans(), st.integers(0, 1000))
def test_softmax_attention_matches_torch(batch, n, causal, seed) -> None:
    torch.manual_seed(seed)
    layer = SoftmaxAttention(8, 2, causal=causal).double()
    x = torch.randn(batch, n, 8, dtype=torch.float64)
    q, k, v = (_heads(layer, x, s) for s in ("q", "k", "v"))
    y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
    ref = layer.out(y.transpose(-2, -3).reshape(batch, n, 8))
    torch.testing.assert_close(layer(x), ref)


@pytest.mark.parametrize("layer_type", [TensorAttention, SoftmaxAttention])
@pytest.mark.parametrize("causal", [False, True])
def test_fast_mode_matches_exact_and_backpropagates(layer_type, causal) -> None:
    torch.manual_seed(0)
    exact = layer_type(8, 2, causal=causal).double()
    fast = layer_type(8, 2, mode="fast", tol=1e-9, basis="taylor", causal=causal).double()
    fast.load_state_dict(exact.state_dict())
    x = (0.2 * torch.randn(2, 7, 8, dtype=torch.float64)).requires_grad_()
    y_exact, y_fast = exact(x), fast(x)
    torch.testing.assert_close(y_fast, y_exact, atol=1e-8, rtol=0)
    (g_exact,) = torch.autograd.grad(y_exact.square().sum(), x)
    (g_fast,) = torch.autograd.grad(y_fast.square().sum(), x)
    torch.testing.assert_close(g_fast, g_exact, atol=1e-6, rtol=1e-6)
    loss = fast(x).sum()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in fast.parameters())


def test_fast_mode_falls_back_or_refuses_large_logits() -> None:
    torch.manual_seed(0)
    x = 50 * torch.randn(1, 5, 8, dtype=torch.float64)
    exact = TensorAttention(8, 2).double()
    fast = TensorAttention(8, 2, mode="fast", tol=1e-6).double()
    fast.load_state_dict(exact.state_dict())
    torch.testing.assert_close(fast(x), exact(x))
    strict = TensorAttention(8, 2, mode="fast", tol=1e-6, fallback=False).double()
    strict.load_state_dict(exact.state_dict())
    with pytest.raises(ValueError, match="unreachable at logit bound"):
        strict(x)


def test_bad_configuration() -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        TensorAttention(8, mode="approx")
    with pytest.raises(ValueError, match="not divisible"):
        TensorAttention(10, heads=3)
    with pytest.raises(ValueError, match="must be >= 1"):
        SoftmaxAttention(0)
    assert TensorAttention(10, heads=3, head_dim=4)(torch.randn(2, 4, 10)).shape == (2, 4, 10)


@pytest.mark.parametrize("layer", [TensorAttention, SoftmaxAttention])
def test_sizes_and_switches_are_checked(layer) -> None:
    with pytest.raises(ValueError, match="head_dim must be >= 1"):
        layer(8, heads=2, head_dim=0)
    with pytest.raises(ValueError, match="head_dim must be >= 1"):
        layer(8, heads=2, head_dim=-1)
    with pytest.raises(TypeError, match="dim must be an int"):
        layer(8.0, heads=2)
    with pytest.raises(TypeError, match="heads must be an int"):
        layer(8, heads=True)
    with pytest.raises(TypeError, match="causal must be a bool"):
        layer(8, causal="yes")
    with pytest.raises(ValueError, match="degree must be >= 1"):
        layer(8, mode="fast", degree=0)


@pytest.mark.parametrize("layer", [TensorAttention, SoftmaxAttention])
def test_inputs_of_the_wrong_width_or_rank_are_refused(layer) -> None:
    module = layer(8, heads=2)
    for x in (torch.randn(3, 5, 7), torch.randn(8)):
        with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., n, 8\)"):
            module(x)
    with pytest.raises(TypeError, match=r"x must be a torch\.Tensor"):
        module([[0.0] * 8])
