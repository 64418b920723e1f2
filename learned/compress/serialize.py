"""Save and load compressed models: one safetensors file plus a small JSON description.

``compression.json`` holds the recipe and, for every replaced layer, its class and
constructor arguments (nested for :class:`~learned.compress.layers.CompensatedLinear`,
:class:`~learned.compress.quantize.MixedBitLinear` and
:class:`~learned.compress.conv.CompressedConv`); ``model.safetensors`` holds the whole
state dict (factors, non-zeros and indices, packed bit-planes; never pickle). Loading
needs only an *uninitialised skeleton* of the architecture (e.g.
``AutoModel.from_config(config)`` or the constructor of your ``nn.Module``), not the
original weights: the listed layers are rebuilt empty in the skeleton and every tensor
comes from the file (``strict`` loading, so a mismatch is an error).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from learned.bitplane_linear import BitplaneLinear
from learned.compress.calibrate import set_module
from learned.compress.conv import CompressedConv
from learned.compress.layers import (
    CompensatedLinear,
    LowRankLinear,
    MonarchLinear,
    NMSparseLinear,
    SparseLinear,
)
from learned.compress.quantize import MixedBitLinear

__all__ = ["load_compressed", "save_compressed"]

FORMAT = "numlib.learned.compress"
VERSION = 2  # 2: SparseLinear and NMSparseLinear store bit masks
_SIMPLE: dict[str, type[nn.Module]] = {
    "LowRankLinear": LowRankLinear,
    "MonarchLinear": MonarchLinear,
    "SparseLinear": SparseLinear,
    "NMSparseLinear": NMSparseLinear,
}


def _describe(layer: nn.Module) -> dict[str, Any]:
    if isinstance(layer, CompressedConv):
        inner = _describe(layer.inner)
        return {"class": "CompressedConv", "config": layer.config(), "inner": inner}
    if isinstance(layer, CompensatedLinear):
        return {
            "class": "CompensatedLinear",
            "base": _describe(layer.base),
            "correction": _describe(layer.correction),
        }
    if isinstance(layer, MixedBitLinear):
        return {
            "class": "MixedBitLinear",
            "high": _describe(layer.high),
            "low": _describe(layer.low),
        }
    if isinstance(layer, BitplaneLinear):
        return {
            "class": "BitplaneLinear",
            "config": {
                "in_features": layer.in_features,
                "out_features": layer.out_features,
                "weight_bits": layer.weight_bits,
                "activation_bits": layer.activation_bits,
                "group_size": layer.group_size,
                "bias": layer.bias is not None,
            },
        }
    if type(layer) is nn.Linear:  # narrowed by "nystrom"
        return {
            "class": "Linear",
            "config": {
                "in_features": layer.in_features,
                "out_features": layer.out_features,
                "bias": layer.bias is not None,
            },
        }
    name = type(layer).__name__
    if name not in _SIMPLE:
        raise TypeError(f"cannot serialise a {name}")
    return {"class": name, "config": layer.config()}  # type: ignore[operator]


def _build(desc: dict[str, Any]) -> nn.Module:
    cls = desc.get("class")
    if cls == "CompressedConv":
        return CompressedConv(_build(desc["inner"]), **desc["config"])
    if cls == "CompensatedLinear":
        correction = _build(desc["correction"])
        assert isinstance(correction, LowRankLinear)
        return CompensatedLinear(_build(desc["base"]), correction)
    if cls == "MixedBitLinear":
        high, low = _build(desc["high"]), _build(desc["low"])
        assert isinstance(high, BitplaneLinear) and isinstance(low, BitplaneLinear)
        # Placeholder indices of the right length; the state dict overwrites them.
        return MixedBitLinear(high, low, torch.arange(high.in_features))
    if cls == "BitplaneLinear":
        cfg = dict(desc["config"])
        return BitplaneLinear(cfg.pop("in_features"), cfg.pop("out_features"), **cfg)
    if cls == "Linear":
        cfg = dict(desc["config"])
        return nn.Linear(cfg.pop("in_features"), cfg.pop("out_features"), **cfg)
    if cls in _SIMPLE:
        cfg = dict(desc["config"])
        if cls == "MonarchLinear":
            cfg["nblocks"] = tuple(cfg["nblocks"])
        return _SIMPLE[cls](cfg.pop("in_features"), cfg.pop("out_features"), **cfg)
    raise ValueError(f"unknown layer class {cls!r} in the compression file")


def save_compressed(model: nn.Module, directory: str | os.PathLike[str]) -> Path:
    """Write ``model`` (from :func:`~learned.compress.compress`) to ``directory``.

    Creates ``model.safetensors`` and ``compression.json``; returns the directory.

    Raises
    ------
    ValueError
        If ``model`` was not produced by ``compress``.
    """
    from safetensors.torch import save_file

    names = getattr(model, "compressed_layers", None)
    if names is None:
        raise ValueError("model has no compressed_layers: compress it with compress() first")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    layers = {name: _describe(model.get_submodule(name)) for name in names}
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "recipe": getattr(model, "compression_recipe", None),
        "layers": layers,
    }
    # Clone so that tensors sharing storage (tied weights) are written independently.
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": FORMAT})
    (out / "compression.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    return out


def load_compressed(
    directory: str | os.PathLike[str], skeleton: nn.Module | Callable[[], nn.Module]
) -> nn.Module:
    """Rebuild a compressed model from ``directory`` into an architecture ``skeleton``.

    Parameters
    ----------
    directory : path
        Written by :func:`save_compressed`.
    skeleton : nn.Module or callable
        The uncompressed architecture (its weights are ignored and overwritten), or a
        function returning it.

    Returns
    -------
    nn.Module
        In eval mode.

    Raises
    ------
    ValueError
        If the files are missing, of another format, or do not match the skeleton.
    """
    from safetensors.torch import load_file

    path = Path(directory)
    try:
        meta = json.loads((path / "compression.json").read_text())
    except FileNotFoundError as exc:
        raise ValueError(f"directory {str(path)!r} has no compression.json") from exc
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ValueError(f"{str(path)!r} is not a {FORMAT} v{VERSION} checkpoint")
    model = skeleton() if not isinstance(skeleton, nn.Module) else skeleton
    if not isinstance(model, nn.Module):
        raise TypeError(f"skeleton must give an nn.Module, got {type(model).__name__}")
    for name, desc in meta["layers"].items():
        try:
            model.get_submodule(name)
        except AttributeError as exc:
            raise ValueError(f"skeleton has no module {name!r}") from exc
        set_module(model, name, _build(desc))
    tensors = load_file(str(path / "model.safetensors"))
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"checkpoint does not match the skeleton: {exc}") from exc
    model.eval()
    model.compression_recipe = meta.get("recipe")
    model.compressed_layers = list(meta["layers"])
    return model
