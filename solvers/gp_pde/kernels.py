"""Spectral-mixture kernels in one dimension and their derivative kernels (numpy).

A spectral-mixture kernel is the covariance whose power spectrum is a symmetric mixture
of ``Q`` bumps centred at ``±f_q`` (Wilson & Adams 2013; GP-HM, Fang et al. 2024)::

    k(τ) = Σ_q w_q B(τ; l_q) cos(2π f_q τ),      τ = x - x',

with envelope ``B`` the squared exponential ``exp(-τ²/(2 l²))`` (Gaussian-mixture
spectrum, GP-HM-GM) or the Matérn-5/2 ``(1 + a|τ| + a²τ²/3) exp(-a|τ|)``, ``a = √5/l``
(Student-t-mixture spectrum, GP-HM-StM). Both envelopes give a process that is twice
mean-square differentiable, so the derivative kernels ``∂^i_x ∂^j_{x'} k`` exist for
``i, j <= 2``; :meth:`SpectralMixture.matrix` returns them in closed form for ``i + j <= 2``,
which is what a second-order PDE needs (``∂_x`` and ``∂_x²`` of the conditional mean, and
the mixed ``∂_x ∂_{x'}`` covariance of the derivative process).

The torch/gpytorch modules with the same formulas live in :mod:`learned.gp_kernels`, so
that ``import solvers`` stays free of torch.

References
----------
A. G. Wilson, R. P. Adams, "Gaussian process kernels for pattern discovery and
extrapolation", ICML 2013.
S. Fang, M. Cooley, D. Long, S. Li, R. M. Kirby, S. Zhe, "Solving high frequency and
multi-scale PDEs with Gaussian processes", ICLR 2024.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["ENVELOPES", "SpectralMixture"]

ENVELOPES = ("se", "matern52")


def _envelope(kind: str, tau: np.ndarray, ell: float) -> tuple[np.ndarray, ...]:
    """Return ``B, B', B''`` of the envelope at signed lags ``tau`` (derivatives in ``tau``)."""
    if kind == "se":
        t = tau / ell
        b = np.exp(-0.5 * t * t)
        return b, -(t / ell) * b, ((t * t - 1.0) / (ell * ell)) * b
    a = math.sqrt(5.0) / ell
    rho = np.abs(tau)
    ar = a * rho
    e = np.exp(-ar)
    b = (1.0 + ar + ar * ar / 3.0) * e
    # B is even and C^2 at 0 (B'(0) = 0, B''(0) = -a^2/3): the |tau| kinks cancel.
    b1 = -(a * a / 3.0) * tau * (1.0 + ar) * e
    b2 = (a * a / 3.0) * (ar * ar - ar - 1.0) * e
    return b, b1, b2


