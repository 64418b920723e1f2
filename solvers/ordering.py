"""Orderings of a sequence of related linear systems for Krylov subspace recycling.

When thousands of systems ``A(P_i) x_i = b_i`` that depend on parameter fields
``P_i`` are solved one after another with a recycling solver (GCRO-DR), the
subspace carried from one solve to the next helps most when consecutive systems are
similar. Sorting Krylov recycling (SKR) [1]_ therefore solves them along a short path
through parameter space. This module builds that path in three steps:

1. :func:`parameter_features` compresses each field to its lowest DCT modes
   (optionally followed by PCA), so that feature distances approximate the
   Frobenius distances ``||P_i - P_j||_F`` and never exceed them;
2. :func:`greedy_order` (the paper's ordering: greedy nearest neighbour, ``O(N^2 d)``
   time, ``O(N d)`` memory) or :func:`curve_order` (sort along a Hilbert curve,
   ``O(N log N)``) orders the points; :func:`order_systems` dispatches by name;
3. :func:`path_length` measures the result (sum of consecutive distances).

Everything here works on numpy arrays only (the greedy walk is inherently sequential
and runs on the host); other array kinds raise ``TypeError``.

References
----------
.. [1] H. Wang, Z. Hao, J. Wang, Z. Geng, Z. Wang, B. Li, F. Wu, "Accelerating data
   generation for neural operators via Krylov subspace recycling", ICLR 2024.
.. [2] J. Skilling, "Programming the Hilbert curve", AIP Conf. Proc. 707, 381 (2004).
.. [3] N. Halko, P.-G. Martinsson, J. A. Tropp, "Finding structure with randomness:
   probabilistic algorithms for constructing approximate matrix decompositions",
   SIAM Review 53(2), 2011.
"""

from __future__ import annotations

import numbers
from typing import Any, Literal

import numpy as np
import scipy.fft

from numlib.validate import as_generator, check_positive_int
from solvers.hilbert import KEY_BITS, check_bits, hilbert_index

__all__ = [
    "curve_order",
    "greedy_order",
    "order_systems",
    "parameter_features",
    "path_length",
]

# Highest number of dimensions curve_order sorts in; more are reduced by PCA, so
# that 8 dimensions still get 62 // 8 = 7 bits each in a 64-bit Hilbert key.
_MAX_CURVE_DIMS = 8
# PCA by an exact thin SVD while min(N, F) is at most this; above it a randomized SVD
# [3] is cheaper by a factor ~min(N, F) / components (module constant so tests can
# exercise the randomized path on small inputs).
_EXACT_PCA_LIMIT = 1024
_PCA_OVERSAMPLING = 10
_PCA_POWER_ITERATIONS = 4
_CURVE_PCA_SEED = 0x5C0
# parameter_features transforms at most this many field values at a time, so the
# temporaries stay bounded however many fields are stacked.
_CHUNK_VALUES = 1 << 22


# --------------------------------------------------------------------------- checks


def _check_real_array(value: Any, name: str) -> None:
    if not isinstance(value, np.ndarray):
        raise TypeError(
            f"{name} must be a numpy.ndarray (this module is numpy-only), "
            f"got {type(value).__name__}"
        )
    if not np.issubdtype(value.dtype, np.floating):
        raise TypeError(f"{name} must have a real floating-point dtype, got {value.dtype}")


def _check_finite(value: np.ndarray, name: str) -> None:
    if not np.isfinite(value).all():
        raise ValueError(f"{name} contains NaN or Inf")


def _check_features(features: Any, name: str = "features") -> tuple[np.ndarray, int]:
    """Validate a feature matrix; return a float64 copy scaled by ``2**-e``, and ``e``.

    Scaling by ``2**-e`` (``e`` the binary exponent of the largest magnitude) is exact,
    so it changes no comparison between distances, but it keeps squared distances
    from overflowing for features near the top of the float64 range.
    """
    _check_real_array(features, name)
    if features.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (N points x d coordinates), got shape {features.shape}"
        )
    n, d = features.shape
    if n == 0:
        raise ValueError(f"{name} must have at least one row (N >= 1), got {features.shape}")
    if d == 0:
        raise ValueError(
            f"{name} must have at least one column (d >= 1), got shape {features.shape}"
        )
    _check_finite(features, name)
    x = np.array(features, dtype=np.float64, order="C", copy=True)
    top = float(np.abs(x).max())
    exponent = int(np.frexp(top)[1]) if top > 0.0 else 0
    np.ldexp(x, -exponent, out=x)
    return x, exponent


