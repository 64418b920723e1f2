"""Bipolar-INT integer formats and exact bit-plane matrix products (the CPU oracle).

An ``n``-bit code ``u`` in ``[0, 2**n)`` has bit-planes ``b_i`` (bit ``i`` of ``u``).
Three readings of the same planes are supported, for ``n`` = 1..8:

``"bipolar"`` (bipolar-INT)
    Every plane is read as a +-1 matrix ``2 b_i - 1``, and
    ``v = sum_i 2**i (2 b_i - 1) = 2u - (2**n - 1)``: the odd integers
    ``+-1, +-3, ..., +-(2**n - 1)``, a format symmetric about zero with no zero.
``"unsigned"``
    ``v = u = sum_i 2**i b_i``, in ``[0, 2**n - 1]``.
``"twos"`` (two's complement)
    ``v = sum_{i<n-1} 2**i b_i - 2**(n-1) b_{n-1}``, in ``[-2**(n-1), 2**(n-1) - 1]``.

A product of an ``a``-bit matrix ``X`` (``m x k``) and a ``b``-bit matrix ``W``
(``n x k``) is decomposed into ``a * b`` binary products of planes and recovered
by shifted sums: ``X W^T = sum_{i,j} c_i d_j P_ij`` with ``P_ij`` the product of
plane ``i`` of ``X`` and plane ``j`` of ``W`` and ``c_i``, ``d_j`` the plane
weights above (Jia et al., "Efficient Arbitrary Precision Acceleration for Large
Language Models on GPU Tensor Cores", ASP-DAC 2025, arXiv:2409.17870, sec. 3).
This module computes every ``P_ij`` exactly in int64 from planes packed 32 to a
uint32 word with numpy popcounts, so that future GPU kernels can be checked
against it bit for bit. It is an oracle, not a fast path.

The submodule is pure numpy: integer-exact, no floating point on the exact path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from numlib._arrays import check_dense
from numlib.bitplane_pack import (
    MAX_BITS,
    PackedPlanes,
    construct_unchecked,
    pack_planes,
    popc_pairs,
    unpack,
)
from numlib.validate import check_finite, check_positive_int

__all__ = [
    "ENCODINGS",
    "MAX_BITS",
    "PackedPlanes",
    "QuantizedMatrix",
    "bitplane_matmul",
    "check_bits",
    "decode",
    "decompose",
    "dequantize",
    "encode",
    "pack",
    "packed_matmul",
    "quantize",
    "quantized_matmul",
    "recompose",
    "unpack",
    "value_range",
]

Encoding = Literal["bipolar", "unsigned", "twos"]
Identity = Literal["and", "xor"]
ENCODINGS: tuple[str, ...] = ("bipolar", "unsigned", "twos")
_IDENTITIES = ("and", "xor")


# --------------------------------------------------------------------------- checks


def check_bits(bits: Any, name: str = "bits") -> int:
    """Return the bit width ``bits`` as an int after checking it is in 1..8.

    The one check of a code width for numlib, :mod:`gpu` and :mod:`learned`.

    Parameters
    ----------
    bits : int
        The width; any integer type (numpy integers too), not ``bool``.
    name : str
        Argument name used in error messages.

    Returns
    -------
    int

    Raises
    ------
    TypeError
        If ``bits`` is not an integer, or is a ``bool`` (``True`` as a width is
        almost certainly a mistake).
    ValueError
        If ``bits`` is below 1 or above :data:`MAX_BITS` (8).

    Examples
    --------
    >>> check_bits(3), check_bits(np.uint8(8), "bits_w")
    (3, 8)
    """
    bits = check_positive_int(bits, name)
    if bits > MAX_BITS:
        raise ValueError(f"{name} must be in 1..{MAX_BITS}, got {bits}")
    return bits


def _check_encoding(encoding: Any) -> str:
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
    return str(encoding)


def _check_identity(identity: Any) -> str:
    if identity not in _IDENTITIES:
        raise ValueError(f"identity must be one of {_IDENTITIES}, got {identity!r}")
    return str(identity)


def _check_int_matrix(a: Any, name: str, *, ndim: int = 2) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(a).__name__}")
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name} must have an integer dtype, got {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {a.shape}")
    return a


def _check_codes(codes: Any, bits: int, name: str) -> np.ndarray:
    codes = _check_int_matrix(codes, name)
    lo, hi = int(codes.min()), int(codes.max())
    if lo < 0 or hi >= 1 << bits:
        raise ValueError(
            f"{name} must hold {bits}-bit codes in [0, {(1 << bits) - 1}], "
            f"got values in [{lo}, {hi}]"
        )
    return codes


def value_range(bits: int, encoding: Encoding = "bipolar") -> tuple[int, int]:
    """Return the smallest and largest value a ``bits``-bit code represents.

    Parameters
    ----------
    bits : int
        Bit width, 1..8.
    encoding : {"bipolar", "unsigned", "twos"}

    Returns
    -------
    tuple of int
        ``(lo, hi)``: ``(-(2**bits - 1), 2**bits - 1)`` for bipolar-INT (odd values
        only, Jia et al., arXiv:2409.17870, sec. 3), ``(0, 2**bits - 1)`` unsigned,
        ``(-2**(bits-1), 2**(bits-1) - 1)`` two's complement. Every value of
        :func:`decode` lies in it and both ends are attained.

    Raises
    ------
    TypeError
        If ``bits`` is not an integer.
    ValueError
        If ``bits`` is outside 1..8 or ``encoding`` is unknown.

    Examples
    --------
    >>> value_range(2), value_range(2, "unsigned"), value_range(2, "twos")
    ((-3, 3), (0, 3), (-2, 1))
    """
    bits = check_bits(bits, "bits")
    encoding = _check_encoding(encoding)
    top = (1 << bits) - 1
    if encoding == "bipolar":
        return -top, top
    if encoding == "unsigned":
        return 0, top
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def _plane_weights(bits: int, encoding: str) -> list[int]:
    """Weight of plane i in the recovery: 2**i, the top one negative for two's complement."""
    weights = [1 << i for i in range(bits)]
    if encoding == "twos":
        weights[-1] = -weights[-1]
    return weights


