"""Suite ``recycle``: sequences of related systems, solved one by one or with reuse.

Each case draws a sequence of systems from one parametrised family and solves
all of them with every method, in one process, on the same systems:

``scipy-gmres``
    ``scipy.sparse.linalg.gmres`` (GMRES(40), no preconditioner) per system:
    the SKR paper's baseline.
``scipy-gmres+ilu``
    per system: ``spilu`` (drop 1e-4, fill 10) then GMRES(40) preconditioned by it.
``pyamg-pcg-setup-per-system``
    per system: smoothed-aggregation setup, then pyamg's CG (SPD families only).
``pyamg-pcg-setup-reused``
    one hierarchy built for the first system, pyamg's CG for all (SPD only).
``scipy-splu``
    per system: a sparse LU (``splu``, COLAMD) and one solve. Not a baseline
    the issue names, but at 10^4-4·10^4 unknowns in 2-D the one a numerical
    analyst would try first, so ``auto`` is recorded against it as well.
``gcrodr-unsorted`` / ``gcrodr-sorted``
    numlib GCRO-DR(40, 20) carrying the recycled space along the caller's order
    / along the greedy nearest-neighbour order of the parameter fields (SKR).
``scipy-cg`` / ``deflated-cg-sorted``
    SPD families: ``scipy.sparse.linalg.cg`` per system, and numlib's deflated
    CG (k = 20, eigCG window) carrying its recycled space along the greedy order.
``auto``
    ``solve_sequence(strategy="auto")``, whatever it picks (reported in
    ``metrics.strategy``).

Records: each numlib method against ``scipy-gmres``; ``gcrodr-sorted`` against
``gcrodr-unsorted`` (the ordering's own gain); ``pyamg-pcg-setup-reused``
against ``pyamg-pcg-setup-per-system`` (pyamg against itself: both times are in the
metrics, ``time_s`` and ``peer_time_s`` are null so that no speed-up is drawn as
numlib's); ``deflated-cg-sorted`` against
``scipy-cg``; ``auto`` against the fastest
single-system baseline of the family among ``scipy-gmres``, ``scipy-gmres+ilu``
and ``pyamg-pcg-setup-per-system`` (its ``speedup`` is the issue's headline),
and ``auto`` against ``scipy-splu``.

Darcy cases (SKR's reference matrices too) add the preconditioned comparison
(the paper's "depending on preconditioner"): ``gcrodr-sorted+jacobi`` against
``gmres+jacobi`` and ``gcrodr-sorted+ilu-reused`` against ``gmres+ilu-reused``,
numlib's GMRES(40) and GCRO-DR(40, 20) with the same right preconditioner, the
same tolerance and the same recomputed-residual test: the diagonal of each
system, or the ILU (drop 1e-4, fill 10) of the first system of the sorted order
for all of them.

Metrics: ``iterations`` (mean per system), ``rel_residual`` (the largest
recomputed ``||b - A x|| / ||b||`` over the systems), ``converged`` (all
systems, recomputed after the clock stops, the same test for every method),
``systems``, ``setup_s``, ``timed_runs`` (1: each sequence is timed once, whatever
``--repeat`` says). Times are totals for the whole sequence, ordering and set-up
included; the reused ILU of the preconditioned Darcy records is built before either
side runs and its time added once to each side. The per-system baselines cost the same whatever
the order, so for speed they are run on an evenly spaced sample of
``sampled_systems`` systems and their total is the sample mean times the
sequence length (``estimated_total: true``); numlib's methods always run the
whole sequence, since their cost depends on what came before.

On a machine shared with other jobs, run with one BLAS thread
(``OPENBLAS_NUM_THREADS=1``): GCRO-DR and deflated CG make many small dense
products, which oversubscribed BLAS threads slow down far more than the
baselines' sparse kernels.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pyamg
import scipy.sparse as sp
import scipy.sparse.linalg as sla

from numlib.result import ConvergenceWarning
from solvers.fields import gaussian_random_field
from solvers.gcrodr import gcrodr
from solvers.krylov import gmres
from solvers.ordering import order_systems, parameter_features
from solvers.problems import convection_diffusion, darcy, darcy_skr, helmholtz
from solvers.recycle import solve_sequence
from validation.registry import Record, case

SUITE = "recycle"
RTOL = 1e-8
RESTART = 40
RECYCLED = 20
# The SKR paper's iteration cap for its GMRES baseline.
MAXITER = 10_000

SYSTEMS = {"small": 12, "medium": 200, "large": 200}
GRID = {"small": 24, "medium": 100, "large": 100}
SAMPLED = {"small": 12, "medium": 25, "large": 50}
HELMHOLTZ_K = 10.0  # k^2 = 100 > 2 pi^2: eight Dirichlet eigenvalues below it, indefinite


@dataclass
class Family:
    """A family's systems and the features that order them."""

    pairs: list[tuple[Any, np.ndarray]]
    features: np.ndarray
    spd: bool


