"""Diagonal SSM layers: conv / scan / step agree; kernels and discretisation vs references."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.signal
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from learned.ssm import (
    S4DLayer,
    S5Layer,
    discretize,
    fft_conv,
    parallel_scan,
    vandermonde_kernel,
)
from learned.ssm_init import INITS, DiagonalInit, diagonal_init, from_ptd
from numlib.diag import perturb_then_diagonalize
from numlib.hippo import hippo_legs

F64 = torch.float64
seeds = st.integers(0, 2**31 - 1)


@settings(max_examples=25)
@given(
    kind=st.sampled_from(INITS),
    half=st.integers(1, 5),
    channels=st.integers(1, 4),
    length=st.integers(1, 40),
    batch=st.integers(1, 3),
    method=st.sampled_from(["zoh", "bilinear"]),
    block=st.one_of(st.none(), st.integers(1, 9)),
    seed=seeds,
)
def test_s4d_conv_scan_step_agree(kind, half, channels, length, batch, method, block, seed):
    layer = S4DLayer(
        channels,
        diagonal_init(kind, 2 * half, rng=seed),
        discretization=method,
        block=block,
        dt_min=1e-2,
        dt_max=0.5,
        dtype=F64,
        seed=seed,
    )
    u = torch.randn(
        batch, channels, length, dtype=F64, generator=torch.Generator().manual_seed(seed)
    )
    with torch.no_grad():
        ys = [layer(u, mode=m) for m in ("conv", "scan", "step")]
    scale = 1 + ys[2].abs().max()
    for y in ys[:2]:
        assert y.shape == u.shape and y.dtype == F64
        torch.testing.assert_close(y, ys[2], rtol=0, atol=1e-10 * scale)


@settings(max_examples=25)
@given(
    kind=st.sampled_from(INITS),
    half=st.integers(1, 5),
    channels=st.integers(1, 4),
    length=st.integers(1, 40),
    method=st.sampled_from(["zoh", "bilinear"]),
    seed=seeds,
)
def test_s5_conv_scan_step_agree(kind, half, channels, length, method, seed):
    layer = S5Layer(
        channels,
        diagonal_init(kind, 2 * half, rng=seed),
        discretization=method,
        dt_min=1e-2,
        dt_max=0.5,
        dtype=F64,
        seed=seed,
    )
    u = torch.randn(2, channels, length, dtype=F64, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ys = [layer(u, mode=m) for m in ("conv", "scan", "step")]
    scale = 1 + ys[2].abs().max()
    for y in ys[:2]:
        torch.testing.assert_close(y, ys[2], rtol=0, atol=1e-10 * scale)


@settings(max_examples=15)
@given(
    kind=st.sampled_from(["lin", "real", "legs"]),
    method=st.sampled_from(["zoh", "bilinear"]),
    block=st.one_of(st.none(), st.integers(1, 7)),
    seed=seeds,
)
def test_s4d_against_an_independent_recurrence(kind, method, block, seed):
    """Independent reference: per channel ``x_k = Ā x_{k-1} + B̄ u_k``,
    ``y_k = s Re(C . x_k) + D u_k`` (``s = 2`` for conjugate pairs), with ZOH
    ``Ā = exp(dt Λ)``, ``B̄ = (Ā - 1) / Λ B`` or bilinear ``Ā = (1 + dt Λ/2) / (1 - dt Λ/2)``,
    ``B̄ = dt / (1 - dt Λ/2) B`` written out in numpy from the raw parameters."""
    init = diagonal_init(kind, 6)
    H, L = 3, 20
    layer = S4DLayer(
        H, init, discretization=method, block=block, dt_min=0.05, dt_max=0.5, dtype=F64, seed=1
    )
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # move every parameter off its initial value: each one counts
        for param in layer.parameters():
            param.add_(0.3 * torch.randn(param.shape, generator=gen, dtype=F64))
        u = torch.randn(2, H, L, generator=gen, dtype=F64)
        ys = {mode: layer(u, mode=mode).numpy() for mode in ("conv", "scan", "step")}
    P = {name: value.detach().numpy() for name, value in layer.named_parameters()}
    lam = -np.exp(P["log_neg_re"]) + 1j * P["im"]  # (H, N)
    B = P["B"][..., 0] + 1j * P["B"][..., 1]
    C = P["C"][..., 0] + 1j * P["C"][..., 1]
    dt = np.exp(P["log_dt"])[:, None]
    if method == "zoh":
        Abar = np.exp(dt * lam)
        Bbar = (Abar - 1) / lam * B
    else:
        Abar = (1 + dt * lam / 2) / (1 - dt * lam / 2)
        Bbar = dt / (1 - dt * lam / 2) * B
    scale = 2.0 if init.conj_sym else 1.0
    un = u.numpy()
    ref = np.zeros(un.shape)
    for b in range(un.shape[0]):
        for h in range(H):
            x = np.zeros(lam.shape[1], complex)
            for k in range(L):
                x = Abar[h] * x + Bbar[h] * un[b, h, k]
                ref[b, h, k] = scale * np.sum(C[h] * x).real + P["D"][h] * un[b, h, k]
    for y in ys.values():
        np.testing.assert_allclose(y, ref, rtol=0, atol=1e-10 * (1 + np.abs(ref).max()))


def test_s5_against_dense_mimo_recurrence():
    """Independent reference: numpy loop with the dense (diagonal) matrices."""
    layer = S5Layer(3, diagonal_init("lin", 6), dtype=F64, seed=4, dt_min=0.05, dt_max=0.2)
    u = torch.randn(1, 3, 25, dtype=F64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        Abar, Bbar, C = (t.numpy() for t in layer._discrete())
        y = layer(u).numpy()[0]
    x = np.zeros(Abar.shape, complex)
    ref = []
    D = layer.D.detach().numpy()
    for k in range(25):
        x = np.diag(Abar) @ x + Bbar @ u.numpy()[0, :, k]
        ref.append(2 * (C @ x).real + D * u.numpy()[0, :, k])
    np.testing.assert_allclose(y, np.array(ref).T, atol=1e-12)


@given(n=st.integers(1, 6), length=st.integers(1, 50), block=st.integers(1, 60), seed=seeds)
def test_blocked_vandermonde_matches_repeated_products(n, length, block, seed):
    gen = np.random.default_rng(seed)
    Abar = 0.99 * np.exp(2j * np.pi * gen.random((2, n))) * gen.random((2, n)) ** 0.1
    W = gen.standard_normal((2, n)) + 1j * gen.standard_normal((2, n))
    ref = np.zeros((2, length), complex)
    power = np.ones((2, n), complex)
    for ell in range(length):
        ref[:, ell] = (W * power).sum(-1)
        power = power * Abar
    for b in (None, block):
        K = vandermonde_kernel(torch.from_numpy(Abar), torch.from_numpy(W), length, block=b)
        np.testing.assert_allclose(K.numpy(), ref, rtol=1e-11, atol=1e-12)


@given(length=st.integers(1, 64), seed=seeds)
def test_fft_conv_matches_direct_convolution(length, seed):
    gen = np.random.default_rng(seed)
    u, K = gen.standard_normal((2, length)), gen.standard_normal(length)
    ref = np.stack([np.convolve(row, K)[:length] for row in u])
    y = fft_conv(torch.from_numpy(u), torch.from_numpy(K))
    np.testing.assert_allclose(y.numpy(), ref, atol=1e-12 * (1 + np.abs(ref).max()))


@given(length=st.integers(1, 70), seed=seeds)
def test_parallel_scan_matches_sequential_loop(length, seed):
    gen = np.random.default_rng(seed)
    a = gen.standard_normal((length, 3)) + 1j * gen.standard_normal((length, 3))
    b = gen.standard_normal((2, length, 3)) + 0j
    x = parallel_scan(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    ref = np.zeros_like(b)
    prev = np.zeros((2, 3), complex)
    for k in range(length):
        prev = a[k] * prev + b[:, k]
        ref[:, k] = prev
    np.testing.assert_allclose(x, ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())


@pytest.mark.parametrize("method", ["zoh", "bilinear"])
def test_discretization_matches_scipy(method):
    lam = np.array([-0.5 + 3j, -2.0 + 0j, -1e-9 + 1j])
    B = np.array([1.0 + 1j, 2.0, -0.5j])
    dt = 0.1
    Abar, Bbar = discretize(
        torch.from_numpy(lam), torch.from_numpy(B), torch.tensor(dt, dtype=F64), method
    )
    for i in range(3):
        sys = (np.array([[lam[i]]]), np.array([[B[i]]]), np.eye(1), np.zeros((1, 1)))
        if method == "zoh":  # Van Loan: expm of the augmented matrix
            M = scipy.linalg.expm(dt * np.array([[lam[i], B[i]], [0, 0]]))
            ref_a, ref_b = M[0, 0], M[0, 1]
        else:
            Ad, Bd, *_ = scipy.signal.cont2discrete(sys, dt, method="bilinear")
            # scipy: Ad = (I - dt A/2)^{-1} (I + dt A/2), Bd = (I - dt A/2)^{-1} dt B
            ref_a, ref_b = Ad[0, 0], Bd[0, 0]
        assert complex(Abar[i]) == pytest.approx(ref_a, rel=1e-12)
        assert complex(Bbar[i]) == pytest.approx(ref_b, rel=1e-10)


def test_inits_follow_s4d_formulas():
    n = 8
    k = np.arange(4)
    np.testing.assert_allclose(diagonal_init("lin", n).Lambda, -0.5 + 1j * np.pi * k)
    np.testing.assert_allclose(
        diagonal_init("inv", n).Lambda, -0.5 + 1j * n / np.pi * (n / (2 * k + 1) - 1)
    )
    np.testing.assert_allclose(diagonal_init("real", n).Lambda, -np.arange(1, n + 1))
    legs = diagonal_init("legs", n)
    assert legs.Lambda.shape == (4,) and legs.conj_sym
    np.testing.assert_allclose(legs.Lambda.real, -0.5, atol=1e-12)
    assert (legs.Lambda.imag > 0).all()


def test_ptd_init_reproduces_hippo_transfer_function():
    """Continuous PTD init with C = B V reproduces LegS's C (sI - A)^{-1} B closely."""
    A, B = hippo_legs(16)
    r = perturb_then_diagonalize(A, 1e-3, method="optimized", rng=0)
    init = from_ptd(r, B)
    assert not init.conj_sym and (init.Lambda.real < 0).all()
    s = 1j * np.logspace(-1, 3, 50)
    G = np.array([B @ np.linalg.solve(si * np.eye(16) - A, B) for si in s])
    Gd = ((B @ r.V) * init.B / (s[:, None] - init.Lambda)).sum(-1)
    assert np.abs(Gd - G).max() / np.abs(G).max() < 1e-2