# --------------------------------------------------------------------------- encode / planes


def encode(values: np.ndarray, bits: int, encoding: Encoding = "bipolar") -> np.ndarray:
    """Return the ``bits``-bit codes (uint8) representing the integer matrix ``values``.

    Bipolar-INT: ``u = (v + 2**bits - 1) / 2``; unsigned: ``u = v``; two's
    complement: ``u = v mod 2**bits``. Exact; ``values`` is not modified.

    Parameters
    ----------
    values : numpy.ndarray
        2-D integer array, every entry representable (see :func:`value_range`; for
        bipolar-INT also odd).
    bits : int
        Bit width, 1..8.
    encoding : {"bipolar", "unsigned", "twos"}

    Returns
    -------
    numpy.ndarray
        uint8 codes, same shape, in ``[0, 2**bits)``.

    Raises
    ------
    TypeError
        If ``values`` is not a numpy array with an integer dtype, or ``bits`` is not
        an integer.
    ValueError
        If ``bits`` is outside 1..8, ``encoding`` is unknown, ``values`` is not 2-D or
        is empty, or an entry is out of range (or even, for bipolar-INT).

    Examples
    --------
    >>> encode(np.array([[-3, -1, 1, 3]]), 2).tolist()
    [[0, 1, 2, 3]]
    """
    bits = check_bits(bits, "bits")
    encoding = _check_encoding(encoding)
    values = _check_int_matrix(values, "values")
    lo, hi = value_range(bits, encoding)
    vmin, vmax = int(values.min()), int(values.max())
    if vmin < lo or vmax > hi:
        raise ValueError(
            f"values must lie in [{lo}, {hi}] for {bits}-bit {encoding}, "
            f"got values in [{vmin}, {vmax}]"
        )
    v = values.astype(np.int64)
    if encoding == "bipolar":
        if not bool(np.all(v & 1)):
            raise ValueError("values must all be odd for bipolar-INT (values ±1, ±3, ...)")
        return ((v + hi) >> 1).astype(np.uint8)
    return (v & ((1 << bits) - 1)).astype(np.uint8)


