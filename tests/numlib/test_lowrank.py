"""Tests of numlib.lowrank and numlib.nystrom against dense references.

Seed-fraction logic for the randomized SVD: each bound is checked over ``SEEDS``
independent seeds. The Frobenius check uses HMT Theorem 10.7 with ``t = 2, u = 4``,
failure probability ``<= 2 * 2^-p + e^-8 <= 0.032`` for ``p >= 6``; requiring 27 of 30
fails with probability ``P(Bin(30, 0.032) >= 4) < 0.02`` even if the bound were tight.
The spectral check with power iterations uses the expectation bound of HMT Corollary
10.10 with Markov's inequality at factor 10 (failure <= 0.1 per seed); requiring 24 of 30
fails with probability ``P(Bin(30, 0.1) >= 7) < 0.03``. In practice every seed passes.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.fft
import scipy.sparse as sp
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy.sparse.linalg import aslinearoperator

from numlib._arrays import small_lapack_threads
from numlib.calibration import whiten
from numlib.lowrank import (
    choose_rank,
    dct_basis,
    dct_project,
    randomized_svd,
    weighted_svd,
    whitened_svd,
)
from numlib.nystrom import cr_approximation, nystrom, ridge_leverage_scores

SEEDS = 30
FEW = settings(max_examples=6, deadline=None)


@pytest.fixture(autouse=True)
def _one_blas_thread():
    # Small LAPACK calls with a multi-threaded OpenBLAS on a loaded 2-core machine are
    # 10-100x slower than single-threaded ones; the results are the same.
    with small_lapack_threads():
        yield


def _planted(m: int, n: int, decay: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    d = min(m, n)
    U, _ = np.linalg.qr(rng.standard_normal((m, d)))
    V, _ = np.linalg.qr(rng.standard_normal((n, d)))
    s = np.arange(1, d + 1, dtype=float) ** -decay
    return (U * s) @ V.T, s


@FEW
# Decay 2 and 3 with k >= 3 are the informative cases: there the bound lies far below
# ||A||_F ~ 1 and below the error of a rank-k fit on a random (k + p)-dim range
# (0.8-0.97), so a wrong range or a zero answer fails; for flatter spectra the bound
# exceeds ||A||_F and only the Eckart-Young floor can fail. Always run two of them.
@example(shape=(80, 80), k=10, p=6, decay=2.0)
@example(shape=(60, 40), k=6, p=8, decay=3.0)
@given(
    shape=st.sampled_from([(60, 40), (40, 70), (80, 80)]),
    k=st.integers(1, 10),
    p=st.integers(6, 10),
    decay=st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0]),
)
def test_rsvd_frobenius_error_within_hmt_bound(shape, k: int, p: int, decay: float) -> None:
    """``tau_{k+1} <= ||A - Ahat||_F <= sqrt(proj^2 + tau_{k+1}^2)``, HMT Theorem 10.7."""
    A, s = _planted(*shape, decay, seed=k + 7 * p)
    tau = math.sqrt(np.sum(s[k:] ** 2))
    t, u = 2.0, 4.0
    proj = (1 + t * math.sqrt(3 * k / (p + 1))) * tau + u * t * math.e * math.sqrt(k + p) / (
        p + 1
    ) * s[k]
    bound = math.sqrt(proj**2 + tau**2)
    ok = 0
    for seed in range(SEEDS):
        U, sv, Vt = randomized_svd(A, k, oversample=p, power_iters=0, rng=seed)
        ok += np.linalg.norm(A - (U * sv) @ Vt) <= bound * (1 + 1e-12)
        assert np.linalg.norm(A - (U * sv) @ Vt) >= tau * (1 - 1e-10)  # never beats SVD
    assert ok >= 27


def _gapped(m: int, n: int, k: int, decay: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``sigma_j = 1/j`` for ``j <= k``, then a tail ``1e-3 (j - k)^-decay``: a gap of >= 100."""
    rng = np.random.default_rng(seed)
    d = min(m, n)
    U, _ = np.linalg.qr(rng.standard_normal((m, d)))
    V, _ = np.linalg.qr(rng.standard_normal((n, d)))
    j = np.arange(1, d + 1, dtype=float)
    s = np.concatenate([1 / j[:k], 1e-3 * j[: d - k] ** -decay])
    return (U * s) @ V.T, s


