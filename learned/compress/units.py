"""Keep a subset of hidden units between two layers: MoDeGPT's type-I (Nystrom) compression.

In ``y = W_c f(W_p x + b_p) + b_c`` with ``f`` acting channel by channel (an MLP's
activation, a gated product), the hidden units are coordinates: keeping a subset ``S``
shrinks the producer ``W_p`` to its rows ``S`` and the consumer ``W_c`` to ``|S|``
columns, and both stay dense ``nn.Linear`` layers, smaller and faster. With
``C = E[h h^T]`` the second moment of the hidden ``h = f(W_p x + b_p)``, the best
consumer for a given ``S`` is ``W_c C[:, S] C[S, S]^{-1}`` (a Nystrom interpolation), and
its output error is ``trace(W_c (C - Chat_S) W_c^T)``; :func:`numlib.nystrom.nystrom`
chooses ``S`` by top ridge leverage scores of ``C`` (MoDeGPT) or by greedy elimination
of exactly that error.

:func:`find_unit_pairs` finds such pairs among the targeted layers of any model: a
consumer whose execution stage directly follows its producers' stage, with matching
widths, for which dropping one hidden unit from the producers' rows and the consumer's
columns leaves the consumer's other inputs unchanged on a calibration batch (a trial
run). Links that mix channels (attention heads split by ``view``, residual sums) fail the
trial and are not pairs.

References
----------
Lin et al. MoDeGPT: modular decomposition for large language model compression.
ICLR 2025 (type I: MLP compression by Nystrom approximation).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from learned.compress.calibrate import execution_stages, set_module, stage_inputs
from learned.compress.layers import dense_linear
from numlib.calibration import whiten
from numlib.nystrom import nystrom

__all__ = ["UnitPair", "find_unit_pairs", "fit_unit_pair"]


@dataclass(frozen=True)
class UnitPair:
    """Producer layers (sharing one input) whose outputs feed ``consumer`` unit by unit."""

    producers: tuple[str, ...]
    consumer: str


def _rows(layer: nn.Linear, index: torch.Tensor) -> nn.Linear:
    bias = None if layer.bias is None else layer.bias.detach()[index]
    return dense_linear(layer.weight.detach()[index], bias, layer)


def _drops_cleanly(
    model: nn.Module,
    producers: dict[str, nn.Linear],
    consumer: tuple[str, nn.Linear],
    batch: Any,
) -> bool:
    """Whether removing one hidden unit removes exactly that input of the consumer."""
    name, layer = consumer
    width = layer.in_features
    before = stage_inputs(model, {name: layer}, batch)[name]
    keep = torch.arange(width, device=layer.weight.device) != width // 2
    trial = dense_linear(layer.weight.detach()[:, keep], layer.bias, layer)
    try:
        for p, lin in producers.items():
            set_module(model, p, _rows(lin, keep))
        set_module(model, name, trial)
        after = stage_inputs(model, {name: trial}, batch)[name]
    except (RuntimeError, ValueError):  # the model cannot run on a narrower hidden layer
        return False
    finally:
        for p, lin in producers.items():
            set_module(model, p, lin)
        set_module(model, name, layer)
    expected = before[:, keep.cpu()]
    scale = float(expected.abs().max()) or 1.0
    return after.shape == expected.shape and bool(
        torch.allclose(after, expected, rtol=1e-4, atol=1e-5 * scale)
    )


def find_unit_pairs(
    model: nn.Module, targets: dict[str, nn.Linear], batches: Sequence[Any]
) -> list[UnitPair]:
    """Producer/consumer pairs among ``targets`` whose hidden units can be dropped.

    A consumer stage holding one layer ``c`` directly after a stage of producers whose
    ``out_features`` all equal ``c.in_features`` is a candidate; it is a pair when a
    trial run on ``batches[0]`` with one hidden unit removed gives ``c`` exactly its
    other inputs. ``model`` is restored after each trial.

    Returns
    -------
    list of UnitPair
        In execution order; a layer belongs to at most one pair.
    """
    stages = execution_stages(model, targets, batches)
    pairs: list[UnitPair] = []
    used: set[str] = set()
    for before, after in itertools.pairwise(stages):
        if len(after) != 1 or used.intersection(before):
            continue
        consumer = after[0]
        width = targets[consumer].in_features
        if any(targets[p].out_features != width for p in before):
            continue
        producers = {p: targets[p] for p in before}
        if _drops_cleanly(model, producers, (consumer, targets[consumer]), batches[0]):
            pairs.append(UnitPair(tuple(before), consumer))
            used.update(before)
            used.add(consumer)
    return pairs


def fit_unit_pair(
    producers: dict[str, nn.Linear],
    consumer: nn.Linear,
    C: torch.Tensor,
    units: int,
    *,
    select: str = "greedy",
    damp: float = 0.01,
) -> tuple[dict[str, nn.Linear], nn.Linear]:
    """Keep ``units`` hidden units and refit the consumer on them.

    Parameters
    ----------
    producers : dict of str to nn.Linear
        Layers whose output rows are the hidden units (not modified).
    consumer : nn.Linear
        The layer reading the hidden units, or its dense target
        (:func:`~learned.compress.api.dense_target_layer`); not modified.
    C : torch.Tensor
        ``E[h h^T]`` of the consumer's inputs, damped by ``damp`` as in
        :func:`numlib.calibration.whiten` before use.
    units : int
        Hidden units kept, ``1 <= units <= consumer.in_features``.
    select : {"greedy", "top"}
        Greedy elimination of the consumer's output error, or MoDeGPT's top ridge
        leverage scores of ``C``.

    Returns
    -------
    producers, consumer
        New ``nn.Linear`` layers: the producers' rows ``S`` and the consumer
        ``W_c C[:, S] C[S, S]^{-1}`` with its bias.
    """
    Cd = whiten(C.to(torch.float64), damp=damp).covariance
    W = consumer.weight.detach().to(torch.float64)
    weight = W if select == "greedy" else None
    approx = nystrom(Cd, units, select=select, weight=weight)  # type: ignore[arg-type]
    index = torch.as_tensor(approx.index, device=consumer.weight.device)
    fitted = dense_linear(W @ approx.interpolation, consumer.bias, consumer)
    return {name: _rows(lin, index) for name, lin in producers.items()}, fitted
