"""The cpu-layer case's oracle grid, written from the format's definition, against numlib's."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from numlib import bitplane
from validation.suites.bitplane_layer import _odd_grid


@given(
    bits=st.integers(1, 8),
    seed=st.integers(0, 2**32 - 1),
    group=st.sampled_from([None, 1, 4, 16]),
    zero_row=st.booleans(),
)
def test_odd_grid_is_numlibs_quantiser(bits, seed, group, zero_row):
    # Two implementations of one definition: they must agree bit for bit on normal data.
    a = np.random.default_rng(seed).standard_normal((4, 32)) * 10.0 ** np.arange(-3, 1)[:, None]
    if zero_row:
        a[0] = 0.0
    if group is None:
        q = bitplane.quantize(a, bits)
    else:
        q = bitplane.quantize(a, bits, granularity="group", group_size=group)
    assert np.array_equal(_odd_grid(a, bits, group or a.shape[1]), bitplane.dequantize(q))