@FEW
@given(
    k=st.integers(1, 8),
    q=st.integers(1, 3),
    decay=st.sampled_from([0.0, 0.5, 1.0]),
)
def test_rsvd_spectral_error_with_power_iterations(k: int, q: int, decay: float) -> None:
    """``sigma_{k+1} <= ||A - Ahat||_2 <= 10 E + sigma_{k+1}``, E from HMT Corollary 10.10."""
    A, s = _gapped(70, 50, k, decay, seed=k + q)
    p = 5
    tail = np.sqrt(np.sum(s[k:] ** (2 * (2 * q + 1))))
    expected = (
        (1 + math.sqrt(k / (p - 1))) * s[k] ** (2 * q + 1) + math.e * math.sqrt(k + p) / p * tail
    ) ** (1 / (2 * q + 1))
    # The bound is informative: below sigma_k, so missing any of the top k directions
    # (or returning zero, error sigma_1 = 1) violates it.
    assert 10 * expected + s[k] < s[k - 1] / 4
    ok = 0
    for seed in range(SEEDS):
        U, sv, Vt = randomized_svd(A, k, oversample=p, power_iters=q, rng=seed)
        err = np.linalg.norm(A - (U * sv) @ Vt, 2)
        assert err >= s[k] * (1 - 1e-10)  # Eckart-Young
        ok += err <= 10 * expected + s[k]
    assert ok >= 24


def test_power_iterations_sharpen_a_slowly_decaying_spectrum() -> None:
    """On ``sigma_j = j^-1/2`` the excess ``||A - Ahat||_2 - sigma_{k+1}`` falls with ``q``."""
    A, s = _planted(70, 50, 0.5, seed=0)
    k = 5
    excess = []
    for q in range(3):
        errs = [
            np.linalg.norm(A - (U * sv) @ Vt, 2) - s[k]
            for U, sv, Vt in (
                randomized_svd(A, k, oversample=5, power_iters=q, rng=seed) for seed in range(SEEDS)
            )
        ]
        assert min(errs) >= -1e-12  # Eckart-Young
        excess.append(np.mean(errs))
    # Measured (seeds 0-29): mean excess 0.19 / 0.010 / 0.0008 for q = 0 / 1 / 2.
    assert excess[1] < 0.25 * excess[0]
    assert excess[2] < 0.5 * excess[1]


def test_rsvd_exact_on_exact_rank_and_same_across_input_kinds() -> None:
    A, _ = _planted(50, 30, 1.0, seed=0)
    A = A[:, :5] @ np.random.default_rng(1).standard_normal((5, 30))  # rank 5
    A0 = A.copy()
    U, s, Vt = randomized_svd(A, 5, rng=3)
    np.testing.assert_allclose((U * s) @ Vt, A, atol=1e-12 * np.abs(A).max() * 50)
    np.testing.assert_allclose(U.T @ U, np.eye(5), atol=1e-12)
    np.testing.assert_allclose(s, np.linalg.svd(A, compute_uv=False)[:5], rtol=1e-10)
    for other in (sp.csr_matrix(A), aslinearoperator(A)):
        _, s2, _ = randomized_svd(other, 5, rng=3)
        np.testing.assert_allclose(s2, s, rtol=1e-12)
    _, s3, _ = randomized_svd(A, 5, rng=3)
    np.testing.assert_array_equal(s3, s)
    np.testing.assert_array_equal(A, A0)


