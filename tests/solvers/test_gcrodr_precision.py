"""GCRO-DR with a single-precision basis: the same answers, to the same tolerance."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from hypothesis import given, settings
from hypothesis import strategies as st

import solvers.gcrodr as gcrodr_module
from numlib.result import ConvergenceWarning
from solvers.gcrodr import gcrodr
from solvers.problems import convection_diffusion, darcy


def _jacobi(A):
    inverse = 1.0 / A.diagonal()
    return spla.LinearOperator(A.shape, matvec=lambda v: inverse * np.ravel(v), dtype=A.dtype)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**16), st.integers(6, 16), st.integers(1, 5), st.booleans())
def test_single_basis_keeps_the_arnoldi_relation_to_single_precision(seed, m, k, preconditioned):
    """After every cycle with single-precision rows (two Gram-Schmidt passes):
    ``[C; V]`` is orthonormal and ``A Z^T = [C; V]^T [B; H]`` holds to single
    precision, formed here in double from the stored rows, along a sequence of two
    systems; and the solutions meet a tolerance far below single precision."""
    systems = [convection_diffusion(10, 5.0 + seed % 7), darcy(10, rng=seed)]
    eps = float(np.finfo(np.float32).eps)
    checked = []
    refine = gcrodr_module._Recycler.refine

    def check_then_refine(self, cycle):
        W = np.vstack([self.C, cycle.V]).astype(np.float64)
        assert W.dtype == np.float64 and cycle.V.dtype == np.float32
        np.testing.assert_allclose(W @ W.T, np.eye(len(W)), atol=100 * eps)
        Z = cycle.Z.astype(np.float64)
        AZ = (system.A @ Z.T).T
        G = np.vstack([cycle.B, cycle.H])
        np.testing.assert_allclose(AZ, G.T @ W, atol=100 * eps * np.abs(AZ).max())
        checked.append(cycle.steps)
        refine(self, cycle)

    space = None
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gcrodr_module._Recycler, "refine", check_then_refine)
        for system in systems:
            M = _jacobi(system.A) if preconditioned else None
            result = gcrodr(system.A, system.b, m=m, k=min(k, m - 1), M=M, recycle=space,
                            rtol=1e-11, basis_precision="single")  # fmt: skip
            residual = np.linalg.norm(system.b - system.A @ result.x)
            assert result.converged and residual <= 1e-11 * np.linalg.norm(system.b)
            space = result.info["recycle"]
    assert checked


@pytest.mark.parametrize("reorthogonalize", [None, "always"])
def test_single_basis_takes_about_the_double_iterations_along_a_sequence(reorthogonalize):
    """Single-precision rows reach a tolerance far below single precision (the residual
    is recomputed in double after every cycle), in about the iterations of double rows
    with PETSc's one pass, and the carried space still pays on the next system."""
    systems = [darcy(32, rng=seed) for seed in (3, 4, 5)]
    counts = {}
    for mode in ((reorthogonalize, "single"), ("never", "working")):
        space, counts[mode] = None, []
        for system in systems:
            result = gcrodr(system.A, system.b, m=30, k=10, rtol=1e-11, M=_jacobi(system.A),
                            recycle=space, reorthogonalize=mode[0],
                            basis_precision=mode[1])  # fmt: skip
            residual = np.linalg.norm(system.b - system.A @ result.x)
            assert result.converged and residual <= 1e-11 * np.linalg.norm(system.b)
            assert result.info["basis_precision"] == mode[1]
            counts[mode].append(result.iterations)
            space = result.info["recycle"]
        expected = np.float32 if mode[1] == "single" else np.float64
        assert space.U.dtype == expected and space.Y.dtype == expected
    single, double = counts[(reorthogonalize, "single")], counts[("never", "working")]
    assert sum(single) <= 1.1 * sum(double) + 5
    assert single[1] < single[0]