# ------------------------------------------------------------------------------ PCA


def _flip_signs(vt: np.ndarray) -> np.ndarray:
    """Make the largest-magnitude entry of each row of ``vt`` positive (in place).

    The SVD fixes each singular vector only up to sign; this convention makes the
    principal axes, and so the features, a deterministic function of the data
    (ties in magnitude go to the lowest column, as ``argmax`` does).
    """
    if vt.size:
        pivots = np.abs(vt).argmax(axis=1)
        signs = np.sign(vt[np.arange(vt.shape[0]), pivots])
        signs[signs == 0] = 1.0
        vt *= signs[:, None]
    return vt


def _principal_axes(centred: np.ndarray, k: int, gen: np.random.Generator | None) -> np.ndarray:
    """Return the top ``min(k, N, F)`` right singular vectors of ``centred`` as rows.

    Exact thin SVD (``O(N F min(N, F))``) unless ``gen`` is given and the matrix is
    large, then the randomized range finder of [3] with power iterations
    (``O(N F (k + p) q)``), whose rows are still exactly orthonormal.
    """
    n, f = centred.shape
    small = min(n, f)
    r = min(k, small)
    if gen is None or small <= _EXACT_PCA_LIMIT or r + _PCA_OVERSAMPLING >= small:
        vt = np.linalg.svd(centred, full_matrices=False)[2][:r]
        return _flip_signs(np.array(vt))
    # Randomized SVD: Y = (A A^T)^q A G spans the dominant left singular subspace;
    # re-orthonormalising after every product keeps the small singular directions
    # from being lost to rounding (Halko et al., Alg. 4.4).
    sketch = r + _PCA_OVERSAMPLING
    q, _ = np.linalg.qr(centred @ gen.standard_normal((f, sketch)))
    for _ in range(_PCA_POWER_ITERATIONS):
        z, _ = np.linalg.qr(centred.T @ q)
        q, _ = np.linalg.qr(centred @ z)
    vt = np.linalg.svd(q.T @ centred, full_matrices=False)[2][:r]
    return _flip_signs(np.array(vt))


def _dct_rows(size: int, keep: int) -> np.ndarray:
    """Return the first ``keep`` rows of the orthonormal DCT-II matrix of order ``size``."""
    return scipy.fft.dct(np.eye(size), type=2, norm="ortho", axis=0)[:keep]


# ------------------------------------------------------------------------- features


