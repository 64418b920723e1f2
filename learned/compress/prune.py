"""Pruning masks and weights: magnitude, Wanda, SparseGPT; unstructured, N:M and block.

Each function takes a weight ``W`` (``out x in``, ``y = W x``) and returns a new pruned
weight (zeros where pruned); :mod:`learned.compress.api` turns it into a
:class:`~learned.compress.layers.SparseLinear` or
:class:`~learned.compress.layers.NMSparseLinear`. Inputs are never modified.

- magnitude: smallest ``|W_ij|`` layer-wise (one-shot), with
  :func:`gradual_sparsity` the cubic schedule of Zhu & Gupta (2018) for pruning during
  training;
- Wanda (Sun et al., ICLR 2024): score ``|W_ij| ||X_j||_2``, compared within each output
  row (or each N:M group), no weight update;
- SparseGPT (Frantar & Alistarh, ICML 2023): adaptive mask per block of 128 columns by
  ``w^2 / [H^{-1}]_{jj}^2`` and the OBS update of the remaining weights
  (:func:`learned.compress.obs.obs_sweep`);
- block sparsity: whole ``bo x bi`` tiles by Frobenius norm;
- FARMS-guided layer ratios (:func:`farms_ratios`): AlphaPruning-style allocation
  (Lu et al., NeurIPS 2024) from heavy-tail exponents measured with FARMS.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from learned.compress.obs import inverse_hessian_factor, obs_sweep
from numlib.spectra import heavy_tail_alpha

__all__ = [
    "block_prune",
    "check_sparsity",
    "farms_ratios",
    "gradual_sparsity",
    "magnitude_prune",
    "nm_mask",
    "sparsegpt_prune",
    "wanda_prune",
]


def check_sparsity(sparsity: float, name: str = "sparsity") -> float:
    """Return ``sparsity`` as a float in the open interval ``(0, 1)``, or raise."""
    if isinstance(sparsity, bool) or not isinstance(sparsity, int | float):
        raise TypeError(f"{name} must be a real number, got {type(sparsity).__name__}")
    if not 0.0 < float(sparsity) < 1.0:
        raise ValueError(f"{name} must lie in (0, 1), got {sparsity}")
    return float(sparsity)


def check_pattern(pattern: tuple[int, int], in_features: int) -> tuple[int, int]:
    """Validate an N:M pattern (keep ``n`` of every ``m``) against the input width."""
    n, m = (int(v) for v in pattern)
    if not 0 < n < m:
        raise ValueError(f"pattern must be N:M with 0 < N < M, got {n}:{m}")
    if in_features % m:
        raise ValueError(f"pattern {n}:{m}: M must divide in_features = {in_features}")
    return n, m


def nm_mask(score: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Keep-mask with exactly the ``n`` largest scores in each group of ``m`` inputs."""
    out_f, in_f = score.shape
    groups = score.reshape(out_f, in_f // m, m)
    keep = torch.topk(groups, n, dim=-1).indices
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, keep, True)
    return mask.reshape(out_f, in_f)


def _row_mask(score: torch.Tensor, sparsity: float) -> torch.Tensor:
    k = round(score.shape[1] * sparsity)
    drop = torch.topk(score, k, dim=1, largest=False).indices
    return torch.ones_like(score, dtype=torch.bool).scatter_(1, drop, False)


def _layer_mask(score: torch.Tensor, sparsity: float) -> torch.Tensor:
    k = round(score.numel() * sparsity)
    drop = torch.topk(score.flatten(), k, largest=False).indices
    mask = torch.ones(score.numel(), dtype=torch.bool, device=score.device)
    mask[drop] = False
    return mask.reshape(score.shape)


def magnitude_prune(
    W: torch.Tensor, sparsity: float | None = None, *, pattern: tuple[int, int] | None = None
) -> torch.Tensor:
    """Zero the smallest ``|W_ij|``: a fraction ``sparsity`` of the layer, or N:M.

    Examples
    --------
    >>> magnitude_prune(torch.tensor([[1.0, -3.0, 0.5, 2.0]]), 0.5)
    tensor([[ 0., -3.,  0.,  2.]])
    """
    score = W.abs()
    if pattern is not None:
        n, m = check_pattern(pattern, W.shape[1])
        return W * nm_mask(score, n, m)
    return W * _layer_mask(score, check_sparsity(sparsity))  # type: ignore[arg-type]


