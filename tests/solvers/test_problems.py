import math
import warnings

import numpy as np
import pytest
import scipy.fft
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from solvers.fields import gaussian_random_field
from solvers.problems import (
    LinearSystem,
    convection_diffusion,
    darcy,
    darcy_skr,
    heat_step,
    helmholtz,
    poisson2d,
    poisson3d,
)

SMALL = settings(max_examples=20, deadline=None)
seeds = st.integers(0, 2**32 - 1)


def solve(system):
    return spla.spsolve(system.A.tocsc(), system.b)


def observed_orders(make, sizes):
    """Max-norm errors on successive grids and the orders log(e1/e2)/log(h1/h2)."""
    errors, widths = [], []
    for n in sizes:
        system = make(n)
        errors.append(np.abs(solve(system) - system.x_exact).max())
        widths.append(system.h)
    orders = [
        math.log(errors[i] / errors[i + 1]) / math.log(widths[i] / widths[i + 1])
        for i in range(len(sizes) - 1)
    ]
    return errors, orders


# --- convergence on manufactured solutions -----------------------------------------
# Sizes n = 2^m - 1 halve h = 1/(n+1) exactly on the vertex-centred grids.


# Variable coefficient for Darcy and the source -div(a grad u) for the smooth
# solution below, differentiated by hand.
def darcy_a(x, y):
    return 1 + 0.5 * np.sin(np.pi * x) * np.cos(np.pi * y)


def darcy_u(x, y):
    return np.exp(x) * np.sin(np.pi * y) + x**2 * y


def darcy_f(x, y):
    ax = 0.5 * np.pi * np.cos(np.pi * x) * np.cos(np.pi * y)
    ay = -0.5 * np.pi * np.sin(np.pi * x) * np.sin(np.pi * y)
    ux = np.exp(x) * np.sin(np.pi * y) + 2 * x * y
    uy = np.pi * np.exp(x) * np.cos(np.pi * y) + x**2
    lap = (1 - np.pi**2) * np.exp(x) * np.sin(np.pi * y) + 2 * y
    return -(darcy_a(x, y) * lap + ax * ux + ay * uy)


def heat_u(x, y):
    return np.sin(2 * x + 1) * np.cosh(y)


def heat_minus_lap(x, y):
    # u_xx = -4u and u_yy = u, so -Δu = 3u.
    return 3 * heat_u(x, y)


@pytest.mark.parametrize(
    ("make", "sizes", "minimum"),
    [
        pytest.param(poisson2d, (15, 31, 63), 1.8, id="poisson2d"),
        pytest.param(poisson3d, (5, 11, 23), 1.8, id="poisson3d"),
        pytest.param(
            lambda n: darcy(n, coefficient=darcy_a, solution=(darcy_u, darcy_f)),
            (16, 32, 64),
            1.8,
            id="darcy",
        ),
        # k = 5: k² = 25 lies between λ_11 ≈ 2π² and λ_12 ≈ 5π², so A is indefinite.
        pytest.param(lambda n: helmholtz(n, 5.0), (15, 31, 63), 1.8, id="helmholtz"),
        pytest.param(
            lambda n: convection_diffusion(n, 10.0), (15, 31, 63), 1.8, id="convdiff-central"
        ),
        pytest.param(
            lambda n: convection_diffusion(n, 10.0, scheme="upwind"),
            (15, 31, 63),
            0.85,
            id="convdiff-upwind",
        ),
        pytest.param(
            lambda n: heat_step(n, 0.05, solution=(heat_u, heat_minus_lap)),
            (15, 31, 63),
            1.8,
            id="heat_step",
        ),
    ],
)
def test_observed_order_of_convergence(make, sizes, minimum):
    errors, orders = observed_orders(make, sizes)
    assert errors[0] > errors[1] > errors[2]
    assert min(orders) > minimum, orders
    # First-order upwinding must not look second order: that would hide a wrong stencil.
    if minimum < 1.8:
        assert max(orders) < 1.5, orders


