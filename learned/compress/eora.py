"""EoRA: training-free low-rank compensation of a compressed layer's error.

For a layer ``W`` replaced by a compressed ``W_c`` (pruned, quantised, low-rank), the
rank-``r`` correction ``B A`` minimising the expected output error
``E||(W - W_c - B A) x||^2 = ||(dW - B A) F||_F^2`` (``F F^T = C``, the calibration input
second moment) is the truncated SVD of ``dW`` in the eigenspace of ``C``, projected back
(Liu et al. 2024, "EoRA: training-free compensation for compressed LLM with eigenspace
low-rank approximation"): :func:`numlib.lowrank.whitened_svd` with the ``eigh`` factor and
EoRA's clamped eigenvalues. The compensated layer is
:class:`~learned.compress.layers.CompensatedLinear`.
"""

from __future__ import annotations

import torch
from torch import nn

from learned.bitplane_linear import BitplaneLinear
from learned.compress.layers import CompensatedLinear, LowRankLinear
from numlib.lowrank import whitened_svd

__all__ = ["effective_weight", "eora_compensate"]


def effective_weight(layer: nn.Module) -> torch.Tensor:
    """Return the dense ``out x in`` weight a (compressed) linear layer applies, float64.

    For :class:`BitplaneLinear` this is the dequantised weight (activation rounding,
    which depends on the input, is not part of it).

    Raises
    ------
    TypeError
        For a layer without a known dense equivalent.
    """
    if isinstance(layer, nn.Linear):
        return layer.weight.detach().to(torch.float64)
    if isinstance(layer, BitplaneLinear):
        return layer.dequantized_weight()
    if isinstance(layer, CompensatedLinear):
        return effective_weight(layer.base) + effective_weight(layer.correction)
    dense = getattr(layer, "dense_weight", None)
    if dense is None:
        raise TypeError(f"no dense weight for a {type(layer).__name__}")
    with torch.no_grad():
        return dense().detach().to(torch.float64)


def eora_compensate(
    original: nn.Linear, compressed: nn.Module, C: torch.Tensor, rank: int
) -> CompensatedLinear:
    """Add the optimal rank-``rank`` correction (in ``C``'s eigenspace) to ``compressed``.

    Parameters
    ----------
    original : nn.Linear
        The dense layer (not modified).
    compressed : nn.Module
        Its compressed replacement.
    C : torch.Tensor
        Input second moment ``E[x x^T]`` of the layer.
    rank : int
        ``>= 1``; clipped to ``min(out, in)``.
    """
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"rank must be a positive int, got {rank!r}")
    dW = effective_weight(original) - effective_weight(compressed)
    k = min(rank, *dW.shape)
    f = whitened_svd(dW, C.to(torch.float64), rank=k, method="eigh", damp=0.0, clamp=1e-6)
    dtype = original.weight.dtype
    correction = LowRankLinear.from_factors(f.left, f.right, None, dtype=dtype)
    return CompensatedLinear(compressed, correction)
