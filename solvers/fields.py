"""Random coefficient fields for parametrised PDE families.

The Gaussian random field here is the one behind the Darcy data sets of the Fourier
neural operator (FNO) and sorting-Krylov-recycling (SKR) papers: a truncated
Karhunen-Loeve expansion in the Neumann eigenfunctions of the Laplacian on the unit
cube, sampled at the cell centres of a regular grid.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from numlib.validate import as_generator, check_positive_int, check_positive_real

__all__ = ["gaussian_random_field"]


def gaussian_random_field(
    shape: tuple[int, ...],
    *,
    alpha: float = 2.5,
    tau: float = 7.0,
    rng: int | np.random.Generator | None = None,
    boundary: str = "neumann",
) -> np.ndarray:
    r"""Draw a zero-mean Gaussian random field with covariance ``(-Δ + τ²)^(-alpha)``.

    The field is the Karhunen-Loeve expansion

    .. math::

        u(x) = \sum_{k \ne 0} \sigma (\pi^2 |k|^2 + \tau^2)^{-\alpha/2} \xi_k \phi_k(x),
        \qquad \sigma = \tau^{\alpha - d/2},

    over multi-indices ``k`` with ``0 <= k_i < shape[i]``, where ``xi_k`` are
    independent standard normals and ``phi_k(x) = Π_i c_{k_i} cos(π k_i x_i)`` (with
    ``c_0 = 1`` and ``c_j = √2`` otherwise) are the Neumann eigenfunctions of ``-Δ`` on
    the unit cube ``[0, 1]^d``, orthonormal in ``L²``, with eigenvalues ``π²|k|²``.
    It is evaluated at the cell centres ``(j + 1/2) / shape[i]``, ``0 <= j < shape[i]``,
    along each axis ``i``, which makes the sum an orthonormal inverse DCT-II scaled by
    ``sqrt(prod(shape))``; this reproduces the ``GRF(alpha, tau, s)`` MATLAB generator
    of the FNO data sets for ``d = 2``.

    Normalisation: the constant mode ``k = 0`` is dropped, so every sample has zero
    mean over the grid (exactly, up to rounding), not just in expectation. The factor
    ``sigma = τ^(alpha - d/2)`` keeps the pointwise variance roughly independent of
    ``τ``, because ``Σ_k (π²|k|² + τ²)^(-alpha) ≈ C τ^(d - 2 alpha)`` when
    ``alpha > d/2``; ``alpha > d/2`` is also what makes the continuum field exist (its
    variance stays bounded as the grid is refined). Larger ``alpha`` gives smoother
    fields, larger ``τ`` shorter correlation lengths (about ``1/τ``).

    With ``boundary="periodic"`` the basis is the Fourier one on the unit torus
    instead, ``u(x) = Re Σ_k sigma (4π²|k|² + τ²)^(-alpha/2) (ξ_k + i η_k) e^{2πi k·x}``
    over the FFT wavenumbers, sampled at the grid points ``j / shape[i]``: the
    ``GaussianRF`` of the FNO PyTorch code, which the SKR reference code draws its
    Darcy coefficients from.

    Cost: one ``d``-dimensional inverse DCT (or FFT), ``O(N log N)`` for
    ``N = prod(shape)``.

    Parameters
    ----------
    shape : tuple of int
        Grid size per dimension (any number of dimensions, each ``>= 1``).
    alpha : float, default 2.5
        Smoothness exponent, finite and ``> 0``.
    tau : float, default 7.0
        Inverse length scale, finite and ``> 0``.
    rng : int, numpy.random.Generator or None
        Seed or generator; the same seed gives the same field.
    boundary : {"neumann", "periodic"}
        Cosine (default) or Fourier basis.

    Returns
    -------
    numpy.ndarray
        Float64 array of the given shape.

    Raises
    ------
    TypeError
        If ``shape`` is not a tuple of integers, or ``alpha``, ``tau`` are not real
        numbers, or ``rng`` is not a seed or generator.
    ValueError
        If ``shape`` is empty or has an entry ``< 1``, ``alpha`` or ``tau`` is not
        finite and positive, or ``boundary`` is unknown.

    References
    ----------
    .. [1] Z. Li, N. Kovachki, K. Azizzadenesheli, B. Liu, K. Bhattacharya,
       A. Stuart, A. Anandkumar, "Fourier neural operator for parametric partial
       differential equations", ICLR 2021.
    .. [2] H. Wang, Z. Hao, J. Wang, Z. Geng, Z. Wang, B. Li, F. Wu, "Accelerating
       data generation for neural operators via Krylov subspace recycling",
       ICLR 2024.
    .. [3] F. Lindgren, H. Rue, J. Lindström, "An explicit link between Gaussian
       fields and Gaussian Markov random fields: the stochastic partial differential
       equation approach", J. R. Stat. Soc. B 73(4), 2011.
    """
    if not isinstance(shape, tuple | list) or len(shape) == 0:
        raise TypeError(f"shape must be a non-empty tuple of integers, got {shape!r}")
    dims = tuple(check_positive_int(s, "shape entry") for s in shape)
    alpha = check_positive_real(alpha, "alpha")
    tau = check_positive_real(tau, "tau")
    gen = as_generator(rng)
    if boundary not in ("neumann", "periodic"):
        raise ValueError(f"boundary must be 'neumann' or 'periodic', got {boundary!r}")

    d = len(dims)
    if boundary == "periodic":
        return _periodic_field(dims, alpha, tau, gen)
    # |k|^2 on the mode grid by broadcasting one 1-D axis per dimension.
    k2 = sum(
        np.arange(m, dtype=np.float64).reshape([-1 if a == i else 1 for a in range(d)]) ** 2
        for i, m in enumerate(dims)
    )
    scale = tau ** (alpha - d / 2) * (np.pi**2 * k2 + tau**2) ** (-alpha / 2)
    scale[(0,) * d] = 0.0
    coefficients = scale * gen.standard_normal(dims)
    field = scipy.fft.idctn(coefficients, type=2, norm="ortho")
    field *= np.sqrt(np.prod(dims, dtype=np.float64))
    return field


def _periodic_field(
    dims: tuple[int, ...], alpha: float, tau: float, gen: np.random.Generator
) -> np.ndarray:
    d = len(dims)
    k2 = sum(
        (np.fft.fftfreq(m, 1.0 / m) ** 2).reshape([-1 if a == i else 1 for a in range(d)])
        for i, m in enumerate(dims)
    )
    scale = tau ** (alpha - d / 2) * (4 * np.pi**2 * k2 + tau**2) ** (-alpha / 2)
    scale[(0,) * d] = 0.0
    coefficients = scale * (gen.standard_normal(dims) + 1j * gen.standard_normal(dims))
    # ifftn divides by N; the field is the plain sum over modes.
    return np.fft.ifftn(coefficients).real * np.prod(dims, dtype=np.float64)
