"""DCDM: stencil operator, loss, network, Ritz vectors and the safeguarded solver."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, reject, settings
from hypothesis import strategies as st
from scipy.sparse.linalg import aslinearoperator

from learned.dcdm import DCDMNet, GridStencil, apply_stencil, dcdm_loss, dcdm_solve
from learned.dcdm.pyramid import OperatorPyramid
from learned.dcdm.ritz import lanczos_ritz
from numlib.result import ConvergenceWarning
from solvers.problems import darcy, poisson2d
from solvers.problems.obstacles import poisson_obstacles

torch.set_num_threads(1)


def _random_net(dim: int, seed: int = 0, **kwargs) -> DCDMNet:
    torch.manual_seed(seed)
    return DCDMNet(dim, channels=4, blocks=1, init="random", **kwargs).eval()


@st.composite
def obstacle_problems(draw):
    dim = draw(st.sampled_from([2, 3]))
    n = draw(st.integers(4, 12 if dim == 2 else 6))
    seed = draw(st.integers(0, 2**16))
    closed = draw(st.sets(st.sampled_from(["x-", "y+"])))
    try:
        return poisson_obstacles(n, dim, obstacles=3, neumann=sorted(closed), rng=seed)
    except ValueError:  # on the smallest grids three obstacles can fill the domain
        reject()


# --------------------------------------------------------------------------- stencil


@settings(max_examples=25)
@given(obstacle_problems(), st.integers(1, 3))
def test_apply_stencil_equals_sparse_product(system, batch):
    coeffs = GridStencil.from_matrix(system.A, system.grid_shape).to_tensor(torch.float64)
    u = torch.randn(batch, 1, *system.grid_shape, dtype=torch.float64)
    got = apply_stencil(coeffs, u).reshape(batch, -1).numpy()
    expected = (system.A @ u.reshape(batch, -1).numpy().T).T
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12 * abs(expected).max())


def test_stencil_active_mask_marks_solid_nodes():
    system = poisson_obstacles(16, 2, obstacles=4, rng=2)
    stencil = GridStencil.from_matrix(system.A, system.grid_shape)
    np.testing.assert_array_equal(stencil.active, ~system.params["solid"])
    geometry = stencil.geometry()
    assert geometry.shape == (4, 16, 16)
    box = GridStencil.from_matrix(poisson2d(16).A, (16, 16)).geometry()
    np.testing.assert_allclose(box, GridStencil.box_geometry((16, 16)))


def test_stencil_rejects_other_matrices():
    A = poisson2d(6).A.tolil()
    A[0, 7] = A[7, 0] = -1.0  # a diagonal neighbour: not a 5-point stencil
    with pytest.raises(ValueError, match="outside the nearest-neighbour stencil"):
        GridStencil.from_matrix(A.tocsr(), (6, 6))
    with pytest.raises(ValueError, match="must be 30 x 30"):
        GridStencil.from_matrix(poisson2d(6).A, (6, 5))
    with pytest.raises(TypeError, match=r"scipy\.sparse"):
        GridStencil.from_matrix(np.eye(4), (2, 2))


# --------------------------------------------------------------------------- loss


def _loss_reference(A: np.ndarray, q: np.ndarray, b: np.ndarray) -> float:
    x = q * (q @ b) / (q @ A @ q)
    return float(np.sum((b - A @ x) ** 2))


@settings(max_examples=25)
@given(
    obstacle_problems(),
    st.floats(1e-3, 1e3) | st.floats(-1e3, -1e-3),
    st.integers(0, 2**16),
)
def test_loss_is_scale_invariant_and_matches_dense_reference(system, c, seed):
    gen = np.random.default_rng(seed)
    shape = (2, 1, *system.grid_shape)
    b = torch.as_tensor(gen.standard_normal(shape))
    q = torch.as_tensor(gen.standard_normal(shape))
    coeffs = GridStencil.from_matrix(system.A, system.grid_shape).to_tensor(torch.float64)
    loss = dcdm_loss(q, b, coeffs)
    scaled = dcdm_loss(c * q, b, coeffs)
    assert float(abs(scaled - loss)) <= 1e-12 * float(loss)
    A = system.A.toarray()
    expected = np.mean(
        [_loss_reference(A, q[i].numpy().ravel(), b[i].numpy().ravel()) for i in range(2)]
    )
    assert float(loss) == pytest.approx(expected, rel=1e-10)


def test_loss_vanishes_at_the_solution():
    system = poisson_obstacles(12, 2, obstacles=2, rng=0, neumann=("y-",))
    b = np.random.default_rng(1).standard_normal(144) * ~system.params["solid"].ravel()
    x = sp.linalg.spsolve(system.A.tocsc(), b)
    coeffs = GridStencil.from_matrix(system.A, system.grid_shape).to_tensor(torch.float64)
    to_t = lambda v: torch.as_tensor(v.reshape(1, 1, 12, 12))  # noqa: E731
    assert float(dcdm_loss(to_t(-7.0 * x), to_t(b), coeffs)) < 1e-20 * float(b @ b)


# --------------------------------------------------------------------------- network


@pytest.mark.parametrize("shape", [(9, 13), (16, 16), (5, 6, 7), (8, 8, 8)])
@pytest.mark.parametrize("levels", [1, None])
def test_network_keeps_the_grid_and_is_homogeneous_at_init(shape, levels):
    torch.manual_seed(3)
    net = DCDMNet(len(shape), levels=levels).double()
    r = torch.randn(2, 1, *shape, dtype=torch.float64)
    q = net(r)
    assert q.shape == r.shape
    # bias-free, and the geometry weights start at zero: f(c r) = c f(r), c > 0
    torch.testing.assert_close(net(3.0 * r), 3.0 * q, rtol=1e-12, atol=1e-14)


def test_network_output_is_zero_on_solid_nodes():
    system = poisson_obstacles(16, 2, obstacles=4, rng=5)
    geometry = torch.as_tensor(
        GridStencil.from_matrix(system.A, (16, 16)).geometry()[None], dtype=torch.float32
    )
    q = _random_net(2)(torch.randn(1, 1, 16, 16), geometry)
    assert torch.all(q[0, 0][torch.as_tensor(system.params["solid"])] == 0)


def test_network_rejects_wrong_shapes():
    net = _random_net(2)
    with pytest.raises(ValueError, match="2-D model"):
        net(torch.randn(1, 1, 4, 4, 4))
    with pytest.raises(ValueError, match="geometry must have shape"):
        net(torch.randn(1, 1, 8, 8), torch.ones(1, 4, 8, 9))


# --------------------------------------------------------------------------- Ritz


def test_partial_lanczos_gives_orthonormal_accurate_extreme_ritz_pairs():
    A = poisson2d(20).A
    basis = lanczos_ritz(A, 120, rng=4)
    V = basis.vectors
    np.testing.assert_allclose(V @ V.T, np.eye(V.shape[0]), atol=1e-10)
    exact = np.linalg.eigvalsh(A.toarray())
    # The largest and smallest Ritz values converge first (Kaniel-Paige).
    assert basis.values[-1] == pytest.approx(exact[-1], rel=1e-10)
    assert basis.values[0] == pytest.approx(exact[0], rel=1e-6)
    assert np.linalg.norm(A @ V[0] - basis.values[0] * V[0]) < 1e-4 * exact[-1]


# --------------------------------------------------------------------------- solver


@st.composite
def spd_systems(draw):
    rows = draw(st.integers(2, 7))
    cols = draw(st.integers(2, 7))
    n = rows * cols
    seed = draw(st.integers(0, 2**32 - 1))
    log_cond = draw(st.floats(0.0, 4.0))
    gen = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(gen.standard_normal((n, n)))
    eigenvalues = np.logspace(0, log_cond, n)
    A = (Q * eigenvalues) @ Q.T
    A = 0.5 * (A + A.T)
    b = gen.standard_normal(n)
    return A, b, (rows, cols), seed


@settings(max_examples=30)
@given(
    spd_systems(),
    st.sampled_from(["dense", "sparse"]),
    st.integers(1, 3),
    st.integers(0, 2),
    st.booleans(),
)
def test_converges_on_any_spd_system_with_a_random_network(problem, kind, k, smoothing, galerkin):
    A, b, shape, seed = problem
    A_in = sp.csr_array(A) if kind == "sparse" else A
    operator_layers = {"restriction": "adjoint", "galerkin": True} if galerkin else {}
    net = _random_net(2, seed=seed % 1000, **operator_layers)
    b_before = b.copy()
    # The guarantee is convergence, not a rate: a bad network may spend up to
    # ``N`` iterations per halving of the residual before PCG takes over.
    result = dcdm_solve(
        A_in, b, net, grid_shape=shape, rtol=1e-8, k=k, maxiter=50 * len(b), smoothing=smoothing
    )
    assert result.converged
    assert np.linalg.norm(b - A @ result.x) <= 1e-8 * np.linalg.norm(b) * (1 + 1e-9)
    info = result.info
    assert info["network_steps"] + info["fallback_steps"] == result.iterations
    np.testing.assert_array_equal(b, b_before)


def test_useless_network_falls_back_and_still_converges():
    net = _random_net(2)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()  # the network's direction is 0: never a descent direction
    system = poisson2d(12)
    result = dcdm_solve(system.A, system.b, net, rtol=1e-10)
    assert result.converged
    assert result.info["network_steps"] == 0
    assert result.info["rejected"]["non-descent"] == result.iterations


def test_stalling_network_is_switched_off():
    # A random network on a Poisson problem proposes descent directions that make
    # little progress; the second safeguard layer hands over to Jacobi-PCG.
    system = poisson2d(24)
    result = dcdm_solve(system.A, system.b, _random_net(2, seed=1), rtol=1e-10, stall_window=5)
    assert result.converged
    assert result.info["network_disabled_at"] is not None


def test_bpx_initialised_network_solves_poisson_without_fallback():
    torch.manual_seed(0)
    net = DCDMNet(2)
    system = poisson2d(32)
    x0 = np.zeros_like(system.b)
    result = dcdm_solve(system.A, system.b, net, x0=x0, rtol=1e-8)
    assert result.converged and result.info["fallback_steps"] == 0
    exact = sp.linalg.spsolve(system.A.tocsc(), system.b)
    assert np.linalg.norm(result.x - exact) <= 1e-6 * np.linalg.norm(exact)
    assert not x0.any()


def test_obstacle_system_converges_with_solid_nodes_untouched():
    system = poisson_obstacles(20, 2, obstacles=4, neumann=("x-",), rng=3)
    torch.manual_seed(0)
    result = dcdm_solve(system.A, system.b, DCDMNet(2), rtol=1e-8)
    assert result.converged
    assert np.all(result.x[system.params["solid"].ravel()] == 0)


def test_operator_smoothing_is_symmetric_and_helps_on_obstacles():
    from learned.dcdm.solve import _NetworkDirection, _Smoothed

    system = poisson_obstacles(48, 2, obstacles=4, neumann=("x-", "y+"), rng=5)
    A = system.A.tocsr()
    geometry = GridStencil.from_matrix(A, (48, 48)).geometry()
    net = DCDMNet(2, channels=6, blocks=3, init="multigrid", restriction="adjoint").double()
    network = _NetworkDirection(net, (48, 48), geometry, None)
    smoothed = _Smoothed(network, A.dot, A.diagonal(), 2, 2)
    gen = np.random.default_rng(0)
    r1, r2 = gen.standard_normal((2, 48 * 48))
    q1, q2 = smoothed(r1), smoothed(r2)
    np.testing.assert_allclose(smoothed(r1 - 2 * r2), q1 - 2 * q2, rtol=1e-9, atol=1e-12)
    assert q1 @ r2 == pytest.approx(r1 @ q2, rel=1e-9)  # a valid CG preconditioner
    plain = dcdm_solve(A, system.b, net, rtol=1e-8)
    wrapped = dcdm_solve(A, system.b, net, rtol=1e-8, smoothing=2)
    assert plain.converged and wrapped.converged
    assert wrapped.info["fallback_steps"] == 0
    assert wrapped.iterations < plain.iterations


def test_iteration_limit_warns():
    system = poisson2d(16)
    with pytest.warns(ConvergenceWarning, match="dcdm did not converge"):
        result = dcdm_solve(system.A, system.b, _random_net(2), rtol=1e-12, maxiter=2)
    assert not result.converged and result.iterations == 2


def test_zero_right_hand_side_returns_zero():
    system = poisson2d(8)
    result = dcdm_solve(system.A, np.zeros(64), _random_net(2))
    assert result.converged and result.iterations == 0 and not result.x.any()


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda net: dcdm_solve(np.ones((4, 5)), np.ones(4), net), ValueError, "square"),
        (lambda net: dcdm_solve(np.eye(16), np.ones(15), net), ValueError, "16 x 16"),
        (lambda net: dcdm_solve(np.eye(15), np.ones(15), net), ValueError, "not a square"),
        (
            lambda net: dcdm_solve(np.eye(16), np.ones(16), net, grid_shape=(2, 2, 4)),
            ValueError,
            "model's dimension 2",
        ),
        (
            lambda net: dcdm_solve(np.eye(16), np.ones(16), net, grid_shape=(4, 5)),
            ValueError,
            "20 nodes",
        ),
        (
            lambda net: dcdm_solve(np.eye(4), np.array([1.0, np.nan, 0, 0]), net),
            ValueError,
            "b contains NaN",
        ),
        (lambda net: dcdm_solve(np.eye(4), np.ones(4), net, k=0), ValueError, "k must be >= 1"),
        (
            lambda net: dcdm_solve(np.eye(4), np.ones(4), net, smoothing=-1),
            ValueError,
            "smoothing must be >= 0",
        ),
        (
            lambda net: dcdm_solve(aslinearoperator(np.eye(4)), np.ones(4), net, smoothing=1),
            TypeError,
            "smoothing needs the diagonal",
        ),
        (lambda net: dcdm_solve(np.eye(4), np.ones(4), "net"), TypeError, "DCDMNet"),
        (lambda net: dcdm_solve(np.eye(4), [1.0] * 4, net), TypeError, "numpy array"),
        (
            lambda net: dcdm_solve(-np.eye(4), np.ones(4), net),
            ValueError,
            "not positive definite",
        ),
    ],
)
def test_bad_input_is_rejected(call, error, match):
    with pytest.raises(error, match=match):
        call(_random_net(2))


def test_non_finite_weights_are_rejected():
    net = _random_net(2)
    with torch.no_grad():
        net.project.weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite weights"):
        dcdm_solve(np.eye(4), np.ones(4), net)


def test_warnings_are_errors_here():
    # pyproject turns ConvergenceWarning into an error; a converged solve emits none.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        system = poisson2d(8)
        assert dcdm_solve(system.A, system.b, _random_net(2), rtol=1e-8).converged


# --------------------------------------------------------------- multigrid initialisation


def _stencil(u: np.ndarray) -> np.ndarray:
    """The constant-coefficient Laplacian stencil, zero outside the grid (Dirichlet box)."""
    out = 2 * u.ndim * u
    for axis in range(u.ndim):
        padded = np.pad(u, [(1, 1) if a == axis else (0, 0) for a in range(u.ndim)])
        out -= np.take(padded, range(0, u.shape[axis]), axis=axis)
        out -= np.take(padded, range(2, u.shape[axis] + 2), axis=axis)
    return out


def _interpolation_matrix(fine: int, coarse: int) -> np.ndarray:
    """Cell-centred linear interpolation (PyTorch's align_corners=False), clamped at walls."""
    P = np.zeros((fine, coarse))
    for i in range(fine):
        x = min(max((i + 0.5) * coarse / fine - 0.5, 0.0), coarse - 1)
        low = int(np.floor(x))
        P[i, low] += 1 - (x - low)
        P[i, min(low + 1, coarse - 1)] += x - low
    return P


def _along_axes(u: np.ndarray, matrices: list[np.ndarray]) -> np.ndarray:
    for axis, M in enumerate(matrices):
        u = np.moveaxis(np.tensordot(M, u, axes=([1], [axis])), 0, axis)
    return u


def _interpolate(u: np.ndarray) -> np.ndarray:
    return _along_axes(u, [_interpolation_matrix(2 * n, n) for n in u.shape])


def _restrict(u: np.ndarray) -> np.ndarray:
    return _along_axes(u, [_interpolation_matrix(n, n // 2).T / 2 for n in u.shape])


def _v_cycle(r: np.ndarray, levels: int, nu: int = 1) -> np.ndarray:
    """V(nu, nu) with damped Jacobi, linear interpolation and its adjoint / 2^d, gain 4."""
    jacobi = {2: 4 / 5, 3: 6 / 7}[r.ndim] / (2 * r.ndim)
    e = np.zeros_like(r)
    for _ in range(nu + 1 if levels == 0 else nu):
        e = e + jacobi * (r - _stencil(e))
    if levels == 0:
        return e
    e = e + 4.0 * _interpolate(_v_cycle(_restrict(r - _stencil(e)), levels - 1, nu))
    for _ in range(nu):
        e = e + jacobi * (r - _stencil(e))
    return e


@pytest.mark.parametrize("shape", [(16, 16), (32, 32), (8, 16), (8, 8, 8), (16, 16, 16)])
@pytest.mark.parametrize("blocks", [3, 5])
def test_multigrid_initialisation_is_a_v_cycle(shape, blocks):
    net = DCDMNet(len(shape), channels=6, blocks=blocks, init="multigrid", restriction="adjoint")
    net = net.double()
    r = np.random.default_rng(0).standard_normal(shape)
    with torch.no_grad():
        q = net(torch.as_tensor(r)[None, None])[0, 0].numpy()
    expected = _v_cycle(r, net.depth(shape), nu=blocks - 2)
    # weights such as omega / 4 = 0.2 are rounded to float32 when the layers are made
    np.testing.assert_allclose(q, expected, rtol=0, atol=1e-6 * np.abs(expected).max())
    # spare channels start with 1e-3 of a random initialisation: a tiny perturbation
    wide = DCDMNet(len(shape), channels=16, blocks=blocks, init="multigrid", restriction="adjoint")
    wide = wide.double()
    with torch.no_grad():
        q_wide = wide(torch.as_tensor(r)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(q_wide, expected, rtol=0, atol=1e-4 * np.abs(expected).max())


def test_multigrid_initialisation_gives_grid_independent_iterations():
    net = DCDMNet(2, channels=6, blocks=3, init="multigrid", restriction="adjoint")
    counts = []
    for n in (64, 128):
        system = poisson2d(n)
        result = dcdm_solve(system.A, system.b, net, rtol=1e-6)
        assert result.converged and result.info["fallback_steps"] == 0
        counts.append(result.iterations)
    # CG needs ~2x more iterations per doubling of the grid, BPX-PCG ~1.3x (53 -> 70)
    assert max(counts) <= 25 and counts[1] <= 1.25 * counts[0], counts


def test_multigrid_initialisation_needs_room():
    with pytest.raises(ValueError, match="channels >= 6 and blocks >= 3"):
        DCDMNet(2, channels=4, blocks=3, init="multigrid")
    with pytest.raises(ValueError, match="init must be one of"):
        DCDMNet(2, init="vcycle")
    with pytest.raises(ValueError, match="restriction must be one of"):
        DCDMNet(2, restriction="injection")


@settings(max_examples=8, deadline=None)
@given(
    shape=st.sampled_from([(7, 9), (16, 5), (3, 4, 6), (8, 8, 8)]),
    seed=st.integers(0, 2**31),
)
def test_adjoint_restriction_is_the_transpose_of_the_interpolation(shape, seed):
    # <P c, f> = 2^d <c, R f> with P = F.interpolate (PyTorch's own) and R the network's
    from learned.dcdm.pyramid import interpolation_adjoint as _interpolation_adjoint

    gen = torch.Generator().manual_seed(seed)
    coarse_shape = tuple((n + 1) // 2 for n in shape)
    c = torch.randn(2, 3, *coarse_shape, generator=gen, dtype=torch.float64)
    f = torch.randn(2, 3, *shape, generator=gen, dtype=torch.float64)
    mode = "bilinear" if len(shape) == 2 else "trilinear"
    Pc = torch.nn.functional.interpolate(c, size=shape, mode=mode, align_corners=False)
    Rf = _interpolation_adjoint(f, coarse_shape)
    torch.testing.assert_close(
        (Pc * f).sum(), 2 ** len(shape) * (c * Rf).sum(), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("obstacles", [False, True])
@pytest.mark.parametrize("blocks", [3, 5])
def test_multigrid_network_is_a_symmetric_operator(obstacles, blocks):
    # linear (exact channel pairs) and symmetric (restriction = interpolation^T / 2^d,
    # V(nu, nu)), with or without solid nodes: what makes its DCDM a PCG
    system = poisson_obstacles(32, 2, obstacles=4, rng=2) if obstacles else poisson2d(32)
    geometry = torch.as_tensor(GridStencil.from_matrix(system.A, (32, 32)).geometry()[None])
    net = DCDMNet(2, channels=6, blocks=blocks, init="multigrid", restriction="adjoint")
    net = net.double()
    gen = torch.Generator().manual_seed(1)
    r1, r2 = torch.randn(2, 1, 1, 32, 32, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        q1, q2 = net(r1, geometry), net(r2, geometry)
        torch.testing.assert_close(net(r1 - 2 * r2, geometry), q1 - 2 * q2, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close((q1 * r2).sum(), (r1 * q2).sum(), rtol=1e-6, atol=1e-9)


def test_adjoint_restriction_trains_after_inference():
    # the transfer's index tensors must not be cached from an inference-mode call
    net = DCDMNet(2, channels=6, blocks=3, init="multigrid", restriction="adjoint")
    r = torch.randn(1, 1, 16, 16)
    with torch.inference_mode():
        net(r)
    net(r).square().sum().backward()
    assert net.lift.weight.grad is not None


# ------------------------------------------------------------ Galerkin operator layers


def _galerkin_levels(A: np.ndarray, shape: tuple[int, ...], depth: int) -> list[tuple]:
    """Dense ``(A_l, mask_l, P_l)``: ``A_{l+1} = P'^T A_l P'``, ``P' = diag(m_l) P``.

    The fine mask holds the rows with an off-diagonal entry; a coarse node is kept
    when its interpolation reaches a kept fine node. ``A`` is scaled so that the
    largest diagonal entry is ``2d``, as the network sees it.
    """
    A = A / (A.diagonal().max() / (2 * len(shape)))
    mask = (np.abs(A) - np.diag(np.diag(np.abs(A)))).sum(axis=1) > 0
    levels = []
    for _ in range(depth):
        if min(shape) < 2:
            break
        coarse = tuple((n + 1) // 2 for n in shape)
        P = np.ones((1, 1))
        for n, c in zip(shape, coarse, strict=True):
            P = np.kron(P, _interpolation_matrix(n, c))
        P = mask[:, None] * P
        levels.append((A, mask, P))
        A, mask, shape = P.T @ A @ P, P.sum(axis=0) > 0, coarse
    return [*levels, (A, mask, None)]


def _galerkin_v_cycle(levels: list[tuple], r: np.ndarray, nu: int, dim: int) -> np.ndarray:
    """V(nu, nu), damped Jacobi with each level's diagonal, coarse correction ``P A_c^{-1} P^T``."""
    (A, mask, P), rest = levels[0], levels[1:]
    diagonal = np.where(mask, np.diag(A), 1.0)
    jacobi = np.where(mask, {2: 4 / 5, 3: 6 / 7}[dim] / diagonal, 0.0)
    e = np.zeros_like(r)
    for _ in range(nu if rest else nu + 1):
        e = e + jacobi * (r - A @ e)
    if not rest:
        return e
    e = e + P @ _galerkin_v_cycle(rest, P.T @ (r - A @ e), nu, dim)
    for _ in range(nu):
        e = e + jacobi * (r - A @ e)
    return e


def _galerkin_net(dim: int, blocks: int = 3, **kwargs) -> DCDMNet:
    return DCDMNet(
        dim,
        channels=6,
        blocks=blocks,
        init="multigrid",
        restriction="adjoint",
        galerkin=True,
        **kwargs,
    )


@pytest.mark.parametrize(("n", "dim"), [(11, 2), (16, 2), (6, 3), (9, 3)])
def test_galerkin_pyramid_is_the_product_of_the_network_transfers(n, dim):
    system = poisson_obstacles(n, dim, obstacles=3, neumann=("x-",), rng=n)
    A_before = system.A.copy()
    pyramid = OperatorPyramid.from_matrix(system.A, system.grid_shape, 8, dtype=torch.float64)
    levels = _galerkin_levels(system.A.toarray(), system.grid_shape, 8)
    assert len(levels) == len(pyramid.operators)
    for (A, mask, _), operator, inverse, m in zip(
        levels, pyramid.operators, pyramid.inverse_diagonals, pyramid.masks, strict=True
    ):
        np.testing.assert_allclose(operator.to_dense().numpy(), A, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(m.numpy().ravel(), mask)
        np.testing.assert_allclose(inverse.numpy().ravel()[mask], 1 / np.diag(A)[mask], rtol=1e-12)
        assert not inverse.numpy().ravel()[~mask].any()
        np.testing.assert_allclose(A, A.T, atol=1e-12)
    assert (system.A != A_before).nnz == 0


@pytest.mark.parametrize("blocks", [3, 4])
@pytest.mark.parametrize(("shape", "obstacles"), [((16, 16), 0), ((20, 20), 4), ((8, 8, 8), 3)])
def test_galerkin_multigrid_initialisation_is_a_galerkin_v_cycle(shape, obstacles, blocks):
    dim = len(shape)
    system = poisson_obstacles(shape[0], dim, obstacles=obstacles, neumann=("y+",), rng=5)
    net = _galerkin_net(dim, blocks).double()
    depth = net.depth(shape)
    pyramid = OperatorPyramid.from_matrix(system.A, shape, depth, dtype=torch.float64)
    r = np.random.default_rng(0).standard_normal(shape)
    with torch.no_grad():
        q = net(torch.as_tensor(r)[None, None], None, pyramid)[0, 0].numpy().ravel()
    levels = _galerkin_levels(system.A.toarray(), shape, depth)
    expected = _galerkin_v_cycle(levels, r.ravel() * levels[0][1], blocks - 2, dim)
    np.testing.assert_allclose(q, expected, rtol=0, atol=1e-6 * np.abs(expected).max())


@pytest.mark.parametrize("dim", [2, 3])
def test_galerkin_network_is_a_symmetric_operator_on_obstacles(dim):
    n = 24 if dim == 2 else 10
    system = poisson_obstacles(n, dim, obstacles=4, neumann=("x+",), rng=7)
    net = _galerkin_net(dim).double()
    pyramid = OperatorPyramid.from_matrix(
        system.A, system.grid_shape, net.depth(system.grid_shape), dtype=torch.float64
    )
    gen = torch.Generator().manual_seed(2)
    r1, r2 = torch.randn(2, 1, 1, *system.grid_shape, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        q1, q2 = net(r1, None, pyramid), net(r2, None, pyramid)
        combined = net(r1 - 2 * r2, None, pyramid)
    torch.testing.assert_close(combined, q1 - 2 * q2, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close((q1 * r2).sum(), (r1 * q2).sum(), rtol=1e-6, atol=1e-9)


def test_galerkin_network_iterations_stay_flat_on_obstacles():
    # the rediscretised cycle needed 75 -> 120 -> 187 iterations on 128² -> 512²
    net = _galerkin_net(2, blocks=4)
    counts = []
    for n in (32, 64, 128):
        system = poisson_obstacles(n, 2, obstacles=6, neumann=("x-", "y-", "y+"), rng=11)
        result = dcdm_solve(system.A, system.b, net, rtol=1e-6)
        assert result.converged and result.info["fallback_steps"] == 0
        counts.append(result.iterations)
    assert max(counts) <= 12 and counts[-1] <= counts[0] + 2, counts


def test_galerkin_network_carries_variable_coefficients():
    # Darcy with a log-normal coefficient: constant-stencil weights never saw it, the
    # Galerkin operators do (IC(0)-PCG needs 115 iterations at 128²)
    net = _galerkin_net(2, blocks=4)
    for n in (64, 128):
        system = darcy(n, rng=0)
        result = dcdm_solve(system.A, system.b, net, rtol=1e-6)
        assert result.converged and result.info["fallback_steps"] == 0
        assert result.iterations <= 9, (n, result.iterations)


def test_galerkin_network_reads_the_box_without_a_pyramid():
    net = _galerkin_net(2).double()
    r = torch.randn(1, 1, 12, 10, dtype=torch.float64)
    box = OperatorPyramid.box((12, 10), net.depth((12, 10)), dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(net(r), net(r, None, box))


def test_galerkin_network_trains_through_the_operator_layers():
    net = _galerkin_net(2)
    system = poisson_obstacles(16, 2, obstacles=2, rng=1)
    pyramid = OperatorPyramid.from_matrix(system.A, (16, 16), net.depth((16, 16)))
    net(torch.randn(2, 1, 16, 16), None, pyramid).square().sum().backward()
    mix = net.down[0][2].weight
    assert mix.grad is not None and bool(mix.grad.abs().sum() > 0)


def test_galerkin_bad_input_is_rejected():
    with pytest.raises(ValueError, match="restriction='adjoint'"):
        DCDMNet(2, galerkin=True)
    with pytest.raises(TypeError, match="galerkin must be a bool"):
        DCDMNet(2, restriction="adjoint", galerkin=1)
    r = torch.randn(1, 1, 8, 8)
    pyramid = OperatorPyramid.box((8, 8), 2)
    with pytest.raises(ValueError, match="galerkin=True"):
        _random_net(2)(r, None, pyramid)
    net = _galerkin_net(2)
    with pytest.raises(ValueError, match="pyramid has grids"):
        net(r, None, pyramid)
    with pytest.raises(ValueError, match="float64"):
        net(r, None, OperatorPyramid.box((8, 8), net.depth((8, 8)), dtype=torch.float64))
    A = poisson2d(8).A
    with pytest.raises(ValueError, match="square for grid"):
        OperatorPyramid.from_matrix(A, (8, 9), 2)
    with pytest.raises(ValueError, match="depth must be >= 0"):
        OperatorPyramid.from_matrix(A, (8, 8), -1)
    with pytest.raises(TypeError, match="grid_shape"):
        OperatorPyramid.from_matrix(A, 64, 2)
    with pytest.raises(TypeError, match="A must be a scipy"):
        OperatorPyramid.from_matrix(aslinearoperator(A), (8, 8), 2)
    bad = A.toarray()
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        OperatorPyramid.from_matrix(bad, (8, 8), 2)
