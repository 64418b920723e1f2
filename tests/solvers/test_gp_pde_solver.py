"""GPPDESolver: Kronecker vs dense posterior mean, refinement, nonlinear, bad input."""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numlib.result import ConvergenceWarning
from solvers.gp_pde import PAPER_PROBLEMS, GPPDESolver, PDEOperator, SpectralMixture, poisson
from solvers.gp_pde.problems import (
    Problem,
    Separable,
    allen_cahn,
    cosine,
    helmholtz,
    monomial,
    sine,
)


def _dense_map(result, solver, f, g, test_axes, orders_terms):
    """Independent dense reference of the same MAP problem: np.kron and one full eigh.

    The white prior ``a = M^{-1/2} z'`` with ``M = ⊗ (K_d + s_d I)`` and the symmetric
    square root of the *full* matrix (the solver uses per-axis eigenvectors instead: the
    two differ by a rotation of z, which leaves the posterior mean unchanged).
    """
    axes = solver.axes
    kernels = result.kernels
    shifts = [
        max(solver.jitter, 4 * x.size * np.finfo(float).eps) * np.trace(k.matrix(x, x))
        for k, x in zip(kernels, axes, strict=True)
    ]
    M = functools.reduce(
        np.kron,
        [
            k.matrix(x, x) + s * np.eye(x.size)
            for k, x, s in zip(kernels, axes, shifts, strict=True)
        ],
    )
    lam, Q = np.linalg.eigh(0.5 * (M + M.T))
    root = (Q / np.sqrt(lam)) @ Q.T

    def block(alpha, at=None):
        at = axes if at is None else at
        return (
            functools.reduce(
                np.kron,
                [k.matrix(t, x, a, 0) for k, x, t, a in zip(kernels, axes, at, alpha, strict=True)],
            )
            @ root
        )

    zero = (0,) * len(axes)
    J = sum(c * block(alpha) for c, alpha in orders_terms)
    W = block(zero)
    mask = solver.boundary_mask().ravel()
    br, bb = 1 / result.info["sigma_residual"] ** 2, 1 / result.info["sigma_boundary"] ** 2
    n = W.shape[1]
    # PDE rows at interior points, Dirichlet rows at boundary points.
    A = np.vstack([np.eye(n), math.sqrt(br) * J[~mask], math.sqrt(bb) * W[mask]])
    b = np.concatenate(
        [np.zeros(n), math.sqrt(br) * f.ravel()[~mask], math.sqrt(bb) * g.ravel()[mask]]
    )
    z = np.linalg.lstsq(A, b, rcond=None)[0]
    return (block(zero, test_axes) @ z).reshape([t.size for t in test_axes])


@settings(max_examples=8)
@given(st.integers(6, 9), st.integers(5, 8), st.integers(0, 100))
def test_kronecker_pcg_equals_dense_posterior_mean_on_small_grids(nx, ny, seed):
    rng = np.random.default_rng(seed)
    # Non-square grid, different kernels per axis and an operator with terms of every
    # order on each axis: any axis-ordering slip shows up as a mismatch.
    terms = ((1.0, (2, 0)), (0.5, (0, 2)), (3.0, (1, 0)), (-2.0, (0, 1)), (1.5, (0, 0)))
    op = PDEOperator(terms, name="mixed")
    kx = SpectralMixture(np.array([1.0, 0.5]), np.array([0.0, 1.2]), np.array([0.6, 0.4]), "se")
    ky = SpectralMixture(np.array([0.8]), np.array([0.7]), np.array([0.5]), "matern52")
    axes = [np.linspace(0.0, 1.0, nx), np.linspace(-0.5, 1.0, ny)]
    f = rng.standard_normal((nx, ny))
    g = rng.standard_normal((nx, ny))
    solver = GPPDESolver(
        op,
        axes,
        kernels=[kx, ky],
        method="kronecker-pcg",
        truncation=1e-300,
        noise=1e-2,
        direct_limit=0,
    )
    result = solver.solve(f, g)
    assert result.converged
    assert result.info["preconditioner"] == "jacobi"
    test = [np.linspace(0.0, 1.0, 11), np.linspace(-0.5, 1.0, 7)]
    reference = _dense_map(result, solver, f, g, test, terms)
    got = result.predict(test)
    np.testing.assert_allclose(got, reference, rtol=0, atol=1e-7 * np.abs(reference).max())
    # The Cholesky-preconditioned path and the dense QR path give the same minimiser.
    for kw in ({"method": "kronecker-pcg"}, {"method": "dense-lstsq"}):
        other = GPPDESolver(op, axes, kernels=[kx, ky], truncation=1e-300, noise=1e-2, **kw).solve(
            f, g
        )
        np.testing.assert_allclose(
            other.predict(test), reference, rtol=0, atol=1e-7 * np.abs(reference).max()
        )


