"""Packed bit-plane layout and popcount products for :mod:`numlib.bitplane`.

Planes of a ``rows x k`` code matrix are packed 32 to a uint32 word along the
reduction dimension ``k``, the layout future GPU kernels read. This module knows
nothing about encodings: it packs 0/1 planes, unpacks them, and counts
``popc(x AND w)`` / ``popc(x XOR w)`` for all row pairs of two planes. Pure numpy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import numpy as np

from numlib.validate import check_positive_int

# pack_planes and construct_unchecked are not exported: they skip checks (see their
# docstrings); numlib.bitplane.pack and the PackedPlanes constructor are the checked ones.
__all__ = ["MAX_BITS", "WORD_BITS", "PackedPlanes", "popc_pairs", "unpack"]

WORD_BITS = 32
#: Most planes (bits per code): codes are uint8.
MAX_BITS = 8
# Words of one block of popc_pairs. Its temporaries are this many uint32 words (the
# AND/XOR of the block) and as many uint8 counts: 5 * 2**21 bytes = 10 MiB.
_CHUNK_WORDS = 1 << 21

_T = TypeVar("_T")


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

    Checked on construction, because :func:`numlib.bitplane.packed_matmul` trusts
    every field: a wrong ``k`` or popcount, or a pad bit set, gives a wrong product
    silently. Shapes, dtypes and ``k`` are checked for any array type; the popcounts
    and the zero padding (one vectorised popcount) only for numpy arrays, since reading
    device arrays (``gpu.bitplane`` builds this record with cupy arrays) would
    synchronise with the device. The arrays are stored, not copied.

    Attributes
    ----------
    words : numpy.ndarray
        uint32, shape ``(bits, rows, ceil(k / 32))``, ``bits`` in 1..8, ``rows >= 1``.
    k : int
        Length of the reduction dimension before padding, ``>= 1``.
    popcounts : numpy.ndarray
        int64, shape ``(bits, rows)``: ones per plane row (the rank-one corrections
        of the AND identity), computed once when packing.

    Raises
    ------
    TypeError
        If ``words`` or ``popcounts`` is not an array, they are not both numpy arrays
        or both device arrays, their dtypes are not uint32 and int64, or ``k`` is not
        an integer.
    ValueError
        If ``words`` is not 3-D or is empty, has more than 8 planes, or not
        ``ceil(k / 32)`` words per row; ``k < 1``; ``popcounts`` is not of shape
        ``(bits, rows)``; or (numpy arrays) a pad bit is set or a popcount is wrong.
    """

    # numpy arrays on the host; gpu.bitplane.to_device gives the same record with
    # cupy arrays, so the kernels read exactly this layout.
    words: Any
    k: int
    popcounts: Any

    def __post_init__(self) -> None:
        words, popcounts = self.words, self.popcounts
        for name, a in (("words", words), ("popcounts", popcounts)):
            if not (hasattr(a, "shape") and hasattr(a, "dtype")):
                raise TypeError(f"{name} must be an array, got {type(a).__name__}")
        on_host = isinstance(words, np.ndarray)
        if on_host != isinstance(popcounts, np.ndarray):
            raise TypeError(
                "words and popcounts must both be numpy arrays or both device arrays, got "
                f"{type(words).__name__} and {type(popcounts).__name__}"
            )
        if np.dtype(words.dtype) != np.uint32:
            raise TypeError(f"words must have dtype uint32, got {words.dtype}")
        if np.dtype(popcounts.dtype) != np.int64:
            raise TypeError(f"popcounts must have dtype int64, got {popcounts.dtype}")
        shape = tuple(int(s) for s in words.shape)
        if len(shape) != 3 or 0 in shape:
            raise ValueError(
                f"words must be a non-empty 3-D array (bits, rows, words), got shape {shape}"
            )
        bits, rows, kw = shape
        if bits > MAX_BITS:
            raise ValueError(f"words must hold 1..{MAX_BITS} planes, got {bits}")
        k = check_positive_int(self.k, "k")
        object.__setattr__(self, "k", k)  # a numpy integer k is stored as int
        if kw != -(-k // WORD_BITS):
            raise ValueError(
                f"words must hold ceil(k / {WORD_BITS}) = {-(-k // WORD_BITS)} words per "
                f"row for k={k}, got {kw}"
            )
        if tuple(int(s) for s in popcounts.shape) != (bits, rows):
            raise ValueError(
                f"popcounts must have shape (bits, rows) = {(bits, rows)}, "
                f"got {tuple(popcounts.shape)}"
            )
        if not on_host:
            return
        if k % WORD_BITS and np.any(words[:, :, -1] >> np.uint32(k % WORD_BITS)):
            raise ValueError(f"words must have zero padding bits beyond column k={k}")
        if not np.array_equal(_row_popcounts(words), popcounts):
            raise ValueError("popcounts must equal the number of one bits of each plane row")

    @property
    def bits(self) -> int:
        """Number of planes."""
        return int(self.words.shape[0])

    @property
    def rows(self) -> int:
        """Rows of the packed matrix."""
        return int(self.words.shape[1])


def _row_popcounts(words: np.ndarray) -> np.ndarray:
    return np.bitwise_count(words).sum(axis=2, dtype=np.int64)


def construct_unchecked(cls: type[_T], *values: Any) -> _T:
    """Build the frozen dataclass ``cls`` from its field ``values`` without its checks.

    For records valid by construction (:func:`pack_planes`, :func:`numlib.bitplane.quantize`),
    whose checks would repeat work: a popcount pass, a range pass over the codes.
    """
    record = object.__new__(cls)
    for field, value in zip(fields(cls), values, strict=True):
        object.__setattr__(record, field.name, value)
    return record


def unpack(packed: PackedPlanes) -> np.ndarray:
    """Return the 0/1 planes held by a host :class:`PackedPlanes` (inverse of packing).

    Parameters
    ----------
    packed : PackedPlanes
        With numpy ``words`` (from :func:`numlib.bitplane.pack`, or checked on
        construction).

    Returns
    -------
    numpy.ndarray
        uint8 0/1, shape ``(bits, rows, k)``: element ``(i, r, c)`` is bit ``c % 32``
        of ``packed.words[i, r, c // 32]``; the padding is dropped. So
        ``unpack(pack(codes, bits))`` equals ``decompose(codes, bits)``.

    Raises
    ------
    TypeError
        If ``packed`` is not a :class:`PackedPlanes`.
    """
    if not isinstance(packed, PackedPlanes):
        raise TypeError(f"packed must be a PackedPlanes, got {type(packed).__name__}")
    as_bytes = np.ascontiguousarray(packed.words.astype(np.dtype("<u4"))).view(np.uint8)
    return np.unpackbits(as_bytes, axis=2, bitorder="little")[:, :, : packed.k]


def popc_pairs(x: np.ndarray, w: np.ndarray, op: Callable[..., np.ndarray]) -> np.ndarray:
    """Count the one bits of ``op(x_r, w_c)`` for every pair of rows ``x_r``, ``w_c``.

    The binary GEMM of one plane pair (Jia et al., arXiv:2409.17870, sec. 3):
    ``out[r, c] = sum_t popc(op(x[r, t], w[c, t]))``, exact in int64.

    Cost ``m * n * words`` word operations. The ``m x n x words`` product is evaluated
    in blocks of at most ``2**21`` words (rows of ``x``, rows of ``w`` and,
    for very long rows, words), so the temporaries never exceed ``5 * 2**21``
    bytes (10 MiB) besides the output, however wide either operand.

    Parameters
    ----------
    x : numpy.ndarray
        uint32, shape ``(m, words)``: one packed plane.
    w : numpy.ndarray
        uint32, shape ``(n, words)``.
    op : callable
        ``numpy.bitwise_and`` or ``numpy.bitwise_xor`` (any binary ufunc on uint32
        that takes ``out=``).

    Returns
    -------
    numpy.ndarray
        int64, shape ``(m, n)``.

    Raises
    ------
    TypeError
        If ``x`` or ``w`` is not a uint32 numpy array.
    ValueError
        If either is not 2-D or they differ in the number of words.
    """
    for name, a in (("x", x), ("w", w)):
        if not isinstance(a, np.ndarray) or a.dtype != np.uint32:
            raise TypeError(f"{name} must be a uint32 numpy array, got {_describe(a)}")
        if a.ndim != 2:
            raise ValueError(f"{name} must be 2-D (rows, words), got shape {a.shape}")
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"x and w must have the same number of words, got {x.shape} and {w.shape}")
    m, kw = x.shape
    n = w.shape[0]
    # block (mb, nb, kb) with mb * nb * kb <= _CHUNK_WORDS: words first, so that a block
    # spans whole rows whenever a row fits, then rows of w, then rows of x
    kb = min(kw, _CHUNK_WORDS)
    nb = min(n, _CHUNK_WORDS // kb)
    mb = min(m, _CHUNK_WORDS // (kb * nb))
    block = np.empty(mb * nb * kb, dtype=np.uint32)
    counts = np.empty(mb * nb * kb, dtype=np.uint8)
    out = np.empty((m, n), dtype=np.int64)
    for r in range(0, m, mb):
        xr = x[r : r + mb, None, :]
        for c in range(0, n, nb):
            wc = w[None, c : c + nb, :]
            tile = out[r : r + mb, c : c + nb]
            for t in range(0, kw, kb):
                xs, ws = xr[:, :, t : t + kb], wc[:, :, t : t + kb]
                shape = (xs.shape[0], ws.shape[1], xs.shape[2])
                size = shape[0] * shape[1] * shape[2]
                b = op(xs, ws, out=block[:size].reshape(shape))
                p = np.bitwise_count(b, out=counts[:size].reshape(shape))
                if t == 0:
                    np.sum(p, axis=2, dtype=np.int64, out=tile)
                else:  # rows longer than a block: then mb = nb = 1 and the sum is one number
                    tile += p.sum(axis=2, dtype=np.int64)
    return out


def _describe(a: Any) -> str:
    return f"{a.dtype} array" if isinstance(a, np.ndarray) else type(a).__name__


def pack_planes(planes: np.ndarray) -> PackedPlanes:
    """Pack 0/1 uint8 planes of shape ``(bits, rows, k)`` into a :class:`PackedPlanes`.

    Internal and unchecked: any nonzero value is packed as a 1 bit. Use
    :func:`numlib.bitplane.pack`, which validates the codes and builds the planes. A
    0/1 check here would be a second full pass over the planes, measured at 15-50%
    of the packing time (``planes.max()`` vs this function, 4 x 1024 x 1024 to
    8 x 4096 x 4096 uint8, 2-core EPYC), and :func:`~numlib.bitplane.pack`'s planes
    are 0/1 by construction. The record is built without the checks of
    :class:`PackedPlanes` too: the padding is zero and the popcounts are counted here,
    by construction. Cost ``O(bits * rows * k)``; the input is not modified.
    """
    k = planes.shape[2]
    pad = -k % WORD_BITS
    if pad:
        planes = np.pad(planes, ((0, 0), (0, 0), (0, pad)))
    packed = np.packbits(planes, axis=2, bitorder="little")  # byte t holds elements 8t..8t+7
    words = np.ascontiguousarray(packed).view(np.dtype("<u4")).astype(np.uint32, copy=False)
    return construct_unchecked(PackedPlanes, words, int(k), _row_popcounts(words))
