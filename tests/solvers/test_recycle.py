"""solve_sequence: every answer meets the tolerance, in the caller's order."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from hypothesis import given, settings
from hypothesis import strategies as st

from numlib.result import ConvergenceWarning
from solvers.problems import convection_diffusion, darcy, darcy_skr, helmholtz, poisson2d
from solvers.recycle import STRATEGIES, solve_sequence

RTOL = 1e-8


def darcy_family(count: int = 8, n: int = 16) -> list:
    return [darcy(n, rng=np.random.default_rng([5, i])) for i in range(count)]


def convection_family(count: int = 6, n: int = 16) -> list:
    rng = np.random.default_rng(9)
    return [
        convection_diffusion(n, float(rng.uniform(5, 30)), angle=float(rng.uniform(0, 1.5)))
        for _ in range(count)
    ]


def assert_solved(systems, out, rtol=RTOL):
    assert len(out.solutions) == len(systems)
    for system, x, result in zip(systems, out.solutions, out.results, strict=True):
        residual = np.linalg.norm(system.b - system.A @ x)
        assert result.converged
        assert residual <= rtol * np.linalg.norm(system.b)
        reference = spla.spsolve(sp.csc_array(system.A), system.b)
        np.testing.assert_allclose(x, reference, rtol=1e-4, atol=1e-8 * np.abs(reference).max())
    assert sorted(out.order.tolist()) == list(range(len(systems)))


SPD_STRATEGIES = ["auto", "amg-reuse", "gcrodr", "deflated-cg", "warm-start", "cg", "gmres"]


@pytest.mark.parametrize("strategy", SPD_STRATEGIES)
def test_spd_family_every_strategy_meets_tolerance(strategy):
    systems = darcy_family()
    out = solve_sequence(systems, strategy=strategy, rtol=RTOL)
    assert_solved(systems, out)
    assert out.strategy == ("amg-reuse" if strategy == "auto" else strategy)


NONSYMMETRIC_STRATEGIES = ["auto", "lu-reuse", "ilu-reuse", "gcrodr", "warm-start", "gmres"]


@pytest.mark.parametrize("strategy", NONSYMMETRIC_STRATEGIES)
def test_nonsymmetric_family_every_strategy_meets_tolerance(strategy):
    systems = convection_family()
    out = solve_sequence(systems, strategy=strategy, rtol=RTOL, m=20, k=5)
    assert_solved(systems, out)
    assert out.strategy == ("lu-reuse" if strategy == "auto" else strategy)


def test_constant_matrix_is_factorised_once():
    A = poisson2d(20).A
    rng = np.random.default_rng(1)
    systems = [(A, rng.standard_normal(A.shape[0])) for _ in range(5)]
    out = solve_sequence(systems)
    assert out.strategy == "direct"
    assert "factorise once" in out.info["reason"]
    for (_, b), x in zip(systems, out.solutions, strict=True):
        np.testing.assert_allclose(A @ x, b, atol=1e-9 * np.linalg.norm(b))


def test_dense_constant_matrix_and_linear_operators():
    rng = np.random.default_rng(2)
    A = np.eye(30) * 3 + rng.standard_normal((30, 30)) / 6
    rhs = [rng.standard_normal(30) for _ in range(4)]
    dense = solve_sequence([(A, b) for b in rhs])
    assert dense.strategy == "direct"
    operator = spla.aslinearoperator(A)
    recycled = solve_sequence([(operator, b) for b in rhs], rtol=1e-10, m=10, k=3)
    assert recycled.strategy == "gcrodr"
    for b, x1, x2 in zip(rhs, dense.solutions, recycled.solutions, strict=True):
        np.testing.assert_allclose(x1, np.linalg.solve(A, b), rtol=1e-9)
        np.testing.assert_allclose(x2, np.linalg.solve(A, b), rtol=1e-7)


@settings(max_examples=10)
@given(st.permutations(range(6)), st.sampled_from(["gcrodr", "amg-reuse", "cg"]))
def test_explicit_order_is_followed_and_answers_return_in_caller_order(permutation, strategy):
    systems = darcy_family(6, 12)
    solved_in = []
    out = solve_sequence(
        systems,
        strategy=strategy,
        order=np.array(permutation),
        rtol=RTOL,
        progress=lambda done, total: solved_in.append(done),
    )
    assert out.order.tolist() == list(permutation)
    assert solved_in == list(range(1, 7))
    assert_solved(systems, out)


@pytest.mark.parametrize("order", ["greedy", "curve", "none"])
def test_orderings_are_permutations(order):
    systems = darcy_family(7, 12)
    out = solve_sequence(systems, strategy="gcrodr", order=order, rtol=RTOL)
    assert sorted(out.order.tolist()) == list(range(7))
    if order == "none":
        assert out.order.tolist() == list(range(7))


def test_greedy_order_shortens_the_path_through_parameter_space():
    systems = darcy_family(12, 12)
    features = np.stack([s.params["coefficient"].ravel() for s in systems])
    greedy = solve_sequence(systems, strategy="cg", order="greedy", features=features)
    unsorted = solve_sequence(systems, strategy="cg", order="none", features=features)
    assert greedy.info["path_length"] <= unsorted.info["path_length"]


def test_inputs_are_not_modified():
    A = sp.csr_array(
        (np.array([2.0, 1.0, 3.0, -1.0, 4.0]), np.array([1, 0, 1, 0, 1]), np.array([0, 2, 5])),
        shape=(2, 2),
    )  # row 1 holds a duplicate entry: not canonical
    snapshot = (A.data.copy(), A.indices.copy(), A.indptr.copy())
    b = np.array([1.0, 2.0])
    solve_sequence([(A, b), (A, 2 * b)], strategy="gmres", rtol=1e-12)
    for before, after in zip(snapshot, (A.data, A.indices, A.indptr), strict=True):
        np.testing.assert_array_equal(before, after)
    np.testing.assert_array_equal(b, [1.0, 2.0])


def test_non_convergence_is_reported_once():
    systems = darcy_family(3, 16)
    with pytest.warns(ConvergenceWarning, match="3 of 3 systems did not converge"):
        out = solve_sequence(systems, strategy="cg", maxiter=3, rtol=1e-12)
    assert not out.info["converged"]
    assert not any(r.converged for r in out.results)


@pytest.mark.parametrize(
    ("systems", "kwargs", "error", "match"),
    [
        ([], {}, ValueError, "systems must not be empty"),
        ("abc", {}, TypeError, "systems must be a sequence"),
        ([(np.eye(3), np.ones(3)), (np.eye(4), np.ones(4))], {}, ValueError, "systems\\[1\\]"),
        ([(np.eye(3), np.array([1.0, np.nan, 1.0]))], {}, ValueError, "systems\\[0\\].b contains"),
        ([(np.eye(3), np.ones(3))], {"strategy": "magic"}, ValueError, "strategy must be one of"),
        ([(np.eye(3), np.ones(3))], {"m": 5, "k": 5}, ValueError, "k must be < m"),
        ([(np.eye(3), np.ones(3))], {"m": 1}, ValueError, "m must be >= 2"),
        ([(np.eye(3), np.ones(3))] * 2, {"order": np.array([0, 0])}, ValueError, "permutation"),
        ([(np.eye(3), np.ones(3))], {"order": "random"}, ValueError, "order must be one of"),
        ([(np.eye(3), np.ones(3))] * 2, {"order": np.array(0)}, ValueError, "permutation"),
        ([(np.eye(3), np.ones(3))], {"rtol": 0.0}, ValueError, "rtol and atol must not both"),
        ([(np.eye(3), np.ones(3))], {"rtol": -1.0}, ValueError, "rtol must be finite"),
        (
            [(np.eye(3), np.ones(3)), (2 * np.eye(3), np.ones(3))],
            {"strategy": "direct"},
            ValueError,
            "'direct' needs one constant",
        ),
        (
            [(spla.aslinearoperator(np.eye(3)), np.ones(3))],
            {"strategy": "amg-reuse"},
            ValueError,
            "'amg-reuse' needs scipy.sparse",
        ),
    ],
)
def test_bad_input_is_rejected_before_any_solve(systems, kwargs, error, match):
    with pytest.raises(error, match=match):
        solve_sequence(systems, **kwargs)


@pytest.mark.parametrize("order", ["greedy", "curve", "none", np.array([3, 1, 0, 2])])
@pytest.mark.parametrize(
    ("features", "error", "match"),
    [
        (np.ones((2, 3)), ValueError, r"features must have one row per system \(4\)"),
        (np.ones((6, 3)), ValueError, r"features must have one row per system \(4\)"),
        (np.ones(4), ValueError, "features must be 2-D"),
        (np.ones((4, 0)), ValueError, "features must have at least one column"),
        (np.full((4, 2), np.nan), ValueError, "features contains NaN or Inf"),
        (np.ones((4, 2), dtype=int), TypeError, "features must have a real floating"),
        ([[1.0]] * 4, TypeError, "features must be a numpy.ndarray"),
    ],
)
def test_bad_features_are_rejected_before_any_solve(order, features, error, match):
    """Features that do not describe the systems, one row each, are an error whatever
    the ordering, and nothing is solved."""
    solved = []
    with pytest.raises(error, match=match):
        solve_sequence(
            darcy_family(4, 8),
            features=features,
            order=order,
            progress=lambda done, total: solved.append(done),
        )
    assert solved == []


def test_features_with_one_row_per_system_order_and_measure_the_path():
    systems = darcy_family(4, 8)
    features = np.array([[0.0], [3.0], [1.0], [2.0]])
    out = solve_sequence(systems, features=features, rtol=RTOL)
    assert out.order.tolist() == [0, 2, 3, 1]
    assert out.info["path_length"] == pytest.approx(3.0)
    explicit = solve_sequence(systems, features=features, order=np.array([1, 0, 3, 2]))
    assert explicit.info["path_length"] == pytest.approx(3.0 + 2.0 + 1.0)
    assert_solved(systems, explicit, rtol=1e-5)


def test_amg_reuse_leaves_unsorted_csr_inputs_unchanged():
    """pyamg sorts CSR indices in place: the caller's matrices must not be its copy."""
    systems = []
    for system in darcy_family(3, 8):
        A = sp.csr_array(system.A)
        for row in range(A.shape[0]):  # reverse each row: same matrix, unsorted indices
            start, stop = A.indptr[row], A.indptr[row + 1]
            A.indices[start:stop] = A.indices[start:stop][::-1].copy()
            A.data[start:stop] = A.data[start:stop][::-1].copy()
        A.has_sorted_indices = False
        systems.append((A, system.b))
    before = [(A.indptr.copy(), A.indices.copy(), A.data.copy()) for A, _ in systems]
    out = solve_sequence(systems, strategy="amg-reuse", rtol=RTOL)
    assert out.info["converged"]
    for (A, _), (indptr, indices, data) in zip(systems, before, strict=True):
        np.testing.assert_array_equal(A.indptr, indptr)
        np.testing.assert_array_equal(A.indices, indices)
        np.testing.assert_array_equal(A.data, data)


