"""HiPPO matrices against their published entries and their NPLR identities."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numlib.hippo import MEASURES, hippo, hippo_fout, hippo_lagt, hippo_legs, hippo_legt, hippo_nplr

sizes = st.integers(1, 40)
even_sizes = st.integers(1, 20).map(lambda k: 2 * k)


@given(sizes)
def test_legs_entries(n):
    A, B = hippo_legs(n)
    for i in range(n):
        assert B[i] == pytest.approx(math.sqrt(2 * i + 1), rel=1e-15)
        for k in range(n):
            if i > k:
                expected = -math.sqrt(2 * i + 1) * math.sqrt(2 * k + 1)
            elif i == k:
                expected = -(i + 1)
            else:
                expected = 0.0
            assert A[i, k] == pytest.approx(expected, rel=1e-14, abs=0)


@given(sizes)
def test_legt_is_scaled_lmu_matrix(n):
    # S4's closed form, entry by entry: -1/2 sqrt((2i+1)(2k+1)) times 1 on and below
    # the diagonal and (-1)^(i-k) above it; B_i = sqrt(2i+1)/2.
    A, B = hippo_legt(n)
    for i in range(n):
        assert B[i] == pytest.approx(0.5 * math.sqrt(2 * i + 1))
        for k in range(n):
            sign = 1.0 if i >= k else (-1.0) ** (i - k)
            assert A[i, k] == pytest.approx(-0.5 * sign * math.sqrt((2 * i + 1) * (2 * k + 1)))


@given(sizes)
def test_lagt_entries(n):
    A, B = hippo_lagt(n)
    expected = np.where(np.arange(n)[:, None] > np.arange(n)[None, :], -1.0, 0.0)
    np.fill_diagonal(expected, -0.5)
    np.testing.assert_array_equal(A, expected)
    np.testing.assert_array_equal(B, np.ones(n))


def test_fout_small_case_by_hand():
    A, B = hippo_fout(4)
    s2 = math.sqrt(2.0)
    b = np.array([1.0, 0.0, s2, 0.0])
    skew = np.zeros((4, 4))
    # d = (0, 0, 1): only the frequency-1 pair (states 2, 3) rotates, at rate pi
    skew[3, 2], skew[2, 3] = np.pi, -np.pi
    np.testing.assert_allclose(A, skew - np.outer(b, b), rtol=0, atol=1e-15)
    np.testing.assert_array_equal(B, b)


@pytest.mark.parametrize("measure", MEASURES)
@given(n=even_sizes)
def test_nplr_identity_and_normality(measure, n):
    F = hippo_nplr(measure, n)
    A, _ = hippo(measure, n)
    scale = np.abs(A).max()
    np.testing.assert_array_equal(F.A, A)
    np.testing.assert_allclose(F.N - F.P @ F.Q.T, A, rtol=0, atol=4 * np.finfo(float).eps * scale)
    N = F.N
    # skew-symmetric plus shift * I, hence normal
    np.testing.assert_array_equal(N - F.shift * np.eye(n), -(N - F.shift * np.eye(n)).T)
    np.testing.assert_allclose(N @ N.T, N.T @ N, rtol=0, atol=1e-13 * max(scale, 1.0) ** 2)
    np.testing.assert_allclose(np.linalg.eigvals(N).real, F.shift, atol=1e-10 * max(scale, 1.0))


@pytest.mark.parametrize("measure", MEASURES)
def test_stable(measure):
    A, _ = hippo(measure, 32)
    assert np.linalg.eigvals(A).real.max() <= 1e-10


def test_legs_nplr_shift_and_rank():
    F = hippo_nplr("legs", 10)
    assert F.shift == -0.5
    np.testing.assert_allclose(F.P[:, 0], np.sqrt(np.arange(10) + 0.5))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: hippo_legs(0), "n must be >= 1"),
        (lambda: hippo_fout(5), "n must be even"),
        (lambda: hippo_lagt(4, beta=-1.0), "beta"),
        (lambda: hippo("legx", 4), "measure"),
    ],
)
def test_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_type():
    with pytest.raises(TypeError, match="n must be an integer"):
        hippo_legs(3.0)
