"""Tests of numlib.sketch: subspace embeddings and sketch-and-solve.

Seed-fraction logic used throughout: each property is checked for 30 independent
seeds. The sketch sizes come from ``sketch_size`` at failure probability
``delta = 0.01``, so the number of failing seeds is dominated by Binomial(30, 0.01);
requiring at least 27 successes fails with probability
``P(Bin(30, 0.01) >= 4) <= C(30, 4) 0.01^4 ~ 2.7e-4`` per example, even if the bounds
were tight (they are not, in practice almost all seeds pass).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import numlib.sketch
from numlib.sketch import (
    SKETCHES,
    GaussianSketch,
    SparseSignSketch,
    SRHTSketch,
    gram_cholesky,
    make_sketch,
    seminormal_solve,
    sketch_and_solve,
    sketch_size,
)

SEEDS = 30
MIN_OK = 27
DELTA = 0.01
FEW = settings(max_examples=4, deadline=None)


def _basis(n: int, d: int, seed: int, coherent: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, d))
    if coherent:
        A[:d] *= 1e3  # a few dominant rows: high leverage, defeats sparse sketches
    return A


@pytest.mark.parametrize("kind", sorted(SKETCHES))
def test_matrix_matches_apply_and_is_reproducible(kind: str) -> None:
    S1 = make_sketch(kind, 8, 20, rng=3)
    S2 = make_sketch(kind, 8, 20, rng=3)
    A = np.random.default_rng(0).standard_normal((20, 3))
    A0 = A.copy()
    np.testing.assert_allclose(S1.apply(A), S1.matrix() @ A, atol=1e-12)
    np.testing.assert_array_equal(S1.apply(A), S2.apply(A))
    np.testing.assert_allclose(S1.apply(A[:, 0]), S1.matrix() @ A[:, 0], atol=1e-12)
    np.testing.assert_array_equal(A, A0)
    assert S1.shape == (8, 20)


@FEW
@given(
    kind=st.sampled_from(["srht", "countsketch", "sparse_sign"]),
    n=st.integers(20, 300),
    d=st.integers(1, 40),
    dtype=st.sampled_from([np.float32, np.float64, np.complex128]),
    seed=st.integers(0, 2**31),
)
def test_batched_and_threaded_paths_match_the_matrix(kind, n, d, dtype, seed) -> None:
    # tiny batches, tiles and parallel threshold: every split of the large-input code
    # paths (column batches, row tiles, per-thread partial products) is exercised
    A = np.random.default_rng(seed).standard_normal((n, d)).astype(dtype)
    A0 = A.copy()
    S = make_sketch(kind, max(1, n // 3), n, rng=seed)
    reference = S.matrix() @ A
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(numlib.sketch, "_SRHT_BATCH_COLUMNS", 3)
        patch.setattr(numlib.sketch, "_SRHT_ROW_TILE", 7)
        patch.setattr(numlib.sketch, "_PARALLEL_MIN_ENTRIES", 1)
        patch.setattr(numlib.sketch, "usable_cpus", lambda: 3)
        out = S.apply(A)
    tol = 1e-4 if dtype == np.float32 else 1e-11
    np.testing.assert_allclose(out, reference, rtol=0, atol=tol * np.abs(reference).max())
    np.testing.assert_array_equal(A, A0)


def _conditioned(m: int, d: int, cond: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((m, d)))
    V, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return (U * np.logspace(0, -np.log10(cond), d)) @ V.T


@FEW
@given(
    d=st.integers(2, 40),
    log_cond=st.floats(0, 6),
    seed=st.integers(0, 2**31),
)
def test_cholesky_qr_and_seminormal_solve_match_householder(d, log_cond, seed) -> None:
    # cond <= 1e6: the Gram route is taken, R^T R = SA^T SA, and the corrected
    # semi-normal solution matches LAPACK's to its own forward-error level
    SA = _conditioned(10 * d, d, 10.0**log_cond, seed)
    x_true = np.random.default_rng(seed + 1).standard_normal(d)
    Sb = SA @ x_true + 1e-3 * np.random.default_rng(seed + 2).standard_normal(10 * d)
    R = gram_cholesky(SA)
    assert R is not None
    np.testing.assert_allclose(R.T @ R, SA.T @ SA, rtol=0, atol=1e-12 * d)
    x = seminormal_solve(SA, Sb, R)
    x_ref = np.linalg.lstsq(SA, Sb, rcond=None)[0]
    # the least-squares condition number (Wedin): cond + cond^2 ||r|| / (||SA|| ||x||)
    cond = 10.0**log_cond
    r_over_x = np.linalg.norm(Sb - SA @ x_ref) / np.linalg.norm(x_ref)
    bound = 10 * d * np.finfo(float).eps * (cond + cond**2 * r_over_x)
    assert np.linalg.norm(x - x_ref) <= bound * np.linalg.norm(x_ref)


def test_cholesky_qr_refused_when_too_ill_conditioned() -> None:
    assert gram_cholesky(_conditioned(400, 30, 1e9, 0)) is None
    singular = _conditioned(400, 30, 1e3, 1)
    singular[:, -1] = singular[:, 0]
    assert gram_cholesky(singular) is None


@pytest.mark.parametrize("kind", sorted(SKETCHES))
def test_isotropic_on_average(kind: str) -> None:
    """``E[S^T S] = I``: the mean Gram matrix over draws is ``I`` within a few standard errors."""
    n, m, draws = 16, 8, 600
    grams = np.stack([make_sketch(kind, m, n, rng=seed).matrix() for seed in range(draws)])
    grams = np.einsum("dki,dkj->dij", grams, grams)
    mean = grams.mean(axis=0)
    se = grams.std(axis=0) / np.sqrt(draws)  # standard error of each entry's mean
    floor = 1e-12  # entries that are the same in every draw (e.g. a unit-norm column)
    # Each entry within 5 standard errors (256 entries: P(some |z| > 5) ~ 1e-4) ...
    assert np.all(np.abs(mean - np.eye(n)) <= 5 * se + floor)
    # ... and the diagonal's average ||S||_F^2 / n within 4 (a scale error such as
    # S / sqrt(1 + 1/m), a mean of m / (m + 1), is more than 10 standard errors off).
    trace = np.trace(grams, axis1=1, axis2=2) / n
    assert abs(trace.mean() - 1) <= 4 * trace.std() / np.sqrt(draws) + floor
    off = ~np.eye(n, dtype=bool)
    assert np.max(5 * se[off]) <= 0.1  # the off-diagonal check resolves a bias of 0.1


@FEW
@given(
    kind=st.sampled_from(sorted(SKETCHES)),
    n=st.integers(2, 120),
    shape=st.sampled_from(["vector", "matrix"]),
    dtype=st.sampled_from(["float64", "float32", "complex128"]),
    seed=st.integers(0, 2**31),
)
def test_torch_inputs_stay_torch_and_get_the_same_sketch(kind, n, shape, dtype, seed) -> None:
    # one seed, one S: the torch path (index_add scatters; for SRHT the DCT by one
    # real FFT, Makhoul's reordering, mirrored frequencies included) equals numpy's
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, 3) if shape == "matrix" else n)
    if dtype == "complex128":
        A = A + 1j * rng.standard_normal(A.shape)
    A = A.astype(dtype)
    S = make_sketch(kind, max(1, n // 2), n, rng=seed)
    out = S.apply(torch.from_numpy(A))
    assert isinstance(out, torch.Tensor) and out.shape == S.apply(A).shape
    tol = 1e-5 if dtype == "float32" else 1e-12
    reference = S.matrix() @ A.astype(np.complex128 if dtype == "complex128" else np.float64)
    np.testing.assert_allclose(out.numpy(), reference, rtol=0, atol=tol * max(1, n))


@FEW
@given(
    kind=st.sampled_from(sorted(SKETCHES)),
    n=st.integers(300, 2000),
    d=st.integers(1, 20),
    seed=st.integers(0, 2**31),
)
def test_subspace_embedding(kind: str, n: int, d: int, seed: int) -> None:
    eps = 0.5
    if kind == "countsketch":
        d = min(d, 4)  # m = (d^2 + d)/(eps^2 delta) grows quadratically
    m = sketch_size(d, eps, DELTA, sketch=kind)
    if kind == "srht":
        assert m <= n
    Q, _ = np.linalg.qr(_basis(n, d, seed))
    ok = 0
    for s in range(SEEDS):
        sv = np.linalg.svd(make_sketch(kind, m, n, rng=seed + s).apply(Q), compute_uv=False)
        ok += bool(sv.min() >= 1 - eps and sv.max() <= 1 + eps)
    assert ok >= MIN_OK, f"{kind}: {ok}/{SEEDS} seeds embedded (m={m})"


def _lstsq_problem(n: int, d: int, seed: int, coherent: bool = False):
    rng = np.random.default_rng(seed + 1)
    A = _basis(n, d, seed, coherent)
    b = A @ rng.standard_normal(d) + rng.standard_normal(n)
    return A, b


@FEW
@given(
    kind=st.sampled_from(sorted(SKETCHES)),
    n=st.integers(200, 2000),
    d=st.integers(1, 8),
    seed=st.integers(0, 2**31),
)
def test_sketch_and_solve_residual_within_1_plus_eps(kind, n, d, seed) -> None:
    """``||A x' - b|| <= (1 + eps) min_x ||A x - b||`` for a subspace-embedding sketch."""
    eps = 0.5
    if kind == "countsketch":
        d = min(d, 2)
    A, b = _lstsq_problem(n, d, seed)
    b += A @ np.full(d, 30.0)  # signal >> noise: x = 0, or 0.9 x*, misses the bound by far
    A0, b0 = A.copy(), b.copy()
    x_star = np.linalg.lstsq(A, b, rcond=None)[0]
    opt = np.linalg.norm(A @ x_star - b)
    assert np.linalg.norm(A @ x_star) > 15 * opt  # ||A (x - x*)||^2 <= 1.25 opt^2 is needed
    ok = 0
    for s in range(SEEDS):
        res = sketch_and_solve(A, b, eps=eps, delta=DELTA, sketch=kind, rng=seed + s)
        r = np.linalg.norm(A @ res.x - b)
        assert r >= opt * (1 - 1e-9)  # never beats least squares
        ok += bool(r <= (1 + eps) * opt)
    assert ok >= MIN_OK
    np.testing.assert_array_equal(A, A0)
    np.testing.assert_array_equal(b, b0)


