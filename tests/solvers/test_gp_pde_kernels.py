"""Spectral-mixture kernels, their derivative kernels and the spectral initialisation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.integrate
from hypothesis import given
from hypothesis import strategies as st

from solvers.gp_pde.kernels import SpectralMixture
from solvers.gp_pde.spectrum import initial_kernel, spectral_peaks


@st.composite
def mixtures(draw):
    q = draw(st.integers(1, 3))
    w = draw(st.lists(st.floats(0.1, 2.0), min_size=q, max_size=q))
    f = draw(st.lists(st.floats(0.0, 3.0), min_size=q, max_size=q))
    ell = draw(st.lists(st.floats(0.2, 2.0), min_size=q, max_size=q))
    env = draw(st.sampled_from(["se", "matern52"]))
    return SpectralMixture(np.array(w), np.array(f), np.array(ell), env)


def _points(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.0, 1.0, n)


@given(mixtures(), st.integers(0, 1000))
def test_first_and_second_derivatives_match_finite_differences(k, seed):
    x1, x2 = _points(seed, 6), _points(seed + 1, 5)
    h = 1e-4
    fd1 = (k.matrix(x1 + h, x2) - k.matrix(x1 - h, x2)) / (2 * h)
    fd2 = (k.matrix(x1 + h, x2) - 2 * k.matrix(x1, x2) + k.matrix(x1 - h, x2)) / h**2
    fd_second_arg = (k.matrix(x1, x2 + h) - k.matrix(x1, x2 - h)) / (2 * h)
    fd_mixed = (k.matrix(x1 + h, x2, 0, 1) - k.matrix(x1 - h, x2, 0, 1)) / (2 * h)
    scale = float(np.sum(k.weights)) * (
        1 + (2 * math.pi * k.frequencies.max()) ** 2 + 1 / k.lengthscales.min() ** 2
    )
    np.testing.assert_allclose(k.matrix(x1, x2, 1, 0), fd1, atol=1e-6 * scale)
    np.testing.assert_allclose(k.matrix(x1, x2, 0, 1), fd_second_arg, atol=1e-6 * scale)
    np.testing.assert_allclose(k.matrix(x1, x2, 2, 0), fd2, atol=1e-4 * scale)
    np.testing.assert_allclose(k.matrix(x1, x2, 1, 1), fd_mixed, atol=1e-4 * scale)


@given(mixtures(), st.integers(0, 1000))
def test_kernel_matrix_is_symmetric_psd_and_derivatives_have_parity(k, seed):
    x = np.sort(_points(seed, 12))
    K = k.matrix(x, x)
    np.testing.assert_allclose(K, K.T, atol=1e-14)
    assert np.linalg.eigvalsh(K).min() >= -1e-10 * np.abs(K).max()
    # ∂_x k is odd in x - x', ∂_x² k and ∂_x ∂_x' k are even; ∂_x ∂_x' k = -∂_x² k.
    D1 = k.matrix(x, x, 1, 0)
    np.testing.assert_allclose(D1, -D1.T, atol=1e-12 * max(1.0, np.abs(D1).max()))
    np.testing.assert_allclose(
        k.matrix(x, x, 1, 1), -k.matrix(x, x, 2, 0), atol=1e-12 * np.abs(K).max() * 1e3
    )
    # The derivative process has a PSD covariance too.
    C = k.matrix(x, x, 1, 1)
    assert np.linalg.eigvalsh(0.5 * (C + C.T)).min() >= -1e-8 * np.abs(C).max()


@pytest.mark.parametrize("envelope", ["se", "matern52"])
def test_kernel_is_the_fourier_transform_of_its_spectral_density(envelope):
    k = SpectralMixture(np.array([0.7, 0.3]), np.array([0.0, 2.5]), np.array([0.8, 0.5]), envelope)
    for tau in (0.0, 0.13, 0.6):
        value, _ = scipy.integrate.quad(
            lambda nu, tau=tau: k.spectral_density(np.array(nu)) * math.cos(2 * math.pi * nu * tau),
            -60,
            60,
            limit=400,
        )
        assert value == pytest.approx(k.matrix(np.array([tau]), np.array([0.0]))[0, 0], abs=1e-6)


def test_kernel_rejects_bad_parameters():
    one = np.array([1.0])
    with pytest.raises(ValueError, match="same length"):
        SpectralMixture(np.array([1.0, 1.0]), one, one)
    with pytest.raises(ValueError, match="weights must be > 0"):
        SpectralMixture(np.array([-1.0]), one, one)
    with pytest.raises(ValueError, match="frequencies must be >= 0"):
        SpectralMixture(one, np.array([-1.0]), one)
    with pytest.raises(ValueError, match="lengthscales"):
        SpectralMixture(one, one, np.array([0.0]))
    with pytest.raises(ValueError, match="NaN"):
        SpectralMixture(np.array([np.nan]), one, one)
    with pytest.raises(ValueError, match="envelope"):
        SpectralMixture(one, one, one, "rbf")
    k = SpectralMixture(one, one, one)
    with pytest.raises(ValueError, match="<= 2"):
        k.matrix(one, one, 2, 1)
    with pytest.raises(ValueError, match="x1"):
        k.matrix(np.array([[1.0]]), one)


def test_kernel_does_not_alias_caller_arrays():
    w = np.array([1.0])
    k = SpectralMixture(w, np.array([1.0]), np.array([1.0]))
    w[0] = 5.0
    assert k.weights[0] == 1.0


@given(
    st.lists(st.floats(2.0, 60.0), min_size=1, max_size=3, unique=True),
    st.floats(0.0, 2 * math.pi),
)
def test_spectral_peaks_find_the_frequencies_of_a_sum_of_sines(freqs, phase):
    freqs = sorted(freqs)
    if any(b - a < 6.0 for a, b in itertools.pairwise(freqs)):
        freqs = freqs[:1]
    n, length = 400, 1.0
    x = np.linspace(0.0, length, n)
    signal = sum(np.sin(2 * math.pi * f * x + phase * (i + 1)) for i, f in enumerate(freqs))
    found, amp = spectral_peaks(signal[None, :], x[1] - x[0], max_peaks=len(freqs), threshold=1e-3)
    assert len(found) == len(freqs)
    # Zero padding by 8 resolves a line to well within half a 1/T bin.
    np.testing.assert_allclose(np.sort(found), freqs, atol=0.5 / length)
    assert amp.max() == 1.0


def test_initial_kernel_places_components_at_peaks_and_keeps_a_smooth_one():
    x = np.linspace(0.0, 2 * math.pi, 400)
    f = -1e4 * np.sin(100 * x)
    k = initial_kernel(
        [f[None, :]], x[1] - x[0], 2 * math.pi, variance=2.0, envelope="se", max_components=4
    )
    # Two smooth components at 0, then the line; the window's side lobes are not lines.
    np.testing.assert_array_equal(k.frequencies[:2], 0.0)
    assert k.frequencies.size == 3
    assert k.frequencies[2] == pytest.approx(100 / (2 * math.pi), abs=0.05)
    assert np.sum(k.weights) == pytest.approx(2.0)
    assert (
        initial_kernel(
            [np.zeros((1, 50))], 0.1, 4.9, variance=1.0, envelope="se", max_components=3
        ).components
        == 2
    )
