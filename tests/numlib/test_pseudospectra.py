"""Pseudospectra on a grid against dense singular values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numlib.hippo import hippo_legs
from numlib.pseudospectra import Pseudospectrum, plot_pseudospectrum, pseudospectrum


@given(n=st.integers(1, 8), seed=st.integers(0, 2**32 - 1), complex_=st.booleans())
def test_sigma_min_matches_dense_svd(n, seed, complex_):
    gen = np.random.default_rng(seed)
    A = gen.standard_normal((n, n)) + (1j * gen.standard_normal((n, n)) if complex_ else 0)
    x, y = np.linspace(-2, 2, 5), np.linspace(-1, 1, 3)
    ps = pseudospectrum(A, x, y)
    assert ps.sigma_min.shape == (3, 5)
    for i, yi in enumerate(y):
        for j, xj in enumerate(x):
            ref = np.linalg.svd((xj + 1j * yi) * np.eye(n) - A, compute_uv=False)[-1]
            assert ps.sigma_min[i, j] == pytest.approx(ref, rel=1e-9, abs=1e-12 * (1 + n))


@given(seed=st.integers(0, 2**32 - 1))
def test_normal_matrix_sigma_min_is_distance_to_spectrum(seed):
    gen = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(gen.standard_normal((6, 6)) + 1j * gen.standard_normal((6, 6)))
    lam = gen.standard_normal(6) + 1j * gen.standard_normal(6)
    A = (Q * lam) @ Q.conj().T
    x, y = np.linspace(-3, 3, 7), np.linspace(-3, 3, 5)
    ps = pseudospectrum(A, x, y)
    z = x[None, :] + 1j * y[:, None]
    dist = np.abs(z[..., None] - lam).min(axis=-1)
    np.testing.assert_allclose(ps.sigma_min, dist, atol=1e-12)


def test_legs_pseudospectrum_reaches_the_right_half_plane_and_plots():
    A, _ = hippo_legs(32)
    x, y = np.linspace(-40.5, 9.5, 26), np.linspace(-20, 20, 21)  # never on an eigenvalue
    ps = pseudospectrum(A, x, y)
    z = x[None, :] + 1j * y[:, None]
    dist = np.abs(z[..., None] + np.arange(1, 33)).min(axis=-1)
    # far from normal: sigma_min is orders of magnitude below the distance to the spectrum
    assert (ps.sigma_min / dist).min() < 1e-6
    # and the origin lies in the eps-pseudospectrum for eps = 1e-3 ||A||_2
    assert pseudospectrum(A, [0.0], [0.0]).sigma_min[0, 0] < 1e-3 * np.linalg.norm(A, 2)
    np.testing.assert_allclose(np.sort(ps.eigenvalues.real), -np.arange(32, 0, -1.0))
    fig = plot_pseudospectrum(ps, title="LegS")
    assert fig.axes[0].get_title() == "LegS"


def test_bad_inputs():
    with pytest.raises(ValueError, match="A must be square"):
        pseudospectrum(np.ones((2, 3)), [0.0], [0.0])
    with pytest.raises(ValueError, match="x must be a non-empty 1-D"):
        pseudospectrum(np.eye(2), [], [0.0])
    with pytest.raises(TypeError, match="y must be real"):
        pseudospectrum(np.eye(2), [0.0], [1j])
    with pytest.raises(TypeError, match="ps must be a Pseudospectrum"):
        plot_pseudospectrum(Pseudospectrum)
