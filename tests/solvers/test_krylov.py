"""Properties of CG and GMRES(m) against dense and sparse-direct references."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from hypothesis import given, settings
from hypothesis import strategies as st
from matrices import orthogonal

from numlib.result import ConvergenceWarning
from solvers.krylov import cg, gmres

OPERATOR_KINDS = ("dense", "csr", "linear_operator")


def as_kind(A: np.ndarray, kind: str):
    if kind == "dense":
        return A
    if kind == "csr":
        return sp.csr_array(A)
    return spla.aslinearoperator(A)


@st.composite
def spd_systems(draw, max_n: int = 60):
    """SPD matrices with a prescribed condition number, and a right-hand side."""
    n = draw(st.integers(1, max_n))
    log_cond = draw(st.floats(0.0, 6.0))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    eigenvalues = np.logspace(0.0, log_cond, n)
    q = orthogonal(rng, n)
    A = (q * eigenvalues) @ q.T
    A = (A + A.T) / 2
    return A, rng.standard_normal(n), 10.0**log_cond


@st.composite
def nonsymmetric_systems(draw, max_n: int = 50):
    """Nonsymmetric matrices U diag(s) V^T with singular values in [1, cond]."""
    n = draw(st.integers(1, max_n))
    log_cond = draw(st.floats(0.0, 3.0))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    s = np.logspace(0.0, log_cond, n)
    A = (orthogonal(rng, n) * s) @ orthogonal(rng, n).T
    return A, rng.standard_normal(n), 10.0**log_cond


@st.composite
def positive_real_systems(draw, max_n: int = 50):
    """A = S + K, S SPD and K skew: the field of values excludes 0, so restarted
    GMRES(m) converges for every m >= 1 (Elman's bound)."""
    n = draw(st.integers(1, max_n))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    q = orthogonal(rng, n)
    S = (q * np.linspace(1.0, draw(st.floats(1.0, 20.0)), n)) @ q.T
    G = rng.standard_normal((n, n)) * draw(st.floats(0.0, 2.0)) / np.sqrt(n)
    return (S + S.T) / 2 + (G - G.T) / 2, rng.standard_normal(n)


def true_residual(A: np.ndarray, x: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(b - A @ x))


@given(spd_systems(), st.sampled_from(OPERATOR_KINDS), st.sampled_from([1e-4, 1e-8, 1e-10]))
def test_cg_converged_means_tolerance_met_and_matches_direct_solve(system, kind, rtol):
    A, b, cond = system
    result = cg(as_kind(A, kind), b, rtol=rtol, maxiter=20 * len(b))
    assert result.converged
    assert true_residual(A, result.x, b) <= rtol * np.linalg.norm(b)
    reference = spla.spsolve(sp.csc_array(A), b) if len(b) > 1 else b / A[0, 0]
    # ||x - x*|| / ||x*|| <= cond(A) ||r|| / ||b||, with slack for rounding.
    error = np.linalg.norm(result.x - reference) / np.linalg.norm(reference)
    assert error <= 2 * cond * rtol + 1e-12 * cond
    assert result.residual_norms[0] == pytest.approx(np.linalg.norm(b))
    assert len(result.residual_norms) == result.iterations + 1


@given(nonsymmetric_systems(), st.sampled_from(OPERATOR_KINDS))
def test_full_gmres_converges_within_n_iterations(system, kind):
    A, b, cond = system
    n = len(b)
    result = gmres(as_kind(A, kind), b, restart=n, rtol=1e-8)
    assert result.converged
    assert result.iterations <= n
    assert true_residual(A, result.x, b) <= 1e-8 * np.linalg.norm(b)
    reference = np.linalg.solve(A, b)
    assert np.linalg.norm(result.x - reference) <= 2e-8 * cond * np.linalg.norm(reference)


@given(positive_real_systems(), st.integers(1, 30), st.sampled_from(OPERATOR_KINDS))
def test_restarted_gmres_meets_tolerance(system, restart, kind):
    A, b = system
    result = gmres(as_kind(A, kind), b, restart=restart, rtol=1e-9, maxiter=100 * len(b))
    assert result.converged
    assert true_residual(A, result.x, b) <= 1e-9 * np.linalg.norm(b)
    assert result.info["cycles"] >= result.iterations / min(restart, len(b))
    # GMRES minimises the residual within a cycle, so the history never rises there.
    history = result.residual_norms
    assert np.all(np.diff(history[: min(restart, len(b)) + 1]) <= 1e-12 * history[0])


@settings(max_examples=30)
@given(
    st.integers(1, 8),
    st.integers(0, 40),
    st.integers(0, 2**32 - 1),
)
def test_cg_terminates_in_number_of_distinct_eigenvalues(k, extra, seed):
    rng = np.random.default_rng(seed)
    n = k + extra
    distinct = np.sort(rng.uniform(1.0, 10.0, size=k))
    eigenvalues = np.concatenate([distinct, rng.choice(distinct, size=extra)])
    q = orthogonal(rng, n)
    A = (q * eigenvalues) @ q.T
    b = rng.standard_normal(n)
    result = cg((A + A.T) / 2, b, rtol=1e-8)
    assert result.converged
    assert result.iterations <= k


@given(spd_systems(max_n=30))
def test_preconditioned_cg_matches_unpreconditioned_solution(system):
    A, b, _ = system
    jacobi = sp.diags_array(1.0 / np.diag(A))
    result = cg(A, b, M=jacobi, rtol=1e-10, maxiter=40 * len(b))
    assert result.converged
    assert true_residual(A, result.x, b) <= 1e-10 * np.linalg.norm(b)


def test_gmres_with_ilu_preconditioner_on_sparse_system():
    rng = np.random.default_rng(3)
    n = 400
    A = sp.random_array((n, n), density=0.01, rng=rng) + sp.diags_array(4.0 + rng.random(n))
    A = sp.csc_array(A)
    b = rng.standard_normal(n)
    ilu = spla.spilu(A, drop_tol=1e-4)
    M = spla.LinearOperator((n, n), matvec=ilu.solve, dtype=float)
    plain = gmres(A, b, restart=20, rtol=1e-10)
    preconditioned = gmres(A, b, restart=20, rtol=1e-10, M=M)
    assert plain.converged and preconditioned.converged
    assert preconditioned.iterations < plain.iterations
    assert np.allclose(preconditioned.x, spla.spsolve(A, b), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("solver", [cg, gmres])
def test_complex_hermitian_and_general_systems(solver):
    rng = np.random.default_rng(7)
    n = 40
    G = rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))
    A = G @ G.conj().T + n * np.eye(n) if solver is cg else G + 3 * np.sqrt(n) * np.eye(n)
    b = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    result = solver(A, b, rtol=1e-10)
    assert result.converged
    assert np.iscomplexobj(result.x)
    assert np.allclose(result.x, np.linalg.solve(A, b), rtol=1e-7)