@dataclass(frozen=True)
class SpectralMixture:
    r"""A one-dimensional spectral-mixture kernel ``k(τ) = Σ_q w_q B(τ; l_q) cos(2π f_q τ)``.

    Attributes
    ----------
    weights : numpy.ndarray, shape (Q,)
        Mixture weights ``w_q > 0`` (the variance each component contributes).
    frequencies : numpy.ndarray, shape (Q,)
        Centres ``f_q >= 0`` of the spectral bumps, in cycles per unit length.
    lengthscales : numpy.ndarray, shape (Q,)
        Envelope lengthscales ``l_q > 0``; the bump width is about ``1/(2π l_q)``.
    envelope : {"se", "matern52"}
        ``"se"``: Gaussian-mixture spectrum; ``"matern52"``: Student-t mixture.

    Raises
    ------
    ValueError
        For arrays of different lengths, empty or non-finite arrays, non-positive
        weights or lengthscales, negative frequencies, or an unknown envelope.

    Examples
    --------
    >>> import numpy as np
    >>> k = SpectralMixture(np.array([1.0]), np.array([2.0]), np.array([0.5]), "se")
    >>> x = np.linspace(0.0, 1.0, 5)
    >>> K = k.matrix(x, x)
    >>> bool(np.allclose(K, K.T)), float(K[0, 0])
    (True, 1.0)
    """

    weights: np.ndarray
    frequencies: np.ndarray
    lengthscales: np.ndarray
    envelope: str = "se"

    def __post_init__(self) -> None:
        names = ("weights", "frequencies", "lengthscales")
        arrays = [np.array(getattr(self, n), dtype=np.float64, copy=True) for n in names]
        for name, a in zip(names, arrays, strict=True):
            if a.ndim != 1 or a.size == 0:
                raise ValueError(f"{name} must be a non-empty 1-D array, got shape {a.shape}")
            if not np.all(np.isfinite(a)):
                raise ValueError(f"{name} contains NaN or Inf")
            a.flags.writeable = False
            object.__setattr__(self, name, a)
        if not arrays[0].size == arrays[1].size == arrays[2].size:
            raise ValueError(
                "weights, frequencies and lengthscales must have the same length, got "
                f"{arrays[0].size}, {arrays[1].size}, {arrays[2].size}"
            )
        if np.any(arrays[0] <= 0):
            raise ValueError("weights must be > 0")
        if np.any(arrays[1] < 0):
            raise ValueError("frequencies must be >= 0")
        if np.any(arrays[2] <= 0):
            raise ValueError("lengthscales must be > 0")
        if self.envelope not in ENVELOPES:
            raise ValueError(f"envelope must be one of {ENVELOPES}, got {self.envelope!r}")

    @property
    def components(self) -> int:
        """Number of mixture components ``Q``."""
        return int(self.weights.size)

    def matrix(
        self, x1: np.ndarray, x2: np.ndarray, order1: int = 0, order2: int = 0
    ) -> np.ndarray:
        r"""Return the derivative kernel matrix ``[∂^{order1}_x ∂^{order2}_{x'} k(x_i, x'_j)]``.

        For a stationary kernel ``∂^i_x ∂^j_{x'} k(x - x') = (-1)^j k^{(i+j)}(x - x')``, so
        the first derivative matrix is antisymmetric on a common grid and the second
        (``order1 = 2`` or the mixed ``order1 = order2 = 1``) symmetric. Closed forms, exact
        to rounding; ``O(Q n_1 n_2)``.

        Parameters
        ----------
        x1, x2 : numpy.ndarray, shape (n1,) and (n2,)
            Finite points.
        order1, order2 : int
            Derivative orders in the first and second argument, ``order1 + order2 <= 2``.

        Returns
        -------
        numpy.ndarray, shape (n1, n2)

        Raises
        ------
        ValueError
            For points that are not finite 1-D arrays, or orders out of range.
        """
        x1 = _points(x1, "x1")
        x2 = _points(x2, "x2")
        for name, o in (("order1", order1), ("order2", order2)):
            if isinstance(o, bool) or not isinstance(o, int | np.integer) or o < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {o!r}")
        total = int(order1) + int(order2)
        if total > 2:
            raise ValueError(f"order1 + order2 must be <= 2, got {total}")
        tau = x1[:, None] - x2[None, :]
        out = np.zeros(tau.shape)
        for w, f, ell in zip(self.weights, self.frequencies, self.lengthscales, strict=True):
            omega = 2.0 * math.pi * f
            b, b1, b2 = _envelope(self.envelope, tau, float(ell))
            c = np.cos(omega * tau)
            if total == 0:
                term = b * c
            else:
                s = np.sin(omega * tau)
                if total == 1:
                    term = b1 * c - omega * b * s
                else:
                    term = b2 * c - 2.0 * omega * b1 * s - omega * omega * b * c
            out += w * term
        return -out if order2 % 2 else out

    def spectral_density(self, nu: np.ndarray) -> np.ndarray:
        r"""Return the power spectrum ``S(nu) = ∫ k(τ) e^{-2πinuτ} dτ`` at frequencies ``nu``.

        Each component contributes ``w_q/2 (Ŝ(nu - f_q) + Ŝ(nu + f_q))`` where ``Ŝ`` is the
        envelope's transform: a Gaussian (SE) or a Student-t with 5 degrees of freedom
        (Matérn-5/2), both normalised so that ``∫ S = k(0) = Σ w_q``.
        """
        nu = np.asarray(nu, dtype=np.float64)
        out = np.zeros(nu.shape)
        for w, f, ell in zip(self.weights, self.frequencies, self.lengthscales, strict=True):
            for shift in (nu - f, nu + f):
                if self.envelope == "se":
                    dens = (
                        math.sqrt(2.0 * math.pi) * ell * np.exp(-2.0 * (math.pi * ell * shift) ** 2)
                    )
                else:
                    a = math.sqrt(5.0) / ell
                    # Fourier transform of the Matérn-5/2 correlation: 16 a^5 / (3 (a^2 + ω^2)^3).
                    om = 2.0 * math.pi * shift
                    dens = 16.0 * a**5 / (3.0 * (a * a + om * om) ** 3)
                out += 0.5 * w * dens
        return out


def _points(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or Inf")
    return x
