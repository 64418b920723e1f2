"""Calibration of layer inputs: forward hooks collecting :class:`CalibrationStats`.

Two modes, both on any ``nn.Module``:

:func:`collect_stats`
    One pass over the calibration data through the model as it is; every targeted layer
    gets the statistics of its inputs (one-shot calibration from the dense model).
:func:`execution_stages`
    The targeted layers grouped into *stages* in execution order: layers that read the
    same input tensor (q, k, v of an attention block) form one stage. Sequential
    compression (SparseGPT, GPTQ, SVD-LLM's "sequential" variant) compresses stage by
    stage, each time recalibrating on the *already-compressed* model, so that every layer
    sees (and compensates for) the error of the layers before it. A stage's pass stops as
    soon as its layers have run (:class:`_StageDone`), so the cost is about half a forward
    per stage.
:func:`collect_paired_stats`
    A stage's statistics on the compressed model plus the cross moment ``E[x_d x_c^T]``
    between the inputs ``x_d`` the *dense* model gives the same layers and the inputs
    ``x_c`` of the compressed one, batch by batch. With it a layer can fit the dense
    model's outputs ``W x_d`` rather than its own ``W x_c`` (asymmetric calibration,
    as in GPTAQ: Li et al., "GPTAQ: Efficient Finetuning-Free Quantization for
    Asymmetric Calibration", ICML 2025), so upstream error is corrected, not copied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from learned.compress.conv import CONVOLUTIONS, patch_rows
from numlib.calibration import CalibrationStats

__all__ = [
    "call_model",
    "collect_paired_stats",
    "collect_stats",
    "execution_stages",
    "run_batches",
    "set_module",
    "stage_inputs",
]


class _StageDone(Exception):
    """Raised from a hook once every layer of a stage has seen its input (early exit)."""


def _as_batches(calibration: Iterable[Any] | None) -> list[Any]:
    if calibration is None:
        raise ValueError("calibration is required for this recipe (batches of model inputs)")
    batches = list(calibration)
    if not batches:
        raise ValueError("calibration is empty: give at least one batch of model inputs")
    return batches


def call_model(model: nn.Module, batch: Any) -> Any:
    """Return ``model``'s output on one batch (a tensor, a tuple of args or a dict of kwargs)."""
    if isinstance(batch, dict):
        return model(**batch)
    if isinstance(batch, tuple | list):
        return model(*batch)
    return model(batch)


def run_batches(model: nn.Module, batches: Sequence[Any]) -> None:
    """Call ``model`` on every batch (tensor, tuple of args or dict of kwargs), no grad."""
    with torch.no_grad():
        for batch in batches:
            try:
                call_model(model, batch)
            except _StageDone:
                pass


def set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Replace the submodule ``name`` (dotted path) of ``model`` by ``new``."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def _register(
    modules: dict[str, nn.Module],
    hook: Callable[[str, torch.Tensor], None],
    *,
    rows: bool = True,
) -> list[Any]:
    """Call ``hook(name, input)`` before each module runs.

    With ``rows``, a convolution's input is passed as its patches
    (:func:`~learned.compress.conv.patch_rows`), the rows its kernel matrix multiplies.
    """
    handles = []
    for name, module in modules.items():

        def pre(mod: nn.Module, args: tuple[Any, ...], name: str = name) -> None:
            x = args[0]
            hook(name, patch_rows(mod, x) if rows and isinstance(mod, CONVOLUTIONS) else x)

        handles.append(module.register_forward_pre_hook(pre))
    return handles


