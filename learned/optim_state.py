"""Optimizer state as named tensors, for safetensors checkpoints (never pickle).

``torch.optim.Optimizer.state_dict()`` holds per-parameter tensors (Adam's moments and
step) under integer parameter indices, and hyper-parameters in ``param_groups``.
:func:`optimizer_tensors` flattens the first into ``"{prefix}{index}.{slot}"`` entries of
a safetensors file; the caller keeps ``param_groups`` (JSON) or rebuilds them from its
configuration; :func:`load_optimizer` puts both back.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import torch

__all__ = ["load_optimizer", "optimizer_tensors"]


def optimizer_tensors(optimizer: torch.optim.Optimizer, prefix: str) -> dict[str, torch.Tensor]:
    """Return every per-parameter state entry as ``{prefix}{index}.{slot}`` -> tensor."""
    out = {}
    for index, slots in optimizer.state_dict()["state"].items():
        for name, value in slots.items():
            out[f"{prefix}{index}.{name}"] = torch.as_tensor(value).detach().contiguous()
    return out


def load_optimizer(
    optimizer: torch.optim.Optimizer,
    tensors: MutableMapping[str, torch.Tensor],
    prefix: str,
    param_groups: list[dict[str, Any]] | None = None,
) -> None:
    """Restore the state :func:`optimizer_tensors` wrote, popping its entries from ``tensors``.

    ``param_groups`` defaults to the optimizer's own (its constructor's settings).

    Raises
    ------
    ValueError
        If ``optimizer.load_state_dict`` rejects the state (other parameters).
    """
    slots: dict[int, dict[str, torch.Tensor]] = {}
    for key in [k for k in tensors if k.startswith(prefix)]:
        index, name = key[len(prefix) :].split(".", 1)
        slots.setdefault(int(index), {})[name] = tensors.pop(key)
    groups = optimizer.state_dict()["param_groups"] if param_groups is None else param_groups
    optimizer.load_state_dict({"state": slots, "param_groups": groups})
