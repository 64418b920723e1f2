"""Kronecker algebra equals its dense counterpart, built independently with np.kron."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from hypothesis import given
from hypothesis import strategies as st

from numlib.kron import KroneckerEigh, KroneckerOperator, KroneckerSum, kron_eigh

MAX_SIZE = 500  # total size of the dense reference


def dense_kron(factors):
    return functools.reduce(np.kron, factors)


def dense_sum(factors):
    eyes = [np.eye(f.shape[0]) for f in factors]
    terms = [dense_kron([*eyes[:d], f, *eyes[d + 1 :]]) for d, f in enumerate(factors)]
    return sum(terms)


@st.composite
def factor_shapes(draw, *, square=False, max_dim=8):
    """2-4 factor shapes whose row and column products both stay <= MAX_SIZE."""
    count = draw(st.integers(2, 4))
    shapes, rows, cols = [], 1, 1
    for _ in range(count):
        m = draw(st.integers(1, max(1, min(max_dim, MAX_SIZE // rows))))
        n = m if square else draw(st.integers(1, max(1, min(max_dim, MAX_SIZE // cols))))
        shapes.append((m, n))
        rows, cols = rows * m, cols * n
    return shapes


def spd(rng, n, rank=None):
    """Symmetric positive semidefinite n x n of the given rank (full by default)."""
    g = rng.standard_normal((n, n if rank is None else rank))
    return g @ g.T / n + (0.1 * np.eye(n) if rank is None else 0.0)


seeds = st.integers(0, 2**32 - 1)


# --------------------------------------------------------------------- KroneckerOperator


@given(factor_shapes(), seeds, st.integers(1, 3))
def test_products_match_dense_kron(shapes, seed, k):
    rng = np.random.default_rng(seed)
    factors = [rng.standard_normal(s) for s in shapes]
    K, dense = KroneckerOperator(factors), dense_kron(factors)
    assert K.shape == dense.shape
    x, y = rng.standard_normal(K.shape[1]), rng.standard_normal(K.shape[0])
    X, Y = rng.standard_normal((K.shape[1], k)), rng.standard_normal((K.shape[0], k))
    np.testing.assert_allclose(K.matvec(x), dense @ x, atol=1e-12)
    np.testing.assert_allclose(K @ x, dense @ x, atol=1e-12)
    np.testing.assert_allclose(K.dot(X), dense @ X, atol=1e-12)
    np.testing.assert_allclose(K.matmat(X), dense @ X, atol=1e-12)
    assert K.matvec(x[:, None]).shape == (K.shape[0], 1)
    np.testing.assert_allclose(K.rmatvec(y), dense.T @ y, atol=1e-12)
    np.testing.assert_allclose(K.rmatmat(Y), dense.T @ Y, atol=1e-12)
    np.testing.assert_allclose(K.T @ y, dense.T @ y, atol=1e-12)
    np.testing.assert_allclose(K.H.matmat(Y), dense.T @ Y, atol=1e-12)
    np.testing.assert_allclose(K.diagonal(), np.diagonal(dense), atol=0)
    np.testing.assert_array_equal(K.todense(), dense)
    assert isinstance(K.T, KroneckerOperator)


@given(factor_shapes(max_dim=5), seeds)
def test_complex_factors_adjoint_conjugates(shapes, seed):
    rng = np.random.default_rng(seed)
    factors = [rng.standard_normal(s) + 1j * rng.standard_normal(s) for s in shapes]
    K, dense = KroneckerOperator(factors), dense_kron(factors)
    y = rng.standard_normal(K.shape[0]) + 1j * rng.standard_normal(K.shape[0])
    np.testing.assert_allclose(K.rmatvec(y), dense.conj().T @ y, atol=1e-12)
    np.testing.assert_allclose(K.H @ y, dense.conj().T @ y, atol=1e-12)
    np.testing.assert_allclose(K.T @ y, dense.T @ y, atol=1e-12)


def test_factor_order_is_that_of_np_kron_and_row_major_vec():
    A = np.array([[1.0, 2.0], [3.0, 5.0]])
    B = np.array([[2.0, -1.0, 0.0], [7.0, 0.5, 1.0], [0.0, 3.0, -4.0]])
    K = KroneckerOperator([A, B])
    x = np.arange(1.0, 7.0)
    np.testing.assert_allclose(K @ x, np.kron(A, B) @ x)
    assert not np.allclose(K @ x, np.kron(B, A) @ x)
    # (A ⊗ B) vec(X) = vec(A X B^T) with C-order vec, X of shape (2, 3).
    X = x.reshape(2, 3)
    np.testing.assert_allclose(K @ X.ravel(), (A @ X @ B.T).ravel())
    # Factor d acts along grid axis d of an "ij"-indexed grid.
    assert K.diagonal()[1] == A[0, 0] * B[1, 1]


def test_derivative_factors_rectangular_and_nonsymmetric():
    rng = np.random.default_rng(0)
    n1, n2 = 7, 5
    D1 = (np.eye(n1 - 1, n1, k=1) - np.eye(n1 - 1, n1)) * (n1 - 1)  # forward difference
    t = np.linspace(0.0, 1.0, n2)
    diff = t[:, None] - t[None, :]
    K2_dx = -diff / 0.3**2 * np.exp(-(diff**2) / (2 * 0.3**2))  # d/dx k(x, x'), antisymmetric
    K3 = spd(rng, 3)
    factors = [D1, K2_dx, K3]
    K, dense = KroneckerOperator(factors), dense_kron(factors)
    x, y = rng.standard_normal(K.shape[1]), rng.standard_normal(K.shape[0])
    np.testing.assert_allclose(K @ x, dense @ x, atol=1e-11)
    np.testing.assert_allclose(K.rmatvec(y), dense.T @ y, atol=1e-11)
    np.testing.assert_allclose(K.diagonal(), np.diagonal(dense), atol=0)


def test_single_factor_and_mixed_float_dtypes():
    rng = np.random.default_rng(1)
    A, B = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal((2, 2))
    np.testing.assert_allclose(KroneckerOperator([A]) @ np.ones(4), A @ np.ones(4), rtol=1e-6)
    K = KroneckerOperator([A, B])
    assert K.dtype == np.float64
    x32 = rng.standard_normal(8).astype(np.float32)
    np.testing.assert_allclose(K @ x32, dense_kron([A, B]) @ x32, rtol=1e-6, atol=1e-6)


def test_plugs_into_scipy_solvers_and_operator_algebra():
    rng = np.random.default_rng(2)
    factors = [spd(rng, 6), spd(rng, 5)]
    K = KroneckerOperator(factors)
    dense = dense_kron(factors) + 0.5 * np.eye(30)
    shifted = K + 0.5 * spla.aslinearoperator(sp.eye_array(30))
    b = rng.standard_normal(30)
    x, info = spla.cg(shifted, b, rtol=1e-12, atol=0.0)
    assert info == 0
    np.testing.assert_allclose(x, np.linalg.solve(dense, b), rtol=1e-8)
    R = KroneckerOperator([rng.standard_normal((4, 3)), rng.standard_normal((5, 2))])
    r = rng.standard_normal(20)
    sol = spla.lsqr(R, r, atol=1e-14, btol=1e-14)[0]
    np.testing.assert_allclose(sol, np.linalg.lstsq(R.todense(), r, rcond=None)[0], atol=1e-8)


# --------------------------------------------------------------------------- KroneckerSum


@given(factor_shapes(square=True), seeds, st.integers(1, 3))
def test_kronecker_sum_matches_dense(shapes, seed, k):
    rng = np.random.default_rng(seed)
    factors = [rng.standard_normal(s) for s in shapes]
    S, dense = KroneckerSum(factors), dense_sum(factors)
    n = dense.shape[0]
    x, X = rng.standard_normal(n), rng.standard_normal((n, k))
    np.testing.assert_allclose(S @ x, dense @ x, atol=1e-12)
    np.testing.assert_allclose(S.matmat(X), dense @ X, atol=1e-12)
    np.testing.assert_allclose(S.rmatvec(x), dense.T @ x, atol=1e-12)
    np.testing.assert_allclose(S.T @ X, dense.T @ X, atol=1e-12)
    np.testing.assert_allclose(S.diagonal(), np.diagonal(dense), atol=1e-14)
    np.testing.assert_allclose(S.todense(), dense, atol=0)


@given(factor_shapes(square=True), seeds, st.floats(-3.0, 3.0))
def test_kronecker_sum_solve_matches_dense(shapes, seed, shift):
    rng = np.random.default_rng(seed)
    factors = [(a + a.T) / 2 for a in (rng.standard_normal(s) for s in shapes)]
    dense = dense_sum(factors) + shift * np.eye(math.prod(m for m, _ in shapes))
    if np.min(np.abs(np.linalg.eigvalsh(dense))) < 1e-3:
        return  # too close to singular for a meaningful comparison
    b = rng.standard_normal((dense.shape[0], 2))
    x = KroneckerSum(factors).solve(b, shift=shift)
    np.testing.assert_allclose(x, np.linalg.solve(dense, b), rtol=1e-7, atol=1e-7)
    F = kron_eigh(KroneckerSum(factors), shift)
    np.testing.assert_allclose(F.inv_quad(b), np.einsum("ik,ik->k", b, np.linalg.solve(dense, b)))
    if F.positive_definite:
        np.testing.assert_allclose(F.logdet(), np.linalg.slogdet(dense)[1], rtol=1e-9, atol=1e-9)
    else:
        with pytest.raises(ValueError, match="logdet needs K \\+ shift\\*I positive definite"):
            F.logdet()


# ------------------------------------------------------------------------------ kron_eigh


@given(factor_shapes(square=True), seeds, st.sampled_from([0.0, 1e-3, 0.1, 2.0]))
def test_kron_eigh_matches_dense(shapes, seed, shift):
    rng = np.random.default_rng(seed)
    factors = [spd(rng, m) for m, _ in shapes]
    n = math.prod(m for m, _ in shapes)
    dense = dense_kron(factors) + shift * np.eye(n)
    F = kron_eigh(KroneckerOperator(factors), shift=shift)
    assert isinstance(F, KroneckerEigh) and F.shape == (n, n) and F.positive_definite
    b, B = rng.standard_normal(n), rng.standard_normal((n, 3))
    np.testing.assert_allclose(F.solve(b), np.linalg.solve(dense, b), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(F.solve(B), np.linalg.solve(dense, B), rtol=1e-8, atol=1e-10)
    sign, logdet = np.linalg.slogdet(dense)
    assert sign == 1
    np.testing.assert_allclose(F.logdet(), logdet, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(F.inv_quad(b), b @ np.linalg.solve(dense, b), rtol=1e-9)
    np.testing.assert_allclose(
        F.inv_quad(B), np.einsum("ik,ik->k", B, np.linalg.solve(dense, B)), rtol=1e-9
    )
    np.testing.assert_allclose(
        np.sort(F.shifted_eigenvalues()), np.linalg.eigvalsh(dense), rtol=1e-9, atol=1e-12
    )


@given(seeds, st.floats(1e-4, 1.0))
def test_rank_deficient_kernel_factors_with_noise(seed, shift):
    # Squared-exponential-like PSD factors: some eigenvalues are rounding noise of
    # either sign; a positive shift makes the operator positive definite.
    rng = np.random.default_rng(seed)
    factors = [spd(rng, 6, rank=2), spd(rng, 5, rank=3), spd(rng, 4, rank=4)]
    dense = dense_kron(factors) + shift * np.eye(120)
    F = kron_eigh(factors, shift)
    b = rng.standard_normal(120)
    np.testing.assert_allclose(F.solve(b), np.linalg.solve(dense, b), rtol=1e-7)
    np.testing.assert_allclose(F.logdet(), np.linalg.slogdet(dense)[1], rtol=1e-9)


def test_float32_factorisation_on_request_float64_by_default():
    rng = np.random.default_rng(7)
    factors = [spd(rng, 5).astype(np.float32), spd(rng, 4).astype(np.float32)]
    dense = dense_kron([f.astype(np.float64) for f in factors]) + 0.1 * np.eye(20)
    b = rng.standard_normal(20)
    assert kron_eigh(factors, 0.1).solve(b).dtype == np.float64
    F32 = kron_eigh(factors, 0.1, dtype=np.float32)
    assert F32.dtype == np.float32 and F32.solve(b).dtype == np.float32
    np.testing.assert_allclose(F32.solve(b), np.linalg.solve(dense, b), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(F32.logdet(), np.linalg.slogdet(dense)[1], rtol=1e-5)


def test_two_negative_definite_factors_give_a_positive_definite_product():
    rng = np.random.default_rng(3)
    factors = [-spd(rng, 4), -spd(rng, 3)]
    dense = dense_kron(factors)
    F = kron_eigh(factors)
    np.testing.assert_allclose(F.logdet(), np.linalg.slogdet(dense)[1], rtol=1e-10)


def test_logdet_neither_overflows_nor_underflows():
    big, tiny = 1e200, 1e-200
    F = kron_eigh([big * np.eye(2), big * np.eye(3)], 1.0)
    np.testing.assert_allclose(F.logdet(), 6 * 400 * math.log(10), rtol=1e-14)
    np.testing.assert_array_equal(F.solve(np.ones(6)), np.zeros(6))  # 1e-400 underflows
    F = kron_eigh([tiny * np.eye(2), tiny * np.eye(3)], 1.0)
    assert F.logdet() == 0.0
    np.testing.assert_array_equal(F.solve(np.ones(6)), np.ones(6))
    F = kron_eigh([tiny * np.eye(2), tiny * np.eye(3)])
    np.testing.assert_allclose(F.logdet(), -6 * 400 * math.log(10), rtol=1e-14)
    F = kron_eigh([1e-100 * np.eye(2), 1e-100 * np.eye(3), 1e-100 * np.eye(2)])
    np.testing.assert_allclose(F.solve(np.ones(12)), 1e300 * np.ones(12), rtol=1e-12)
    F = kron_eigh([np.zeros((2, 2)), np.eye(3)], 0.5)  # K = 0: K + shift I = shift I
    np.testing.assert_allclose(F.logdet(), 6 * math.log(0.5))


@pytest.mark.parametrize(
    ("factors", "shift", "match"),
    [
        ([np.diag([1.0, -1.0]), np.eye(2)], 0.5, r"not positive definite \(indefinite\)"),
        ([np.diag([1.0, 0.0]), np.eye(3)], 0.0, "singular to working precision"),
        ([np.diag([1.0, 1e-17]), np.diag([2.0, 3.0])], 0.0, "singular to working precision"),
        ([np.diag([1.0, 1.0]), np.diag([1.0, 3.0])], 1e-300, None),
    ],
)
def test_not_positive_definite_is_reported_never_clamped(factors, shift, match):
    if match is None:
        kron_eigh(factors, shift)  # tiny shift but a positive definite K: fine
        return
    with pytest.raises(ValueError, match=match):
        kron_eigh(factors, shift)


def test_singular_kronecker_sum_is_reported():
    lap = np.array([[1.0, -1.0], [-1.0, 1.0]])  # Neumann Laplacian: eigenvalue 0
    with pytest.raises(ValueError, match="singular to working precision"):
        KroneckerSum([lap, lap]).solve(np.ones(4))


# -------------------------------------------------------------------------------- torch


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def test_torch_inputs_give_torch_outputs_equal_to_numpy(torch):
    rng = np.random.default_rng(4)
    shapes = [(3, 4), (2, 2), (5, 3)]
    factors = [rng.standard_normal(s) for s in shapes]
    tf = [torch.from_numpy(f) for f in factors]
    K, Kt = KroneckerOperator(factors), KroneckerOperator(tf)
    assert Kt.dtype == torch.float64
    x, X = rng.standard_normal(K.shape[1]), rng.standard_normal((K.shape[1], 2))
    y = rng.standard_normal(K.shape[0])
    for got, want in [
        (Kt @ torch.from_numpy(x), K @ x),
        (Kt.matmat(torch.from_numpy(X)), K.matmat(X)),
        (Kt.rmatvec(torch.from_numpy(y)), K.rmatvec(y)),
        (Kt.T @ torch.from_numpy(y), K.T @ y),
        (Kt.diagonal(), K.diagonal()),
        (Kt.todense(), K.todense()),
    ]:
        assert isinstance(got, torch.Tensor)
        np.testing.assert_allclose(got.numpy(), want, atol=1e-12)
    sq = [spd(rng, n) for n in (3, 4)]
    S, St = KroneckerSum(sq), KroneckerSum([torch.from_numpy(f) for f in sq])
    v = rng.standard_normal(12)
    np.testing.assert_allclose((St @ torch.from_numpy(v)).numpy(), S @ v, atol=1e-12)
    np.testing.assert_allclose(St.diagonal().numpy(), S.diagonal())
    F, Ft = kron_eigh(sq, 0.1), kron_eigh([torch.from_numpy(f) for f in sq], 0.1)
    bt = torch.from_numpy(v)
    np.testing.assert_allclose(Ft.solve(bt).numpy(), F.solve(v), rtol=1e-12)
    np.testing.assert_allclose(Ft.logdet().item(), F.logdet(), rtol=1e-12)
    np.testing.assert_allclose(Ft.inv_quad(bt).item(), F.inv_quad(v), rtol=1e-12)
    f32 = KroneckerOperator([t.float() for t in tf])
    assert (f32 @ torch.from_numpy(x)).dtype == torch.float64  # promoted, not refused
    with pytest.raises(TypeError, match="x must come from the same array library"):
        Kt @ x
    with pytest.raises(TypeError, match="factors must all come from one array library"):
        KroneckerOperator([factors[0], tf[1]])


def test_torch_logdet_is_differentiable_like_the_dense_one(torch):
    rng = np.random.default_rng(5)
    a = torch.tensor(spd(rng, 3), requires_grad=True)
    b = torch.tensor(spd(rng, 4), requires_grad=True)
    kron_eigh([a, b], 0.2).logdet().backward()
    ga, gb = a.grad.clone(), b.grad.clone()
    a.grad, b.grad = None, None
    torch.logdet(torch.kron(a, b) + 0.2 * torch.eye(12, dtype=torch.float64)).backward()
    np.testing.assert_allclose(ga.numpy(), a.grad.numpy(), rtol=1e-8)
    np.testing.assert_allclose(gb.numpy(), b.grad.numpy(), rtol=1e-8)


# ------------------------------------------------------------------------------- errors


GOOD = np.eye(2)


@pytest.mark.parametrize(
    ("factors", "error", "match"),
    [
        (np.eye(2), TypeError, "factors must be a list or tuple of 2-D arrays, got ndarray"),
        ([], ValueError, "factors must not be empty"),
        ([GOOD, np.ones(3)], ValueError, r"factors\[1\] must be 2-D, got shape \(3,\)"),
        ([np.ones((2, 2, 2))], ValueError, r"factors\[0\] must be 2-D"),
        ([GOOD, np.ones((0, 3))], ValueError, r"factors\[1\] must not be empty"),
        ([GOOD, np.array([[1.0, np.nan]])], ValueError, r"factors\[1\] contains NaN or Inf"),
        ([np.array([[np.inf]])], ValueError, r"factors\[0\] contains NaN or Inf"),
        ([np.eye(2, dtype=int)], TypeError, r"factors\[0\] must have a floating-point dtype"),
        ([sp.eye_array(2)], TypeError, r"factors\[0\] must be a dense 2-D array"),
        ([[[1.0]]], TypeError, r"factors\[0\] must be a dense 2-D array, got list"),
    ],
)
def test_bad_factors_are_rejected(factors, error, match):
    with pytest.raises(error, match=match):
        KroneckerOperator(factors)


def test_kronecker_sum_needs_square_factors():
    with pytest.raises(ValueError, match=r"factors\[1\] must be square, got shape \(2, 3\)"):
        KroneckerSum([GOOD, np.ones((2, 3))])


@pytest.mark.parametrize(
    ("x", "error", "match"),
    [
        (np.ones(5), ValueError, "x must have 6 rows to match the operator, got 5"),
        (np.ones((6, 2, 1)), ValueError, r"x must be 1-D or 2-D, got shape \(6, 2, 1\)"),
        (np.ones(6, dtype=int), TypeError, "x must have a floating-point dtype"),
        (np.full(6, np.nan), ValueError, "x contains NaN or Inf"),
        (np.ones((6, 0)), ValueError, "x must not be empty"),
        ([1.0] * 6, TypeError, "x must be a dense array, got list"),
    ],
)
def test_bad_vectors_are_rejected(x, error, match):
    K = KroneckerOperator([np.ones((2, 2)), np.ones((3, 3))])
    with pytest.raises(error, match=match):
        K @ x


def test_matmat_and_matvec_shapes_are_enforced():
    K = KroneckerOperator([np.ones((2, 2)), np.ones((3, 3))])
    with pytest.raises(ValueError, match="X must be 2-D"):
        K.matmat(np.ones(6))
    with pytest.raises(ValueError, match=r"x must have shape \(6,\) or \(6, 1\)"):
        K.matvec(np.ones((6, 2)))
    with pytest.raises(ValueError, match="x must have 2 rows"):
        KroneckerOperator([np.ones((2, 3))]).rmatvec(np.ones(3))


@pytest.mark.parametrize(
    ("K", "kwargs", "error", "match"),
    [
        ([GOOD, GOOD], {"shift": -1e-3}, ValueError, "shift must be >= 0"),
        ([GOOD, GOOD], {"shift": math.nan}, ValueError, "shift must be finite"),
        ([GOOD, GOOD], {"shift": "1"}, TypeError, "shift must be a real number"),
        ([GOOD, np.ones((2, 3))], {}, ValueError, r"K\[1\] must be square"),
        ([GOOD, np.array([[1.0, 2.0], [0.0, 1.0]])], {}, ValueError, r"K\[1\] must be symmetric"),
        ([GOOD, GOOD * 1j], {}, TypeError, r"K\[1\] must be real"),
        ([GOOD], {"dtype": np.int32}, TypeError, "dtype must be a real floating dtype"),
        ([GOOD], {"symmetry_rtol": -1.0}, ValueError, "symmetry_rtol must be >= 0"),
        ([GOOD], {"symmetry_rtol": None}, TypeError, "symmetry_rtol must be a real number"),
        (np.eye(2), {}, TypeError, "K must be a KroneckerOperator, a KroneckerSum or a list"),
    ],
)
def test_bad_factorisation_arguments_are_rejected(K, kwargs, error, match):
    with pytest.raises(error, match=match):
        kron_eigh(K, **kwargs)


def test_operator_factors_are_named_when_not_symmetric():
    K = KroneckerOperator([GOOD, np.array([[1.0, 2.0], [0.0, 1.0]])])
    with pytest.raises(ValueError, match=r"K.factors\[1\] must be symmetric"):
        kron_eigh(K, 1.0)


def test_solve_checks_b():
    F = kron_eigh([GOOD, np.eye(3)], 1.0)
    with pytest.raises(ValueError, match="b must have 6 rows"):
        F.solve(np.ones(5))
    with pytest.raises(ValueError, match="b contains NaN or Inf"):
        F.inv_quad(np.full(6, np.inf))
    with pytest.raises(TypeError, match="b must have a floating-point dtype"):
        F.solve(np.ones(6, dtype=np.int64))


def test_inputs_are_not_modified():
    rng = np.random.default_rng(6)
    factors = [spd(rng, 3), spd(rng, 4)]
    kept = [f.copy() for f in factors]
    b, B = rng.standard_normal(12), rng.standard_normal((12, 2))
    b0, B0 = b.copy(), B.copy()
    K = KroneckerOperator(factors)
    K @ b, K.matmat(B), K.rmatvec(b), K.diagonal(), K.todense(), K.T @ b
    S = KroneckerSum(factors)
    S @ b, S.matmat(B), S.solve(b, 0.5), S.diagonal()
    F = kron_eigh(K, 0.1)
    F.solve(b), F.solve(B), F.inv_quad(B), F.logdet()
    for f, k in zip(factors, kept, strict=True):
        np.testing.assert_array_equal(f, k)
    np.testing.assert_array_equal(b, b0)
    np.testing.assert_array_equal(B, B0)


def test_numlib_cg_solves_with_a_kronecker_sum_in_numpy_and_torch():
    torch = pytest.importorskip("torch")
    from solvers.krylov import cg

    rng = np.random.default_rng(8)
    factors = []
    for n in (6, 7):
        g = rng.standard_normal((n, n))
        factors.append(g @ g.T + n * np.eye(n))
    b = rng.standard_normal(42)
    dense = np.kron(factors[0], np.eye(7)) + np.kron(np.eye(6), factors[1])
    reference = np.linalg.solve(dense, b)
    result = cg(KroneckerSum(factors), b, rtol=1e-12)
    np.testing.assert_allclose(result.x, reference, rtol=1e-9)
    as_torch = KroneckerSum([torch.from_numpy(f) for f in factors])
    result = cg(as_torch, torch.from_numpy(b), rtol=1e-12)
    assert isinstance(result.x, torch.Tensor)
    np.testing.assert_allclose(result.x.numpy(), reference, rtol=1e-9)