def collect_stats(
    model: nn.Module,
    modules: dict[str, nn.Module],
    calibration: Iterable[Any] | None,
    *,
    covariance: bool = True,
    stop_early: bool = False,
) -> dict[str, CalibrationStats]:
    """Run the calibration batches and return the input statistics of each module.

    Parameters
    ----------
    model : nn.Module
        Called on each batch (a tensor, a tuple of positional arguments, or a dict of
        keyword arguments).
    modules : dict of str to nn.Module
        The layers to observe, by name.
    calibration : iterable of batches
        Non-empty.
    covariance : bool
        Keep full second moments (``False``: diagonals only, enough for Wanda).
    stop_early : bool
        Abort each forward pass once every observed module has run once in it (for
        stages early in the network).

    Returns
    -------
    dict of str to CalibrationStats
        Inputs flattened over batch and sequence axes, accumulated in float64.

    Raises
    ------
    ValueError
        For empty calibration, or a module that never ran.
    """
    batches = _as_batches(calibration)
    stats = {name: CalibrationStats(covariance=covariance) for name in modules}
    seen: set[str] = set()

    def hook(name: str, x: torch.Tensor) -> None:
        stats[name].update(x.detach())
        seen.add(name)
        if stop_early and len(seen) == len(modules):
            raise _StageDone

    handles = _register(modules, hook)
    try:
        for batch in batches:
            seen.clear()
            run_batches(model, [batch])
    finally:
        for h in handles:
            h.remove()
    missing = [name for name, s in stats.items() if s.count == 0]
    if missing:
        raise ValueError(f"modules never ran on the calibration data: {missing}")
    return stats


def stage_inputs(model: nn.Module, modules: dict[str, nn.Module], batch: Any) -> dict[str, Any]:
    """Return the float64 ``tokens x features`` inputs of ``modules`` on one batch."""
    got: dict[str, torch.Tensor] = {}

    def hook(name: str, x: torch.Tensor) -> None:
        got[name] = x.detach().reshape(-1, x.shape[-1]).to(torch.float64)
        if len(got) == len(modules):
            raise _StageDone

    handles = _register(modules, hook)
    try:
        run_batches(model, [batch])
    finally:
        for h in handles:
            h.remove()
    missing = sorted(set(modules) - set(got))
    if missing:
        raise ValueError(f"modules never ran on the calibration data: {missing}")
    return got


def collect_paired_stats(
    model: nn.Module,
    reference: nn.Module,
    modules: dict[str, nn.Module],
    reference_modules: dict[str, nn.Module],
    calibration: Iterable[Any] | None,
) -> tuple[dict[str, CalibrationStats], dict[str, torch.Tensor]]:
    """Input statistics of ``modules`` in ``model`` and cross moments with ``reference``.

    Both models run every batch (each stopping once the stage has run); layer ``name``
    of ``model`` is paired with ``reference_modules[name]``.

    Returns
    -------
    stats : dict of str to CalibrationStats
        Statistics of the inputs ``x_c`` in ``model`` (as :func:`collect_stats`).
    cross : dict of str to torch.Tensor
        ``E[x_d x_c^T]`` (float64, ``in x in``), ``x_d`` the same layer's input in
        ``reference``.

    Raises
    ------
    ValueError
        For empty calibration, or a module that never ran.
    """
    batches = _as_batches(calibration)
    stats = {name: CalibrationStats() for name in modules}
    sums: dict[str, torch.Tensor] = {}
    for batch in batches:
        dense = stage_inputs(reference, reference_modules, batch)
        ours = stage_inputs(model, modules, batch)
        for name, x in ours.items():
            stats[name].update(x)
            product = dense[name].T @ x
            sums[name] = product if name not in sums else sums[name] + product
    cross = {name: sums[name] / stats[name].count for name in modules}
    return stats, cross


def execution_stages(
    model: nn.Module, modules: dict[str, nn.Module], calibration: Iterable[Any] | None
) -> list[list[str]]:
    """Group ``modules`` into stages in order of first execution on the first batch.

    Consecutive layers that receive the very same input tensor share a stage.

    Raises
    ------
    ValueError
        For empty calibration, or a module that never ran.
    """
    batches = _as_batches(calibration)
    order: list[tuple[str, int]] = []
    keep: list[torch.Tensor] = []  # keep inputs alive so their ids stay unique

    def hook(name: str, x: torch.Tensor) -> None:
        if all(name != n for n, _ in order):
            order.append((name, id(x)))
            keep.append(x)

    handles = _register(modules, hook, rows=False)
    try:
        run_batches(model, batches[:1])
    finally:
        for h in handles:
            h.remove()
    missing = sorted(set(modules) - {n for n, _ in order})
    if missing:
        raise ValueError(f"modules never ran on the calibration data: {missing}")
    stages: list[list[str]] = []
    last = None
    for name, ident in order:
        if stages and ident == last:
            stages[-1].append(name)
        else:
            stages.append([name])
        last = ident
    return stages