def test_layers_train_end_to_end_in_float32():
    layer = S4DLayer(2, diagonal_init("ptd", 8), block=4)
    u = torch.randn(3, 2, 32)
    layer(u).pow(2).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in layer.parameters())
    s5 = S5Layer(2, diagonal_init("legs", 8))
    s5(u).pow(2).mean().backward()
    assert torch.isfinite(s5.C.grad).all()


def test_bad_inputs():
    init = diagonal_init("lin", 4)
    with pytest.raises(ValueError, match="kind must be one of"):
        diagonal_init("hippo", 4)
    with pytest.raises(ValueError, match="n must be even"):
        diagonal_init("lin", 5)
    with pytest.raises(ValueError, match="discretization must be one of"):
        S4DLayer(2, init, discretization="euler")
    with pytest.raises(ValueError, match="mode must be one of"):
        S4DLayer(2, init)(torch.zeros(1, 2, 3), mode="fast")
    with pytest.raises(ValueError, match=r"u must have shape \(batch, 2, L\)"):
        S5Layer(2, init)(torch.zeros(1, 3, 3))
    with pytest.raises(ValueError, match="Re < 0"):
        S4DLayer(2, DiagonalInit(np.array([0.1 + 0j]), np.ones(1, complex), False, "x"))
    with pytest.raises(ValueError, match="block must be >= 1"):
        S4DLayer(2, init, block=0)
    with pytest.raises(ValueError, match="channels must be >= 1"):
        S5Layer(0, init)
    with pytest.raises(TypeError, match="dtype must be"):
        S4DLayer(2, init, dtype=torch.int32)
    with pytest.raises(TypeError, match="result must be a PTDResult"):
        from_ptd(init, np.ones(4))
    with pytest.raises(ValueError, match="length must be >= 1"):
        vandermonde_kernel(
            torch.ones(2, dtype=torch.complex128), torch.ones(2, dtype=torch.complex128), 0
        )


