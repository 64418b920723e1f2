"""Neural-network compression recipes on numlib's primitives (low-rank, sparse, low-bit).

``compress(model, recipe, calibration=..., filter_fn=...)`` replaces the chosen
``nn.Linear`` layers of any model by real compressed layers; ``save_compressed`` /
``load_compressed`` write and read them with safetensors plus a small JSON file.
"""

from learned.compress.api import compress, compress_linear, select_targets
from learned.compress.conv import CompressedConv
from learned.compress.layers import (
    CompensatedLinear,
    LowRankLinear,
    MonarchLinear,
    NMSparseLinear,
    SparseLinear,
)
from learned.compress.quantize import MixedBitLinear
from learned.compress.recipe import METHODS, Recipe
from learned.compress.serialize import load_compressed, save_compressed

__all__ = [
    "METHODS",
    "CompensatedLinear",
    "CompressedConv",
    "LowRankLinear",
    "MixedBitLinear",
    "MonarchLinear",
    "NMSparseLinear",
    "Recipe",
    "SparseLinear",
    "compress",
    "compress_linear",
    "load_compressed",
    "save_compressed",
    "select_targets",
]
