"""``compress(model, recipe, calibration=..., filter_fn=...)``: one entry point for every recipe.

Targets are the modules for which ``filter_fn(module, name)`` is true (default: every
``nn.Linear``); each is replaced by a real compressed layer
(:mod:`learned.compress.layers`, :class:`~learned.bitplane_linear.BitplaneLinear`), not a
mask. With ``recipe.sequential`` (default) and a calibrated method, layers are compressed
stage by stage in execution order (:func:`~learned.compress.calibrate.execution_stages`),
each stage calibrated on the model whose earlier layers are already compressed: every
layer then fits the inputs it will really see. With ``recipe.dense_target`` (default) it
also fits the *dense* model's outputs on them (:func:`dense_target_layer`), so upstream
error is compensated rather than reproduced.
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from learned.compress import prune, quantize
from learned.compress.calibrate import (
    collect_paired_stats,
    collect_stats,
    execution_stages,
    set_module,
)
from learned.compress.conv import (
    CONVOLUTIONS,
    CompressedConv,
    as_linear,
    check_convolution,
)
from learned.compress.eora import eora_compensate
from learned.compress.fisher import LossFn, fisher_row_weights
from learned.compress.layers import (
    LowRankLinear,
    MonarchLinear,
    NMSparseLinear,
    SparseLinear,
    dense_linear,
)
from learned.compress.lowrank import allocate_ranks, factorize, lowrank_linear
from learned.compress.recipe import Recipe
from learned.compress.sensitivity import (
    LayerOptions,
    choose_options,
    interpolate_losses,
    measure_sensitivity,
    rank_grid,
)
from learned.compress.units import UnitPair, find_unit_pairs, fit_unit_pair
from numlib.calibration import CalibrationStats, whiten
from numlib.lowrank import LowRankFactors, choose_rank
from numlib.monarch import monarch_project

__all__ = [
    "check_target",
    "compress",
    "compress_linear",
    "dense_target_layer",
    "select_targets",
    "shape_requirements",
]

FilterFn = Callable[[nn.Module, str], bool]
# Methods whose result runs as a convolution again (a pruned, low-rank or Monarch kernel).
CONV_METHODS = ("magnitude", "wanda", "sparsegpt", "block", "lowrank", "monarch")
# Calibration batches on which allocation="sensitivity" measures each truncation.
SENSITIVITY_BATCHES = 4


def _default_filter(module: nn.Module, name: str) -> bool:
    return isinstance(module, nn.Linear)


def select_targets(model: nn.Module, filter_fn: FilterFn | None = None) -> dict[str, nn.Module]:
    """Return the modules chosen by ``filter_fn(module, name)``, by qualified name.

    Targets are ``nn.Linear`` layers and, for the methods that allow them,
    ``nn.Conv1d``/``nn.Conv2d`` (their kernels as matrices over patches,
    :mod:`learned.compress.conv`).

    Raises
    ------
    TypeError
        If the filter selects a module that is none of those.
    ValueError
        If nothing is selected.
    """
    keep = filter_fn or _default_filter
    out: dict[str, nn.Linear] = {}
    for name, module in model.named_modules():
        if name and keep(module, name):
            if type(module) not in (nn.Linear, *CONVOLUTIONS):
                raise TypeError(
                    f"filter_fn selected {name!r}, a {type(module).__name__}; only "
                    "torch.nn.Linear, Conv1d and Conv2d layers can be compressed"
                )
            out[name] = module
    if not out:
        raise ValueError("filter_fn selected no nn.Linear module of the model")
    return out


def dense_target_layer(
    linear: nn.Linear, C: torch.Tensor, cross: torch.Tensor, *, damp: float = 0.01
) -> nn.Linear:
    r"""Return the layer whose output on the compressed inputs best matches the dense output.

    With ``x_c`` the layer's inputs in the partly compressed model and ``x_d`` those in
    the dense model, ``min_B E||W x_d - B x_c||^2`` is solved by
    ``B = W E[x_d x_c^T] E[x_c x_c^T]^{-1}``, and for every ``Q``

    .. math:: E\|W x_d - Q x_c\|^2 = E\|(B - Q) x_c\|^2 + \text{const},

    so compressing ``B`` under the usual objective (the metric ``C = E[x_c x_c^T]``)
    fits the dense outputs. It is computed as ``B = W + W (E[x_d x_c^T] - C) C_d^{-1}``
    with ``C_d`` the damped ``C`` of :func:`numlib.calibration.whiten`: the damping then
    only shrinks the correction, and ``B = W`` exactly when the inputs agree.

    Parameters
    ----------
    linear : nn.Linear
        The dense layer (not modified).
    C : torch.Tensor
        ``E[x_c x_c^T]``.
    cross : torch.Tensor
        ``E[x_d x_c^T]`` (:func:`~learned.compress.calibrate.collect_paired_stats`).
    damp : float
        Relative damping of ``C``.

    Returns
    -------
    nn.Linear
        Same shape, bias and dtype, weight ``B``.

    Raises
    ------
    ValueError
        If ``C`` or ``cross`` is not ``in_features x in_features``.
    """
    n = linear.in_features
    for name, M in (("C", C), ("cross", cross)):
        if tuple(M.shape) != (n, n):
            raise ValueError(f"{name} must be {n} x {n} (in_features), got {tuple(M.shape)}")
    W = linear.weight.detach().to(torch.float64)
    Finv = whiten(C.to(torch.float64), damp=damp).inverse  # C_d^{-1} = Finv^T Finv
    B = W + ((W @ (cross - C)) @ Finv.T) @ Finv
    return dense_linear(B, None if linear.bias is None else linear.bias.detach(), linear)


def _default_nblocks(m: int, n: int) -> tuple[int, int]:
    for b in (16, 8, 4, 2):
        if m % b == 0 and n % b == 0:
            return (b, b)
    return (1, 1)


def shape_requirements(recipe: Recipe) -> list[tuple[str, int, int, str]]:
    """Return what the sides of every weight matrix ``recipe`` compresses must be multiples of.

    Each entry ``(side, d, k, what)`` asks ``side`` (``"in_features"`` or
    ``"out_features"``; for a convolution, of its kernel as a matrix over patches) to
    be a multiple of ``d`` and at least ``k d``: an N:M pattern's ``M``, a block's
    sides, Monarch's ``nblocks``, quantisation groups, PTQ1.61's binary block (twice:
    one salient block and one binarised block at least).
    """
    r = recipe
    need: list[tuple[str, int, int, str]] = []
    if r.pattern is not None:
        need.append(("in_features", r.pattern[1], 1, f"pattern {r.pattern[0]}:{r.pattern[1]}: M"))
    if r.method == "block" and r.block is not None:
        need += [
            ("out_features", r.block[0], 1, f"block {r.block}: rows"),
            ("in_features", r.block[1], 1, f"block {r.block}: columns"),
        ]
    if r.method == "monarch" and r.nblocks is not None:
        need += [
            ("in_features", r.nblocks[0], 1, f"nblocks {r.nblocks}: input blocks"),
            ("out_features", r.nblocks[1], 1, f"nblocks {r.nblocks}: output blocks"),
        ]
    if r.method in ("rtn", "gptq") and r.group_size is not None:
        need.append(("in_features", r.group_size, 1, f"group_size {r.group_size}"))
    if r.method == "ptq161":
        need.append(("in_features", r.binary_block, 2, f"binary_block {r.binary_block}"))
    return need


def check_target(name: str, module: nn.Module, recipe: Recipe) -> None:
    """Raise ``ValueError`` naming ``name`` if ``recipe`` cannot compress ``module``.

    The weight must be finite and its matrix fit :func:`shape_requirements`; called on
    every target before any is copied or replaced.

    Raises
    ------
    ValueError
        For a NaN/Inf weight or a side that misses a requirement.
    """
    W = _matrix(module)
    if not bool(torch.isfinite(W).all()):
        raise ValueError(f"{name!r}: the weight must be finite (it holds NaN or Inf)")
    sides = {"out_features": int(W.shape[0]), "in_features": int(W.shape[1])}
    for side, d, k, what in shape_requirements(recipe):
        size = sides[side]
        if size % d:
            raise ValueError(
                f"{name!r}: {what} must divide {side} = {size} (method {recipe.method!r})"
            )
        if size < k * d:
            raise ValueError(
                f"{name!r}: {side} = {size} must be at least {k} x {what} = {k * d} "
                f"(method {recipe.method!r}; exclude the layer with filter_fn or use a "
                "smaller block)"
            )


def _as_recipe(recipe: Recipe | dict[str, Any]) -> Recipe:
    if isinstance(recipe, dict):
        return Recipe.from_dict(recipe)
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a Recipe or a dict, got {type(recipe).__name__}")
    return recipe


def compress_linear(
    linear: nn.Linear,
    recipe: Recipe | dict[str, Any],
    stats: CalibrationStats | None = None,
    *,
    sparsity: float | None = None,
    rank: int | None = None,
    row_weights: torch.Tensor | None = None,
) -> nn.Module:
    """Compress one ``nn.Linear`` by ``recipe`` (per-layer ``sparsity`` / ``rank`` override).

    Parameters
    ----------
    linear : nn.Linear
        Not modified.
    recipe : Recipe or dict
    stats : CalibrationStats, optional
        Input statistics (required when ``recipe.needs_calibration``).
    sparsity, rank : optional
        This layer's pruning fraction or rank, when allocated across layers.
    row_weights : torch.Tensor, optional
        Fisher row weights of this layer, for low rank of kind ``"fisher"``.

    Returns
    -------
    nn.Module
        The compressed layer, in ``linear``'s dtype.

    Raises
    ------
    TypeError
        If ``linear`` is not an ``nn.Linear``, ``recipe`` not a Recipe (or dict), or
        ``stats`` not a ``CalibrationStats``.
    ValueError
        For ``"nystrom"``, missing or mis-sized ``stats`` for a calibrated recipe, an
        out-of-range ``sparsity`` or ``rank``, a non-finite weight, or a shape the
        recipe cannot compress (:func:`check_target`).
    """
    if not isinstance(linear, nn.Linear):
        raise TypeError(f"linear must be a torch.nn.Linear, got {type(linear).__name__}")
    recipe = _as_recipe(recipe)
    if recipe.method == "nystrom":
        raise ValueError("method 'nystrom' compresses pairs of layers: use compress()")
    if stats is not None:
        if not isinstance(stats, CalibrationStats):
            raise TypeError(f"stats must be a CalibrationStats, got {type(stats).__name__}")
        if stats.features != linear.in_features:
            raise ValueError(
                f"stats are of {stats.features} features, the layer has "
                f"in_features = {linear.in_features}"
            )
    elif recipe.needs_calibration:
        raise ValueError(f"recipe {recipe.method!r} needs calibration statistics")
    if sparsity is not None:
        prune.check_sparsity(sparsity)
    if rank is not None and (
        isinstance(rank, bool) or not isinstance(rank, numbers.Integral) or rank < 1
    ):
        raise ValueError(f"rank must be a positive int, got {rank!r}")
    check_target("linear", linear, recipe)
    W = linear.weight.detach()
    b = None if linear.bias is None else linear.bias.detach()
    m_out, n_in = W.shape
    s = recipe.sparsity if sparsity is None else sparsity
    method = recipe.method
    layer: nn.Module
    if method in ("magnitude", "wanda", "sparsegpt", "block"):
        if method == "magnitude":
            Wp = prune.magnitude_prune(W, s, pattern=recipe.pattern)
        elif method == "wanda":
            assert stats is not None
            norms = stats.channel_norms()
            Wp = prune.wanda_prune(W, norms, s, pattern=recipe.pattern)
        elif method == "sparsegpt":
            assert stats is not None
            Wp = prune.sparsegpt_prune(
                W,
                stats.second_moment(),
                s,
                pattern=recipe.pattern,
                blocksize=recipe.blocksize,
                damp=recipe.damp,
            )
        else:
            assert recipe.block is not None and s is not None
            Wp = prune.block_prune(W, s, recipe.block)
        if recipe.pattern is not None:
            layer = NMSparseLinear.from_dense(Wp, b, n=recipe.pattern[0], m=recipe.pattern[1])
        else:
            layer = SparseLinear.from_dense(Wp, b)
    elif method == "lowrank":
        C = stats.second_moment() if recipe.kind == "whitened" and stats is not None else None
        size: dict[str, Any] = {"energy": recipe.energy, "multiple_of": recipe.multiple_of}
        if recipe.energy is None:
            size = {"rank": min(rank or recipe.rank or 1, m_out, n_in)}
        factors = factorize(W, recipe.kind, C=C, row_weights=row_weights, damp=recipe.damp, **size)
        layer = lowrank_linear(factors, b, dtype=W.dtype)
    elif method == "monarch":
        nblocks = recipe.nblocks or _default_nblocks(m_out, n_in)
        r = min(recipe.rank or 1, m_out // nblocks[1], n_in // nblocks[0])
        C = stats.second_moment() if recipe.kind == "whitened" and stats is not None else None
        mon = monarch_project(W.to(torch.float64), nblocks, rank=r, C=C, damp=recipe.damp)
        layer = MonarchLinear.from_monarch(mon, b, dtype=W.dtype)
    elif method == "rtn":
        assert recipe.bits is not None
        layer = quantize.rtn_quantize(
            linear,
            recipe.bits,
            group_size=recipe.group_size,
            activation_bits=recipe.activation_bits,
        )
    elif method == "gptq":
        assert recipe.bits is not None and stats is not None
        layer = quantize.gptq_quantize(
            linear,
            stats.second_moment(),
            recipe.bits,
            group_size=recipe.group_size,
            activation_bits=recipe.activation_bits,
            act_order=recipe.act_order,
            blocksize=recipe.blocksize,
            damp=recipe.damp,
        )
    else:  # ptq161
        assert stats is not None
        layer = quantize.mixed_ptq161(
            linear,
            stats.channel_norms(),
            salient_fraction=recipe.salient_fraction,
            high_bits=recipe.high_bits,
            block=recipe.binary_block,
            activation_bits=recipe.activation_bits,
        )
    if recipe.eora_rank is not None:
        assert stats is not None
        layer = eora_compensate(linear, layer, stats.second_moment(), recipe.eora_rank)
    return layer


def _unit_pairs(
    model: nn.Module, targets: dict[str, nn.Linear], batches: list[Any]
) -> list[UnitPair]:
    """Find the hidden-unit pairs covering ``targets``; raise naming any layer left out."""
    pairs = find_unit_pairs(model, targets, batches)
    paired = {name for pair in pairs for name in (*pair.producers, pair.consumer)}
    alone = [name for name in targets if name not in paired]
    if alone:
        raise ValueError(
            "method 'nystrom' keeps hidden units between a producer and a consumer layer "
            f"(an MLP); these targets are in no such pair: {alone}"
        )
    return pairs


def _plan(
    model: nn.Module,
    targets: dict[str, nn.Linear],
    recipe: Recipe,
    batches: list[Any] | None,
    row_weights: dict[str, torch.Tensor] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per-layer overrides: FARMS sparsities, ranks, Fisher row weights.

    Ranks are uniform, global (:func:`allocate_ranks`) or by measured sensitivity
    (:mod:`learned.compress.sensitivity`); a layer that allocation keeps dense gets
    no entry.
    """
    plan: dict[str, dict[str, Any]] = {name: {} for name in targets}
    for name, weights in (row_weights or {}).items():
        plan[name]["row_weights"] = weights
    if recipe.sparsity is not None and recipe.allocation == "farms":
        matrices = [_matrix(t) for t in targets.values()]
        ratios = prune.farms_ratios(matrices, recipe.sparsity)
        for name, r in zip(targets, ratios, strict=True):
            plan[name]["sparsity"] = r
    if recipe.method == "lowrank" and recipe.param_ratio is not None:
        if recipe.allocation == "uniform":
            for name, lin in targets.items():
                shape = tuple(_matrix(lin).shape)
                # Under a parameter budget only the number of singular values matters.
                plan[name]["rank"] = choose_rank(
                    np.ones(min(shape)),
                    shape,
                    param_ratio=recipe.param_ratio,
                    multiple_of=recipe.multiple_of,
                )
            return plan
        if recipe.kind == "whitened":
            # One-shot statistics of the dense model rank the layers against each other.
            stats = collect_stats(model, targets, batches)
        factors = {}
        for name, lin in targets.items():
            C = stats[name].second_moment() if recipe.kind == "whitened" else None
            k = min(_matrix(lin).shape)
            weights = plan[name].get("row_weights")
            factors[name] = factorize(
                _matrix(lin), recipe.kind, k, C, row_weights=weights, damp=recipe.damp
            )
        shapes = {name: tuple(_matrix(lin).shape) for name, lin in targets.items()}
        if recipe.allocation == "global":
            spectra = {name: f.spectrum for name, f in factors.items()}
            ranks = allocate_ranks(
                spectra, shapes, recipe.param_ratio, multiple_of=recipe.multiple_of
            )
        else:
            assert batches is not None
            ranks = _sensitivity_ranks(model, targets, factors, shapes, recipe, batches)
        for name, k in ranks.items():
            if k:
                plan[name]["rank"] = k
            else:  # kept dense: no entry, so the layer is neither calibrated nor replaced
                del plan[name]
    return plan


