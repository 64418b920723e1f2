"""Suite ``lowrank``: randomized SVD, Monarch projection and the nuclear-norm proxy.

Test matrices are planted (seed :data:`SEED`) with an exactly known spectrum:
``A = U diag(s) V^T`` where ``U``, ``V`` are orthonormal columns of a randomly signed,
row-permuted DCT-II basis (cheap to form, exactly orthonormal) and ``s_j = j^-decay``.
For a Gaussian test matrix the error distribution of a randomized SVD depends only on
the singular values, so these factors lose no generality, and the optimal rank-``k``
error ``tau_{k+1} = (sum_{j>k} s_j^2)^{1/2}`` is known exactly.

Cases and metrics:

``rsvd-{m}x{n}``
    :func:`numlib.lowrank.randomized_svd` (``p = 10``, ``q = 2``) against
    ``scipy.sparse.linalg.svds`` (ARPACK), ``sklearn.utils.extmath.randomized_svd`` (same
    ``p``, ``q``; skipped when scikit-learn is absent) and ``numpy.linalg.svd`` (full SVD,
    truncated; timed once). ``rel_error_vs_optimal`` = ``||A - Ahat||_F / tau_{k+1}``
    (1 is optimal), ``sv_rel_error`` = ``max_i |shat_i - s_i| / s_i`` over the ``k`` values.
``monarch-{m}x{n}``
    :func:`numlib.monarch.monarch_project` against the truncated SVD with the same number
    of parameters (``numpy.linalg.svd``), on two inputs: ``gaussian`` (no structure) and
    ``monarch+noise`` (a random Monarch matrix plus 1% Gaussian noise). ``rel_error`` =
    ``||A - Ahat||_F / ||A||_F``, ``params``.
``nuclear-proxy``
    :func:`numlib.spectra.nuclear_norm_proxy` (``O(mn)``) against the exact nuclear norm
    (``numpy.linalg.norm(A, "nuc")``, an SVD) over a family of matrices with Haar singular
    vectors and spectra ``s_j = c j^-beta``, ``beta`` uniform in ``[0, 2]``, ``c`` log-uniform
    in ``[0.1, 10]``: total time of each, ``pearson`` and ``spearman`` correlation of proxy
    and exact values across the family, and ``mean_ratio`` proxy / exact.
``farms-alpha-mu{mu}``
    Heavy-tail exponent of matrices with i.i.d. symmetric Pareto(``mu``) entries (a
    power-law ESD, Martin & Mahoney's heavy-tailed class) at one entry count and aspect
    ratios 1, 4 and 16: :func:`numlib.spectra.heavy_tail_alpha` with ``farms=True``
    against the plain ESD fit. ``alpha_{m}x{n}`` per shape, ``alpha_spread`` (max - min
    over the shapes; the aspect-ratio bias FARMS is meant to remove) and ``fits_ok``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.sparse.linalg
import scipy.stats

from numlib.lowrank import dct_basis, randomized_svd
from numlib.monarch import Monarch, monarch_project
from numlib.spectra import heavy_tail_alpha, nuclear_norm_proxy
from validation.measure import best_time, best_time_unless_slow
from validation.registry import Record, case

SUITE = "lowrank"
SEED = 20250611
DECAY = 1.0
OVERSAMPLE = 10
POWER_ITERS = 2
RSVD_SHAPES = {
    "small": [(1000, 600, 20)],
    "medium": [(4096, 4096, 64), (8192, 2048, 64)],
    "large": [(8192, 8192, 128), (16384, 4096, 128)],
}
MONARCH_SHAPES = {
    "small": [(256, 256, 16), (1024, 256, 4)],
    "medium": [(2048, 2048, 32), (1536, 384, 4)],
    "large": [(4096, 4096, 64), (3072, 768, 4)],
}
PROXY_FAMILY = {"small": (12, 256), "medium": (30, 1024), "large": (30, 2048)}
FARMS_SHAPES = {
    "small": [(256, 256), (128, 512), (64, 1024)],
    "medium": [(1024, 1024), (512, 2048), (256, 4096)],
    "large": [(2048, 2048), (1024, 4096), (512, 8192)],
}
FARMS_MU = (1.5, 2.5)
BLAS_THREADS = 1


@contextlib.contextmanager
def _blas_threads() -> Iterator[None]:
    """Run both sides with :data:`BLAS_THREADS` BLAS threads (when threadpoolctl is present).

    On a shared 2-core machine a multi-threaded OpenBLAS loses 10-30x on the peers'
    small LAPACK calls (measured: a 1000 x 600 full SVD in 18.7 s vs under 1 s), which
    would make every ratio meaningless; numlib and the peer always share the setting.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=BLAS_THREADS, user_api="blas"):
        yield