def decode(codes: np.ndarray, bits: int, encoding: Encoding = "bipolar") -> np.ndarray:
    """Return the int64 values of the ``bits``-bit ``codes`` (inverse of :func:`encode`).

    ``v = 2u - (2**bits - 1)`` for bipolar-INT, ``v = u`` unsigned, ``v = u - 2**bits``
    for ``u >= 2**(bits-1)`` (else ``u``) in two's complement: the plane sums of the
    module docstring evaluated at once. Exact; ``codes`` is not modified.

    Parameters
    ----------
    codes : numpy.ndarray
        2-D integer array of codes in ``[0, 2**bits)``.
    bits : int
        Bit width, 1..8.
    encoding : {"bipolar", "unsigned", "twos"}

    Returns
    -------
    numpy.ndarray
        int64, same shape, in :func:`value_range`; ``encode(decode(c)) == c``.

    Raises
    ------
    TypeError
        If ``codes`` is not an integer numpy array, or ``bits`` is not an integer.
    ValueError
        If ``bits`` or ``encoding`` is invalid, ``codes`` is not 2-D, is empty, or
        holds a code outside ``[0, 2**bits)``.
    """
    bits = check_bits(bits, "bits")
    encoding = _check_encoding(encoding)
    u = _check_codes(codes, bits, "codes").astype(np.int64)
    if encoding == "bipolar":
        return 2 * u - ((1 << bits) - 1)
    if encoding == "twos":
        return np.where(u >= 1 << (bits - 1), u - (1 << bits), u)
    return u


def decompose(codes: np.ndarray, bits: int) -> np.ndarray:
    """Split ``bits``-bit codes into bit-planes: ``planes[i] = (codes >> i) & 1``.

    The bit-level decomposition of Jia et al. (arXiv:2409.17870, sec. 3):
    ``codes = sum_i 2**i planes[i]``, so :func:`recompose` reads the values back.

    Parameters
    ----------
    codes : numpy.ndarray
        2-D integer array ``m x k`` of codes in ``[0, 2**bits)``.
    bits : int
        Bit width, 1..8: the number of planes.

    Returns
    -------
    numpy.ndarray
        uint8 array of 0/1, shape ``(bits, m, k)``.

    Raises
    ------
    TypeError, ValueError
        As :func:`decode`.
    """
    bits = check_bits(bits, "bits")
    return _planes(_check_codes(codes, bits, "codes"), bits)


def _planes(codes: np.ndarray, bits: int) -> np.ndarray:
    """:func:`decompose` without its checks, for codes already checked."""
    shifts = np.arange(bits, dtype=np.uint8)[:, None, None]
    return (codes.astype(np.uint8)[None] >> shifts) & np.uint8(1)


def recompose(planes: np.ndarray, encoding: Encoding = "bipolar") -> np.ndarray:
    """Return the int64 values held by bit-planes, computed plane by plane.

    ``sum_i 2**i (2 p_i - 1)`` for bipolar-INT, ``sum_i c_i p_i`` with
    ``c_i = 2**i`` (the top one ``-2**(bits-1)`` for two's complement) otherwise.

    Parameters
    ----------
    planes : numpy.ndarray
        Integer 0/1 array of shape ``(bits, m, k)``, ``bits`` in 1..8.
    encoding : {"bipolar", "unsigned", "twos"}

    Returns
    -------
    numpy.ndarray
        int64, shape ``(m, k)``: ``recompose(decompose(c, bits), e)`` equals
        ``decode(c, bits, e)`` exactly (Jia et al., arXiv:2409.17870, sec. 3).

    Raises
    ------
    TypeError
        If ``planes`` is not an integer numpy array.
    ValueError
        If ``encoding`` is unknown, or ``planes`` is not 3-D, is empty, has more than
        8 planes, or holds a value other than 0 and 1.
    """
    encoding = _check_encoding(encoding)
    planes = _check_int_matrix(planes, "planes", ndim=3)
    bits = check_bits(planes.shape[0], "planes.shape[0]")
    if int(planes.min()) < 0 or int(planes.max()) > 1:
        raise ValueError("planes must hold only 0 and 1")
    out = np.zeros(planes.shape[1:], dtype=np.int64)
    for i, c in enumerate(_plane_weights(bits, encoding)):
        p = planes[i].astype(np.int64)
        out += c * (2 * p - 1 if encoding == "bipolar" else p)
    return out