def _sensitivity_ranks(
    model: nn.Module,
    targets: dict[str, nn.Module],
    factors: dict[str, LowRankFactors],
    shapes: dict[str, tuple[int, int]],
    recipe: Recipe,
    batches: list[Any],
) -> dict[str, int]:
    """Ranks (0: dense) minimising the summed measured output change within the budget."""
    assert recipe.param_ratio is not None
    grids = {name: rank_grid(shape, recipe.multiple_of) for name, shape in shapes.items()}

    def truncation(name: str) -> Callable[[int], nn.Module]:
        full, target = factors[name], targets[name]

        def build(k: int) -> nn.Module:
            inner = LowRankLinear.from_factors(
                full.left[:, :k], full.right[:k], target.bias, dtype=target.weight.dtype
            )
            return CompressedConv.wrap(inner, target) if isinstance(target, CONVOLUTIONS) else inner

        return build

    measured = measure_sensitivity(
        model,
        {name: truncation(name) for name in targets},
        {name: grid for name, (_, grid) in grids.items()},
        batches[:SENSITIVITY_BATCHES],
    )
    options = {}
    for name, (candidates, grid) in grids.items():
        m, n = shapes[name]
        losses = interpolate_losses(candidates, grid, measured[name])
        options[name] = LayerOptions(
            ranks=np.append(candidates, 0),
            costs=np.append(candidates * (m + n), m * n),
            losses=np.append(losses, 0.0),
        )
    return choose_options(options, recipe.param_ratio * sum(m * n for m, n in shapes.values()))