@dataclass(frozen=True)
class Outcome:
    """One method's run over a sequence (or a sample of it)."""

    method: str
    total_s: float
    iterations: list[int]
    rel_residuals: list[float]
    converged: bool
    systems: int
    setup_s: float = 0.0
    sampled_from: int | None = None
    extra: dict[str, Any] | None = None
    # Time paid once for the whole sequence (a set-up shared by every system), added to
    # the total after a sample's time is scaled to the sequence.
    once_s: float = 0.0

    def metrics(self) -> dict[str, Any]:
        """Return the record metrics of this outcome."""
        out = {
            "iterations": float(np.mean(self.iterations)),
            "rel_residual": float(max(self.rel_residuals)),
            "converged": self.converged,
            "systems": self.sampled_from or self.systems,
            "setup_s": self.setup_s + self.once_s,
            "timed_runs": 1,
        }
        if self.sampled_from is not None:
            out |= {"sampled_systems": self.systems, "estimated_total": True}
        return out | (self.extra or {})

    @property
    def time_s(self) -> float:
        """Total time for the whole sequence (estimated from the sample when sampled)."""
        if self.sampled_from is None:
            return self.total_s + self.once_s
        return self.total_s / self.systems * self.sampled_from + self.once_s


def darcy_sequence(n: int, count: int, seed: int = 2024) -> Family:
    """Darcy with a = exp(GRF) per system (SKR's data), ordered by the coefficient fields."""
    systems = [darcy(n, rng=np.random.default_rng([seed, i])) for i in range(count)]
    fields = np.stack([s.params["coefficient"] for s in systems])
    return Family(
        [(s.A, s.b) for s in systems],
        parameter_features(fields, modes=12),
        spd=True,
    )


def darcy_skr_sequence(
    n: int, count: int, seed: int = 2027, *, reference_indexing: bool = False
) -> Family:
    """Draw SKR's own operator L diag(a), a = exp(GRF), to meet its paper's numbers.

    ``reference_indexing=True`` builds the reference code's matrix, indexing
    error included (:func:`solvers.problems.darcy_skr`).
    """
    systems = [
        darcy_skr(n, rng=np.random.default_rng([seed, i]), reference_indexing=reference_indexing)
        for i in range(count)
    ]
    fields = np.stack([s.params["coefficient"] for s in systems])
    return Family([(s.A, s.b) for s in systems], parameter_features(fields, modes=12), spd=False)