@FEW
@given(
    kind=st.sampled_from(["gaussian", "srht"]),
    n=st.integers(500, 2000),
    d=st.integers(2, 8),
    seed=st.integers(0, 2**31),
)
def test_linf_guarantee_dense_sketches_coherent(kind, n, d, seed) -> None:
    # m ~ 5 d / eps^2 (ANCHORS.md measurement), far below the paper's formula.
    eps = 0.5
    m = int(np.ceil(5 * d / eps**2))
    A, b = _lstsq_problem(n, d, seed, coherent=True)
    x_star = np.linalg.lstsq(A, b, rcond=None)[0]
    sv = np.linalg.svd(A, compute_uv=False)
    bound = eps / np.sqrt(d) * np.linalg.norm(A @ x_star - b) / sv[-1]
    ok = 0
    for s in range(SEEDS):
        x = sketch_and_solve(A, b, eps=eps, sketch=kind, m=m, rng=seed + s).x
        ok += bool(np.max(np.abs(x - x_star)) <= bound)
    assert ok >= MIN_OK


def test_sketch_size_formulas() -> None:
    # Gaussian: (sqrt(d) + sqrt(2 ln(2/delta)))^2 / eps^2
    assert sketch_size(10, 0.5, 0.01) == int(
        np.ceil((np.sqrt(10) + np.sqrt(2 * np.log(200))) ** 2 / 0.25)
    )
    assert sketch_size(3, 0.5, 0.01, sketch="countsketch") == int(np.ceil(12 / (0.25 * 0.01)))
    assert sketch_size(4, 0.1, 0.01, "linf", n=1000, constant=0.5) == int(
        np.ceil(0.5 * 4 * np.log(1e5) ** 3 / 0.01)
    )
    assert sketch_size(5, 0.9, 0.5) >= 5


