"""Tests of numlib.calibration: streaming statistics and guarded whitening.

References are computed independently from the stacked data (``X^T X / n``,
``numpy.cov``, column norms) and from dense numpy linear algebra.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from numlib._arrays import small_lapack_threads
from numlib.calibration import CalibrationStats, Whitening, whiten

FEW = settings(max_examples=15, deadline=None)


@pytest.fixture(autouse=True)
def _one_blas_thread():
    # Small LAPACK calls with a multi-threaded OpenBLAS on a loaded 2-core machine are
    # 10-100x slower than single-threaded ones; the results are the same.
    with small_lapack_threads():
        yield


@FEW
@given(
    d=st.integers(1, 12),
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=6),
    seed=st.integers(0, 2**16),
)
def test_streamed_and_merged_equal_the_concatenated_data(d: int, sizes: list[int], seed: int):
    rng = np.random.default_rng(seed)
    batches = [rng.standard_normal((t, d)) * rng.uniform(0.1, 10) + 3.0 for t in sizes]
    X = np.concatenate(batches)
    streamed = CalibrationStats()
    parts = [CalibrationStats(d) for _ in batches]
    for b, part in zip(batches, parts, strict=True):
        streamed.update(b)
        part.update(b)
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part)
    for stats in (streamed, merged):
        assert stats.count == X.shape[0]
        np.testing.assert_allclose(stats.second_moment(), X.T @ X / len(X), rtol=1e-10)
        np.testing.assert_allclose(stats.mean, X.mean(axis=0), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(stats.channel_norms(), np.linalg.norm(X, axis=0), rtol=1e-10)
        ref = np.atleast_2d(np.cov(X.T, bias=True))
        np.testing.assert_allclose(stats.covariance(centered=True), ref, atol=1e-9 * ref.max())


def test_leading_axes_flatten_and_diagonal_mode_and_state_roundtrip() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4, 7, 5)).astype(np.float32)
    full = CalibrationStats().update(X)
    diag = CalibrationStats(covariance=False).update(X)
    flat = X.reshape(-1, 5).astype(np.float64)
    np.testing.assert_allclose(full.second_moment(), flat.T @ flat / 28, rtol=1e-12)
    np.testing.assert_allclose(diag.channel_norms(), full.channel_norms(), rtol=1e-12)
    with pytest.raises(ValueError, match="covariance=False"):
        diag.second_moment()
    back = CalibrationStats.from_state_dict(full.state_dict())
    np.testing.assert_array_equal(back.second_moment(), full.second_moment())
    assert back.count == 28
    assert X.dtype == np.float32  # input untouched


def test_torch_batches_stay_torch() -> None:
    torch = pytest.importorskip("torch")
    X = np.random.default_rng(1).standard_normal((30, 4))
    stats = CalibrationStats().update(torch.from_numpy(X[:10])).update(torch.from_numpy(X[10:]))
    assert isinstance(stats.second_moment(), torch.Tensor)
    np.testing.assert_allclose(stats.second_moment().numpy(), X.T @ X / 30, rtol=1e-12)
    with pytest.raises(TypeError, match="same array library"):
        stats.update(X)


def test_calibration_bad_input() -> None:
    stats = CalibrationStats(3)
    with pytest.raises(ValueError, match="empty calibration"):
        stats.second_moment()
    with pytest.raises(ValueError, match="empty calibration"):
        stats.channel_norms()
    with pytest.raises(ValueError, match="x must not be empty"):
        stats.update(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="3 features"):
        stats.update(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        stats.update(np.array([[1.0, np.nan, 0.0]]))
    with pytest.raises(ValueError, match="batch, features"):
        stats.update(np.zeros(3))
    with pytest.raises(TypeError, match="floating"):
        stats.update(np.zeros((2, 3), dtype=int))
    with pytest.raises(TypeError, match="CalibrationStats"):
        stats.merge(np.zeros(3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="missing"):
        CalibrationStats.from_state_dict({"count": np.array(1)})


def _psd(d: int, rank: int, seed: int) -> np.ndarray:
    X = np.random.default_rng(seed).standard_normal((rank, d))
    return X.T @ X / rank


@FEW
@given(
    d=st.integers(1, 20),
    method=st.sampled_from(["cholesky", "eigh", "sqrt"]),
    damp=st.sampled_from([0.0, 0.01, 0.1]),
    seed=st.integers(0, 2**16),
)
def test_factor_reproduces_damped_matrix(d: int, method: str, damp: float, seed: int) -> None:
    C = _psd(d, 3 * d, seed)  # full rank, well conditioned
    C0 = C.copy()
    w = whiten(C, damp=damp, ridge=0.5 if damp == 0.1 else 0.0, method=method)  # type: ignore[arg-type]
    shift = damp * np.mean(np.diag(C)) + (0.5 if damp == 0.1 else 0.0)
    Cd = C + shift * np.eye(d)
    assert w.damping == pytest.approx(shift)
    assert w.clamped == 0 and not w.fallback and w.method == method
    np.testing.assert_allclose(w.factor @ w.factor.T, Cd, atol=1e-10 * np.abs(Cd).max())
    np.testing.assert_allclose(w.factor @ w.inverse, np.eye(d), atol=1e-8)
    if method == "cholesky":
        np.testing.assert_array_equal(np.triu(w.factor, 1), 0)
    if method == "sqrt":
        np.testing.assert_allclose(w.factor, w.factor.T, atol=1e-10)
    np.testing.assert_array_equal(C, C0)


@FEW
@given(
    d=st.integers(2, 20),
    method=st.sampled_from(["cholesky", "eigh", "sqrt"]),
    seed=st.integers(0, 2**16),
    indefinite=st.booleans(),
)
# A rank-one 2 x 2 matrix whose largest Cholesky pivot^2 is far below lambda_max.
@example(d=2, method="cholesky", seed=300, indefinite=False)
def test_singular_or_indefinite_input_is_clamped_and_reported(
    d: int, method: str, seed: int, indefinite: bool
) -> None:
    C = _psd(d, max(1, d // 2), seed)  # rank-deficient
    if indefinite:
        v = np.random.default_rng(seed + 1).standard_normal(d)
        C = C - 1e-3 * np.abs(C).max() * np.outer(v, v) / (v @ v)
    w = whiten(C, damp=0.0, method=method)  # type: ignore[arg-type]
    assert w.clamped >= 1
    assert w.min_eigenvalue is not None and w.floor is not None
    assert w.min_eigenvalue < w.floor
    if indefinite:
        assert w.min_eigenvalue < 0
    assert w.fallback == (method == "cholesky")
    assert np.all(np.isfinite(w.inverse))
    np.testing.assert_allclose(w.factor @ w.inverse, np.eye(d), atol=1e-5)
    # Only the clamped eigenvalues changed: C_used - C is PSD and tiny in norm.
    lam, V = np.linalg.eigh(C)
    ref = (V * np.maximum(lam, w.floor)) @ V.T
    np.testing.assert_allclose(w.covariance, ref, atol=1e-9 * np.abs(C).max())


def test_whiten_torch_matches_numpy() -> None:
    torch = pytest.importorskip("torch")
    C = _psd(6, 20, 3)
    for method in ("cholesky", "eigh", "sqrt"):
        wn = whiten(C, method=method)  # type: ignore[arg-type]
        wt = whiten(torch.from_numpy(C), method=method)  # type: ignore[arg-type]
        assert isinstance(wt.factor, torch.Tensor)
        np.testing.assert_allclose(
            (wt.factor @ wt.factor.T).numpy(), wn.factor @ wn.factor.T, atol=1e-12
        )


def test_whiten_bad_input() -> None:
    C = _psd(4, 8, 0)
    with pytest.raises(ValueError, match="symmetric"):
        whiten(C + np.triu(np.ones((4, 4)), 1))
    with pytest.raises(ValueError, match="square"):
        whiten(np.ones((3, 4)))
    with pytest.raises(ValueError, match="NaN"):
        whiten(np.full((2, 2), np.nan))
    with pytest.raises(ValueError, match="damp"):
        whiten(C, damp=-1.0)
    with pytest.raises(ValueError, match="clamp"):
        whiten(C, clamp=1.5)
    with pytest.raises(ValueError, match="method"):
        whiten(C, method="qr")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no positive eigenvalue"):
        whiten(np.zeros((3, 3)))
    assert isinstance(whiten(np.zeros((3, 3)), ridge=1.0), Whitening)


def test_from_state_dict_rejects_non_finite_statistics() -> None:
    good = CalibrationStats().update(np.random.default_rng(0).standard_normal((5, 3))).state_dict()
    for key, value in (("moment", np.nan), ("moment", np.inf), ("mean", np.nan)):
        state = {k: v.copy() for k, v in good.items()}
        state[key].flat[0] = value
        with pytest.raises(ValueError, match=rf"state\['{key}'\] contains NaN or Inf"):
            CalibrationStats.from_state_dict(state)
    CalibrationStats.from_state_dict(good)  # the untouched state still loads