def test_rsvd_torch_matches_numpy() -> None:
    torch = pytest.importorskip("torch")
    A, _ = _planted(40, 30, 1.0, seed=2)
    U, s, Vt = randomized_svd(torch.from_numpy(A), 4, rng=5)
    Un, sn, Vtn = randomized_svd(A, 4, rng=5)
    assert isinstance(U, torch.Tensor)
    np.testing.assert_allclose((U * s @ Vt).numpy(), (Un * sn) @ Vtn, atol=1e-12)


def test_rsvd_bad_input() -> None:
    A = np.ones((5, 4))
    for rank in (0, 5, -1):
        with pytest.raises(ValueError, match="rank"):
            randomized_svd(A, rank)
    with pytest.raises(TypeError, match="rank"):
        randomized_svd(A, 2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NaN"):
        randomized_svd(np.full((3, 3), np.nan), 1)
    with pytest.raises(ValueError, match="2-D"):
        randomized_svd(np.ones(3), 1)
    with pytest.raises(TypeError, match="floating"):
        randomized_svd(np.ones((3, 3), dtype=int), 1)
    with pytest.raises(ValueError, match="oversample"):
        randomized_svd(A, 1, oversample=-1)
    with pytest.raises(TypeError, match="rng"):
        randomized_svd(A, 1, rng="seed")  # type: ignore[arg-type]


def _weighted_err(W, X, r, c) -> float:
    return float(np.linalg.norm(r[:, None] * (W - X) * c[None, :]))


@settings(max_examples=15, deadline=None)
@given(
    m=st.integers(2, 12),
    n=st.integers(2, 12),
    k=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    cols=st.booleans(),
)
def test_weighted_svd_beats_random_alternatives(m: int, n: int, k: int, seed: int, cols: bool):
    k = min(k, m, n)
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((m, n))
    r = rng.uniform(0.1, 10, m)
    c = rng.uniform(0.1, 10, n) if cols else np.ones(n)
    f = weighted_svd(W, row_weights=r, col_weights=c if cols else None, rank=k)
    X = f.matrix()
    best = _weighted_err(W, X, r, c)
    assert np.linalg.matrix_rank(X) <= k
    scale = float(np.linalg.norm(W) * r.max() * c.max())
    assert best == pytest.approx(np.sqrt(np.sum(f.spectrum[k:] ** 2)), rel=1e-9, abs=1e-12 * scale)
    plain = weighted_svd(W, rank=k).matrix()
    assert best <= _weighted_err(W, plain, r, c) * (1 + 1e-12) + 1e-12 * scale
    for _ in range(20):
        eps = rng.choice([1e-3, 1e-1, 10.0])
        L = f.left + eps * rng.standard_normal(f.left.shape)
        R = f.right + eps * rng.standard_normal(f.right.shape)
        assert best <= _weighted_err(W, L @ R, r, c) * (1 + 1e-12) + 1e-12 * scale


@settings(max_examples=10, deadline=None)
@given(
    m=st.integers(2, 10),
    n=st.integers(2, 10),
    k=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    samples=st.sampled_from([3, 50]),
)
def test_whitened_svd_minimises_output_error(m: int, n: int, k: int, seed: int, samples: int):
    """The rank-k minimiser of ``||(W - X) F||_F`` with ``F F^T = C + 0.01 mean(diag C) I``."""
    k = min(k, m, n)
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((m, n))
    X = rng.standard_normal((samples, n)) * rng.uniform(0.01, 10, n)  # anisotropic inputs
    C = X.T @ X / samples
    f = whitened_svd(W, C, rank=k)
    # The documented damping (numlib.calibration.whiten, default damp = 0.01), from C
    # itself: it keeps lambda_min / lambda_max above ~0.01 / n, far above the clamping floor.
    Cd = C + 0.01 * np.mean(np.diag(C)) * np.eye(n)
    np.testing.assert_allclose(
        f.info["whitening"].covariance, Cd, rtol=0, atol=1e-12 * np.abs(Cd).max()
    )

    def out_err(A: np.ndarray) -> float:
        D = W - A
        return float(np.sqrt(max(np.trace(D @ Cd @ D.T), 0.0)))

    best = out_err(f.matrix())
    scale = float(np.linalg.norm(W) * np.sqrt(np.abs(Cd).max()))
    # Eckart-Young after whitening: the optimum is the tail of the spectrum of W Cd^{1/2}
    # (any square root: W Cd W^T has the same eigenvalues), computed independently.
    sv = np.sqrt(np.clip(np.linalg.eigvalsh(W @ Cd @ W.T), 0, None))[::-1]
    tail = np.sqrt(np.sum(sv[k:] ** 2))
    assert best == pytest.approx(tail, rel=1e-6, abs=1e-7 * scale)
    assert np.sqrt(np.sum(f.spectrum[k:] ** 2)) == pytest.approx(tail, rel=1e-6, abs=1e-7 * scale)
    assert best <= out_err(weighted_svd(W, rank=k).matrix()) * (1 + 1e-9) + 1e-7 * scale
    for _ in range(20):
        eps = rng.choice([1e-3, 1e-1, 10.0])
        L = f.left + eps * rng.standard_normal(f.left.shape)
        R = f.right + eps * rng.standard_normal(f.right.shape)
        assert best <= out_err(L @ R) * (1 + 1e-9) + 1e-7 * scale


def test_full_rank_is_exact_and_whitening_can_be_reused() -> None:
    rng = np.random.default_rng(0)
    W = rng.standard_normal((6, 9))
    C = np.cov(rng.standard_normal((40, 9)).T)
    for f in (
        weighted_svd(W, rank=6, split="left"),
        whitened_svd(W, C, rank=6, split="right"),
        whitened_svd(W, whitening=whiten(C, method="sqrt"), energy=1.0),
        dct_project(W, 9),
    ):
        np.testing.assert_allclose(f.matrix(), W, atol=1e-10)
        assert f.energy == pytest.approx(1.0)


def test_torch_factorisations_match_numpy() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    W = rng.standard_normal((7, 5))
    C = np.cov(rng.standard_normal((30, 5)).T)
    pairs = [
        (weighted_svd(torch.from_numpy(W), rank=2), weighted_svd(W, rank=2)),
        (
            whitened_svd(torch.from_numpy(W), torch.from_numpy(C), rank=2),
            whitened_svd(W, C, rank=2),
        ),
        (dct_project(torch.from_numpy(W), 3), dct_project(W, 3)),
    ]
    for ft, fn in pairs:
        assert isinstance(ft.left, torch.Tensor)
        np.testing.assert_allclose(ft.matrix().numpy(), fn.matrix(), atol=1e-10)
    K = C @ C
    nt, nn = nystrom(torch.from_numpy(K), 3), nystrom(K, 3)
    np.testing.assert_array_equal(nt.index, nn.index)
    np.testing.assert_allclose(nt.matrix().numpy(), nn.matrix(), atol=1e-10)
    A, B = torch.from_numpy(W), torch.from_numpy(C)
    cr = cr_approximation(A, B, 4, rng=0)
    assert isinstance(cr.matrix(A, B), torch.Tensor)
    np.testing.assert_allclose(cr.matrix(A, B).numpy(), cr.matrix(W, C), atol=1e-12)


def test_choose_rank_against_brute_force() -> None:
    rng = np.random.default_rng(0)
    s = np.sort(rng.uniform(0, 1, 40))[::-1]
    for energy in (0.1, 0.5, 0.9, 0.99, 1.0):
        k = choose_rank(s, (40, 60), energy=energy)
        kept = np.cumsum(s**2) / np.sum(s**2)
        assert kept[k - 1] >= energy - 1e-12 and (k == 1 or kept[k - 2] < energy)
    for ratio in (0.05, 0.3, 0.7):
        k = choose_rank(s, (40, 60), param_ratio=ratio, multiple_of=4)
        assert k % 4 == 0 and (k * 100 <= ratio * 2400 or k == 4)  # 4: the documented floor
        assert (k + 4) * 100 > ratio * 2400 or k == 40
    assert choose_rank(s, (40, 60), energy=0.5, multiple_of=8) % 8 == 0


def test_rank_selection_bad_input() -> None:
    W = np.ones((4, 3))
    for ratio in (0.0, 1.0, 1.5, -0.2):
        with pytest.raises(ValueError, match="param_ratio"):
            weighted_svd(W, param_ratio=ratio)
    with pytest.raises(ValueError, match="energy"):
        weighted_svd(W, energy=0.0)
    with pytest.raises(ValueError, match="exactly one"):
        weighted_svd(W, rank=1, energy=0.5)
    with pytest.raises(ValueError, match="exactly one"):
        weighted_svd(W)
    with pytest.raises(ValueError, match="rank"):
        weighted_svd(W, rank=0)
    with pytest.raises(ValueError, match="rank"):
        weighted_svd(W, rank=4)
    with pytest.raises(ValueError, match="row_weights"):
        weighted_svd(W, row_weights=np.array([1.0, 0.0, 1.0, 1.0]), rank=1)
    with pytest.raises(ValueError, match="col_weights"):
        weighted_svd(W, col_weights=np.ones(4), rank=1)
    with pytest.raises(ValueError, match="C must be"):
        whitened_svd(W, np.eye(4), rank=1)
    with pytest.raises(ValueError, match="exactly one of C"):
        whitened_svd(W, rank=1)
    with pytest.raises(ValueError, match="split"):
        weighted_svd(W, rank=1, split="middle")  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [1, 2, 7, 16])
