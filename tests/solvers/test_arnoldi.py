"""Orthogonalisation and the Hessenberg least-squares solver against dense references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from matrices import orthogonal

from solvers.arnoldi import (
    HessenbergLeastSquares,
    check_reorthogonalize,
    orthogonalize,
    orthogonalize_row_twice,
    subtract_combination,
)


@given(
    st.integers(1, 30),
    st.integers(0, 2**32 - 1),
    st.floats(-14.0, 0.0),
    st.booleans(),
)
def test_orthogonalize_leaves_w_orthogonal_to_working_precision(k, seed, log_delta, complex_):
    """Even when w lies almost in the span (cancellation), one reorthogonalisation
    restores orthogonality: |Q w| <= c eps ||w_in||."""
    rng = np.random.default_rng(seed)
    n = k + 40
    Q = orthogonal(rng, n)[:k].copy()
    c = rng.standard_normal(k)
    w = c @ Q + 10.0**log_delta * rng.standard_normal(n)
    if complex_:
        Q = Q.astype(complex)
        w = w + 1j * (c @ Q.real)
    original = w.copy()
    coefficients, norm = orthogonalize(np, Q, k, w)
    eps = np.finfo(float).eps
    assert np.abs(Q.conj() @ w).max() <= 50 * eps * np.linalg.norm(original)
    assert norm == np.linalg.norm(w) or abs(norm - np.linalg.norm(w)) <= 1e-14 * norm
    # w = Q^H coefficients + remainder, exactly the decomposition of the input.
    np.testing.assert_allclose(
        coefficients @ Q + w, original, atol=1e-13 * np.linalg.norm(original)
    )


@given(
    st.integers(0, 30),
    st.integers(0, 2**32 - 1),
    st.floats(-14.0, 0.0),
    st.booleans(),
)
def test_orthogonalize_row_twice_is_cgs2_with_the_norms_from_its_products(
    k, seed, log_delta, complex_
):
    """Row ``k`` of the block comes out orthogonal to rows ``0..k-1`` to working
    precision even under cancellation, the coefficients and the remainder rebuild
    it, and both norms (read off the passes' products) are the vectors' norms."""
    rng = np.random.default_rng(seed)
    n = k + 40
    dtype = complex if complex_ else float
    Q = orthogonal(rng, n)[:k].astype(dtype)
    w = rng.standard_normal(k) @ Q + 10.0**log_delta * rng.standard_normal(n)
    if complex_:
        w = w + 1j * (rng.standard_normal(k) @ Q.real)
    block = np.vstack([Q, w, rng.standard_normal((2, n))])  # rows after k are left alone
    after = block[k + 1 :].copy()
    coefficients, norm, norm_before = orthogonalize_row_twice(np, block, k)
    out = block[k]
    scale = np.linalg.norm(w)
    eps = np.finfo(float).eps
    assert np.abs(Q.conj() @ out).max(initial=0.0) <= 50 * eps * scale
    np.testing.assert_allclose(coefficients @ Q + out, w, atol=1e-13 * scale)
    assert abs(norm - np.linalg.norm(out)) <= 1e-13 * scale
    assert norm_before == pytest.approx(scale, rel=1e-13)
    np.testing.assert_array_equal(block[:k], Q)
    np.testing.assert_array_equal(block[k + 1 :], after)


@given(st.integers(1, 20), st.integers(0, 2**32 - 1), st.floats(-14.0, 0.0))
def test_reorthogonalize_never_is_one_pass_and_always_is_two(k, seed, log_delta):
    """``never`` returns exactly the first projection ``Q w`` (PETSc's default CGS);
    ``always`` (CGS2) is orthogonal to working precision even under cancellation."""
    rng = np.random.default_rng(seed)
    n = k + 30
    Q = orthogonal(rng, n)[:k].copy()
    w = rng.standard_normal(k) @ Q + 10.0**log_delta * rng.standard_normal(n)
    once = w.copy()
    coefficients, norm = orthogonalize(np, Q, k, once, reorthogonalize="never")
    np.testing.assert_allclose(coefficients, Q @ w, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(once, w - (Q @ w) @ Q, rtol=1e-12, atol=1e-15)
    assert norm == pytest.approx(np.linalg.norm(once), rel=1e-13)
    twice = w.copy()
    orthogonalize(np, Q, k, twice, reorthogonalize="always")
    assert np.abs(Q @ twice).max() <= 50 * np.finfo(float).eps * np.linalg.norm(w)


def test_reorthogonalize_must_be_a_known_mode():
    assert check_reorthogonalize("never") == "never"
    with pytest.raises(ValueError, match="reorthogonalize must be one of"):
        check_reorthogonalize("sometimes")


@given(
    st.integers(1, 12),
    st.integers(1, 50),
    st.integers(0, 2**32 - 1),
    st.sampled_from([np.float64, np.float32, np.complex128]),
    st.booleans(),
)
def test_subtract_combination_is_the_expression_in_place(k, n, seed, dtype, strided):
    """``w -= c @ rows`` through BLAS, into ``w`` itself; a strided block (no BLAS
    layout) takes the plain expression and gives the same."""
    rng = np.random.default_rng(seed)
    rows = rng.standard_normal((k, 2 * n if strided else n)).astype(dtype)
    if strided:
        rows = rows[:, ::2]
    w = rng.standard_normal(n).astype(dtype)
    c = rng.standard_normal(k).astype(dtype)
    if np.iscomplexobj(rows):
        rows = rows + 1j * rng.standard_normal(rows.shape)
        c = c + 1j * rng.standard_normal(k)
    expected = w - c @ rows
    buffer = w
    subtract_combination(np, w, c, rows)
    assert w is buffer
    tolerance = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(w, expected, rtol=tolerance, atol=tolerance * k)


@given(
    st.integers(1, 8),
    st.integers(1, 6),
    st.integers(1, 40),
    st.integers(0, 2**32 - 1),
    st.sampled_from([np.float64, np.complex128]),
)
def test_subtract_combination_of_blocks_is_one_gemm_in_place(k, p, n, seed, dtype):
    """A block ``W (p, n)`` minus ``C (p, k) @ rows (k, n)``, written into ``W``."""
    rng = np.random.default_rng(seed)
    rows = rng.standard_normal((k, n)).astype(dtype)
    W = rng.standard_normal((p, n)).astype(dtype)
    C = rng.standard_normal((p, k)).astype(dtype)
    if np.iscomplexobj(rows):
        rows, C = rows + 1j * rng.standard_normal((k, n)), C + 1j * rng.standard_normal((p, k))
    expected = W - C @ rows
    buffer = W
    subtract_combination(np, W, C, rows)
    assert W is buffer
    np.testing.assert_allclose(W, expected, rtol=1e-12, atol=1e-12 * k)


def test_subtract_combination_on_torch_is_in_place():
    torch = pytest.importorskip("torch")
    import array_api_compat.torch as xp

    rng = np.random.default_rng(0)
    rows, w, c = rng.standard_normal((4, 9)), rng.standard_normal(9), rng.standard_normal(4)
    tensor = torch.from_numpy(w.copy())
    storage = tensor.data_ptr()
    subtract_combination(xp, tensor, torch.from_numpy(c), torch.from_numpy(rows))
    assert tensor.data_ptr() == storage
    np.testing.assert_allclose(tensor.numpy(), w - c @ rows, rtol=1e-12, atol=1e-12)
    block, coefficients = rng.standard_normal((3, 9)), rng.standard_normal((3, 4))
    block_tensor = torch.from_numpy(block.copy())
    subtract_combination(xp, block_tensor, torch.from_numpy(coefficients), torch.from_numpy(rows))
    np.testing.assert_allclose(block_tensor.numpy(), block - coefficients @ rows, rtol=1e-12)


@given(st.integers(1, 25), st.integers(0, 2**32 - 1), st.booleans())
def test_hessenberg_least_squares_matches_dense_lstsq(m, seed, complex_):
    rng = np.random.default_rng(seed)
    H = np.triu(rng.standard_normal((m + 1, m)), k=-1)
    if complex_:
        H = H + 1j * np.triu(rng.standard_normal((m + 1, m)), k=-1)
    beta = float(rng.uniform(0.1, 10.0))
    solver = HessenbergLeastSquares(m, beta, complex if complex_ else float)
    rhs = np.zeros(m + 1, dtype=H.dtype)
    rhs[0] = beta
    for j in range(m):
        residual = solver.append(H[: j + 1, j], H[j + 1, j].real if not complex_ else H[j + 1, j])
        reference, *_ = np.linalg.lstsq(H[: j + 2, : j + 1], rhs[: j + 2], rcond=None)
        expected = np.linalg.norm(rhs[: j + 2] - H[: j + 2, : j + 1] @ reference)
        assert abs(residual - expected) <= 1e-10 * beta
    np.testing.assert_allclose(solver.solve(), reference, rtol=1e-8, atol=1e-10)