def pack(codes: np.ndarray, bits: int) -> PackedPlanes:
    """Decompose ``codes`` (``rows x k``) into planes and pack them into uint32 words.

    The preprocessing step of the bit-plane product (Jia et al., arXiv:2409.17870,
    sec. 3); pack ``W`` once and reuse it in :func:`packed_matmul`. Cost
    ``O(bits * rows * k)``; ``codes`` is not modified.

    Parameters
    ----------
    codes : numpy.ndarray
        2-D integer array ``rows x k`` of codes in ``[0, 2**bits)``.
    bits : int
        Bit width, 1..8: the number of planes.

    Returns
    -------
    PackedPlanes
        Bit ``c % 32`` of ``words[i, r, c // 32]`` is bit ``i`` of ``codes[r, c]``, zero
        padding up to a multiple of 32 (see :class:`~numlib.bitplane_pack.PackedPlanes`),
        ``k`` the number of columns and ``popcounts[i, r]`` the ones of plane ``i`` in
        row ``r``; ``unpack(pack(codes, bits))`` equals ``decompose(codes, bits)``.

    Raises
    ------
    TypeError, ValueError
        As :func:`decode`.
    """
    bits = check_bits(bits, "bits")
    return pack_planes(_planes(_check_codes(codes, bits, "codes"), bits))


# --------------------------------------------------------------------------- exact products


def packed_matmul(
    X: PackedPlanes,
    W: PackedPlanes,
    *,
    encoding: Encoding = "bipolar",
    identity: Identity = "and",
) -> np.ndarray:
    """Exact ``X W^T`` in int64 from packed bit-planes, one binary GEMM per plane pair.

    With ``x``, ``w`` rows of planes ``i`` of X and ``j`` of W (0/1 bits, true
    length ``K = X.k``), the plane product is, for bipolar-INT (``+-1`` planes):

    XOR identity
        ``<x, w>_+- = K - 2 popc(x XOR w)``: equal bits give ``+1``, unequal ``-1``,
        so the sum is ``(K - d) - d`` with ``d = popc(x XOR w)`` mismatches.
    AND identity
        ``<x, w>_+- = 4 popc(x AND w) - 2 popc(x) - 2 popc(w) + K``: expand
        ``sum (2x - 1)(2w - 1) = 4 sum xw - 2 sum x - 2 sum w + K``. One unsigned
        binary GEMM (tensor-core AND+popc) plus rank-one corrections from per-row
        popcounts stored in :class:`PackedPlanes`.

    For the unsigned and two's-complement readings the plane product is the 0/1 dot
    product ``popc(x AND w)``, or by XOR ``(popc(x) + popc(w) - popc(x XOR w)) / 2``.
    Recovery: ``X W^T = sum_{i,j} c_i d_j P_ij`` with plane weights ``c_i = 2**i``
    (``-2**(bits-1)`` for the top plane in two's complement). Both identities give
    bit-identical int64 results (Jia et al. 2025, sec. 3, "bit-level decomposition
    and recovery").

    Cost: ``bits_x * bits_w`` binary GEMMs of ``m x n x ceil(k/32)`` words, each an
    AND/XOR, a popcount and an integer add per word, plus ``O(bits_x bits_w m n)``
    for the recovery. Memory besides the operands: the int64 ``m x n`` output, a few
    ``m x n`` int64 temporaries of the recovery, and the binary GEMM's blocks of at
    most 2**21 words with their uint8 popcounts (:func:`~numlib.bitplane_pack.popc_pairs`:
    10 MiB, blocked along ``m``, ``n`` and ``k``), however long or wide the operands.

    Parameters
    ----------
    X, W : PackedPlanes
        Packed codes of ``X`` (``m x k``) and ``W`` (``n x k``), from :func:`pack`.
    encoding : {"bipolar", "unsigned", "twos"}
        How both operands' planes are read.
    identity : {"and", "xor"}
        Which plane-product identity to use.

    Returns
    -------
    numpy.ndarray
        int64, shape ``(m, n)``, equal to ``decode(X) @ decode(W).T`` exactly.

    Raises
    ------
    TypeError
        If ``X`` or ``W`` is not a :class:`PackedPlanes` (whose fields are checked on
        construction) or holds device arrays.
    ValueError
        If ``encoding`` or ``identity`` is unknown, or ``X.k != W.k``.
    """
    for name, p in (("X", X), ("W", W)):
        if not isinstance(p, PackedPlanes):
            raise TypeError(f"{name} must be a PackedPlanes (see pack), got {type(p).__name__}")
        if not isinstance(p.words, np.ndarray):
            raise TypeError(
                f"{name} must hold numpy arrays, got {type(p.words).__name__} "
                "(gpu.bitplane.to_host copies device planes back)"
            )
    encoding = _check_encoding(encoding)
    identity = _check_identity(identity)
    if X.k != W.k:
        raise ValueError(f"X and W must have the same k (columns), got {X.k} and {W.k}")
    return _product(X, W, encoding, identity)


