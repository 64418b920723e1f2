"""Suite ``bitplane``, case ``cpu-layer``: :class:`BitplaneLinear` on the CPU against torch.

The layer a user would otherwise run: ``torch.nn.Linear`` in float32, and for 8-bit
inference torch's own dynamic quantisation (``torch.ao.quantization.quantize_dynamic``,
int8 weights per tensor, activations quantised per call, fbgemm kernels). Every
variant runs on the same input in one process with one thread, timed interleaved
(best of ``repeat``). Shapes are MiniLM's MLP (384 -> 1536 and 1536 -> 384); the
input is ``m`` standard-normal tokens (256 small, 2048 medium), weights those of a
seeded ``nn.Linear``.

``BitplaneLinear`` computes the exact bipolar-INT product: per-token activation scales,
per-row (or per-group) weight scales, int8 GEMMs with int32 sums on the CPU. torch's
dynamic int8 layer uses one activation scale per call and rounds to two's-complement
int8. Metrics:

``max_abs_error``
    ``BitplaneLinear``: against its float64 oracle, numlib's quantisers and
    ``dequantize(X) dequantize(W)^T + b`` in numpy (float32 output rounding only);
    the peers: against the float64 product of the unquantised layer.
``rel_error``
    ``||y - y_fp32|| / ||y_fp32||``: what the quantisation costs.
``m``, ``k``, ``n``, bit widths and group size
    The problem.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from numlib import bitplane
from validation.measure import best_times_interleaved, one_torch_thread
from validation.registry import Record, case

SUITE = "bitplane"
SEED = 20261128
TOKENS = {"small": 256, "medium": 2048}
SHAPES = ((384, 1536), (1536, 384))
# name: (weight bits, activation bits, group size)
FORMATS = {
    "w8a8": (8, 8, None),
    "w4a8-g128": (4, 8, 128),
    "w4a4": (4, 4, None),
    "w1a1": (1, 1, None),
}


def _dynamic_int8(linear: Any) -> Any:
    import torch
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():  # torch announces the API's move to torchao
        warnings.simplefilter("ignore")
        return quantize_dynamic(torch.nn.Sequential(linear), {torch.nn.Linear}, torch.qint8)


def _relative_error(y: Any, reference: Any) -> float:
    return float((y - reference).norm() / reference.norm())


def _quantised_oracle(dense: Any, x: Any, wb: int, ab: int, gs: int | None) -> np.ndarray:
    """``dequantize(X) dequantize(W)^T + b`` in float64 numpy: the layer's exact target."""
    w = dense.weight.detach().double().numpy()
    if gs is None:
        qw = bitplane.quantize(w, wb)
    else:
        qw = bitplane.quantize(w, wb, granularity="group", group_size=gs)
    qx = bitplane.quantize(x.double().numpy(), ab)
    return (
        bitplane.dequantize(qx) @ bitplane.dequantize(qw).T + dense.bias.detach().double().numpy()
    )


@case(SUITE, "cpu-layer", sizes=("small", "medium"))
def cpu_layer(size: str, *, repeat: int) -> list[Record]:
    """BitplaneLinear (W8A8, W4A8-g128, W4A4, W1A1) vs float32 nn.Linear and torch dynamic int8.

    MiniLM's MLP shapes, 256 / 2048 tokens (small / medium), one thread, interleaved
    timing; rel_error against the float32 layer's output.
    """
    import torch

    from learned.bitplane_linear import BitplaneLinear

    records = []
    for k, n in SHAPES:
        torch.manual_seed(SEED)
        dense = torch.nn.Linear(k, n).eval()
        x = torch.randn(TOKENS[size], k)
        dynamic = _dynamic_int8(dense)  # quantises a copy
        layers = {
            name: BitplaneLinear.from_linear(
                dense, weight_bits=wb, activation_bits=ab, group_size=gs
            )
            for name, (wb, ab, gs) in FORMATS.items()
        }
        contenders = {**layers, "torch-linear-fp32": dense, "torch-dynamic-int8": dynamic}
        with one_torch_thread(), torch.inference_mode():
            reference = dense(x)
            times = best_times_interleaved(
                [lambda f=f, x=x: f(x) for f in contenders.values()], repeat
            )
            outputs = {name: f(x) for name, f in contenders.items()}
        # BitplaneLinear against its own exact target, the peers against the float64 layer
        exact = (
            x.double() @ dense.weight.detach().double().T + dense.bias.detach().double()
        ).numpy()
        oracles = {name: _quantised_oracle(dense, x, *spec) for name, spec in FORMATS.items()}
        result = {
            name: (
                t,
                _relative_error(outputs[name], reference),
                float(np.abs(outputs[name].double().numpy() - oracles.get(name, exact)).max()),
            )
            for name, t in zip(contenders, times, strict=True)
        }
        shape = {"m": TOKENS[size], "k": k, "n": n}
        for name, (wb, ab, gs) in FORMATS.items():
            time_s, error, max_abs = result[name]
            metrics = {**shape, "rel_error": error, "max_abs_error": max_abs, "weight_bits": wb,
                       "activation_bits": ab, "group_size": gs}  # fmt: skip
            for peer in ("torch-linear-fp32", "torch-dynamic-int8"):
                peer_s, peer_error, peer_max_abs = result[peer]
                records.append(
                    Record(
                        SUITE,
                        "cpu-layer",
                        size,
                        f"bitplane-linear-{name}-{k}x{n}",
                        peer,
                        time_s,
                        peer_s,
                        metrics,
                        {**shape, "rel_error": peer_error, "max_abs_error": peer_max_abs},
                    )
                )
    return records