def test_dct_basis_matches_scipy(n: int) -> None:
    ref = scipy.fft.idct(np.eye(n), norm="ortho", axis=0)  # column j: basis vector j
    np.testing.assert_allclose(dct_basis(n), ref, atol=1e-13)
    np.testing.assert_allclose(dct_basis(n, 1), ref[:, :1], atol=1e-13)


@settings(max_examples=15, deadline=None)
@given(m=st.integers(1, 6), n=st.integers(2, 7), k=st.integers(1, 4), seed=st.integers(0, 999))
def test_dct_energy_selection_is_optimal_over_subsets(m: int, n: int, k: int, seed: int):
    k = min(k, n)
    W = np.random.default_rng(seed).standard_normal((m, n))
    D = dct_basis(n)
    f = dct_project(W, k)
    err = np.linalg.norm(W - f.matrix())
    best = min(
        np.linalg.norm(W - W @ D[:, list(S)] @ D[:, list(S)].T)
        for S in itertools.combinations(range(n), k)
    )
    assert err == pytest.approx(best, rel=1e-9, abs=1e-12)
    assert err >= np.sqrt(np.sum(np.linalg.svd(W, compute_uv=False)[k:] ** 2)) - 1e-10
    low = dct_project(W, k, select="lowest")
    np.testing.assert_allclose(low.right, D[:, :k].T, atol=1e-12)


