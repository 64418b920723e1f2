"""GCRO-DR: the tolerance is always met, recycling only ever saves work."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from hypothesis import given, settings
from hypothesis import strategies as st
from matrices import orthogonal

import solvers.gcrodr as gcrodr_module
from numlib.result import ConvergenceWarning
from solvers.gcrodr import gcrodr
from solvers.problems import convection_diffusion, darcy
from solvers.subspace import RecycleSpace


@st.composite
def positive_real_systems(draw):
    """S + K with S SPD and K skew: restarted (and recycled) GMRES converges."""
    n = draw(st.integers(2, 60))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    q = orthogonal(rng, n)
    S = (q * np.geomspace(1.0, draw(st.floats(1.0, 100.0)), n)) @ q.T
    G = rng.standard_normal((n, n)) * draw(st.floats(0.0, 2.0)) / np.sqrt(n)
    return (S + S.T) / 2 + (G - G.T) / 2, rng.standard_normal(n), rng.standard_normal(n)


def outlier_matrix(rng: np.random.Generator, n: int, outliers: int) -> np.ndarray:
    """Nonsymmetric, diagonalisable, spectrum in [1, 2] plus a few eigenvalues near 0."""
    eigenvalues = np.concatenate(
        [np.geomspace(1e-3, 1e-2, outliers), rng.uniform(1.0, 2.0, n - outliers)]
    )
    X = np.eye(n) + 0.1 * rng.standard_normal((n, n)) / np.sqrt(n)
    return X @ np.diag(eigenvalues) @ np.linalg.inv(X)


@given(positive_real_systems(), st.integers(2, 30), st.data())
def test_converged_means_tolerance_met_with_and_without_recycling(system, m, data):
    A, b1, b2 = system
    k = data.draw(st.integers(1, m - 1))
    first = gcrodr(A, b1, m=m, k=k, rtol=1e-9, maxiter=100 * len(b1))
    assert first.converged
    assert np.linalg.norm(b1 - A @ first.x) <= 1e-9 * np.linalg.norm(b1)
    second = gcrodr(
        A, b2, m=m, k=k, rtol=1e-9, maxiter=100 * len(b2), recycle=first.info["recycle"]
    )
    assert second.converged
    assert np.linalg.norm(b2 - A @ second.x) <= 1e-9 * np.linalg.norm(b2)
    reference = np.linalg.solve(A, b2)
    cond = np.linalg.cond(A)
    assert np.linalg.norm(second.x - reference) <= 2e-9 * cond * np.linalg.norm(reference)
    assert 0.0 <= second.info["recycled_residual_reduction"] <= 1.0 + 1e-12
    assert second.info["matvecs"] >= second.iterations


@settings(max_examples=15)
@given(st.integers(0, 2**32 - 1), st.integers(1, 6))
def test_recycling_the_same_matrix_strictly_reduces_iterations(seed, outliers):
    rng = np.random.default_rng(seed)
    A = outlier_matrix(rng, 150, outliers)
    k = outliers + 4
    first = gcrodr(A, rng.standard_normal(150), m=k + 10, k=k, rtol=1e-8)
    second = gcrodr(
        A, rng.standard_normal(150), m=k + 10, k=k, rtol=1e-8, recycle=first.info["recycle"]
    )
    assert first.converged and second.converged
    assert second.iterations < first.iterations


def test_recycled_space_deflates_the_outlying_eigenvalues():
    rng = np.random.default_rng(5)
    A = outlier_matrix(rng, 200, 4)
    space = gcrodr(A, rng.standard_normal(200), m=30, k=10, rtol=1e-10).info["recycle"]
    # The recycled space should (nearly) contain the eigenvectors of the 4 outliers.
    eigenvalues, vectors = np.linalg.eig(A)
    outlier_vectors = np.real(vectors[:, np.argsort(np.abs(eigenvalues))[:4]])
    basis = np.linalg.qr(space.U.T)[0]
    residual = outlier_vectors - basis @ (basis.T @ outlier_vectors)
    assert (
        np.linalg.norm(residual, axis=0).max()
        < 1e-3 * np.linalg.norm(outlier_vectors, axis=0).min()
    )


def test_sequence_of_darcy_systems_recycles_across_changing_matrices():
    recycle = None
    plain, recycled = [], []
    for i in range(4):
        system = darcy(32, rng=np.random.default_rng([11, i]))
        reference = gcrodr(system.A, system.b, m=30, k=10, rtol=1e-8)
        result = gcrodr(system.A, system.b, m=30, k=10, rtol=1e-8, recycle=recycle)
        recycle = result.info["recycle"]
        assert result.converged
        np.testing.assert_allclose(result.x, spla.spsolve(system.A.tocsc(), system.b), rtol=1e-5)
        plain.append(reference.iterations)
        recycled.append(result.iterations)
    assert sum(recycled[1:]) < sum(plain[1:])


def test_right_preconditioning_and_recycling_together():
    system = convection_diffusion(40, 20.0)
    A = system.A.tocsc()
    ilu = spla.spilu(A, drop_tol=1e-2, fill_factor=2)
    M = spla.LinearOperator(A.shape, matvec=ilu.solve, dtype=float)
    first = gcrodr(A, system.b, m=20, k=5, rtol=1e-10, M=M)
    second = gcrodr(A, 2 * system.b + 1, m=20, k=5, rtol=1e-10, M=M, recycle=first.info["recycle"])
    for result, b in ((first, system.b), (second, 2 * system.b + 1)):
        assert result.converged
        assert np.linalg.norm(b - A @ result.x) <= 1e-10 * np.linalg.norm(b)


def test_complex_system():
    rng = np.random.default_rng(2)
    n = 60
    A = np.eye(n) * 4 + (rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))) / np.sqrt(
        n
    )
    b = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    first = gcrodr(A, b, m=10, k=4, rtol=1e-10)
    second = gcrodr(A, b.conj(), m=10, k=4, rtol=1e-10, recycle=first.info["recycle"])
    np.testing.assert_allclose(second.x, np.linalg.solve(A, b.conj()), rtol=1e-8)


def test_torch_inputs_stay_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    A = np.eye(40) * 3 + rng.standard_normal((40, 40)) / 7
    b = rng.standard_normal(40)
    first = gcrodr(torch.from_numpy(A), torch.from_numpy(b), m=10, k=3, rtol=1e-10)
    second = gcrodr(
        torch.from_numpy(A),
        torch.from_numpy(b),
        m=10,
        k=3,
        rtol=1e-10,
        recycle=first.info["recycle"],
    )
    assert isinstance(second.x, torch.Tensor)
    np.testing.assert_allclose(second.x.numpy(), np.linalg.solve(A, b), rtol=1e-8)


def test_iteration_limit_warns():
    A = sp.diags_array([-1.0, 2.0, -1.0], offsets=[-1, 0, 1], shape=(300, 300))
    with pytest.warns(ConvergenceWarning, match="gcrodr did not converge"):
        result = gcrodr(A, np.ones(300), m=10, k=4, rtol=1e-12, maxiter=25)
    assert not result.converged and result.iterations == 25


def test_inputs_are_not_modified():
    rng = np.random.default_rng(4)
    A = np.eye(30) * 2 + rng.standard_normal((30, 30)) / 10
    b, x0 = rng.standard_normal(30), rng.standard_normal(30)
    space = RecycleSpace(rng.standard_normal((3, 30)))
    copies = A.copy(), b.copy(), x0.copy(), space.U.copy()
    gcrodr(A, b, x0=x0, m=8, k=3, recycle=space, rtol=1e-10)
    for original, copy in zip((A, b, x0, space.U), copies, strict=True):
        np.testing.assert_array_equal(original, copy)


class _CountingPreconditioner(spla.LinearOperator):
    """Jacobi on ``A`` that counts its applications."""

    def __init__(self, A):
        super().__init__(dtype=np.float64, shape=A.shape)
        self.inverse_diagonal = 1.0 / A.diagonal()
        self.applications = 0

    def _matvec(self, v):
        self.applications += 1
        return self.inverse_diagonal * np.ravel(v)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**16), st.integers(2, 8))
def test_preconditioned_space_carries_its_solution_directions(seed, k):
    """Invariants of the recycled triple with a right preconditioner: ``Y = M U`` row by
    row while ``M`` is fixed and ``A Y^T = C^T`` orthonormal; the next system, with a
    new ``M``, applies
    it only in its Arnoldi steps (``C`` comes from ``A Y``, updates use ``Y`` and
    ``Z``), and the solution still meets the tolerance."""
    first, second = darcy(12, rng=seed), darcy(12, rng=seed + 1)
    M1 = _CountingPreconditioner(first.A)
    result = gcrodr(first.A, first.b, m=12, k=k, rtol=1e-10, M=M1)
    space = result.info["recycle"]
    np.testing.assert_allclose(space.Y, space.U * M1.inverse_diagonal, rtol=1e-9, atol=1e-12)
    M2 = _CountingPreconditioner(second.A)
    again = gcrodr(second.A, second.b, m=12, k=k, rtol=1e-10, M=M2, recycle=space)
    assert again.converged
    residual = np.linalg.norm(second.b - second.A @ again.x)
    assert residual <= 1e-10 * np.linalg.norm(second.b)
    assert M2.applications == again.iterations
    # After M changed, U only guides the next selection; the exact object is Y,
    # whose images A Y are the orthonormal C of the next system.
    images = (second.A @ again.info["recycle"].Y.T).T
    np.testing.assert_allclose(images @ images.T, np.eye(len(images)), atol=1e-8)


def test_space_without_solution_directions_is_still_adopted():
    """A space made by hand (``U`` only) is mapped through ``M`` once; a space with
    ``Y`` given to an unpreconditioned solve uses ``Y``, the directions in ``x``."""
    system = darcy(12, rng=5)
    rng = np.random.default_rng(0)
    U = rng.standard_normal((4, 144))
    M = _CountingPreconditioner(system.A)
    result = gcrodr(system.A, system.b, m=12, k=4, rtol=1e-10, M=M, recycle=RecycleSpace(U))
    assert result.converged and M.applications == result.iterations + 4
    Y = rng.standard_normal((4, 144))
    plain = gcrodr(system.A, system.b, m=12, k=4, rtol=1e-10, recycle=RecycleSpace(U, Y))
    reference = gcrodr(system.A, system.b, m=12, k=4, rtol=1e-10, recycle=RecycleSpace(Y))
    assert plain.iterations == reference.iterations
    np.testing.assert_allclose(plain.x, reference.x, rtol=1e-12, atol=1e-14)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**16), st.booleans())
def test_carried_gram_matrices_equal_the_formed_ones(seed, complex_shift):
    """``<C, U>`` and ``<U, U>`` are formed once per system and then carried through
    every refinement by the small matrices that define the new ``C`` and ``U``; after
    each refinement, along a sequence and with a right preconditioner, they equal
    the Gram matrices of the vectors themselves."""
    refinements = []
    refine = gcrodr_module._Recycler.refine

    def refine_and_compare(self, cycle):
        refine(self, cycle)
        U, C = np.asarray(self.U), np.asarray(self.C)
        size = np.linalg.norm(U, axis=1).max()
        np.testing.assert_allclose(self.CU, C.conj() @ U.T, atol=1e-9 * size)
        np.testing.assert_allclose(self.UU, U.conj() @ U.T, atol=1e-9 * size**2)
        refinements.append(len(U))

    space = None
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gcrodr_module._Recycler, "refine", refine_and_compare)
        for offset in range(2):
            system = darcy(12, rng=seed + offset)
            A = system.A + (0.3j * sp.eye_array(144) if complex_shift else 0)
            M = _CountingPreconditioner(system.A)
            result = gcrodr(A, system.b, m=10, k=4, rtol=1e-10, M=M, recycle=space)
            assert result.converged
            space = result.info["recycle"]
    assert len(refinements) >= 4


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**16), st.integers(1, 8), st.floats(0.0, 15.0))
def test_orthonormal_rows_span_the_rows_at_any_conditioning(seed, k, decades):
    """``Q, T, kept = _orthonormal_rows(rows)``: ``Q = T rows[kept]`` has orthonormal rows
    spanning every row, whether the rows are well conditioned (Cholesky QR twice),
    ill conditioned (Householder) or numerically dependent (rows dropped)."""
    rng = np.random.default_rng(seed)
    n = 200
    rows = (orthogonal(rng, k) * np.geomspace(1.0, 10.0**-decades, k)) @ orthogonal(rng, n)[:k]
    Q, T, kept = gcrodr_module._orthonormal_rows(np, rows)
    np.testing.assert_allclose(Q @ Q.T, np.eye(len(Q)), atol=1e-12)
    np.testing.assert_allclose(Q, T @ rows[kept], atol=1e-12 * max(1.0, np.abs(T).max()))
    assert np.linalg.norm(rows - (rows @ Q.T) @ Q) <= 1e-10 * np.linalg.norm(rows)
    assert kept.sum() >= min(k, np.sum(np.geomspace(1.0, 10.0**-decades, k) > 1e-10))


@pytest.mark.parametrize("mode", ["ifneeded", "always", "never"])
def test_every_reorthogonalization_mode_meets_the_tolerance_along_a_sequence(mode):
    """The second Gram-Schmidt pass is a cost choice: every mode returns solutions that
    meet the true-residual test, and the carried space still pays on the next system."""
    systems = [darcy(24, rng=seed) for seed in (3, 4)]
    results, space = [], None
    for system in systems:
        result = gcrodr(system.A, system.b, m=30, k=10, recycle=space, rtol=1e-9,
                        reorthogonalize=mode)  # fmt: skip
        residual = np.linalg.norm(system.b - system.A @ result.x)
        assert result.converged and residual <= 1e-9 * np.linalg.norm(system.b)
        results.append(result)
        space = result.info["recycle"]
    assert results[1].iterations < results[0].iterations


NAN_ROW = np.array([[1.0, np.nan, 0.0, 0.0, 0.0]])
# Recycled spaces for n = 5 that no solver can use, with the error each must raise.
BAD_SPACES = [
    (RecycleSpace(np.full((2, 5), np.nan)), ValueError, "recycle.U contains NaN or Inf"),
    (RecycleSpace(np.empty((0, 5))), ValueError, "recycle.U must have at least one row"),
    (RecycleSpace(np.zeros((2, 5))), ValueError, "recycle.U must have no zero row"),
    (RecycleSpace(np.eye(3, 5)[[0, 2, 1]] * [[1], [0], [1]]), ValueError, "row 1 is zero"),
    (RecycleSpace([[1.0] * 5]), TypeError, "recycle.U must be an array, got list"),
    (RecycleSpace(np.ones((2, 5), dtype=int)), TypeError, "recycle.U must have a floating"),
    (RecycleSpace(np.ones(5)), ValueError, "recycle.U must have shape"),
    (RecycleSpace(np.ones((1, 5)), NAN_ROW), ValueError, "recycle.Y contains NaN or Inf"),
    (RecycleSpace(np.ones((1, 5)), np.zeros((1, 5))), ValueError, "recycle.Y must have no zero"),
]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"m": 1}, ValueError, "m must be >= 2"),
        ({"m": 10, "k": 10}, ValueError, "k must be < m"),
        ({"k": 0}, ValueError, "k must be >= 1"),
        ({"reorthogonalize": "sometimes"}, ValueError, "reorthogonalize must be one of"),
        ({"recycle": np.ones((2, 5))}, TypeError, "recycle must be a RecycleSpace"),
        ({"recycle": RecycleSpace(np.ones((2, 4)))}, ValueError, r"recycle.U must have shape"),
        (
            {"recycle": RecycleSpace(np.ones((2, 5)), np.ones((3, 5)))},
            ValueError,
            r"recycle.Y must have the shape of recycle.U",
        ),
        ({"b": np.array([1.0, np.nan, 0, 0, 0])}, ValueError, "b contains NaN"),
        *[({"recycle": space}, error, match) for space, error, match in BAD_SPACES],
    ],
)
def test_bad_input(kwargs, error, match):
    args = {"A": np.eye(5), "b": np.ones(5)} | kwargs
    with pytest.raises(error, match=match):
        gcrodr(args.pop("A"), args.pop("b"), **args)


def test_rank_deficient_recycled_space_is_used_without_its_dependent_rows():
    """Dependent (but nonzero) rows are dropped, not an error: the answer still meets
    the tolerance, and the space's one direction is used."""
    system = darcy(12, rng=3)
    direction = spla.spsolve(sp.csc_array(system.A), system.b)
    U = np.stack([direction, 2 * direction, -direction])
    result = gcrodr(system.A, system.b, m=10, k=3, rtol=1e-10, recycle=RecycleSpace(U))
    assert result.converged
    assert np.linalg.norm(system.b - system.A @ result.x) <= 1e-10 * np.linalg.norm(system.b)
    assert result.info["recycled_residual_reduction"] < 1e-8  # the exact solution's direction