def wanda_prune(
    W: torch.Tensor,
    channel_norms: torch.Tensor,
    sparsity: float | None = None,
    *,
    pattern: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Wanda: drop the lowest ``|W_ij| ||X_j||`` per output row (or per N:M group).

    Parameters
    ----------
    W : torch.Tensor
        ``out x in``.
    channel_norms : torch.Tensor
        ``||X_j||_2`` over the calibration tokens (``CalibrationStats.channel_norms``).
    sparsity, pattern
        A fraction in ``(0, 1)`` per row, or ``(n, m)``.
    """
    score = W.abs().to(torch.float64) * channel_norms.to(torch.float64)[None, :]
    if pattern is not None:
        n, m = check_pattern(pattern, W.shape[1])
        return W * nm_mask(score, n, m)
    return W * _row_mask(score, check_sparsity(sparsity))  # type: ignore[arg-type]


class _SparseGPTRule:
    """Adaptive masks: per block (unstructured) or per group of ``m`` columns (N:M)."""

    def __init__(self, sparsity: float | None, pattern: tuple[int, int] | None) -> None:
        self.sparsity = sparsity
        self.pattern = pattern
        self.mask: torch.Tensor | None = None

    def begin_block(self, W1: torch.Tensor, d: torch.Tensor, start: int) -> None:
        if self.pattern is None:
            score = W1**2 / d[None, :] ** 2
            self.mask = ~_layer_mask(score, self.sparsity)  # type: ignore[arg-type]
        else:
            self.mask = torch.zeros_like(W1, dtype=torch.bool)

    def column(self, w: torch.Tensor, j: int, W1: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        assert self.mask is not None
        if self.pattern is not None:
            n, m = self.pattern
            if j % m == 0:
                # Choose the group's pruned positions from the OBS-updated weights.
                score = W1[:, j : j + m] ** 2 / d[None, j : j + m] ** 2
                drop = torch.topk(score, m - n, dim=1, largest=False).indices
                self.mask[:, j : j + m].scatter_(1, drop, True)
        return torch.where(self.mask[:, j], torch.zeros_like(w), w)


def sparsegpt_prune(
    W: torch.Tensor,
    C: torch.Tensor,
    sparsity: float | None = None,
    *,
    pattern: tuple[int, int] | None = None,
    blocksize: int = 128,
    damp: float = 0.01,
) -> torch.Tensor:
    """SparseGPT: OBS pruning with adaptive masks and lazy blockwise updates.

    Minimises ``||(W - W') X||_F^2`` approximately: masks are chosen per block of
    ``blocksize`` columns by the OBS saliency ``w^2 / [H^{-1}]_{jj}^2`` (for N:M, per group
    of ``m`` columns), and every pruned weight's error is compensated on the remaining
    columns through the Cholesky factor of the damped inverse Hessian
    (Frantar & Alistarh 2023, Algorithm 1).

    Parameters
    ----------
    W : torch.Tensor
        ``out x in``, not modified.
    C : torch.Tensor
        ``E[x x^T]`` of the layer input (``in x in``).
    sparsity, pattern
        Fraction in ``(0, 1)``, or ``(n, m)``.
    blocksize : int
        Mask and lazy-update block (the paper's 128).
    damp : float
        Relative Hessian damping.

    Returns
    -------
    torch.Tensor
        Pruned and updated weight, in ``W``'s dtype.
    """
    if pattern is not None:
        pattern = check_pattern(pattern, W.shape[1])
        if blocksize % pattern[1]:
            raise ValueError(f"blocksize {blocksize} must be a multiple of M = {pattern[1]}")
    else:
        sparsity = check_sparsity(sparsity)  # type: ignore[arg-type]
    U = inverse_hessian_factor(C.to(torch.float64), damp=damp)
    out = obs_sweep(W, U, _SparseGPTRule(sparsity, pattern), blocksize=blocksize)
    return out.to(W.dtype)


def block_prune(W: torch.Tensor, sparsity: float, block: tuple[int, int]) -> torch.Tensor:
    """Zero whole ``bo x bi`` tiles of smallest Frobenius norm (a fraction ``sparsity``).

    Examples
    --------
    >>> W = torch.tensor([[1.0, 1.0, 0.1, 0.1], [1.0, 1.0, 0.1, 0.1]])
    >>> block_prune(W, 0.5, (2, 2))
    tensor([[1., 1., 0., 0.],
            [1., 1., 0., 0.]])
    """
    sparsity = check_sparsity(sparsity)
    bo, bi = (int(b) for b in block)
    out_f, in_f = W.shape
    if bo < 1 or bi < 1 or out_f % bo or in_f % bi:
        raise ValueError(f"block {(bo, bi)} must divide the weight shape {(out_f, in_f)}")
    tiles = W.reshape(out_f // bo, bo, in_f // bi, bi)
    norms = tiles.pow(2).sum(dim=(1, 3))
    keep = _layer_mask(norms, sparsity)
    return (tiles * keep[:, None, :, None]).reshape(out_f, in_f)


def gradual_sparsity(
    step: int, *, final: float, begin: int, end: int, initial: float = 0.0
) -> float:
    """Cubic gradual-pruning schedule (Zhu & Gupta 2018).

    ``s_t = s_f + (s_i - s_f) (1 - (t - t_0) / (t_1 - t_0))^3`` for ``t_0 <= t <= t_1``,
    ``s_i`` before and ``s_f`` after: pruning fast early, when many weights are redundant,
    and slowly near the end. Apply :func:`magnitude_prune` with ``s_t`` every few steps.

    Examples
    --------
    >>> [round(gradual_sparsity(t, final=0.8, begin=0, end=10), 3) for t in (0, 5, 10, 20)]
    [0.0, 0.7, 0.8, 0.8]
    """
    final = check_sparsity(final, "final")
    if not 0.0 <= initial <= final:
        raise ValueError(f"initial must lie in [0, final], got {initial}")
    if not 0 <= begin < end:
        raise ValueError(f"need 0 <= begin < end, got begin={begin}, end={end}")
    if step <= begin:
        return float(initial)
    if step >= end:
        return final
    frac = (step - begin) / (end - begin)
    return final + (initial - final) * (1.0 - frac) ** 3


def farms_ratios(
    weights: Sequence[torch.Tensor],
    sparsity: float,
    *,
    spread: float = 0.1,
    rng: int | np.random.Generator | None = 0,
) -> list[float]:
    """Per-layer sparsities from heavy-tail exponents measured with FARMS (AlphaPruning).

    Each layer's ESD tail exponent ``alpha`` (:func:`numlib.spectra.heavy_tail_alpha` with
    ``farms=True``) measures how well trained it is: small ``alpha`` (heavy tail) means
    more learned structure, so less pruning. Ratios are an affine map of ``alpha`` onto
    ``[sparsity - spread, sparsity + spread]``, shifted so that the parameter-weighted
    mean is exactly ``sparsity``, then clipped to ``[0.01, 0.99]``. Layers whose fit fails
    are given the mean alpha of the others (and all layers ``sparsity`` if every fit fails).
    """
    sparsity = check_sparsity(sparsity)
    if not 0 <= spread < min(sparsity, 1 - sparsity):
        raise ValueError(f"spread must lie in [0, min(s, 1 - s)), got {spread}")
    alphas = []
    for W in weights:
        fit = heavy_tail_alpha(W.detach().to(torch.float64).cpu().numpy(), farms=True, rng=rng)
        alphas.append(fit.alpha if fit.ok and math.isfinite(fit.alpha) else math.nan)
    a = np.array(alphas)
    if np.all(np.isnan(a)) or np.nanmax(a) == np.nanmin(a):
        return [sparsity] * len(weights)
    a = np.where(np.isnan(a), np.nanmean(a), a)
    size = np.array([W.numel() for W in weights], dtype=np.float64)
    r = (sparsity - spread) + 2 * spread * (a - a.min()) / (a.max() - a.min())
    r += sparsity - float(np.sum(r * size) / size.sum())
    return [float(v) for v in np.clip(r, 0.01, 0.99)]
