"""Tests of numlib.attention against naive einsum references.

References build the full attention matrix (``n x n`` or ``n x n x n``) with einsum
and normalise it after subtracting the row maximum; the library never forms it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from numlib.attention import (
    exp_polynomial,
    fast_softmax_attention,
    fast_tensor_attention,
    feature_size,
    logit_bound,
    output_error_bound,
    plan_attention,
    softmax_attention,
    tensor_attention,
    weight_error_bound,
)
from numlib.attention.polynomial import feature_scales, monomial_features

pytestmark = pytest.mark.usefixtures("one_torch_thread")


FEW = settings(max_examples=15, deadline=None)


def _normalised(logits: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    w = np.exp(logits - logits.max(axis=axes, keepdims=True))
    return w / w.sum(axis=axes, keepdims=True)


def tensor_reference(Q, K1, K2, V1, V2, allowed=None):
    logits = np.einsum("...it,...jt,...lt->...ijl", Q, K1, K2)
    if allowed is not None:
        logits = np.where(allowed, logits, -np.inf)
    W = _normalised(logits, (-2, -1))
    return np.einsum("...ijl,...jc,...lc->...ic", W, V1, V2)


def softmax_reference(Q, K, V, allowed=None):
    logits = np.einsum("...it,...jt->...ij", Q, K)
    if allowed is not None:
        logits = np.where(allowed, logits, -np.inf)
    return _normalised(logits, (-1,)) @ V


def _arrays(seed: int, shapes, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    return [scale * rng.standard_normal(s) for s in shapes]


def _bounded(seed: int, nq: int, nk: int, d: int, dv: int, bound: float, factors: int):
    """Queries, ``factors`` key sets and values with logit bound exactly ``bound``."""
    rng = np.random.default_rng(seed)
    Q = rng.uniform(-1, 1, (nq, d))
    keys = [rng.uniform(-1, 1, (nk, d)) for _ in range(factors)]
    Q *= bound / logit_bound(Q, *keys)
    values = [rng.standard_normal((nk, dv)) for _ in range(factors)]
    return Q, keys, values


def _value_scale(values) -> float:
    return math.prod(float(np.abs(v).max()) for v in values)


shapes = st.tuples(
    st.integers(1, 7), st.integers(1, 7), st.integers(1, 7), st.integers(1, 4), st.integers(1, 3)
)


@FEW
@given(shapes, st.integers(0, 2**31), st.sampled_from([None, 1, 7, 50]), st.floats(0.1, 3.0))
def test_exact_tensor_matches_einsum(shape, seed, block, scale) -> None:
    nq, n1, n2, d, dv = shape
    Q, K1, K2, V1, V2 = _arrays(seed, [(nq, d), (n1, d), (n2, d), (n1, dv), (n2, dv)], scale)
    copies = [a.copy() for a in (Q, K1, K2, V1, V2)]
    out = tensor_attention(Q, K1, K2, V1, V2, block=block)
    np.testing.assert_allclose(out, tensor_reference(Q, K1, K2, V1, V2), rtol=1e-10, atol=1e-12)
    for a, c in zip((Q, K1, K2, V1, V2), copies, strict=True):
        np.testing.assert_array_equal(a, c)


@FEW
@given(shapes, st.integers(0, 2**31), st.sampled_from([None, 1, 5]))
def test_exact_softmax_matches_dense(shape, seed, block) -> None:
    nq, nk, _, d, dv = shape
    Q, K, V = _arrays(seed, [(nq, d), (nk, d), (nk, dv)], 2.0)
    out = softmax_attention(Q, K, V, block=block)
    np.testing.assert_allclose(out, softmax_reference(Q, K, V), rtol=1e-10, atol=1e-12)


@FEW
@given(st.integers(1, 8), st.integers(1, 4), st.integers(0, 2**31), st.sampled_from([None, 3]))
def test_causal_and_factored_masks(n, d, seed, block) -> None:
    Q, K1, K2, V1, V2 = _arrays(seed, [(n, d)] * 5)
    i = np.arange(n)
    tri = i[None, :] <= i[:, None]
    causal_pairs = tri[:, :, None] & tri[:, None, :]
    np.testing.assert_allclose(
        tensor_attention(Q, K1, K2, V1, V2, causal=True, block=block),
        tensor_reference(Q, K1, K2, V1, V2, causal_pairs),
        rtol=1e-10,
        atol=1e-12,
    )
    rng = np.random.default_rng(seed)
    M1, M2 = rng.random((n, n)) < 0.5, rng.random((n, n)) < 0.5
    M1[:, 0] = M2[:, -1] = True
    np.testing.assert_allclose(
        tensor_attention(Q, K1, K2, V1, V2, mask=(M1, M2), block=block),
        tensor_reference(Q, K1, K2, V1, V2, M1[:, :, None] & M2[:, None, :]),
        rtol=1e-10,
        atol=1e-12,
    )
    np.testing.assert_allclose(
        softmax_attention(Q, K1, V1, causal=True, mask=M1 | tri, block=block),
        softmax_reference(Q, K1, V1, tri & (M1 | tri)),
        rtol=1e-10,
        atol=1e-12,
    )


@FEW
@given(st.integers(1, 6), st.integers(0, 2**31), st.floats(1.0, 1e3))
def test_output_rows_are_convex_combinations(n, seed, scale) -> None:
    # Large logits (up to ~1e6) must neither overflow nor leave the convex hull.
    Q, K1, K2, V1, V2 = _arrays(seed, [(n, 3)] * 5)
    out = tensor_attention(Q * scale, K1 * scale, K2, V1, V2)
    pairs = (V1[:, None, :] * V2[None, :, :]).reshape(n * n, 3)
    assert np.all(np.isfinite(out))
    assert np.all(out >= pairs.min(axis=0) - 1e-12)
    assert np.all(out <= pairs.max(axis=0) + 1e-12)


def test_batched_shapes_equal_per_slice() -> None:
    Q, K1, K2, V1, V2 = _arrays(5, [(2, 3, 6, 4)] * 3 + [(2, 3, 6, 2)] * 2, 0.4)
    for fn in (tensor_attention, fast_tensor_attention):
        out = fn(Q, K1, K2, V1, V2)
        assert out.shape == (2, 3, 6, 2)
        for b in range(2):
            for h in range(3):
                ref = tensor_reference(Q[b, h], K1[b, h], K2[b, h], V1[b, h], V2[b, h])
                np.testing.assert_allclose(out[b, h], ref, atol=1e-6)
    out = softmax_attention(Q, K1, V1, causal=True)
    i = np.arange(6)
    np.testing.assert_allclose(
        out, softmax_reference(Q, K1, V1, i[None, :] <= i[:, None]), atol=1e-12
    )


@FEW
@given(st.integers(1, 5), st.integers(0, 2**31), st.floats(0.0, 4.0))
def test_logit_bound_bounds_every_logit(d, seed, scale) -> None:
    Q, K1, K2 = _arrays(seed, [(6, d), (5, d), (4, d)], scale)
    B = logit_bound(Q, K1, K2)
    assert np.abs(np.einsum("it,jt,lt->ijl", Q, K1, K2)).max() <= B * (1 + 1e-12)
    assert np.abs(Q @ K1.T).max() <= logit_bound(Q, K1) * (1 + 1e-12)


@FEW
@given(st.sampled_from(["taylor", "chebyshev"]), st.integers(0, 12), st.floats(0.01, 3.0))
def test_weight_error_bound_holds_on_a_grid(basis, degree, bound) -> None:
    x = np.linspace(-bound, bound, 2001)
    p = np.polynomial.polynomial.polyval(x, exp_polynomial(bound, degree, basis))
    actual = np.max(np.abs(p - np.exp(x)) / np.exp(x))
    assert actual <= weight_error_bound(bound, degree, basis) * (1 + 1e-9) + 1e-14


@FEW
@given(
    st.integers(1, 4),
    st.integers(0, 6),
    st.sampled_from(["taylor", "chebyshev"]),
    st.integers(0, 2**31),
)
def test_feature_maps_reproduce_the_polynomial(d, degree, basis, seed) -> None:
    # <phi(q), psi(k1) ∘ psi(k2)> = p(<q, k1 ∘ k2>) term by term, with exact exponents.
    q, k1, k2 = _arrays(seed, [(3, d), (4, d), (5, d)], 0.5)
    coeffs = exp_polynomial(1.0, degree, basis)
    s, t = feature_scales(coeffs, d, 2)
    phi, p1, p2 = (monomial_features(np, x, degree, w) for x, w in ((q, s), (k1, t), (k2, t)))
    assert phi.shape[1] == feature_size(d, degree) == math.comb(degree + d, d)
    approx = np.einsum("ir,jr,lr->ijl", phi, p1, p2)
    logits = np.einsum("it,jt,lt->ijl", q, k1, k2)
    np.testing.assert_allclose(approx, np.polynomial.polynomial.polyval(logits, coeffs), atol=1e-12)


@FEW
@given(
    st.integers(2, 40),
    st.integers(1, 5),
    st.floats(0.05, 2.0),
    st.integers(2, 7),
    st.sampled_from(["taylor", "chebyshev"]),
    st.booleans(),
    st.integers(0, 2**31),
)
def test_fast_error_within_its_a_priori_bound(n, d, bound, degree, basis, causal, seed) -> None:
    Q, (K1, K2), (V1, V2) = _bounded(seed, n, n, d, 3, bound, 2)
    plan = plan_attention(Q, K1, K2, degree=degree, basis=basis, fallback=True)
    fast = fast_tensor_attention(
        Q, K1, K2, V1, V2, degree=degree, basis=basis, causal=causal, fallback=True, block=97
    )
    exact = tensor_attention(Q, K1, K2, V1, V2, causal=causal)
    err = np.abs(fast - exact).max() / _value_scale([V1, V2])
    assert err <= plan.error_bound + 1e-12
    Q, (K,), (V,) = _bounded(seed, n, n, d, 3, bound, 1)
    plan = plan_attention(Q, K, degree=degree, basis=basis, fallback=True)
    fast = fast_softmax_attention(
        Q, K, V, degree=degree, basis=basis, causal=causal, fallback=True, block=53
    )
    err = np.abs(fast - softmax_attention(Q, K, V, causal=causal)).max() / _value_scale([V])
    assert err <= plan.error_bound + 1e-12


@pytest.mark.parametrize("basis", ["taylor", "chebyshev"])
@pytest.mark.parametrize("tol", [1e-2, 1e-5, 1e-9])
def test_tol_picks_the_smallest_sufficient_degree(basis, tol) -> None:
    Q, (K1, K2), (V1, V2) = _bounded(0, 50, 50, 4, 2, 0.8, 2)
    plan = plan_attention(Q, K1, K2, tol=tol, basis=basis)
    assert plan.error_bound <= tol
    assert plan.degree == 0 or output_error_bound(plan.logit_bound, plan.degree - 1, basis) > tol
    assert plan.feature_size == math.comb(plan.degree + 4, 4)
    out = fast_tensor_attention(Q, K1, K2, V1, V2, tol=tol, basis=basis)
    err = np.abs(out - tensor_attention(Q, K1, K2, V1, V2)).max() / _value_scale([V1, V2])
    assert err <= tol


def test_chebyshev_needs_a_lower_degree_than_taylor() -> None:
    Q, (K1, K2), _ = _bounded(1, 8, 8, 8, 1, 1.0, 2)
    cheb = plan_attention(Q, K1, K2, tol=1e-4, basis="chebyshev")
    taylor = plan_attention(Q, K1, K2, tol=1e-4, basis="taylor")
    assert cheb.degree < taylor.degree
    assert cheb.feature_size < taylor.feature_size


def test_unreachable_tolerance_raises_or_falls_back() -> None:
    Q, (K1, K2), (V1, V2) = _bounded(2, 12, 12, 8, 2, 6.0, 2)
    with pytest.raises(ValueError, match=r"tol = 1e-08 is unreachable at logit bound B = 6"):
        fast_tensor_attention(Q, K1, K2, V1, V2, tol=1e-8, max_features=5000)
    out = fast_tensor_attention(Q, K1, K2, V1, V2, tol=1e-8, max_features=5000, fallback=True)
    np.testing.assert_allclose(out, tensor_reference(Q, K1, K2, V1, V2), atol=1e-12)
    assert plan_attention(Q, K1, K2, tol=1e-8, max_features=5000, fallback=True).exact
    with pytest.raises(ValueError, match="weight error bound >= 1"):
        fast_tensor_attention(Q, K1, K2, V1, V2, degree=2)
    with pytest.raises(ValueError, match="max_features"):
        fast_tensor_attention(Q, K1, K2, V1, V2, degree=9, max_features=1000)


@pytest.mark.parametrize("causal", [False, True])
def test_torch_matches_numpy(causal) -> None:
    Q, (K1, K2), (V1, V2) = _bounded(3, 30, 30, 4, 3, 0.7, 2)
    T = [torch.from_numpy(a) for a in (Q, K1, K2, V1, V2)]
    for fn in (tensor_attention, fast_tensor_attention):
        np.testing.assert_allclose(
            fn(*T, causal=causal).numpy(), fn(Q, K1, K2, V1, V2, causal=causal), atol=1e-13
        )
    for fn in (softmax_attention, fast_softmax_attention):
        np.testing.assert_allclose(
            fn(T[0], T[1], T[3], causal=causal).numpy(), fn(Q, K1, V1, causal=causal), atol=1e-13
        )
    M = torch.rand(30, 30, generator=torch.Generator().manual_seed(0)) < 0.5
    M[:, 0] = True
    np.testing.assert_allclose(
        tensor_attention(*T, mask=(M, M)).numpy(),
        tensor_attention(Q, K1, K2, V1, V2, mask=(M.numpy(), M.numpy())),
        atol=1e-13,
    )


def test_torch_gradients_of_both_paths() -> None:
    Q, (K1, K2), (V1, V2) = _bounded(4, 5, 5, 2, 2, 0.5, 2)
    args = [torch.tensor(a, requires_grad=True) for a in (Q, K1, K2, V1, V2)]
    assert torch.autograd.gradcheck(lambda *a: tensor_attention(*a, causal=True), args)
    # Taylor coefficients do not depend on the logit bound; Chebyshev ones do, and the
    # bound is held constant (detached) under autograd, so gradcheck's finite
    # differences would also see the polynomial move.
    fast = lambda *a: fast_tensor_attention(*a, degree=4, basis="taylor", causal=True)  # noqa: E731
    assert torch.autograd.gradcheck(fast, args)


def test_bad_input_is_rejected_before_work() -> None:
    Q, K1, K2, V1, V2 = _arrays(0, [(4, 3)] * 5)
    with pytest.raises(ValueError, match="V1 must have as many rows as K1"):
        tensor_attention(Q, K1, K2, V1[:3], V2)
    with pytest.raises(ValueError, match="K2 must have width d = 3"):
        fast_tensor_attention(Q, K1, K2[:, :2], V1, V2)
    with pytest.raises(ValueError, match="V2 must have width 3"):
        tensor_attention(Q, K1, K2, V1, V2[:, :2])
    bad = Q.copy()
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="Q contains NaN or Inf"):
        fast_tensor_attention(bad, K1, K2, V1, V2)
    with pytest.raises(ValueError, match="degree must be >= 0"):
        fast_tensor_attention(Q, K1, K2, V1, V2, degree=-1)
    with pytest.raises(ValueError, match="tol must be > 0"):
        fast_softmax_attention(Q, K1, V1, tol=0.0)
    with pytest.raises(ValueError, match="basis must be one of"):
        fast_softmax_attention(Q, K1, V1, basis="pade")
    with pytest.raises(TypeError, match="floating-point"):
        softmax_attention(Q.astype(int), K1, V1)
    with pytest.raises(TypeError, match="share one dtype"):
        softmax_attention(Q.astype(np.float32), K1, V1)
    with pytest.raises(ValueError, match="leading dimensions"):
        softmax_attention(Q[None], K1, V1)
    with pytest.raises(ValueError, match="mask must have shape"):
        softmax_attention(Q, K1, V1, mask=np.ones((4, 5), bool))
    with pytest.raises(ValueError, match="no key to attend to"):
        softmax_attention(Q, K1, V1, mask=np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match="causal=True leaves a query row"):
        tensor_attention(
            Q,
            K1,
            K2,
            V1,
            V2,
            causal=True,
            mask=(np.eye(4, k=1, dtype=bool) | np.eye(4, k=-1, dtype=bool), np.ones((4, 4), bool)),
        )
    with pytest.raises(ValueError, match="causal fast attention needs"):
        fast_tensor_attention(Q, K1[:3], K2, V1[:3], V2, causal=True)
    with pytest.raises(ValueError, match="must have shape"):
        tensor_attention(Q[0], K1, K2, V1, V2)


@pytest.mark.parametrize("bound", [math.nan, -1.0, math.inf])
def test_error_bounds_refuse_a_bound_that_is_not_finite_and_non_negative(bound) -> None:
    # a NaN or negative logit bound used to give an error bound of 0.0 ("exact")
    for fn in (weight_error_bound, output_error_bound):
        for basis in ("taylor", "chebyshev"):
            with pytest.raises(ValueError, match="bound must be finite and >= 0"):
                fn(bound, 3, basis)
    with pytest.raises(ValueError, match="bound must be finite and >= 0"):
        exp_polynomial(bound, 3, "chebyshev")
    with pytest.raises(TypeError, match="bound must be a real number"):
        weight_error_bound("1", 3)
    assert weight_error_bound(0.0, 3) == 0.0  # B = 0 is exact for Taylor


def test_plan_and_logit_bound_check_their_inputs() -> None:
    Q, K1, K2 = _arrays(0, [(4, 3), (5, 3), (6, 3)])
    bad = Q.copy()
    bad[0, 0] = np.nan
    for fn in (plan_attention, logit_bound):
        with pytest.raises(ValueError, match="Q contains NaN or Inf"):
            fn(bad, K1)  # was "tol unreachable at logit bound B = nan"
        with pytest.raises(ValueError, match="K2 must have width d = 3"):
            fn(Q, K1, K2[:, :2])  # was a raw reshape error
        with pytest.raises(ValueError, match="at least one key array"):
            fn(Q)  # was a raw matmul error
        with pytest.raises(TypeError, match="Q must have a floating-point dtype"):
            fn(Q.astype(int), K1.astype(int))  # was accepted
        with pytest.raises(ValueError, match="K must not be empty"):
            fn(Q, K1[:0])
    # finite inputs whose bound overflows: nothing is guaranteed, so no degree is
    big = np.full((2, 2), 1e200)
    with np.errstate(over="ignore"):
        assert plan_attention(big, big, fallback=True).exact
        with pytest.raises(ValueError, match="unreachable at logit bound B = inf"):
            plan_attention(big, big)
