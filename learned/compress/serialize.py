"""Save and load compressed models: one safetensors file plus a small JSON description.

``compression.json`` holds the recipe and, for every replaced layer, its class,
constructor arguments and dtype (nested for :class:`~learned.compress.layers.CompensatedLinear`,
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
# 2: SparseLinear and NMSparseLinear store bit masks; 3: every layer records its dtype
VERSION = 3
# Versions this reader loads: 2 lacks the dtypes, which are then read off the tensors.
READABLE = (2, 3)
_SIMPLE: dict[str, type[nn.Module]] = {
    "LowRankLinear": LowRankLinear,
    "MonarchLinear": MonarchLinear,
    "SparseLinear": SparseLinear,
    "NMSparseLinear": NMSparseLinear,
}


def _dtype_name(layer: nn.Module) -> str | None:
    """Name of the floating dtype a leaf layer computes in (None: it holds none)."""
    if isinstance(layer, BitplaneLinear):  # float64 scales whatever the dtype: the bias's
        return None if layer.bias is None else str(layer.bias.dtype).removeprefix("torch.")
    for p in layer.parameters():
        if p.is_floating_point():
            return str(p.dtype).removeprefix("torch.")
    return None


def _dtype(name: Any) -> torch.dtype | None:
    if name is None:
        return None
    dtype = getattr(torch, name, None) if isinstance(name, str) else None
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"unknown layer dtype {name!r} in the compression file")
    return dtype


def _describe(layer: nn.Module) -> dict[str, Any]:
    desc = _describe_structure(layer)
    if "config" in desc and "dtype" not in desc and desc["class"] != "CompressedConv":
        desc["dtype"] = _dtype_name(layer)
    return desc


def _describe_structure(layer: nn.Module) -> dict[str, Any]:
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


def _build(desc: dict[str, Any], dtype: torch.dtype | None = None) -> nn.Module:
    """Rebuild an empty layer; ``dtype`` for leaves that record none (version 2)."""
    cls = desc.get("class")
    if cls == "CompressedConv":
        return CompressedConv(_build(desc["inner"], dtype), **desc["config"])
    if cls == "CompensatedLinear":
        correction = _build(desc["correction"], dtype)
        assert isinstance(correction, LowRankLinear)
        return CompensatedLinear(_build(desc["base"], dtype), correction)
    if cls == "MixedBitLinear":
        high, low = _build(desc["high"], dtype), _build(desc["low"], dtype)
        assert isinstance(high, BitplaneLinear) and isinstance(low, BitplaneLinear)
        # Placeholder indices of the right length; the state dict overwrites them.
        return MixedBitLinear(high, low, torch.arange(high.in_features))
    cfg = dict(desc.get("config", {}))
    if "dtype" in desc:
        dtype = _dtype(desc["dtype"])
    if cls == "BitplaneLinear":
        return BitplaneLinear(cfg.pop("in_features"), cfg.pop("out_features"), dtype=dtype, **cfg)
    if cls == "Linear":
        return nn.Linear(cfg.pop("in_features"), cfg.pop("out_features"), dtype=dtype, **cfg)
    if cls in _SIMPLE:
        if cls == "MonarchLinear":
            cfg["nblocks"] = tuple(cfg["nblocks"])
        return _SIMPLE[cls](cfg.pop("in_features"), cfg.pop("out_features"), dtype=dtype, **cfg)
    raise ValueError(f"unknown layer class {cls!r} in the compression file")


def _stored_dtype(tensors: dict[str, torch.Tensor], name: str) -> torch.dtype | None:
    """Return the floating dtype of layer ``name``'s tensors in a version-2 file, or None."""
    for key, value in tensors.items():
        # BitplaneLinear's scales are float64 whatever the layer's dtype
        if key.startswith(f"{name}.") and value.is_floating_point():
            if not key.endswith("weight_scales"):
                return value.dtype
    return None


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
        In eval mode, every compressed layer in the dtype it was saved in (version 3
        records it; for version-2 files it is read off the stored tensors).

    Raises
    ------
    ValueError
        If ``compression.json`` or ``model.safetensors`` is missing, the files are of
        another format or an unsupported version, or they do not match the skeleton.
    TypeError
        If ``skeleton`` does not give an ``nn.Module``.
    """
    from safetensors.torch import load_file

    path = Path(directory)
    try:
        meta = json.loads((path / "compression.json").read_text())
    except FileNotFoundError as exc:
        raise ValueError(f"directory {str(path)!r} has no compression.json") from exc
    if meta.get("format") != FORMAT or meta.get("version") not in READABLE:
        raise ValueError(
            f"{str(path)!r} is not a {FORMAT} checkpoint of version "
            f"{' or '.join(map(str, READABLE))} (found format {meta.get('format')!r}, "
            f"version {meta.get('version')!r})"
        )
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise ValueError(f"directory {str(path)!r} has no model.safetensors")
    model = skeleton() if not isinstance(skeleton, nn.Module) else skeleton
    if not isinstance(model, nn.Module):
        raise TypeError(f"skeleton must give an nn.Module, got {type(model).__name__}")
    tensors = load_file(str(weights))
    for name, desc in meta["layers"].items():
        try:
            model.get_submodule(name)
        except AttributeError as exc:
            raise ValueError(f"skeleton has no module {name!r}") from exc
        legacy = _stored_dtype(tensors, name) if meta["version"] == 2 else None
        set_module(model, name, _build(desc, legacy))
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"checkpoint does not match the skeleton: {exc}") from exc
    model.eval()
    model.compression_recipe = meta.get("recipe")
    model.compressed_layers = list(meta["layers"])
    return model
