"""Mixture frequencies from the spectrum of the data: the GP-HM kernel initialisation.

The reference recipe spreads ``Q = 30`` frequencies uniformly over ``[0, freq_scale]``
with ``freq_scale`` tuned by hand per problem and lets the Jeffreys prior prune them
(ANCHORS.md). Here the components are placed where the data says the energy is: the
peaks of the windowed, zero-padded periodogram of the source term ``f`` along each axis
(averaged over the other axes), together with those of the Dirichlet data along the
boundary lines parallel to the axis (which is all there is for a homogeneous equation
such as advection), plus one low-frequency component for the smooth part of the
solution (harmonic corrections, polynomials) and one spanning the lowest few cycles per
domain, where the periodogram cannot separate lines from the smooth part. For a
constant-coefficient linear operator the solution has the frequencies of its source, so
the exact solution is never consulted.
"""

from __future__ import annotations

import math

import numpy as np

from solvers.gp_pde.kernels import SpectralMixture

__all__ = ["initial_kernel", "spectral_peaks"]

# Zero padding refines the peak locations to a fraction of the 1/T bin.
_PAD = 8
# Relative prior weight of the second low-frequency component, a hedge for lines the
# periodogram cannot resolve: in a product kernel an equal weight would make rough x
# rough the dominant explanation of smooth data.
_HEDGE = 1e-2
# Main-lobe half-width of the Blackman-Harris window, in bins 1/T.
_LOBE = 4.0


def spectral_peaks(
    rows: np.ndarray, spacing: float, *, max_peaks: int, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Return the frequencies and relative amplitudes of the periodogram peaks of ``rows``.

    Parameters
    ----------
    rows : numpy.ndarray, shape (m, n)
        ``m`` equispaced signals of length ``n`` (their power spectra are averaged).
    spacing : float
        Sample spacing ``h``; frequencies are in cycles per unit length.
    max_peaks : int
        At most this many peaks, the strongest first.
    threshold : float
        Keep local maxima of the amplitude spectrum above ``threshold`` times its
        maximum.

    Returns
    -------
    frequencies, amplitudes : numpy.ndarray
        Sorted by decreasing amplitude; amplitudes relative to the largest (1.0). Empty
        when the signals are zero.
    """
    rows = np.atleast_2d(np.asarray(rows, dtype=np.float64))
    n = rows.shape[1]
    # Mean removed and a 4-term Blackman-Harris window (side lobes below -92 dB, main
    # lobe 4 bins wide): a non-periodic signal on a box otherwise leaks its end-point
    # jump across the whole spectrum, and side lobes would pass for weak components.
    centred = rows - rows.mean(axis=1, keepdims=True)
    t = 2.0 * math.pi * np.arange(n) / (n - 1)
    window = 0.35875 - 0.48829 * np.cos(t) + 0.14128 * np.cos(2 * t) - 0.01168 * np.cos(3 * t)
    power = np.mean(np.abs(np.fft.rfft(centred * window, n=_PAD * n, axis=1)) ** 2, axis=0)
    amp = np.sqrt(power)
    top = float(amp.max())
    if top == 0.0:
        return np.zeros(0), np.zeros(0)
    freqs = np.fft.rfftfreq(_PAD * n, d=spacing)
    interior = np.flatnonzero((amp[1:-1] >= amp[:-2]) & (amp[1:-1] > amp[2:])) + 1
    peaks = interior[amp[interior] > threshold * top]
    peaks = peaks[np.argsort(-amp[peaks])][:max_peaks]
    return freqs[peaks], amp[peaks] / top


def initial_kernel(
    signals: list[np.ndarray],
    spacing: float,
    length: float,
    *,
    variance: float,
    envelope: str,
    max_components: int,
    threshold: float = 1e-3,
    width: float = 1.0,
) -> SpectralMixture:
    """Spectral-mixture kernel for one axis with components at the data's spectral peaks.

    Parameters
    ----------
    signals : list of numpy.ndarray, each (m, n)
        Source-term and boundary-data signals along this axis; each is analysed on its
        own (so a weak boundary signal is not drowned by a strong source) and the peaks
        are merged.
    spacing, length : float
        Grid spacing and length ``T`` of the axis.
    variance : float
        Prior variance ``k(0) = Σ w_q``, split evenly over the components.
    envelope : {"se", "matern52"}
    max_components : int
        At most this many components, the two low-frequency ones included.
    threshold : float
        Relative amplitude below which a peak is ignored.
    width : float
        Bump width in periodogram bins ``1/T``: lengthscale ``T / (2π width)``.

    Returns
    -------
    SpectralMixture
    """
    bin_width = 1.0 / length
    found: list[tuple[float, float]] = []
    for rows in signals:
        f, a = spectral_peaks(rows, spacing, max_peaks=max_components, threshold=threshold)
        found.extend(zip(f.tolist(), a.tolist(), strict=True))
    found.sort(key=lambda p: -p[1])
    # The low-frequency component owns everything within the main lobe of 0; other
    # peaks within a main-lobe half-width (4 bins) of a kept one are the same line.
    kept: list[float] = []
    for f, _ in found:
        if len(kept) == max_components - 2:
            break
        if f < _LOBE * bin_width or any(abs(f - g) < _LOBE * bin_width for g in kept):
            continue
        kept.append(f)
    # Two components at 0: a very smooth one (polynomials, harmonic corrections) and
    # one whose spectrum spans the main lobe of 0, where lines cannot be told apart
    # from the smooth part (a few cycles over the domain).
    freqs = np.array([0.0, 0.0, *kept[: max(max_components - 2, 0)]])[: max(max_components, 1)]
    ell = length / (2.0 * math.pi * width)
    lengthscales = np.full(freqs.size, ell)
    lengthscales[0] = length / 4.0
    if freqs.size > 1:
        lengthscales[1] = length / (math.pi * _LOBE)
    # No envelope narrower than two grid spacings: its spectrum would reach past the
    # Nyquist frequency, where collocation cannot pin the function down.
    lengthscales = np.maximum(lengthscales, 2.0 * spacing)
    weights = np.ones(freqs.size)
    if freqs.size > 1:
        weights[1] = _HEDGE
    weights *= variance / weights.sum()
    return SpectralMixture(weights, freqs, lengthscales, envelope)
