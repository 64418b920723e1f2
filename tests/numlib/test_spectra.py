"""Tests of numlib.spectra: tail fits on synthetic samples of known law, and numpy references.

Seed-fraction logic: each statistical check runs over 10 seeds and requires at least 8
successes, so an estimator that is right with probability 0.95 per seed fails the test
with probability ``P(Bin(10, 0.05) >= 3) < 0.012``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numlib._arrays import small_lapack_threads
from numlib.spectra import (
    esd,
    farms_esd,
    heavy_tail_alpha,
    hill_alpha,
    nuclear_norm,
    nuclear_norm_proxy,
    powerlaw_fit,
    spectral_density,
    stable_rank,
)

FEW = settings(max_examples=6, deadline=None)


@pytest.fixture(autouse=True)
def _one_blas_thread():
    # Many small SVDs: single-threaded BLAS is far faster on a loaded machine.
    with small_lapack_threads():
        yield


def _pareto(alpha: float, n: int, seed: int, xmin: float = 1.0) -> np.ndarray:
    # Density ~ x^-alpha above xmin: numpy's pareto(a) + 1 has tail index a = alpha - 1.
    return xmin * (np.random.default_rng(seed).pareto(alpha - 1.0, n) + 1.0)


@FEW
@given(alpha=st.floats(1.8, 4.5), xmin=st.sampled_from([0.01, 1.0, 300.0]))
def test_estimators_recover_a_known_exponent(alpha: float, xmin: float) -> None:
    ok_pl = ok_hill = 0
    for seed in range(10):
        x = _pareto(alpha, 3000, seed, xmin)
        fit = powerlaw_fit(x)
        ok_pl += fit.ok and abs(fit.alpha - alpha) <= max(4 * fit.sigma, 0.05)
        hill = hill_alpha(x, 1000)
        ok_hill += hill.ok and abs(hill.alpha - alpha) <= 4 * hill.sigma
    assert ok_pl >= 8 and ok_hill >= 8


def test_powerlaw_on_a_pareto_tail_above_a_body() -> None:
    # Uniform body below 1, Pareto tail above: xmin must be found near 1.
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(0.0, 1.0, 3000), _pareto(3.0, 3000, 1)])
    fit = powerlaw_fit(x)
    assert fit.ok
    assert abs(fit.alpha - 3.0) <= 4 * fit.sigma
    assert 0.8 <= fit.xmin <= 1.5


@pytest.mark.parametrize(
    "draw",
    [
        lambda rng: rng.uniform(0.0, 1.0, 3000),
        lambda rng: np.abs(rng.standard_normal(3000)),
        lambda rng: esd(rng.standard_normal((600, 300))),  # Marchenko-Pastur, bounded
    ],
    ids=["uniform", "half-normal", "marchenko-pastur"],
)
def test_powerlaw_reports_failure_on_light_tails(draw) -> None:
    fails = 0
    for seed in range(10):
        fit = powerlaw_fit(draw(np.random.default_rng(seed)))
        fails += (not fit.ok) and fit.reason is not None
    assert fails >= 8


def test_degenerate_samples_are_reported_not_hidden() -> None:
    few = powerlaw_fit(np.arange(1.0, 11.0))
    assert not few.ok and "too few" in few.reason and math.isnan(few.alpha)
    flat = hill_alpha(np.ones(100))
    assert not flat.ok and "equal" in flat.reason
    assert not hill_alpha(np.arange(1.0, 6.0)).ok
    fixed = powerlaw_fit(_pareto(2.5, 2000, 3), xmin=2.0)
    assert fixed.xmin >= 2.0 and fixed.ok


def test_esd_density_and_farms_against_references() -> None:
    rng = np.random.default_rng(0)
    W = rng.standard_normal((30, 50))
    ref = np.sort(np.linalg.eigvalsh(W @ W.T / 50))
    np.testing.assert_allclose(esd(W), ref, rtol=1e-10)
    np.testing.assert_allclose(esd(W.T), ref, rtol=1e-10)
    centres, density = spectral_density(ref, bins=7)
    width = (ref.max() - ref.min()) / 7
    assert np.sum(density) * width == pytest.approx(1.0)
    centres, density = spectral_density(ref, bins=7, log=True)
    assert np.all(np.diff(centres) > 0)
    # FARMS: pooled eigenvalues of every 15 x 15 window on the 50%-overlap grid.
    pooled = farms_esd(W, size=15)
    windows = [(r, c) for r in (0, 7, 14, 15) for c in (0, 7, 14, 21, 28, 35)]
    expected = np.sort(
        np.concatenate(
            [
                np.linalg.eigvalsh(W[r : r + 15, c : c + 15].T @ W[r : r + 15, c : c + 15] / 15)
                for r, c in windows
            ]
        )
    )
    np.testing.assert_allclose(pooled, expected, rtol=1e-8, atol=1e-12)


def test_farms_removes_the_aspect_ratio_bias() -> None:
    # i.i.d. layers of different shapes: the plain ESD edge depends on the aspect ratio,
    # (1 + sqrt(m/n))^2, while FARMS's square windows put every layer at (1 + 1)^2 = 4.
    rng = np.random.default_rng(1)
    edges_plain, edges_farms = [], []
    for shape in [(128, 512), (256, 256), (512, 128)]:
        W = rng.standard_normal(shape)
        edges_plain.append(esd(W).max())
        edges_farms.append(farms_esd(W, size=64, rng=0).max())
    assert max(edges_plain) - min(edges_plain) > 1.0
    assert max(edges_farms) - min(edges_farms) < 0.3 * 4
    assert all(2.8 < e < 4.6 for e in edges_farms)
    lam = farms_esd(rng.standard_normal((40, 400)), size=20, max_windows=5, rng=3)
    assert lam.shape == (100,)


def test_heavy_tail_alpha_on_a_heavy_tailed_matrix() -> None:
    # Entries with a Pareto law give a power-law ESD (Martin-Mahoney's heavy-tailed class).
    rng = np.random.default_rng(0)
    W = rng.pareto(1.5, (400, 200)) * rng.choice([-1.0, 1.0], (400, 200))
    for farms in (False, True):
        fit = heavy_tail_alpha(W, farms=farms, rng=0)
        assert fit.ok and 1.5 < fit.alpha < 5
    assert heavy_tail_alpha(W, method="hill").alpha > 1
    assert not heavy_tail_alpha(rng.standard_normal((400, 200))).ok


@FEW
@given(m=st.integers(1, 30), n=st.integers(1, 30), seed=st.integers(0, 2**16))
def test_stable_rank_and_nuclear_norms_against_numpy(m: int, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((m, n)) * rng.uniform(0.1, 3, n)
    s = np.linalg.svd(W, compute_uv=False)
    assert stable_rank(W) == pytest.approx(np.sum(s**2) / s[0] ** 2, rel=1e-10)
    assert 1 - 1e-12 <= stable_rank(W) <= min(m, n) + 1e-9
    assert nuclear_norm(W) == pytest.approx(np.linalg.norm(W, "nuc"), rel=1e-10)
    d = min(m, n)
    ref = np.sum(np.sort(np.linalg.norm(W, axis=0))[::-1][:d])
    proxy = nuclear_norm_proxy(W)
    assert proxy == pytest.approx(ref, rel=1e-12)
    assert proxy <= math.sqrt(d) * np.linalg.norm(W) * (1 + 1e-12)
    # Orthogonal columns: the proxy is exact.
    Q = np.linalg.qr(rng.standard_normal((max(m, n), d)))[0] * rng.uniform(0.1, 3, d)
    assert nuclear_norm_proxy(Q) == pytest.approx(np.linalg.norm(Q, "nuc"), rel=1e-10)


def test_spectra_torch_and_bad_input() -> None:
    torch = pytest.importorskip("torch")
    W = np.random.default_rng(0).standard_normal((6, 4))
    Wt = torch.from_numpy(W)
    np.testing.assert_allclose(esd(Wt).numpy(), esd(W), rtol=1e-12)
    assert stable_rank(Wt) == pytest.approx(stable_rank(W))
    assert nuclear_norm_proxy(Wt) == pytest.approx(nuclear_norm_proxy(W))
    with pytest.raises(ValueError, match="zero"):
        stable_rank(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="empty"):
        powerlaw_fit(np.array([]))
    with pytest.raises(ValueError, match="NaN"):
        hill_alpha(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="k must be"):
        hill_alpha(np.arange(1.0, 20.0), k=19)
    with pytest.raises(ValueError, match="significance"):
        powerlaw_fit(np.arange(1.0, 200.0), significance=1.5)
    with pytest.raises(ValueError, match="method"):
        heavy_tail_alpha(W, method="ml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="aspect"):
        farms_esd(W, aspect=0.5)
    with pytest.raises(ValueError, match="does not fit"):
        farms_esd(W, size=5)
    with pytest.raises(ValueError, match="2-D"):
        esd(np.ones(3))


def test_complex_samples_refused_unless_imaginary_parts_are_rounding() -> None:
    # complex eigenvalues used to be cast to their real parts with only a ComplexWarning
    lam = np.array([1 + 1j, 2, 3])
    with pytest.raises(ValueError, match="eigenvalues must be real"):
        spectral_density(lam, bins=2)
    with pytest.raises(ValueError, match="samples must be real"):
        hill_alpha(lam)
    with pytest.raises(ValueError, match="samples must be real"):
        powerlaw_fit(lam)
    with pytest.raises(ValueError, match="eigenvalues contains NaN"):
        spectral_density(np.array([1.0 + 1j * np.nan, 2.0]))
    # eigvals of a symmetric matrix may come back complex with rounding-level imaginary parts
    A = np.random.default_rng(0).standard_normal((40, 40))
    ev = np.linalg.eigvalsh(A + A.T)
    noisy = ev + 1e-15j * np.abs(ev).max()
    for log in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no ComplexWarning either
            got = spectral_density(noisy, bins=5, log=log)
        for x, y in zip(got, spectral_density(ev, bins=5, log=log), strict=True):
            np.testing.assert_array_equal(x, y)