def test_bad_inputs_name_the_argument() -> None:
    A = np.ones((20, 3))
    b = np.ones(20)
    with pytest.raises(ValueError, match="eps"):
        sketch_and_solve(A, b, eps=1.5, rng=0)
    with pytest.raises(ValueError, match="eps"):
        sketch_and_solve(A, b, eps=0.0, rng=0)
    with pytest.raises(ValueError, match="delta"):
        sketch_and_solve(A, b, eps=0.5, delta=1.0, rng=0)
    with pytest.raises(ValueError, match="m must be >= d"):
        sketch_and_solve(A, b, eps=0.5, m=2, rng=0)
    with pytest.raises(ValueError, match="b must have length"):
        sketch_and_solve(A, np.ones(19), eps=0.5, rng=0)
    bad = A.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="A contains NaN"):
        sketch_and_solve(bad, b, eps=0.5, rng=0)
    with pytest.raises(ValueError, match="sketch"):
        sketch_and_solve(A, b, eps=0.5, sketch="nope", rng=0)
    with pytest.raises(ValueError, match="m must be <= n"):
        SRHTSketch(30, 20, rng=0)
    with pytest.raises(ValueError, match="s must be <= m"):
        SparseSignSketch(4, 20, rng=0, s=5)
    with pytest.raises(ValueError, match="rows"):
        GaussianSketch(4, 20, rng=0).apply(np.ones((19, 2)))
    with pytest.raises(TypeError, match="rng"):
        GaussianSketch(4, 20, rng="x")
    with pytest.raises(TypeError, match="A must be a dense array"):
        sketch_and_solve(sp.csr_array(A), b, eps=0.5, rng=0)
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="different libraries"):
        sketch_and_solve(torch.from_numpy(A), b, eps=0.5, rng=0)
    with pytest.raises(ValueError, match="n is required"):
        sketch_size(3, 0.5, 0.1, "linf")