def _product(X: PackedPlanes, W: PackedPlanes, encoding: str, identity: str) -> np.ndarray:
    """:func:`packed_matmul` without its checks, for operands already checked."""
    K = X.k
    op = np.bitwise_and if identity == "and" else np.bitwise_xor
    out = np.zeros((X.rows, W.rows), dtype=np.int64)
    wx, ww = _plane_weights(X.bits, encoding), _plane_weights(W.bits, encoding)
    for i in range(X.bits):
        px = X.popcounts[i][:, None]
        for j in range(W.bits):
            pw = W.popcounts[j][None, :]
            c = popc_pairs(X.words[i], W.words[j], op)
            if encoding == "bipolar":
                P = K - 2 * c if identity == "xor" else 4 * c - 2 * px - 2 * pw + K
            else:
                P = c if identity == "and" else (px + pw - c) >> 1
            out += (wx[i] * ww[j]) * P
    return out


def bitplane_matmul(
    X_codes: np.ndarray,
    W_codes: np.ndarray,
    bits_x: int,
    bits_w: int,
    *,
    encoding: Encoding = "bipolar",
    identity: Identity = "and",
) -> np.ndarray:
    """Exact ``X W^T`` (activations ``m x k`` times weights ``n x k``) by bit-planes.

    Checks the codes, packs both operands (:func:`pack`) and calls
    :func:`packed_matmul`, whose docstring gives the XOR and AND identities, the
    recovery and the cost (``bits_x * bits_w`` binary GEMMs of ``m x n x k/32``
    words). The result is bit-identical to
    ``decode(X_codes, bits_x) @ decode(W_codes, bits_w).T`` in int64, for every
    pair of widths in 1..8 and every ``k`` (Jia et al. 2025, arXiv:2409.17870).

    Parameters
    ----------
    X_codes : numpy.ndarray
        Integer ``m x k`` codes in ``[0, 2**bits_x)`` (see :func:`encode`).
    W_codes : numpy.ndarray
        Integer ``n x k`` codes in ``[0, 2**bits_w)``.
    bits_x, bits_w : int
        Bit widths, 1..8.
    encoding : {"bipolar", "unsigned", "twos"}
    identity : {"and", "xor"}

    Returns
    -------
    numpy.ndarray
        int64, shape ``(m, n)``.

    Raises
    ------
    TypeError
        If a code array is not an integer numpy array, or a width is not an integer.
    ValueError
        If a width is outside 1..8, ``encoding`` or ``identity`` is unknown, a code
        array is not 2-D, is empty or holds codes out of range, or the ``k`` differ.

    Examples
    --------
    >>> X = encode(np.array([[3, -1, 1]]), 2)
    >>> W = encode(np.array([[1, 1, -1], [-1, 1, 1]]), 1)
    >>> bitplane_matmul(X, W, 2, 1).tolist()
    [[1, -3]]
    """
    bits_x = check_bits(bits_x, "bits_x")
    bits_w = check_bits(bits_w, "bits_w")
    encoding = _check_encoding(encoding)
    identity = _check_identity(identity)
    X_codes = _check_codes(X_codes, bits_x, "X_codes")
    W_codes = _check_codes(W_codes, bits_w, "W_codes")
    if X_codes.shape[1] != W_codes.shape[1]:
        raise ValueError(
            f"X_codes and W_codes must have the same number of columns k, got shapes "
            f"{X_codes.shape} and {W_codes.shape}"
        )
    X = pack_planes(_planes(X_codes, bits_x))
    W = pack_planes(_planes(W_codes, bits_w))
    return _product(X, W, encoding, identity)