@pytest.mark.parametrize("solver", [cg, gmres])
def test_torch_inputs_compute_in_torch(solver):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    n = 30
    G = rng.standard_normal((n, n))
    A = G @ G.T + n * np.eye(n)
    b = rng.standard_normal(n)
    result = solver(torch.from_numpy(A), torch.from_numpy(b), rtol=1e-10)
    assert isinstance(result.x, torch.Tensor)
    assert result.converged
    np.testing.assert_allclose(result.x.numpy(), np.linalg.solve(A, b), rtol=1e-8)


@pytest.mark.parametrize("solver", [cg, gmres])
def test_zero_rhs_returns_zero(solver):
    A = np.diag([1.0, 2.0, 3.0])
    result = solver(A, np.zeros(3))
    assert result.converged and result.iterations == 0
    assert np.all(result.x == 0)


def test_cg_callback_sees_every_iterate():
    A = np.diag(np.arange(1.0, 21.0))
    b = np.ones(20)
    seen = []
    result = cg(A, b, rtol=1e-10, callback=lambda xk: seen.append(xk.copy()))
    assert len(seen) == result.iterations
    np.testing.assert_allclose(seen[-1], result.x)


def test_x0_is_used_and_not_modified():
    A = np.diag(np.arange(1.0, 11.0))
    b = np.arange(1.0, 11.0)
    x0 = np.ones(10)
    for solver in (cg, gmres):
        result = solver(A, b, x0=x0, rtol=1e-12)
        assert result.converged and result.iterations == 0
        assert result.x is not x0
        np.testing.assert_array_equal(x0, np.ones(10))


