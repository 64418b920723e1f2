"""Per-layer ranks from measured end-to-end sensitivity, under one parameter budget.

A layer's truncation error says little about what it does to the model's output:
on all-MiniLM-L6-v2 the greedy allocation by relative whitened truncation error
(:func:`learned.compress.lowrank.allocate_ranks`) loses to the same ratio everywhere.
ASVD's sensitivity-based truncation rank search (Yuan et al. 2023) measures instead:
each layer alone is replaced by its rank-``k`` factors, for a grid of ``k``, and the
change of the model's output on a few calibration batches is recorded. The ranks
then minimise the sum of those changes subject to the budget, a multiple-choice
knapsack solved exactly by dynamic programming (:func:`choose_options`). Keeping a
layer dense is one of its options (no change, ``m n`` parameters): the budget goes
where truncation hurts least.

The change is the relative squared error ``sum ||f_l,k(x) - f(x)||^2 / sum ||f(x)||^2``
of the model's first output tensor (e.g. the last hidden state of a transformer),
which is ``2 (1 - cos)`` for errors that leave the norms unchanged. Summing it over
layers treats errors as independent; the measured cosine on held-out text is the check
(README).

References
----------
.. [1] Z. Yuan, Y. Shang, Y. Song, Q. Wu, Y. Yan, G. Sun, "ASVD: Activation-aware
   singular value decomposition for compressing large language models", 2023,
   arXiv:2312.05821 (section 3.3, sensitivity-based truncation rank searching).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from learned.compress.calibrate import call_model, set_module
from learned.compress.lowrank import max_useful_rank

__all__ = [
    "LayerOptions",
    "choose_options",
    "interpolate_losses",
    "measure_sensitivity",
    "output_tensor",
    "rank_grid",
]

# Ranks measured per layer; the others between them are interpolated (log-linearly).
GRID_POINTS = 8
# The knapsack's budget is cut into at most this many bins (costs rounded up).
MAX_BINS = 50_000


@dataclass(frozen=True)
class LayerOptions:
    """What one layer may become.

    Rank ``ranks[i]`` stores ``costs[i]`` numbers and changes the model's output by
    ``losses[i]``; ``ranks[i] = 0`` stands for keeping the layer dense.
    """

    ranks: np.ndarray
    costs: np.ndarray
    losses: np.ndarray


def output_tensor(output: Any) -> torch.Tensor:
    """Return the first tensor of a model's output (tensor, tuple, dict or ``ModelOutput``).

    Raises
    ------
    TypeError
        If there is none.
    """
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping):
        output = list(output.values())
    for value in output if isinstance(output, tuple | list) else ():
        if isinstance(value, torch.Tensor):
            return value
    raise TypeError(
        f"the model's output ({type(output).__name__}) holds no tensor to measure the "
        "sensitivity of"
    )


def rank_grid(shape: tuple[int, int], multiple_of: int) -> tuple[np.ndarray, np.ndarray]:
    """All candidate ranks of an ``m x n`` layer, and the ones to measure.

    Candidates are the multiples of ``multiple_of`` that store fewer numbers than the
    dense layer (:func:`~learned.compress.lowrank.max_useful_rank`); at most
    :data:`GRID_POINTS` of them, evenly spread and including both ends, are measured.
    """
    top = max_useful_rank(shape, multiple_of)
    candidates = np.arange(multiple_of, top + 1, multiple_of)
    picks = np.unique(np.round(np.linspace(0, len(candidates) - 1, GRID_POINTS)).astype(int))
    return candidates, candidates[picks]


def measure_sensitivity(
    model: nn.Module,
    layers: Mapping[str, Callable[[int], nn.Module]],
    ranks: Mapping[str, Sequence[int]],
    batches: Sequence[Any],
) -> dict[str, np.ndarray]:
    """Relative squared change of ``model``'s output with one layer truncated at a time.

    Parameters
    ----------
    model : nn.Module
        Evaluated as it is (its layers are swapped in turn and always put back).
    layers : mapping of str to callable
        ``layers[name](k)`` returns the module that replaces ``name`` at rank ``k``.
    ranks : mapping of str to sequence of int
        The ranks to measure per layer.
    batches : sequence
        Model inputs; the output is :func:`output_tensor` of each call.

    Returns
    -------
    dict of str to ndarray
        ``sum_b ||f_k(x_b) - f(x_b)||^2 / sum_b ||f(x_b)||^2`` for each rank.
    """
    with torch.no_grad():
        reference = [output_tensor(call_model(model, batch)).detach() for batch in batches]
        scale = sum(float(r.double().square().sum()) for r in reference) or 1.0
        out: dict[str, np.ndarray] = {}
        for name, build in layers.items():
            original = model.get_submodule(name)
            losses = []
            try:
                for k in ranks[name]:
                    set_module(model, name, build(int(k)))
                    change = sum(
                        float((output_tensor(call_model(model, batch)) - r).double().square().sum())
                        for batch, r in zip(batches, reference, strict=True)
                    )
                    losses.append(change / scale)
            finally:
                set_module(model, name, original)
            out[name] = np.asarray(losses)
    return out


def interpolate_losses(
    candidates: np.ndarray, measured: np.ndarray, losses: np.ndarray
) -> np.ndarray:
    """Return the losses at every candidate rank, log-linear between the measured ones."""
    tiny = np.finfo(float).tiny
    return np.exp(np.interp(candidates, measured, np.log(np.maximum(losses, tiny))))


def choose_options(options: Mapping[str, LayerOptions], budget: float) -> dict[str, int]:
    """One option per layer minimising the summed loss with summed cost ``<= budget``.

    Exact dynamic programming over the budget in bins of the greatest common divisor
    of the costs, or, where that gives more than :data:`MAX_BINS` bins, of
    ``budget / MAX_BINS`` with every cost rounded up (so the budget always holds).

    Returns
    -------
    dict of str to int
        The chosen rank per layer (``0``: keep dense).

    Raises
    ------
    ValueError
        If even the cheapest options exceed the budget.

    Examples
    --------
    A layer whose truncation hurts keeps its rank:

    >>> opts = {
    ...     "robust": LayerOptions(np.array([1, 2]), np.array([1, 2]), np.array([0.1, 0.05])),
    ...     "fragile": LayerOptions(np.array([1, 2]), np.array([1, 2]), np.array([0.9, 0.1])),
    ... }
    >>> choose_options(opts, 3)
    {'robust': 1, 'fragile': 2}
    """
    cheapest = sum(int(o.costs.min()) for o in options.values())
    if cheapest > budget:
        raise ValueError(
            f"the budget of {budget:.0f} parameters is below the {cheapest} that the "
            "smallest ranks need"
        )
    costs = {name: o.costs.astype(np.int64) for name, o in options.items()}
    unit = math.gcd(*(int(c) for cs in costs.values() for c in cs))
    if budget / unit > MAX_BINS:
        unit = math.ceil(budget / MAX_BINS)
    bins = int(budget // unit)
    best = np.full(bins + 1, np.inf)
    best[0] = 0.0
    picks = []
    for name, o in options.items():
        steps = -(-costs[name] // unit)  # ceil: rounding never breaks the budget
        new = np.full(bins + 1, np.inf)
        pick = np.full(bins + 1, -1)
        for i, (step, loss) in enumerate(zip(steps, o.losses, strict=True)):
            if step > bins:
                continue
            candidate = np.full(bins + 1, np.inf)
            candidate[step:] = best[: bins + 1 - step] + loss
            better = candidate < new
            new[better], pick[better] = candidate[better], i
        best = new
        picks.append((name, steps, pick))
    if not np.isfinite(best).any():
        raise ValueError(
            f"the budget of {budget:.0f} parameters is below what the smallest ranks need "
            f"once costs are rounded up to bins of {unit}"
        )
    spent = int(np.argmin(best))
    chosen: dict[str, int] = {}
    for name, steps, pick in reversed(picks):
        i = int(pick[spent])
        chosen[name] = int(options[name].ranks[i])
        spent -= int(steps[i])
    return {name: chosen[name] for name in options}
