"""Calibration statistics of layer inputs and guarded whitening of their covariance.

Activation-aware compression (SparseGPT, Wanda, EoRA, SliceGPT, SVD-LLM, MoDeGPT) feeds
calibration inputs ``x`` through a layer ``y = W x`` and needs the second moment
``C = E[x x^T]``: the expected output error of a replacement ``W'`` is
``E ||(W - W') x||^2 = ||(W - W') F||_F^2`` for any factor ``F F^T = C``. Two pieces:

:class:`CalibrationStats`
    Streams batches of inputs into the running mean, ``C`` and the per-channel norms
    ``||X_j||_2`` (Wanda's score), with the running-mean update every one of those papers
    uses, ``C <- C n / (n + t) + X^T X / (n + t)``; accumulators from different batches or
    workers merge exactly.
:func:`whiten`
    Factors ``C`` after damping (``0.01 mean(diag C)`` as in SparseGPT/SliceGPT), an
    optional ridge and eigenvalue clamping (EoRA), by Cholesky, ``eigh`` or the symmetric
    square root, and returns the factor, its inverse and a report of what was clamped.

References
----------
Frantar, Alistarh. SparseGPT: massive language models can be accurately pruned in
one-shot. ICML 2023.
Sun, Liu, Bair, Kolter. A simple and effective pruning approach for large language
models (Wanda). ICLR 2024.
Liu et al. EoRA: training-free compensation for compressed LLM with eigenspace low-rank
approximation. 2024.
Wang, Zheng, Zhang, Zhang. SVD-LLM: truncation-aware singular value decomposition for
large language model compression. ICLR 2025.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.linalg

from numlib._arrays import check_dense, device_kw
from numlib.backend import array_namespace, to_numpy
from numlib.validate import check_finite, check_positive_int, check_tolerance

__all__ = ["CalibrationStats", "Whitening", "whiten"]

WhitenMethod = Literal["cholesky", "eigh", "sqrt"]
_METHODS = ("cholesky", "eigh", "sqrt")


class CalibrationStats:
    """Streaming second moment ``C = E[x x^T]``, mean and channel norms of layer inputs.

    After updates with batches ``X_1, ..., X_b`` (rows are samples, ``n`` rows in all)
    the state equals, up to rounding, the statistics of the stacked ``X``:
    ``mean = X^T 1 / n``, ``C = X^T X / n`` and ``channel_norms = ||X_{:,j}||_2``. Each
    update is the running-mean form ``C <- C n/(n+t) + X_t^T X_t/(n+t)``, so the state stays
    of the order of ``x x^T`` however many samples are seen, and :meth:`merge` combines
    accumulators of disjoint data (batches, workers) by the same weights.

    Array-generic: the state lives in the library and on the device of the first batch
    (numpy or torch), accumulated in float64 whatever the input dtype.

    Parameters
    ----------
    features : int, optional
        Expected input dimension; taken from the first batch when omitted.
    covariance : bool
        Keep the full ``features x features`` second moment (default). ``False`` keeps
        only its diagonal: enough for :meth:`channel_norms` (Wanda) at ``O(features)``
        memory; :meth:`second_moment` and :meth:`covariance` then raise.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((1000, 4))
    >>> stats = CalibrationStats()
    >>> for batch in np.split(X, 10):
    ...     _ = stats.update(batch)
    >>> stats.count
    1000
    >>> bool(np.allclose(stats.second_moment(), X.T @ X / 1000))
    True
    >>> bool(np.allclose(stats.channel_norms(), np.linalg.norm(X, axis=0)))
    True
    """

    def __init__(self, features: int | None = None, *, covariance: bool = True) -> None:
        self.features = None if features is None else check_positive_int(features, "features")
        self.full = bool(covariance)
        self.count = 0
        self._mean: Any = None
        self._moment: Any = None  # (d, d) when full, else the diagonal (d,)

    def update(self, x: Any) -> CalibrationStats:
        """Add a batch of inputs and return ``self``.

        Parameters
        ----------
        x : array, shape (batch, features) or (..., features)
            numpy or torch; leading dimensions (batch, sequence) are flattened into samples.

        Returns
        -------
        CalibrationStats
            ``self``, updated.

        Raises
        ------
        TypeError
            If ``x`` is not a real floating-point array, or comes from another library than
            earlier batches.
        ValueError
            If ``x`` has no samples, a different feature count, or holds NaN/Inf.
        """
        shape = getattr(x, "shape", None)
        if shape is None or len(shape) < 2:
            raise ValueError(
                f"x must have shape (batch, features) or (..., features), got "
                f"{None if shape is None else tuple(shape)}"
            )
        d = int(shape[-1])
        x2 = x.reshape(-1, d)
        check_dense(x2, "x")
        if self.features is not None and d != self.features:
            raise ValueError(f"x must have {self.features} features (last axis), got {d}")
        xp = array_namespace(x2)
        if self._mean is not None and array_namespace(self._mean) is not xp:
            raise TypeError("x must come from the same array library as the earlier batches")
        x2 = xp.astype(x2, xp.float64)
        t = int(x2.shape[0])
        mean = xp.sum(x2, axis=0) / t
        moment = (x2.T @ x2) / t if self.full else xp.sum(x2 * x2, axis=0) / t
        self._absorb(t, mean, moment)
        self.features = d
        return self

    def _absorb(self, t: int, mean: Any, moment: Any) -> None:
        if self.count == 0:
            self._mean, self._moment = mean, moment
        else:
            # Convex weights n/(n+t), t/(n+t): the running-mean update of SparseGPT/Wanda.
            a = self.count / (self.count + t)
            self._mean = a * self._mean + (1.0 - a) * mean
            self._moment = a * self._moment + (1.0 - a) * moment
        self.count += t

    def merge(self, other: CalibrationStats) -> CalibrationStats:
        """Return a new accumulator holding the statistics of both (disjoint) data sets.

        Raises
        ------
        TypeError
            If ``other`` is not a :class:`CalibrationStats`.
        ValueError
            If the feature counts or the ``covariance`` modes differ.
        """
        if not isinstance(other, CalibrationStats):
            raise TypeError(f"other must be a CalibrationStats, got {type(other).__name__}")
        if self.full != other.full:
            raise ValueError("cannot merge accumulators with different covariance modes")
        if self.count and other.count and self.features != other.features:
            raise ValueError(f"feature counts differ: {self.features} vs {other.features}")
        out = CalibrationStats(self.features or other.features, covariance=self.full)
        for part in (self, other):
            if part.count:
                out._absorb(part.count, part._mean, part._moment)
        return out

    def _require_data(self) -> None:
        if self.count == 0:
            raise ValueError("empty calibration: no samples have been added with update()")

    @property
    def mean(self) -> Any:
        """Running mean ``E[x]``, shape ``(features,)``."""
        self._require_data()
        return self._mean

    def second_moment(self) -> Any:
        """Return ``C = E[x x^T] = X^T X / n``, shape ``(features, features)``.

        Raises
        ------
        ValueError
            If no data was added, or the accumulator keeps only the diagonal.
        """
        self._require_data()
        if not self.full:
            raise ValueError("this accumulator was built with covariance=False")
        return self._moment

    def covariance(self, *, centered: bool = False) -> Any:
        """Return ``E[x x^T]``, or with ``centered=True`` ``E[(x - mu)(x - mu)^T]``.

        The uncentred moment is what the compression objectives need (inputs are not
        centred by the layer); the centred one is the covariance in the statistical
        sense (population normalisation, ``1/n``).
        """
        C = self.second_moment()
        if not centered:
            return C
        mu = self._mean
        return C - mu[:, None] * mu[None, :]

    def channel_norms(self) -> Any:
        """Return ``||X_{:,j}||_2`` over all samples seen, shape ``(features,)`` (Wanda)."""
        self._require_data()
        xp = array_namespace(self._moment)
        diag = xp.linalg.diagonal(self._moment) if self.full else self._moment
        return xp.sqrt(diag * self.count)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Return the state as numpy arrays (for ``numpy.savez`` or safetensors)."""
        self._require_data()
        return {
            "count": np.asarray(self.count, dtype=np.int64),
            "mean": np.array(to_numpy(self._mean)),
            "moment": np.array(to_numpy(self._moment)),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> CalibrationStats:
        """Rebuild an accumulator (numpy-backed) from :meth:`state_dict`'s output.

        Raises
        ------
        ValueError
            If keys are missing, the shapes are inconsistent, or the mean or moment
            holds NaN/Inf.
        """
        missing = {"count", "mean", "moment"} - set(state)
        if missing:
            raise ValueError(f"state is missing {sorted(missing)}")
        mean = np.asarray(state["mean"], dtype=np.float64)
        moment = np.asarray(state["moment"], dtype=np.float64)
        count = int(np.asarray(state["count"]))
        d = mean.shape[0] if mean.ndim == 1 else -1
        if count < 1 or d < 1 or moment.shape not in ((d,), (d, d)):
            raise ValueError(
                f"inconsistent state: count {count}, mean {mean.shape}, moment {moment.shape}"
            )
        check_finite(mean, "state['mean']")
        check_finite(moment, "state['moment']")
        out = cls(d, covariance=moment.ndim == 2)
        out._absorb(count, mean, moment)
        return out

    def __repr__(self) -> str:
        return (
            f"CalibrationStats(features={self.features}, count={self.count}, "
            f"covariance={self.full})"
        )


@dataclass(frozen=True)
class Whitening:
    """A factor ``F`` of a guarded covariance, ``F F^T = C_used``, and its inverse.

    Attributes
    ----------
    factor : array, shape (d, d)
        ``F``: lower triangular (``"cholesky"``), ``V diag(sqrt(lam))`` (``"eigh"``) or
        symmetric ``V diag(sqrt(lam)) V^T`` (``"sqrt"``).
    inverse : array, shape (d, d)
        ``F^{-1}``.
    method : str
        The factorisation actually used (``"eigh"`` after a Cholesky fallback).
    damping : float
        Amount added to the diagonal: ``damp * mean(diag C) + ridge``.
    clamped : int
        Number of eigenvalues of the damped matrix raised to ``floor`` (0 when Cholesky
        succeeded: nothing was clamped).
    floor : float or None
        Eigenvalue floor used, ``None`` when no eigendecomposition was needed.
    min_eigenvalue : float or None
        Smallest eigenvalue of the damped matrix before clamping (negative for an
        indefinite input), ``None`` when no eigendecomposition was needed.
    fallback : bool
        True when Cholesky was requested but failed, and ``eigh`` with clamping was used.
    """

    factor: Any
    inverse: Any
    method: str
    damping: float
    clamped: int
    floor: float | None
    min_eigenvalue: float | None
    fallback: bool

    @property
    def covariance(self) -> Any:
        """``C_used = F F^T``: the damped (and clamped) matrix the factor represents."""
        return self.factor @ self.factor.T


def whiten(
    C: Any,
    *,
    damp: float = 0.01,
    ridge: float = 0.0,
    method: WhitenMethod = "cholesky",
    clamp: float | None = None,
) -> Whitening:
    """Factor a calibration second moment after damping and clamping: ``F F^T = C_used``.

    ``C_d = C + (damp * mean(diag C) + ridge) I`` (SparseGPT's relative damping, plus an
    absolute ridge). ``"cholesky"`` returns ``F = chol(C_d)`` when ``C_d`` is numerically
    positive definite; otherwise (singular or slightly indefinite ``C``, as float32
    activation statistics often are) it falls back to ``"eigh"`` and reports it. The
    eigendecomposition routes raise every eigenvalue of ``C_d`` below
    ``floor = max(clamp, d * eps) * lambda_max`` to ``floor`` (EoRA's clamping), so that
    ``F`` is always invertible with ``cond(F) <= 1 / sqrt(floor / lambda_max)``;
    ``C_used = V max(lam, floor) V^T`` and the result says how many were clamped.

    Cost ``O(d^3)``. Array-generic (numpy, torch) through the array API ``linalg``
    extension; the triangular inverse uses ``scipy.linalg.solve_triangular`` for numpy
    and ``linalg.inv`` otherwise. ``C`` is not modified.

    Parameters
    ----------
    C : array, shape (d, d)
        Symmetric (to rounding) second-moment or covariance matrix.
    damp : float
        Relative damping, ``>= 0``; default 0.01.
    ridge : float
        Absolute damping, ``>= 0``.
    method : {"cholesky", "eigh", "sqrt"}
        Factor kind, see :class:`Whitening`.
    clamp : float, optional
        Relative eigenvalue floor in ``[0, 1)``; default ``d * eps(dtype)``.

    Returns
    -------
    Whitening
        ``factor``, ``inverse`` and the report.

    Raises
    ------
    ValueError
        If ``C`` is not square and symmetric, holds NaN/Inf, or ``C_d`` has no positive
        eigenvalue (an all-zero calibration with no ridge); for ``damp``, ``ridge`` or
        ``clamp`` out of range, or an unknown ``method``.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((50, 3))
    >>> w = whiten(X.T @ X / 50, damp=0.0)
    >>> bool(np.allclose(w.factor @ w.factor.T, X.T @ X / 50)), w.clamped
    (True, 0)
    >>> singular = np.ones((3, 3))  # rank one: Cholesky of the undamped matrix fails
    >>> w = whiten(singular, damp=0.0)
    >>> w.method, w.fallback, w.clamped
    ('eigh', True, 2)
    """
    d = check_dense(C, "C", square=True)[0]
    damp = check_tolerance(damp, "damp")
    ridge = check_tolerance(ridge, "ridge")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if clamp is not None:
        clamp = check_tolerance(clamp, "clamp")
        if clamp >= 1:
            raise ValueError(f"clamp must lie in [0, 1), got {clamp}")
    xp = array_namespace(C)
    scale = float(xp.max(xp.abs(C)))
    asym = float(xp.max(xp.abs(C - C.T)))
    if asym > 1e-6 * scale:
        raise ValueError(f"C must be symmetric, got max |C - C^T| = {asym:.3g}")
    diag = xp.linalg.diagonal(C)
    shift = damp * float(xp.mean(diag)) + ridge
    # Symmetrise so that rounding-level asymmetry cannot reach LAPACK.
    Cd = (C + C.T) / 2 + shift * xp.eye(d, dtype=C.dtype, **device_kw(C))
    eps = float(np.finfo(np.float32).eps if str(C.dtype).endswith("float32") else 2.0**-52)
    rel_floor = max(clamp if clamp is not None else 0.0, d * eps)

    if method == "cholesky":
        try:
            L = xp.linalg.cholesky(Cd)
        except (np.linalg.LinAlgError, RuntimeError):
            L = None
        if L is not None and bool(xp.all(xp.isfinite(L))):
            inv = _lower_inverse(L, xp)
            # Cholesky "succeeds" on matrices whose pivots only just stay positive; such a
            # factor has cond ~ 1/sqrt(eps) and its inverse is useless, so check the pivots:
            # lambda_min <= min pivot^2 and lambda_max <= ||C||_F, so a pivot below the floor
            # taken from ||C||_F always means clamping. (The largest pivot^2 can be far below
            # lambda_max: a rank-one 2 x 2 matrix passed that test unclamped.)
            piv = xp.abs(xp.linalg.diagonal(L))
            if float(xp.min(piv)) ** 2 >= rel_floor * float(xp.linalg.matrix_norm(Cd)):
                return Whitening(L, inv, "cholesky", shift, 0, None, None, False)
        return _eig_factor(Cd, xp, rel_floor, shift, symmetric=False, fallback=True)
    return _eig_factor(Cd, xp, rel_floor, shift, symmetric=method == "sqrt", fallback=False)


def _eig_factor(
    Cd: Any, xp: Any, rel_floor: float, shift: float, *, symmetric: bool, fallback: bool
) -> Whitening:
    lam, V = xp.linalg.eigh(Cd)
    lam_max = float(xp.max(lam))
    if not lam_max > 0 or not math.isfinite(lam_max):
        raise ValueError(
            "C has no positive eigenvalue after damping (an all-zero or negative definite "
            "calibration matrix); add data or pass ridge > 0"
        )
    floor = rel_floor * lam_max
    clamped = int(xp.sum(xp.astype(lam < floor, xp.int64)))
    lam_c = xp.where(lam < floor, xp.asarray(floor, dtype=lam.dtype), lam)
    root = xp.sqrt(lam_c)
    F = V * root[None, :]
    Finv = V.T / root[:, None]
    if symmetric:
        F, Finv = F @ V.T, V @ Finv
    return Whitening(
        F, Finv, "sqrt" if symmetric else "eigh", shift, clamped, floor, float(lam[0]), fallback
    )


def _lower_inverse(L: Any, xp: Any) -> Any:
    if isinstance(L, np.ndarray):
        return scipy.linalg.solve_triangular(L, np.eye(L.shape[0], dtype=L.dtype), lower=True)
    return xp.linalg.inv(L)
