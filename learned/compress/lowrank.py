"""Low-rank layers from :mod:`numlib.lowrank`, with ranks from a global parameter budget.

``svd`` is the plain truncated SVD (:func:`numlib.lowrank.weighted_svd` without weights),
``whitened`` the activation-aware SVD of ``W C^{1/2}`` (SVD-LLM, MoDeGPT type III;
:func:`numlib.lowrank.whitened_svd`), which minimises the expected output error
``E||(W - X) x||^2`` over rank-``k`` ``X`` for the calibration inputs.

:func:`allocate_ranks` spreads one parameter budget over many layers (LoRD-style global
allocation): ranks grow in steps of ``multiple_of`` (16 by default, so that the two thin
GEMMs block well and the layer is really faster), always giving the next step to the
layer whose *relative* truncation error ``sum_{i>k} s_i^2 / sum s_i^2`` drops most per
parameter spent. With whitened spectra the error is the output error, so layers whose
outputs are sensitive keep more rank.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping

import numpy as np
import torch

from learned.compress.layers import LowRankLinear
from numlib.lowrank import LowRankFactors, weighted_svd, whitened_svd

__all__ = ["allocate_ranks", "factorize", "lowrank_linear", "max_useful_rank"]


def max_useful_rank(shape: tuple[int, int], multiple_of: int = 16) -> int:
    """Largest multiple of ``multiple_of`` whose factors store fewer numbers than ``W``."""
    m, n = shape
    k = (m * n - 1) // (m + n)
    return max(multiple_of, k // multiple_of * multiple_of)


def factorize(
    W: torch.Tensor,
    kind: str,
    rank: int | None = None,
    C: torch.Tensor | None = None,
    *,
    energy: float | None = None,
    multiple_of: int = 1,
    row_weights: torch.Tensor | None = None,
    damp: float = 0.01,
) -> LowRankFactors:
    """Low-rank factors of ``W`` by ``kind`` in ``{"svd", "whitened", "fisher"}`` (float64).

    The rank is ``rank``, or with ``energy`` the smallest multiple of ``multiple_of``
    keeping that fraction of the objective's squared singular values
    (:func:`numlib.lowrank.choose_rank`). ``"fisher"`` weights the output rows by
    ``row_weights`` (:func:`learned.compress.fisher.fisher_row_weights`).

    Raises
    ------
    ValueError
        For an unknown ``kind``, or a missing ``C`` (``"whitened"``) or ``row_weights``
        (``"fisher"``).
    """
    W64 = W.detach().to(torch.float64)
    size = {"rank": rank, "energy": energy, "multiple_of": multiple_of}
    if kind == "svd":
        return weighted_svd(W64, **size)
    if kind == "fisher":
        if row_weights is None:
            raise ValueError("kind='fisher' needs the Fisher row weights (a loss_fn)")
        return weighted_svd(W64, row_weights=row_weights.to(torch.float64), **size)
    if kind == "whitened":
        if C is None:
            raise ValueError("kind='whitened' needs the input second moment C (calibration)")
        return whitened_svd(W64, C.to(torch.float64), damp=damp, **size)
    raise ValueError(f"kind must be 'svd', 'whitened' or 'fisher', got {kind!r}")


def lowrank_linear(
    factors: LowRankFactors, bias: torch.Tensor | None, *, dtype: torch.dtype
) -> LowRankLinear:
    """Return a :class:`LowRankLinear` holding ``factors`` cast to ``dtype`` (the weight's)."""
    return LowRankLinear.from_factors(factors.left, factors.right, bias, dtype=dtype)


def allocate_ranks(
    spectra: Mapping[str, np.ndarray | torch.Tensor],
    shapes: Mapping[str, tuple[int, int]],
    param_ratio: float,
    *,
    multiple_of: int = 16,
) -> dict[str, int]:
    """Ranks per layer with ``sum k_l (m_l + n_l) <= param_ratio * sum m_l n_l``.

    Greedy on the relative truncation error per parameter, in steps of ``multiple_of``
    (exactly optimal for convex per-layer error curves, which singular-value tails are).
    Every layer gets at least ``multiple_of`` and at most :func:`max_useful_rank`.

    Raises
    ------
    ValueError
        For ``param_ratio`` outside ``(0, 1)`` or a budget below the minimum ranks.

    Examples
    --------
    A flat spectrum needs rank, a fast-decaying one does not:

    >>> s = {"flat": np.ones(64), "decaying": 0.5 ** np.arange(64.0)}
    >>> allocate_ranks(s, {"flat": (64, 64), "decaying": (64, 64)}, 0.5, multiple_of=8)
    {'flat': 24, 'decaying': 8}
    """
    if not 0.0 < param_ratio < 1.0:
        raise ValueError(f"param_ratio must lie in (0, 1), got {param_ratio}")
    budget = param_ratio * sum(m * n for m, n in shapes.values())
    ranks: dict[str, int] = {}
    energy: dict[str, np.ndarray] = {}
    spent = 0
    for name, s in spectra.items():
        s2 = np.asarray(s.cpu() if isinstance(s, torch.Tensor) else s, dtype=np.float64) ** 2
        energy[name] = s2 / max(s2.sum(), np.finfo(float).tiny)
        ranks[name] = min(multiple_of, len(s2))
        spent += ranks[name] * sum(shapes[name])
    if spent > budget:
        raise ValueError(
            f"param_ratio {param_ratio} is below the minimum rank {multiple_of} per layer"
        )
    heap: list[tuple[float, str]] = []

    def push(name: str) -> None:
        k = ranks[name]
        if k + multiple_of <= min(max_useful_rank(shapes[name], multiple_of), len(energy[name])):
            gain = energy[name][k : k + multiple_of].sum() / (multiple_of * sum(shapes[name]))
            heapq.heappush(heap, (-gain, name))

    for name in ranks:
        push(name)
    while heap:
        _, name = heapq.heappop(heap)
        cost = multiple_of * sum(shapes[name])
        if spent + cost > budget:
            continue
        ranks[name] += multiple_of
        spent += cost
        push(name)
    return ranks
