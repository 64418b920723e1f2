"""Argument checks and batch handling shared by the exact and fast attention paths.

Every public attention function takes arrays of shape ``(..., n, d)`` with the same
leading (batch, head) dimensions, checks them here before any work, and runs a 2-D
kernel once per leading index.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from numlib.backend import array_namespace, is_floating, is_numpy
from numlib.validate import check_finite

# Elements of the largest temporary of one tile (logits or features): 2**21 float64
# values are 16 MiB, near the last-level cache of a laptop and small next to RAM.
DEFAULT_TILE = 2**21


def check_array(value: Any, name: str) -> tuple[int, ...]:
    """Check a floating, finite array with at least 2 dimensions; return its shape."""
    shape = getattr(value, "shape", None)
    if shape is None or not hasattr(value, "dtype"):
        raise TypeError(f"{name} must be an array, got {type(value).__name__}")
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2:
        raise ValueError(f"{name} must have shape (..., n, d), got {shape}")
    if 0 in shape:
        raise ValueError(f"{name} must not be empty, got shape {shape}")
    if not is_floating(value):
        raise TypeError(f"{name} must have a floating-point dtype, got {value.dtype}")
    if "complex" in str(value.dtype):
        raise TypeError(f"{name} must be real, got {value.dtype}")
    check_finite(value, name)
    return shape


def check_attention_inputs(
    queries: tuple[str, Any],
    keys: Sequence[tuple[str, Any]],
    values: Sequence[tuple[str, Any]],
) -> tuple[ModuleType, tuple[int, ...]]:
    """Check queries, keys and values of an attention call; return ``(xp, batch shape)``.

    Each key array must match the query width ``d``; each value array must have as
    many rows as its key array, and all value arrays the same width. ``values`` may be
    empty (queries and keys only, as for :func:`numlib.attention.plan_attention`);
    ``keys`` may not.

    Raises
    ------
    TypeError
        Non-arrays, integer or complex dtypes, arrays of different libraries.
    ValueError
        No key array, wrong number of dimensions, empty arrays, NaN/Inf, mismatched
        ``n``, ``d`` or batch dimensions.
    """
    if not keys:
        raise ValueError(f"at least one key array is needed besides {queries[0]}")
    named = [queries, *keys, *values]
    shapes = {name: check_array(a, name) for name, a in named}
    xp = array_namespace(*(a for _, a in named))
    dtypes = {str(a.dtype) for _, a in named}
    if len(dtypes) > 1:
        raise TypeError(f"{', '.join(n for n, _ in named)} must share one dtype, got {dtypes}")
    qname = queries[0]
    batch = shapes[qname][:-2]
    d = shapes[qname][-1]
    for name, _ in named[1:]:
        if shapes[name][:-2] != batch:
            raise ValueError(
                f"{name} must have the leading dimensions {batch} of {qname}, "
                f"got {shapes[name][:-2]}"
            )
    for name, _ in keys:
        if shapes[name][-1] != d:
            raise ValueError(f"{name} must have width d = {d} (as {qname}), got {shapes[name]}")
    if not values:
        return xp, batch
    dv = shapes[values[0][0]][-1]
    for (kname, _), (vname, _) in zip(keys, values, strict=True):
        if shapes[vname][-2] != shapes[kname][-2]:
            raise ValueError(
                f"{vname} must have as many rows as {kname} ({shapes[kname][-2]}), "
                f"got {shapes[vname][-2]}"
            )
        if shapes[vname][-1] != dv:
            raise ValueError(
                f"{vname} must have width {dv} (as {values[0][0]}), got {shapes[vname]}"
            )
    return xp, batch


def check_mask(mask: Any, name: str, rows: int, cols: int, batch: tuple[int, ...]) -> None:
    """Check a boolean mask of shape ``(rows, cols)`` or ``batch + (rows, cols)``.

    ``True`` means "may attend". Every query row must keep at least one key, since
    a softmax over nothing is undefined.
    """
    shape = getattr(mask, "shape", None)
    if shape is None or not hasattr(mask, "dtype"):
        raise TypeError(f"{name} must be a boolean array, got {type(mask).__name__}")
    if "bool" not in str(mask.dtype):
        raise TypeError(f"{name} must have a boolean dtype, got {mask.dtype}")
    shape = tuple(int(s) for s in shape)
    if shape not in ((rows, cols), (*batch, rows, cols)):
        raise ValueError(
            f"{name} must have shape {(rows, cols)} or {(*batch, rows, cols)}, got {shape}"
        )
    xp = array_namespace(mask)
    if not bool(xp.all(xp.any(mask, axis=-1))):
        raise ValueError(f"{name} leaves a query row with no key to attend to")


def check_block(block: int | None, name: str = "block") -> int | None:
    """Return ``block`` after checking it is None or a positive integer."""
    if block is None:
        return None
    if isinstance(block, bool) or not isinstance(block, int | np.integer):
        raise TypeError(f"{name} must be a positive integer or None, got {type(block).__name__}")
    if block < 1:
        raise ValueError(f"{name} must be >= 1, got {block}")
    return int(block)


def over_batch(
    xp: ModuleType,
    batch: tuple[int, ...],
    kernel: Callable[..., Any],
    arrays: Sequence[Any],
    masks: Sequence[Any | None] = (),
) -> Any:
    """Flatten the leading dimensions to one, call ``kernel`` on 3-D arrays, restore.

    Kernels compute on ``(count, n, d)`` arrays with batched matrix products, so a
    batch of many small problems (training) costs one call, not a Python loop.
    Masks of shape ``(rows, cols)`` become ``(1, rows, cols)`` and broadcast.
    """
    count = math.prod(batch)
    flat = [xp.reshape(a, (count, *a.shape[-2:])) for a in arrays]
    flat_masks = [None if m is None else xp.reshape(m, (-1, *m.shape[-2:])) for m in masks]
    out = kernel(*flat, *flat_masks)
    return xp.reshape(out, (*batch, *out.shape[-2:]))


def in_place_ok(xp: ModuleType) -> bool:
    """Whether temporaries may be updated in place (numpy; torch may need them for autograd)."""
    return is_numpy(xp)