def _problem_1d(n: int) -> tuple[Problem, float]:
    exact = Separable(((1.0, ((sine(6.0),),)), (0.5, ((monomial(2),),))))
    p = Problem("refine", poisson(1), exact, ((0.0, 2.0),), (n,))
    axes = p.axes()
    result = GPPDESolver(p.operator, list(axes)).solve(p.source(axes), p.exact(axes))
    test = p.test_axes()
    u = p.exact(test)
    return p, float(np.linalg.norm(result.predict(list(test)) - u) / np.linalg.norm(u))


def test_error_decreases_under_grid_refinement_1d():
    errors = [_problem_1d(n)[1] for n in (10, 20, 40, 80)]
    assert errors[0] > errors[1] > errors[2] > errors[3]
    assert errors[3] < 1e-5


def test_error_decreases_under_grid_refinement_2d():
    exact = Separable(((1.0, ((sine(3.0),), (cosine(2.0),))),))
    errors = []
    for n in (10, 20, 40):
        p = Problem("refine2d", poisson(2), exact, ((0.0, 2.0), (0.0, 1.5)), (n, n))
        axes = p.axes()
        result = GPPDESolver(p.operator, list(axes)).solve(p.source(axes), p.exact(axes))
        test = p.test_axes()
        u = p.exact(test)
        errors.append(np.linalg.norm(result.predict(list(test)) - u) / np.linalg.norm(u))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-5


def test_allen_cahn_gauss_newton_converges_and_inputs_are_not_modified():
    exact = Separable(((1.0, ((sine(20.0),),)),))
    p = Problem("ac", allen_cahn(1), exact, ((0.0, 1.0),), (80,))
    axes = p.axes()
    f, g = p.source(axes), p.exact(axes)
    f0, g0 = f.copy(), g.copy()
    result = GPPDESolver(p.operator, list(axes)).solve(f, g)
    assert result.converged and result.newton_steps >= 2
    test = p.test_axes()
    u = p.exact(test)
    assert np.linalg.norm(result.predict(list(test)) - u) / np.linalg.norm(u) < 1e-5
    np.testing.assert_array_equal(f, f0)
    np.testing.assert_array_equal(g, g0)
    # The residual of the nonlinear equation at the grid is at the noise level.
    assert result.info["residual_rms"] < 1e-5 * np.sqrt(np.mean(f**2))


def test_allen_cahn_2d_kronecker_path_matches_1d_structure():
    exact = Separable(((1.0, ((sine(4.0),), (sine(3.0),))),))
    p = Problem("ac2", allen_cahn(2), exact, ((0.0, 1.0), (0.0, 1.0)), (30, 28))
    axes = p.axes()
    result = GPPDESolver(p.operator, list(axes)).solve(p.source(axes), p.exact(axes))
    assert result.converged and result.info["method"] == "kronecker-pcg"
    test = p.test_axes(2)
    u = p.exact(test)
    assert np.linalg.norm(result.predict(list(test)) - u) / np.linalg.norm(u) < 1e-3


def test_advection_uses_boundary_spectrum_when_source_vanishes():
    p = PAPER_PROBLEMS["advection-beta200"]
    axes = p.axes((24, 40))
    f = p.source(axes)
    assert not np.any(f)
    kernels = GPPDESolver(p.operator, list(axes)).initial_kernels(f, p.exact(axes))
    assert kernels[1].frequencies[1:].size >= 1  # the y-direction line of sin(x - 200 y)


@pytest.mark.parametrize(
    ("truncation", "match"),
    [(1.0, "truncation must be < 1"), (2.5, "truncation must be < 1"), (0.0, "truncation")],
)
def test_truncation_outside_the_open_unit_interval_is_rejected_at_construction(truncation, match):
    """At truncation >= 1 no eigen-direction survives ``λ > truncation · λ_max``."""
    with pytest.raises(ValueError, match=match):
        GPPDESolver(poisson(1), [np.linspace(0.0, 1.0, 12)], truncation=truncation)


