"""Drop-in torch layers built on numlib primitives.

:class:`BitplaneLinear` replaces :class:`torch.nn.Linear` at inference time with
low-bit bipolar-INT weights *and* activations, held as packed bit-planes and
multiplied exactly (Jia et al., "Efficient Arbitrary Precision Acceleration for Large
Language Models on GPU Tensor Cores", ASP-DAC 2025, arXiv:2409.17870): on CUDA by
numlib's binary Tensor-Core kernels (:mod:`learned.bitplane_cuda`), on CPUs with fast
int8 GEMMs by those with int32 sums, elsewhere by a float32 or float64 GEMM of the
integer values (:func:`group_products`, each exact by a bound). The numpy oracle for
every integer step is :mod:`numlib.bitplane`; the tests check every path against it bit
for bit.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from learned import bitplane_cuda
from numlib import bitplane
from numlib.bitplane import MAX_BITS, check_bits
from numlib.bitplane_pack import WORD_BITS
from numlib.validate import check_finite, check_positive_int

# IntegerOperand and group_products are the unchecked building blocks of the layer and
# of integer_product, which checks its arguments.
__all__ = [
    "BitplaneLinear",
    "cpu_int8_gemm_is_fast",
    "integer_product",
    "quantize_activations",
]

# Byte j of _SPREAD_BITS[v] holds bit j of the byte v: one int64 per 8 columns.
_SPREAD_BITS = sum((torch.arange(256) >> j & 1) << (8 * j) for j in range(8))

_CPU_ROW_BLOCK = 256  # rows per int8 GEMM; their float64 outputs stay in cache

_SAFETENSORS_FORMAT = "numlib.learned.BitplaneLinear"
_SAFETENSORS_VERSION = "1"


# --------------------------------------------------------------------------- checks


def _check_finite(x: torch.Tensor, name: str = "x") -> None:
    # numlib.validate.check_finite's isfinite(x).all() takes 20x longer per forward than
    # amax and amin, which propagate NaN and reach Inf exactly when some entry does.
    if x.numel() and not bool(torch.isfinite(torch.stack([x.amax(), x.amin()])).all()):
        raise ValueError(f"{name} must be finite (it holds NaN or Inf)")


# --------------------------------------------------------------------------- torch kernels


def _half_values(x: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """int8 ``c`` with ``2c + 1`` the bipolar-INT value of each entry of ``x``, and the scales.

    numlib's rule, ``v = sign(y) min(2 floor(|y| / 2) + 1, 2**bits - 1)`` with ``y = x / s``,
    rewritten for integer arithmetic: ``c = (trunc(y) - [y < 0]) >> 1`` (an arithmetic
    shift, i.e. floor division by 2). ``trunc`` keeps the sign of ``y`` in
    ``(-1, 0)`` away from the result, so the mask restores it, and ``-0.0`` counts as
    positive as in numlib. ``|y| <= 2**bits - 1`` up to one rounding, so the clip never
    binds and ``c`` lies in ``[-2**(bits-1), 2**(bits-1))``.
    """
    top = (1 << bits) - 1
    # abs, amax and the widening are exact in any floating dtype
    amax = x.abs().amax(dim=1, keepdim=True).to(torch.float64)
    scales = amax / top
    # numlib's rule for subnormal scales rounded down, which would leave |y| > top
    short = (scales * top < amax) & (scales < torch.finfo(torch.float64).tiny)
    scales = torch.where(short, torch.nextafter(scales, amax), scales)
    # A float64 copy first: torch divides float32 by float64 ~20x slower than float64 by
    # float64. The all-zero row divides by 1 and stays zero, the code of +1.
    y = x.to(torch.float64, copy=True).div_(torch.where(scales > 0, scales, 1.0))
    truncated = y.to(torch.int16)
    truncated.sub_((y < 0).view(torch.int8))
    return (truncated >> 1).to(torch.int8), scales


def quantize_activations(x: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantise the rows of ``x`` to bipolar-INT codes with per-row absmax scales.

    The torch twin of ``numlib.bitplane.quantize(x, bits, granularity="row")``: the scale
    and the division run in float64 as numlib's (IEEE division and comparisons are
    exactly rounded on every backend), and the odd rounding is done in integers, so the
    codes and scales equal numlib's bit for bit: ``s = max|x_r| / (2**bits - 1)``,
    ``y = x / s``, ``q = sign(y) (2 floor(|y| / 2) + 1)`` clipped to
    ``+-(2**bits - 1)``, code ``(q + 2**bits - 1) / 2``. An all-zero row gets
    ``s = 0`` and the code of ``+1``, so it dequantises to 0 exactly.

    Parameters
    ----------
    x : torch.Tensor
        Finite floating-point ``m x k`` tensor (one row per token).
    bits : int
        Bit width, 1..8.

    Returns
    -------
    codes : torch.Tensor
        int64 ``m x k`` codes in ``[0, 2**bits)``, on ``x``'s device.
    scales : torch.Tensor
        float64 ``m x 1`` scales.

    Raises
    ------
    TypeError
        If ``x`` is not a floating-point tensor or ``bits`` is not an int.
    ValueError
        If ``x`` is not 2-D, is empty, holds NaN/Inf, or ``bits`` is outside 1..8.
    """
    bits = check_bits(bits, "bits")
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError("x must be a floating-point torch.Tensor")
    if x.ndim != 2 or x.numel() == 0:
        raise ValueError(f"x must be 2-D (rows x k) and not empty, got shape {tuple(x.shape)}")
    _check_finite(x)
    halves, scales = _half_values(x.detach(), bits)
    return halves.to(torch.int64) + (1 << (bits - 1)), scales


