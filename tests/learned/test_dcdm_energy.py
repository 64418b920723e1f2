"""DCDM energy-norm loss and checkpoint selection by solver iterations."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from dcdm_tiny import TINY
from hypothesis import given, reject, settings
from hypothesis import strategies as st

from learned.dcdm import GridStencil, apply_stencil
from learned.dcdm.loss import energy_loss, unrolled_energy_loss
from learned.dcdm.module import DCDMModule
from learned.dcdm.network import DCDMConfig, DCDMNet
from learned.dcdm.select import validation_iterations, validation_problems
from learned.dcdm.train import fit
from solvers.problems.obstacles import poisson_obstacles

torch.set_num_threads(1)


@st.composite
def obstacle_problems(draw):
    dim = draw(st.sampled_from([2, 3]))
    n = draw(st.integers(4, 10 if dim == 2 else 5))
    seed = draw(st.integers(0, 2**16))
    closed = draw(st.sets(st.sampled_from(["x-", "y+"])))
    try:
        return poisson_obstacles(n, dim, obstacles=3, neumann=sorted(closed), rng=seed)
    except ValueError:  # on the smallest grids three obstacles can fill the domain
        reject()


def _energy_reference(A: np.ndarray, q: np.ndarray, x: np.ndarray) -> float:
    """``min_a ||x - a q||_A² / ||x||_A²`` as a least-squares problem in Cholesky coordinates."""
    L = np.linalg.cholesky(A)  # ||v||_A = ||L^T v||_2
    e, v = L.T @ x, L.T @ q
    coef = np.linalg.lstsq(v[:, None], e, rcond=None)[0]
    return float(np.sum((e - v * coef[0]) ** 2) / np.sum(e**2))


@settings(max_examples=25)
@given(
    obstacle_problems(),
    st.floats(1e-3, 1e3) | st.floats(-1e3, -1e-3),
    st.floats(1e-3, 1e3),
    st.integers(0, 2**16),
)
def test_energy_loss_is_scale_invariant_and_matches_dense_reference(system, c, s, seed):
    gen = np.random.default_rng(seed)
    shape = (2, 1, *system.grid_shape)
    x = torch.as_tensor(gen.standard_normal(shape))
    q = torch.as_tensor(gen.standard_normal(shape))
    coeffs = GridStencil.from_matrix(system.A, system.grid_shape).to_tensor(torch.float64)
    b = apply_stencil(coeffs, x)
    loss = float(energy_loss(q, x, b, coeffs))
    assert 0.0 <= loss <= 1.0
    assert float(energy_loss(c * q, x, b, coeffs)) == pytest.approx(loss, rel=1e-12, abs=1e-14)
    assert float(energy_loss(q, s * x, s * b, coeffs)) == pytest.approx(loss, rel=1e-12, abs=1e-14)
    A = system.A.toarray()
    expected = np.mean(
        [_energy_reference(A, q[i].numpy().ravel(), x[i].numpy().ravel()) for i in range(2)]
    )
    assert loss == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_energy_loss_is_zero_at_the_solution_and_one_for_a_conjugate_direction():
    system = poisson_obstacles(10, 2, obstacles=2, rng=3, neumann=("y-",))
    coeffs = GridStencil.from_matrix(system.A, system.grid_shape).to_tensor(torch.float64)
    gen = np.random.default_rng(0)
    x = gen.standard_normal(100)
    w = gen.standard_normal(100)
    Ax = system.A @ x
    q = w - x * (w @ Ax) / (x @ Ax)  # A-orthogonal to x: the step cannot reduce the error
    to_t = lambda v: torch.as_tensor(v.reshape(1, 1, 10, 10))  # noqa: E731
    assert float(energy_loss(to_t(-4.0 * x), to_t(x), to_t(Ax), coeffs)) < 1e-14
    assert float(energy_loss(to_t(q), to_t(x), to_t(Ax), coeffs)) == pytest.approx(1.0, abs=1e-12)


def test_module_rejects_an_unknown_loss():
    coeffs = torch.zeros(1, 3, 8, 8)
    with pytest.raises(ValueError, match="loss must be one of"):
        DCDMModule(DCDMConfig(2), coeffs, coeffs, lr=1e-3, steps=1, seed=0, loss="l1")


def test_selected_network_is_the_best_evaluated_one(tmp_path):
    config = dataclasses.replace(TINY, steps=4, lr=3e-2, loss="energy", select_every=2)
    checkpoint = tmp_path / "run.ckpt.safetensors"
    net, summary = fit(config, tmp_path / "data", checkpoint=checkpoint, progress=False)
    history = summary["selection"]["history"]
    assert [entry["step"] for entry in history] == [0, 2, 4]
    best = min(history, key=lambda entry: (entry["total"], entry["step"]))
    assert summary["selection"]["best_step"] == best["step"]
    # The shipped weights reproduce the recorded iteration counts of the best step.
    assert validation_iterations(net, validation_problems(2, 16)) == best["iterations"]
    if best["step"] == 0:
        torch.manual_seed(config.seed)
        untrained = DCDMNet(2, channels=4, blocks=1)
        for key, value in untrained.state_dict().items():
            assert torch.equal(net.state_dict()[key], value), key


def _unrolled_reference(A: np.ndarray, M: np.ndarray, x: np.ndarray, steps: int, k: int) -> float:
    """Dense numpy DCDM recurrence with the direction ``q = M r/||r||``; relative A-error."""
    r, xs, window = A @ x, np.zeros_like(x), []
    for _ in range(steps):
        p = M @ (r / np.linalg.norm(r))
        for pj in window[-k:]:
            p = p - pj * (pj @ A @ p) / (pj @ A @ pj)
        alpha = (p @ r) / (p @ A @ p)
        xs, r = xs + alpha * p, r - alpha * (A @ p)
        window.append(p)
    e = x - xs
    return float(e @ A @ e / (x @ A @ x))


@settings(max_examples=20)
@given(obstacle_problems(), st.integers(1, 5), st.integers(1, 3), st.integers(0, 2**16))
def test_unrolled_loss_matches_dense_recurrence(system, steps, k, seed):
    gen = np.random.default_rng(seed)
    n = system.b.size
    active = ~system.params["solid"].ravel()
    x = gen.standard_normal(n) * active
    G = gen.standard_normal((n, n)) * np.outer(active, active)
    M = np.diag(1.0 / system.A.diagonal()) + 0.1 * G  # nonsymmetric: flexible CG
    coeffs = GridStencil.from_matrix(system.A, system.grid_shape).to_tensor(torch.float64)
    shape = (1, 1, *system.grid_shape)
    Mt = torch.as_tensor(M)
    direction = lambda r: (Mt @ r.reshape(-1)).reshape(shape)  # noqa: E731
    xt = torch.as_tensor(x.reshape(shape))
    b = apply_stencil(coeffs, xt)
    got = float(unrolled_energy_loss(direction, xt, b, coeffs, steps=steps, k=k))
    expected = _unrolled_reference(system.A.toarray(), M, x, steps, k)
    assert 0.0 <= got <= 1.0 + 1e-12
    assert got == pytest.approx(expected, rel=1e-7, abs=1e-12)


def test_unrolled_loss_rejects_bad_steps():
    coeffs = torch.zeros(3, 4, 4)
    x = torch.ones(1, 1, 4, 4)
    with pytest.raises(ValueError, match="steps must be a positive int"):
        unrolled_energy_loss(lambda r: r, x, x, coeffs, steps=0)
