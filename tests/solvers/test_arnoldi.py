"""Orthogonalisation and the Hessenberg least-squares solver against dense references."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from matrices import orthogonal

from solvers.arnoldi import HessenbergLeastSquares, orthogonalize


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
