"""Convolutions as matrices over patches, so that the linear recipes compress them.

A ``Conv1d``/``Conv2d`` with one group computes ``y = W x_p`` at every output position,
``W`` the kernel reshaped to ``out x (in * prod(kernel))`` and ``x_p`` the input patch
there (``torch.nn.functional.unfold``'s columns, in the kernel's own order). Every
matrix method of :mod:`learned.compress` (pruning, N:M, low rank, Monarch, their
calibration on ``E[x_p x_p^T]``) therefore applies to ``W`` unchanged;
:class:`CompressedConv` runs the result as a convolution again. A low-rank kernel
``W = L R`` becomes two convolutions, the kernel-sized one with ``rank`` outputs and a
``1 x 1`` one, which is where the speed comes from; other formats convolve with their
dense kernel (smaller storage, the same arithmetic).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from learned.compress.layers import LowRankLinear, dense_linear

__all__ = [
    "CONVOLUTIONS",
    "CompressedConv",
    "as_linear",
    "check_convolution",
    "output_rows",
    "patch_rows",
    "patches",
]

CONVOLUTIONS = (nn.Conv1d, nn.Conv2d)


def check_convolution(module: nn.Module, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` unless the convolution is a matrix over patches.

    Grouped convolutions, padding modes other than ``"zeros"`` and ``padding="same"``
    with an even kernel extent (asymmetric padding) are not supported.
    """
    assert isinstance(module, CONVOLUTIONS)
    if module.groups != 1:
        raise ValueError(f"{name!r}: grouped convolutions (groups={module.groups}) unsupported")
    if module.padding_mode != "zeros":
        raise ValueError(f"{name!r}: padding_mode {module.padding_mode!r} unsupported")
    _padding(module, name)


def _padding(module: nn.Module, name: str = "convolution") -> tuple[int, ...]:
    if module.padding == "valid":
        return (0,) * len(module.kernel_size)
    if module.padding == "same":
        spans = [d * (k - 1) for d, k in zip(module.dilation, module.kernel_size, strict=True)]
        if any(span % 2 for span in spans):
            raise ValueError(f"{name!r}: padding='same' with an even kernel span unsupported")
        return tuple(span // 2 for span in spans)
    return tuple(module.padding)


def _geometry(module: nn.Module) -> dict[str, Any]:
    return {
        "in_channels": module.in_channels,
        "out_channels": module.out_channels,
        "kernel_size": list(module.kernel_size),
        "stride": list(module.stride),
        "padding": list(_padding(module)),
        "dilation": list(module.dilation),
    }


def patch_rows(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Return the input patch of every output position, ``(positions, in * prod(kernel))``.

    Row ``p`` is the patch that the kernel, reshaped to a matrix, multiplies at
    position ``p`` (samples first, then positions in order).
    """
    return patches(module, x).reshape(-1, module.weight[0].numel())


def patches(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Return the input patches by sample, ``(samples, positions, in * prod(kernel))``."""
    geometry = _geometry(module)
    if x.ndim == len(module.kernel_size) + 1:  # unbatched
        x = x.unsqueeze(0)
    if len(module.kernel_size) == 1:  # unfold is 2-D only: a unit second spatial axis
        x = x.unsqueeze(-1)
    columns = F.unfold(
        x,
        kernel_size=_planar(geometry["kernel_size"], 1),
        dilation=_planar(geometry["dilation"], 1),
        padding=_planar(geometry["padding"], 0),
        stride=_planar(geometry["stride"], 1),
    )
    return columns.transpose(1, 2)


def _planar(values: list[int], unit: int) -> tuple[int, int]:
    """Return a 1-D convolution's parameter on the planar grid of :func:`patches`."""
    return (values[0], unit) if len(values) == 1 else (values[0], values[1])


def output_rows(module: nn.Module, y: torch.Tensor) -> torch.Tensor:
    """Return a convolution's output (or its gradient) as ``(samples, positions, out)``."""
    dims = len(module.kernel_size)
    if y.ndim == dims + 1:
        y = y.unsqueeze(0)
    return y.flatten(2).transpose(1, 2)


def as_linear(module: nn.Module) -> nn.Linear:
    """Return an ``nn.Linear`` holding the kernel as an ``out x (in * prod(kernel))`` matrix."""
    weight = module.weight.detach().reshape(module.out_channels, -1)
    return dense_linear(weight, None if module.bias is None else module.bias.detach(), module)


class CompressedConv(nn.Module):
    """A convolution whose kernel, as a matrix over patches, is a compressed layer.

    Parameters
    ----------
    inner : nn.Module
        A compressed layer over patches (``in_features = in_channels * prod(kernel)``)
        with ``dense_weight()``; its bias is the convolution's.
    in_channels, out_channels : int
    kernel_size, stride, padding, dilation : sequence of int
        One entry per spatial dimension (1 or 2).
    """

    def __init__(
        self,
        inner: nn.Module,
        *,
        in_channels: int,
        out_channels: int,
        kernel_size: list[int],
        stride: list[int],
        padding: list[int],
        dilation: list[int],
    ) -> None:
        super().__init__()
        if len(kernel_size) not in (1, 2):
            raise ValueError(f"kernel_size must have 1 or 2 entries, got {kernel_size}")
        if inner.in_features != in_channels * math.prod(kernel_size):
            raise ValueError("inner.in_features must be in_channels * prod(kernel_size)")
        self.inner = inner
        self.geometry = {
            "in_channels": in_channels,
            "out_channels": out_channels,
            "kernel_size": list(kernel_size),
            "stride": list(stride),
            "padding": list(padding),
            "dilation": list(dilation),
        }

    @classmethod
    def wrap(cls, inner: nn.Module, like: nn.Module) -> CompressedConv:
        """``inner`` (compressed from :func:`as_linear` of ``like``) with ``like``'s geometry."""
        return cls(inner, **_geometry(like))

    def config(self) -> dict[str, Any]:
        """Return the geometry (JSON-serialisable constructor arguments besides ``inner``)."""
        return dict(self.geometry)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve; a low-rank kernel as a kernel-sized and a ``1 x 1`` convolution."""
        g = self.geometry
        conv = F.conv1d if len(g["kernel_size"]) == 1 else F.conv2d
        where = {"stride": g["stride"], "padding": g["padding"], "dilation": g["dilation"]}
        kernel = (g["in_channels"], *g["kernel_size"])
        if isinstance(self.inner, LowRankLinear):
            right = self.inner.right.reshape(self.inner.rank, *kernel)
            ones = (1,) * len(g["kernel_size"])
            left = self.inner.left.reshape(g["out_channels"], self.inner.rank, *ones)
            return conv(conv(x, right, None, **where), left, self.inner.bias)
        weight = self.inner.dense_weight().reshape(g["out_channels"], *kernel)
        return conv(x, weight.to(x.dtype), self.inner.bias, **where)

    def extra_repr(self) -> str:
        """Show the geometry."""
        return ", ".join(f"{k}={v}" for k, v in self.geometry.items())
