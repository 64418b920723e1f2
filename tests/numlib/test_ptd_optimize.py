"""The conditioning objective of optimised PTD: value, analytic gradient, optimiser."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numlib.hippo import hippo_legs
from numlib.ptd_optimize import condition_objective, optimize_perturbation
from numlib.result import ConvergenceWarning

seeds = st.integers(0, 2**32 - 1)


def random_matrix(n, seed, complex_):
    gen = np.random.default_rng(seed)
    M = gen.standard_normal((n, n))
    if complex_:
        M = M + 1j * gen.standard_normal((n, n))
    return M, gen


@given(n=st.integers(1, 10), seed=seeds, complex_=st.booleans())
def test_value_is_frobenius_condition_of_unit_column_eigenvectors(n, seed, complex_):
    M, gen = random_matrix(n, seed, complex_)
    # rescale the columns arbitrarily: the value must not depend on the scaling
    _, V = np.linalg.eig(M)
    V = V * (gen.random(n) + 0.5)
    U = V / np.linalg.norm(V, axis=0)
    kappa_f2 = np.linalg.norm(U) ** 2 * np.linalg.norm(np.linalg.inv(U)) ** 2
    obj = condition_objective(M)
    assert obj.value == pytest.approx(kappa_f2 / n, rel=1e-8)
    kappa_2 = np.linalg.cond(U)
    assert kappa_2 <= np.sqrt(n * obj.value) * (1 + 1e-8)
    assert np.sqrt(n * obj.value) <= n * kappa_2 * (1 + 1e-8)


@settings(max_examples=30)
@given(n=st.integers(2, 8), seed=seeds, complex_=st.booleans())
def test_gradient_matches_central_differences(n, seed, complex_):
    M, gen = random_matrix(n, seed, complex_)
    obj = condition_objective(M)
    dM = gen.standard_normal((n, n)) + 1j * gen.standard_normal((n, n))
    dM /= np.linalg.norm(dM)
    h = 1e-6
    fd = (condition_objective(M + h * dM).value - condition_objective(M - h * dM).value) / (2 * h)
    analytic = float(np.real(np.sum(np.conj(obj.gradient) * dM)))
    scale = np.linalg.norm(obj.gradient) + obj.value
    assert analytic == pytest.approx(fd, rel=1e-4, abs=1e-6 * scale)


def test_repeated_eigenvalue_gives_infinite_value():
    obj = condition_objective(np.array([[1.0, 1.0], [0.0, 1.0]]))  # a Jordan block
    assert obj.value == np.inf


def _objective(A, E, scale, gamma, barrier, margin):
    obj = condition_objective(A + E)
    push = np.maximum(obj.eigenvalues.real + margin, 0) / (margin if margin > 0 else scale)
    return np.log(obj.value) + gamma * np.linalg.norm(E) ** 2 / scale**2 + barrier * push @ push


def test_optimizer_decreases_its_documented_objective_and_keeps_stability():
    A, _ = hippo_legs(32)
    gen = np.random.default_rng(0)
    scale = 1e-2 * np.linalg.norm(A, 2)  # large enough that a random E is unstable
    E0 = gen.standard_normal(A.shape) + 1j * gen.standard_normal(A.shape)
    E0 *= scale / np.linalg.norm(E0, 2)
    assert (np.linalg.eigvals(A + E0).real > 0).any()
    opt = optimize_perturbation(A, E0, scale, barrier=10.0, margin=0.5)
    assert opt.converged and opt.iterations > 0
    j0 = _objective(A, E0, scale, 1.0, 10.0, 0.5)
    j1 = _objective(A, opt.E, scale, 1.0, 10.0, 0.5)
    assert opt.objective[0] == pytest.approx(j0, rel=1e-10)
    assert opt.objective[-1] == pytest.approx(j1, rel=1e-8)
    assert j1 < j0 - 1.0
    assert (np.linalg.eigvals(A + opt.E).real < 0).all()


def test_optimizer_iteration_cap_warns():
    A, _ = hippo_legs(12)
    E0 = 1e-3 * np.random.default_rng(1).standard_normal(A.shape)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        opt = optimize_perturbation(A, E0, 0.1, maxiter=1)
    assert not opt.converged
    assert any(issubclass(w.category, ConvergenceWarning) for w in caught)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: condition_objective(np.ones((2, 3))), ValueError, "M must be a non-empty square"),
        (lambda: condition_objective(np.eye(2, dtype=int)), TypeError, "M must have a floating"),
        (lambda: condition_objective(np.full((2, 2), np.nan)), ValueError, "M contains NaN"),
        (lambda: optimize_perturbation(np.eye(2), np.eye(3), 1.0), ValueError, "E0 must have"),
        (lambda: optimize_perturbation(np.eye(2), np.eye(2), 0.0), ValueError, "scale must be > 0"),
        (lambda: optimize_perturbation(np.eye(2), np.eye(2), 1.0, gamma=-1), ValueError, "gamma"),
        (
            lambda: optimize_perturbation(np.eye(2), np.eye(2), 1.0, maxiter=0),
            ValueError,
            "maxiter",
        ),
        (lambda: optimize_perturbation([[1.0]], np.eye(1), 1.0), TypeError, "A must be a numpy"),
    ],
)
def test_bad_inputs_name_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
