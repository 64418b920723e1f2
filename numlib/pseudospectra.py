"""Pseudospectra on a grid: ``sigma_min(zI - A)`` and a contour-plot helper.

The ``eps``-pseudospectrum ``{z : sigma_min(zI - A) <= eps}`` is where eigenvalues of
``A + E`` with ``||E||_2 <= eps`` can lie; for a non-normal ``A`` such as HiPPO-LegS it
is far larger than the ``eps``-neighbourhood of the spectrum, which is why a small
random perturbation moves eigenvalues into the right half-plane.

References
----------
L. N. Trefethen, M. Embree, *Spectra and Pseudospectra*, Princeton, 2005, ch. 39
(Schur reduction first, then a singular value per grid point).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg

from numlib._arrays import small_lapack_threads
from numlib.diag import _check_square

__all__ = ["Pseudospectrum", "plot_pseudospectrum", "pseudospectrum"]

# Grid points whose (n, n) matrices are decomposed in one batched SVD call.
_CHUNK = 64


@dataclass(frozen=True)
class Pseudospectrum:
    """``sigma_min(zI - A)`` on the grid ``z = x + i y``.

    Attributes
    ----------
    x, y : numpy.ndarray
        Real and imaginary grid coordinates.
    sigma_min : numpy.ndarray, shape (len(y), len(x))
        Smallest singular value of ``zI - A`` at ``z = x[j] + 1j * y[i]``.
    eigenvalues : numpy.ndarray
        Eigenvalues of ``A`` (diagonal of its complex Schur form).
    """

    x: np.ndarray
    y: np.ndarray
    sigma_min: np.ndarray
    eigenvalues: np.ndarray


def _grid_axis(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise TypeError(f"{name} must be real, got dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or Inf")
    return arr.astype(np.float64)


def pseudospectrum(A: np.ndarray, x: Any, y: Any) -> Pseudospectrum:
    r"""Smallest singular value of ``zI - A`` on the grid ``x + i y``.

    ``A`` is first reduced to complex Schur form ``A = Q T Q^H`` (``O(n^3)``, once);
    ``sigma_min(zI - A) = sigma_min(zI - T)`` since ``Q`` is unitary, and each grid
    point costs one singular-value decomposition of the triangular ``zI - T``
    (batched LAPACK ``gesdd``), ``O(n^3)``, so ``O(len(x) len(y) n^3)`` in all.
    Each value is exact for a matrix within ``O(u ||A||_2)`` of ``A``, so values
    below about ``u ||A||_2`` are rounding noise.

    Parameters
    ----------
    A : numpy.ndarray, shape (n, n)
        Real or complex, finite. Not modified.
    x, y : array_like, 1-D
        Real and imaginary parts of the grid.

    Returns
    -------
    Pseudospectrum

    Raises
    ------
    TypeError, ValueError
        Non-numpy, non-square, empty or non-finite ``A``; bad grid axes.

    Examples
    --------
    >>> A = np.diag([-1.0, -2.0])  # normal: sigma_min = distance to the spectrum
    >>> ps = pseudospectrum(A, np.array([0.0]), np.array([0.0, 1.0]))
    >>> np.round(ps.sigma_min[:, 0], 12).tolist()
    [1.0, 1.414213562373]
    """
    A = _check_square(A, "A")
    xs = _grid_axis(x, "x")
    ys = _grid_axis(y, "y")
    T = scipy.linalg.schur(A.astype(np.complex128), output="complex")[0]
    n = T.shape[0]
    z = (xs[None, :] + 1j * ys[:, None]).ravel()
    out = np.empty(z.size)
    eye = np.eye(n)
    with small_lapack_threads(n):
        for start in range(0, z.size, _CHUNK):
            zc = z[start : start + _CHUNK]
            svals = np.linalg.svd(zc[:, None, None] * eye - T, compute_uv=False)
            out[start : start + zc.size] = svals[:, -1]
    return Pseudospectrum(xs, ys, out.reshape(ys.size, xs.size), np.diag(T).copy())


def plot_pseudospectrum(
    ps: Pseudospectrum,
    levels: Sequence[float] = (-8, -6, -4, -2, 0),
    *,
    ax: Any = None,
    title: str | None = None,
) -> Any:
    """Draw ``log10 sigma_min`` contours (the ``10^level``-pseudospectra) and eigenvalues.

    Uses matplotlib's object interface (no pyplot, no GUI backend); matplotlib is
    imported only here.

    Parameters
    ----------
    ps : Pseudospectrum
        From :func:`pseudospectrum`.
    levels : sequence of float
        ``log10 eps`` of the contours.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; by default a new :class:`matplotlib.figure.Figure` with one.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding the axes (save it with ``fig.savefig(path)``).
    """
    if not isinstance(ps, Pseudospectrum):
        raise TypeError(f"ps must be a Pseudospectrum, got {type(ps).__name__}")
    if ax is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(5.5, 4.5))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    log_sigma = np.log10(np.maximum(ps.sigma_min, np.finfo(float).tiny))
    contours = ax.contour(ps.x, ps.y, log_sigma, levels=sorted(levels), cmap="viridis")
    fig.colorbar(contours, ax=ax, label="log10 eps")
    ax.plot(ps.eigenvalues.real, ps.eigenvalues.imag, "k.", markersize=4, label="eigenvalues")
    ax.axvline(0.0, color="0.6", linewidth=0.8)
    ax.set_xlabel("Re z")
    ax.set_ylabel("Im z")
    ax.set_aspect("equal", adjustable="datalim")
    if title:
        ax.set_title(title)
    return fig
