"""Weight-matrix spectra: ESD, heavy-tail exponent, FARMS, stable rank, nuclear-norm proxy.

Heavy-tailed self-regularisation diagnoses a trained layer ``W`` (``m x n``) by the
empirical spectral density (ESD) of ``X = W^T W / max(m, n)``: well-trained layers have a
power-law tail ``p(lam) ~ lam^-alpha`` with ``alpha`` roughly in ``[2, 6]``, random ones a
Marchenko-Pastur bulk with no power-law tail. Two estimators of ``alpha`` are provided,
both returning a :class:`TailFit` whose ``ok``/``reason`` report a failed fit instead of
hiding it:

:func:`hill_alpha`
    The Hill estimator on the ``k`` largest samples.
:func:`powerlaw_fit`
    Clauset-Shalizi-Newman: continuous MLE of ``alpha`` above ``xmin``, with ``xmin``
    chosen to minimise the Kolmogorov-Smirnov distance, and a likelihood-ratio test
    against an exponential tail (Vuong's test, as in their Sec. 5).

:func:`farms_esd` pools the ESDs of submatrices of one fixed aspect ratio (FARMS), which
removes the aspect-ratio bias of ``alpha`` between layers of different shapes.
:func:`stable_rank` and :func:`nuclear_norm_proxy` (the ``L_{1,2}`` column-norm proxy of
the nuclear norm, ``O(m n)`` instead of an SVD) complete the diagnostics.

References
----------
Martin, Mahoney. Implicit self-regularization in deep neural networks. JMLR 22, 2021.
Clauset, Shalizi, Newman. Power-law distributions in empirical data. SIAM Review 51, 2009.
Hill. A simple general approach to inference about the tail of a distribution. Ann.
Statist. 3(5), 1975.
Liu et al. Eigenspectrum analysis of neural networks without aspect ratio bias (FARMS).
ICML 2025.
Li et al. Large language model evaluation via matrix nuclear-norm. 2024.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from numlib._arrays import check_dense, small_lapack_threads
from numlib.backend import array_namespace, to_numpy
from numlib.validate import as_generator, check_positive_int, check_positive_real

__all__ = [
    "TailFit",
    "esd",
    "farms_esd",
    "heavy_tail_alpha",
    "hill_alpha",
    "nuclear_norm",
    "nuclear_norm_proxy",
    "powerlaw_fit",
    "spectral_density",
    "stable_rank",
]


def esd(W: Any) -> Any:
    """Eigenvalues of ``X = W^T W / max(m, n)``, ascending (the ``min(m, n)`` non-trivial ones).

    ``lam_i = sigma_i(W)^2 / max(m, n)``; for i.i.d. unit-variance entries they fill the
    Marchenko-Pastur support ``[(1 - sqrt(g))^2, (1 + sqrt(g))^2]``, ``g = min/max``.
    numpy and torch (``linalg.svdvals``).

    Examples
    --------
    >>> import numpy as np
    >>> esd(np.diag([3.0, 1.0])).tolist()
    [0.5, 4.5]
    """
    m, n = check_dense(W, "W")
    xp = array_namespace(W)
    s = xp.linalg.svdvals(W)
    return xp.flip(s * s) / max(m, n) if xp is not np else (s * s)[::-1] / max(m, n)


def spectral_density(
    eigenvalues: Any, bins: int = 100, *, log: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Histogram estimate of the ESD: bin centres and a density integrating to one.

    Parameters
    ----------
    eigenvalues : array
        Any library; copied to numpy. Real: complex values are accepted only when every
        imaginary part is at rounding level (``<= size * eps * max|lambda|``, as
        ``numpy.linalg.eigvals`` of a symmetric matrix may leave), and their real parts
        are used.
    bins : int
        Number of bins.
    log : bool
        Logarithmically spaced bins (for heavy tails; non-positive values are dropped).

    Returns
    -------
    centres, density : numpy.ndarray

    Raises
    ------
    TypeError
        Non-integer ``bins``.
    ValueError
        Empty or non-finite ``eigenvalues``, imaginary parts above rounding level, no
        positive value with ``log=True``, ``bins < 1``.

    Examples
    --------
    >>> import numpy as np
    >>> c, d = spectral_density(np.linspace(0, 1, 1001), bins=4)
    >>> bool(np.isclose(np.sum(d * 0.25), 1.0))
    True
    """
    lam = _samples(eigenvalues, "eigenvalues", positive=log)
    bins = check_positive_int(bins, "bins")
    if log:
        edges = np.geomspace(lam.min(), lam.max(), bins + 1)
        if edges[0] == edges[-1]:
            edges = np.array([edges[0] * 0.5, edges[0] * 2.0])
    else:
        edges = bins
    density, e = np.histogram(lam, bins=edges, density=True)
    centres = np.sqrt(e[1:] * e[:-1]) if log else (e[1:] + e[:-1]) / 2
    return centres, density