@FEW
@given(
    kind=st.sampled_from(sorted(SKETCHES)),
    n=st.integers(300, 1500),
    d=st.integers(1, 8),
    rank_deficient=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_sketch_and_solve_on_torch_matches_numpy(kind, n, d, rank_deficient, seed) -> None:
    # the same S (same seed) on torch tensors: QR + truncated SVD there, Cholesky QR or
    # gelsd in numpy; both are the minimum-norm minimiser of ||S(Ax - b)||
    torch = pytest.importorskip("torch")
    if kind == "countsketch":
        d = min(d, 2)
    A, b = _lstsq_problem(n, d + 1, seed)
    if rank_deficient:
        A[:, -1] = A[:, 0]
    m = min(n, 40 * (d + 1))
    ref = sketch_and_solve(A, b, eps=0.5, sketch=kind, m=m, rng=seed)
    out = sketch_and_solve(
        torch.from_numpy(A), torch.from_numpy(b), eps=0.5, sketch=kind, m=m, rng=seed
    )
    assert isinstance(out.x, torch.Tensor) and out.rank == ref.rank == d + 1 - rank_deficient
    np.testing.assert_allclose(out.x.numpy(), ref.x, rtol=0, atol=1e-9 * np.linalg.norm(ref.x))
    assert abs(out.sketched_residual_norm - ref.sketched_residual_norm) <= 1e-9 * (
        1 + ref.sketched_residual_norm
    )


def test_numlib_threads_follow_the_blas_limit() -> None:
    """One limit governs numlib's pools and BLAS: LAPACK peers and numlib get equal threads."""
    from threadpoolctl import threadpool_limits

    from numlib._arrays import usable_cpus

    with threadpool_limits(limits=1, user_api="blas"):
        assert usable_cpus() == 1
    with threadpool_limits(limits=2, user_api="blas"):
        assert usable_cpus() == min(2, len(os.sched_getaffinity(0)))


def test_gram_cholesky_and_seminormal_solve_check_their_inputs() -> None:
    rng = np.random.default_rng(0)
    SA, Sb = rng.standard_normal((10, 3)), rng.standard_normal(10)
    R = gram_cholesky(SA)
    assert R is not None
    nan_SA = SA.copy()
    nan_SA[0, 0] = np.nan
    # before: a 1x1 R, None ("ill-conditioned"), AttributeError, NaN x, raw matmul error
    for bad, error, match in (
        (np.ones(3), ValueError, "SA must be 2-D"),
        (nan_SA, ValueError, "SA contains NaN or Inf"),
        ([[1.0, 0.0], [0.0, 1.0]], TypeError, "SA must be a numpy array"),
        (np.ones((2, 3)), ValueError, "SA must have at least as many rows as columns"),
        (np.ones((4, 3), dtype=int), TypeError, "SA must have a floating-point dtype"),
        (np.ones((0, 3)), ValueError, "SA must not be empty"),
    ):
        with pytest.raises(error, match=match):
            gram_cholesky(bad)
        with pytest.raises(error, match=match):
            seminormal_solve(bad, Sb, R)
    for bad_b, match in (
        (np.full(10, np.nan), "Sb contains NaN or Inf"),
        (np.ones(9), "Sb must have length 10"),
        (np.ones((10, 1)), "Sb must be 1-D"),
    ):
        with pytest.raises(ValueError, match=match):
            seminormal_solve(SA, bad_b, R)
    with pytest.raises(ValueError, match=r"R must have shape \(3, 3\)"):
        seminormal_solve(SA, Sb, R[:2, :2])
    with pytest.raises(TypeError, match="Sb must be a numpy array"):
        seminormal_solve(SA, list(Sb), R)
    # complex SA is supported (R^H R = SA^H SA)
    Z = SA + 1j * rng.standard_normal((10, 3))
    Rz = gram_cholesky(Z)
    np.testing.assert_allclose(Rz.conj().T @ Rz, Z.conj().T @ Z, atol=1e-12)


def test_sketch_size_accepts_numpy_scalars() -> None:
    # np.float32(2) used to be refused as "not a finite number > 0"
    assert sketch_size(5, 0.5, constant=np.float32(2)) == sketch_size(5, 0.5, constant=2.0)
    assert sketch_size(5, 0.5, constant=np.int64(2)) == sketch_size(5, 0.5, constant=2)
    with pytest.raises(ValueError, match="constant must be > 0"):
        sketch_size(5, 0.5, constant=0.0)
    with pytest.raises(ValueError, match="constant must be finite"):
        sketch_size(5, 0.5, constant=np.float64(np.inf))
    with pytest.raises(TypeError, match="constant must be a real number"):
        sketch_size(5, 0.5, constant="2")


@pytest.mark.parametrize("kind", sorted(SKETCHES))
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_apply_rejects_non_finite_input(kind, bad) -> None:
    # NaN/Inf used to pass straight through to S @ A
    S = make_sketch(kind, 16, 300, rng=0)
    rng = np.random.default_rng(1)
    A = rng.standard_normal((300, 3))
    for row, col in ((0, 0), (137, 2), (299, 1)):
        B = A.copy()
        B[row, col] = bad
        for arg in (B, B[:, col].copy()):
            with pytest.raises(ValueError, match="A contains NaN or Inf"):
                S.apply(arg)
    np.testing.assert_allclose(S.apply(A), S.matrix() @ A, atol=1e-12)
    torch = pytest.importorskip("torch")  # every kind takes torch arrays
    B = torch.from_numpy(A.copy())
    B[5, 1] = bad
    with pytest.raises(ValueError, match="A contains NaN or Inf"):
        S.apply(B)