def test_helmholtz_convergence_case_is_indefinite():
    eigenvalues = np.linalg.eigvalsh(helmholtz(15, 5.0).A.toarray())
    assert eigenvalues.min() < 0 < eigenvalues.max()


# --- polynomial exactness: each stencil reproduces low-degree solutions ------------
# These check the boundary terms independently of the default solutions: the error
# is rounding only, so any misplaced boundary weight shows at once.


@SMALL
@given(n=st.integers(1, 10))
def test_poisson2d_exact_for_quadratics(n):
    system = poisson2d(n, solution=(lambda x, y: x**2 - 3 * x * y + 2 * y**2 + 1, lambda x, y: -6))
    np.testing.assert_allclose(solve(system), system.x_exact, rtol=0, atol=1e-10)


@SMALL
@given(n=st.integers(1, 6))
def test_poisson3d_exact_for_quadratics(n):
    def u(x, y, z):
        return x**2 + 2 * y**2 - z**2 + x * y * z + y

    system = poisson3d(n, solution=(u, lambda x, y, z: -4 + 0 * x))
    np.testing.assert_allclose(solve(system), system.x_exact, rtol=0, atol=1e-10)


@SMALL
@given(n=st.integers(1, 10), k=st.floats(0, 3))
def test_helmholtz_exact_for_quadratics(n, k):
    def u(x, y):
        return x**2 + x * y - y + 2

    system = helmholtz(n, k, solution=(u, lambda x, y: -2 - k**2 * u(x, y)))
    np.testing.assert_allclose(solve(system), system.x_exact, rtol=0, atol=1e-9)


@SMALL
@given(n=st.integers(1, 10), peclet=st.floats(0, 50), angle=st.floats(-4, 4))
def test_central_convection_diffusion_exact_for_quadratics(n, peclet, angle):
    wx, wy = math.cos(angle), math.sin(angle)

    def u(x, y):
        return x**2 + x * y - y**2

    def f(x, y):
        # -Δu = 0 for this u; ∇u = (2x + y, x - 2y).
        return peclet * (wx * (2 * x + y) + wy * (x - 2 * y))

    system = convection_diffusion(n, peclet, angle=angle, solution=(u, f))
    np.testing.assert_allclose(solve(system), system.x_exact, rtol=0, atol=1e-9)


@SMALL
@given(n=st.integers(1, 10), peclet=st.floats(0, 50), angle=st.floats(-4, 4))
def test_upwind_convection_diffusion_exact_for_linears(n, peclet, angle):
    wx, wy = math.cos(angle), math.sin(angle)
    system = convection_diffusion(
        n,
        peclet,
        angle=angle,
        scheme="upwind",
        solution=(lambda x, y: 1 + 2 * x - 3 * y, lambda x, y: peclet * (2 * wx - 3 * wy) + 0 * x),
    )
    np.testing.assert_allclose(solve(system), system.x_exact, rtol=0, atol=1e-9)


@SMALL
@given(n=st.integers(1, 10), dt=st.floats(1e-4, 10))
def test_heat_step_exact_for_quadratics(n, dt):
    system = heat_step(n, dt, solution=(lambda x, y: x**2 + y**2 + x, lambda x, y: -4 + 0 * x))
    np.testing.assert_allclose(solve(system), system.x_exact, rtol=0, atol=1e-10)


@SMALL
@given(n=st.integers(1, 10), c=st.floats(0.1, 10))
def test_darcy_exact_for_linears(n, c):
    # Linear u: interior two-point fluxes and half-cell boundary fluxes are both exact.
    system = darcy(n, coefficient=c, solution=(lambda x, y: 1 + 2 * x - 3 * y, lambda x, y: 0))
    np.testing.assert_allclose(solve(system), system.x_exact, rtol=0, atol=1e-10)


# --- independent references assembled point by point --------------------------------