def _orthonormal(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """``d`` orthonormal columns: a random subset of the DCT-II basis, signed and permuted."""
    cols = rng.choice(n, size=d, replace=False)
    basis = dct_basis(n)[:, cols] * rng.choice([-1.0, 1.0], size=d)
    return basis[rng.permutation(n)]


def planted(
    m: int, n: int, decay: float = DECAY, seed: int = SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``A = U diag(s) V^T`` (see the module docstring) and ``s``."""
    rng = np.random.default_rng(seed)
    d = min(m, n)
    s = np.arange(1, d + 1, dtype=np.float64) ** -decay
    U = _orthonormal(m, d, rng)
    V = _orthonormal(n, d, rng)
    return (U * s) @ V.T, s


def _rsvd_metrics(A: np.ndarray, s: np.ndarray, k: int, out: tuple[Any, Any, Any]) -> dict:
    U, sv, Vt = out
    order = np.argsort(sv)[::-1]  # svds returns ascending values
    U, sv, Vt = U[:, order], sv[order], Vt[order]
    tau = math.sqrt(float(np.sum(s[k:] ** 2)))
    err = float(np.linalg.norm(A - (U * sv) @ Vt))
    return {
        "k": k,
        "rel_error_vs_optimal": err / tau,
        "sv_rel_error": float(np.max(np.abs(sv - s[:k]) / s[:k])),
    }


@case(SUITE, "rsvd")
def rsvd(size: str, *, repeat: int) -> list[Record]:
    """randomized_svd vs svds / sklearn / full SVD on planted s_j = 1/j (RSVD_SHAPES)."""
    records = []
    with _blas_threads():
        for m, n, k in RSVD_SHAPES[size]:
            records += _rsvd_records(m, n, k, size, repeat)
    return records


def _rsvd_records(m: int, n: int, k: int, size: str, repeat: int) -> list[Record]:
    name = f"rsvd-{m}x{n}"
    A, s = planted(m, n)
    common = {"m": m, "n": n, "decay": DECAY, "blas_threads": BLAS_THREADS}
    t_ours, ours = best_time(
        lambda: randomized_svd(A, k, oversample=OVERSAMPLE, power_iters=POWER_ITERS, rng=SEED),
        repeat,
    )
    metrics = {**common, **_rsvd_metrics(A, s, k, ours), "p": OVERSAMPLE, "q": POWER_ITERS}
    method = "numlib.randomized_svd"
    records = []
    t_svds, svds_out = best_time(
        lambda: scipy.sparse.linalg.svds(A, k=k, random_state=SEED), repeat
    )
    records.append(
        Record(
            SUITE,
            name,
            size,
            method,
            "scipy.svds",
            t_ours,
            t_svds,
            metrics,
            {**common, **_rsvd_metrics(A, s, k, svds_out)},
        )
    )
    try:
        from sklearn.utils.extmath import randomized_svd as sk_rsvd
    except ImportError:
        records.append(
            Record.skip(
                SUITE,
                name,
                size,
                "scikit-learn not installed",
                method=method,
                peer="sklearn.randomized_svd",
            )
        )
    else:
        t_sk, sk_out = best_time(
            lambda: sk_rsvd(
                A,
                k,
                n_oversamples=OVERSAMPLE,
                n_iter=POWER_ITERS,
                power_iteration_normalizer="QR",
                random_state=SEED,
            ),
            repeat,
        )
        records.append(
            Record(
                SUITE,
                name,
                size,
                method,
                "sklearn.randomized_svd",
                t_ours,
                t_sk,
                metrics,
                {**common, **_rsvd_metrics(A, s, k, sk_out)},
            )
        )
    # The full SVD is the expensive reference a user would otherwise compute.
    t_full, full, full_runs = best_time_unless_slow(
        lambda: np.linalg.svd(A, full_matrices=False), repeat
    )
    U, sv, Vt = full
    records.append(
        Record(
            SUITE,
            name,
            size,
            method,
            "numpy.linalg.svd",
            t_ours,
            t_full,
            metrics,
            {
                **common,
                **_rsvd_metrics(A, s, k, (U[:, :k], sv[:k], Vt[:k])),
                "timed_runs": full_runs,
            },
        )
    )
    return records


def _monarch_inputs(m: int, n: int, b: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SEED)
    gaussian = rng.standard_normal((m, n))
    exact = Monarch(
        rng.standard_normal((b, m // b, b)), rng.standard_normal((b, b, n // b))
    ).to_dense()
    noise = rng.standard_normal((m, n))
    noisy = exact + 0.01 * np.linalg.norm(exact) / np.linalg.norm(noise) * noise
    return {"gaussian": gaussian, "monarch+noise": noisy}


@case(SUITE, "monarch")
def monarch(size: str, *, repeat: int) -> list[Record]:
    """Monarch projection vs truncated SVD at equal parameters (MONARCH_SHAPES)."""
    records = []
    with _blas_threads():
        for m, n, b in MONARCH_SHAPES[size]:
            records += _monarch_records(m, n, b, size, repeat)
    return records


def _monarch_records(m: int, n: int, b: int, size: str, repeat: int) -> list[Record]:
    name = f"monarch-{m}x{n}"
    records = []
    for label, A in _monarch_inputs(m, n, b).items():
        t_ours, fit = best_time(lambda A=A: monarch_project(A, b), repeat)
        params = fit.params
        k = max(1, params // (m + n))  # truncated SVD with the same parameter count
        t_svd, (U, s, Vt) = best_time(lambda A=A: np.linalg.svd(A, full_matrices=False), repeat)
        low = (U[:, :k] * s[:k]) @ Vt[:k]
        norm = float(np.linalg.norm(A))
        common = {"m": m, "n": n, "input": label, "blas_threads": BLAS_THREADS}
        records.append(
            Record(
                SUITE,
                f"{name}-{label}",
                size,
                f"numlib.monarch_project(b={b})",
                f"truncated-svd(k={k})",
                t_ours,
                t_svd,
                {
                    **common,
                    "rel_error": float(np.linalg.norm(A - fit.to_dense())) / norm,
                    "params": params,
                },
                {
                    **common,
                    "rel_error": float(np.linalg.norm(A - low)) / norm,
                    "params": k * (m + n),
                },
            )
        )
    return records


def proxy_family(count: int, n: int, seed: int = SEED) -> list[np.ndarray]:
    """Matrices with Haar singular vectors and spectra ``c j^-beta`` (module docstring)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        m = n if i % 2 == 0 else n // 2  # square and 1:2 rectangular
        cols = n if i % 2 == 0 else 2 * n
        d = min(m, cols)
        beta = rng.uniform(0.0, 2.0)
        c = 10 ** rng.uniform(-1.0, 1.0)
        U, _ = np.linalg.qr(rng.standard_normal((m, d)))
        V, _ = np.linalg.qr(rng.standard_normal((cols, d)))
        out.append((U * (c * np.arange(1, d + 1) ** -beta)) @ V.T)
    return out


@case(SUITE, "nuclear-proxy")
def nuclear_proxy(size: str, *, repeat: int) -> Record:
    """L_{1,2} nuclear-norm proxy vs the exact nuclear norm: time and correlation."""
    with _blas_threads():
        return _nuclear_proxy(size, repeat)


def _nuclear_proxy(size: str, repeat: int) -> Record:
    count, n = PROXY_FAMILY[size]
    family = proxy_family(count, n)
    t_proxy = t_exact = 0.0
    proxy, exact, exact_runs = [], [], []
    for A in family:
        t, value = best_time(lambda A=A: nuclear_norm_proxy(A), repeat)
        t_proxy += t
        proxy.append(value)
        t, value, runs = best_time_unless_slow(lambda A=A: np.linalg.norm(A, "nuc"), repeat)
        t_exact += t
        exact.append(float(value))
        exact_runs.append(runs)
    proxy_a, exact_a = np.array(proxy), np.array(exact)
    common = {"matrices": count, "n": n, "blas_threads": BLAS_THREADS}
    return Record(
        SUITE,
        "nuclear-proxy",
        size,
        "numlib.nuclear_norm_proxy",
        "numpy.linalg.norm(nuc)",
        t_proxy,
        t_exact,
        {
            **common,
            "pearson": float(scipy.stats.pearsonr(proxy_a, exact_a)[0]),
            "spearman": float(scipy.stats.spearmanr(proxy_a, exact_a)[0]),
            "mean_ratio": float(np.mean(proxy_a / exact_a)),
        },
        common | {"timed_runs": min(exact_runs)},
    )


@case(SUITE, "farms-alpha")
def farms_alpha(size: str, *, repeat: int) -> list[Record]:
    """Power-law alpha with and without FARMS across aspect ratios 1, 4, 16 (Pareto entries)."""
    with _blas_threads():
        return [_farms_record(mu, size, repeat) for mu in FARMS_MU]


def _farms_record(mu: float, size: str, repeat: int) -> Record:
    rng = np.random.default_rng(SEED)
    sides: dict[str, dict[str, Any]] = {"farms": {}, "plain": {}}
    times = {"farms": 0.0, "plain": 0.0}
    for m, n in FARMS_SHAPES[size]:
        W = rng.pareto(mu, (m, n)) * rng.choice([-1.0, 1.0], (m, n))
        for side in sides:
            t, fit = best_time(
                lambda W=W, side=side: heavy_tail_alpha(W, farms=side == "farms", rng=SEED),
                repeat,
            )
            times[side] += t
            sides[side][f"alpha_{m}x{n}"] = fit.alpha
            sides[side]["fits_ok"] = sides[side].get("fits_ok", 0) + int(fit.ok)
    for metrics in sides.values():
        alphas = [v for k, v in metrics.items() if k.startswith("alpha_")]
        metrics["alpha_spread"] = float(max(alphas) - min(alphas))
        metrics["mu"] = mu
        metrics["blas_threads"] = BLAS_THREADS
    return Record(
        SUITE,
        f"farms-alpha-mu{mu}",
        size,
        "heavy_tail_alpha(farms=True)",
        "heavy_tail_alpha(plain ESD)",
        times["farms"],
        times["plain"],
        sides["farms"],
        sides["plain"],
    )
