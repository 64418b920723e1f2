"""The gpytorch kernel modules and the PINN baseline (torch consumers of solvers.gp_pde)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
pytest.importorskip("gpytorch")

from learned.gp_kernels import SpectralMixtureProductKernel  # noqa: E402
from learned.gp_pinn import train_pinn  # noqa: E402
from solvers.gp_pde import PAPER_PROBLEMS, SpectralMixture, poisson  # noqa: E402


@st.composite
def mixture_pairs(draw):
    env = draw(st.sampled_from(["se", "matern52"]))
    q = draw(st.integers(1, 3))
    out = []
    for _ in range(2):
        w = draw(st.lists(st.floats(0.1, 2.0), min_size=q, max_size=q))
        f = draw(st.lists(st.floats(0.01, 3.0), min_size=q, max_size=q))
        ell = draw(st.lists(st.floats(0.2, 2.0), min_size=q, max_size=q))
        out.append(SpectralMixture(np.array(w), np.array(f), np.array(ell), env))
    return out


@settings(max_examples=10)
@given(mixture_pairs(), st.integers(0, 100))
def test_gpytorch_kernel_equals_product_of_numpy_kernels(mixtures, seed):
    rng = np.random.default_rng(seed)
    x1, x2 = rng.uniform(-1, 1, (6, 2)), rng.uniform(-1, 1, (4, 2))
    module = SpectralMixtureProductKernel.from_mixtures(mixtures)
    got = module(torch.from_numpy(x1), torch.from_numpy(x2)).to_dense().detach().numpy()
    expected = mixtures[0].matrix(x1[:, 0], x2[:, 0]) * mixtures[1].matrix(x1[:, 1], x2[:, 1])
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    diag = module(torch.from_numpy(x1), diag=True).detach().numpy()
    np.testing.assert_allclose(
        diag, np.full(6, np.sum(mixtures[0].weights) * np.sum(mixtures[1].weights))
    )
    back = module.to_mixtures()
    for a, b in zip(back, mixtures, strict=True):
        np.testing.assert_allclose(a.weights, b.weights, rtol=1e-12)
        np.testing.assert_allclose(a.frequencies, b.frequencies, rtol=1e-9)
        np.testing.assert_allclose(a.lengthscales, b.lengthscales, rtol=1e-9)


@pytest.mark.parametrize("envelope", ["se", "matern52"])
def test_autograd_derivative_kernels_match_the_closed_forms(envelope):
    k = SpectralMixture(np.array([0.7, 0.4]), np.array([0.3, 1.7]), np.array([0.5, 0.9]), envelope)
    module = SpectralMixtureProductKernel.from_mixtures([k])
    x1 = torch.linspace(-1.0, 1.0, 7, dtype=torch.float64)
    x2 = torch.linspace(-0.9, 1.1, 5, dtype=torch.float64)
    d1 = torch.zeros(7, 5, dtype=torch.float64)
    d2 = torch.zeros(7, 5, dtype=torch.float64)
    mixed = torch.zeros(7, 5, dtype=torch.float64)
    for i in range(7):
        for j in range(5):
            a = x1[i : i + 1].clone().requires_grad_(True)
            b = x2[j : j + 1].clone().requires_grad_(True)
            value = module(a[:, None], b[:, None]).to_dense().sum()
            (ga,) = torch.autograd.grad(value, a, create_graph=True)
            d1[i, j] = ga.sum()
            d2[i, j] = torch.autograd.grad(ga.sum(), a, retain_graph=True)[0].sum()
            mixed[i, j] = torch.autograd.grad(ga.sum(), b)[0].sum()
    xs, ys = x1.numpy(), x2.numpy()
    np.testing.assert_allclose(d1.detach().numpy(), k.matrix(xs, ys, 1, 0), atol=1e-10)
    np.testing.assert_allclose(d2.detach().numpy(), k.matrix(xs, ys, 2, 0), atol=1e-8)
    np.testing.assert_allclose(mixed.detach().numpy(), k.matrix(xs, ys, 1, 1), atol=1e-8)


def test_gpytorch_kernel_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_mixtures"):
        SpectralMixtureProductKernel(num_dims=1, num_mixtures=0)
    with pytest.raises(ValueError, match="envelope"):
        SpectralMixtureProductKernel(num_dims=1, num_mixtures=1, envelope="rbf")
    k = SpectralMixtureProductKernel(num_dims=2, num_mixtures=1)
    with pytest.raises(ValueError, match="2 columns"):
        k(torch.zeros(3, 1, dtype=torch.float64)).to_dense()


def test_pinn_trains_resumes_from_checkpoint_and_checks_input(tmp_path):
    """A checkpointed run resumes at its step count with its weights: with the step budget
    already reached no step is taken and the weights are the checkpoint's."""
    from safetensors.torch import load_file

    p = PAPER_PROBLEMS["poisson1d-sin100"]
    axes = p.axes((64,))
    f, g = p.source(axes), p.exact(axes)
    ckpt = tmp_path / "pinn.safetensors"
    kw = {"seconds": 30.0, "width": 8, "depth": 2, "checkpoint": ckpt}
    first = train_pinn(p.operator, axes, f, g, max_steps=5, **kw)
    assert first.steps == 5 and ckpt.exists()
    saved = load_file(str(ckpt))
    assert int(saved.pop("__steps__").item()) == 5
    for name, value in first.model.state_dict().items():
        assert torch.equal(value, saved[name]), name
    # Budget reached: a resume takes no step. Another seed (a fresh run from it would end
    # elsewhere) and the weights must still be the checkpoint's, not a re-initialisation.
    again = train_pinn(p.operator, axes, f, g, max_steps=5, rng=1, **kw)
    assert again.steps == 5
    for name, value in again.model.state_dict().items():
        assert torch.equal(value, saved[name]), name
    fresh = train_pinn(p.operator, axes, f, g, seconds=30.0, max_steps=5, width=8, depth=2, rng=1)
    assert not torch.equal(fresh.model.state_dict()["0.weight"], saved["0.weight"])
    second = train_pinn(p.operator, axes, f, g, max_steps=8, **kw)
    assert second.steps == 8  # resumed at 5, three more steps
    moved = load_file(str(ckpt))
    assert int(moved["__steps__"].item()) == 8
    assert not torch.equal(moved["0.weight"], saved["0.weight"])
    assert second.predict(axes).shape == (64,)
    assert np.all(np.isfinite(second.predict(axes)))
    with pytest.raises(ValueError, match="grid shape"):
        train_pinn(poisson(1), axes, f[:-1], g, seconds=1.0)
    with pytest.raises(ValueError, match="NaN"):
        train_pinn(poisson(1), axes, np.full(64, np.nan), g, seconds=1.0)