@given(spd_systems(max_n=20), st.sampled_from([cg, gmres]))
def test_inputs_are_not_modified(system, solver):
    A, b, _ = system
    A_copy, b_copy = A.copy(), b.copy()
    x0 = np.zeros_like(b)
    solver(A, b, x0=x0, rtol=1e-8, maxiter=50 * len(b))
    np.testing.assert_array_equal(A, A_copy)
    np.testing.assert_array_equal(b, b_copy)
    np.testing.assert_array_equal(x0, 0.0)


@pytest.mark.parametrize("solver", [cg, gmres])
def test_iteration_limit_reports_non_convergence(solver):
    n = 200
    A = sp.diags_array([-1.0, 2.0, -1.0], offsets=[-1, 0, 1], shape=(n, n))
    b = np.ones(n)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        result = solver(A, b, rtol=1e-12, maxiter=5)
    assert not result.converged
    assert result.iterations == 5
    assert result.info["true_residual_norm"] == pytest.approx(np.linalg.norm(b - A @ result.x))


@pytest.mark.parametrize("solver", [cg, gmres])
def test_non_finite_products_are_reported_as_such(solver):
    # A NaN residual compares false with the tolerance; it must not read as a spent budget.
    def product(v):
        out = 2.0 * v
        out[0] = np.nan
        return out

    A = spla.LinearOperator((6, 6), matvec=product, dtype=np.float64)
    with pytest.warns(ConvergenceWarning, match="NaN or Inf"):
        result = solver(A, np.ones(6), maxiter=50)
    assert not result.converged
    assert "NaN or Inf" in result.info["breakdown"]


def test_cg_detects_indefinite_matrix():
    A = np.diag([1.0, 2.0, -3.0, 4.0])
    with pytest.warns(ConvergenceWarning, match="not positive definite"):
        result = cg(A, np.ones(4), rtol=1e-10)
    assert not result.converged
    assert "A is not positive definite" in result.info["breakdown"]


def test_cg_detects_indefinite_preconditioner():
    A = np.diag([1.0, 2.0, 3.0, 4.0])
    with pytest.warns(ConvergenceWarning, match="M is not positive definite"):
        result = cg(A, np.ones(4), M=-np.eye(4), rtol=1e-10)
    assert not result.converged


def test_gmres_on_singular_matrix_reports_breakdown():
    A = np.array([[1.0, 0.0], [0.0, 0.0]])
    with pytest.warns(ConvergenceWarning, match="invariant"):
        result = gmres(A, np.array([1.0, 1.0]), restart=2, rtol=1e-10)
    assert not result.converged
    assert np.all(np.isfinite(result.x))