@pytest.mark.parametrize("block", [None, 1, 2, 3])
def test_vandermonde_powers_of_zero_are_exact(block):
    """``0^0 = 1`` and ``0^l = 0``: a mode whose ``exp(dt Λ)`` underflowed is no NaN."""
    for dtype in (torch.complex64, torch.complex128):
        Abar = torch.tensor([0, 0.5], dtype=dtype)
        W = torch.tensor([1, 1], dtype=dtype)
        K = vandermonde_kernel(Abar, W, 5, block=block)
        expected = torch.tensor([2, 0.5, 0.25, 0.125, 0.0625], dtype=dtype)
        torch.testing.assert_close(K, expected, rtol=1e-6, atol=0)


def test_s4d_conv_equals_scan_when_the_transition_underflows():
    # Λ down to -1100 and dt = 0.1: exp(dt Λ) underflows to 0 in float32 for most modes.
    layer = S4DLayer(1, diagonal_init("real", 1100), dt_min=0.1, dt_max=0.1)
    u = torch.randn(1, 1, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        conv, scan = layer(u, mode="conv"), layer(u, mode="scan")
    assert torch.isfinite(conv).all()
    torch.testing.assert_close(conv, scan, rtol=1e-4, atol=1e-5)
    # The gradient through the underflowed (zero and subnormal) modes is finite too.
    layer(u, mode="conv").sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters() if p.grad is not None)
