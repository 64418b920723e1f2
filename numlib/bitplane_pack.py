"""Packed bit-plane layout and popcount products for :mod:`numlib.bitplane`.

Planes of a ``rows x k`` code matrix are packed 32 to a uint32 word along the
reduction dimension ``k``, the layout future GPU kernels read. This module knows
nothing about encodings: it packs 0/1 planes, unpacks them, and counts
``popc(x AND w)`` / ``popc(x XOR w)`` for all row pairs of two planes. Pure numpy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

# pack_planes is not exported: it is unchecked (see its docstring); numlib.bitplane.pack
# is the checked entry point.
__all__ = ["WORD_BITS", "PackedPlanes", "popc_pairs", "unpack"]

WORD_BITS = 32
# Words of the (rows, n, words) temporaries of one plane-pair popcount; bounds memory.
_CHUNK_WORDS = 1 << 21


@dataclass(frozen=True)
class PackedPlanes:
    """Bit-planes of a ``rows x k`` code matrix, packed 32 to a word along ``k``.

    The layout future GPU kernels read. Element ``(r, c)`` of plane ``i`` is bit
    ``c % 32`` (least significant first) of ``words[i, r, c // 32]``. The last word
    of each row is padded with zero bits up to a multiple of 32. Zero padding is
    neutral for ``popc(x AND w)``, ``popc(x XOR w)``, ``popc(x)`` and ``popc(w)``
    (a pad bit of one operand meets a pad bit of the other), so every identity
    holds with the true length ``k``; in the bipolar reading a zero bit means -1,
    so a pad pair would contribute ``(-1)(-1) = +1`` and it is only by using
    ``k`` rather than the padded length that the pads cancel exactly.

    Attributes
    ----------
    words : numpy.ndarray
        uint32, shape ``(bits, rows, ceil(k / 32))``.
    k : int
        Length of the reduction dimension before padding.
    popcounts : numpy.ndarray
        int64, shape ``(bits, rows)``: ones per plane row (the rank-one corrections
        of the AND identity), computed once when packing.
    """

    # numpy arrays on the host; gpu.bitplane.to_device gives the same record with
    # cupy arrays, so the kernels read exactly this layout.
    words: Any
    k: int
    popcounts: Any

    @property
    def bits(self) -> int:
        """Number of planes."""
        return int(self.words.shape[0])

    @property
    def rows(self) -> int:
        """Rows of the packed matrix."""
        return int(self.words.shape[1])


def unpack(packed: PackedPlanes) -> np.ndarray:
    """Return the 0/1 uint8 planes, shape ``(bits, rows, k)``, of a :class:`PackedPlanes`."""
    as_bytes = np.ascontiguousarray(packed.words.astype(np.dtype("<u4"))).view(np.uint8)
    return np.unpackbits(as_bytes, axis=2, bitorder="little")[:, :, : packed.k]


def popc_pairs(
    x: np.ndarray, w: np.ndarray, op: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> np.ndarray:
    """``popc(op(x_r, w_c))`` summed over words for all row pairs: int64 ``(rows_x, rows_w)``."""
    m, kw = x.shape
    n = w.shape[0]
    out = np.empty((m, n), dtype=np.int64)
    step = max(1, _CHUNK_WORDS // max(1, n * kw))
    for r in range(0, m, step):  # row blocks only bound memory; each is one vectorised pass
        block = op(x[r : r + step, None, :], w[None, :, :])
        np.sum(np.bitwise_count(block), axis=2, dtype=np.int64, out=out[r : r + step])
    return out


def pack_planes(planes: np.ndarray) -> PackedPlanes:
    """Pack 0/1 uint8 planes of shape ``(bits, rows, k)`` into a :class:`PackedPlanes`.

    Internal and unchecked: any nonzero value is packed as a 1 bit. Use
    :func:`numlib.bitplane.pack`, which validates the codes and builds the planes. A
    0/1 check here would be a second full pass over the planes, measured at 15-50%
    of the packing time (``planes.max()`` vs this function, 4 x 1024 x 1024 to
    8 x 4096 x 4096 uint8, 2-core EPYC), and :func:`~numlib.bitplane.pack`'s planes
    are 0/1 by construction. Cost ``O(bits * rows * k)``; the input is not modified.
    """
    k = planes.shape[2]
    pad = -k % WORD_BITS
    if pad:
        planes = np.pad(planes, ((0, 0), (0, 0), (0, pad)))
    packed = np.packbits(planes, axis=2, bitorder="little")  # byte t holds elements 8t..8t+7
    words = np.ascontiguousarray(packed).view(np.dtype("<u4")).astype(np.uint32, copy=False)
    popcounts = np.bitwise_count(words).sum(axis=2, dtype=np.int64)
    return PackedPlanes(words, int(k), popcounts)
