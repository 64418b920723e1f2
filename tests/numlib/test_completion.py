"""Tests for numlib.completion: recovery vs the planted matrix, lstsq reference, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from numlib._completion_rows import Grouped, exact_update, robust_update
from numlib.completion import complete
from numlib.result import ConvergenceWarning


def planted(m, n, k, frac, seed):
    r = np.random.default_rng(seed)
    M = r.standard_normal((m, k)) @ r.standard_normal((n, k)).T
    i, j = np.nonzero(r.random((m, n)) < frac)
    return M, sp.coo_array((M[i, j], (i, j)), shape=(m, n))


def rel(res, M):
    return np.linalg.norm(res.U @ res.V.T - M) / np.linalg.norm(M)


@pytest.mark.parametrize("method", ["exact", "robust"])
@pytest.mark.parametrize(("k", "frac", "seed"), [(3, 0.2, 0), (5, 0.3, 1), (4, 0.25, 2)])
def test_recovers_planted(method, k, frac, seed):
    M, obs = planted(300, 250, k, frac, seed)
    res = complete(obs, k, method=method, rng=seed)
    assert res.converged
    assert rel(res, M) <= 1e-6
    assert res.U.shape == (300, k) and res.V.shape == (250, k)
    assert res.train_error_history[-1] <= 1e-8


@settings(max_examples=15, deadline=None)
@given(
    st.integers(1, 4),
    st.integers(0, 12),
    st.floats(0.0, 1.0),
    st.integers(0, 2**31 - 1),
)
def test_exact_row_solve_equals_lstsq(k, extra, ridge_on, seed):
    r = np.random.default_rng(seed)
    nrows, ncols = 6, 20
    F = r.standard_normal((ncols, k))
    mask = r.random((nrows, ncols)) < (k + extra) / ncols
    rows, cols = np.nonzero(mask)
    vals = r.standard_normal(rows.size)
    ridge = 0.3 if ridge_on > 0.5 else 0.0
    got = exact_update(Grouped(rows, cols, vals, nrows), F, ridge)
    for i in range(nrows):
        A = F[cols[rows == i]]
        b = vals[rows == i]
        if ridge:
            A = np.vstack([A, np.sqrt(ridge) * np.eye(k)])
            b = np.concatenate([b, np.zeros(k)])
        ref = np.linalg.lstsq(A, b, rcond=None)[0] if A.shape[0] else np.zeros(k)
        np.testing.assert_allclose(got[i], ref, rtol=1e-7, atol=1e-9)


def test_input_unmodified_and_csr_and_tuple_agree():
    _, obs = planted(60, 50, 2, 0.5, 3)
    csr = obs.tocsr()
    before = (csr.data.copy(), csr.indices.copy(), csr.indptr.copy())
    coo_before = (obs.row.copy(), obs.col.copy(), obs.data.copy())
    r1 = complete(csr, 2, method="exact", rng=5)
    assert all(
        np.array_equal(a, b)
        for a, b in zip(before, (csr.data, csr.indices, csr.indptr), strict=True)
    )
    r2 = complete(obs, 2, method="exact", rng=5)
    assert all(
        np.array_equal(a, b) for a, b in zip(coo_before, (obs.row, obs.col, obs.data), strict=True)
    )
    r3 = complete((obs.row, obs.col, obs.data, obs.shape), 2, method="exact", rng=5)
    np.testing.assert_allclose(r1.U @ r1.V.T, r2.U @ r2.V.T, atol=1e-10)
    np.testing.assert_allclose(r2.U @ r2.V.T, r3.U @ r3.V.T, atol=1e-10)


@pytest.mark.parametrize("method", ["exact", "robust"])
def test_same_rng_same_result(method):
    _, obs = planted(120, 100, 3, 0.3, 4)
    a = complete(obs, 3, method=method, rng=11, validation_fraction=0.1)
    b = complete(obs, 3, method=method, rng=11, validation_fraction=0.1)
    np.testing.assert_array_equal(a.U, b.U)
    np.testing.assert_array_equal(a.V, b.V)
    np.testing.assert_array_equal(a.validation_error_history, b.validation_error_history)


def test_validation_and_mask():
    """Held-out entries converge too; a mask keeps exactly the observations it stores a
    nonzero at (reference: completing that subset directly)."""
    M, obs = planted(150, 120, 3, 0.4, 6)
    res = complete(obs, 3, method="robust", rng=0, validation_fraction=0.1)
    assert res.converged and res.info["n_validation"] > 0
    assert res.validation_error_history[-1] <= 1e-8
    m, n = obs.shape
    r = np.random.default_rng(1)
    keep = r.random(obs.nnz) < 0.7  # a strict subset of the observations
    stored_zero = ~keep & (r.random(obs.nnz) < 0.5)  # stored in the mask, but as 0
    seen = np.zeros(m * n, dtype=bool)
    seen[obs.row * n + obs.col] = True
    extra = np.flatnonzero(~seen)[::7]  # mask entries where nothing was observed
    sel = keep | stored_zero
    mask = sp.coo_array(
        (
            np.concatenate([np.where(keep[sel], 2.0, 0.0), np.ones(extra.size)]),
            (np.concatenate([obs.row[sel], extra // n]), np.concatenate([obs.col[sel], extra % n])),
        ),
        shape=(m, n),
    )
    assert 0 < keep.sum() < obs.nnz and stored_zero.any()
    subset = sp.coo_array((obs.data[keep], (obs.row[keep], obs.col[keep])), shape=obs.shape)
    res2 = complete(obs, 3, mask=mask, method="exact", rng=0)
    ref = complete(subset, 3, method="exact", rng=0)
    assert res2.info["n_train"] == keep.sum() and res2.sweeps == ref.sweeps
    np.testing.assert_allclose(res2.U @ res2.V.T, ref.U @ ref.V.T, rtol=0, atol=1e-10)
    np.testing.assert_allclose(res2.train_error_history, ref.train_error_history, atol=1e-12)
    assert rel(res2, M) <= 1e-6


def test_nonconvergence_warns():
    _, obs = planted(100, 80, 3, 0.3, 7)
    with pytest.warns(ConvergenceWarning):
        res = complete(obs, 3, method="exact", max_sweeps=1, tol=1e-14, rng=0)
    assert not res.converged and res.sweeps == 1


@pytest.mark.parametrize("fmt", ["coo", "csr"])
def test_explicit_zeros_are_observations(fmt):
    """A stored zero is an observed 0: each final row of ``U`` is the least-squares fit of
    its observed entries, zeros included (reference: numpy.linalg.lstsq per row)."""
    M, obs = planted(80, 70, 2, 0.5, 8)
    i, j = obs.row, obs.col
    vals = M[i, j]
    zero = (i < 10) & (np.random.default_rng(0).random(i.size) < 0.5)
    vals[zero] = 0.0  # about half of the observations of rows 0-9 are explicit zeros
    O0 = sp.coo_array((vals, (i, j)), shape=M.shape)
    O0 = O0.tocsr() if fmt == "csr" else O0
    assert O0.nnz == i.size and zero.sum() > 50
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # no longer exactly rank 2
        res = complete(O0, 2, method="exact", rng=0, max_sweeps=5)
    for row in range(M.shape[0]):  # exact ALS ends with U = rowwise argmin given V
        on = i == row
        ref = np.linalg.lstsq(res.V[j[on]], vals[on], rcond=None)[0]
        np.testing.assert_allclose(res.U[row], ref, rtol=1e-8, atol=1e-10)
    fitted = np.einsum("ek,ek->e", res.U[i], res.V[j])
    assert res.train_error_history[-1] == pytest.approx(
        np.linalg.norm(fitted - vals) / np.linalg.norm(vals), rel=1e-8
    )


@pytest.mark.parametrize(
    ("kwargs", "exc", "word"),
    [
        ({"rank": 0}, ValueError, "rank"),
        ({"rank": 50}, ValueError, "rank"),
        ({"rank": 2.0}, TypeError, "rank"),
        ({"method": "fast"}, ValueError, "method"),
        ({"tol": -1.0}, ValueError, "tol"),
        ({"ridge": np.nan}, ValueError, "ridge"),
        ({"validation_fraction": 1.0}, ValueError, "validation_fraction"),
        ({"min_rows_factor": -0.5}, ValueError, "min_rows_factor"),
        ({"max_sweeps": 0}, ValueError, "max_sweeps"),
        ({"inner_steps": 0}, ValueError, "inner_steps"),
        ({"rng": "x"}, TypeError, "rng"),
        ({"mask": np.ones((40, 30))}, TypeError, "mask"),
    ],
)
def test_bad_parameters(kwargs, exc, word):
    _, obs = planted(40, 30, 2, 0.5, 9)
    args = {"rank": 2, **kwargs}
    with pytest.raises(exc, match=word):
        complete(obs, args.pop("rank"), **args)


def test_bad_observations():
    with pytest.raises(ValueError, match="rows"):
        complete((np.array([0, 5]), np.array([0, 1]), np.array([1.0, 2.0]), (5, 4)), 1)
    with pytest.raises(ValueError, match="cols"):
        complete((np.array([0, 1]), np.array([0, -1]), np.array([1.0, 2.0]), (5, 4)), 1)
    with pytest.raises(ValueError, match="duplicate"):
        complete((np.array([0, 0]), np.array([1, 1]), np.array([1.0, 2.0]), (5, 4)), 1)
    dup = sp.coo_array((np.array([1.0, 2.0]), (np.array([2, 2]), np.array([3, 3]))), shape=(5, 4))
    with pytest.raises(ValueError, match="duplicate"):
        complete(dup, 1)
    with pytest.raises(ValueError, match="NaN"):
        complete(sp.coo_array(np.array([[np.nan, 1.0], [1.0, 2.0], [0.0, 3.0]])), 1)
    with pytest.raises(ValueError, match="no observed"):
        complete(sp.csr_array((5, 4)), 1)
    with pytest.raises(TypeError, match="observed"):
        complete(np.ones((5, 4)), 1)
    with pytest.raises(TypeError, match="observed"):
        complete(sp.coo_array(np.ones((5, 4), dtype=complex)), 1)


@settings(max_examples=8, deadline=None)
@given(
    st.integers(2, 6),
    st.integers(0, 30),
    st.sampled_from([0.0, 0.3]),
    st.integers(0, 2**31 - 1),
)
def test_robust_row_solve_converges_to_lstsq(k, extra, ridge, seed):
    # with a tight inner tolerance and enough CG steps, the approximate row update is
    # the exact least-squares solution (reference: numpy.linalg.lstsq per row)
    r = np.random.default_rng(seed)
    nrows, ncols = 8, 60
    F = r.standard_normal((ncols, k))
    mask = r.random((nrows, ncols)) < (2 * k + extra) / ncols
    rows, cols = np.nonzero(mask)
    vals = r.standard_normal(rows.size)
    g = Grouped(rows, cols, vals, nrows)
    X0 = r.standard_normal((nrows, k))
    resid = np.full(rows.size + 1, np.nan)
    got, n_cg, _, sq = robust_update(
        g, F, X0, ridge, k, min_steps=0, max_steps=200, rtol=1e-12, resid=resid
    )
    total = 0.0
    for i in range(nrows):
        A = F[cols[rows == i]]
        b = vals[rows == i]
        if A.shape[0] == 0:
            continue
        total += float(np.sum((A @ got[i] - b) ** 2))
        if ridge:
            A = np.vstack([A, np.sqrt(ridge) * np.eye(k)])
            b = np.concatenate([b, np.zeros(k)])
        ref = np.linalg.lstsq(A, b, rcond=None)[0]
        np.testing.assert_allclose(got[i], ref, rtol=1e-6, atol=1e-8)
    assert n_cg == int(np.sum(g.counts > k))
    assert sq == pytest.approx(total, rel=1e-8, abs=1e-12)
    # the residual handed to the next half-sweep, by entry number (reference: dense)
    np.testing.assert_allclose(
        resid[:-1], vals - np.einsum("ek,ek->e", got[rows], F[cols]), rtol=0, atol=1e-8
    )
    assert resid[-1] == 0.0


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 5), st.integers(1, 3), st.sampled_from([0.0, 0.5]), st.integers(0, 2**31 - 1))
def test_robust_reused_residual_equals_recomputed(k, steps, ridge, seed):
    # starting from the carried residual must give the same rows as recomputing it, and
    # the carried residual must stay the true one (reference: dense products)
    r = np.random.default_rng(seed)
    m, n = 9, 40
    mask = r.random((m, n)) < 0.5
    rows, cols = np.nonzero(mask)
    vals = r.standard_normal(rows.size)
    perm = r.permutation(rows.size)  # entry numbers need not follow either grouping
    rows, cols, vals = rows[perm], cols[perm], vals[perm]
    U0, V = r.standard_normal((m, k)), r.standard_normal((n, k))
    resid = np.append(vals - np.einsum("ek,ek->e", U0[rows], V[cols]), 0.0)
    g = Grouped(rows, cols, vals, m)
    kw = {"min_steps": steps, "max_steps": steps}
    a = robust_update(g, V, U0, ridge, 1, **kw)
    b = robust_update(g, V, U0, ridge, 1, resid=resid, reuse=True, **kw)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-10, atol=1e-10)
    assert a[3] == pytest.approx(b[3], rel=1e-10, abs=1e-12)
    np.testing.assert_allclose(
        resid[:-1], vals - np.einsum("ek,ek->e", b[0][rows], V[cols]), rtol=0, atol=1e-10
    )


def test_robust_takes_few_cg_steps_and_reports_sweep_times():
    M, obs = planted(400, 300, 4, 0.3, 12)
    res = complete(obs, 4, method="robust", rng=0)
    assert res.converged and rel(res, M) <= 1e-6
    assert len(res.info["sweep_seconds"]) == res.sweeps
    # every half-sweep solves its rows by CG: at least 2 steps, few on a well-conditioned M
    inner = res.info["inner_iterations"]
    assert len(inner) == 2 * res.sweeps and min(inner) >= 2 and max(inner) <= 6
    assert min(res.info["cg_rows"]) > 0


@pytest.mark.parametrize("cond", [100.0, 1000.0])
def test_robust_recovers_ill_conditioned(cond):
    # singular values spread over [1, cond]: at cond 1000 a fixed two CG steps per row
    # stalls at 5e-2 relative error after 100 sweeps; the condition-scaled inner
    # tolerance recovers M in 16 sweeps (exact ALS: 12)
    r = np.random.default_rng(15)
    m, n, k = 400, 350, 5
    M = (r.standard_normal((m, k)) * np.logspace(0, np.log10(cond), k)) @ r.standard_normal(
        (n, k)
    ).T
    i, j = np.nonzero(r.random((m, n)) < 0.3)
    obs = sp.coo_array((M[i, j], (i, j)), shape=M.shape)
    res = complete(obs, k, method="robust", rng=0, max_sweeps=100)
    assert res.converged and rel(res, M) <= 1e-6


@pytest.mark.parametrize("method", ["exact", "robust"])
def test_issue_size_recovery(method):
    # the issue's property: 1000 x 1000, rank 10, 5% observed, relative error <= 1e-6
    M, obs = planted(1000, 1000, 10, 0.05, 13)
    res = complete(obs, 10, method=method, rng=0)
    assert res.converged
    assert rel(res, M) <= 1e-6


@settings(max_examples=25, deadline=None)
@given(
    st.integers(1, 30),
    st.integers(1, 30),
    st.integers(1, 6),
    st.sampled_from([8, 64, 1 << 10]),
    st.integers(0, 2**31 - 1),
)
def test_grouped_chunks_cover_every_entry_once(nrows, ncols, k, size, seed):
    # reference: the dense observation matrix, rebuilt from the padded chunks
    r = np.random.default_rng(seed)
    mask = r.random((nrows, ncols)) < r.uniform(0.05, 1.0)
    rows, cols = np.nonzero(mask)
    perm = r.permutation(rows.size)
    rows, cols = rows[perm], cols[perm]
    vals = r.standard_normal(rows.size)
    g = Grouped(rows, cols, vals, nrows)
    dense = np.zeros((nrows, ncols + 1))
    seen = np.zeros(rows.size + 1, dtype=int)
    got_rows = []
    width = 0
    for ids, idx, val, ent in g.chunks(k, ncols, size):
        assert idx.shape == val.shape == ent.shape == (ids.size, idx.shape[1])
        assert idx.shape[1] >= width  # rows are sorted by count
        width = idx.shape[1]
        assert ids.size == 1 or ids.size * width * k <= size
        pad = idx == ncols
        assert np.all(val[pad] == 0.0) and np.all(ent[pad] == rows.size)
        np.add.at(dense, (np.repeat(ids, width), idx.ravel()), val.ravel())
        np.add.at(seen, ent.ravel(), 1)
        np.testing.assert_array_equal(vals[ent[~pad]], val[~pad])
        got_rows.append(ids)
    ref = np.zeros((nrows, ncols))
    ref[rows, cols] = vals
    np.testing.assert_array_equal(dense[:, :ncols], ref)
    assert np.all(seen[:-1] == 1)
    covered = np.concatenate(got_rows) if got_rows else np.zeros(0, dtype=int)
    np.testing.assert_array_equal(np.sort(covered), np.flatnonzero(mask.sum(1)))


def test_full_rank_is_accepted():
    M, obs = planted(12, 9, 9, 1.0, 14)
    res = complete(obs, 9, method="exact", rng=0)
    assert res.converged and rel(res, M) <= 1e-8
