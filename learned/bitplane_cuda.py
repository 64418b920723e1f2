"""The CUDA branch of :class:`learned.bitplane_linear.BitplaneLinear`: numlib's GPU kernels.

Torch tensors cross to cupy and back through DLPack, without copies, and cupy launches
on torch's current stream, so the layer keeps torch's ordering. :mod:`gpu.bitplane` picks
the kernel by the number of rows and the device (``gemv`` for a few tokens, Tensor-Core
``wgmma`` on Hopper, ``mma`` on Ampere), all exact (Jia et al., "Efficient Arbitrary
Precision Acceleration for Large Language Models on GPU Tensor Cores", ASP-DAC 2025,
arXiv:2409.17870). cupy is imported only when a CUDA tensor arrives.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator
from typing import Any

import torch

__all__ = ["available", "product", "weight_planes"]


def available(t: torch.Tensor) -> bool:
    """Whether ``t`` is on a CUDA device and cupy (hence gpu.bitplane) can run there."""
    return t.is_cuda and importlib.util.find_spec("cupy") is not None


@contextlib.contextmanager
def _on_torch_stream(t: torch.Tensor) -> Iterator[Any]:
    """Make cupy use ``t``'s device and torch's current stream on it."""
    import cupy

    stream = torch.cuda.current_stream(t.device)
    with cupy.cuda.Device(t.device.index), cupy.cuda.ExternalStream(stream.cuda_stream):
        yield cupy


def weight_planes(codes: torch.Tensor, bits: int) -> Any:
    """Pack the ``n x k`` uint8 weight codes into device planes with popcounts.

    Returns
    -------
    numlib.bitplane_pack.PackedPlanes
        cupy arrays, the operand :func:`product` takes (see :func:`gpu.bitplane.pack_gpu`).
    """
    from gpu.bitplane import pack_gpu

    with _on_torch_stream(codes) as cupy:
        return pack_gpu(cupy.from_dlpack(codes.contiguous()), bits, check_codes=False)


def product(codes: torch.Tensor, bits: int, W: Any) -> torch.Tensor:
    """Exact int64 ``X W^T`` of ``m x k`` activation codes and packed weight planes.

    The codes come from the layer's quantiser, so the range check (a host round trip)
    is skipped.
    """
    from gpu.bitplane import pack_gpu, packed_matmul_gpu

    with _on_torch_stream(codes) as cupy:
        X = pack_gpu(cupy.from_dlpack(codes.to(torch.uint8).contiguous()), bits, check_codes=False)
        return torch.from_dlpack(packed_matmul_gpu(X, W, out_dtype="int64"))