def parameter_features(
    fields: np.ndarray,
    *,
    modes: int | None = 12,
    components: int | None = None,
    rng: int | np.random.Generator | None = None,
) -> np.ndarray:
    r"""Compress a stack of parameter fields to low-dimensional ordering features.

    Each field ``P_i`` (one slice ``fields[i]`` on a grid of any dimension) is mapped
    to its orthonormal DCT-II coefficients with the ``modes`` lowest frequencies along
    every axis, flattened in C order; optionally these are centred and projected on
    their ``components`` leading principal axes (PCA). The SKR paper [1]_ orders
    systems by ``||P_i - P_j||_F``; these features keep that geometry at a fraction
    of the size:

    * **Parseval.** The orthonormal DCT preserves the Frobenius norm, so with every
      mode kept (``modes=None``, or ``modes`` at least every grid size) and no PCA,
      ``||f_i - f_j||_2 = ||P_i - P_j||_F`` up to rounding.
    * **Contraction.** Dropping modes and projecting on principal axes are orthogonal
      projections, so always ``||f_i - f_j||_2 <= ||P_i - P_j||_F``; the gap is the
      energy of ``P_i - P_j`` in the dropped modes/directions. For smooth fields the
      low modes carry almost all of that energy, so the features approximate the
      Frobenius distances closely: the Gaussian random fields of
      :func:`solvers.fields.gaussian_random_field` have DCT coefficients decaying
      like ``|k|^(-alpha)``, and for Darcy coefficients ``exp(GRF(2.5, 7))`` on a
      48 x 48 grid the 12 x 12 lowest modes keep over 99% of every pairwise distance.
    * Identical fields give identical features; the result is a deterministic
      function of ``fields`` (and of ``rng`` on the randomized PCA path).

    The DCT (rather than the FFT) is used because it is real, matches the cosine
    basis in which the Gaussian random fields of this package are generated, and does
    not see a jump between opposite edges of a non-periodic field.

    Cost: ``O(N n m)`` for ``N`` fields of ``n`` values with ``m`` kept modes per
    axis (separable matrix products, processed in chunks so temporaries stay
    ``O(4 * 2**20)`` values), plus for PCA an exact thin SVD, ``O(N F min(N, F))``
    with ``F = m**ndim`` features, or, when ``min(N, F) > 1024``, a randomized SVD
    with 10 oversampling columns and 4 power iterations [2]_,
    ``O(N F (components + 10))``.

    Parameters
    ----------
    fields : numpy.ndarray, shape (N, \*grid)
        Real floating-point stack of ``N >= 1`` fields, e.g. ``(N, s, s)`` Darcy
        coefficients or ``(N, d)`` plain parameter vectors (treated as 1-D fields;
        pass ``modes=None`` to keep every entry, which only rotates them). Not
        modified.
    modes : int or None, default 12
        Number of lowest DCT modes kept per grid axis (``>= 1``; an axis shorter
        than ``modes`` keeps all its modes). ``None`` keeps every mode.
    components : int or None, default None
        If given, the number of PCA dimensions to return, ``1 <= components <= F``.
        The principal axes come from the SVD of the centred feature matrix with the
        sign convention that each axis's largest-magnitude entry is positive. The
        centred data span at most ``N - 1`` directions; columns beyond the
        available ones are zero (which changes no distance).
    rng : int, numpy.random.Generator or None
        Seed or generator for the randomized SVD, used only when ``components`` is
        given and ``min(N, F) > 1024``; the same seed gives the same features.

    Returns
    -------
    numpy.ndarray
        Float64 array of shape ``(N, F)``, or ``(N, components)`` with PCA.

    Raises
    ------
    TypeError
        If ``fields`` is not a numpy array with a real floating dtype, or
        ``modes``/``components`` are not integers, or ``rng`` is invalid.
    ValueError
        If ``fields`` has fewer than 2 dimensions, an empty axis or NaN/Inf, if
        ``modes < 1``, or ``components`` is outside ``[1, F]``.

    References
    ----------
    .. [1] H. Wang et al., "Accelerating data generation for neural operators via
       Krylov subspace recycling", ICLR 2024 (sorting by ``||P_i - P_j||_F``).
    .. [2] N. Halko, P.-G. Martinsson, J. A. Tropp, "Finding structure with
       randomness", SIAM Review 53(2), 2011.

    Examples
    --------
    >>> import numpy as np
    >>> fields = np.random.default_rng(0).standard_normal((5, 8, 8))
    >>> parameter_features(fields, modes=3).shape
    (5, 9)
    >>> parameter_features(fields, modes=3, components=2).shape
    (5, 2)
    """
    _check_real_array(fields, "fields")
    if fields.ndim < 2:
        raise ValueError(
            f"fields must have shape (N, *grid) with at least 2 dimensions, got {fields.shape}"
        )
    if 0 in fields.shape:
        raise ValueError(f"fields must not have an empty axis, got shape {fields.shape}")
    grid = fields.shape[1:]
    if modes is not None:
        modes = check_positive_int(modes, "modes")
    kept = tuple(s if modes is None else min(modes, s) for s in grid)
    n_features = int(np.prod(kept))
    if components is not None:
        components = check_positive_int(components, "components")
        if components > n_features:
            raise ValueError(
                f"components must be <= the number of DCT features {n_features} "
                f"(modes per axis {kept}), got {components}"
            )
    gen = as_generator(rng)
    _check_finite(fields, "fields")

    n = fields.shape[0]
    transforms = [_dct_rows(s, m) for s, m in zip(grid, kept, strict=True)]
    out = np.empty((n, n_features), dtype=np.float64)
    chunk = max(1, _CHUNK_VALUES // int(np.prod(grid)))
    for lo in range(0, n, chunk):
        block = np.asarray(fields[lo : lo + chunk], dtype=np.float64)
        # Contract axis 1 with each axis's DCT rows in turn; tensordot appends the
        # new mode axis at the end, so after one pass per axis the axes are back in
        # grid order: (chunk, m_1, ..., m_k). Truncating per axis as we go means each
        # product works on an already shrunken array.
        for c in transforms:
            block = np.tensordot(block, c, axes=([1], [1]))
        out[lo : lo + chunk] = block.reshape(block.shape[0], -1)

    if components is None:
        return out
    centred = out - out.mean(axis=0)
    axes = _principal_axes(centred, components, gen)
    scores = np.zeros((n, components), dtype=np.float64)
    scores[:, : axes.shape[0]] = centred @ axes.T
    return scores


# --------------------------------------------------------------------------- greedy


def greedy_order(features: np.ndarray, *, start: int = 0) -> np.ndarray:
    """Order points by the greedy nearest-neighbour walk of SKR [1]_.

    Starting at ``start``, repeatedly step to the nearest (Euclidean) point not yet
    visited. With ``features = fields.reshape(N, -1)`` this is exactly the paper's
    ordering by ``||P_i - P_j||_F``; with :func:`parameter_features` it is a cheaper
    approximation of it.

    Guarantees: the result is a permutation of ``range(N)`` starting with ``start``.
    It is deterministic: among remaining points at equal squared distance, as
    computed in float64 by ``sum((x_j - x_c)**2, axis=1)`` (on the features scaled by
    a power of two, which is exact barring over- or underflow), the lowest index wins. As a
    nearest-neighbour tour it is within a factor ``O(log N)`` of the shortest
    Hamiltonian path (Rosenkrantz, Stearns, Lewis 1977), though usually far closer.

    Cost: ``O(N^2 d)`` time and ``O(N d)`` memory; the ``N x N`` distance matrix is
    never formed. Each step screens all remaining points at once through one
    matrix-vector product, ``|y_j|^2 - 2 y_j . y_c`` on centred coordinates, then
    recomputes the exact squared distance only for the few candidates within a
    rounding bound of the minimum, so the choice is the same as with exact
    differences. On a 2-core CPU, N = 20000 points take about a second for d = 8 but
    about a minute for d = 144 (the default 12 x 12 DCT features): the walk is
    memory-bound, so for large ``N`` reduce the features first
    (``parameter_features(..., components=...)``).

    Parameters
    ----------
    features : numpy.ndarray, shape (N, d)
        Real floating-point, finite, ``N >= 1``, ``d >= 1``. Not modified.
    start : int, default 0
        Index of the first point, ``0 <= start < N``.

    Returns
    -------
    numpy.ndarray
        int64 permutation of ``range(N)``.

    Raises
    ------
    TypeError
        If ``features`` is not a real floating numpy array or ``start`` is not an
        integer.
    ValueError
        If ``features`` is not 2-D, is empty or holds NaN/Inf, or ``start`` is out
        of range.

    References
    ----------
    .. [1] H. Wang et al., "Accelerating data generation for neural operators via
       Krylov subspace recycling", ICLR 2024 (the sorting step of SKR).

    Examples
    --------
    >>> import numpy as np
    >>> greedy_order(np.array([[0.0], [5.0], [1.0], [3.0]]))
    array([0, 2, 3, 1])
    """
    x, _ = _check_features(features)
    n, d = x.shape
    if isinstance(start, bool) or not isinstance(start, numbers.Integral):
        raise TypeError(f"start must be an integer, got {type(start).__name__}")
    if not 0 <= start < n:
        raise ValueError(f"start must be in [0, {n - 1}] for N = {n} points, got {start}")

    # Working copies in which visited points are swap-removed to the tail, so each
    # step touches only the k remaining rows: x (exact coordinates), y (centred
    # coordinates for the screening product, smaller so less cancellation), their
    # squared norms, and idx (original index of each working row).
    y = x - x.mean(axis=0)
    sq = np.einsum("ij,ij->i", y, y)
    idx = np.arange(n, dtype=np.int64)
    # Screening error bound: fl(|y_j|^2 - 2 y_j.y_c) is within ~(d + 2) eps
    # (|y_j| + |y_c|)^2 of its exact value, and the exact differences within ~d eps
    # of theirs; a margin of 8 (d + 4) eps (R + |y_c|)^2 covers both with room.
    radius = float(np.sqrt(sq.max()))
    margin_unit = 8.0 * (d + 4) * np.finfo(np.float64).eps

    order = np.empty(n, dtype=np.int64)
    cur = int(start)
    k = n
    for step in range(n):
        order[step] = idx[cur]
        xc = x[cur].copy()
        yc = y[cur].copy()
        # Swap-remove the current point: move row k-1 into its slot.
        k -= 1
        if cur != k:
            x[cur] = x[k]
            y[cur] = y[k]
            sq[cur] = sq[k]
            idx[cur] = idx[k]
        if k == 0:
            break
        screen = y[:k] @ yc
        screen *= -2.0
        screen += sq[:k]
        lowest = float(screen.min())
        margin = margin_unit * (radius + float(np.sqrt(yc @ yc))) ** 2
        cand = np.flatnonzero(screen <= lowest + 2.0 * margin)
        if cand.size == 1:
            cur = int(cand[0])
            continue
        diff = x[cand] - xc
        exact = (diff * diff).sum(axis=1)
        tied = cand[exact == exact.min()]
        cur = int(tied[np.argmin(idx[tied])])
    return order


def curve_order(features: np.ndarray, *, bits: int | None = None) -> np.ndarray:
    """Order points along a Hilbert space-filling curve through feature space.

    A scalable alternative to :func:`greedy_order` for very many systems (the SKR
    paper suggests Hilbert-curve sections for ~1e7 samples [1]_). Features with more
    than 8 columns are first projected on their 8 leading principal axes (exact
    SVD, or a randomized SVD with a fixed seed when ``min(N, d) > 1024``;
    deterministic signs either way). The points are quantised to ``2**bits`` cells per axis
    over their bounding cube -- one common cell size for all axes, so that the
    curve's locality is with respect to Euclidean distance and a low-variance
    direction is not stretched to the full range -- and stably sorted by Hilbert
    index (:func:`hilbert_index`).

    Guarantees: the result is a deterministic permutation of ``range(N)``; points in
    the same cell keep their input order. The Hilbert curve preserves locality in the
    sense that points close along the curve are close in space (a curve segment
    covering a fraction ``t`` of the cube has diameter ``O(t^(1/d))``), so the tour
    length for ``N`` points in the unit ``d``-cube is ``O(N^(1 - 1/d))``, within a
    constant factor of the optimal worst case (in 2-D it is within ``O(log N)`` of
    the optimal tour, Platzman and Bartholdi 1989); it is typically longer than the
    greedy tour but costs no ``N^2`` term.

    Cost: ``O(N d bits)`` integer operations plus an ``O(N log N)`` sort, and for
    ``d > 8`` the PCA, ``O(N d min(N, d))`` (randomized: ``O(N d)``); ``O(N d)``
    memory. N = 20000 points in 8 dimensions take a few hundredths of a second.

    Parameters
    ----------
    features : numpy.ndarray, shape (N, d)
        Real floating-point, finite, ``N >= 1``, ``d >= 1``. Not modified.
    bits : int or None, default None
        Bits per coordinate, ``1 <= bits <= 62 // min(d, 8)``. ``None`` takes
        ``min(16, 62 // min(d, 8))`` (16 for ``d <= 3``, 7 for 8 dimensions).

    Returns
    -------
    numpy.ndarray
        int64 permutation of ``range(N)``.

    Raises
    ------
    TypeError
        If ``features`` is not a real floating numpy array or ``bits`` not an
        integer.
    ValueError
        If ``features`` is not 2-D, is empty or holds NaN/Inf, or ``bits`` is out of
        range.

    References
    ----------
    .. [1] H. Wang et al., "Accelerating data generation for neural operators via
       Krylov subspace recycling", ICLR 2024 (Hilbert curves for very large sets).
    .. [2] J. Skilling, "Programming the Hilbert curve", AIP Conf. Proc. 707 (2004).

    Examples
    --------
    >>> import numpy as np
    >>> curve_order(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), bits=1)
    array([0, 2, 3, 1])
    """
    x, _ = _check_features(features)
    n, d = x.shape
    dims = min(d, _MAX_CURVE_DIMS)
    bits = min(16, KEY_BITS // dims) if bits is None else check_bits(bits, dims)
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    if d > dims:
        centred = x - x.mean(axis=0)
        # A fixed seed keeps the ordering a deterministic function of the features
        # when the randomized SVD is used (min(N, d) > 1024).
        axes = _principal_axes(centred, dims, np.random.default_rng(_CURVE_PCA_SEED))
        x = centred @ axes.T
        if x.shape[1] < dims:  # fewer points than dimensions: pad, changes nothing
            x = np.hstack([x, np.zeros((n, dims - x.shape[1]))])
    lo = x.min(axis=0)
    span = float((x.max(axis=0) - lo).max())
    if span == 0.0:  # all points coincide
        return np.arange(n, dtype=np.int64)
    # Scale by one factor for all axes (bounding cube), floor to cells, and clip the
    # top edge (x == max lands exactly on 2**bits) into the last cell.
    cells = np.floor((x - lo) * (float(1 << bits) / span))
    q = np.minimum(cells.astype(np.int64), (1 << bits) - 1)
    key = hilbert_index(q, bits)
    return np.argsort(key, kind="stable").astype(np.int64, copy=False)


# ------------------------------------------------------------------------- dispatch


def order_systems(
    features: np.ndarray,
    method: Literal["greedy", "curve", "none"] = "greedy",
    *,
    start: int = 0,
    bits: int | None = None,
) -> np.ndarray:
    """Order a sequence of systems for recycling, by name.

    ``"greedy"`` is :func:`greedy_order` (the SKR paper's ordering, ``O(N^2 d)``),
    ``"curve"`` is :func:`curve_order` (Hilbert curve, ``O(N log N)``), ``"none"``
    keeps the input order ``range(N)`` (the baseline).

    Parameters
    ----------
    features : numpy.ndarray, shape (N, d)
        Real floating-point, finite, ``N >= 1``, ``d >= 1``. Not modified.
    method : {"greedy", "curve", "none"}, default "greedy"
        Ordering to use.
    start : int, default 0
        First point for ``"greedy"`` (checked for every method).
    bits : int or None, default None
        Bits per coordinate for ``"curve"``; must be None for the other methods.

    Returns
    -------
    numpy.ndarray
        int64 permutation of ``range(N)``.

    Raises
    ------
    TypeError, ValueError
        As the chosen method; ``ValueError`` for an unknown ``method`` or for
        ``bits`` given with a method other than ``"curve"``.
    """
    methods = ("greedy", "curve", "none")
    if method not in methods:
        raise ValueError(f"method must be one of {methods}, got {method!r}")
    if bits is not None and method != "curve":
        raise ValueError(f"bits applies only to method='curve', got method={method!r}")
    if method == "greedy":
        return greedy_order(features, start=start)
    if method == "curve":
        return curve_order(features, bits=bits)
    x, _ = _check_features(features)
    if isinstance(start, bool) or not isinstance(start, numbers.Integral):
        raise TypeError(f"start must be an integer, got {type(start).__name__}")
    if not 0 <= start < x.shape[0]:
        raise ValueError(
            f"start must be in [0, {x.shape[0] - 1}] for N = {x.shape[0]} points, got {start}"
        )
    return np.arange(x.shape[0], dtype=np.int64)


def path_length(features: np.ndarray, order: np.ndarray) -> float:
    """Length of the path visiting ``features[order[0]], features[order[1]], ...``.

    The sum ``sum_k ||f[order[k+1]] - f[order[k]]||_2`` of consecutive Euclidean
    distances: the quality measure of an ordering (shorter is better for recycling).
    Computed on power-of-two-scaled copies, so it does not overflow for large
    features. Cost ``O(len(order) d)``.

    Parameters
    ----------
    features : numpy.ndarray, shape (N, d)
        Real floating-point, finite, ``N >= 1``, ``d >= 1``. Not modified.
    order : numpy.ndarray
        Non-empty 1-D integer array of indices in ``[0, N)``, usually a permutation.

    Returns
    -------
    float
        The path length (0.0 for a single point).

    Raises
    ------
    TypeError
        If ``features`` is not a real floating numpy array or ``order`` is not an
        integer numpy array.
    ValueError
        If ``features`` is invalid, or ``order`` is not 1-D, is empty or has an
        index out of range.
    """
    x, exponent = _check_features(features)
    if not isinstance(order, np.ndarray) or not np.issubdtype(order.dtype, np.integer):
        kind = getattr(order, "dtype", type(order).__name__)
        raise TypeError(f"order must be an integer numpy.ndarray, got {kind}")
    if order.ndim != 1 or order.size == 0:
        raise ValueError(f"order must be a non-empty 1-D array, got shape {order.shape}")
    n = x.shape[0]
    if order.min() < 0 or order.max() >= n:
        raise ValueError(f"order entries must lie in [0, {n - 1}] for N = {n} points")
    steps = np.diff(x[order], axis=0)
    return float(np.ldexp(np.sqrt(np.einsum("ij,ij->i", steps, steps)).sum(), exponent))