def test_ridge_leverage_scores_against_definition() -> None:
    X = np.random.default_rng(0).standard_normal((8, 12))
    K = X.T @ X
    for lam in (1e-3, 1.0, 30.0):
        ref = np.diag(K @ np.linalg.inv(K + lam * np.eye(12)))
        tau = ridge_leverage_scores(K, lam)
        np.testing.assert_allclose(tau, ref, atol=1e-10)
        ev = np.linalg.eigvalsh(K)
        assert tau.sum() == pytest.approx(
            np.sum(np.clip(ev, 0, None) / (np.clip(ev, 0, None) + lam))
        )
    P = X.T @ np.linalg.pinv(X.T)  # projector onto range(K)
    np.testing.assert_allclose(ridge_leverage_scores(K, 0.0), np.diag(P), atol=1e-10)


@settings(max_examples=10, deadline=None)
@given(
    n=st.integers(3, 20),
    k=st.integers(1, 6),
    seed=st.integers(0, 2**16),
    select=st.sampled_from(["top", "sample"]),
)
def test_nystrom_against_dense_reference(n: int, k: int, seed: int, select: str) -> None:
    k = min(k, n)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n + 3, n)) * np.logspace(0, -2, n)
    K = X.T @ X
    a = nystrom(K, k, select=select, rng=seed)  # type: ignore[arg-type]
    S = a.index
    assert len(S) == k == len(set(S.tolist()))
    ref = K[:, S] @ np.linalg.pinv(K[np.ix_(S, S)], rcond=1e-13, hermitian=True) @ K[S, :]
    np.testing.assert_allclose(a.matrix(), ref, atol=1e-8 * np.abs(K).max())
    E = K - a.matrix()
    assert np.linalg.eigvalsh((E + E.T) / 2).min() >= -1e-8 * np.abs(K).max()  # Schur complement
    lam = np.sort(np.linalg.eigvalsh(K))[::-1]
    assert np.trace(E) >= np.sum(lam[k:]) - 1e-8 * lam[0]