def loop_poisson2d(n, u, f):
    h = 1.0 / (n + 1)
    A = np.zeros((n * n, n * n))
    b = np.zeros(n * n)
    for i in range(n):
        for j in range(n):
            p = i * n + j
            A[p, p] = 4 / h**2
            b[p] = f((i + 1) * h, (j + 1) * h)
            for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                ii, jj = i + di, j + dj
                if 0 <= ii < n and 0 <= jj < n:
                    A[p, ii * n + jj] = -1 / h**2
                else:
                    b[p] += u((ii + 1) * h, (jj + 1) * h) / h**2
    return A, b


def loop_darcy_constant(n, c, g):
    """Cell-centred Laplacian times c with Dirichlet data g through half cells."""
    h = 1.0 / n
    A = np.zeros((n * n, n * n))
    b = np.zeros(n * n)
    for i in range(n):
        for j in range(n):
            p = i * n + j
            for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                ii, jj = i + di, j + dj
                if 0 <= ii < n and 0 <= jj < n:
                    A[p, p] += c / h**2
                    A[p, ii * n + jj] = -c / h**2
                else:
                    A[p, p] += 2 * c / h**2
                    face = ((i + 0.5 + di / 2) * h, (j + 0.5 + dj / 2) * h)
                    b[p] += 2 * c * g(*face) / h**2
    return A, b


@SMALL
@given(n=st.integers(1, 8))
def test_poisson2d_matches_loop_assembly(n):
    def u(x, y):
        return np.exp(x) * np.sin(np.pi * y) + x**2 * y + np.cos(2 * x + y)

    def f(x, y):
        return (np.pi**2 - 1) * np.exp(x) * np.sin(np.pi * y) - 2 * y + 5 * np.cos(2 * x + y)

    A_ref, b_ref = loop_poisson2d(n, u, f)
    default = poisson2d(n)
    explicit = poisson2d(n, solution=(u, f))
    for system in (default, explicit):
        np.testing.assert_allclose(system.A.toarray(), A_ref, rtol=1e-15, atol=0)
        np.testing.assert_allclose(system.b, b_ref, rtol=1e-12)


