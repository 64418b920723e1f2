"""Row importance of linear layers from the empirical Fisher information (FWSVD).

Fisher-weighted SVD (Hsu et al. 2022) truncates ``diag(w) W`` instead of ``W``, where
``w_i^2 = sum_j F_ij`` sums the Fisher information of the weights of output row ``i``
over the row. The empirical Fisher information is the sum over samples of squared
*per-sample* gradients of the task loss, ``F_ij = sum_n (dL_n / dW_ij)^2``, so rows
whose weights the loss is sensitive to are kept more accurately. Unlike
activation-aware (whitened) methods this needs a loss: labels, or any objective the
user cares about.

Per-sample gradients are not formed by differentiating each sample. For ``y = W x``
the gradient of sample ``n`` is ``sum_t delta_nt x_nt^T`` (``t`` runs over its tokens,
``delta = dL/dy``), so one backward pass of the batch loss gives every ``delta`` and the
row sums follow from the layer's inputs. The squared gradient of the *batch* loss would
not do: at a trained model the per-sample gradients cancel in their mean.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from learned.compress.conv import CONVOLUTIONS, output_rows, patches

__all__ = ["LossFn", "fisher_row_weights"]

LossFn = Callable[[nn.Module, Any], torch.Tensor]

# Per-sample gradients are formed in chunks of at most this many entries.
_CHUNK_ENTRIES = 1 << 24


def fisher_row_weights(
    model: nn.Module,
    targets: dict[str, nn.Linear],
    batches: Sequence[Any],
    loss_fn: LossFn,
    *,
    floor: float = 1e-6,
) -> dict[str, torch.Tensor]:
    """``w_i = sqrt(sum_j F_ij)`` per output row of every target, ``F`` the empirical Fisher.

    ``F_ij = sum_n (dL_n / dW_ij)^2`` over the samples of the calibration batches
    (the leading dimension of each target's input; further leading dimensions, such
    as tokens, belong to their sample), with ``loss_fn(model, batch)`` the loss of a
    batch as a sum or mean over its samples (a mean scales every ``F`` alike, which
    does not change the weighting). Samples must not interact inside the model (eval
    mode: no batch statistics). One backward pass per batch, through
    :func:`torch.autograd.grad`, so no ``.grad`` of the model is touched; modes and
    ``requires_grad`` flags are restored. Rows with less than ``floor`` times the
    layer's mean Fisher information (rows the loss does not see) are raised to it, so
    that the weights stay positive as :func:`numlib.lowrank.weighted_svd` requires.

    Parameters
    ----------
    model : nn.Module
        The model whose loss is differentiated (not modified).
    targets : dict of str to nn.Module
        Layers of ``model`` by name: ``nn.Linear``, or convolutions
        (:mod:`learned.compress.conv`), whose samples are summed over positions.
    batches : sequence
        Calibration batches, each passed to ``loss_fn``.
    loss_fn : callable
        ``loss_fn(model, batch) -> scalar tensor``.
    floor : float
        Relative lower bound of the Fisher information of a row.

    Returns
    -------
    dict of str to torch.Tensor
        Float64 row weights of shape ``(out_features,)`` by target name.

    Raises
    ------
    ValueError
        If ``loss_fn`` does not return a finite scalar, or some target is never used
        in computing the loss.

    References
    ----------
    .. [1] Y.-C. Hsu, T. Hua, S. Chang, Q. Lou, Y. Shen, H. Jin, "Language model
       compression with weighted low-rank factorization", ICLR 2022.
    """
    fisher = {
        name: torch.zeros(lin.weight.shape[0], dtype=torch.float64) for name, lin in targets.items()
    }
    calls: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {name: [] for name in targets}

    def record(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
            calls[name].append((inputs[0].detach(), output))

        return hook

    was_training = model.training
    requires_grad = {name: lin.weight.requires_grad for name, lin in targets.items()}
    model.eval()
    handles = [lin.register_forward_hook(record(name)) for name, lin in targets.items()]
    try:
        for lin in targets.values():  # so that a frozen model's outputs carry gradients
            lin.weight.requires_grad_(True)
        for batch in batches:
            for recorded in calls.values():
                recorded.clear()
            with torch.enable_grad():
                loss = loss_fn(model, batch)
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise ValueError("loss_fn(model, batch) must return a scalar tensor")
            if not bool(torch.isfinite(loss)):
                raise ValueError(f"loss_fn returned a non-finite loss ({float(loss)})")
            for name, recorded in calls.items():
                if not recorded or not any(output.requires_grad for _, output in recorded):
                    raise ValueError(f"the loss does not depend on the outputs of {name!r}")
            pairs = [(name, x, y) for name, recorded in calls.items() for x, y in recorded]
            deltas = torch.autograd.grad(loss, [y for _, _, y in pairs], allow_unused=True)
            for (name, x, _), delta in zip(pairs, deltas, strict=True):
                if delta is not None:
                    fisher[name] += _per_sample_row_sums(targets[name], x, delta)
    finally:
        for handle in handles:
            handle.remove()
        for name, lin in targets.items():
            lin.weight.requires_grad_(requires_grad[name])
        model.train(was_training)
    out = {}
    for name, f in fisher.items():
        if not bool((f > 0).any()):
            raise ValueError(f"the loss does not depend on the outputs of {name!r}")
        lowest = floor * float(f.mean())
        out[name] = torch.sqrt(torch.clamp(f, min=lowest))
    return out


def _per_sample_row_sums(layer: nn.Module, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """``sum_n sum_j (sum_t delta_nti x_ntj)^2`` for each row ``i`` (float64).

    ``t`` runs over a sample's tokens, or a convolution's output positions (``x`` its
    patches there).
    """
    x = x.to(torch.float64)
    delta = delta.detach().to(torch.float64)
    if isinstance(layer, CONVOLUTIONS):
        x, delta = patches(layer, x), output_rows(layer, delta)
    samples = x.shape[0] if x.ndim > 1 else 1
    x = x.reshape(samples, -1, x.shape[-1])
    delta = delta.reshape(samples, -1, delta.shape[-1])
    chunk = max(1, _CHUNK_ENTRIES // (x.shape[-1] * delta.shape[-1]))
    total = torch.zeros(delta.shape[-1], dtype=torch.float64)
    for start in range(0, samples, chunk):
        grads = torch.einsum("nto,nti->noi", delta[start : start + chunk], x[start : start + chunk])
        total += grads.pow(2).sum(dim=(0, 2)).cpu()
    return total
