"""Tests of the SoftImpute baseline (validation.peers.softimpute)."""

from __future__ import annotations

import numpy as np
import pytest

from validation.peers.softimpute import _sampled, soft_impute


def test_sampled_entries_match_dense_product() -> None:
    rng = np.random.default_rng(0)
    U, V = rng.standard_normal((30, 4)), rng.standard_normal((20, 4))
    rows, cols = rng.integers(0, 30, 50), rng.integers(0, 20, 50)
    np.testing.assert_allclose(_sampled(U, V, rows, cols), (U @ V.T)[rows, cols], atol=1e-12)


def test_recovers_low_rank_matrix() -> None:
    # nuclear-norm path with rank capped at k: converges to M on a well-sampled matrix
    rng = np.random.default_rng(1)
    M = rng.standard_normal((120, 3)) @ rng.standard_normal((100, 3)).T
    i, j = np.nonzero(rng.random(M.shape) < 0.4)
    res = soft_impute(i, j, M[i, j], M.shape, 3, tol=1e-6, max_iters=2000, rng=0)
    assert res.converged
    Z = (res.U * res.d) @ res.V.T
    assert np.linalg.norm(Z - M) / np.linalg.norm(M) <= 1e-4
    # the training error history decreases overall
    assert res.train_error_history[-1] < 1e-3 * res.train_error_history[1]


def test_bad_parameters() -> None:
    i = np.array([0, 1])
    with pytest.raises(ValueError, match="rank_max"):
        soft_impute(i, i, np.ones(2), (5, 4), 4)
    with pytest.raises(ValueError, match="lam_decay"):
        soft_impute(i, i, np.ones(2), (5, 4), 2, lam_decay=1.5)