def _matrix(layer: nn.Module) -> torch.Tensor:
    """Return the weight as the matrix the recipes compress (a kernel over patches)."""
    return layer.weight.detach().reshape(layer.weight.shape[0], -1)


def _units_plan(
    targets: dict[str, nn.Linear], pairs: list[UnitPair], recipe: Recipe
) -> dict[str, dict[str, Any]]:
    """Hidden units kept per consumer: ``param_ratio`` of them (rounded), down to a multiple."""
    assert recipe.param_ratio is not None
    plan: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        width = targets[pair.consumer].in_features
        step = min(recipe.multiple_of, width)
        units = max(step, round(recipe.param_ratio * width) // step * step)
        plan[pair.consumer] = {"units": units, "pair": pair}
    return plan


def _replace(
    model: nn.Module,
    targets: dict[str, nn.Linear],
    name: str,
    layer: nn.Linear,
    stats: CalibrationStats | None,
    recipe: Recipe,
    plan: dict[str, Any],
) -> None:
    """Put the compressed ``layer`` (a target, or its dense target) in place of ``name``."""
    if recipe.method != "nystrom":
        if isinstance(targets[name], CONVOLUTIONS):
            matrix = as_linear(layer) if isinstance(layer, CONVOLUTIONS) else layer
            inner = compress_linear(matrix, recipe, stats, **plan)
            set_module(model, name, CompressedConv.wrap(inner, targets[name]))
        else:
            set_module(model, name, compress_linear(layer, recipe, stats, **plan))
        return
    assert stats is not None
    pair: UnitPair = plan["pair"]
    producers = {p: targets[p] for p in pair.producers}
    new_producers, consumer = fit_unit_pair(
        producers,
        layer,
        stats.second_moment(),
        plan["units"],
        select=recipe.selection,
        damp=recipe.damp,
    )
    for p, lin in new_producers.items():
        set_module(model, p, lin)
    set_module(model, name, consumer)


def _compress_sequential(
    model: nn.Module,
    dense: nn.Module,
    targets: dict[str, nn.Linear],
    recipe: Recipe,
    plan: dict[str, dict[str, Any]],
    batches: list[Any],
    filter_fn: FilterFn | None,
) -> None:
    """Compress ``targets`` of ``model`` stage by stage; ``dense`` is the untouched model.

    Only the layers with a ``plan`` entry are calibrated (for ``"nystrom"`` the
    consumers, whose fit also replaces their producers).
    """
    dense_targets = select_targets(dense, filter_fn)
    dense_training = dense.training
    dense.eval()
    try:
        for stage in execution_stages(model, targets, batches):
            mods = {name: targets[name] for name in stage if name in plan}
            if not mods:
                continue
            if recipe.dense_target:
                dense_mods = {name: dense_targets[name] for name in mods}
                stats, cross = collect_paired_stats(model, dense, mods, dense_mods, batches)
            else:
                stats = collect_stats(model, mods, batches, stop_early=True)
            for name, layer in mods.items():
                if recipe.dense_target:
                    C = stats[name].second_moment()
                    matrix = as_linear(layer) if isinstance(layer, CONVOLUTIONS) else layer
                    layer = dense_target_layer(matrix, C, cross[name], damp=recipe.damp)
                _replace(model, targets, name, layer, stats[name], recipe, plan[name])
    finally:
        dense.train(dense_training)


def compress(
    model: nn.Module,
    recipe: Recipe | dict[str, Any],
    *,
    calibration: Iterable[Any] | None = None,
    filter_fn: FilterFn | None = None,
    loss_fn: LossFn | None = None,
    loss_data: Iterable[Any] | None = None,
    inplace: bool = False,
) -> nn.Module:
    """Return ``model`` with its targeted ``nn.Linear`` layers compressed by ``recipe``.

    Parameters
    ----------
    model : nn.Module
        Any module containing ``nn.Linear`` layers; copied first unless ``inplace``.
    recipe : Recipe or dict
        What to do (a dict is passed to :meth:`Recipe.from_dict`).
    calibration : iterable of batches, optional
        Model inputs (tensors, tuples of positional arguments, or dicts of keyword
        arguments), required by calibrated recipes; materialised once.
    filter_fn : callable, optional
        ``filter_fn(module, qualified_name) -> bool``; default: every ``nn.Linear``.
        It may also select ``nn.Conv1d``/``nn.Conv2d`` layers (one group) for the
        methods in :data:`CONV_METHODS` (:mod:`learned.compress.conv`).
    loss_fn : callable, optional
        ``loss_fn(model, batch) -> scalar tensor``, the task loss whose Fisher
        information weights the rows for low rank of kind ``"fisher"`` (required there,
        unused otherwise); evaluated on the dense model.
    loss_data : iterable of batches, optional
        What ``loss_fn`` receives, e.g. ``(inputs, labels)`` pairs; default: the
        calibration batches.
    inplace : bool
        Modify ``model`` itself (its mode too: it is left in eval mode).

    Returns
    -------
    nn.Module
        The compressed model, in eval mode whatever ``model``'s mode (compressed layers
        are for inference; dropout stays off, as after
        :func:`~learned.compress.serialize.load_compressed`; call ``.train()`` to
        fine-tune). For ``"nystrom"`` the targets are narrower ``nn.Linear``
        layers. It has ``compression_recipe`` (the recipe dict) and
        ``compressed_layers`` (the names of the replaced layers; not those that
        ``allocation="sensitivity"`` keeps dense) attributes used by
        :func:`learned.compress.serialize.save_compressed`.

    Raises
    ------
    TypeError
        If ``model`` is not an ``nn.Module`` or the filter selects a module that is not
        an ``nn.Linear``, ``nn.Conv1d`` or ``nn.Conv2d``.
    ValueError
        For an invalid recipe, an empty selection, a target the recipe cannot
        compress (a non-finite weight, or a shape outside :func:`shape_requirements`,
        e.g. ``group_size`` not dividing ``in_features``), a convolution the recipe or
        its geometry does not allow, missing or empty calibration for a
        calibrated recipe, a missing ``loss_fn`` for a Fisher-weighted one, or, for
        ``"nystrom"``, a target in no producer/consumer pair
        (:func:`~learned.compress.units.find_unit_pairs`); all before any layer is
        touched.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 8))
    >>> small = compress(net, Recipe("magnitude", pattern=(2, 4)))
    >>> type(small[0]).__name__, float((small[0].dense_weight() != 0).float().mean())
    ('NMSparseLinear', 0.5)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    recipe = _as_recipe(recipe)
    for name, target in select_targets(model, filter_fn).items():  # validate before copying
        if isinstance(target, CONVOLUTIONS):
            check_convolution(target, name)
            if recipe.method not in CONV_METHODS or recipe.eora_rank is not None:
                raise ValueError(
                    f"{name!r} is a {type(target).__name__}: method {recipe.method!r}"
                    f"{' with eora_rank' if recipe.eora_rank is not None else ''} compresses "
                    f"only nn.Linear layers (convolutions: {', '.join(CONV_METHODS)})"
                )
        check_target(name, target, recipe)
    batches = None
    if recipe.needs_calibration:
        if calibration is None:
            raise ValueError(f"calibration is required for recipe {recipe.method!r}")
        batches = list(calibration)
        if not batches:
            raise ValueError("calibration is empty: give at least one batch of model inputs")
    loss_batches: list[Any] = []
    if recipe.needs_loss:
        if not callable(loss_fn):
            raise ValueError("kind 'fisher' needs loss_fn(model, batch) -> scalar loss")
        loss_batches = batches if loss_data is None else list(loss_data)
        if not loss_batches:
            raise ValueError("loss_data is empty: give at least one batch for loss_fn")
    dense = model
    if not inplace:
        model = copy.deepcopy(model)
    elif recipe.needs_calibration and recipe.sequential and recipe.dense_target:
        dense = copy.deepcopy(model)
    was_training = model.training
    model.eval()
    targets = select_targets(model, filter_fn)
    try:  # planning reads the model but changes no layer: on failure, undo eval()
        if recipe.method == "nystrom":
            assert batches is not None
            plan = _units_plan(targets, _unit_pairs(model, targets, batches), recipe)
        else:
            row_weights = None
            if recipe.needs_loss:
                assert loss_fn is not None
                row_weights = fisher_row_weights(model, targets, loss_batches, loss_fn)
            plan = _plan(model, targets, recipe, batches, row_weights)
    except BaseException:
        model.train(was_training)
        raise
    # "nystrom" plans by consumer and replaces the producers too; otherwise a layer with
    # no plan is one that allocation="sensitivity" keeps dense.
    replaced = list(targets) if recipe.method == "nystrom" else [n for n in targets if n in plan]
    if not recipe.needs_calibration:
        for name in plan:
            _replace(model, targets, name, targets[name], None, recipe, plan[name])
    elif recipe.sequential:
        assert batches is not None
        _compress_sequential(model, dense, targets, recipe, plan, batches, filter_fn)
    else:
        calibrated = {name: targets[name] for name in plan}
        stats = collect_stats(model, calibrated, batches)
        for name, lin in calibrated.items():
            _replace(model, targets, name, lin, stats[name], recipe, plan[name])
    model.eval()  # the new layers too
    model.compression_recipe = recipe.to_dict()
    model.compressed_layers = replaced
    return model
