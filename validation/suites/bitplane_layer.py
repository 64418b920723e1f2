"""Suite ``bitplane``, case ``cpu-layer``: :class:`BitplaneLinear` on the CPU against torch.

The layer a user would otherwise run: ``torch.nn.Linear`` in float32, and for 8-bit
inference torch's own dynamic quantisation (``torch.ao.quantization.quantize_dynamic``,
activations quantised per call, fbgemm kernels), with int8 weights per tensor (its
default, ``torch-dynamic-int8``) and per output channel (``per_channel_dynamic_qconfig``,
``torch-dynamic-int8-per-channel``, the finer scales a careful user picks). Every
variant runs on the same input in one process with one thread, timed interleaved
(best of ``repeat``). Shapes are MiniLM's MLP (384 -> 1536 and 1536 -> 384); the
input is ``m`` standard-normal tokens (256 small, 2048 medium), weights those of a
seeded ``nn.Linear``.

``BitplaneLinear`` computes the exact bipolar-INT product: per-token activation scales,
per-row (or per-group) weight scales, int8 GEMMs with int32 sums on the CPU. torch's
dynamic int8 layer uses one activation scale per call and rounds to two's-complement
int8. Metrics:

``max_abs_error``
    ``BitplaneLinear``: against its float64 oracle ``dequantize(X) dequantize(W)^T + b``,
    with both operands put on the bipolar grid by this module's own numpy rounding
    (:func:`_odd_grid`, written apart from ``numlib.bitplane``), so only float32 output
    rounding remains; the peers: against the float64 product of the unquantised layer.
``max_abs_error_vs_float64``
    ``BitplaneLinear``: against that same unquantised float64 product, to compare with
    the peers' ``max_abs_error``.
``rel_error``
    ``||y - y_fp32|| / ||y_fp32||``: what the quantisation costs.
``m``, ``k``, ``n``, bit widths and group size
    The problem.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

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


def _dynamic_int8(linear: Any, *, per_channel: bool) -> Any:
    import torch
    from torch.ao.quantization import (
        default_dynamic_qconfig,
        per_channel_dynamic_qconfig,
        quantize_dynamic,
    )

    qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
    with warnings.catch_warnings():  # torch announces the API's move to torchao
        warnings.simplefilter("ignore")
        return quantize_dynamic(torch.nn.Sequential(linear), {torch.nn.Linear: qconfig})


def _relative_error(y: Any, reference: Any) -> float:
    return float((y - reference).norm() / reference.norm())


def _odd_grid(a: np.ndarray, bits: int, columns: int) -> np.ndarray:
    """Round ``a`` to the bipolar grid, block by block of ``columns``.

    ``s = max|a| / top`` per block and ``s v``, ``v`` the odd integer in ``[-top, top]``
    whose level holds ``a / s`` (``top = 2**bits - 1``); written from the format's
    definition, not from numlib's code, for normal (not subnormal) scales.
    """
    top = 2**bits - 1
    blocks = a.reshape(a.shape[0], -1, columns)
    s = np.abs(blocks).max(axis=2, keepdims=True) / top
    y = np.divide(blocks, s, out=np.zeros_like(blocks), where=s > 0)
    v = np.clip(np.sign(y) * (2 * np.floor(np.abs(y) / 2) + 1), -top, top)
    v[y == 0] = 1  # the level of 0 is +1 (times s = 0 for an all-zero block)
    return (s * v).reshape(a.shape)


def _quantised_oracle(dense: Any, x: Any, wb: int, ab: int, gs: int | None) -> np.ndarray:
    """``dequantize(X) dequantize(W)^T + b`` in float64 numpy: the layer's exact target."""
    w = dense.weight.detach().double().numpy()
    xq = _odd_grid(x.double().numpy(), ab, x.shape[1])
    wq = _odd_grid(w, wb, gs or w.shape[1])
    return xq @ wq.T + dense.bias.detach().double().numpy()


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
        dynamic = {  # each quantises a copy
            "torch-dynamic-int8": _dynamic_int8(dense, per_channel=False),
            "torch-dynamic-int8-per-channel": _dynamic_int8(dense, per_channel=True),
        }
        layers = {
            name: BitplaneLinear.from_linear(
                dense, weight_bits=wb, activation_bits=ab, group_size=gs
            )
            for name, (wb, ab, gs) in FORMATS.items()
        }
        contenders = {**layers, "torch-linear-fp32": dense, **dynamic}
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
                float(np.abs(outputs[name].double().numpy() - exact).max()),
            )
            for name, t in zip(contenders, times, strict=True)
        }
        shape = {"m": TOKENS[size], "k": k, "n": n}
        for name, (wb, ab, gs) in FORMATS.items():
            time_s, error, max_abs, vs_float64 = result[name]
            metrics = {**shape, "rel_error": error, "max_abs_error": max_abs,
                       "max_abs_error_vs_float64": vs_float64, "weight_bits": wb,
                       "activation_bits": ab, "group_size": gs}  # fmt: skip
            for peer in ("torch-linear-fp32", *dynamic):
                peer_s, peer_error, peer_max_abs, _ = result[peer]
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