@SMALL
@given(n=st.integers(1, 8), c=st.floats(0.01, 100))
def test_darcy_constant_coefficient_is_scaled_cell_centred_laplacian(n, c):
    def g(x, y):
        return np.sin(3 * x) + y**2

    A_ref, b_ref = loop_darcy_constant(n, c, g)
    with_solution = darcy(n, coefficient=lambda x, y: c + 0 * x, solution=(g, lambda x, y: 0))
    as_array = darcy(n, coefficient=np.full((n, n), c), rhs=0.0)
    for system in (with_solution, as_array):
        np.testing.assert_allclose(system.A.toarray(), A_ref, rtol=1e-13, atol=0)
    np.testing.assert_allclose(with_solution.b, b_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(as_array.b, 0.0)


def test_darcy_harmonic_mean_on_two_cells():
    # Two cells along x with a = 1 and 3: the shared face has 2*1*3/(1+3) = 1.5.
    a = np.array([[1.0, 1.0], [3.0, 3.0]])
    A = darcy(2, coefficient=a).A.toarray() / 4  # h² = 1/4
    assert A[0, 2] == A[2, 0] == -1.5
    # Cell (0, 0): x-face 1.5, y-face to (0, 1) with a = 1, two boundary faces 2*1.
    assert A[0, 0] == pytest.approx(1.5 + 1 + 2 + 2)


# --- structural properties ------------------------------------------------------------


def assert_spd(A):
    assert abs(A - A.T).max() == 0
    assert np.linalg.eigvalsh(A.toarray()).min() > 0


@SMALL
@given(n=st.integers(1, 8))
def test_poisson_matrices_are_spd(n):
    assert_spd(poisson2d(n).A)
    assert_spd(poisson3d(min(n, 4)).A)


@SMALL
@given(n=st.integers(1, 8), seed=seeds, alpha=st.floats(1.0, 4.0), tau=st.floats(1.0, 20.0))
def test_darcy_random_coefficient_is_spd_m_matrix(n, seed, alpha, tau):
    system = darcy(n, rng=seed, alpha=alpha, tau=tau)
    assert_spd(system.A)
    off_diagonal = system.A - sp.diags_array(system.A.diagonal())
    assert off_diagonal.max() <= 0
    assert np.all(system.A.data != 0) and system.A.nnz == 5 * n * n - 4 * n
    assert system.x_exact is None
    np.testing.assert_array_equal(system.b, 1.0)


@SMALL
@given(n=st.integers(1, 8), dt=st.floats(1e-6, 1e3), seed=seeds)
def test_heat_step_is_spd_with_bounded_spectrum(n, dt, seed):
    system = heat_step(n, dt, rng=seed)
    assert_spd(system.A)
    eigenvalues = np.linalg.eigvalsh(system.A.toarray())
    assert eigenvalues.min() >= 1 and eigenvalues.max() <= 1 + 8 * dt / system.h**2
    np.testing.assert_array_equal(system.b, system.params["u_prev"].ravel())


@SMALL
@given(n=st.integers(1, 8), k=st.floats(0, 12))
def test_helmholtz_spectrum_is_closed_form(n, k):
    h = 1.0 / (n + 1)
    mu = 4 / h**2 * np.sin(np.arange(1, n + 1) * np.pi * h / 2) ** 2
    closed_form = np.sort((mu[:, None] + mu[None, :]).ravel()) - k**2
    if np.abs(closed_form).min() <= 1e-10 * (closed_form + k**2).max():
        return  # singular cases are covered by the ValueError test
    system = helmholtz(n, k)
    assert abs(system.A - system.A.T).max() == 0
    np.testing.assert_allclose(
        np.linalg.eigvalsh(system.A.toarray()), closed_form, rtol=0, atol=1e-9 / h**2
    )


@SMALL
@given(n=st.integers(3, 10), k=st.floats(math.pi * math.sqrt(2) + 1e-3, 9.0))
def test_helmholtz_indefinite_above_threshold(n, k):
    try:
        system = helmholtz(n, k)
    except ValueError as err:  # k² on a Dirichlet eigenvalue (e.g. n=3, k=8) is refused
        assert "singular" in str(err)
        assume(False)
    eigenvalues = np.linalg.eigvalsh(system.A.toarray())
    assert eigenvalues.min() < 0 < eigenvalues.max()


@SMALL
@given(n=st.integers(1, 8), k=st.floats(0, 4.0))
def test_helmholtz_definite_below_smallest_eigenvalue(n, k):
    h = 1.0 / (n + 1)
    smallest = 8 / h**2 * math.sin(math.pi * h / 2) ** 2
    if k**2 >= smallest * (1 - 1e-9):
        return
    assert np.linalg.eigvalsh(helmholtz(n, k).A.toarray()).min() > 0


@SMALL
@given(n=st.integers(1, 8), i=st.integers(1, 8), j=st.integers(1, 8))
def test_helmholtz_rejects_discrete_eigenvalues(n, i, j):
    i, j = min(i, n), min(j, n)
    h = 1.0 / (n + 1)
    lam = 4 / h**2 * (math.sin(i * math.pi * h / 2) ** 2 + math.sin(j * math.pi * h / 2) ** 2)
    with pytest.raises(ValueError, match="k"):
        helmholtz(n, math.sqrt(lam))
    with pytest.raises(ValueError, match="singular"):
        helmholtz(n, math.sqrt(lam * (1 + 1e-12)))


@SMALL
@given(n=st.integers(2, 8), peclet=st.floats(0.1, 100), angle=st.floats(-4, 4))
def test_convection_diffusion_nonsymmetric_and_laplacian_at_zero(n, peclet, angle):
    laplacian = poisson2d(n).A
    for scheme in ("central", "upwind"):
        A = convection_diffusion(n, peclet, angle=angle, scheme=scheme).A
        assert abs(A - A.T).max() > 0
        at_zero = convection_diffusion(n, 0.0, angle=angle, scheme=scheme).A
        assert abs(at_zero - laplacian).max() == 0
        assert at_zero.nnz == laplacian.nnz


@SMALL
@given(n=st.integers(2, 8), peclet=st.floats(0, 1000), angle=st.floats(-4, 4))
def test_upwind_is_m_matrix_for_every_peclet(n, peclet, angle):
    A = convection_diffusion(n, peclet, angle=angle, scheme="upwind").A
    diagonal = A.diagonal()
    off_diagonal = A - sp.diags_array(diagonal)
    assert off_diagonal.max() <= 0
    # Weakly row diagonally dominant, the property behind the discrete maximum principle.
    assert np.all(diagonal + np.asarray(off_diagonal.sum(axis=1)).ravel() >= -1e-9 * diagonal)


# --- Gaussian random field -----------------------------------------------------------


@SMALL
@given(seed=seeds, shape=st.sampled_from([(16, 16), (9, 13), (6, 5, 4), (32,)]))
def test_grf_reproducible_and_seed_dependent(seed, shape):
    first = gaussian_random_field(shape, rng=seed)
    assert first.shape == shape and first.dtype == np.float64
    np.testing.assert_array_equal(first, gaussian_random_field(shape, rng=seed))
    assert not np.array_equal(first, gaussian_random_field(shape, rng=seed + 1))
    # Dropping the constant mode makes every sample mean-free on the grid.
    assert abs(first.mean()) < 1e-14 * max(1.0, np.abs(first).max())


@pytest.mark.parametrize(
    ("shape", "alpha", "tau"), [((64, 64), 2.5, 7.0), ((16, 16, 16), 2.0, 3.0)]
)
def test_grf_modes_have_documented_scale(shape, alpha, tau):
    d = len(shape)
    field = gaussian_random_field(shape, alpha=alpha, tau=tau, rng=0)
    modes = scipy.fft.dctn(field, norm="ortho") / math.sqrt(math.prod(shape))
    k2 = sum(
        np.arange(m).reshape([-1 if a == i else 1 for a in range(d)]) ** 2
        for i, m in enumerate(shape)
    )
    scale = tau ** (alpha - d / 2) * (np.pi**2 * k2 + tau**2) ** (-alpha / 2)
    assert modes.flat[0] == pytest.approx(0, abs=1e-12)
    standardised = (modes / scale).ravel()[1:]
    assert abs(standardised.mean()) < 0.1
    assert standardised.std() == pytest.approx(1.0, rel=0.05)


@SMALL
@given(seed=seeds)
def test_grf_smoother_for_larger_alpha(seed):
    def high_mode_energy_fraction(alpha):
        modes = scipy.fft.dctn(gaussian_random_field((32, 32), alpha=alpha, rng=seed), norm="ortho")
        energy = modes**2
        return energy[8:, :].sum() + energy[:8, 8:].sum(), energy.sum()

    rough_high, rough_total = high_mode_energy_fraction(1.5)
    smooth_high, smooth_total = high_mode_energy_fraction(3.5)
    assert smooth_high / smooth_total < rough_high / rough_total


def test_grf_ensemble_mean_is_zero():
    rng = np.random.default_rng(1)
    samples = np.stack([gaussian_random_field((8, 8), rng=rng) for _ in range(400)])
    # Pointwise means over 400 draws are within a few standard errors of zero.
    standard_error = samples.std(axis=0) / math.sqrt(len(samples))
    assert np.all(np.abs(samples.mean(axis=0)) < 5 * standard_error)


# --- random families and metadata ------------------------------------------------------


def test_darcy_random_family_from_generator():
    n = 12
    same = darcy(n, rng=5), darcy(n, rng=5)
    np.testing.assert_array_equal(same[0].A.toarray(), same[1].A.toarray())
    np.testing.assert_allclose(
        same[0].params["coefficient"], np.exp(gaussian_random_field((n, n), rng=5)), rtol=1e-15
    )
    generator = np.random.default_rng(0)
    first, second = darcy(n, rng=generator), darcy(n, rng=generator)
    assert abs(first.A - second.A).max() > 0
    # Related systems of one family share the sparsity pattern.
    np.testing.assert_array_equal(first.A.indices, second.A.indices)
    np.testing.assert_array_equal(first.A.indptr, second.A.indptr)


def test_heat_step_random_initial_condition_and_source():
    n, dt = 10, 0.01
    a, b = heat_step(n, dt, rng=3), heat_step(n, dt, rng=3)
    np.testing.assert_array_equal(a.b, b.b)
    assert not np.array_equal(a.b, heat_step(n, dt, rng=4).b)
    u_prev = np.linspace(0, 1, n * n)
    with_source = heat_step(n, dt, u_prev=u_prev, source=lambda x, y: x + y)
    nodes = np.arange(1, n + 1) / (n + 1)
    expected = u_prev + dt * (nodes[:, None] + nodes[None, :]).ravel()
    np.testing.assert_allclose(with_source.b, expected, rtol=1e-15)


def test_linear_system_metadata():
    system = convection_diffusion(6, 2.0, angle=0.3, scheme="upwind")
    assert isinstance(system, LinearSystem)
    assert isinstance(system.A, sp.csr_array) and system.A.dtype == np.float64
    assert system.A.has_canonical_format
    assert system.A.shape == (36, 36) and system.b.shape == (36,) == system.x_exact.shape
    assert system.name == "convection_diffusion" and system.grid_shape == (6, 6)
    assert system.h == 1 / 7
    assert system.params == {"n": 6, "peclet": 2.0, "angle": 0.3, "scheme": "upwind"}
    assert poisson3d(3).grid_shape == (3, 3, 3)
    assert darcy(4, coefficient=1.0).h == 0.25
    assert helmholtz(4, 1.0).params == {"n": 4, "k": 1.0}
    with pytest.raises(AttributeError):
        system.name = "other"


def test_caller_arrays_not_modified():
    n = 6
    coefficient = np.linspace(1, 2, n * n).reshape(n, n)
    rhs = np.linspace(-1, 1, n * n)
    u_prev = np.linspace(0, 1, n * n).reshape(n, n)
    source = np.ones((n, n))
    arrays = (coefficient, rhs, u_prev, source)
    copies = [x.copy() for x in arrays]
    for x in arrays:
        x.flags.writeable = False  # any write would raise
    darcy_system = darcy(n, coefficient=coefficient, rhs=rhs)
    heat_system = heat_step(n, 0.1, u_prev=u_prev, source=source)
    for x, copy in zip(arrays, copies, strict=True):
        np.testing.assert_array_equal(x, copy)
    # Returned data must not alias the inputs either.
    assert not np.shares_memory(darcy_system.params["coefficient"], coefficient)
    assert not np.shares_memory(heat_system.params["u_prev"], u_prev)
    assert not np.shares_memory(darcy_system.b, rhs)


# --- bad input -----------------------------------------------------------------------


def nan_field(x, y):
    return np.full_like(x, np.nan)


@pytest.mark.parametrize(
    ("call", "error", "pattern"),
    [
        (lambda: poisson2d(0), ValueError, "^n must"),
        (lambda: poisson2d(2.5), TypeError, "^n must"),
        (lambda: poisson3d(True), TypeError, "^n must"),
        (lambda: poisson2d(4, solution=lambda x, y: x), TypeError, "^solution"),
        (lambda: poisson2d(4, solution=(nan_field, nan_field)), ValueError, "^solution"),
        (lambda: poisson2d(4, solution=(lambda x, y: x[:2], nan_field)), ValueError, "^solution"),
        (
            lambda: poisson2d(4, solution=(lambda x, y: x + 1j, lambda x, y: x)),
            TypeError,
            "^solution",
        ),
        (lambda: helmholtz(4, -1.0), ValueError, "^k must"),
        (lambda: helmholtz(4, math.inf), ValueError, "^k must"),
        (lambda: helmholtz(4, "5"), TypeError, "^k must"),
        (lambda: convection_diffusion(4, -1.0), ValueError, "^peclet"),
        (lambda: convection_diffusion(4, math.nan), ValueError, "^peclet"),
        (lambda: convection_diffusion(4, 1.0, scheme="downwind"), ValueError, "^scheme"),
        (lambda: convection_diffusion(4, 1.0, scheme=None), ValueError, "^scheme"),
        (lambda: convection_diffusion(4, 1.0, angle=math.inf), ValueError, "^angle"),
        (lambda: convection_diffusion(4, 1.0, angle="north"), TypeError, "^angle"),
        (lambda: heat_step(4, 0.0), ValueError, "^dt"),
        (lambda: heat_step(4, -1.0), ValueError, "^dt"),
        (lambda: heat_step(4, math.inf), ValueError, "^dt"),
        (lambda: heat_step(4, 0.1, u_prev=np.zeros((4, 5))), ValueError, "^u_prev"),
        (lambda: heat_step(4, 0.1, u_prev=np.zeros((4, 4), dtype=int)), TypeError, "^u_prev"),
        (lambda: heat_step(4, 0.1, u_prev=[0.0] * 16), TypeError, "^u_prev"),
        (lambda: heat_step(4, 0.1, u_prev=np.full(16, np.nan)), ValueError, "^u_prev"),
        (lambda: heat_step(4, 0.1, source=np.zeros(15)), ValueError, "^source"),
        (lambda: heat_step(4, 0.1, source="hot"), TypeError, "^source"),
        (lambda: heat_step(4, 0.1, rng="seed"), TypeError, "^rng"),
        (
            lambda: heat_step(4, 0.1, u_prev=np.zeros(16), solution=(nan_field, nan_field)),
            ValueError,
            "^solution",
        ),
        (lambda: darcy(0), ValueError, "^n must"),
        (lambda: darcy(4, coefficient=-1.0), ValueError, "^coefficient"),
        (lambda: darcy(4, coefficient=np.zeros((4, 4))), ValueError, "^coefficient"),
        (lambda: darcy(4, coefficient=np.full((4, 4), np.inf)), ValueError, "^coefficient"),
        (lambda: darcy(4, coefficient=np.ones((3, 4))), ValueError, "^coefficient"),
        (lambda: darcy(4, coefficient=lambda x, y: x - 0.5), ValueError, "^coefficient"),
        (lambda: darcy(4, coefficient=np.ones((4, 4), dtype=bool)), TypeError, "^coefficient"),
        (lambda: darcy(4, rhs=np.ones(5)), ValueError, "^rhs"),
        (lambda: darcy(4, alpha=0.0), ValueError, "^alpha"),
        (lambda: darcy(4, tau=-7.0), ValueError, "^tau"),
        (lambda: darcy(4, rng=1.5), TypeError, "^rng"),
        (lambda: darcy_skr(4, reference_indexing="yes"), TypeError, "^reference_indexing"),
        (
            lambda: darcy(4, coefficient=np.ones((4, 4)), solution=(nan_field, nan_field)),
            ValueError,
            "^solution needs coefficient",
        ),
        (
            lambda: darcy(4, coefficient=1.0, rhs=1.0, solution=(nan_field, nan_field)),
            ValueError,
            "^rhs",
        ),
        (lambda: gaussian_random_field(()), TypeError, "^shape"),
        (lambda: gaussian_random_field((4, 0)), ValueError, "^shape"),
        (lambda: gaussian_random_field((4.0, 4)), TypeError, "^shape"),
        (lambda: gaussian_random_field((4, 4), alpha=-1.0), ValueError, "^alpha"),
        (lambda: gaussian_random_field((4, 4), tau=0.0), ValueError, "^tau"),
        (lambda: gaussian_random_field((4, 4), alpha=math.nan), ValueError, "^alpha"),
    ],
)
def test_bad_input_names_the_argument(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def two_cells(value):
    """Unit coefficient but for two neighbouring cells."""
    a = np.ones((4, 4))
    a[2, 1:3] = value
    return a


@pytest.mark.parametrize("coefficient", [1e308, 1e200, two_cells(1e200), 1e-200, two_cells(1e-310)])
def test_darcy_coefficient_beyond_float64_range_is_rejected_without_nan(coefficient):
    """Harmonic means that overflow (or round through subnormals) would fill the
    matrix with Inf/NaN: an error naming coefficient, raised without a RuntimeWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"^coefficient values .* out of range"):
            darcy(4, coefficient=coefficient)


@pytest.mark.parametrize("scale", [1e-150, 1e150])
def test_darcy_extreme_but_representable_coefficient_scales_the_matrix(scale):
    reference = darcy(8, coefficient=1.0).A
    scaled = darcy(8, coefficient=scale).A
    assert np.isfinite(scaled.data).all()
    np.testing.assert_allclose(scaled.toarray() / scale, reference.toarray(), rtol=1e-14)
    one_cell = np.ones((4, 4))
    one_cell[2, 1] = 1e200  # harmonic means with unit neighbours stay near 2: fine
    assert np.isfinite(darcy(4, coefficient=one_cell).A.data).all()


@SMALL
@given(st.integers(2, 9), seeds)
def test_darcy_skr_is_the_laplacian_times_the_nodal_coefficient(n, seed):
    system = darcy_skr(n, rng=seed)
    a = system.params["coefficient"].ravel()
    h2 = float((n + 1) ** 2)
    # Independent assembly of L diag(a): row of node (i, j) couples to its four
    # neighbours with -a_neighbour/h^2 and to itself with 4 a_self/h^2.
    dense = np.zeros((n * n, n * n))
    for i in range(n):
        for j in range(n):
            row = i * n + j
            dense[row, row] = 4 * h2 * a[row]
            for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                if 0 <= i + di < n and 0 <= j + dj < n:
                    col = (i + di) * n + j + dj
                    dense[row, col] = -h2 * a[col]
    np.testing.assert_allclose(system.A.toarray(), dense, rtol=1e-13)
    np.testing.assert_array_equal(system.b, np.ones(n * n))
    again = darcy_skr(n, rng=seed)
    np.testing.assert_array_equal(again.A.toarray(), system.A.toarray())


@SMALL
@given(st.integers(3, 9), seeds)
def test_darcy_skr_reference_indexing_reads_diagonal_minus_n_two_entries_early(n, seed):
    correct = darcy_skr(n, rng=seed).A.toarray()
    reference = darcy_skr(n, rng=seed, reference_indexing=True).A.toarray()
    rows, cols = np.nonzero(reference != correct)
    assert np.all(rows - cols == n)  # only the diagonal -n differs
    # Entry (j + n, j) holds what the correct operator has at (j + n - 2, j - 2):
    # the neighbour coefficient of the node two places before j in row-major order.
    j = np.arange(2, n * n - n)
    np.testing.assert_allclose(reference[j + n, j], correct[j + n - 2, j - 2], rtol=1e-14)
    assert darcy_skr(n, rng=seed, reference_indexing=True).params["reference_indexing"]


@SMALL
@given(seeds, st.integers(1, 6), st.integers(1, 6))
def test_periodic_grf_is_the_fourier_sum_over_modes(seed, m, n):
    field = gaussian_random_field((m, n), rng=seed, boundary="periodic")
    # Independent reference: the same normals, summed mode by mode.
    gen = np.random.default_rng(seed)
    xi, eta = gen.standard_normal((m, n)), gen.standard_normal((m, n))
    alpha, tau = 2.5, 7.0
    x = np.arange(m)[:, None] / m
    y = np.arange(n)[None, :] / n
    expected = np.zeros((m, n))
    for p in range(m):
        for q in range(n):
            kp = p if p < (m + 1) // 2 else p - m
            kq = q if q < (n + 1) // 2 else q - n
            if kp == 0 and kq == 0:
                continue
            scale = tau ** (alpha - 1) * (4 * np.pi**2 * (kp**2 + kq**2) + tau**2) ** (-alpha / 2)
            mode = np.exp(2j * np.pi * (kp * x + kq * y))
            expected += (scale * (xi[p, q] + 1j * eta[p, q]) * mode).real
    np.testing.assert_allclose(field, expected, atol=1e-12)
    assert abs(field.mean()) < 1e-12


def test_grf_rejects_unknown_boundary():
    with pytest.raises(ValueError, match="boundary must be"):
        gaussian_random_field((4, 4), rng=0, boundary="dirichlet")