# --------------------------------------------------------------------------- quantisation


_GRANULARITIES = ("row", "column", "group")


def _scale_shape(
    granularity: Any, group_size: Any, shape: tuple[int, int], of: str
) -> tuple[tuple[int, int], int | None]:
    """Check the scale layout of the ``m x k`` matrix ``of``; return scale shape, group size."""
    m, k = shape
    if granularity not in _GRANULARITIES:
        raise ValueError(f"granularity must be 'row', 'column' or 'group', got {granularity!r}")
    if granularity == "group":
        if group_size is None:
            raise ValueError("group_size is required when granularity is 'group'")
        g = check_positive_int(group_size, "group_size")
        if k % g:
            raise ValueError(f"group_size must divide the {k} columns of {of}, got {g}")
        return (m, k // g), g
    if group_size is not None:
        raise ValueError(f"group_size applies only to granularity 'group', not {granularity!r}")
    return ((m, 1) if granularity == "row" else (1, k)), None


@dataclass(frozen=True)
class QuantizedMatrix:
    """A float matrix quantised to bipolar-INT: ``A ~= scales * decode(codes)``.

    Checked on construction (:func:`quantize` builds valid ones); the arrays are
    stored, not copied.

    Attributes
    ----------
    codes : numpy.ndarray
        uint8 ``m x k`` bipolar-INT codes (any integer dtype is accepted), in
        ``[0, 2**bits)``.
    scales : numpy.ndarray
        Finite floating-point scales (float64 from :func:`quantize`): shape ``(m, 1)``
        per row, ``(1, k)`` per column,
        ``(m, k // group_size)`` per group of ``group_size`` consecutive columns.
    bits : int
        1..8.
    granularity : {"row", "column", "group"}
    group_size : int or None
        Set for ``"group"`` only, and then a divisor of ``k``.

    Raises
    ------
    TypeError
        ``codes`` not an integer numpy array, ``scales`` not a real floating-point
        numpy array, ``bits`` or ``group_size`` not an integer.
    ValueError
        ``bits`` outside 1..8; ``codes`` not 2-D, empty or out of range; an unknown
        ``granularity``; ``group_size`` missing, given without ``"group"`` or not
        dividing ``k``; ``scales`` of the wrong shape or holding NaN/Inf.
    """

    codes: np.ndarray
    scales: np.ndarray
    bits: int
    granularity: str
    group_size: int | None = None

    def __post_init__(self) -> None:
        bits = check_bits(self.bits, "bits")
        m, k = _check_codes(self.codes, bits, "codes").shape
        shape, _ = _scale_shape(self.granularity, self.group_size, (m, k), "codes")
        scales = self.scales
        if not isinstance(scales, np.ndarray):
            raise TypeError(f"scales must be a numpy array, got {type(scales).__name__}")
        if not np.issubdtype(scales.dtype, np.floating):
            raise TypeError(f"scales must have a real floating-point dtype, got {scales.dtype}")
        if scales.shape != shape:
            raise ValueError(
                f"scales must have shape {shape} for {self.granularity} scales of "
                f"{m} x {k} codes, got {scales.shape}"
            )
        check_finite(scales, "scales")

    def expanded_scales(self) -> np.ndarray:
        """Scales broadcast to the ``m x k`` shape of ``codes``."""
        return _expand(self.scales, self.group_size, self.codes.shape)


def _expand(scales: np.ndarray, group_size: int | None, shape: tuple[int, ...]) -> np.ndarray:
    if group_size is not None:
        return np.repeat(scales, group_size, axis=1)
    return np.broadcast_to(scales, shape)


def quantize(
    A: np.ndarray,
    bits: int,
    *,
    granularity: Literal["row", "column", "group"] = "row",
    group_size: int | None = None,
) -> QuantizedMatrix:
    """Quantise a float matrix to bipolar-INT codes with symmetric absmax scales.

    Each scale group (a row, a column, or ``group_size`` consecutive columns of a
    row) gets ``s = max|A| / (2**bits - 1)``, so its largest magnitude maps to the
    top level. Where that quotient is subnormal and rounds down so that
    ``s (2**bits - 1) < max|A|`` (it can even round to 0), ``s`` is raised to the next
    float, which is ``>= max|A| / (2**bits - 1)``: a scale that much too small would put
    ``max|A| / s`` above the top level, and the clip below would then err by far more
    than ``s``. A normal quotient is within half an ulp, which the rounding absorbs.
    ``y = A / s`` is rounded to the nearest odd integer,
    ``q = sign(y) (2 floor(|y| / 2) + 1)`` (ties, at even ``y``, away from zero;
    ``y = 0`` gives ``+1``: the format has no zero), then clipped to
    ``[-(2**bits - 1), 2**bits - 1]``; the clip only absorbs floating-point
    rounding of ``A / s`` at the extremes, since ``|y| <= 2**bits - 1`` otherwise.
    Levels are ``2 s`` apart, so ``|A - s q| <= s`` (half a level) everywhere, for
    subnormal magnitudes too. An all-zero group gets ``s = 0`` and codes for ``+1``,
    so it dequantises to 0 exactly. ``A`` is not modified. (The symmetric format of
    Jia et al., arXiv:2409.17870, sec. 3.)

    Parameters
    ----------
    A : numpy.ndarray
        Finite, non-empty, 2-D floating-point array ``m x k``.
    bits : int
        Bit width, 1..8.
    granularity : {"row", "column", "group"}
        One scale per row (per token for activations, per output channel for
        weights ``n x k``), per column, or per group of columns of each row.
    group_size : int, optional
        Columns per group; required for ``"group"`` and must divide ``k``.

    Returns
    -------
    QuantizedMatrix
        float64 scales; for every element ``|A - s q| <= s`` with ``s`` its scale.

    Raises
    ------
    TypeError
        If ``A`` is not a real floating-point numpy array, or ``bits`` or
        ``group_size`` is not an integer.
    ValueError
        If ``A`` is not 2-D, is empty or holds NaN/Inf, ``bits`` is outside 1..8,
        ``granularity`` is unknown, or ``group_size`` is missing, given without
        ``"group"``, or does not divide ``k``.
    """
    bits = check_bits(bits, "bits")
    if not isinstance(A, np.ndarray):  # check_dense also takes torch and cupy arrays
        raise TypeError(f"A must be a numpy array, got {type(A).__name__}")
    m, k = check_dense(A, "A")
    _, group_size = _scale_shape(granularity, group_size, (m, k), "A")

    top = (1 << bits) - 1
    a = A.astype(np.float64)
    if granularity == "row":
        amax = np.max(np.abs(a), axis=1, keepdims=True)
    elif granularity == "column":
        amax = np.max(np.abs(a), axis=0, keepdims=True)
    else:
        assert group_size is not None
        amax = np.max(np.abs(a.reshape(m, k // group_size, group_size)), axis=2)
    scales = amax / top
    # A subnormal quotient can round far down and leave amax / s > top (5e-324 / 255
    # rounds to 0); one step up suffices, the next float being >= amax / top. Normal
    # quotients are within half an ulp, which the odd rounding absorbs, and stay as they
    # are. learned.bitplane_linear applies the same rule: both quantisers stay
    # bit-identical.
    short = (scales * top < amax) & (scales < np.finfo(np.float64).tiny)
    scales = np.where(short, np.nextafter(scales, np.inf), scales)
    s = _expand(scales, group_size, a.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.where(s > 0, a / s, 0.0)
    odd = np.where(y < 0, -1.0, 1.0) * (2.0 * np.floor(np.abs(y) / 2.0) + 1.0)
    v = np.clip(odd, -top, top).astype(np.int64)
    codes = ((v + top) >> 1).astype(np.uint8)
    # valid by construction: codes in range, finite scales of the checked layout
    return construct_unchecked(QuantizedMatrix, codes, scales, bits, granularity, group_size)


def dequantize(q: QuantizedMatrix) -> np.ndarray:
    """Return the float matrix a :class:`QuantizedMatrix` represents, ``scales * decode(codes)``.

    Parameters
    ----------
    q : QuantizedMatrix
        From :func:`quantize` or checked on construction.

    Returns
    -------
    numpy.ndarray
        float64, ``m x k``: element ``(r, c)`` is ``s q`` with ``s`` its scale and ``q``
        its odd bipolar-INT level; for ``q = quantize(A, ...)``,
        ``|A - dequantize(q)| <= s`` elementwise.

    Raises
    ------
    TypeError
        If ``q`` is not a :class:`QuantizedMatrix`.
    ValueError
        If its codes were modified after construction to values outside
        ``[0, 2**bits)`` (the arrays are stored, not copied; :func:`decode` rereads them).
    """
    if not isinstance(q, QuantizedMatrix):
        raise TypeError(f"q must be a QuantizedMatrix, got {type(q).__name__}")
    return q.expanded_scales() * decode(q.codes, q.bits).astype(np.float64)


def quantized_matmul(
    X: QuantizedMatrix, W: QuantizedMatrix, *, identity: Identity = "and"
) -> np.ndarray:
    """Approximate ``A_X A_W^T`` from quantised operands: exact integer products, then scales.

    Scales constant along ``k`` factor out of the integer product:
    ``(s_x V_x)(s_w V_w)^T = diag(s_x) (V_x V_w^T) diag(s_w)``. Per-group scales
    split ``k`` into groups, one exact :func:`bitplane_matmul` each:
    ``sum_g diag(s_x[:, g]) V_x[:, g] V_w[:, g]^T diag(s_w[:, g])``. The only
    rounding is in the float64 scaling and summation, so the result equals
    ``dequantize(X) @ dequantize(W).T`` to floating-point rounding.

    Parameters
    ----------
    X, W : QuantizedMatrix
        ``m x k`` activations and ``n x k`` weights, each per row or per group;
        when both are per group the group sizes must agree.
    identity : {"and", "xor"}

    Returns
    -------
    numpy.ndarray
        float64, shape ``(m, n)``.

    Raises
    ------
    TypeError
        If ``X`` or ``W`` is not a :class:`QuantizedMatrix`.
    ValueError
        If the ``k`` differ, an operand is per column (its scales vary along ``k``
        and cannot be applied after the integer product), or the group sizes differ.
    """
    identity = _check_identity(identity)
    for name, p in (("X", X), ("W", W)):
        if not isinstance(p, QuantizedMatrix):
            raise TypeError(f"{name} must be a QuantizedMatrix, got {type(p).__name__}")
        if p.granularity == "column":
            raise ValueError(
                f"{name} has per-column scales, which vary along k and cannot be "
                "applied after the integer product; use 'row' or 'group'"
            )
    k = X.codes.shape[1]
    if W.codes.shape[1] != k:
        raise ValueError(f"X and W must have the same k, got {k} and {W.codes.shape[1]}")
    sizes = {p.group_size for p in (X, W) if p.granularity == "group"}
    if len(sizes) > 1:
        raise ValueError(f"X and W must share one group_size, got {sorted(sizes)}")
    g = sizes.pop() if sizes else k
    out = np.zeros((X.codes.shape[0], W.codes.shape[0]), dtype=np.float64)
    for t in range(k // g):
        cols = slice(t * g, (t + 1) * g)
        P = bitplane_matmul(X.codes[:, cols], W.codes[:, cols], X.bits, W.bits, identity=identity)
        sx = X.scales[:, t if X.granularity == "group" else 0]
        sw = W.scales[:, t if W.granularity == "group" else 0]
        out += sx[:, None] * P.astype(np.float64) * sw[None, :]
    return out
