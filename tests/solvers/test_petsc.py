"""solvers.petsc on one rank: conversions, the distributed array namespace, solve, python KSP.

References are independent: scipy.sparse products, numpy QR, scipy's sparse LU.
The same code under ``mpiexec -n 2`` is tested in test_petsc_mpi.py.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("petsc4py", reason="petsc4py (numlib[petsc]) is not installed")

from petsc4py import PETSc

from numlib.result import ConvergenceWarning
from solvers.arnoldi import orthogonalize
from solvers.gcrodr import gcrodr
from solvers.petsc import (
    DistributedRows,
    DistributedVector,
    Layout,
    PetscOperator,
    PetscPreconditioner,
    as_distributed,
    gather_vec,
    mat_from_local_rows,
    ownership,
    preconditioner,
    solve,
    to_petsc_mat,
    to_petsc_vec,
    to_vec,
)
from solvers.petsc.ksp import GCRODR, set_numlib_ksp
from solvers.problems import darcy


@st.composite
def sparse_systems(draw):
    """Random sparse, strictly diagonally dominant (so nonsingular) matrices and vectors."""
    n = draw(st.integers(1, 80))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    A = sp.random_array((n, n), density=draw(st.floats(0.0, 0.3)), rng=rng, format="csr")
    A = A - A.mean() * (A != 0)
    A = A + sp.diags_array(abs(A).sum(axis=1) + 1.0)
    return sp.csr_array(A), rng.standard_normal(n)


def _layout(n: int) -> Layout:
    return Layout(PETSc.COMM_SELF, [0, n])


@settings(max_examples=25)
@given(sparse_systems())
def test_matrix_conversion_keeps_every_entry(system):
    A, x = system
    mat = to_petsc_mat(A)
    indptr, indices, data = mat.getValuesCSR()
    rebuilt = sp.csr_array((data, indices, indptr), shape=A.shape)
    assert abs(rebuilt - A).max() == 0.0 if A.nnz else rebuilt.nnz == 0
    op = PetscOperator(mat)
    np.testing.assert_allclose(op.matvec(x), A @ x, rtol=1e-13, atol=1e-13)


@settings(max_examples=25)
@given(sparse_systems())
def test_vector_round_trip_is_exact_and_leaves_input_alone(system):
    _, x = system
    before = x.copy()
    vec = to_petsc_vec(x)
    np.testing.assert_array_equal(gather_vec(vec), x)
    np.testing.assert_array_equal(gather_vec(to_vec(as_distributed(vec))), x)
    np.testing.assert_array_equal(x, before)


def test_ownership_is_petsc_default_split():
    vec = PETSc.Vec().createMPI((PETSc.DECIDE, 17), comm=PETSc.COMM_WORLD)
    assert ownership(17) == vec.getOwnershipRange()


@settings(max_examples=30)
@given(st.integers(1, 40), st.integers(1, 8), st.integers(0, 2**32 - 1))
def test_block_operations_match_numpy(n, k, seed):
    rng = np.random.default_rng(seed)
    rows_np, w_np = rng.standard_normal((k, n)), rng.standard_normal(n)
    layout = _layout(n)
    rows = DistributedRows(rows_np.copy(), layout)
    w = DistributedVector(w_np.copy(), layout)
    np.testing.assert_allclose(rows @ w, rows_np @ w_np, rtol=1e-12, atol=1e-12)
    c = rng.standard_normal(k)
    np.testing.assert_allclose((c @ rows).local, c @ rows_np, rtol=1e-12, atol=1e-12)
    gram = rows @ layout.matrix_transpose(rows)
    np.testing.assert_allclose(gram, rows_np @ rows_np.T, rtol=1e-12, atol=1e-12)
    # Arnoldi's Gram-Schmidt runs unchanged on the distributed block.
    h_np, norm_np = orthogonalize(np, rows_np, k, w_np.copy())
    h, norm = orthogonalize(layout, rows, k, w)
    np.testing.assert_allclose(h, h_np, rtol=1e-10, atol=1e-10)
    assert norm == pytest.approx(norm_np, rel=1e-10, abs=1e-10)
    # The fused update writes into the vector's own storage.
    local = w.local
    layout.subtract_combination(w, c, rows)
    assert w.local is local
    np.testing.assert_allclose(local, w_np - h_np @ rows_np - c @ rows_np, rtol=1e-9, atol=1e-9)
    block = DistributedRows(rows_np.copy(), layout)
    mixing = rng.standard_normal((k, k))
    layout.subtract_combination(block, mixing, rows)
    np.testing.assert_allclose(block.local, rows_np - mixing @ rows_np, rtol=1e-9, atol=1e-9)


@settings(max_examples=30)
@given(st.integers(1, 40), st.integers(1, 8), st.integers(0, 2**32 - 1))
def test_tsqr_is_a_qr_factorisation(n, k, seed):
    k = min(k, n)
    rows_np = np.random.default_rng(seed).standard_normal((k, n))
    layout = _layout(n)
    Q, R = layout.linalg.qr(layout.matrix_transpose(DistributedRows(rows_np, layout)))
    q = layout.matrix_transpose(Q).local.T
    assert q.shape == (n, k) and R.shape == (k, k)
    np.testing.assert_allclose(q.T @ q, np.eye(k), atol=1e-12)
    np.testing.assert_allclose(q @ R, rows_np.T, atol=1e-12 * max(1.0, abs(rows_np).max()))
    np.testing.assert_allclose(np.tril(R, -1), 0.0, atol=0.0)


def test_arrays_of_different_layouts_do_not_mix():
    a = DistributedVector(np.ones(3), _layout(3))
    b = DistributedVector(np.ones(4), _layout(4))
    with pytest.raises(ValueError, match="laid out"):
        a + b
    with pytest.raises(ValueError, match="local must have shape"):
        DistributedVector(np.ones(2), _layout(3))


@pytest.mark.parametrize("method", ["gcrodr", "gmres", "cg"])
def test_solve_meets_tolerance_against_sparse_lu(method):
    system = darcy(16, rng=3)
    A = to_petsc_mat(system.A)
    b = to_petsc_vec(system.b, like=A)
    result = solve(A, b, method=method, rtol=1e-10, m=30, k=10, restart=30)
    x = gather_vec(result.x)
    exact = spla.spsolve(sp.csc_array(system.A), system.b)
    assert result.converged
    assert np.linalg.norm(system.A @ x - system.b) <= 1e-10 * np.linalg.norm(system.b) * 1.01
    # ||x - x*|| <= ||A^-1|| ||r||, with ||A^-1|| = 1 / lambda_min for this SPD matrix.
    inverse_norm = 1.0 / np.linalg.eigvalsh(system.A.toarray())[0]
    assert np.linalg.norm(x - exact) <= inverse_norm * 1e-10 * np.linalg.norm(system.b) * 1.01


@pytest.mark.parametrize("basis_precision", ["working", "single"])
def test_gcrodr_on_petsc_takes_the_serial_iterations_and_recycles(basis_precision):
    systems = [darcy(24, rng=seed) for seed in (0, 1)]
    serial, petsc_run, recycle_serial, recycle_petsc = [], [], None, None
    options = {"rtol": 1e-9, "m": 30, "k": 10, "basis_precision": basis_precision}
    for system in systems:
        ref = gcrodr(system.A, system.b, recycle=recycle_serial, **options)
        recycle_serial = ref.info["recycle"]
        A = to_petsc_mat(system.A)
        b = to_petsc_vec(system.b, like=A)
        ours = solve(A, b, recycle=recycle_petsc, **options)
        assert ours.info["recycle"].U.dtype == ref.info["recycle"].U.dtype
        recycle_petsc = ours.info["recycle"]
        serial.append(ref.iterations)
        petsc_run.append(ours.iterations)
        np.testing.assert_allclose(gather_vec(ours.x), ref.x, rtol=1e-6, atol=1e-9)
    assert petsc_run == serial
    assert petsc_run[1] < petsc_run[0]


@pytest.mark.parametrize(
    ("method", "per_step", "options"),
    [
        ("gcrodr", 2.5, {"reorthogonalize": "never"}),
        ("gmres", 2.2, {"reorthogonalize": "never"}),
        ("gcrodr", 2.5, {"basis_precision": "single"}),
    ],
)
def test_gram_schmidt_costs_two_reductions_per_step(method, per_step, options, monkeypatch):
    """With one Gram-Schmidt pass (PETSc's default), an Arnoldi step of GMRES and of
    GCRO-DR needs two all-reductions: the coefficients against ``[C; V]`` and the new
    norm, as PETSc's GMRES (VecMDot, VecNorm); with two passes (single-precision rows)
    so does GCRO-DR's, each pass's product bringing the vector's norm along; the rest
    is per cycle and per system."""
    calls = []
    reduce = Layout.allreduce

    def counting(self, values):
        calls.append(np.size(values))
        return reduce(self, values)

    monkeypatch.setattr(Layout, "allreduce", counting)
    space = None
    for seed in (0, 1):
        system = darcy(32, rng=seed)
        A = to_petsc_mat(system.A)
        calls.clear()
        result = solve(A, to_petsc_vec(system.b, like=A), method=method, rtol=1e-9, m=40,
                       k=20, restart=40, recycle=space, **options)  # fmt: skip
        space = result.info.get("recycle")
        assert result.converged and result.iterations > 40
        assert len(calls) <= per_step * result.iterations


@pytest.mark.parametrize("pc_type", ["ilu", "bjacobi", "asm", "gamg", "jacobi"])
def test_petsc_preconditioners_apply_on_the_right(pc_type):
    system = darcy(24, rng=4)
    A = to_petsc_mat(system.A)
    b = to_petsc_vec(system.b, like=A)
    plain = solve(A, b, rtol=1e-9, m=30, k=10)
    result = solve(A, b, M=preconditioner(A, pc_type), rtol=1e-9, m=30, k=10)
    x = gather_vec(result.x)
    assert result.converged and result.iterations < plain.iterations
    assert np.linalg.norm(system.A @ x - system.b) <= 1e-9 * np.linalg.norm(system.b) * 1.01


def test_non_convergence_is_reported():
    system = darcy(24, rng=5)
    A = to_petsc_mat(system.A)
    with pytest.warns(ConvergenceWarning):
        result = solve(A, to_petsc_vec(system.b, like=A), rtol=1e-12, maxiter=5)
    assert not result.converged and result.iterations == 5


class _RecordingPC:
    """Context of a PETSc ``python`` PC that records its set-up and applications."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def setUp(self, pc) -> None:
        self.calls.append("setUp")

    def apply(self, pc, x, y) -> None:
        self.calls.append("apply")
        x.copy(y)


class _CountingOperator(PetscOperator):
    """``A`` that counts its products."""

    products = 0

    def _kernel(self, x, y) -> None:
        self.products += 1
        super()._kernel(x, y)


def _with_nan(mat: PETSc.Mat) -> PETSc.Mat:
    out = mat.copy()
    out.setValue(0, 0, np.nan)
    out.assemble()
    return out


def _bad_calls(A, b, system):
    """(keyword arguments of solve, error type, message) for every refused input."""
    nan_b = b.copy()
    nan_b.setValue(3, np.nan)
    nan_b.assemble()
    serial_space = gcrodr(system.A, system.b, m=10, k=4).info["recycle"]
    return [
        ({"method": "bicg"}, ValueError, "method must be one of"),
        ({"b": system.b}, TypeError, r"b must be a petsc4py\.PETSc\.Vec"),
        ({"b": to_petsc_vec(np.ones(10))}, ValueError, "b is laid out"),
        ({"b": nan_b}, ValueError, "NaN or Inf"),
        ({"x0": to_petsc_vec(np.ones(10))}, ValueError, "x0 is laid out"),
        ({"x0": nan_b}, ValueError, "NaN or Inf"),
        ({"x0": system.b}, TypeError, "x0 must be"),
        ({"A": _with_nan(A)}, ValueError, "A has NaN or Inf"),
        ({"m": 5, "k": 5}, ValueError, "k must be < m"),
        ({"rtol": -1.0}, ValueError, "rtol"),
        ({"maxiter": 0}, ValueError, "maxiter"),
        ({"recycle": "x"}, TypeError, "recycle must be a RecycleSpace"),
        ({"recycle": serial_space}, ValueError, "same layout"),
        ({"method": "cg", "recycle": serial_space}, ValueError, "recycle is GCRO-DR's"),
        ({"method": "cg", "reorthogonalize": "bad"}, ValueError, "reorthogonalize"),
    ]


def test_bad_input_is_refused_before_any_product_or_preconditioner_set_up():
    system = darcy(8, rng=0)
    A = to_petsc_mat(system.A)
    b = to_petsc_vec(system.b, like=A)
    for overrides, error, message in _bad_calls(A, b, system):
        pc = PETSc.PC().create()
        pc.setType("python")
        recorder = _RecordingPC()
        pc.setPythonContext(recorder)
        pc.setOperators(A)
        arguments = {"A": A, "b": b, "M": pc} | overrides
        arguments["A"] = _CountingOperator(arguments["A"])
        with pytest.raises(error, match=message):
            solve(**arguments)
        assert arguments["A"].products == 0 and recorder.calls == [], overrides
    other = to_petsc_mat(darcy(9, rng=0).A)
    with pytest.raises(ValueError, match="M is laid out"):
        solve(A, b, M=preconditioner(other, "jacobi"))


def test_solve_leaves_b_and_x0_alone():
    system = darcy(12, rng=1)
    A = to_petsc_mat(system.A)
    b = to_petsc_vec(system.b, like=A)
    x0 = to_petsc_vec(np.linspace(0.0, 1.0, system.b.shape[0]), like=A)
    before = (b.getArray().copy(), x0.getArray().copy())
    result = solve(A, b, x0=x0, rtol=1e-10)
    assert result.converged
    assert np.array_equal(b.getArray(), before[0]) and np.array_equal(x0.getArray(), before[1])


def test_conversions_refuse_bad_input():
    with pytest.raises(TypeError, match=r"scipy\.sparse matrix or a numpy array"):
        to_petsc_mat([[1.0]])
    with pytest.raises(ValueError, match="square"):
        to_petsc_mat(np.ones((2, 3)))
    with pytest.raises(TypeError, match="complex"):
        to_petsc_vec(np.ones(3, dtype=complex))
    with pytest.raises(TypeError, match="like must be"):
        to_petsc_vec(np.ones(3), like=[1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match="out must be"):
        to_vec(DistributedVector(np.ones(3), _layout(3)), out=np.ones(3))
    with pytest.raises(TypeError, match="vec must be"):
        gather_vec(np.ones(3))
    with pytest.raises(ValueError, match="n must be >= 0"):
        ownership(-5)
    with pytest.raises(TypeError, match="n must be an integer"):
        ownership(2.7)
    with pytest.raises(TypeError, match="comm must be"):
        ownership(4, comm="world")


@pytest.mark.parametrize(
    ("local", "n", "error", "message"),
    [
        (sp.eye(2, 3, format="csr"), 3, ValueError, "add up to 2, not n=3"),
        (np.eye(2), 3, ValueError, "n=3 columns"),
        (np.array([[np.nan, 1.0], [0.0, 1.0]]), 2, ValueError, "finite"),
        (np.eye(2, dtype=complex), 2, TypeError, "complex"),
        (np.eye(2), "2", TypeError, "n must be an integer"),
        (np.eye(2), 0, ValueError, "n must be >= 1"),
        ([[1.0]], 1, TypeError, "2-D scipy.sparse matrix or numpy array"),
        (np.ones(2), 2, TypeError, "2-D"),
    ],
)
def test_local_rows_are_checked_before_assembly(local, n, error, message):
    with pytest.raises(error, match=message):
        mat_from_local_rows(local, n)


def test_local_rows_assemble_the_matrix():
    A = darcy(6, rng=0).A
    mat = mat_from_local_rows(A, A.shape[0])
    dense = np.array([mat.getValues(i, range(A.shape[0])) for i in range(A.shape[0])])
    assert np.array_equal(dense, A.toarray())


@settings(max_examples=20)
@given(sparse_systems(), st.integers(1, 4))
def test_operator_applies_to_blocks_as_scipy_does(system, columns):
    A, b = system
    X = np.stack([b * (j + 1) for j in range(columns)], axis=1)
    op = PetscOperator(to_petsc_mat(A))
    assert np.allclose(op @ X, A @ X, rtol=1e-13, atol=1e-13 * abs(A).max())
    assert op.matvec(X[:, :1]).shape == (A.shape[0], 1)


@settings(max_examples=20)
@given(sparse_systems())
def test_adjoints_are_the_transposes(system):
    A, b = system
    op = PetscOperator(to_petsc_mat(A))
    assert np.allclose(op.rmatvec(b), A.T @ b, rtol=1e-13, atol=1e-13 * abs(A).max())
    jacobi = preconditioner(op.mat, "jacobi")
    assert np.allclose(jacobi.H @ b, b / A.diagonal(), rtol=1e-14, atol=0)


def test_preconditioner_refuses_bad_input():
    A = to_petsc_mat(darcy(6, rng=0).A)
    with pytest.raises(ValueError, match="pc_type 'nope'"):
        preconditioner(A, "nope")
    with pytest.raises(TypeError, match="mat must be"):
        preconditioner(np.eye(3), "jacobi")
    with pytest.raises(TypeError, match="options_prefix must be"):
        preconditioner(A, "jacobi", options_prefix=1)
    with pytest.raises(ValueError, match="no operators"):
        PetscPreconditioner(PETSc.PC().create())


def _ksp(pc_type: str, **tolerances) -> tuple[PETSc.KSP, GCRODR]:
    ksp = PETSc.KSP().create()
    context = set_numlib_ksp(ksp, "gcrodr", m=30, k=10)
    ksp.getPC().setType(pc_type)
    ksp.setTolerances(**tolerances)
    return ksp, context


@pytest.mark.parametrize("pc_type", ["none", "gamg", "bjacobi", "asm"])
def test_ksp_python_converges_with_petsc_preconditioners(pc_type):
    ksp, context = _ksp(pc_type, rtol=1e-9)
    iterations = []
    for seed in range(3):
        system = darcy(24, rng=seed)
        A = to_petsc_mat(system.A)
        x = A.createVecLeft()
        ksp.setOperators(A)
        ksp.solve(to_petsc_vec(system.b, like=A), x)
        residual = np.linalg.norm(system.A @ gather_vec(x) - system.b)
        assert ksp.getConvergedReason() == PETSc.KSP.ConvergedReason.CONVERGED_RTOL
        assert residual <= 1e-9 * np.linalg.norm(system.b) * 1.01
        assert ksp.getResidualNorm() == pytest.approx(residual, rel=1e-6)
        iterations.append(ksp.getIterationNumber())
        if seed:  # the space carried across operators removed part of the new residual
            assert context.last_result.info["recycled_residual_reduction"] < 1
    assert context.recycle is not None
    assert min(iterations[1:]) < iterations[0]


def test_ksp_python_reports_iteration_limit_and_reset_drops_space():
    ksp, context = _ksp("none", rtol=1e-12, max_it=7)
    system = darcy(24, rng=0)
    A = to_petsc_mat(system.A)
    ksp.setOperators(A)
    ksp.solve(to_petsc_vec(system.b, like=A), A.createVecLeft())
    assert ksp.getConvergedReason() == PETSc.KSP.ConvergedReason.DIVERGED_MAX_IT
    assert ksp.getIterationNumber() == 7
    assert context.recycle is not None
    ksp.reset()
    assert context.recycle is None


def test_ksp_python_reports_nan_and_honours_error_if_not_converged():
    system = darcy(8, rng=0)
    A = to_petsc_mat(system.A)
    b = to_petsc_vec(system.b, like=A)
    ksp, _ = _ksp("none", rtol=1e-8)
    ksp.setOperators(_shell_with_nan(A))
    ksp.solve(b, A.createVecLeft())
    assert ksp.getConvergedReason() == PETSc.KSP.ConvergedReason.DIVERGED_NANORINF
    ksp, _ = _ksp("none", rtol=1e-12, max_it=3)
    ksp.setErrorIfNotConverged(True)
    ksp.setOperators(A)
    with pytest.raises(PETSc.Error):
        ksp.solve(b, A.createVecLeft())


def _shell_with_nan(A: PETSc.Mat) -> PETSc.Mat:
    """A shell matrix (whose entries cannot be checked up front) whose products hold NaN."""

    class Product:
        def mult(self, mat, x, y):
            A.mult(x, y)
            y.setValue(0, np.nan)
            y.assemble()

    shell = PETSc.Mat().createPython(A.getSizes(), Product(), comm=A.getComm())
    shell.setUp()
    return shell


@pytest.mark.parametrize(
    ("method", "parameters", "message"),
    [
        ("gcrodr", {"m": 1}, "m must be >= 2"),
        ("gcrodr", {"m": 5, "k": 9}, "k must be < m"),
        ("gcrodr", {"m": "a"}, "m must be an integer"),
        ("gmres", {"restart": -1}, "restart must be >= 1"),
    ],
)
def test_ksp_python_contexts_check_parameters(method, parameters, message):
    ksp = PETSc.KSP().create()
    with pytest.raises((TypeError, ValueError), match=message):
        set_numlib_ksp(ksp, method, **parameters)
    assert ksp.getType() != "python"
    with pytest.raises(TypeError, match="ksp must be"):
        set_numlib_ksp(None, method)


@pytest.mark.parametrize(
    ("method", "option", "value", "message"),
    [
        ("gcrodr", "ksp_gcrodr_m", "1", "-t_ksp_gcrodr_m must be >= 2"),
        ("gcrodr", "ksp_gcrodr_k", "50", "-t_ksp_gcrodr_k must be < -t_ksp_gcrodr_m"),
        ("gmres", "ksp_numlib_gmres_restart", "0", "-t_ksp_numlib_gmres_restart must be >= 1"),
    ],
)
def test_ksp_python_options_are_checked_when_read(method, option, value, message):
    ksp = PETSc.KSP().create()
    ksp.setOptionsPrefix("t_")
    set_numlib_ksp(ksp, method)
    options = PETSc.Options()
    options[f"t_{option}"] = value
    try:
        with pytest.raises(ValueError, match=message):
            ksp.getPythonContext().setFromOptions(ksp)
    finally:
        del options[f"t_{option}"]


def _converged_darcy_solve(ksp):
    """Solve a 16² Darcy system with ``ksp``, check it converged; the system and ``x``."""
    system = darcy(16, rng=2)
    A = to_petsc_mat(system.A)
    x = A.createVecLeft()
    ksp.setOperators(A)
    ksp.solve(to_petsc_vec(system.b, like=A), x)
    assert ksp.getConvergedReason() > 0
    return system, gather_vec(x)


def test_ksp_python_reads_petsc_refinement_option():
    """``-ksp_gcrodr_cgs_refinement_type`` takes PETSc's GMRES values; the default is
    PETSc's (no second pass), and an unknown value is refused with the option's name."""
    ksp, context = _ksp("jacobi", rtol=1e-8)
    assert context.reorthogonalize == "never"
    ksp.setOptionsPrefix("refine_test_")
    options = PETSc.Options()
    options["refine_test_ksp_gcrodr_cgs_refinement_type"] = "REFINE_IFNEEDED"
    try:
        context.setFromOptions(ksp)
        assert context.reorthogonalize == "ifneeded"
        system, _ = _converged_darcy_solve(ksp)
        assert context.last_result.info["true_residual_norm"] <= 1e-8 * np.linalg.norm(system.b)
        options["refine_test_ksp_gcrodr_cgs_refinement_type"] = "sometimes"
        with pytest.raises(ValueError, match="ksp_gcrodr_cgs_refinement_type must be one of"):
            context.setFromOptions(ksp)
    finally:
        options.delValue("refine_test_ksp_gcrodr_cgs_refinement_type")


def test_ksp_python_reads_basis_precision_option():
    """``-ksp_gcrodr_basis_precision single`` stores the rows in single precision and
    takes two Gram-Schmidt passes unless told otherwise; it refuses one pass, and an
    unknown precision, naming the options."""
    ksp, context = _ksp("bjacobi", rtol=1e-10)
    ksp.setOptionsPrefix("precision_test_")
    options = PETSc.Options()
    options["precision_test_ksp_gcrodr_basis_precision"] = "single"
    try:
        context.setFromOptions(ksp)
        assert (context.basis_precision, context.reorthogonalize) == ("single", "always")
        system, x = _converged_darcy_solve(ksp)
        assert context.recycle.U.dtype == np.float32
        assert np.linalg.norm(system.A @ x - system.b) <= 1.01e-10 * np.linalg.norm(system.b)
        options["precision_test_ksp_gcrodr_cgs_refinement_type"] = "REFINE_NEVER"
        with pytest.raises(ValueError, match="-precision_test_ksp_gcrodr_basis_precision='single'"):
            context.setFromOptions(ksp)
        options.delValue("precision_test_ksp_gcrodr_cgs_refinement_type")
        options["precision_test_ksp_gcrodr_basis_precision"] = "half"
        with pytest.raises(ValueError, match="ksp_gcrodr_basis_precision must be one of"):
            context.setFromOptions(ksp)
    finally:
        options.delValue("precision_test_ksp_gcrodr_basis_precision")
        options.delValue("precision_test_ksp_gcrodr_cgs_refinement_type")


def test_ksp_python_honours_nonzero_initial_guess():
    system = darcy(16, rng=1)
    exact = spla.spsolve(sp.csc_array(system.A), system.b)
    ksp, _ = _ksp("jacobi", rtol=1e-8)
    A = to_petsc_mat(system.A)
    ksp.setOperators(A)
    ksp.setInitialGuessNonzero(True)
    x = to_petsc_vec(exact, like=A)
    ksp.solve(to_petsc_vec(system.b, like=A), x)
    assert ksp.getIterationNumber() == 0 and ksp.getConvergedReason() > 0


def test_missing_petsc4py_names_the_extra(monkeypatch):
    from solvers.petsc import _require

    monkeypatch.setitem(sys.modules, "petsc4py", None)
    with pytest.raises(ImportError, match=r"pip install numlib\[petsc\]"):
        _require.petsc()
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(ImportError, match=r"pip install numlib\[petsc\]"):
        _require.mpi()


def test_numlib_and_solvers_never_import_petsc4py():
    code = "import sys, numlib, solvers, solvers.recycle; print('petsc4py' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
