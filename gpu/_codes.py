"""Checked code arrays on the device, shared by the packing and the INT8 paths.

Bit widths are checked by :func:`numlib.bitplane.check_bits`, the one check of a width
shared with numlib and learned.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def device_codes(codes: Any, bits: int, *, check_codes: bool) -> Any:
    """Return ``codes`` (numpy or cupy, ``rows x k``) as a cupy array, checked first.

    ``check_codes`` reads the minimum and maximum back to the host (a synchronisation)
    to check the range ``[0, 2**bits)``; without it codes out of range give wrong
    results silently (see :func:`gpu.bitplane.pack_gpu`).

    Raises
    ------
    TypeError
        If ``codes`` is not an integer array.
    ValueError
        If ``codes`` is not 2-D or is empty, or (when checked) holds codes out of range.
    """
    import cupy

    if not np.issubdtype(np.dtype(codes.dtype), np.integer):
        raise TypeError(f"codes must be an integer array, got {codes.dtype}")
    if codes.ndim != 2 or codes.size == 0:
        raise ValueError(f"codes must be a non-empty 2-D array, got shape {codes.shape}")
    c = cupy.asarray(codes)
    if check_codes:
        low, high = int(c.min()), int(c.max())
        if low < 0 or high >= 1 << bits:
            raise ValueError(f"codes must lie in [0, 2**{bits}), got values in [{low}, {high}]")
    return c
