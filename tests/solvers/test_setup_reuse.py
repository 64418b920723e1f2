"""Reused set-ups: the Galerkin hierarchy is pyamg's with the same prolongators; scaled LU."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from hypothesis import given, settings
from hypothesis import strategies as st

from solvers.krylov import cg, gmres
from solvers.problems import convection_diffusion, darcy, helmholtz
from solvers.setup_reuse import ScaledFactor, galerkin_hierarchy, smoothed_aggregation

RTOL = 1e-8


def dense(A) -> np.ndarray:
    return A.toarray() if sp.issparse(A) else np.asarray(A)


def test_galerkin_hierarchy_of_the_same_matrix_reproduces_pyamg():
    A = darcy(24, rng=3).A
    original = smoothed_aggregation(A)
    rebuilt = galerkin_hierarchy(original, A)
    assert len(rebuilt.levels) == len(original.levels) > 2
    for old, new in zip(original.levels, rebuilt.levels, strict=True):
        np.testing.assert_allclose(dense(new.A), dense(old.A), rtol=1e-13, atol=1e-12)
    v = np.random.default_rng(0).standard_normal(A.shape[0])
    np.testing.assert_allclose(
        rebuilt.aspreconditioner() @ v, original.aspreconditioner() @ v, rtol=1e-12
    )


@settings(max_examples=6, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 10_000))
def test_galerkin_levels_are_triple_products_of_the_new_matrix(seed_old, seed_new):
    old_A, new_A = darcy(16, rng=seed_old).A, darcy(16, rng=seed_new).A
    original = smoothed_aggregation(old_A)
    rebuilt = galerkin_hierarchy(original, new_A)
    reference = dense(new_A)
    np.testing.assert_array_equal(dense(rebuilt.levels[0].A), reference)
    for level, next_level, old in zip(
        rebuilt.levels[:-1], rebuilt.levels[1:], original.levels[:-1], strict=True
    ):
        assert level.P is old.P  # the prolongators are reused, not recomputed
        P = dense(level.P)
        reference = P.T @ reference @ P  # independent dense Galerkin product
        np.testing.assert_allclose(dense(next_level.A), reference, rtol=1e-10, atol=1e-9)
    # The original hierarchy is untouched.
    np.testing.assert_array_equal(dense(original.levels[0].A), dense(old_A))


@settings(max_examples=6, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 10_000))
def test_reused_hierarchy_is_spd_and_pcg_meets_the_tolerance(seed_old, seed_new):
    old, new = darcy(12, rng=seed_old), darcy(12, rng=seed_new)
    M = galerkin_hierarchy(smoothed_aggregation(old.A), new.A).aspreconditioner()
    M_dense = M @ np.eye(new.A.shape[0])
    np.testing.assert_allclose(M_dense, M_dense.T, atol=1e-10 * np.abs(M_dense).max())
    assert np.linalg.eigvalsh((M_dense + M_dense.T) / 2).min() > 0
    result = cg(new.A, new.b, M=M, rtol=RTOL)
    assert result.converged
    assert np.linalg.norm(new.b - new.A @ result.x) <= RTOL * np.linalg.norm(new.b)


def test_smoothed_aggregation_is_reproducible_and_restores_the_global_generator():
    A = darcy(20, rng=1).A
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    first, second = smoothed_aggregation(A), smoothed_aggregation(A)
    for a, b in zip(first.levels[:-1], second.levels[:-1], strict=True):
        np.testing.assert_array_equal(dense(a.P), dense(b.P))
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # noqa: NPY002


def test_exact_scaled_factor_inverts_its_matrix():
    A = convection_diffusion(12, 25.0, angle=0.4).A
    M = ScaledFactor(A).preconditioner(A)
    identity = A @ (M @ np.eye(A.shape[0]))
    np.testing.assert_allclose(identity, np.eye(A.shape[0]), atol=1e-10)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.0, 4.0))
def test_diagonal_update_is_exact_for_column_scaled_matrices(seed, spread):
    A = convection_diffusion(12, 25.0, angle=0.4).A
    scales = np.exp(spread * np.random.default_rng(seed).standard_normal(A.shape[0]))
    scaled = sp.csr_array(A @ sp.diags_array(scales))
    M = ScaledFactor(A).preconditioner(scaled)
    identity = scaled @ (M @ np.eye(A.shape[0]))
    np.testing.assert_allclose(identity, np.eye(A.shape[0]), atol=1e-9)


def test_zero_diagonal_falls_back_to_the_plain_reused_factor():
    swap = sp.csr_array(np.array([[0.0, 2.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, 4.0]]))
    M = ScaledFactor(swap).preconditioner(swap)
    np.testing.assert_allclose(swap @ (M @ np.eye(3)), np.eye(3), atol=1e-14)
    A = sp.csr_array(np.array([[4.0, 1.0, 0.0], [1.0, 5.0, 1.0], [0.0, 1.0, 6.0]]))
    M = ScaledFactor(A).preconditioner(swap)  # a later matrix that cannot be rescaled
    np.testing.assert_allclose(A @ (M @ np.eye(3)), np.eye(3), atol=1e-14)


@pytest.mark.parametrize("incomplete", [False, True])
def test_reused_factor_preconditions_a_neighbour_to_the_tolerance(incomplete):
    reference = helmholtz(20, 10.0).A
    system = helmholtz(20, 10.3)
    M = ScaledFactor(reference, incomplete=incomplete).preconditioner(system.A)
    result = gmres(system.A, system.b, M=M, rtol=RTOL, restart=30)
    assert result.converged
    x_ref = spla.spsolve(sp.csc_array(system.A), system.b)
    assert np.linalg.norm(system.b - system.A @ result.x) <= RTOL * np.linalg.norm(system.b)
    np.testing.assert_allclose(result.x, x_ref, rtol=1e-5, atol=1e-9 * np.abs(x_ref).max())


def test_inputs_are_not_modified():
    A = sp.csr_array(darcy(12, rng=2).A)
    snapshot = A.data.copy()
    hierarchy = smoothed_aggregation(A)
    galerkin_hierarchy(hierarchy, A)
    ScaledFactor(A).preconditioner(A) @ np.ones(A.shape[0])
    np.testing.assert_array_equal(A.data, snapshot)


def unsorted_copy(A, kind):
    """The same matrix as CSR with every row's indices reversed (unsorted)."""
    A = sp.csr_array(A, copy=True)
    for row in range(A.shape[0]):
        start, stop = A.indptr[row], A.indptr[row + 1]
        A.indices[start:stop] = A.indices[start:stop][::-1].copy()
        A.data[start:stop] = A.data[start:stop][::-1].copy()
    A.has_sorted_indices = False
    return A if kind == "array" else sp.csr_matrix(A)