def test_every_strategy_is_tested():
    tested = set(SPD_STRATEGIES) | set(NONSYMMETRIC_STRATEGIES) | {"direct"}
    assert tested == set(STRATEGIES)


def test_auto_moves_off_cg_when_a_symmetric_matrix_proves_indefinite():
    rng = np.random.default_rng(4)
    systems = [(helmholtz(24, 10.0 + 0.3 * i).A, rng.standard_normal(576)) for i in range(4)]
    out = solve_sequence(systems, rtol=RTOL)
    assert out.strategy == "lu-reuse"
    assert "switched to lu-reuse" in out.info["reason"]
    assert out.info["converged"]
    for (A, b), x in zip(systems, out.solutions, strict=True):
        assert np.linalg.norm(b - A @ x) <= RTOL * np.linalg.norm(b)


def test_amg_reuse_is_reproducible_and_leaves_global_random_state_alone():
    systems = darcy_family(4, 16)
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    first = solve_sequence(systems, strategy="amg-reuse", rtol=RTOL)
    second = solve_sequence(systems, strategy="amg-reuse", rtol=RTOL)
    for x1, x2 in zip(first.solutions, second.solutions, strict=True):
        assert x1.tobytes() == x2.tobytes()
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # noqa: NPY002


def test_lu_reuse_diagonal_update_makes_a_column_scaled_family_one_factorisation():
    # SKR's "Darcy" operator L diag(a): matrices differ by a column scaling, so the
    # diagonally updated LU of the first is exact for all of them.
    systems = [darcy_skr(12, rng=np.random.default_rng([3, i])) for i in range(5)]
    out = solve_sequence(systems, rtol=RTOL)
    assert out.strategy == "lu-reuse"
    assert out.info["rebuilds"] == 0
    assert all(r.iterations <= 2 for r in out.results)
    assert_solved(systems, out)