def helmholtz_sequence(n: int, count: int, seed: int = 2025) -> Family:
    """Indefinite Helmholtz, k in [10, 10.5], GRF sources; ordered by (k, source modes)."""
    ks, pairs, sources = [], [], []
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        k = HELMHOLTZ_K + 0.5 * rng.random()
        source = gaussian_random_field((n, n), rng=rng)
        ks.append(k)
        sources.append(source)
        pairs.append((helmholtz(n, k).A, source.ravel()))
    modes = parameter_features(np.stack(sources), modes=8)
    # Scale k so that its spread weighs like the sources' spread.
    k_column = np.array(ks)[:, None] * modes.std(axis=0).sum() / max(np.std(ks), 1e-300)
    return Family(pairs, np.hstack([k_column, modes]), spd=False)


def convection_sequence(n: int, count: int, seed: int = 2026) -> Family:
    """Convection-diffusion, Peclet in [20, 40] and flow angle in [0, pi/2], unit source."""
    params = [np.random.default_rng([seed, i]).random(2) for i in range(count)]
    pairs = [
        (convection_diffusion(n, 20 + 20 * p[0], angle=math.pi / 2 * p[1]).A, np.ones(n * n))
        for p in params
    ]
    return Family(pairs, np.stack(params), spd=False)