@pytest.mark.parametrize("kind", ["array", "matrix"])
def test_unsorted_csr_inputs_are_not_sorted_in_place(kind):
    """pyamg sorts CSR indices in place; the caller's arrays must come back as they were."""
    system = darcy(12, rng=2)
    A = unsorted_copy(system.A, kind)
    assert not A.has_sorted_indices
    indptr, indices, data = A.indptr.copy(), A.indices.copy(), A.data.copy()
    hierarchy = smoothed_aggregation(A)
    reused = galerkin_hierarchy(hierarchy, A)
    result = cg(A, system.b, M=reused.aspreconditioner(), rtol=RTOL)
    ScaledFactor(A).preconditioner(A) @ np.ones(A.shape[0])
    assert result.converged
    np.testing.assert_array_equal(A.indptr, indptr)
    np.testing.assert_array_equal(A.indices, indices)
    np.testing.assert_array_equal(A.data, data)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: smoothed_aggregation(np.eye(4)), TypeError, "A must be a scipy.sparse"),
        (lambda: ScaledFactor(sp.csr_array(np.ones((2, 3)))), ValueError, "square"),
        (
            lambda: ScaledFactor(sp.csr_array(np.array([[np.nan, 1.0], [1.0, 1.0]]))),
            ValueError,
            "NaN",
        ),
        (
            lambda: ScaledFactor(sp.eye_array(3, format="csr")).preconditioner(
                sp.eye_array(4, format="csr")
            ),
            ValueError,
            "shape",
        ),
        (lambda: galerkin_hierarchy(object(), sp.eye_array(3)), TypeError, "hierarchy"),
        (
            lambda: galerkin_hierarchy(smoothed_aggregation(darcy(12, rng=0).A), sp.eye_array(9)),
            ValueError,
            "shape",
        ),
    ],
)
def test_bad_input_is_rejected(call, error, match):
    with pytest.raises(error, match=match):
        call()
