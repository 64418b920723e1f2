"""The array namespace follows the inputs; numpy stays plain numpy."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from numlib.backend import array_namespace, inner, is_floating, is_numpy, to_numpy

torch = pytest.importorskip("torch")


def test_numpy_and_sparse_inputs_give_numpy_itself():
    assert array_namespace(np.ones(3)) is np
    assert array_namespace(np.ones(3), sp.eye_array(3), None, 2.0) is np


def test_torch_inputs_give_a_torch_namespace():
    xp = array_namespace(torch.ones(3))
    assert "torch" in xp.__name__
    assert not is_numpy(xp)


def test_mixing_libraries_is_rejected():
    with pytest.raises(TypeError, match="different libraries"):
        array_namespace(np.ones(3), torch.ones(3))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (np.ones(2), True),
        (np.ones(2, dtype=np.complex64), True),
        (np.ones(2, dtype=int), False),
        (np.ones(2, dtype=bool), False),
        (torch.ones(2), True),
        (torch.ones(2, dtype=torch.int64), False),
    ],
)
def test_is_floating(value, expected):
    assert is_floating(value) is expected


def test_inner_conjugates_the_first_argument_in_every_namespace():
    a = np.array([1 + 2j, 3 - 1j])
    b = np.array([2 - 1j, 1j])
    expected = np.sum(np.conj(a) * b)
    assert inner(np, a, b) == pytest.approx(expected)
    at, bt = torch.from_numpy(a), torch.from_numpy(b)
    assert inner(array_namespace(at), at, bt) == pytest.approx(expected)


def test_to_numpy_round_trips():
    values = np.arange(4.0)
    assert to_numpy(values) is values
    np.testing.assert_array_equal(to_numpy(torch.from_numpy(values)), values)


def test_import_numlib_pulls_in_no_heavy_dependency():
    code = (
        "import sys, numlib, numlib.backend, numlib.validate, numlib.linop, numlib.result\n"
        "import numlib.kron, numlib.bitplane, numlib.diag, numlib.hippo\n"
        "import numlib.sketch, numlib.lstsq, numlib.completion\n"
        "import numlib.lowrank, numlib.nystrom, numlib.monarch, numlib.attention\n"
        "import numlib.calibration, numlib.spectra, numlib.ptd_optimize, numlib.pseudospectra\n"
        "heavy = {'torch', 'cupy', 'petsc4py', 'array_api_compat', 'matplotlib'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"
