"""Tests of numlib.monarch against an explicit P_out L P R construction.

The reference builds the block-diagonal factors with scipy.linalg.block_diag and the two
permutations as explicit matrices, independently of the reshapes the module uses.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st

from numlib._arrays import small_lapack_threads
from numlib.monarch import Monarch, monarch_project

FEW = settings(max_examples=20, deadline=None)


@pytest.fixture(autouse=True)
def _one_blas_thread():
    # Many tiny LAPACK calls: single-threaded BLAS is far faster on a loaded machine.
    with small_lapack_threads():
        yield


def _reference_dense(L: np.ndarray, R: np.ndarray) -> np.ndarray:
    bo, p, bir = L.shape
    bi = R.shape[0]
    r = bir // bi
    Rbd = scipy.linalg.block_diag(*R)  # (bi bo r) x n, rows ordered (k, j, s)
    Lbd = scipy.linalg.block_diag(*L)  # m x (bo bi r), columns ordered (j, k, s)
    P = np.zeros((bo * bi * r, bi * bo * r))
    for k in range(bi):
        for j in range(bo):
            for s in range(r):
                P[(j * bi + k) * r + s, (k * bo + j) * r + s] = 1.0
    Pout = np.zeros((p * bo, bo * p))
    for j in range(bo):
        for row in range(p):
            Pout[row * bo + j, j * p + row] = 1.0
    return Pout @ Lbd @ P @ Rbd


shapes = st.tuples(
    st.integers(1, 4),  # bi
    st.integers(1, 4),  # bo
    st.integers(1, 5),  # p = m / bo
    st.integers(1, 5),  # q = n / bi
    st.integers(1, 3),  # r
)


def _random_monarch(bi, bo, p, q, r, rng) -> Monarch:
    return Monarch(rng.standard_normal((bo, p, bi * r)), rng.standard_normal((bi, bo * r, q)))


@FEW
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_structure_matches_explicit_factors(shape, seed: int) -> None:
    bi, bo, p, q, r = shape
    rng = np.random.default_rng(seed)
    M = _random_monarch(bi, bo, p, q, r, rng)
    dense = M.to_dense()
    np.testing.assert_allclose(dense, _reference_dense(M.L, M.R), atol=1e-12)
    assert M.shape == (bo * p, bi * q) and M.nblocks == (bi, bo) and M.block_rank == r
    assert M.params == r * (bo * bi * q + bi * bo * p)
    x = rng.standard_normal((3, 2, bi * q))
    np.testing.assert_allclose(M.apply(x), x @ dense.T, atol=1e-12)
    np.testing.assert_allclose(M.matvec(x[0, 0]), dense @ x[0, 0], atol=1e-12)


@FEW
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_projection_is_exact_on_monarch_matrices(shape, seed: int) -> None:
    bi, bo, p, q, r = shape
    r = min(r, p, q)
    M = _random_monarch(bi, bo, p, q, r, np.random.default_rng(seed)).to_dense()
    M0 = M.copy()
    fit = monarch_project(M, (bi, bo), rank=r)
    np.testing.assert_allclose(fit.to_dense(), M, atol=1e-10 * max(1.0, np.abs(M).max()))
    np.testing.assert_array_equal(M, M0)


@FEW
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_projection_is_optimal(shape, seed: int) -> None:
    bi, bo, p, q, r = shape
    r = min(r, p, q)
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((bo * p, bi * q))
    fit = monarch_project(A, (bi, bo), rank=r)
    best = np.linalg.norm(A - fit.to_dense())
    for _ in range(10):
        other = _random_monarch(bi, bo, p, q, r, rng).to_dense()
        assert best <= np.linalg.norm(A - other) + 1e-12
    for eps in (1e-4, 1e-2, 1.0):
        near = Monarch(
            fit.L + eps * rng.standard_normal(fit.L.shape),
            fit.R + eps * rng.standard_normal(fit.R.shape),
        )
        assert best <= np.linalg.norm(A - near.to_dense()) * (1 + 1e-12) + 1e-12


def _output_error(A: np.ndarray, X: np.ndarray, C: np.ndarray) -> float:
    E = A - X
    return float(np.trace(E @ C @ E.T))


@FEW
@given(shape=shapes, seed=st.integers(0, 2**16), sweeps=st.integers(1, 3))
def test_activation_aware_projection_never_loses_to_the_frobenius_one(
    shape, seed: int, sweeps: int
) -> None:
    """``trace((A - X) C_d (A - X)^T)`` never rises over the sweeps from the Frobenius fit,
    and falls well below it on inputs whose variance differs by 1e6 within each block."""
    bi, bo, p, q, r = shape
    r = min(r, p, q)
    rng = np.random.default_rng(seed)
    n = bi * q
    X = rng.standard_normal((3 * n + 5, n)) * np.logspace(0, 1.5, n)  # correlated, uneven
    X = X @ rng.standard_normal((n, n))
    C = X.T @ X / len(X)
    Cd = C + 0.01 * np.mean(np.diag(C)) * np.eye(n)  # the metric it minimises (damped)
    A = rng.standard_normal((bo * p, n))
    C0 = C.copy()
    plain = monarch_project(A, (bi, bo), rank=r).to_dense()
    fits = [monarch_project(A, (bi, bo), rank=r, C=C, sweeps=k) for k in (sweeps, sweeps + 1)]
    errors = [_output_error(A, f.to_dense(), Cd) for f in fits]
    tol = 1e-9 * _output_error(A, 0 * A, Cd)
    assert errors[0] <= _output_error(A, plain, Cd) + tol  # starts from it, only descends
    assert errors[1] <= errors[0] + tol  # each sweep can only lower the error
    np.testing.assert_array_equal(C, C0)
    exact = _random_monarch(bi, bo, p, q, r, rng).to_dense()
    fit = monarch_project(exact, (bi, bo), rank=r, C=C).to_dense()
    np.testing.assert_allclose(fit, exact, atol=1e-8 * max(1.0, np.abs(exact).max()))
    # Strict gain. Half of every input block's inputs carry variance 1, the rest 1e-6;
    # A = (a Monarch matrix on the loud inputs) + 2 x (noise on the quiet ones). The
    # Frobenius fit spends its block rank on the larger quiet part; the C-aware fit
    # keeps the loud part. Measured over seeds 0-999: ratio <= 0.16 (median 0.04).
    bi, bo, p, q, r = 2, 3, 4, 6, 2
    n = bi * q
    loud = np.concatenate([rng.permutation(q) < q // 2 for _ in range(bi)])
    X = rng.standard_normal((3 * n + 5, n)) * np.where(loud, 1.0, 1e-3)
    C = X.T @ X / len(X)
    Cd = C + 0.01 * np.mean(np.diag(C)) * np.eye(n)
    R = rng.standard_normal((bi, bo * r, q)) * loud.reshape(bi, 1, q)
    A = Monarch(rng.standard_normal((bo, p, bi * r)), R).to_dense()
    A = A + 2.0 * rng.standard_normal((bo * p, n)) * ~loud
    plain = _output_error(A, monarch_project(A, (bi, bo), rank=r).to_dense(), Cd)
    aware = _output_error(A, monarch_project(A, (bi, bo), rank=r, C=C).to_dense(), Cd)
    assert aware < 0.5 * plain


def test_square_default_blocks_rectangular_shapes_and_torch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    A = rng.standard_normal((16, 16))
    fit = monarch_project(A)
    assert fit.nblocks == (4, 4) and fit.block_rank == 1
    W = rng.standard_normal((48, 12))  # tall: 12 -> 48 as in an MLP up-projection
    fit = monarch_project(W, (3, 4), rank=2)
    ft = monarch_project(torch.from_numpy(W), (3, 4), rank=2)
    assert isinstance(ft.L, torch.Tensor)
    np.testing.assert_allclose(ft.to_dense().numpy(), fit.to_dense(), atol=1e-12)
    x = rng.standard_normal((5, 12))
    np.testing.assert_allclose(ft.apply(torch.from_numpy(x)).numpy(), fit.apply(x), atol=1e-12)
    # Full block rank: every slice is kept exactly.
    np.testing.assert_allclose(monarch_project(W, (3, 4), rank=4).to_dense(), W, atol=1e-12)
    X = rng.standard_normal((40, 12))
    C = X.T @ X
    fit = monarch_project(W, (3, 4), rank=2, C=C)
    ft = monarch_project(torch.from_numpy(W), (3, 4), rank=2, C=torch.from_numpy(C))
    np.testing.assert_allclose(ft.to_dense().numpy(), fit.to_dense(), atol=1e-10)


def test_monarch_bad_input() -> None:
    A = np.ones((12, 10))
    with pytest.raises(ValueError, match="nblocks is required"):
        monarch_project(A)
    with pytest.raises(ValueError, match="input blocks 3 must divide n = 10"):
        monarch_project(A, 3)
    with pytest.raises(ValueError, match="output blocks 5 must divide m = 12"):
        monarch_project(A, (2, 5))
    with pytest.raises(ValueError, match="rank"):
        monarch_project(A, (2, 3), rank=0)
    with pytest.raises(ValueError, match="rank"):
        monarch_project(A, (2, 3), rank=5)
    with pytest.raises(TypeError, match="nblocks"):
        monarch_project(A, "2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NaN"):
        monarch_project(np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match="C must be 10 x 10"):
        monarch_project(A, (2, 3), C=np.eye(12))
    with pytest.raises(ValueError, match="sweeps"):
        monarch_project(A, (2, 3), C=np.eye(10), sweeps=0)
    with pytest.raises(ValueError, match="not Monarch"):
        Monarch(np.ones((2, 3, 5)), np.ones((2, 4, 3)))
    M = monarch_project(np.ones((4, 4)))
    with pytest.raises(ValueError, match="shape"):
        M.apply(np.ones((2, 5)))
