"""The optimal-brain-surgeon column sweep shared by SparseGPT and GPTQ.

For a layer with input second moment ``C`` and the layer-wise objective
``||(W - W') X||_F^2`` (Hessian ``H = 2 X^T X``, proportional to ``C``), both methods walk
the columns left to right: the current column is replaced by its compressed value ``q``
(pruned or quantised) and the error ``(w - q) / [H^{-1}]_{jj}`` is spread over the not yet
processed columns through row ``j`` of the upper Cholesky factor ``U`` of ``H^{-1}``
(``H^{-1} = U^T U``). Using ``U`` instead of re-inverting ``H`` after each column is the
trick of GPTQ (Frantar et al. 2023, section 3) that SparseGPT (Frantar & Alistarh 2023,
Algorithm 1) shares; the updates are batched in blocks of ``blocksize`` columns and the
block's accumulated error is applied to the rest at once ("lazy batch updates").

The damped factorisation is :func:`numlib.calibration.whiten` (Cholesky, with the eigh
fallback and clamping for a singular ``C``).
"""

from __future__ import annotations

from typing import Protocol

import torch

from numlib.calibration import whiten

__all__ = ["ColumnRule", "inverse_hessian_factor", "obs_sweep"]


class ColumnRule(Protocol):
    """What a method does to each column during the sweep."""

    def begin_block(self, W1: torch.Tensor, d: torch.Tensor, start: int) -> None:
        """Start a block, given its current columns and ``diag(U)`` over them."""

    def column(self, w: torch.Tensor, j: int, W1: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """Return the compressed column ``j`` (local index in the block) of ``W1``."""


def inverse_hessian_factor(C: torch.Tensor, *, damp: float) -> torch.Tensor:
    """Upper Cholesky factor ``U`` of ``(C + damp mean(diag C) I)^{-1}``, float64.

    Parameters
    ----------
    C : torch.Tensor
        Input second moment ``E[x x^T]`` (float64).
    damp : float
        Relative damping (SparseGPT and GPTQ use 0.01).
    """
    w = whiten(C, damp=damp)
    Finv = w.inverse  # F F^T = C_d  =>  C_d^{-1} = Finv^T Finv
    Hinv = Finv.T @ Finv
    Hinv = (Hinv + Hinv.T) / 2
    return torch.linalg.cholesky(Hinv, upper=True)


def obs_sweep(
    W: torch.Tensor, U: torch.Tensor, rule: ColumnRule, *, blocksize: int = 128
) -> torch.Tensor:
    """Compress ``W`` (``out x in``) column by column with OBS error feedback.

    Parameters
    ----------
    W : torch.Tensor
        Weight, not modified (float64 copy is updated).
    U : torch.Tensor
        :func:`inverse_hessian_factor` of the input second moment.
    rule : ColumnRule
        Chooses each compressed column.
    blocksize : int
        Columns per lazy-update block.

    Returns
    -------
    torch.Tensor
        The compressed weight, float64.
    """
    W = W.detach().to(torch.float64).clone()
    cols = W.shape[1]
    Q = torch.zeros_like(W)
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        W1 = W[:, i1:i2].clone()
        U1 = U[i1:i2, i1:i2]
        d = torch.diagonal(U1)
        err = torch.zeros_like(W1)
        rule.begin_block(W1, d, i1)
        for j in range(i2 - i1):
            w = W1[:, j]
            q = rule.column(w, j, W1, d)
            Q[:, i1 + j] = q
            e = (w - q) / d[j]
            W1[:, j:] -= e[:, None] * U1[j, j:][None, :]
            err[:, j] = e
        W[:, i2:] -= err @ U[i1:i2, i2:]
    return Q
