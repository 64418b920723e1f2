"""BitplaneLinear on CUDA runs numlib's GPU kernels and matches the CPU layer bit for bit.

Both devices compute the same exact integer product (gpu.bitplane on CUDA, int8 GEMMs
with int32 sums on CPU) and the same float64 epilogue, so the outputs are identical.
Runs only with cupy and a CUDA device (``gpu`` marker).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from learned import bitplane_cuda
from learned.bitplane_linear import BitplaneLinear

pytestmark = pytest.mark.gpu


def _pair(in_f: int, out_f: int, wb: int, ab: int, seed: int) -> BitplaneLinear:
    torch.manual_seed(seed)
    return BitplaneLinear.from_linear(nn.Linear(in_f, out_f), weight_bits=wb, activation_bits=ab)


@pytest.mark.parametrize(("wb", "ab"), [(1, 1), (1, 2), (2, 2), (4, 4), (8, 8), (3, 5)])
@pytest.mark.parametrize("rows", [1, 5, 40, 300])
def test_cuda_equals_cpu_exactly(
    wb: int, ab: int, rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real = bitplane_cuda.product

    def counted(*args: object) -> torch.Tensor:
        calls.append(1)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(bitplane_cuda, "product", counted)
    layer = _pair(300, 257, wb, ab, seed=wb * 10 + ab)
    x = torch.randn(rows, 300, generator=torch.Generator().manual_seed(rows))
    with torch.no_grad():
        want = layer(x)
        got = layer.cuda()(x.cuda())
    assert calls, "the CUDA branch did not run"
    assert torch.equal(got.cpu(), want)


def test_cuda_weight_cache_follows_new_weights() -> None:
    layer = _pair(128, 64, 2, 2, seed=1).cuda()
    other = _pair(128, 64, 2, 2, seed=2)
    x = torch.randn(3, 128)
    with torch.no_grad():
        before = layer(x.cuda()).cpu()
        layer.load_state_dict(other.state_dict())
        after = layer(x.cuda()).cpu()
        assert torch.equal(after, other(x))
    assert not torch.equal(before, after)