def test_single_basis_for_complex_and_torch_inputs():
    """complex128 systems store complex64 rows; torch tensors stay torch."""
    rng = np.random.default_rng(2)
    n = 60
    A = np.eye(n) * 4 + (rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))) / 8
    b = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    result = gcrodr(A, b, m=10, k=4, rtol=1e-12, basis_precision="single")
    assert result.info["recycle"].U.dtype == np.complex64
    np.testing.assert_allclose(result.x, np.linalg.solve(A, b), rtol=1e-10)
    torch = pytest.importorskip("torch")
    real = np.eye(n) * 3 + rng.standard_normal((n, n)) / 7
    out = gcrodr(torch.from_numpy(real), torch.from_numpy(b.real), m=10, k=3, rtol=1e-12,
                 basis_precision="single")  # fmt: skip
    assert isinstance(out.x, torch.Tensor) and out.info["recycle"].U.dtype == torch.float32
    np.testing.assert_allclose(out.x.numpy(), np.linalg.solve(real, b.real), rtol=1e-10)


def test_single_space_is_adopted_by_a_double_solve_and_back():
    """A space stored in single precision seeds a working-precision solve (converted
    once) and the other way round; both meet the tolerance and recycling still pays."""
    first, second = darcy(24, rng=0), darcy(24, rng=1)
    fresh = gcrodr(second.A, second.b, m=30, k=10, rtol=1e-10)
    for precisions in (("single", "working"), ("working", "single")):
        seed = gcrodr(first.A, first.b, m=30, k=10, rtol=1e-10, basis_precision=precisions[0])
        result = gcrodr(second.A, second.b, m=30, k=10, rtol=1e-10,
                        basis_precision=precisions[1], recycle=seed.info["recycle"])  # fmt: skip
        assert result.converged and result.iterations < fresh.iterations


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"basis_precision": "half"}, "basis_precision must be one of"),
        *[
            (
                {"basis_precision": "single", "reorthogonalize": mode},
                f"basis_precision='single' needs two Gram-Schmidt passes at every step: "
                f"reorthogonalize='always' \\(or unset\\), not '{mode}'",
            )
            for mode in ("never", "ifneeded")
        ],
        ({"reorthogonalize": "sometimes"}, "reorthogonalize must be one of"),
    ],
)
def test_bad_precision_settings_are_refused_before_any_work(kwargs, match):
    calls = []
    A = spla.LinearOperator((5, 5), matvec=lambda v: calls.append(1) or np.ravel(v), dtype=float)
    with pytest.raises(ValueError, match=match):
        gcrodr(A, np.ones(5), **kwargs)
    assert not calls
    with pytest.raises(ValueError, match=match):
        gcrodr(sp.eye_array(5), np.ones(5), **kwargs)


def test_invariant_single_space_is_refined_not_reported_as_breakdown():
    """With the exact inverse as preconditioner the Krylov space is invariant after one
    step; with single rows that solves the cycle only to their rounding (amplified by
    cond(A)), and the next cycle refines it instead of a breakdown being reported."""
    system = darcy(32, rng=0)
    lu = spla.splu(sp.csc_array(system.A))
    M = spla.LinearOperator(system.A.shape, matvec=lu.solve, dtype=float)
    result = gcrodr(system.A, system.b, m=40, k=20, rtol=1e-10, M=M, basis_precision="single")
    assert result.converged and "breakdown" not in result.info
    assert np.linalg.norm(system.b - system.A @ result.x) <= 1e-10 * np.linalg.norm(system.b)
    assert result.iterations <= 4


@pytest.mark.parametrize("basis_precision", ["working", "single"])
def test_singular_operator_is_still_a_reported_breakdown(basis_precision):
    """b outside range(A): cycles stop making progress, and that is reported."""
    A = np.diag([1.0, 2.0, 0.0])
    with pytest.warns(ConvergenceWarning, match="invariant"):
        result = gcrodr(A, np.ones(3), m=3, k=1, rtol=1e-10, basis_precision=basis_precision)
    assert not result.converged and "breakdown" in result.info
    np.testing.assert_allclose(result.x[:2], [1.0, 0.5], rtol=1e-6)