def _quiet(run: Callable[[], Any]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return run()


def _rel_residual(A: Any, b: np.ndarray, x: np.ndarray) -> float:
    return float(np.linalg.norm(b - A @ x) / np.linalg.norm(b))


def _converged(residuals: list[float]) -> bool:
    """Return whether every recomputed residual meets the tolerance (one test for all)."""
    return max(residuals) <= RTOL * (1 + 1e-6)


def _sample(seq: Family, size: int) -> list[int]:
    count = len(seq.pairs)
    return sorted({int(i) for i in np.linspace(0, count - 1, min(size, count))})


def _each(seq: Family, method: str, indices: list[int], solve: Callable) -> Outcome:
    """Solve the chosen systems independently with ``solve(A, b) -> (x, iterations, setup_s)``.

    Residuals are recomputed after the clock stops, as for numlib's methods.
    """
    iterations, solutions, setup = [], [], 0.0
    start = time.perf_counter()
    for i in indices:
        A, b = seq.pairs[i]
        x, its, setup_s = solve(A, b)
        iterations.append(its)
        solutions.append(x)
        setup += setup_s
    total = time.perf_counter() - start
    residuals = [_rel_residual(*seq.pairs[i], x) for i, x in zip(indices, solutions, strict=True)]
    sampled = len(seq.pairs) if len(indices) < len(seq.pairs) else None
    return Outcome(
        method, total, iterations, residuals, _converged(residuals), len(indices), setup, sampled
    )


def _scipy_gmres(A: Any, b: np.ndarray, M: Any = None) -> tuple[np.ndarray, int]:
    count = [0]

    def tick(_: float) -> None:
        count[0] += 1

    x, _ = sla.gmres(
        A,
        b,
        rtol=RTOL,
        atol=0.0,
        restart=RESTART,
        maxiter=math.ceil(MAXITER / RESTART),
        M=M,
        callback=tick,
        callback_type="pr_norm",
    )
    return x, count[0]


def _scipy_cg(A: Any, b: np.ndarray) -> tuple[np.ndarray, int, float]:
    count = [0]

    def tick(_: np.ndarray) -> None:
        count[0] += 1

    x, _ = sla.cg(A, b, rtol=RTOL, atol=0.0, maxiter=MAXITER, callback=tick)
    return x, count[0], 0.0


def _gmres_plain(A: Any, b: np.ndarray) -> tuple[np.ndarray, int, float]:
    return (*_scipy_gmres(A, b), 0.0)


def _gmres_ilu(A: Any, b: np.ndarray) -> tuple[np.ndarray, int, float]:
    start = time.perf_counter()
    ilu = sla.spilu(sp.csc_array(A), drop_tol=1e-4, fill_factor=10)
    M = sla.LinearOperator(A.shape, matvec=ilu.solve, dtype=float)
    setup = time.perf_counter() - start
    return (*_scipy_gmres(A, b, M), setup)


def _splu(A: Any, b: np.ndarray) -> tuple[np.ndarray, int, float]:
    start = time.perf_counter()
    factor = sla.splu(sp.csc_array(A))
    setup = time.perf_counter() - start
    return factor.solve(b), 0, setup


def _pyamg_each(A: Any, b: np.ndarray) -> tuple[np.ndarray, int, float]:
    start = time.perf_counter()
    ml = pyamg.smoothed_aggregation_solver(sp.csr_array(A))
    setup = time.perf_counter() - start
    residuals: list[float] = []
    x = ml.solve(b, tol=RTOL, accel="cg", maxiter=MAXITER, residuals=residuals)
    return x, len(residuals) - 1, setup


def _pyamg_reused(seq: Family) -> Outcome:
    start = time.perf_counter()
    M = pyamg.smoothed_aggregation_solver(sp.csr_array(seq.pairs[0][0])).aspreconditioner()
    setup = time.perf_counter() - start

    def solve(A: Any, b: np.ndarray) -> tuple[np.ndarray, int, float]:
        residuals: list[float] = []
        x, _ = pyamg.krylov.cg(A, b, tol=RTOL, maxiter=MAXITER, M=M, residuals=residuals)
        return x, len(residuals) - 1, 0.0

    outcome = _each(seq, "pyamg-pcg-setup-reused", list(range(len(seq.pairs))), solve)
    return Outcome(
        outcome.method,
        outcome.total_s + setup,
        outcome.iterations,
        outcome.rel_residuals,
        outcome.converged,
        outcome.systems,
        setup,
    )


def _numlib(seq: Family, method: str, strategy: str, order: str) -> Outcome:
    start = time.perf_counter()
    out = _quiet(
        lambda: solve_sequence(
            seq.pairs,
            strategy=strategy,
            order=order,
            features=seq.features,
            rtol=RTOL,
            maxiter=MAXITER,
            m=RESTART,
            k=RECYCLED,
        )
    )
    total = time.perf_counter() - start
    residuals = [_rel_residual(A, b, x) for (A, b), x in zip(seq.pairs, out.solutions, strict=True)]
    extra = {"strategy": out.strategy}
    if out.info["path_length"] is not None:
        extra["path_length"] = out.info["path_length"]
    return Outcome(
        method,
        total,
        [r.iterations for r in out.results],
        residuals,
        _converged(residuals),
        len(seq.pairs),
        out.info["setup_s"],
        extra=extra,
    )


def _jacobi(A: Any) -> sla.LinearOperator:
    inverse_diagonal = 1.0 / A.diagonal()
    return sla.LinearOperator(A.shape, matvec=lambda v: inverse_diagonal * v, dtype=float)


def _preconditioned(
    seq: Family, label: str, sample: list[int], build: Callable[[Any], Any], once_s: float = 0.0
) -> tuple[Outcome, Outcome]:
    """Numlib GMRES(40) per system (sampled) and sorted GCRO-DR(40, 20), same right ``M``.

    ``build(A)`` returns the preconditioner of matrix ``A``; its set-up time is
    counted in both totals, and ``once_s`` (a set-up shared by the whole sequence,
    made before either side runs) is added once to each.
    """

    def each(A: Any, b: np.ndarray) -> tuple[np.ndarray, int, float]:
        start = time.perf_counter()
        M = build(A)
        setup = time.perf_counter() - start
        result = gmres(A, b, restart=RESTART, rtol=RTOL, maxiter=MAXITER, M=M)
        return np.asarray(result.x), result.iterations, setup

    baseline = _quiet(lambda: _each(seq, f"gmres+{label}", sample, each))
    iterations, residuals, setup, recycle = [], [], 0.0, None
    start = time.perf_counter()
    solutions: dict[int, np.ndarray] = {}
    for i in order_systems(seq.features, method="greedy"):
        A, b = seq.pairs[i]
        built = time.perf_counter()
        M = build(A)
        setup += time.perf_counter() - built
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            result = gcrodr(
                A, b, m=RESTART, k=RECYCLED, rtol=RTOL, maxiter=MAXITER, M=M, recycle=recycle
            )
        recycle = result.info["recycle"]
        iterations.append(result.iterations)
        solutions[int(i)] = np.asarray(result.x)
    total = time.perf_counter() - start
    for i, (A, b) in enumerate(seq.pairs):
        residuals.append(_rel_residual(A, b, solutions[i]))
    ours = Outcome(
        f"gcrodr-sorted+{label}",
        total,
        iterations,
        residuals,
        _converged(residuals),
        len(seq.pairs),
        setup,
        once_s=once_s,
    )
    return ours, replace(baseline, once_s=once_s)


def _preconditioned_records(name: str, size: str, seq: Family, sample: list[int]) -> list[Record]:
    first = seq.pairs[int(order_systems(seq.features, method="greedy")[0])][0]
    # The ILU of the first system of the sorted order serves every system of both sides:
    # made here, outside both timed runs, and charged once to each.
    start = time.perf_counter()
    factor = sla.spilu(sp.csc_array(first), drop_tol=1e-4, fill_factor=10)
    ilu_s = time.perf_counter() - start

    def reused_ilu(A: Any) -> sla.LinearOperator:
        return sla.LinearOperator(A.shape, matvec=factor.solve, dtype=float)

    return [
        _record(name, size, *_preconditioned(seq, "jacobi", sample, _jacobi)),
        _record(name, size, *_preconditioned(seq, "ilu-reused", sample, reused_ilu, ilu_s)),
    ]


def _record(name: str, size: str, ours: Outcome, peer: Outcome) -> Record:
    return Record(
        suite=SUITE,
        case=name,
        size=size,
        method=ours.method,
        peer=peer.method,
        time_s=ours.time_s,
        peer_time_s=peer.time_s,
        metrics=ours.metrics(),
        peer_metrics=peer.metrics(),
    )


def _compare_all(
    name: str, size: str, seq: Family, *, preconditioned: bool = False
) -> list[Record]:
    sample = _sample(seq, SAMPLED[size])
    gmres_each = _quiet(lambda: _each(seq, "scipy-gmres", sample, _gmres_plain))
    ilu_each = _quiet(lambda: _each(seq, "scipy-gmres+ilu", sample, _gmres_ilu))
    splu_each = _each(seq, "scipy-splu", sample, _splu)
    unsorted = _numlib(seq, "gcrodr-unsorted", "gcrodr", "none")
    ordered = _numlib(seq, "gcrodr-sorted", "gcrodr", "greedy")
    auto = _numlib(seq, "auto", "auto", "greedy")
    baselines = [gmres_each, ilu_each]
    records = [
        _record(name, size, unsorted, gmres_each),
        _record(name, size, ordered, gmres_each),
        _record(name, size, ordered, unsorted),
    ]
    if seq.spd:
        amg_each = _each(seq, "pyamg-pcg-setup-per-system", sample, _pyamg_each)
        amg_reused = _pyamg_reused(seq)
        baselines.append(amg_each)
        # Both sides are pyamg: the gain of reusing a hierarchy, not a numlib speed-up,
        # so the record carries the two times in its metrics and no speed-up.
        reuse = _record(name, size, amg_reused, amg_each)
        records.append(
            replace(
                reuse,
                time_s=None,
                peer_time_s=None,
                metrics=reuse.metrics | {"time_s": amg_reused.time_s},
                peer_metrics=reuse.peer_metrics | {"time_s": amg_each.time_s},
            )
        )
        cg_each = _quiet(lambda: _each(seq, "scipy-cg", sample, _scipy_cg))
        deflated = _numlib(seq, "deflated-cg-sorted", "deflated-cg", "greedy")
        records.append(_record(name, size, deflated, cg_each))
    fastest = min(
        (b for b in baselines if b.converged), key=lambda b: b.time_s, default=baselines[0]
    )
    records.append(_record(name, size, auto, fastest))
    records.append(_record(name, size, auto, splu_each))
    if preconditioned:
        records.extend(_preconditioned_records(name, size, seq, sample))
    return records


@case(SUITE, "darcy-1e4")
def darcy_1e4(size: str, *, repeat: int) -> list[Record]:
    """Darcy, a = exp(GRF), 100^2 unknowns (SKR's Darcy at 1e4), 200 systems at medium."""
    seq = darcy_sequence(GRID[size], SYSTEMS[size])
    return _compare_all("darcy-1e4", size, seq, preconditioned=True)


@case(SUITE, "darcy-4e4", sizes=("small", "large"))
def darcy_4e4(size: str, *, repeat: int) -> list[Record]:
    """Darcy, a = exp(GRF), 200^2 unknowns, 200 systems (large only; small is a smoke run)."""
    n = 200 if size == "large" else GRID[size]
    return _compare_all("darcy-4e4", size, darcy_sequence(n, SYSTEMS[size]), preconditioned=True)


@case(SUITE, "darcy-skr-1e4")
def darcy_skr_1e4(size: str, *, repeat: int) -> list[Record]:
    """SKR's own "Darcy" operator -Lap(a u) (L diag(a), nonsymmetric), 100^2, 100 systems.

    The paper reports, without preconditioner at 1e-8 on 1e4 unknowns, 9775
    GMRES(40) iterations per system against 881 for sorted GCRO-DR(40, 20);
    both figures are added to the records as ``paper_iterations``.
    """
    count = SYSTEMS[size] // 2
    records = _compare_all("darcy-skr-1e4", size, darcy_skr_sequence(GRID[size], count))
    return _with_paper_iterations(records)


@case(SUITE, "darcy-skr-reference-1e4")
def darcy_skr_reference_1e4(size: str, *, repeat: int) -> list[Record]:
    """Solve the reference code's own matrices, indexing error included, 100^2, 100 systems.

    The reference builds diagonal ``-n`` two entries early, which makes every
    matrix indefinite; GMRES(40) then stagnates at its 10,000-iteration cap, as
    the paper's mean of 9775 says it did. This case checks the paper's iteration
    ratio on the matrices it was measured on (also with the preconditioned
    pairs, the paper's "depending on preconditioner"); ``darcy-skr-1e4`` is the
    same family built correctly.
    """
    count = SYSTEMS[size] // 2
    family = darcy_skr_sequence(GRID[size], count, reference_indexing=True)
    records = _compare_all("darcy-skr-reference-1e4", size, family, preconditioned=True)
    return _with_paper_iterations(records)


def _with_paper_iterations(records: list[Record]) -> list[Record]:
    """Add the paper's per-system iterations (Darcy 1e4, no preconditioner, 1e-8)."""
    paper = {"scipy-gmres": 9775, "gcrodr-sorted": 881}
    for record in records:
        for method, metrics in (
            (record.method, record.metrics),
            (record.peer, record.peer_metrics),
        ):
            if method in paper:
                metrics["paper_iterations"] = paper[method]
    return records


@case(SUITE, "helmholtz-1e4")
def helmholtz_1e4(size: str, *, repeat: int) -> list[Record]:
    """Indefinite Helmholtz -Lap u - k^2 u = f, k in [10, 10.5], GRF sources, 100^2."""
    return _compare_all("helmholtz-1e4", size, helmholtz_sequence(GRID[size], SYSTEMS[size]))


@case(SUITE, "convdiff-1e4")
def convdiff_1e4(size: str, *, repeat: int) -> list[Record]:
    """Convection-diffusion, Peclet 20-40, angle 0-90 degrees, central scheme, 100^2."""
    return _compare_all("convdiff-1e4", size, convection_sequence(GRID[size], SYSTEMS[size]))