def _output_error(K: np.ndarray, W: np.ndarray, S: list[int]) -> float:
    """``trace(W (K - Khat_S) W^T)`` by an independent pseudo-inverse."""
    Khat = K[:, S] @ np.linalg.pinv(K[np.ix_(S, S)], hermitian=True) @ K[S, :]
    return float(np.trace(W @ (K - Khat) @ W.T))


@FEW
@given(n=st.integers(3, 9), m=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_greedy_nystrom_removes_the_cheapest_column_exactly(n: int, m: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n + 4, n)) * np.logspace(0, -1, n)
    K, W = X.T @ X, rng.standard_normal((m, n))
    one = nystrom(K, n - 1, select="greedy", weight=W)
    errors = [_output_error(K, W, [j for j in range(n) if j != i]) for i in range(n)]
    dropped = int(np.setdiff1d(np.arange(n), one.index)[0])
    assert errors[dropped] <= min(errors) * (1 + 1e-6) + 1e-12
    # A kept column's score is the error its removal would add next.
    kept = one.index.tolist()
    more = [_output_error(K, W, [j for j in kept if j != i]) - errors[dropped] for i in kept]
    np.testing.assert_allclose(one.scores[kept], more, rtol=1e-6, atol=1e-9)
    assert one.scores[dropped] == pytest.approx(errors[dropped], rel=1e-6, abs=1e-9)
    # Later steps: the reported costs add up to the error of the final set.
    k = max(1, n // 2)
    few = nystrom(K, k, select="greedy", weight=W)
    removed = np.setdiff1d(np.arange(n), few.index)
    total = _output_error(K, W, few.index.tolist())
    np.testing.assert_allclose(few.scores[removed].sum(), total, rtol=1e-6, atol=1e-9)
    refit = W @ few.interpolation  # W' = W K[:, S] K[S, S]^+ fits the full output best
    E = W - refit @ np.eye(n)[few.index]
    np.testing.assert_allclose(np.trace(E @ K @ E.T), total, rtol=1e-6, atol=1e-9)


def test_greedy_nystrom_is_exact_on_rank_k_and_agrees_across_libraries() -> None:
    rng = np.random.default_rng(3)
    X = rng.standard_normal((4, 12))
    K = X.T @ X
    np.testing.assert_allclose(nystrom(K, 4, select="greedy").matrix(), K, atol=1e-8)
    torch = pytest.importorskip("torch")
    W = rng.standard_normal((3, 12))
    ours = nystrom(K, 5, select="greedy", weight=W)
    theirs = nystrom(torch.from_numpy(K), 5, select="greedy", weight=torch.from_numpy(W))
    np.testing.assert_array_equal(ours.index, theirs.index)
    with pytest.raises(ValueError, match="weight must have 12 columns"):
        nystrom(K, 5, select="greedy", weight=W[:, :5])
    with pytest.raises(ValueError, match="weight is used by select='greedy' only"):
        nystrom(K, 5, weight=W)


def test_nystrom_exact_on_rank_k_and_sampling_guarantee() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4, 30))
    K = X.T @ X
    np.testing.assert_allclose(nystrom(K, 4).matrix(), K, atol=1e-9)
    # Ridge-leverage sampling: ||K - Khat||_2 <= ridge w.h.p. once k >> d_eff.
    Y = rng.standard_normal((100, 100)) * np.logspace(0, -6, 100)
    K = Y.T @ Y
    lam = 0.1 * np.linalg.eigvalsh(K).max()
    d_eff = ridge_leverage_scores(K, lam).sum()
    k = int(np.ceil(2 * d_eff * np.log(d_eff + 2)))
    assert k < 80
    ok = sum(
        np.linalg.norm(K - nystrom(K, k, select="sample", ridge=lam, rng=s).matrix(), 2) <= lam
        for s in range(SEEDS)
    )
    assert ok >= 27


