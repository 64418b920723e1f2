"""Input checks raise early, name the argument, and never touch the input."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from hypothesis import given
from hypothesis import strategies as st

from numlib.validate import (
    as_generator,
    check_finite,
    check_operator,
    check_positive_int,
    check_tolerance,
    check_tolerances,
    check_vector,
)


def test_check_vector_accepts_float_vectors_and_leaves_them_alone():
    v = np.array([1.0, 2.0])
    check_vector(v, "v", size=2)
    np.testing.assert_array_equal(v, [1.0, 2.0])


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        ([1.0, 2.0], TypeError, "v must be an array, got list"),
        (np.ones((2, 2)), ValueError, r"v must be 1-D, got shape \(2, 2\)"),
        (np.ones(0), ValueError, "v must not be empty"),
        (np.ones(3), ValueError, "v must have length 2, got 3"),
        (np.arange(2), TypeError, "v must have a floating-point dtype"),
        (np.array([1.0, np.nan]), ValueError, "v contains NaN or Inf"),
    ],
)
def test_check_vector_rejects(value, error, match):
    with pytest.raises(error, match=match):
        check_vector(value, "v", size=2)


@pytest.mark.parametrize(
    "operator",
    [np.eye(3), sp.eye_array(3, format="csr"), spla.aslinearoperator(np.eye(3))],
)
def test_check_operator_returns_shape(operator):
    assert check_operator(operator) == (3, 3)


def test_check_operator_accepts_rectangular_when_asked():
    assert check_operator(np.ones((3, 2)), square=False) == (3, 2)


def test_check_operator_rejects_integer_linear_operator():
    op = spla.LinearOperator((2, 2), matvec=lambda x: x, dtype=np.int64)
    with pytest.raises(TypeError, match="A must have a floating-point dtype"):
        check_operator(op)


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_check_tolerance_accepts_exactly_the_finite_non_negative_reals(value):
    if np.isfinite(value) and value >= 0:
        assert check_tolerance(value, "tol") == value
    else:
        with pytest.raises(ValueError, match="tol must be finite and >= 0"):
            check_tolerance(value, "tol")


def test_check_tolerance_rejects_non_numbers():
    with pytest.raises(TypeError, match="tol must be a real number"):
        check_tolerance("1e-3", "tol")
    with pytest.raises(TypeError, match="tol must be a real number"):
        check_tolerance(True, "tol")


@given(st.sampled_from([0, 0.0, 1e-300, 1e-8, 1]), st.sampled_from([0, 0.0, 1e-300, 1.0]))
def test_check_tolerances_needs_one_positive_tolerance(rtol, atol):
    if rtol > 0 or atol > 0:
        assert check_tolerances(rtol, atol) == (rtol, atol)
    else:
        with pytest.raises(ValueError, match="rtol and atol must not both be 0"):
            check_tolerances(rtol, atol)


def test_check_tolerances_checks_each_by_name():
    with pytest.raises(ValueError, match="rtol must be finite and >= 0"):
        check_tolerances(-1.0, 1.0)
    with pytest.raises(ValueError, match="atol must be finite and >= 0"):
        check_tolerances(1e-8, float("inf"))
    with pytest.raises(TypeError, match="atol must be a real number"):
        check_tolerances(1e-8, None)


@given(st.integers(-5, 5), st.integers(0, 2))
def test_check_positive_int(value, minimum):
    if value >= minimum:
        assert check_positive_int(value, "k", minimum=minimum) == value
    else:
        with pytest.raises(ValueError, match=f"k must be >= {minimum}"):
            check_positive_int(value, "k", minimum=minimum)


def test_as_generator_same_seed_same_stream():
    assert as_generator(5).random() == as_generator(5).random()
    generator = np.random.default_rng(1)
    assert as_generator(generator) is generator
    assert isinstance(as_generator(None), np.random.Generator)
    with pytest.raises(TypeError, match="rng must be"):
        as_generator(1.5)


@given(
    values=st.lists(
        st.floats(allow_nan=True, allow_infinity=True, width=64) | st.sampled_from([1e308, -1e308]),
        min_size=1,
        max_size=40,
    ),
    dtype=st.sampled_from([np.float64, np.float32, np.complex128]),
)
def test_check_finite_rejects_exactly_the_arrays_with_nan_or_inf(values, dtype):
    # finite entries whose sum overflows (1e308 + 1e308, or any float32 cast past its
    # range) must still pass: only the entries decide, not their sum
    with np.errstate(over="ignore"):
        array = np.asarray(values, dtype=dtype)
    if np.isfinite(array).all():
        check_finite(array, "A")
    else:
        with pytest.raises(ValueError, match="A contains NaN or Inf"):
            check_finite(array, "A")
