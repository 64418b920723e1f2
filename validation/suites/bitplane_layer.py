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
int8. Metrics: ``rel_error`` = ``||y - y_fp32|| / ||y_fp32||`` of each layer's output,
the shape, and the bit widths.
"""

from __future__ import annotations

import warnings
from typing import Any

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
            result = {
                name: (t, _relative_error(f(x), reference))
                for (name, f), t in zip(contenders.items(), times, strict=True)
            }
        shape = {"m": TOKENS[size], "k": k, "n": n}
        for name, (wb, ab, gs) in FORMATS.items():
            time_s, error = result[name]
            metrics = {**shape, "rel_error": error, "weight_bits": wb, "activation_bits": ab,
                       "group_size": gs}  # fmt: skip
            for peer in ("torch-linear-fp32", "torch-dynamic-int8"):
                peer_s, peer_error = result[peer]
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
                        {**shape, "rel_error": peer_error},
                    )
                )
    return records