def test_cr_unbiased_within_dkm_bound_and_exact_top() -> None:
    rng = np.random.default_rng(1)
    A = rng.standard_normal((10, 40)) * np.logspace(0, -1, 40)
    B = rng.standard_normal((40, 8))
    k = 10
    bound = np.linalg.norm(A) ** 2 * np.linalg.norm(B) ** 2 / k
    draws = [cr_approximation(A, B, k, rng=s) for s in range(400)]
    mats = np.stack([d.matrix(A, B) for d in draws])
    errs = np.sum((mats - A @ B) ** 2, axis=(1, 2))
    assert errs.mean() <= bound * 1.15  # E||AB - CR||_F^2 <= bound; 400 draws
    np.testing.assert_allclose(mats.mean(axis=0), A @ B, atol=0.25 * np.sqrt(bound))
    a = np.linalg.norm(A, axis=0) * np.linalg.norm(B, axis=1)
    np.testing.assert_allclose(draws[0].probabilities, a / a.sum())
    exact = cr_approximation(A, B, 40, select="top")
    np.testing.assert_allclose(exact.matrix(A, B), A @ B, atol=1e-12)
    top = cr_approximation(A, B, 5, select="top", scores=np.arange(40.0))
    np.testing.assert_array_equal(top.index, np.arange(35, 40))


def test_cr_and_nystrom_bad_input() -> None:
    A, B = np.ones((3, 4)), np.ones((4, 2))
    with pytest.raises(ValueError, match="conformable"):
        cr_approximation(A, np.ones((3, 2)), 2)
    with pytest.raises(ValueError, match="k"):
        cr_approximation(A, B, 0)
    with pytest.raises(ValueError, match="k"):
        cr_approximation(A, B, 5, select="top")
    with pytest.raises(ValueError, match="scores"):
        cr_approximation(A, B, 2, scores=-np.ones(4))
    with pytest.raises(ValueError, match="all zero"):
        cr_approximation(np.zeros((3, 4)), B, 2)
    with pytest.raises(ValueError, match="symmetric"):
        nystrom(np.triu(np.ones((3, 3))), 1)
    with pytest.raises(ValueError, match="k"):
        nystrom(np.eye(3), 4)
    with pytest.raises(ValueError, match="select"):
        nystrom(np.eye(3), 1, select="best")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ridge"):
        ridge_leverage_scores(np.eye(3), -1.0)