def test_a_stale_factor_is_replaced_within_the_system_that_outgrows_it():
    from solvers.recycle import REBUILD_FLOOR

    # The SKR reference's matrices are not column scalings of each other, so a
    # neighbour's LU is a weak preconditioner and some solves exhaust their budget.
    systems = [
        darcy_skr(24, rng=np.random.default_rng([5, i]), reference_indexing=True) for i in range(16)
    ]
    out = solve_sequence(systems, rtol=RTOL)
    assert out.strategy == "lu-reuse"
    spent = [r.info.get("iterations_before_rebuild") for r in out.results]
    failed = sum(s is not None for s in spent)
    assert failed >= 2
    # Budget: max(2 x the fresh factor's iterations (1), the floor); never more.
    for result, before in zip(out.results, spent, strict=True):
        assert before == REBUILD_FLOOR if before is not None else result.iterations <= REBUILD_FLOOR
    # After two failures running, systems are factorised without trying the stale factor.
    assert out.info["rebuilds"] > failed
    assert_solved(systems, out)


def test_amg_reuse_keeps_one_hierarchy_for_a_darcy_family():
    systems = darcy_family(8, 16)
    out = solve_sequence(systems, strategy="amg-reuse", rtol=RTOL)
    assert out.info["rebuilds"] == 0
    fresh = solve_sequence(systems[:1], strategy="amg-reuse", rtol=RTOL).results[0].iterations
    # New Galerkin operators keep the old prolongators about as good as fresh ones.
    assert max(r.iterations for r in out.results) <= 2 * fresh
    assert_solved(systems, out)


def test_auto_uses_incomplete_factors_above_the_lu_limit(monkeypatch):
    import solvers.recycle as recycle

    monkeypatch.setattr(recycle, "LU_REUSE_LIMIT", 100)
    systems = convection_family(4, 12)
    out = solve_sequence(systems, rtol=RTOL, m=20, k=5)
    assert out.strategy == "ilu-reuse"
    assert_solved(systems, out)
