"""One symmetric eigendecomposition per factor, reused for solves and log-determinants."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

from numlib.kron.operators import (
    KroneckerOperator,
    KroneckerSum,
    _astype,
    _check_factors,
    _check_rhs,
    _host,
    _is_complex,
    _mode_products,
    _outer,
)

__all__ = ["KroneckerEigh", "kron_eigh"]


# Beyond e^600 (about 1e260) products of eigenvalues could overflow: scale them.
_SAFE_LOG = 600.0


def _times_exp(a: Any, log_factor: float) -> Any:
    """Return ``a * exp(log_factor)``, saturating to inf (as IEEE does) instead of raising."""
    if log_factor == 0.0:
        return a
    if log_factor <= 709.0:  # math.exp raises OverflowError beyond ~709.78
        return a * math.exp(log_factor)
    half = math.exp(min(log_factor / 2, 709.0))
    return a * half * half


class KroneckerEigh:
    r"""Eigendecomposition of ``K + shift * I`` for a Kronecker product or sum, per factor.

    Returned by :func:`kron_eigh`; do not instantiate directly. With symmetric factors
    ``A_d = Q_d Λ_d Q_d^T``, ``K`` has eigenvectors ``Q = Q_1 ⊗ ... ⊗ Q_D`` and
    eigenvalues ``λ_{1,i_1} ··· λ_{D,i_D}`` (product) or ``λ_{1,i_1} + ... +
    λ_{D,i_D}`` (sum), so after ``O(Σ n_d^3)`` set-up (Saatçi 2012, sec. 5.2.4;
    Wilson et al. 2014) every solve is two Kronecker matvecs with ``Q^T`` and ``Q``,
    ``O(N Σ n_d)`` per right-hand side.

    Attributes
    ----------
    kind : {"product", "sum"}
    shift : float
    shape : tuple of int
        ``(N, N)``.
    dtype : dtype
        Dtype of the factorisation and of every result (float64 by default).
    eigenvalues, eigenvectors : tuple of arrays
        ``Λ_d`` (ascending) and ``Q_d`` per factor, as ``eigh`` returned them.
    positive_definite : bool
        Whether every shifted eigenvalue exceeds its rounding-error bound (always
        true for ``kind="product"``, which is refused otherwise).
    """

    def __init__(
        self,
        xp: ModuleType,
        kind: str,
        eigenvalues: tuple[Any, ...],
        eigenvectors: tuple[Any, ...],
        shift: float,
    ) -> None:
        self._xp = xp
        self.kind = kind
        self.eigenvalues = eigenvalues
        self.eigenvectors = eigenvectors
        self.shift = shift
        self.dtype = eigenvectors[0].dtype
        n = math.prod(int(q.shape[0]) for q in eigenvectors)
        self.shape = (n, n)
        self._scaled_shifted_eigenvalues()

    def _scaled_shifted_eigenvalues(self) -> None:
        """Form ``w = (λ + shift) / S`` for all N eigenvalues and check its sign.

        ``S = 1`` unless the factors' or the shift's magnitude is extreme; then product
        eigenvalues are formed from factor eigenvalues divided by their largest
        magnitude ``c_d`` and ``S = max(Π c_d, shift)`` is kept as a log, so nothing
        overflows even for factors with entries near 1e200 (``logdet = N log S +
        Σ log w``).
        """
        xp, lams, shift = self._xp, self.eigenvalues, self.shift
        eps = float(xp.finfo(self.dtype).eps)
        sizes = [int(lam.shape[0]) for lam in lams]
        scales = [_host(xp.max(xp.abs(lam))) for lam in lams]
        if self.kind == "sum":
            self._log_scale = 0.0
            w = _outer(xp, list(lams), add=True) + shift
            # Each factor eigenvalue is accurate to about n_d eps ||A_d|| (LAPACK's
            # backward-stable eigh), and those errors add up in the sum.
            tol = eps * (sum(n * c for n, c in zip(sizes, scales, strict=True)) + abs(shift))
            tiny = _host(xp.min(xp.abs(w)))
            if tiny <= tol:
                raise ValueError(
                    f"K + shift*I is singular to working precision: an eigenvalue is "
                    f"{tiny:.3e} in magnitude, within its rounding error {tol:.3e}; change shift"
                )
            self._w = w
            self.positive_definite = _host(xp.min(w)) > tol
            return
        # Product. In the common case w = λ + shift exactly (S = 1). Only when the
        # spectral norm C = Π c_d or the shift is beyond ~e^±600 is each factor's
        # spectrum divided by c_d (so products lie in [-1, 1]) and S = max(C, shift)
        # kept as a log.
        scales = [c if c > 0 else 1.0 for c in scales]  # c_d = 1 for a zero factor
        log_c = sum(math.log(c) for c in scales)
        log_shift = math.log(shift) if shift > 0 else None
        if abs(log_c) <= _SAFE_LOG and (log_shift is None or abs(log_shift) <= _SAFE_LOG):
            units, log_s = [1.0] * len(scales), 0.0
        else:
            units = scales
            log_s = log_c if log_shift is None else max(log_c, log_shift)
        mus = [lam / u if u != 1.0 else lam for lam, u in zip(lams, units, strict=True)]
        unit_ratio = math.exp(sum(math.log(u) for u in units) - log_s)  # Π u_d / S
        w = _outer(xp, mus, add=False)
        w = w * unit_ratio if unit_ratio != 1.0 else w
        if log_shift is not None:
            w = w + (shift if log_s == 0.0 else math.exp(log_shift - log_s))
        self._log_scale = log_s
        self._w = w
        # Factor d's eigenvalues are accurate to n_d eps c_d, so product eigenvalue i
        # is accurate to eps Σ_d n_d c_d Π_{e≠d} |λ_e,i| (scaled by 1/S), at most
        # eps (C/S) Σ n_d. The per-eigenvalue bound is formed only when that global
        # one cannot clear the smallest w, so a well-shifted GP never pays for it.
        w_min = _host(xp.min(w))
        if w_min > eps * math.exp(log_c - log_s) * sum(sizes):
            self.positive_definite = True
            return
        err = None
        for d in range(len(mus)):
            weight = sizes[d] * scales[d] / units[d]
            parts = [
                xp.ones_like(mu) * weight if e == d else xp.abs(mu) for e, mu in enumerate(mus)
            ]
            term = _outer(xp, parts, add=False)
            err = term if err is None else err + term
        err = err * (eps * unit_ratio)
        margin = w - err
        worst = int(_host(xp.argmin(margin)))
        if _host(margin[worst]) <= 0:
            value = _times_exp(_host(w[worst]), log_s)
            bound = _times_exp(_host(err[worst]), log_s)
            what = "indefinite" if value < -bound else "singular to working precision"
            raise ValueError(
                f"K + shift*I is not positive definite ({what}): the eigenvalue "
                f"lambda + shift = {value:.3e} has rounding error {bound:.3e}; the factors "
                f"of K must be symmetric positive (semi)definite and shift > 0 large enough "
                f"(shift = {shift:g}). Eigenvalues are never clamped."
            )
        self.positive_definite = True

    def shifted_eigenvalues(self) -> Any:
        """Return all N eigenvalues ``λ + shift`` of the shifted operator (C-order), ``O(N)``.

        May overflow to inf for factors with huge entries, where :meth:`logdet` does not.
        """
        return _times_exp(self._w, self._log_scale)

    def _rhs(self, b: Any, name: str) -> Any:
        b = _check_rhs(self._xp, self.eigenvectors[0], b, name, self.shape[0], ndim=None)
        return _astype(self._xp, b, self.dtype)

    def _to_eigenbasis(self, b: Any) -> Any:
        return _mode_products(self._xp, [q.T for q in self.eigenvectors], b)

    def solve(self, b: Any) -> Any:
        """Return ``x`` with ``(K + shift * I) x = b``.

        ``x = Q diag(1 / (λ + shift)) Q^T b``: two Kronecker matvecs, ``O(N Σ n_d)``
        per column.

        Parameters
        ----------
        b : array, shape (N,) or (N, k)
            Right-hand side(s), same library as the factors; cast to :attr:`dtype`.

        Returns
        -------
        array, shape of ``b``, dtype :attr:`dtype`

        Raises
        ------
        TypeError, ValueError
            For a ``b`` of another library, the wrong shape, an integer dtype, NaN/Inf.
        """
        b = self._rhs(b, "b")
        t = self._to_eigenbasis(b)
        t = t / (self._w if t.ndim == 1 else self._w[:, None])
        x = _mode_products(self._xp, self.eigenvectors, t)
        return _times_exp(x, -self._log_scale)

    def inv_quad(self, b: Any) -> Any:
        """Return ``b^T (K + shift * I)^{-1} b``, one matvec with ``Q^T``, ``O(N Σ n_d)``.

        Parameters
        ----------
        b : array, shape (N,) or (N, k)

        Returns
        -------
        0-d array (numpy: ``numpy.float64``) for a vector; shape ``(k,)`` with one
        value per column for a block (the diagonal of ``B^T (K + shift I)^{-1} B``).
        """
        t = self._to_eigenbasis(self._rhs(b, "b"))
        w = self._w if t.ndim == 1 else self._w[:, None]
        out = self._xp.sum(t * t / w, axis=0)
        return _times_exp(out, -self._log_scale)

    def logdet(self) -> Any:
        """Return ``log det(K + shift * I) = Σ_i log(λ_i + shift)``, ``O(N)``.

        Computed as ``N log S + Σ log w`` from the scaled eigenvalues, so it is finite
        whenever the answer is, even when ``det`` itself over- or underflows. Nothing
        is clamped: non-positive-definite operators were refused by :func:`kron_eigh`
        (products) or are refused here (sums).

        Returns
        -------
        0-d array of the factors' library (numpy: ``numpy.float64``)

        Raises
        ------
        ValueError
            For a Kronecker sum whose shifted operator is not positive definite.
        """
        if not self.positive_definite:
            raise ValueError(
                "logdet needs K + shift*I positive definite, but it has a negative "
                f"eigenvalue {_host(self._xp.min(self._w)):.3e} (shift = {self.shift:g})"
            )
        return self._xp.sum(self._xp.log(self._w)) + self.shape[0] * self._log_scale


def kron_eigh(
    K: KroneckerOperator | KroneckerSum | Sequence[Any],
    shift: float = 0.0,
    *,
    dtype: Any = None,
    symmetry_rtol: float = 1e-10,
) -> KroneckerEigh:
    r"""Factorise ``K + shift * I`` by one symmetric eigendecomposition per factor.

    Each factor's ``eigh`` is computed once, in ``O(Σ_d n_d^3)`` (against ``O(N^3)``
    dense), and reused by :meth:`KroneckerEigh.solve`, :meth:`~KroneckerEigh.inv_quad`
    and :meth:`~KroneckerEigh.logdet`, each ``O(N Σ n_d)`` or less. For a GP with a
    product kernel on a grid and Gaussian noise ``σ²`` this is exact inference with
    ``K = K_1 ⊗ ... ⊗ K_D``, ``shift = σ²`` (Saatçi 2012, ch. 5; Wilson et al. 2014,
    KISS-GP 2015).

    Nothing is clamped: an operator that is not positive definite to working
    precision raises, with the offending eigenvalue and its error bound. (gpytorch's
    linear_operator 0.6.1 instead clamps each factor's eigenvalues at 0 and, for an
    unshifted Kronecker product, the eigenvalues in ``logdet`` at 1e-7, silently; it
    also recomputes the factor ``eigh`` for ``solve`` and again for ``logdet``.)

    Parameters
    ----------
    K : KroneckerOperator, KroneckerSum, or list/tuple of 2-D arrays
        The operator; a list means ``KroneckerOperator(K)``. Its factors must be
        square, real and symmetric (to ``symmetry_rtol``). For a product the shifted
        operator must be positive definite (factors symmetric positive semidefinite
        and ``shift > 0``, or positive definite factors); for a sum it must only be
        nonsingular.
    shift : float
        ``σ²``. For a product: finite and ``>= 0``. For a sum: any finite real (a
        negative shift gives e.g. a Helmholtz operator).
    dtype : dtype, optional
        Real floating dtype of the factorisation and of the results, in the factors'
        library; float64 by default, whatever the factors' dtype.
    symmetry_rtol : float
        A factor ``A`` is accepted when ``max|A - A^T| <= symmetry_rtol * max|A|``
        (``eigh`` reads one triangle only, so asymmetry would be ignored silently).

    Returns
    -------
    KroneckerEigh

    Raises
    ------
    TypeError
        For a ``K`` of another type, complex factors, a non-real ``shift``, or a
        ``dtype`` that is not real floating; the factor errors of
        :class:`KroneckerOperator` for a list.
    ValueError
        For a NaN/Inf or (product) negative ``shift``, a non-square or non-symmetric
        factor, or a shifted operator that is indefinite or singular to working
        precision (the message gives the offending eigenvalue and its error bound).
    """
    if isinstance(K, KroneckerSum):
        kind, xp, factors, name = "sum", K._xp, list(K.factors), "K.factors"
    elif isinstance(K, KroneckerOperator):
        kind, xp, factors, name = "product", K._xp, list(K.factors), "K.factors"
    elif isinstance(K, list | tuple):
        kind, name = "product", "K"
        xp, factors = _check_factors(K, "K", square=True)
    else:
        raise TypeError(
            "K must be a KroneckerOperator, a KroneckerSum or a list of factors, "
            f"got {type(K).__name__}"
        )
    if isinstance(shift, bool) or not isinstance(shift, numbers.Real):
        raise TypeError(f"shift must be a real number, got {type(shift).__name__}")
    shift = float(shift)
    if not math.isfinite(shift):
        raise ValueError(f"shift must be finite, got {shift}")
    if kind == "product" and shift < 0:
        raise ValueError(
            f"shift must be >= 0 for a Kronecker product (it is a variance), got {shift}"
        )
    if isinstance(symmetry_rtol, bool) or not isinstance(symmetry_rtol, numbers.Real):
        raise TypeError(f"symmetry_rtol must be a real number, got {type(symmetry_rtol).__name__}")
    if not symmetry_rtol >= 0:  # also refuses NaN
        raise ValueError(f"symmetry_rtol must be >= 0, got {symmetry_rtol}")
    dtype = _check_dtype(xp, dtype)
    for i, f in enumerate(factors):
        if f.shape[0] != f.shape[1]:
            raise ValueError(f"{name}[{i}] must be square, got shape {tuple(f.shape)}")
        if _is_complex(xp, f.dtype):
            raise TypeError(
                f"{name}[{i}] must be real (complex Hermitian factors are not supported)"
            )
        scale = _host(xp.max(xp.abs(f)))
        asym = _host(xp.max(xp.abs(f - f.T)))
        if asym > symmetry_rtol * scale:
            raise ValueError(
                f"{name}[{i}] must be symmetric: max|A - A^T| = {asym:.3e} > "
                f"symmetry_rtol * max|A| = {symmetry_rtol * scale:.3e}"
            )
    pairs = [xp.linalg.eigh(_astype(xp, f, dtype)) for f in factors]
    return KroneckerEigh(xp, kind, tuple(p[0] for p in pairs), tuple(p[1] for p in pairs), shift)


def _check_dtype(xp: ModuleType, dtype: Any) -> Any:
    if dtype is None:
        return xp.float64
    try:
        dtype = np.dtype(dtype) if xp is np else dtype
        ok = bool(xp.isdtype(dtype, "real floating"))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise TypeError(f"dtype must be a real floating dtype of {xp.__name__}, got {dtype!r}")
    return dtype