def test_choose_rank_checks_spectrum_and_shape() -> None:
    s = np.array([3.0, 2.0, 1.0])
    bad_spectra = [
        (np.array([np.nan, 1.0]), "spectrum contains NaN"),  # returned 1
        (np.array([]), "spectrum must not be empty"),  # IndexError
        (np.ones((2, 2)), "spectrum must be 1-D"),  # accepted
        (np.array([1.0, -2.0]), "spectrum must be non-negative"),  # accepted
        (np.array([1.0, 2.0, 3.0]), "descending"),  # eigh order: wrong energy rank
    ]
    for spectrum, message in bad_spectra:
        with pytest.raises(ValueError, match=message):
            choose_rank(spectrum, (3, 3), energy=0.5)
    with pytest.raises(TypeError, match="spectrum must hold real numbers"):
        choose_rank(s.astype(complex), (3, 3), energy=0.5)
    for shape, message in (
        ((0, 0), r"shape\[0\] must be >= 1"),  # ZeroDivisionError
        ((-3, 4), r"shape\[0\] must be >= 1"),  # returned 1
        ((3, 0), r"shape\[1\] must be >= 1"),
        ((3,), "shape must be a pair"),
    ):
        with pytest.raises(ValueError, match=message):
            choose_rank(s, shape, param_ratio=0.5)
    with pytest.raises(TypeError, match=r"shape\[1\] must be an integer"):
        choose_rank(s, (3, 2.5), param_ratio=0.5)
    # still accepted: integer spectra, torch-like shapes, ties, zeros
    assert choose_rank(np.array([2, 1, 1, 0]), (np.int64(4), 4), energy=1.0) == 3
    assert choose_rank(np.zeros(3), (3, 3), energy=0.5) == 1


def test_svd_rank_arguments_checked_before_the_svd(monkeypatch: pytest.MonkeyPatch) -> None:
    import numlib.lowrank

    def no_work(*args, **kwargs):
        raise AssertionError("the SVD (or the whitening) ran before the arguments were checked")

    monkeypatch.setattr(numlib.lowrank, "_svd_truncate", no_work)
    monkeypatch.setattr(numlib.lowrank, "whiten", no_work)
    W = np.ones((4, 3))
    C = np.eye(3)
    for fn, args in ((weighted_svd, (W,)), (whitened_svd, (W, C))):
        with pytest.raises(ValueError, match="split"):
            fn(*args, rank=1, split="middle")
        with pytest.raises(ValueError, match="exactly one of rank"):
            fn(*args)
        with pytest.raises(ValueError, match=r"rank must satisfy 1 <= rank <= 3"):
            fn(*args, rank=4)
        with pytest.raises(ValueError, match="energy"):
            fn(*args, energy=1.5)
        with pytest.raises(ValueError, match="param_ratio"):
            fn(*args, param_ratio=1.0)
        with pytest.raises(ValueError, match="multiple_of"):
            fn(*args, rank=1, multiple_of=0)


def test_nystrom_and_leverage_scores_refuse_indefinite_K() -> None:
    # clipping the negative eigenvalues used to turn -K into the zero matrix silently
    X = np.random.default_rng(0).standard_normal((8, 5))
    K = X.T @ X
    for M in (-K, np.diag([1.0, 2.0, -1e-3])):
        with pytest.raises(ValueError, match="K must be positive semi-definite"):
            ridge_leverage_scores(M, 0.0)
        for select in ("top", "sample", "greedy"):
            with pytest.raises(ValueError, match="K must be positive semi-definite"):
                nystrom(M, 2, select=select, rng=0)  # type: ignore[arg-type]
    # rounding-level negative eigenvalues (here -1e-15, tolerance 200 eps = 4.4e-14) of a
    # singular PSD K are still accepted
    Q = np.linalg.qr(np.random.default_rng(1).standard_normal((200, 200)))[0]
    lam = np.zeros(200)
    lam[:3] = [1.0, 0.5, 0.2]
    lam[-1] = -1e-15
    G = (Q * lam) @ Q.T
    G = (G + G.T) / 2
    assert np.all(ridge_leverage_scores(G, 0.0) >= 0)
    np.testing.assert_allclose(nystrom(G, 3).matrix(), G, atol=1e-9)
    nystrom(G, 3, select="greedy")