def test_bad_input_gets_clear_errors():
    x = np.linspace(0.0, 1.0, 12)
    solver = GPPDESolver(poisson(1), [x])
    f, g = np.zeros(12), np.zeros(12)
    with pytest.raises(ValueError, match="too small"):
        GPPDESolver(poisson(1), [np.linspace(0.0, 1.0, 4)])
    with pytest.raises(ValueError, match="source contains NaN"):
        solver.solve(np.full(12, np.nan), g)
    with pytest.raises(ValueError, match="boundary must have the grid shape"):
        solver.solve(f, np.zeros(13))
    bad = g.copy()
    bad[0] = np.inf
    with pytest.raises(ValueError, match="boundary contains NaN or Inf at boundary points"):
        solver.solve(f, bad)
    interior_nan = g.copy()
    interior_nan[5] = np.nan  # interior boundary entries are never read
    assert solver.solve(np.sin(np.pi * x), interior_nan).converged
    with pytest.raises(TypeError, match="floating-point"):
        solver.solve(np.zeros(12, dtype=int), g)
    with pytest.raises(ValueError, match="one array per dimension"):
        GPPDESolver(poisson(2), [x])
    with pytest.raises(ValueError, match="strictly increasing"):
        GPPDESolver(poisson(1), [x[::-1]])
    with pytest.raises(ValueError, match="equispaced"):
        GPPDESolver(poisson(1), [x**2])
    with pytest.raises(TypeError, match="PDEOperator"):
        GPPDESolver("poisson", [x])
    with pytest.raises(ValueError, match="noise"):
        GPPDESolver(poisson(1), [x], noise=0.0)
    with pytest.raises(ValueError, match="method"):
        GPPDESolver(poisson(1), [x], method="adam")
    with pytest.raises(ValueError, match="derivative orders"):
        PDEOperator(((1.0, (3,)),))


def test_non_convergence_is_reported():
    p = PAPER_PROBLEMS["poisson2d-sin6cos20"]
    axes = p.axes((20, 20))
    solver = GPPDESolver(p.operator, list(axes), maxiter=2, direct_limit=0)
    with pytest.warns(ConvergenceWarning, match="CG on the GP-HM normal equations"):
        result = solver.solve(p.source(axes), p.exact(axes))
    assert not result.converged


def test_paper_problem_sources_match_finite_differences():
    for name in ("poisson1d-xsin200", "poisson1d-sin500-quad", "allen-cahn1d-sin6cos100"):
        p = PAPER_PROBLEMS[name]
        ((a, b),) = p.domain
        x = np.linspace(a + 0.1, b - 0.1, 50)
        h = 2e-5  # FD truncation error stays below 1e-5 of |f| even for sin(500x)
        u0, up, um = (p.exact((t,)) for t in (x, x + h, x - h))
        uxx = (up - 2 * u0 + um) / h**2
        expected = uxx + p.operator.cubic * u0**3 - (1.0 if p.operator.cubic else 0.0) * u0
        np.testing.assert_allclose(p.source((x,)), expected, atol=1e-4 * np.abs(expected).max())


def test_small_paper_problem_reaches_the_paper_error_range():
    p = PAPER_PROBLEMS["poisson1d-sin100"]
    axes = p.axes()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        result = GPPDESolver(p.operator, list(axes)).solve(p.source(axes), p.exact(axes))
    test = p.test_axes()
    u = p.exact(test)
    assert np.linalg.norm(result.predict(list(test)) - u) / np.linalg.norm(u) < 1e-5


def test_three_dimensional_helmholtz_and_derivative_prediction():
    exact = Separable(((1.0, ((sine(2.0),), (sine(1.5),), (cosine(1.0),))),))
    p = Problem("h3", helmholtz(3, 2.0), exact, ((0.0, 1.0), (0.0, 1.2), (0.0, 0.9)), (16, 15, 14))
    axes = p.axes()
    result = GPPDESolver(p.operator, list(axes)).solve(p.source(axes), p.exact(axes))
    assert result.converged and len(result.info["ranks"]) == 3
    test = p.test_axes(2)
    u = p.exact(test)
    assert np.linalg.norm(result.predict(list(test)) - u) / np.linalg.norm(u) < 1e-3
    # Derivatives of the conditional mean at test points: ∂_y u.
    uy = exact.derivative(test, (0, 1, 0))
    got = result.predict(list(test), (0, 1, 0))
    assert np.linalg.norm(got - uy) / np.linalg.norm(uy) < 1e-2