@pytest.mark.parametrize("preconditioned", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_gmres_stagnating_at_rounding_level_does_not_blame_the_matrix(seed, preconditioned):
    """A tolerance below attainable accuracy is not a singular matrix: the residual
    stagnates at rounding level, and the report says so."""
    rng = np.random.default_rng(seed)
    n = 10
    A = rng.standard_normal((n, n)) / np.sqrt(n) + 3 * np.eye(n)  # well conditioned
    b = rng.standard_normal(n)
    M = np.diag(1 / np.diag(A)) if preconditioned else None
    with pytest.warns(ConvergenceWarning, match="rounding level"):
        result = gmres(A, b, restart=n, rtol=1e-300, maxiter=10 * n, M=M)
    assert not result.converged
    assert "singular" not in result.info["breakdown"]
    assert true_residual(A, result.x, b) <= 1e-14 * np.linalg.norm(b)


def test_gmres_on_a_singular_matrix_reports_it_and_keeps_the_best_iterate():
    """b outside range(A): no cycle may return an iterate worse than the one before it.

    The least-squares solution of diag(1, 0, 2) x = 1 has residual 1; the nearly singular
    Hessenberg problem once gave ||x|| ~ 1e46 and a residual of 1e14.
    """
    A = np.diag([1.0, 0.0, 2.0])
    b = np.ones(3)
    with pytest.warns(ConvergenceWarning, match="singular"):
        result = gmres(A, b, restart=3, rtol=1e-10)
    assert not result.converged
    assert np.all(np.isfinite(result.x))
    assert true_residual(A, result.x, b) <= np.linalg.norm(b)
    np.testing.assert_allclose(true_residual(A, result.x, b), 1.0, rtol=1e-8)


@pytest.mark.parametrize("seed", range(6))
def test_gmres_never_returns_a_worse_iterate_on_rank_deficient_systems(seed):
    rng = np.random.default_rng(seed)
    n, rank = 12, 7
    A = rng.standard_normal((n, rank)) @ rng.standard_normal((rank, n))
    b = rng.standard_normal(n)  # generically outside range(A)
    x0 = rng.standard_normal(n)
    with pytest.warns(ConvergenceWarning):
        result = gmres(A, b, x0=x0, restart=5, rtol=1e-10, maxiter=200)
    assert not result.converged
    assert np.all(np.isfinite(result.x))
    assert true_residual(A, result.x, b) <= true_residual(A, x0, b) * (1 + 1e-12)


GOOD_A = np.eye(3)
GOOD_B = np.ones(3)


@pytest.mark.parametrize("solver", [cg, gmres])
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"A": np.array([[1.0, np.nan], [0.0, 1.0]]), "b": np.ones(2)}, ValueError, "A contains"),
        ({"b": np.array([1.0, np.inf, 1.0])}, ValueError, "b contains"),
        ({"b": np.ones(4)}, ValueError, "A must be 4 x 4"),
        ({"A": np.ones((3, 2))}, ValueError, "A must be square"),
        ({"A": np.ones((0, 0)), "b": np.ones(0)}, ValueError, "b must not be empty"),
        ({"A": np.eye(3, dtype=int)}, TypeError, "A must have a floating-point dtype"),
        ({"b": np.ones(3, dtype=int)}, TypeError, "b must have a floating-point dtype"),
        ({"b": np.ones((3, 1))}, ValueError, "b must be 1-D"),
        ({"A": "matrix"}, TypeError, "A must be an array"),
        ({"rtol": -1e-3}, ValueError, "rtol must be finite and >= 0"),
        ({"atol": float("nan")}, ValueError, "atol"),
        ({"rtol": 0.0, "atol": 0.0}, ValueError, "rtol and atol must not both be 0"),
        ({"rtol": 0, "atol": 0}, ValueError, "rtol and atol must not both be 0"),
        ({"maxiter": 0}, ValueError, "maxiter must be >= 1"),
        ({"maxiter": 2.5}, TypeError, "maxiter must be an integer"),
        ({"x0": np.ones(2)}, ValueError, "x0 must have length 3"),
        ({"M": np.eye(2)}, ValueError, "M must be 3 x 3"),
        ({"callback": 3}, TypeError, "callback must be callable"),
        (
            {"A": sp.csr_array(np.array([[1.0, np.inf], [0.0, 1.0]])), "b": np.ones(2)},
            ValueError,
            "A contains",
        ),
    ],
)
def test_bad_input_is_rejected_before_any_work(solver, kwargs, error, match):
    args = {"A": GOOD_A, "b": GOOD_B} | kwargs
    with pytest.raises(error, match=match):
        solver(args.pop("A"), args.pop("b"), **args)


def test_gmres_rejects_bad_restart_and_reorthogonalize():
    with pytest.raises(ValueError, match="restart must be >= 1"):
        gmres(GOOD_A, GOOD_B, restart=0)
    with pytest.raises(ValueError, match="reorthogonalize must be one of"):
        gmres(GOOD_A, GOOD_B, reorthogonalize="twice")


def test_no_warning_when_converged():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cg(np.eye(5) * 2.0, np.ones(5))
