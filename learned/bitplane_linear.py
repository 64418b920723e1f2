"""Drop-in torch layers built on numlib primitives.

:class:`BitplaneLinear` replaces :class:`torch.nn.Linear` at inference time with
low-bit bipolar-INT weights *and* activations, held as packed bit-planes and
multiplied exactly (Jia et al., "Efficient Arbitrary Precision Acceleration for Large
Language Models on GPU Tensor Cores", ASP-DAC 2025, arXiv:2409.17870): on CUDA by
numlib's binary Tensor-Core kernels (:mod:`learned.bitplane_cuda`), elsewhere by one
float64 GEMM of the integer values (:func:`integer_product`, exact by a bound). The numpy
oracle for every integer step is :mod:`numlib.bitplane`; the tests check both paths
against it bit for bit.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch import nn

from learned import bitplane_cuda
from numlib import bitplane

__all__ = [
    "BitplaneLinear",
    "integer_product",
    "quantize_activations",
]

MAX_BITS = 8
WORD_BITS = 32  # storage word, the numlib.bitplane_pack layout GPU kernels read
_BIT_SHIFTS = torch.arange(8, dtype=torch.uint8)

_SAFETENSORS_FORMAT = "numlib.learned.BitplaneLinear"
_SAFETENSORS_VERSION = "1"


# --------------------------------------------------------------------------- checks


def _check_bits(bits: Any, name: str) -> int:
    # bool is an int subclass; True as a bit width is almost certainly a mistake.
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer):
        raise TypeError(f"{name} must be an int in 1..{MAX_BITS}, got {type(bits).__name__}")
    if not 1 <= int(bits) <= MAX_BITS:
        raise ValueError(f"{name} must be in 1..{MAX_BITS}, got {bits}")
    return int(bits)


def _check_positive(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be a positive int, got {type(value).__name__}")
    if int(value) < 1:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return int(value)


# --------------------------------------------------------------------------- torch kernels


def quantize_activations(x: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantise the rows of ``x`` to bipolar-INT codes with per-row absmax scales.

    The torch twin of ``numlib.bitplane.quantize(x, bits, granularity="row")``,
    evaluated in float64 with the same operations in the same order (IEEE division,
    ``floor`` and comparisons are exactly rounded on every backend), so the codes
    and scales equal numlib's bit for bit: ``s = max|x_r| / (2**bits - 1)``,
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
        If ``x`` is not 2-D or ``bits`` is outside 1..8.
    """
    bits = _check_bits(bits, "bits")
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError("x must be a floating-point torch.Tensor")
    if x.ndim != 2:
        raise ValueError(f"x must be 2-D (rows x k), got shape {tuple(x.shape)}")
    top = (1 << bits) - 1
    a = x.detach().to(torch.float64)
    scales = a.abs().amax(dim=1, keepdim=True) / top
    # where() keeps the 0/0 of an all-zero row out of the result (numlib does the same).
    y = torch.where(scales > 0, a / scales, torch.zeros((), dtype=a.dtype, device=a.device))
    sign = torch.where(y < 0, -1.0, 1.0)
    odd = sign * (2.0 * torch.floor(y.abs() / 2.0) + 1.0)
    v = odd.clamp(-top, top).to(torch.int64)
    return (v + top) >> 1, scales


# Largest |partial sum| a float64 product of integer values holds exactly.
_EXACT_FLOAT64 = 1 << 53