def _samples(x: Any, name: str, *, positive: bool) -> np.ndarray:
    a = np.asarray(to_numpy(x))
    if np.iscomplexobj(a):
        a = _real_part(a, name)
    a = np.asarray(a, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError(f"{name} must not be empty")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or Inf")
    if positive:
        a = a[a > 0]
        if a.size == 0:
            raise ValueError(f"{name} has no positive values")
    return a


def _real_part(a: np.ndarray, name: str) -> np.ndarray:
    """Real part of complex samples whose imaginary parts are rounding (else raise)."""
    if a.size == 0:
        raise ValueError(f"{name} must not be empty")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or Inf")
    imag = float(np.max(np.abs(a.imag)))
    tol = a.size * float(np.finfo(a.dtype).eps) * float(np.max(np.abs(a)))
    if imag > tol:
        raise ValueError(
            f"{name} must be real: imaginary parts up to {imag:.3g} exceed the rounding "
            f"level size * eps * max|{name}| = {tol:.3g}; pass the real part (or "
            "absolute values) explicitly if that is what is meant"
        )
    return a.real


@dataclass(frozen=True)
class TailFit:
    """A power-law tail fit ``p(x) ~ x^-alpha`` for ``x >= xmin``.

    Attributes
    ----------
    alpha : float
        Density exponent (``nan`` when the fit could not be made at all).
    xmin : float
        Start of the fitted tail.
    n_tail, n : int
        Samples in the tail / in all.
    sigma : float
        Standard error of ``alpha``, ``(alpha - 1) / sqrt(n_tail)``.
    ks_distance : float
        Kolmogorov-Smirnov distance between the tail and the fitted law.
    ok : bool
        Whether the data supports a power-law tail (see ``reason`` when False).
    reason : str or None
        Why the fit failed.
    method : str
        ``"hill"`` or ``"powerlaw"``.
    loglik_ratio, lr_pvalue : float
        ``powerlaw`` only: normalised log-likelihood ratio power law vs exponential
        (positive favours the power law) and its two-sided p-value; ``nan`` for Hill.
    """

    alpha: float
    xmin: float
    n_tail: int
    n: int
    sigma: float
    ks_distance: float
    ok: bool
    reason: str | None
    method: str
    loglik_ratio: float = math.nan
    lr_pvalue: float = math.nan


def _ks(tail: np.ndarray, alpha: float, xmin: float) -> float:
    n = tail.size
    model = 1.0 - (tail / xmin) ** (1.0 - alpha)
    upper = np.arange(1, n + 1) / n
    lower = np.arange(0, n) / n
    return float(max(np.max(np.abs(upper - model)), np.max(np.abs(model - lower))))


def hill_alpha(samples: Any, k: int | None = None, *, min_tail: int = 10) -> TailFit:
    """Hill estimate of the power-law density exponent from the ``k`` largest samples.

    With ``x_(1) >= x_(2) >= ...`` the order statistics,
    ``alpha = 1 + k / sum_{i<=k} ln(x_(i) / x_(k+1))`` (Hill 1975; ``alpha - 1`` is the
    tail index), consistent for Pareto-type tails as ``k -> inf``, ``k / n -> 0``, with
    standard error ``(alpha - 1)/sqrt(k)``. Default ``k = max(min_tail, n // 10)``. The fit
    is reported as failed (``ok=False``) when fewer than ``min_tail`` positive samples
    exist or the top samples are all equal.

    Parameters
    ----------
    samples : array
        Any library; non-positive values are ignored. Real (complex only with
        rounding-level imaginary parts, as for :func:`spectral_density`).
    k : int, optional
        Tail size, ``1 <= k < n``.
    min_tail : int
        Minimum tail size for a fit to count as ``ok``.

    Returns
    -------
    TailFit

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).pareto(2.0, 20000) + 1.0  # density exponent 3
    >>> round(hill_alpha(x, 2000).alpha, 1)
    3.0
    """
    x = np.sort(_samples(samples, "samples", positive=False))[::-1]
    x = x[x > 0]
    n = x.size
    min_tail = check_positive_int(min_tail, "min_tail")
    if k is None:
        k = min(max(min_tail, n // 10), n - 1)
    elif n >= 2:
        k = check_positive_int(k, "k")
        if k >= n:
            raise ValueError(f"k must be < the number of positive samples {n}, got {k}")
    if n < min_tail + 1 or k < 1:
        return TailFit(
            math.nan,
            math.nan,
            0,
            n,
            math.nan,
            math.nan,
            False,
            f"too few positive samples ({n}) for a tail of {min_tail}",
            "hill",
        )
    xk = x[k]
    logs = np.log(x[:k] / xk)
    total = float(logs.sum())
    if total <= 0:
        return TailFit(
            math.nan,
            float(xk),
            k,
            n,
            math.nan,
            math.nan,
            False,
            "the largest samples are all equal",
            "hill",
        )
    alpha = 1.0 + k / total
    ok = k >= min_tail
    return TailFit(
        alpha,
        float(xk),
        k,
        n,
        (alpha - 1.0) / math.sqrt(k),
        _ks(np.sort(x[:k]), alpha, float(xk)),
        ok,
        None if ok else f"tail of {k} < min_tail = {min_tail}",
        "hill",
    )


def powerlaw_fit(
    samples: Any,
    *,
    xmin: float | None = None,
    min_tail: int | None = None,
    max_candidates: int = 200,
    significance: float = 0.1,
) -> TailFit:
    """Clauset-Shalizi-Newman power-law fit with a KS-minimising ``xmin``.

    For each candidate ``xmin`` (sample values leaving at least ``min_tail`` points above;
    at most ``max_candidates`` of them, evenly spaced in rank) the continuous MLE
    ``alpha = 1 + n_t / sum ln(x_i / xmin)`` is fitted and the KS distance ``D`` between
    the tail's empirical CDF and ``1 - (x/xmin)^(1-alpha)`` computed; the ``xmin`` of least
    ``D`` wins. The fit is then tested against an exponential tail on the same points by
    Vuong's normalised log-likelihood ratio: ``ok=False`` when the exponential is
    significantly better (p < ``significance``), when ``D`` exceeds the 1% KS critical
    value ``1.63 / sqrt(n_t)`` (a loose check: ``xmin`` was fitted), or when there are
    fewer than ``min_tail`` positive samples. ``O(max_candidates * n)``.

    Parameters
    ----------
    samples : array
        Any library; non-positive values are ignored. Real (complex only with
        rounding-level imaginary parts, as for :func:`spectral_density`).
    xmin : float, optional
        Fixed tail start (no search).
    min_tail : int, optional
        Smallest tail considered; default ``max(50, n // 10)``. Short tails make the
        test against an exponential powerless (an exponential's far tail looks locally
        like a steep power law), so the default keeps a tenth of the data.
    max_candidates : int
        Cap on the ``xmin`` candidates tried.
    significance : float
        Level of the likelihood-ratio test, in ``(0, 1)``.

    Returns
    -------
    TailFit

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(1).pareto(1.5, 5000) + 1.0  # density exponent 2.5
    >>> fit = powerlaw_fit(x)
    >>> fit.ok, round(float(fit.alpha), 1)
    (True, 2.5)
    >>> powerlaw_fit(np.random.default_rng(1).uniform(1, 2, 5000)).ok
    False
    """
    x = np.sort(_samples(samples, "samples", positive=False))
    x = x[x > 0]
    n = x.size
    if min_tail is None:
        min_tail = max(50, n // 10)
    min_tail = check_positive_int(min_tail, "min_tail", minimum=2)
    max_candidates = check_positive_int(max_candidates, "max_candidates")
    significance = check_positive_real(significance, "significance")
    if significance >= 1:
        raise ValueError(f"significance must lie in (0, 1), got {significance}")
    if n < min_tail:
        return TailFit(
            math.nan,
            math.nan,
            0,
            n,
            math.nan,
            math.nan,
            False,
            f"too few positive samples ({n} < min_tail = {min_tail})",
            "powerlaw",
        )
    logx = np.log(x)
    suffix = np.cumsum(logx[::-1])[::-1]  # suffix[i] = sum_{j >= i} ln x_j
    if xmin is not None:
        xmin = check_positive_real(xmin, "xmin")
        starts = np.array([int(np.searchsorted(x, xmin, side="left"))])
        if n - starts[0] < min_tail:
            return TailFit(
                math.nan,
                xmin,
                int(n - starts[0]),
                n,
                math.nan,
                math.nan,
                False,
                f"fewer than min_tail = {min_tail} samples above xmin",
                "powerlaw",
            )
    else:
        last = n - min_tail  # the tail x[i:] keeps >= min_tail points
        distinct = np.flatnonzero(np.r_[True, x[1 : last + 1] != x[:last]])
        step = max(1, distinct.size // max_candidates)
        starts = distinct[::step][:max_candidates]
    best: tuple[float, float, int] | None = None
    for i in starts:
        nt = n - int(i)
        denom = suffix[i] - nt * logx[i]
        if denom <= 0:
            continue
        a = 1.0 + float(nt / denom)
        d = _ks(x[i:], a, float(x[i]))
        if best is None or d < best[0]:
            best = (d, a, int(i))
    if best is None:
        return TailFit(
            math.nan,
            math.nan,
            0,
            n,
            math.nan,
            math.nan,
            False,
            "every candidate tail is constant",
            "powerlaw",
        )
    d, alpha, i = best
    tail = x[i:]
    nt, lo = tail.size, float(tail[0])
    lr, p = _vuong_vs_exponential(tail, alpha, lo)
    reason = None
    if lr < 0 and p < significance:
        reason = f"an exponential tail fits significantly better (LR z = {lr:.2f}, p = {p:.2g})"
    elif d > 1.63 / math.sqrt(nt):
        reason = f"KS distance {d:.3f} exceeds the 1% critical value {1.63 / math.sqrt(nt):.3f}"
    return TailFit(
        alpha,
        lo,
        nt,
        n,
        (alpha - 1.0) / math.sqrt(nt),
        d,
        reason is None,
        reason,
        "powerlaw",
        lr,
        p,
    )


def _vuong_vs_exponential(tail: np.ndarray, alpha: float, xmin: float) -> tuple[float, float]:
    # Pointwise log-densities of the two fitted tails; Vuong's z is their mean difference
    # over its standard error, two-sided normal p-value (Clauset et al. 2009, eq. 5.4).
    excess = tail - xmin
    rate = 1.0 / excess.mean() if excess.mean() > 0 else math.inf
    if not math.isfinite(rate):
        return -math.inf, 0.0
    lp = math.log(alpha - 1.0) - math.log(xmin) - alpha * np.log(tail / xmin)
    le = math.log(rate) - rate * excess
    diff = lp - le
    sd = float(diff.std())
    if sd == 0:
        return 0.0, 1.0
    z = float(diff.sum()) / (sd * math.sqrt(tail.size))
    return z, math.erfc(abs(z) / math.sqrt(2.0))


def farms_esd(
    W: Any,
    *,
    aspect: float = 1.0,
    size: int | None = None,
    max_windows: int = 64,
    rng: int | np.random.Generator | None = None,
) -> np.ndarray:
    """FARMS: pooled ESD of submatrices with one fixed aspect ratio.

    Windows of ``size x ceil(aspect * size)`` (rows x columns; transposed for a wide
    ``W`` so that the long side of the window follows the long side of ``W``) are laid on
    a grid with 50% overlap covering ``W``; each window ``S`` contributes the eigenvalues
    of ``S^T S / (long side)`` and the pooled eigenvalues are returned, ascending. Every
    layer is then measured at the same aspect ratio, so the Marchenko-Pastur shape of the
    bulk, and the bias it puts on ``alpha``, no longer depends on the layer's shape.
    Default ``size = min(m, n) // 2`` (at least 1); at most ``max_windows`` windows, drawn
    without replacement by ``rng`` when the grid has more. numpy (the windows' SVDs are
    one batched LAPACK call).

    Parameters
    ----------
    W : array, shape (m, n)
    aspect : float
        Long side / short side of the windows, ``>= 1``.
    size : int, optional
        Short side of the windows.
    max_windows : int
    rng : int, numpy.random.Generator or None

    Returns
    -------
    numpy.ndarray
        Pooled eigenvalues, ascending.

    Examples
    --------
    >>> import numpy as np
    >>> lam = farms_esd(np.random.default_rng(0).standard_normal((64, 256)))
    >>> lam.shape  # 3 x 15 windows of 32 x 32 on a 64 x 256 matrix, 32 eigenvalues each
    (1440,)
    """
    m, n = check_dense(W, "W")
    A = np.asarray(to_numpy(W), dtype=np.float64)
    if m > n:
        A, m, n = A.T, n, m  # short side first
    aspect = check_positive_real(aspect, "aspect")
    if aspect < 1:
        raise ValueError(f"aspect must be >= 1 (long side / short side), got {aspect}")
    size = max(m // 2, 1) if size is None else check_positive_int(size, "size")
    long = math.ceil(aspect * size)
    if size > m or long > n:
        raise ValueError(f"a {size} x {long} window does not fit in a {m} x {n} matrix")
    max_windows = check_positive_int(max_windows, "max_windows")
    rows = _grid(m, size)
    cols = _grid(n, long)
    corners = [(r, c) for r in rows for c in cols]
    if len(corners) > max_windows:
        pick = as_generator(rng).choice(len(corners), size=max_windows, replace=False)
        corners = [corners[i] for i in np.sort(pick)]
    windows = np.stack([A[r : r + size, c : c + long] for r, c in corners])
    with small_lapack_threads():
        s = np.linalg.svd(windows, compute_uv=False)
    return np.sort((s * s).ravel() / long)


def _grid(length: int, window: int) -> list[int]:
    stride = max(window // 2, 1)
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] != length - window:
        starts.append(length - window)  # cover the far edge too
    return starts


def heavy_tail_alpha(
    W: Any,
    *,
    method: Literal["powerlaw", "hill"] = "powerlaw",
    farms: bool = False,
    rng: int | np.random.Generator | None = None,
    **fit_kwargs: Any,
) -> TailFit:
    """Heavy-tail exponent ``alpha`` of a weight matrix's ESD, optionally through FARMS.

    ``esd(W)`` (or ``farms_esd(W, rng=rng)``) fitted by :func:`powerlaw_fit` or
    :func:`hill_alpha`; ``fit_kwargs`` go to the fit. See those for the failure report.

    Examples
    --------
    >>> import numpy as np
    >>> W = np.random.default_rng(0).standard_normal((200, 100))
    >>> heavy_tail_alpha(W).ok  # a random matrix has no power-law tail
    False
    """
    lam = farms_esd(W, rng=rng) if farms else esd(W)
    if method == "powerlaw":
        return powerlaw_fit(lam, **fit_kwargs)
    if method == "hill":
        return hill_alpha(lam, **fit_kwargs)
    raise ValueError(f"method must be 'powerlaw' or 'hill', got {method!r}")


def stable_rank(W: Any) -> float:
    """Stable rank ``||W||_F^2 / ||W||_2^2``, in ``[1, rank(W)]``; numpy and torch.

    Raises
    ------
    ValueError
        For an all-zero ``W``.

    Examples
    --------
    >>> import numpy as np
    >>> stable_rank(np.diag([2.0, 1.0, 1.0]))
    1.5
    """
    check_dense(W, "W")
    xp = array_namespace(W)
    s = xp.linalg.svdvals(W)
    top = float(xp.max(s))
    if top == 0:
        raise ValueError("W is zero: its stable rank is undefined")
    return float(xp.sum(s * s)) / top**2


def nuclear_norm(W: Any) -> float:
    """Exact nuclear norm ``sum sigma_i`` (one SVD, ``O(m n min(m, n))``); numpy and torch."""
    check_dense(W, "W")
    xp = array_namespace(W)
    return float(xp.sum(xp.linalg.svdvals(W)))


def nuclear_norm_proxy(W: Any) -> float:
    """``L_{1,2}`` proxy of the nuclear norm: sum of the ``min(m, n)`` largest column norms.

    ``sum_{j in top D} ||W_{:,j}||_2`` with ``D = min(m, n)`` (Li et al. 2024), ``O(m n)``
    and no SVD. It equals ``||W||_*`` exactly when the columns are mutually orthogonal
    (``W^T W`` diagonal), and like the nuclear norm it is at most ``sqrt(D) ||W||_F``
    (Cauchy-Schwarz); in general it is a proxy, not a bound, and the benchmark measures
    its correlation with the exact value. numpy and torch.

    Examples
    --------
    >>> import numpy as np
    >>> W = np.linalg.qr(np.random.default_rng(0).standard_normal((5, 3)))[0] * [3.0, 2.0, 1.0]
    >>> round(nuclear_norm_proxy(W), 12), round(nuclear_norm(W), 12)
    (6.0, 6.0)
    """
    m, n = check_dense(W, "W")
    xp = array_namespace(W)
    norms = xp.sqrt(xp.sum(W * W, axis=0))
    d = min(m, n)
    if d == n:
        return float(xp.sum(norms))
    return float(xp.sum(xp.sort(norms)[n - d :]))
