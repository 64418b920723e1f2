"""Deflated CG: the tolerance is always met; a good recycled space saves iterations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matrices import orthogonal

from numlib.result import ConvergenceWarning
from solvers.deflated_cg import deflated_cg
from solvers.krylov import cg
from solvers.problems import darcy
from solvers.subspace import RecycleSpace


@st.composite
def spd_systems(draw):
    n = draw(st.integers(2, 60))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    q = orthogonal(rng, n)
    A = (q * np.geomspace(1.0, 10.0 ** draw(st.floats(0.0, 5.0)), n)) @ q.T
    return (A + A.T) / 2, rng.standard_normal(n), rng.standard_normal(n)


@given(spd_systems(), st.integers(1, 10), st.integers(1, 10))
def test_converged_means_tolerance_met_with_and_without_recycling(system, k, window):
    A, b1, b2 = system
    first = deflated_cg(A, b1, k=k, window=window, rtol=1e-9, maxiter=50 * len(b1))
    second = deflated_cg(
        A, b2, k=k, window=window, rtol=1e-9, maxiter=50 * len(b2), recycle=first.info["recycle"]
    )
    for result, b in ((first, b1), (second, b2)):
        assert result.converged
        assert np.linalg.norm(b - A @ result.x) <= 1e-9 * np.linalg.norm(b)
    reference = np.linalg.solve(A, b2)
    error = np.linalg.norm(second.x - reference) / np.linalg.norm(reference)
    assert error <= 2e-9 * np.linalg.cond(A)


def spd_with_spectrum(rng: np.random.Generator, eigenvalues: np.ndarray) -> tuple:
    """A symmetric ``Q diag(eigenvalues) Q^T`` with a random orthogonal ``Q``; returns both."""
    q = orthogonal(rng, eigenvalues.size)
    A = (q * eigenvalues) @ q.T
    return (A + A.T) / 2, q


@settings(max_examples=10)
@given(st.integers(0, 2**32 - 1))
def test_exact_eigenvectors_as_recycle_space_remove_their_eigenvalues(seed):
    """Deflating the eigenvectors of the 5 smallest eigenvalues leaves CG the spectrum
    [lambda_6, lambda_n]: fewer iterations than plain CG (Saad et al. 2000, Thm 4.2)."""
    rng = np.random.default_rng(seed)
    n = 200
    eigenvalues = np.concatenate([np.geomspace(1e-4, 1e-2, 5), np.linspace(1.0, 3.0, n - 5)])
    A, q = spd_with_spectrum(rng, eigenvalues)
    b = rng.standard_normal(n)
    plain = cg(A, b, rtol=1e-10)
    deflated = deflated_cg(A, b, k=5, rtol=1e-10, recycle=RecycleSpace(q[:, :5].T.copy()))
    assert deflated.converged
    assert deflated.iterations < plain.iterations


def test_recycled_space_helps_on_a_darcy_sequence():
    recycle, plain, recycled = None, 0, 0
    for i in range(5):
        system = darcy(32, rng=np.random.default_rng([2, i]))
        result = deflated_cg(system.A, system.b, k=10, window=30, rtol=1e-8, recycle=recycle)
        recycle = result.info["recycle"]
        assert result.converged
        if i:
            plain += cg(system.A, system.b, rtol=1e-8).iterations
            recycled += result.iterations
    assert recycled < plain


def test_indefinite_matrix_is_a_reported_breakdown():
    with pytest.warns(ConvergenceWarning, match="not positive definite"):
        result = deflated_cg(np.diag([1.0, -2.0, 3.0]), np.ones(3), k=1)
    assert not result.converged


def test_inputs_are_not_modified():
    rng = np.random.default_rng(0)
    A = np.diag(np.arange(1.0, 21.0))
    b, space = rng.standard_normal(20), RecycleSpace(rng.standard_normal((3, 20)))
    copies = A.copy(), b.copy(), space.U.copy()
    deflated_cg(A, b, k=3, recycle=space, rtol=1e-10)
    for original, copy in zip((A, b, space.U), copies, strict=True):
        np.testing.assert_array_equal(original, copy)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"k": 0}, ValueError, "k must be >= 1"),
        ({"window": 0}, ValueError, "window must be >= 1"),
        ({"recycle": RecycleSpace(np.ones((2, 3)))}, ValueError, "recycle.U must have shape"),
        ({"recycle": "space"}, TypeError, "recycle must be a RecycleSpace"),
        ({"recycle": RecycleSpace(np.full((2, 5), np.nan))}, ValueError, "recycle.U contains"),
        ({"recycle": RecycleSpace(np.empty((0, 5)))}, ValueError, "at least one row"),
        ({"recycle": RecycleSpace(np.zeros((1, 5)))}, ValueError, "recycle.U must have no zero"),
        ({"recycle": RecycleSpace([[1.0] * 5])}, TypeError, "recycle.U must be an array"),
    ],
)
def test_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        deflated_cg(np.eye(5), np.ones(5), **kwargs)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 8))
def test_eigcg_window_finds_the_smallest_eigenvalues_over_a_long_run(seed, window):
    """After a run long enough to compress the eigCG window many times, the
    returned space holds the eigenvectors of the 5 isolated smallest eigenvalues:
    its Ritz values match them (dense ``eigh`` reference)."""
    rng = np.random.default_rng(seed)
    n = 300
    eigenvalues = np.concatenate([np.geomspace(1e-3, 1e-2, 5), np.linspace(1.0, 50.0, n - 5)])
    A, _ = spd_with_spectrum(rng, eigenvalues)
    result = deflated_cg(A, rng.standard_normal(n), k=5, window=window, rtol=1e-10)
    assert result.converged
    assert result.iterations > 4 * (10 + window)  # the window was compressed repeatedly
    basis = np.linalg.qr(result.info["recycle"].U.T)[0]
    ritz = np.linalg.eigvalsh(basis.T @ A @ basis)
    np.testing.assert_allclose(ritz, eigenvalues[:5], rtol=1e-3)