def integer_product(
    codes_x: torch.Tensor, bits_x: int, codes_w: torch.Tensor, bits_w: int, group_size: int
) -> torch.Tensor:
    """Exact per-group integer products ``X_g W_g^T`` of bipolar-INT codes, by one float64 GEMM.

    The values ``v = 2u - (2**bits - 1)`` are integers, so every partial sum of a group's
    product is an integer of magnitude at most ``group_size (2**a - 1)(2**b - 1)``; below
    ``2**53`` float64 holds each one exactly, in whatever order the GEMM sums, and the
    result equals the AND/popcount recovery on packed planes
    (:func:`numlib.bitplane.packed_matmul`, Jia et al., arXiv:2409.17870) on every group.
    The bound allows groups of up to 1.3e11 columns at 8 bits. The bit planes are the
    storage format; without a binary kernel (CPU, or CUDA without CuPy), a BLAS GEMM is the
    fastest exact way to multiply them. On this project's CPU (one thread, 128 tokens
    through a 384 x 1536 layer) the layer runs about 20x (W4A4) to over 100x (W8A8)
    faster this way than with ``a * b`` AND/popcount passes emulated in torch.

    Parameters
    ----------
    codes_x : torch.Tensor
        Integer ``m x k`` codes in ``[0, 2**bits_x)`` (unchecked: internal helper).
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
        float64 ``(m, n, k // group_size)`` holding the exact integers.

    Raises
    ------
    ValueError
        If ``group_size (2**bits_x - 1)(2**bits_w - 1) >= 2**53``.
    """
    if group_size * ((1 << bits_x) - 1) * ((1 << bits_w) - 1) >= _EXACT_FLOAT64:
        raise ValueError(
            f"group_size={group_size} at {bits_x} x {bits_w} bits exceeds float64's exact "
            "integer range (2**53)"
        )
    m, k = codes_x.shape
    n = codes_w.shape[0]
    vx = 2 * codes_x.to(torch.float64) - ((1 << bits_x) - 1)
    vw = 2 * codes_w.to(torch.float64) - ((1 << bits_w) - 1)
    groups = k // group_size
    return torch.einsum(
        "mgk,ngk->mng", vx.view(m, groups, group_size), vw.view(n, groups, group_size)
    )


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
    Large Language Models on GPU Tensor Cores", ASP-DAC 2025, arXiv:2409.17870), or a
    float64 GEMM of the integer values that no rounding can reach (see Devices). The only
    rounding is in the float64 scaling and the cast to the input dtype, so the
    output equals ``dequantize(X) dequantize(W)^T + b`` to float64 rounding.

    With ``activation_bits=None`` the layer is *weight-only* (W4A16-style, the
    format GPTQ targets): the input stays in floating point and is multiplied by the
    weight dequantised on the fly from the packed planes, ``y = x (s_w W_int)^T + b``
    in ``x``'s dtype. The storage is the same; the product is a float GEMM instead of
    the bit-plane kernel, and only the weight's rounding is applied. Unpacking the
    planes on every call costs 25-40% of that GEMM on a CPU (measured on MiniLM's
    layers), so the layer saves memory, not time.

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
    cached). Elsewhere the weight codes are unpacked on each call and
    :func:`integer_product` multiplies the integer values by one float64 GEMM on the
    tensors' device, exact because every partial sum is an integer below ``2**53``.
    On a CPU that takes 4-5x the time of a float32 ``nn.Linear``, a third to two thirds
    of it unpacking (one thread, 128 tokens, 384 x 1536). Both paths give the same
    integers, so the same outputs bit for bit.

    Inference only: quantisation has no useful gradient, and a silently detached
    output would break training without warning. ``forward`` therefore raises if
    autograd is enabled and the input requires grad; run it under
    :func:`torch.no_grad` / :func:`torch.inference_mode` or pass a detached input.
    Keep the module in its dtype: ``.half()`` would also round the float64 scales.

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
        If a size or width is not an int.
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
        self.in_features = _check_positive(in_features, "in_features")
        self.out_features = _check_positive(out_features, "out_features")
        self.weight_bits = _check_bits(weight_bits, "weight_bits")
        self.activation_bits = (
            None if activation_bits is None else _check_bits(activation_bits, "activation_bits")
        )
        if group_size is not None:
            group_size = _check_positive(group_size, "group_size")
            if self.in_features % group_size:
                raise ValueError(
                    f"group_size must divide in_features={self.in_features}, got {group_size}"
                )
        self.group_size = group_size
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
        self._cuda_cache: tuple[tuple[int, int], Any] | None = None

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
            Layer to convert; its weight must be finite.
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
            ``in_features``, or the weight holds NaN/Inf.
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
        if not np.all(np.isfinite(w)):
            raise ValueError("linear.weight must be finite (it holds NaN or Inf)")
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
        """Return the uint8 ``out x in`` bipolar-INT weight codes (unpacked from the words)."""
        # Byte j of a little-endian word holds columns 8j..8j+7 of it, least significant
        # bit first, so shifting each byte by 0..7 unpacks its 8 columns (uint8 throughout,
        # twice as fast as a 256-entry table indexed by int64).
        planes = self.weight_words.contiguous().view(torch.uint8)  # (b, n, G, 4 words)
        bits = (planes.unsqueeze(-1) >> _BIT_SHIFTS.to(planes.device)) & 1  # (..., bytes, 8)
        bits = bits.flatten(-2)[..., : self._cols].flatten(-2)  # (b, n, in)
        weights = (1 << torch.arange(self.weight_bits, device=bits.device)).to(torch.uint8)
        # distinct powers of two: the sum is an OR and stays below 256
        return (bits * weights.view(-1, 1, 1)).sum(dim=0, dtype=torch.uint8)

    def dequantized_weight(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """Return the ``out x in`` weight the layer multiplies by, ``s_w * W_int``, in ``dtype``.

        In float64 (default) it is exact up to the one rounding of the product; a
        narrower ``dtype`` rounds the scales and the products to it.
        """
        top = (1 << self.weight_bits) - 1
        values = (2 * self.weight_codes().to(dtype) - top).view(self.out_features, -1, self._cols)
        return (values * self.weight_scales.to(dtype).unsqueeze(-1)).flatten(1)

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
        if not bool(torch.isfinite(x2).all()):
            raise ValueError("x must be finite (it holds NaN or Inf)")
        if self.activation_bits is None:
            weight = self.dequantized_weight(out_dtype)
            bias = None if self.bias is None else self.bias.to(out_dtype)
            return nn.functional.linear(x, weight, bias)
        codes, sx = quantize_activations(x2, self.activation_bits)
        if self.weight_words.shape[2] == 1 and bitplane_cuda.available(x2):
            p = bitplane_cuda.product(codes, self.activation_bits, self._cuda_weights())
            p = p.unsqueeze(-1)  # the one scale group
        else:
            p = integer_product(
                codes, self.activation_bits, self.weight_codes(), self.weight_bits, self._cols
            )
        # Scales are constant along each group, so they factor out of its product.
        y = sx * (p.to(torch.float64) * self.weight_scales).sum(dim=-1)
        if self.bias is not None:
            y = y + self.bias.to(torch.float64)
        return y.to(out_dtype).reshape(*lead, self.out_features)

    def _cuda_weights(self) -> Any:
        """Device planes of the weights for gpu.bitplane, rebuilt when the words change."""
        # _version counts in-place writes (load_state_dict, copy_), data_ptr catches .to()
        key = (self.weight_words.data_ptr(), self.weight_words._version)
        if self._cuda_cache is None or self._cuda_cache[0] != key:
            codes = self.weight_codes()
            self._cuda_cache = (key, bitplane_cuda.weight_planes(codes, self.weight_bits))
        return self._cuda_cache[1]

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

        Raises
        ------
        ValueError
            If the file was not written by :meth:`save_safetensors`, or its tensors
            do not match its metadata.
        """
        from safetensors import safe_open

        with safe_open(os.fspath(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        if meta.get("format") != _SAFETENSORS_FORMAT:
            raise ValueError(f"path {os.fspath(path)!r} does not hold a BitplaneLinear checkpoint")
        if meta.get("version") != _SAFETENSORS_VERSION:
            raise ValueError(f"unsupported BitplaneLinear checkpoint version {meta.get('version')}")
        has_bias = meta["bias"] == "1"
        layer = cls(
            int(meta["in_features"]),
            int(meta["out_features"]),
            weight_bits=int(meta["weight_bits"]),
            activation_bits=int(meta["activation_bits"]) if meta["activation_bits"] else None,
            group_size=int(meta["group_size"]) if meta["group_size"] else None,
            bias=has_bias,
            device=device,
            dtype=tensors["bias"].dtype if has_bias and "bias" in tensors else None,
        )
        try:
            layer.load_state_dict(tensors, strict=True)
        except RuntimeError as exc:
            raise ValueError(f"checkpoint tensors do not match its metadata: {exc}") from exc
        return layer


def _describe(x: object) -> str:
    if isinstance(x, torch.Tensor):
        return f"a tensor of dtype {x.dtype}"
    return type(x).__name__