class IntegerOperand(NamedTuple):
    """Bipolar-INT values of ``bits`` bits held as an int8 matrix ``stored``.

    Values of up to 7 bits (odd, at most 127 in magnitude) are stored as they are; 8-bit
    values reach 255, so they are stored as ``(v - 1) / 2`` in ``[-128, 127]``. Either
    way ``v = scale * stored + shift``.
    """

    stored: torch.Tensor
    bits: int

    @property
    def scale(self) -> int:
        """Factor of ``stored`` in the values: 2 at 8 bits, else 1."""
        return 2 if self.bits == MAX_BITS else 1

    @property
    def shift(self) -> int:
        """Offset of the values: 1 at 8 bits, else 0."""
        return 1 if self.bits == MAX_BITS else 0

    @classmethod
    def from_halves(cls, halves: torch.Tensor, bits: int) -> IntegerOperand:
        """From int8 ``c`` with values ``2c + 1`` (what :func:`_half_values` returns)."""
        return cls(halves if bits == MAX_BITS else halves * 2 + 1, bits)

    @classmethod
    def from_codes(cls, codes: torch.Tensor, bits: int) -> IntegerOperand:
        """From codes ``u`` in ``[0, 2**bits)``, whose values are ``2u - (2**bits - 1)``."""
        return cls.from_halves((codes.to(torch.int16) - (1 << (bits - 1))).to(torch.int8), bits)

    def values(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """Return the bipolar-INT values as floats (exact: at most 255 in magnitude)."""
        values = self.stored.to(dtype)
        return values.mul_(self.scale).add_(self.shift) if self.bits == MAX_BITS else values


# Largest |partial sum| a float32 / float64 product of integer values holds exactly.
_EXACT_FLOAT32 = 1 << 24
_EXACT_FLOAT64 = 1 << 53
# int8 GEMMs accumulate in int32; scale * stored reaches 256 in magnitude at 8 bits.
_EXACT_INT32 = 1 << 31
_EXACT_INT32_COLUMNS = _EXACT_INT32 // (256 * 256)


@functools.cache
def cpu_int8_gemm_is_fast() -> bool:
    """Whether this CPU runs torch's int8 GEMM at least as fast as a float32 GEMM.

    ``torch._int_mm`` reaches oneDNN's VNNI / AMX kernels where the CPU has them (4.5x
    faster than float32 on one of this project's machines); without them it is far
    slower: on an AVX2-only AMD EPYC, one thread, 1984 tokens through MiniLM's shapes
    took 0.42-2.7 s against 11-60 ms for float32. One timed probe per process
    (256 x 384 by 384 x 384, best of 3) decides; every path gives the same integers.

    Returns
    -------
    bool
        True where ``torch._int_mm`` took at most the time of the float32 product.
    """
    a = torch.ones((256, 384), dtype=torch.int8)
    b = torch.ones((384, 384), dtype=torch.int8)
    af, bf = a.float(), b.float()

    def best(product: Callable[[], Any]) -> float:
        product()  # warm-up
        times = []
        for _ in range(3):
            start = time.perf_counter()
            product()
            times.append(time.perf_counter() - start)
        return min(times)

    return best(lambda: torch._int_mm(a, b)) <= best(lambda: af @ bf)


def _int8_kernel(device: torch.device, group_size: int) -> bool:
    """Whether the groups' products run as int8 GEMMs with exact int32 sums."""
    # torch._int_mm returns wrong sums on the CPU for one column (torch 2.13); every other
    # width and strided column slices agree with an int64 product (tested).
    return (
        device.type == "cpu" and 2 <= group_size < _EXACT_INT32_COLUMNS and cpu_int8_gemm_is_fast()
    )


def _float_gemm_plan(
    x: IntegerOperand, w: IntegerOperand, group_size: int
) -> tuple[torch.dtype, int]:
    """Return the dtype and the columns per GEMM that multiply ``x`` and ``w`` exactly.

    float32 is used only on the CPU and only at torch's ``"highest"`` float32 matmul
    precision, where no reduced-precision GEMM (TF32, bf16) can stand in for it; its
    chunks are the longest whose partial sums, at most ``(2**a - 1)(2**b - 1)`` per
    column, stay below ``2**24``. Otherwise float64 over whole groups.
    """
    if x.stored.device.type == "cpu" and torch.get_float32_matmul_precision() == "highest":
        per_column = ((1 << x.bits) - 1) * ((1 << w.bits) - 1)
        return torch.float32, min(group_size, (_EXACT_FLOAT32 - 1) // per_column)
    return torch.float64, group_size


def _chunked_product(
    vx: torch.Tensor, vw: torch.Tensor, chunk: int, sum_dtype: torch.dtype
) -> torch.Tensor:
    """``vx @ vw.T`` over column chunks of at most ``chunk``, summed in ``sum_dtype`` if several.

    ``sum_dtype`` must hold the group's sums exactly: int32 (converting the chunks' exact
    float products costs less than widening them to float64) or float64.
    """
    columns = vx.shape[1]
    if columns <= chunk:
        return vx @ vw.T
    count = -(-columns // chunk)
    width = -(-columns // count)  # equal chunks: 384 columns as 2 x 192, not 258 + 126
    total = (vx[:, :width] @ vw[:, :width].T).to(sum_dtype)
    for start in range(width, columns, width):
        cols = slice(start, start + width)
        total.add_((vx[:, cols] @ vw[:, cols].T).to(sum_dtype))
    return total


def group_products(x: IntegerOperand, w: IntegerOperand, group_size: int) -> Iterator[torch.Tensor]:
    """Yield the exact integer products ``X_g W_g^T``, one ``m x n`` tensor per column group.

    The values ``v`` are integers, so every partial sum of a group's product is an
    integer of magnitude at most ``group_size (2**a - 1)(2**b - 1)``, and the result
    equals the AND/popcount recovery on packed planes
    (:func:`numlib.bitplane.packed_matmul`, Jia et al., arXiv:2409.17870) on every group.
    The bit planes are the storage format; without a binary kernel a GEMM of the
    values is the fastest exact way to multiply them:

    - on a CPU whose int8 GEMM is fast (:func:`cpu_int8_gemm_is_fast`), with groups of
      2 to 32767 columns, an int8 GEMM (``torch._int_mm``, int32 sums, exact by the
      bound) of the stored matrices,
      ``X W^T = a_x a_w S_x S_w^T + a_x b_w S_x 1 1^T + b_x a_w 1 1^T S_w^T + b_x b_w k``
      for values ``a S + b``; with VNNI it is 4.5x faster than a float32 GEMM of the
      same shape (one thread, 2048 x 384 by 384 x 1536);
    - elsewhere a GEMM of the values: on the CPU, while torch's float32 matmul
      precision is ``"highest"``, float32 GEMMs over column chunks short enough that
      every partial sum stays below ``2**24`` (``chunk (2**a - 1)(2**b - 1) < 2**24``:
      258 columns at 8 x 8 bits, 4386 at 4 x 8), summed in int32 (float64 for groups
      whose sums reach ``2**31``) — half the cost of one float64 GEMM; on other
      devices a float64 GEMM, exact below ``2**53`` (groups of up to 1.3e11 columns
      at 8 bits).

    Parameters
    ----------
    x, w : IntegerOperand
        ``m x k`` and ``n x k`` operands on the same device (unchecked: internal).
    group_size : int
        Columns per group; divides ``k``.

    Yields
    ------
    torch.Tensor
        int32, float32 or float64 ``m x n`` exact integers, group by group.

    Raises
    ------
    ValueError
        If the float64 path would leave its exact range.
    """
    k = x.stored.shape[1]
    if not _int8_kernel(x.stored.device, group_size):
        bound = group_size * ((1 << x.bits) - 1) * ((1 << w.bits) - 1)
        if bound >= _EXACT_FLOAT64:
            raise ValueError(
                f"group_size={group_size} at {x.bits} x {w.bits} bits exceeds float64's "
                "exact integer range (2**53)"
            )
        dtype, chunk = _float_gemm_plan(x, w, group_size)
        sum_dtype = torch.int32 if bound < _EXACT_INT32 else torch.float64
        vx, vw = x.values(dtype), w.values(dtype)
        for start in range(0, k, group_size):
            cols = slice(start, start + group_size)
            yield _chunked_product(vx[:, cols], vw[:, cols], chunk, sum_dtype)
        return
    for start in range(0, k, group_size):
        sx, sw = x.stored[:, start : start + group_size], w.stored[:, start : start + group_size]
        p = torch._int_mm(sx, sw.T)
        if x.scale * w.scale != 1:
            p.mul_(x.scale * w.scale)
        if w.shift:
            p.add_(sx.sum(dim=1, keepdim=True, dtype=torch.int32), alpha=x.scale * w.shift)
        if x.shift:
            p.add_(sw.sum(dim=1, dtype=torch.int32), alpha=x.shift * w.scale)
        if x.shift * w.shift:
            p.add_(x.shift * w.shift * group_size)
        yield p


def integer_product(
    codes_x: torch.Tensor, bits_x: int, codes_w: torch.Tensor, bits_w: int, group_size: int
) -> torch.Tensor:
    """Exact per-group integer products ``X_g W_g^T`` of bipolar-INT codes.

    The values of codes ``u`` are ``v = 2u - (2**bits - 1)``; see :func:`group_products`
    for the kernels and their exactness.

    Parameters
    ----------
    codes_x : torch.Tensor
        Integer ``m x k`` codes in ``[0, 2**bits_x)``.
    bits_x : int
        Bit width of X, 1..8.
    codes_w : torch.Tensor
        Integer ``n x k`` codes in ``[0, 2**bits_w)``, on the same device.
    bits_w : int
        Bit width of W, 1..8.
    group_size : int
        Columns per group; divides ``k``.

    Returns
    -------
    torch.Tensor
        int64 ``(m, n, k // group_size)``.

    Raises
    ------
    TypeError
        If a code tensor is not an integer tensor, or a width or ``group_size`` not an int.
    ValueError
        Before any product: if the codes are not non-empty 2-D tensors with the same
        number of columns on one device, lie outside ``[0, 2**bits)``, a width is
        outside 1..8, or ``group_size`` does not divide ``k``.
    """
    bits_x, bits_w = check_bits(bits_x, "bits_x"), check_bits(bits_w, "bits_w")
    for codes, name, bits in ((codes_x, "codes_x", bits_x), (codes_w, "codes_w", bits_w)):
        integer = isinstance(codes, torch.Tensor) and not codes.is_floating_point()
        if not integer or codes.is_complex() or codes.dtype == torch.bool:
            raise TypeError(f"{name} must be an integer torch.Tensor, got {_describe(codes)}")
        if codes.ndim != 2 or codes.numel() == 0:
            raise ValueError(f"{name} must be 2-D and not empty, got shape {tuple(codes.shape)}")
        if int(codes.min()) < 0 or int(codes.max()) >= 1 << bits:
            raise ValueError(f"{name} must lie in [0, 2**{bits}) for {bits}-bit codes")
    if codes_x.shape[1] != codes_w.shape[1] or codes_x.device != codes_w.device:
        raise ValueError(
            f"codes_x ({tuple(codes_x.shape)}, {codes_x.device}) and codes_w "
            f"({tuple(codes_w.shape)}, {codes_w.device}) need the same columns and device"
        )
    group_size = check_positive_int(group_size, "group_size")
    if codes_x.shape[1] % group_size:
        raise ValueError(f"group_size must divide k={codes_x.shape[1]}, got {group_size}")
    x = IntegerOperand.from_codes(codes_x, bits_x)
    w = IntegerOperand.from_codes(codes_w, bits_w)
    return torch.stack([p.to(torch.int64) for p in group_products(x, w, group_size)], dim=-1)


# --------------------------------------------------------------------------- the layer


class BitplaneLinear(nn.Module):
    r"""``nn.Linear`` for inference with bipolar-INT weights (and activations).

    Computes ``y = (s_x s_w^T) * (X_int W_int^T) + b`` where ``W_int`` holds the
    ``weight_bits``-bit bipolar-INT values (odd integers ``+-1 .. +-(2**b - 1)``)
    of the weight, quantised once by :func:`numlib.bitplane.quantize` per output row
    or per group of input columns, and ``X_int`` the ``activation_bits``-bit values
    of the input, quantised on the fly per token (row) with symmetric absmax scales
    (:func:`quantize_activations`, bit-identical to numlib's quantiser). The integer
    product is exact: binary AND/popcount products of the packed bit-planes recovered
    by shifted sums on CUDA (Jia et al., "Efficient Arbitrary Precision Acceleration for
    Large Language Models on GPU Tensor Cores", ASP-DAC 2025, arXiv:2409.17870), or
    integer GEMMs that no rounding can reach (see Devices). The only
    rounding is in the float64 scaling and the cast to the input dtype, so the
    output equals ``dequantize(X) dequantize(W)^T + b`` to float64 rounding.

    With ``activation_bits=None`` the layer is *weight-only* (W4A16-style, the
    format GPTQ targets): the input stays in floating point and is multiplied by the
    weight dequantised on the fly from the packed planes, ``y = x (s_w W_int)^T + b``
    in ``x``'s dtype. The storage is the same; the product is a float GEMM instead of
    the bit-plane kernel, and only the weight's rounding is applied. Unpacking the
    planes on every call costs 3-7% of that GEMM on a CPU (8 and 4 bits, 2048 tokens
    through 384 x 1536, one thread), so the layer saves memory, not time.

    Storage (buffers; the module has no parameters):

    ``weight_words``
        int32 ``(weight_bits, out_features, groups, ceil(group / 32))``: the packed
        planes of :class:`numlib.bitplane_pack.PackedPlanes`, one word holding 32
        consecutive input columns of one group, least significant bit first. The
        words are uint32 bit patterns stored as int32, because torch lacks uint32
        arithmetic on CPU for several ops and safetensors keeps int32 exactly;
        ``weight_words.numpy().view(np.uint32)`` is numlib's layout. With row
        scales there is one group of ``in_features`` columns.
    ``weight_scales``
        float64 ``(out_features, groups)``. float64 because the integer products
        exceed 2**24 for wide layers at 8 bits, so the epilogue runs in float64.
    ``bias``
        ``(out_features,)`` in the original layer's dtype, or None.

    Memory: ``weight_bits / 32`` of an fp32 weight plus the scales.

    Devices: on CUDA, with row scales and cupy installed, the integer product runs
    in numlib's GPU kernels (:mod:`learned.bitplane_cuda`: ``gemv`` for a few tokens,
    Tensor-Core ``wgmma``/``mma`` otherwise, planes of the weights packed once and
    cached). On the CPU the weight values are unpacked once into an int8 matrix (cached:
    one byte per weight beside the planes) and each block of 256 tokens is quantised
    and multiplied by ``torch._int_mm`` (int32 sums, exact for groups below 32768
    columns; :func:`group_products`) where the CPU has fast int8 GEMMs
    (:func:`cpu_int8_gemm_is_fast`), else by a float32 or float64 GEMM of the values.
    With VNNI, one thread, 2048 tokens through MiniLM's MLP shapes, the int8 path is
    1.3-2.2x faster than a float32 ``nn.Linear`` at W8A8 and W4A4 (1.1-1.4x with
    groups of 128, which need one GEMM per group), and 0.4-0.9x the speed of torch's
    dynamic int8 layer, which keeps one activation scale per call and is 2.7x less
    accurate (``numlib-bench --suite bitplane --case cpu-layer``).
    On other devices the values meet in a float64 GEMM, exact while every partial sum
    stays below ``2**53``. All paths give the same integers, so the same outputs bit
    for bit.

    Inference only: quantisation has no useful gradient, and a silently detached
    output would break training without warning. ``forward`` therefore raises if
    autograd is enabled and the input requires grad; run it under
    :func:`torch.no_grad` / :func:`torch.inference_mode` or pass a detached input.
    ``.to(dtype)``, ``.half()`` and ``.double()`` cast the bias only: the scales stay
    float64, which the exact epilogue needs (``.to(device)`` moves everything). The
    CPU keeps the unpacked int8 weights cached; write the buffers through
    ``copy_``/``load_state_dict`` (which the cache notices), not through ``.data``
    or a numpy view.

    Parameters
    ----------
    in_features, out_features : int
        Sizes as in :class:`torch.nn.Linear`.
    weight_bits : int
        Weight bit width, 1..8.
    activation_bits : int or None
        Activation bit width, 1..8, or None for a weight-only layer.
    group_size : int, optional
        Input columns per weight scale; must divide ``in_features``. None (default)
        gives one scale per output row.
    bias : bool
        Whether the layer has a bias.
    device : torch.device or str, optional
    dtype : torch.dtype, optional
        dtype of the bias (default float32).

    Raises
    ------
    TypeError
        If a size or width is not an int, or ``dtype`` not a real floating dtype.
    ValueError
        If a size is not positive, a width is outside 1..8, or ``group_size`` does
        not divide ``in_features``.

    Notes
    -----
    The constructor makes an all-zero layer (the shape a checkpoint fills); build a
    working one with :meth:`from_linear` or :meth:`load_safetensors`.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> lin = nn.Linear(40, 3)
    >>> q = BitplaneLinear.from_linear(lin, weight_bits=8, activation_bits=8)
    >>> q
    BitplaneLinear(in_features=40, out_features=3, weight_bits=8, activation_bits=8, group_size=None, bias=True)
    >>> x = torch.randn(2, 5, 40)
    >>> with torch.no_grad():
    ...     err = (q(x) - lin(x)).abs().max().item()
    >>> q(x).shape, err < 0.05
    (torch.Size([2, 5, 3]), True)
    """  # noqa: E501

    weight_words: torch.Tensor
    weight_scales: torch.Tensor
    bias: torch.Tensor | None

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        weight_bits: int,
        activation_bits: int | None,
        group_size: int | None = None,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features = check_positive_int(in_features, "in_features")
        self.out_features = check_positive_int(out_features, "out_features")
        self.weight_bits = check_bits(weight_bits, "weight_bits")
        self.activation_bits = (
            None if activation_bits is None else check_bits(activation_bits, "activation_bits")
        )
        if group_size is not None:
            group_size = check_positive_int(group_size, "group_size")
            if self.in_features % group_size:
                raise ValueError(
                    f"group_size must divide in_features={self.in_features}, got {group_size}"
                )
        self.group_size = group_size
        if dtype is not None and (not dtype.is_floating_point or dtype.is_complex):
            raise TypeError(f"dtype (of the bias) must be a real floating dtype, got {dtype}")
        cols = self._cols
        groups = self.in_features // cols
        words = -(-cols // WORD_BITS)
        self.register_buffer(
            "weight_words",
            torch.zeros(
                (self.weight_bits, self.out_features, groups, words),
                dtype=torch.int32,
                device=device,
            ),
        )
        self.register_buffer(
            "weight_scales",
            torch.zeros((self.out_features, groups), dtype=torch.float64, device=device),
        )
        if bias:
            self.register_buffer(
                "bias",
                torch.zeros(self.out_features, dtype=dtype or torch.float32, device=device),
            )
        else:
            self.register_buffer("bias", None)
        self._weight_cache: dict[str, tuple[tuple[int, int], Any]] = {}

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> Any:
        # Module.to/.half/.double apply fn to every floating buffer; the scales must stay
        # float64 (a float16 scale of 1e-8 is a subnormal, of 1e-7 too coarse), so they
        # are restored from the float64 originals on fn's device.
        scales = self.weight_scales
        super()._apply(fn, recurse)
        self.weight_scales = scales.to(device=self.weight_scales.device, dtype=torch.float64)
        return self

    @property
    def _cols(self) -> int:
        """Columns per scale group (all of them for row scales)."""
        return self.group_size if self.group_size is not None else self.in_features

    @classmethod
    def from_linear(
        cls,
        linear: nn.Linear,
        *,
        weight_bits: int,
        activation_bits: int | None,
        group_size: int | None = None,
    ) -> BitplaneLinear:
        """Quantise an :class:`torch.nn.Linear` into a :class:`BitplaneLinear`.

        The weight (``out x in``) goes through :func:`numlib.bitplane.quantize`
        (``granularity="row"``, or ``"group"`` with ``group_size``) in float64 on the
        CPU, is packed with :func:`numlib.bitplane.pack` and placed on the
        weight's device. ``linear`` is not modified. Per row, every weight is within
        half a level, ``s_w = max|w_r| / (2**bits - 1)``, of its original.

        Parameters
        ----------
        linear : torch.nn.Linear
            Layer to convert; its weight and bias must be finite.
        weight_bits : int
            Weight bit width, 1..8.
        activation_bits : int or None
            Activation bit width, 1..8, or None (weight-only).
        group_size : int, optional
            Input columns per weight scale; divides ``linear.in_features``.

        Returns
        -------
        BitplaneLinear
            On ``linear``'s device, bias in its dtype.

        Raises
        ------
        TypeError
            If ``linear`` is not an ``nn.Linear`` or a width is not an int.
        ValueError
            If a width is outside 1..8, ``group_size`` does not divide
            ``in_features``, or the weight or bias holds NaN/Inf.
        """
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear must be a torch.nn.Linear, got {type(linear).__name__}")
        weight = linear.weight.detach()
        layer = cls(
            linear.in_features,
            linear.out_features,
            weight_bits=weight_bits,
            activation_bits=activation_bits,
            group_size=group_size,
            bias=linear.bias is not None,
            device=weight.device,
            dtype=linear.bias.dtype if linear.bias is not None else None,
        )
        # .numpy() may share memory with a CPU weight; numlib copies before it computes.
        w = weight.to(device="cpu", dtype=torch.float64).numpy()
        check_finite(w, "linear.weight")
        if linear.bias is not None:
            _check_finite(linear.bias.detach(), "linear.bias")
        if group_size is None:
            q = bitplane.quantize(w, layer.weight_bits, granularity="row")
        else:
            q = bitplane.quantize(w, layer.weight_bits, granularity="group", group_size=group_size)
        cols = layer._cols
        groups = layer.in_features // cols
        # numlib packs one matrix at a time; a group is a matrix of its own columns.
        words = np.stack(
            [
                bitplane.pack(q.codes[:, g * cols : (g + 1) * cols], layer.weight_bits).words
                for g in range(groups)
            ],
            axis=2,
        )
        with torch.no_grad():
            layer.weight_words.copy_(torch.from_numpy(words.view(np.int32)))
            layer.weight_scales.copy_(torch.from_numpy(np.ascontiguousarray(q.scales)))
            if linear.bias is not None:
                assert layer.bias is not None
                layer.bias.copy_(linear.bias.detach())
        return layer

    def weight_codes(self) -> torch.Tensor:
        """Return the bipolar-INT weight codes, unpacked from the bit-plane words.

        Returns
        -------
        torch.Tensor
            uint8 ``out_features x in_features`` codes in ``[0, 2**weight_bits)``, whose
            values are ``2 u - (2**weight_bits - 1)``, on the buffers' device.
        """
        # Byte j of a little-endian word holds columns 8j..8j+7 of it, least significant
        # bit first. Spreading a plane's byte over the eight bytes of an int64 puts each
        # column in a byte lane, so the planes combine by shifts and adds, 8 columns per
        # operation (2.5x faster than shifting every byte of every plane by 0..7).
        planes = self.weight_words.contiguous().view(torch.uint8)  # (b, n, G, 4 words)
        spread = _SPREAD_BITS.to(planes.device)
        codes = torch.take(spread, planes[0].to(torch.int64))
        for b in range(1, self.weight_bits):
            # distinct bits of each lane: the sum is an OR and stays below 256
            codes.add_(torch.take(spread, planes[b].to(torch.int64)).bitwise_left_shift_(b))
        return codes.view(torch.uint8)[..., : self._cols].flatten(-2)

    def dequantized_weight(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """Return the ``out x in`` weight the layer multiplies by, ``s_w * W_int``, in ``dtype``.

        In float64 (default) it is exact up to the one rounding of the product; a
        narrower ``dtype`` rounds the scales and the products to it.

        Parameters
        ----------
        dtype : torch.dtype
            Floating dtype of the result.

        Returns
        -------
        torch.Tensor
            ``out_features x in_features``, on the buffers' device.
        """
        top = (1 << self.weight_bits) - 1
        values = self.weight_codes().to(dtype).mul_(2).sub_(top)
        values = values.view(self.out_features, -1, self._cols)
        return values.mul_(self.weight_scales.to(dtype).unsqueeze(-1)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the quantised layer to ``x`` of shape ``(..., in_features)``.

        Parameters
        ----------
        x : torch.Tensor
            Finite floating-point input on the layer's device.

        Returns
        -------
        torch.Tensor
            ``(..., out_features)`` in ``x``'s dtype.

        Raises
        ------
        TypeError
            If ``x`` is not a floating-point tensor.
        ValueError
            If ``x``'s last dimension is not ``in_features``, it is on another
            device than the layer, or it holds NaN/Inf.
        RuntimeError
            If autograd is enabled and ``x`` requires grad (inference only).
        """
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"x must be a floating-point torch.Tensor, got {_describe(x)}")
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"x must have last dimension in_features={self.in_features}, "
                f"got shape {tuple(x.shape)}"
            )
        if x.device != self.weight_words.device:
            raise ValueError(
                f"x is on {x.device} but the layer's buffers are on {self.weight_words.device}"
            )
        if torch.is_grad_enabled() and x.requires_grad:
            raise RuntimeError(
                "BitplaneLinear is inference-only (quantisation has no gradient); call it "
                "under torch.no_grad() or torch.inference_mode(), or pass x.detach()"
            )
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)
        out_dtype = x.dtype
        if x2.shape[0] == 0:
            return x.new_zeros((*lead, self.out_features))
        _check_finite(x2)
        if self.activation_bits is None:
            weight = self.dequantized_weight(out_dtype)
            bias = None if self.bias is None else self.bias.to(out_dtype)
            return nn.functional.linear(x, weight, bias)
        # On the CPU, blocks of rows keep every float64 and int32 temporary in cache: fresh
        # pages cost more than the int8 GEMM. Rows are independent, so results do not change.
        block = x2.shape[0] if x2.is_cuda else _CPU_ROW_BLOCK
        y = torch.empty((x2.shape[0], self.out_features), dtype=out_dtype, device=x2.device)
        for start in range(0, x2.shape[0], block):
            y[start : start + block] = self._integer_rows(x2[start : start + block])
        return y.reshape(*lead, self.out_features)

    def _integer_rows(self, x: torch.Tensor) -> torch.Tensor:
        """float64 outputs for rows ``x``: quantised, multiplied exactly, then scaled."""
        bits = self.activation_bits
        assert bits is not None
        if self.weight_words.shape[2] == 1 and bitplane_cuda.available(x):
            codes, sx = quantize_activations(x, bits)
            planes = self._cached_weights("planes", bitplane_cuda.weight_planes)
            groups: Iterator[torch.Tensor] = iter([bitplane_cuda.product(codes, bits, planes)])
        else:
            halves, sx = _half_values(x, bits)
            groups = group_products(
                IntegerOperand.from_halves(halves, bits),
                self._cached_weights("int8", IntegerOperand.from_codes),
                self._cols,
            )
        # Scales are constant along each group, so they factor out of its product. Every
        # operand is made float64 first: torch's mixed-dtype elementwise ops are ~20x slower.
        scales = self.weight_scales.T.contiguous()
        y = next(groups).to(torch.float64).mul_(scales[0])
        term = torch.empty_like(y) if len(scales) > 1 else y
        for g, p in enumerate(groups, start=1):
            y.add_(term.copy_(p).mul_(scales[g]))
        y.mul_(sx)
        if self.bias is not None:
            y.add_(self.bias.to(torch.float64))
        return y

    def _cached_weights(self, kind: str, build: Callable[[torch.Tensor, int], Any]) -> Any:
        """``build(weight codes, weight_bits)``, kept until the words change."""
        # _version counts in-place writes (load_state_dict, copy_), data_ptr catches .to()
        key = (self.weight_words.data_ptr(), self.weight_words._version)
        cached = self._weight_cache.get(kind)
        if cached is None or cached[0] != key:
            cached = (key, build(self.weight_codes(), self.weight_bits))
            self._weight_cache[kind] = cached
        return cached[1]

    def extra_repr(self) -> str:
        """Sizes, bit widths and group size, as shown by ``repr``."""
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"weight_bits={self.weight_bits}, activation_bits={self.activation_bits}, "
            f"group_size={self.group_size}, bias={self.bias is not None}"
        )

    # ------------------------------------------------------------------ checkpoints

    def save_safetensors(self, path: str | os.PathLike[str]) -> None:
        """Write the layer to ``path`` with safetensors (never pickle).

        The buffers are the tensors; sizes, widths, group size and the bias flag
        are string metadata, so :meth:`load_safetensors` rebuilds the same module.

        Parameters
        ----------
        path : str or os.PathLike
            File to write (replaced if it exists).
        """
        from safetensors.torch import save_file

        tensors = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        meta = {
            "format": _SAFETENSORS_FORMAT,
            "version": _SAFETENSORS_VERSION,
            "in_features": str(self.in_features),
            "out_features": str(self.out_features),
            "weight_bits": str(self.weight_bits),
            "activation_bits": "" if self.activation_bits is None else str(self.activation_bits),
            "group_size": "" if self.group_size is None else str(self.group_size),
            "bias": "1" if self.bias is not None else "0",
        }
        save_file(tensors, os.fspath(path), metadata=meta)

    @classmethod
    def load_safetensors(
        cls, path: str | os.PathLike[str], *, device: torch.device | str = "cpu"
    ) -> BitplaneLinear:
        """Rebuild a layer written by :meth:`save_safetensors`.

        Parameters
        ----------
        path : str or os.PathLike
        device : torch.device or str
            Where to place the buffers (default CPU).

        Returns
        -------
        BitplaneLinear
            The saved layer, its buffers on ``device``.

        Raises
        ------
        OSError
            If ``path`` cannot be read.
        ValueError
            If the file is not a safetensors file written by :meth:`save_safetensors`
            (format, version or a metadata field missing or malformed), or its tensors
            do not match the metadata in name, shape or dtype, or its scales are not
            finite and non-negative.
        """
        from safetensors import SafetensorError, safe_open

        where = os.fspath(path)
        try:
            with safe_open(where, framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except SafetensorError as exc:
            raise ValueError(f"path {where!r} is not a readable safetensors file: {exc}") from exc
        if meta.get("format") != _SAFETENSORS_FORMAT:
            raise ValueError(f"path {where!r} does not hold a BitplaneLinear checkpoint")
        if meta.get("version") != _SAFETENSORS_VERSION:
            raise ValueError(f"unsupported BitplaneLinear checkpoint version {meta.get('version')}")

        def optional(name: str) -> int | None:
            """Read a metadata field: an int, or None for the empty string."""
            text = meta.get(name)
            if text is None:
                raise ValueError(f"checkpoint metadata lacks the field {name!r}")
            try:
                return None if text == "" else int(text)
            except ValueError:
                raise ValueError(f"checkpoint metadata {name!r} is not an int: {text!r}") from None

        def required(name: str) -> int:
            value = optional(name)
            if value is None:
                raise ValueError(f"checkpoint metadata lacks the field {name!r}")
            return value

        if meta.get("bias") not in ("0", "1"):
            raise ValueError(
                f"checkpoint metadata 'bias' must be '0' or '1', got {meta.get('bias')!r}"
            )
        has_bias = meta["bias"] == "1"
        bias = tensors.get("bias")
        layer = cls(
            required("in_features"),
            required("out_features"),
            weight_bits=required("weight_bits"),
            activation_bits=optional("activation_bits"),
            group_size=optional("group_size"),
            bias=has_bias,
            device=device,
            dtype=bias.dtype
            if has_bias and bias is not None and bias.is_floating_point()
            else None,
        )
        # load_state_dict would cast silently: int32 words read as floats, float scales as ints
        for name, expected in layer.state_dict().items():
            got = tensors.get(name)
            if got is not None and got.dtype != expected.dtype:
                raise ValueError(
                    f"checkpoint tensor {name!r} is {got.dtype}, expected {expected.dtype}"
                )
        try:
            layer.load_state_dict(tensors, strict=True)
        except RuntimeError as exc:
            raise ValueError(f"checkpoint tensors do not match its metadata: {exc}") from exc
        scales = layer.weight_scales
        if not bool(torch.isfinite(scales).all()) or bool((scales < 0).any()):
            raise ValueError("checkpoint tensor 'weight_scales' must be finite and non-negative")
        if layer.bias is not None:
            _check_finite(layer.bias, "checkpoint tensor 'bias'")
        return layer


def _describe(x: object) -> str:
    if isinstance(x, torch.Tensor):
        return f"a tensor of dtype {x.dtype}"
    return type(x).__name__
