"""The Hilbert space-filling curve: an index for points of a d-dimensional grid.

Consecutive indices are grid neighbours, so sorting points by their index visits
nearby points one after another in ``O(N log N)`` (used by
:func:`solvers.ordering.curve_order`).

References
----------
.. [1] J. Skilling, "Programming the Hilbert curve", AIP Conf. Proc. 707, 381 (2004).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

__all__ = ["KEY_BITS", "check_bits", "hilbert_index"]

# The Hilbert index of d coordinates with b bits each needs d*b bits; a 64-bit key
# leaves 62 usable bits (no sign bit, one spare).
KEY_BITS = 62


def check_bits(bits: Any, d: int) -> int:
    """Return ``bits`` after checking ``1 <= bits <= KEY_BITS // d``."""
    limit = KEY_BITS // d
    if isinstance(bits, bool) or not isinstance(bits, numbers.Integral):
        raise TypeError(f"bits must be an integer, got {type(bits).__name__}")
    if not 1 <= bits <= limit:
        raise ValueError(
            f"bits must be in [1, {limit}] for {d} dimension(s) "
            f"(d * bits <= {KEY_BITS}), got {bits}"
        )
    return int(bits)


def hilbert_index(coords: np.ndarray, bits: int) -> np.ndarray:
    """Hilbert-curve index of integer grid points (Skilling's algorithm [1]_).

    Maps each point of the ``2**bits``-per-axis grid in ``d`` dimensions to its
    position along the ``d``-dimensional Hilbert curve, a bijection onto
    ``range(2**(d * bits))`` under which consecutive indices are grid neighbours
    (they differ by one in exactly one coordinate). Implements Skilling's
    ``AxestoTranspose`` (undo excess work, then Gray encode) vectorised over points,
    then interleaves the transposed bits, coordinate 0 most significant.

    Cost: ``O(N d bits)`` integer operations in ``O(d bits)`` numpy calls.

    Parameters
    ----------
    coords : numpy.ndarray, shape (N, d)
        Integer array with entries in ``[0, 2**bits)``. Not modified.
    bits : int
        Bits per coordinate, ``1 <= bits <= 62 // d``.

    Returns
    -------
    numpy.ndarray
        int64 array of ``N`` indices in ``[0, 2**(d * bits))``.

    Raises
    ------
    TypeError
        If ``coords`` is not an integer numpy array or ``bits`` not an integer.
    ValueError
        If ``coords`` is not 2-D with ``d >= 1``, ``bits`` is out of range, or an
        entry lies outside ``[0, 2**bits)``.

    References
    ----------
    .. [1] J. Skilling, "Programming the Hilbert curve", AIP Conf. Proc. 707, 381
       (2004).

    Examples
    --------
    >>> import numpy as np
    >>> hilbert_index(np.array([[0, 0], [0, 1], [1, 1], [1, 0]]), 1)
    array([0, 1, 2, 3])
    """
    if not isinstance(coords, np.ndarray):
        raise TypeError(f"coords must be a numpy.ndarray, got {type(coords).__name__}")
    if not np.issubdtype(coords.dtype, np.integer):
        raise TypeError(f"coords must have an integer dtype, got {coords.dtype}")
    if coords.ndim != 2 or coords.shape[1] == 0:
        raise ValueError(f"coords must be 2-D (N points x d >= 1 axes), got shape {coords.shape}")
    d = coords.shape[1]
    bits = check_bits(bits, d)
    if coords.size and (coords.min() < 0 or coords.max() >= (1 << bits)):
        raise ValueError(f"coords entries must lie in [0, 2**bits) = [0, {1 << bits})")
    return _hilbert_index(np.array(coords.T, dtype=np.int64), bits)


def _hilbert_index(axes: np.ndarray, bits: int) -> np.ndarray:
    """Skilling's transform on ``axes`` (shape (d, N), int64, overwritten)."""
    d = axes.shape[0]
    # Inverse undo: walk the bit levels from the top; at level Q each axis either
    # inverts the low bits of axis 0 or exchanges them with its own, which undoes
    # the reflections and rotations of the sub-cubes the point lies in.
    q = 1 << (bits - 1)
    while q > 1:
        p = q - 1
        for i in range(d):
            high = (axes[i] & q) != 0
            axes[0] ^= np.where(high, p, 0)
            swap = np.where(high, 0, (axes[0] ^ axes[i]) & p)
            axes[0] ^= swap
            axes[i] ^= swap
        q >>= 1
    # Gray encode across axes.
    for i in range(1, d):
        axes[i] ^= axes[i - 1]
    t = np.zeros_like(axes[0])
    q = 1 << (bits - 1)
    while q > 1:
        t ^= np.where((axes[d - 1] & q) != 0, q - 1, 0)
        q >>= 1
    axes ^= t
    # The transposed index holds bit b of the Hilbert index digit-by-digit: the
    # digit at level b is (bit b of axis 0, ..., bit b of axis d-1), top level first.
    index = np.zeros(axes.shape[1], dtype=np.int64)
    for b in range(bits - 1, -1, -1):
        for i in range(d):
            index <<= 1
            index |= (axes[i] >> b) & 1
    return index
