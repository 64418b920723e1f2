"""Tests of numlib.lstsq against scipy.linalg.lstsq (gelsd) on planted problems."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st

import numlib.lstsq
from numlib.lstsq import lstsq
from numlib.result import ConvergenceWarning

U_MACH = np.finfo(np.float64).eps


def planted(n: int, d: int, cond: float, seed: int, resid: float = 1e-3, rank: int | None = None):
    """A = U diag(s) V^T with known singular values; x* planted; r orthogonal to range(A)."""
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((n, d)))
    V, _ = np.linalg.qr(rng.standard_normal((d, d)))
    s = np.logspace(0, -np.log10(cond), d)
    if rank is not None:
        s[rank:] = 0.0
    A = (U * s) @ V.T
    x = rng.standard_normal(d)
    if rank is not None:
        x = V[:, :rank] @ (V[:, :rank].T @ x)  # minimum-norm solution
    r = rng.standard_normal(n)
    r -= U @ (U.T @ r)
    r *= resid / np.linalg.norm(r)
    return A, A @ x + r, x, r


@settings(max_examples=6, deadline=None)
@given(
    n=st.integers(1000, 3000),
    d=st.integers(2, 30),
    log_cond=st.sampled_from([0.0, 3.0, 6.0, 10.0]),
    seed=st.integers(0, 2**31),
)
def test_matches_gelsd_forward_and_residual(n, d, log_cond, seed) -> None:
    cond = 10.0**log_cond
    A, b, x_star, r = planted(n, d, cond, seed)
    A0, b0 = A.copy(), b.copy()
    res = lstsq(A, b, method="sketch", rng=seed, rtol=1e-12)
    assert res.converged and res.method == "sketch" and res.rank == d
    x_ref = scipy.linalg.lstsq(A, b, lapack_driver="gelsd")[0]
    # Perturbation scale of a backward-stable solver (||A|| = 1, Wedin):
    # cond * u + cond^2 * u * ||r|| / ||x||; LSQR adds cond * rtol.
    scale = cond * (U_MACH + 1e-12) + cond**2 * U_MACH * np.linalg.norm(r) / np.linalg.norm(x_star)
    nx = np.linalg.norm(x_star)
    err = np.linalg.norm(res.x - x_star) / nx
    err_ref = np.linalg.norm(x_ref - x_star) / nx
    assert err <= max(100 * scale, 10 * err_ref), (err, err_ref, scale)
    # residual optimality: ||r_ours||^2 - ||r*||^2 = ||A (x - x*)||^2, tiny
    assert res.residual_norm <= np.linalg.norm(r) * (1 + 1e-8) + 1e-12
    np.testing.assert_array_equal(A, A0)
    np.testing.assert_array_equal(b, b0)


def test_rank_deficient_gives_min_norm_and_rank() -> None:
    A, b, _, _ = planted(2000, 20, 1e3, 7, rank=12)
    res = lstsq(A, b, method="sketch", rng=1)
    assert res.rank == 12 and res.converged
    x_ref, _, rank_ref, _ = scipy.linalg.lstsq(A, b)
    assert rank_ref == 12
    np.testing.assert_allclose(res.x, x_ref, rtol=0, atol=1e-8 * np.linalg.norm(x_ref))


def test_same_rng_same_answer_and_auto_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    A, b, _, _ = planted(3000, 10, 1e4, 3)
    r1 = lstsq(A, b, method="sketch", rng=5)
    r2 = lstsq(A, b, method="sketch", rng=5)
    np.testing.assert_array_equal(r1.x, r2.x)
    # d = 10 < AUTO_MIN_COLS: LAPACK whatever n / d
    assert lstsq(A, b, rng=0).method == "lapack"
    monkeypatch.setattr(numlib.lstsq, "AUTO_MIN_COLS", 10)
    assert lstsq(A, b, rng=0).method == "sketch"  # n / d = 300 >= AUTO_MIN_RATIO
    small = lstsq(A[:90], b[:90], rng=0)  # n / d = 9 < AUTO_MIN_RATIO
    assert small.method == "lapack" and small.iterations == 0


@settings(max_examples=10, deadline=None)
@given(
    n=st.integers(1, 700),
    d=st.integers(1, 40),
    threads=st.integers(1, 3),
    seed=st.integers(0, 2**31),
)
def test_fused_passes_equal_two_products(n: int, d: int, threads: int, seed: int) -> None:
    # the one-pass products agree with the two-pass ones (blocks of 8 rows, 1-3 threads)
    rng = np.random.default_rng(seed)
    A, b, x = rng.standard_normal((n, d)), rng.standard_normal(n), rng.standard_normal(d)
    old = numlib.lstsq._BLOCK_BYTES
    numlib.lstsq._BLOCK_BYTES = 64 * d
    try:
        passes = numlib.lstsq._Passes(A, b, threads)
        q = passes.normal(x)
        g, rr = passes.gradient(x)
        passes.close()
    finally:
        numlib.lstsq._BLOCK_BYTES = old
    r = b - A @ x
    scale = np.linalg.norm(A) ** 2 * np.linalg.norm(x) + np.linalg.norm(A) * np.linalg.norm(b)
    np.testing.assert_allclose(q, A.T @ (A @ x), rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(g, A.T @ r, rtol=0, atol=1e-12 * scale)
    assert abs(rr - r @ r) <= 1e-12 * (r @ r + 1.0)


def test_consistent_system_and_svd_preconditioner() -> None:
    A, _, x, _ = planted(2000, 15, 1e4, 5)
    res = lstsq(A, A @ x, method="sketch", rng=0)
    assert res.converged and res.info["preconditioner"] == "cholesky-qr"
    np.testing.assert_allclose(res.x, x, rtol=0, atol=1e-8 * np.linalg.norm(x))
    # cond 1e10: Cholesky QR would lose the preconditioner, Householder QR is used
    C, _, y, _ = planted(2000, 15, 1e10, 6)
    res = lstsq(C, C @ y, method="sketch", rng=0)
    assert res.converged and res.info["preconditioner"] == "qr"
    np.testing.assert_allclose(res.x, y, rtol=0, atol=1e-4 * np.linalg.norm(y))
    # exactly repeated columns: R is singular, the truncated SVD preconditioner is used
    B = np.column_stack([A, A[:, :3]])
    b = B @ np.random.default_rng(1).standard_normal(18) + 1e-3
    res = lstsq(B, b, method="sketch", rng=0)
    assert res.info["preconditioner"] == "svd" and res.rank == 15 and res.converged
    x_ref = scipy.linalg.lstsq(B, b, cond=1e-10)[0]  # minimum-norm, rank 15
    np.testing.assert_allclose(res.x, x_ref, rtol=0, atol=1e-7 * np.linalg.norm(x_ref))


def test_non_convergence_warns() -> None:
    A, b, _, _ = planted(2000, 30, 1e8, 4, resid=1.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = lstsq(A, b, method="sketch", rng=0, rtol=1e-15, maxiter=2)
    assert not res.converged
    assert any(issubclass(w.category, ConvergenceWarning) for w in caught)


def test_bad_inputs_name_the_argument() -> None:
    A = np.ones((20, 3))
    with pytest.raises(ValueError, match="b must have length"):
        lstsq(A, np.ones(19))
    bad = np.ones(20)
    bad[3] = np.inf
    with pytest.raises(ValueError, match="b contains NaN"):
        lstsq(A, bad)
    with pytest.raises(ValueError, match="method"):
        lstsq(A, np.ones(20), method="x")
    with pytest.raises(ValueError, match="rtol"):
        lstsq(A, np.ones(20), rtol=-1.0)
    with pytest.raises(ValueError, match="tall"):
        lstsq(np.ones((3, 20)), np.ones(3), method="sketch")
    with pytest.raises(TypeError, match="A"):
        lstsq(np.ones((20, 3), dtype=int), np.ones(20))


def test_complex_input_goes_to_lapack_or_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # the sketched CG is real-only: complex A or b used to come back converged=True with
    # a relative error of order 1; now method="sketch" refuses them and "auto" uses gelsd
    rng = np.random.default_rng(0)
    A = rng.standard_normal((400, 10)) + 1j * rng.standard_normal((400, 10))
    b = rng.standard_normal(400) + 1j * rng.standard_normal(400)
    with pytest.raises(TypeError, match="A must be real for method='sketch'"):
        lstsq(A, b, method="sketch", rng=0)
    with pytest.raises(TypeError, match="b must be real for method='sketch'"):
        lstsq(A.real.copy(), b, method="sketch", rng=0)
    monkeypatch.setattr(numlib.lstsq, "AUTO_MIN_COLS", 10)  # a real A this tall would sketch
    assert lstsq(A.real.copy(), b.real.copy(), rng=0).method == "sketch"
    for AA, bb in ((A, b), (A.real.copy(), b)):
        res = lstsq(AA, bb, rng=0)
        assert res.method == "lapack" and res.converged
        x_ref = np.linalg.lstsq(AA, bb, rcond=None)[0]
        np.testing.assert_allclose(res.x, x_ref, rtol=1e-10, atol=0)
