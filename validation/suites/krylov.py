"""Suite ``krylov``: numlib's CG and GMRES against scipy and pyamg.

Every case builds one system from :mod:`solvers.problems`, solves it with numlib
and with the peer in the same process, and records per side:

``iterations``
    As reported by the solver (for scipy's CG, counted by a callback in an
    untimed run; for pyamg, the length of its residual history).
``converged``
    The solver's own verdict (numlib: ``SolveResult.converged``; scipy and
    pyamg: ``info == 0``).
``rel_residual``
    ``||b - A x|| / ||b||`` recomputed by the harness from the returned ``x``.
``rel_error``, ``max_abs_error``, ``error_reference``
    Against the discrete solution from a sparse direct solve
    (``error_reference="direct"``) up to
    :data:`validation.accuracy.DIRECT_SOLVE_LIMIT` unknowns, which isolates the
    iterative solver's error; above it against the problem's continuous
    ``x_exact`` (``"x_exact"``, the discretisation error included), when it has one.
``memory_mb``
    Peak working memory of the solve traced by tracemalloc in a separate run
    capped at a few iterations (CG) or two restart cycles (GMRES), enough to
    reach the peak; ``A`` and ``b`` are not counted.
``unknowns``, ``nnz``
    Size of the system.
``setup_s``, ``setup_memory_mb``, ``operator_complexity``
    AMG cases: time, traced peak and operator complexity of pyamg's
    smoothed-aggregation setup (the hierarchy both sides use).
``solve_s``
    AMG end-to-end record: pyamg's solve time alone (``peer_time_s`` there is
    ``setup_s + solve_s``).
``cycles``, ``restart``
    GMRES: restart cycles used, and the cycle length.

All solves use ``rtol`` = :data:`RTOL`, ``atol = 0`` and a zero initial guess.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from solvers import problems
from solvers.problems import LinearSystem
from validation import runs
from validation.accuracy import Reference, reference_solution
from validation.registry import Record, case

SUITE = "krylov"
RTOL = 1e-8
# Iteration budgets, far above what the cases need, so that a regression shows
# as converged=False instead of hanging the run.
CG_MAXITER = 20_000
GMRES_RESTART = 40
GMRES_MAXITER = 200 * GMRES_RESTART

POISSON2D_N = {"small": 128, "medium": 512, "large": 1024}
DARCY_N = {"small": 64, "medium": 256, "large": 512}
DARCY_SEED = 20240917
CONVDIFF_N = {"small": 64, "medium": 192, "large": 384}
CONVDIFF_PECLET = 30.0
CONVDIFF_ANGLE = math.pi / 6


@dataclass(frozen=True)
class _Bench:
    """One case at one size: the system both sides solve and what to measure against."""

    case: str
    size: str
    system: LinearSystem
    repeat: int
    reference: Reference | None = field(init=False)

    def __post_init__(self) -> None:
        A, b = self.system.A, self.system.b
        object.__setattr__(self, "reference", reference_solution(A, b, self.system.x_exact))

    def record(
        self,
        ours: runs.Run,
        peer: runs.Run,
        *,
        common: dict[str, Any] | None = None,
        **options: Any,
    ) -> Record:
        """Compare ``ours`` with ``peer`` on this system (see :func:`runs.compare`)."""
        A, b = self.system.A, self.system.b
        common = {"unknowns": A.shape[0], "nnz": A.nnz, **(common or {})}
        return runs.compare(
            SUITE, self.case, self.size, ours, peer, A, b, self.reference, common=common, **options
        )


def _numlib_cg(bench: _Bench) -> runs.Run:
    A, b = bench.system.A, bench.system.b
    return runs.numlib_cg(A, b, rtol=RTOL, maxiter=CG_MAXITER, repeat=bench.repeat)


def _vs_scipy_cg(bench: _Bench, ours: runs.Run) -> Record:
    A, b = bench.system.A, bench.system.b
    peer = runs.scipy_cg(A, b, rtol=RTOL, maxiter=CG_MAXITER, repeat=bench.repeat)
    return bench.record(ours, peer)


def _vs_pyamg(bench: _Bench, ours: runs.Run) -> list[Record]:
    """Two records against pyamg's smoothed-aggregation PCG on one hierarchy.

    1. ``ours`` (numlib's unpreconditioned CG) against pyamg end to end, setup +
       solve: the cost a user pays for one system, the bar later solvers must clear.
    2. numlib's CG preconditioned by the same V-cycle against pyamg's own CG,
       both timed without the setup, so that the ratio compares the Krylov loops.
    """
    A, b, repeat = bench.system.A, bench.system.b, bench.repeat
    ml, setup = runs.pyamg_setup(A, repeat=repeat)
    peer = runs.pyamg_pcg(A, b, ml, rtol=RTOL, maxiter=CG_MAXITER, repeat=repeat)
    M = ml.aspreconditioner()
    ours_pcg = runs.numlib_cg(
        A, b, rtol=RTOL, maxiter=CG_MAXITER, repeat=repeat, M=M, method="numlib.cg+sa"
    )
    end_to_end = bench.record(
        ours,
        replace(peer, extra={**setup, "solve_s": peer.time_s}),
        peer_time_s=setup["setup_s"] + peer.time_s,
        peer_method="pyamg.sa-pcg+setup",
    )
    loops = bench.record(replace(ours_pcg, extra=setup), replace(peer, extra=setup))
    return [end_to_end, loops]


@case(SUITE, "poisson2d-cg")
def poisson2d_cg(size: str, *, repeat: int) -> Record:
    """Compare numlib CG with scipy CG, 2D Poisson, no preconditioner.

    Grid n x n with n = 128 / 512 / 1024 (small / medium / large). Both run the
    same unpreconditioned recurrence, so iteration counts should agree (up to one
    step either way from rounding near the tolerance).
    """
    bench = _Bench("poisson2d-cg", size, problems.poisson2d(POISSON2D_N[size]), repeat)
    return _vs_scipy_cg(bench, _numlib_cg(bench))


@case(SUITE, "poisson2d-amg")
def poisson2d_amg(size: str, *, repeat: int) -> list[Record]:
    """Compare numlib CG with pyamg smoothed-aggregation PCG, 2D Poisson.

    Same grids as ``poisson2d-cg``. The first record (unpreconditioned CG against
    pyamg including its setup) is expected to show a speedup below 1: it is the
    bar for learned and recycling solvers. The second compares the CG loops
    under the same AMG preconditioner.
    """
    bench = _Bench("poisson2d-amg", size, problems.poisson2d(POISSON2D_N[size]), repeat)
    return _vs_pyamg(bench, _numlib_cg(bench))


@case(SUITE, "darcy-cg")
def darcy_cg(size: str, *, repeat: int) -> list[Record]:
    """Compare numlib CG with scipy CG and pyamg SA-PCG, Darcy flow with a = exp(GRF).

    n x n cells with n = 64 / 256 / 512, coefficient field from a fixed seed.
    The problem has no ``x_exact``; errors are against a sparse direct solve.
    One numlib CG run is compared with both peers.
    """
    system = problems.darcy(DARCY_N[size], rng=DARCY_SEED)
    bench = _Bench("darcy-cg", size, system, repeat)
    ours = _numlib_cg(bench)
    return [_vs_scipy_cg(bench, ours), *_vs_pyamg(bench, ours)]


@case(SUITE, "convdiff-gmres")
def convdiff_gmres(size: str, *, repeat: int) -> Record:
    """Compare numlib GMRES(40) with scipy GMRES(40), 2D convection-diffusion, central scheme.

    n x n grid with n = 64 / 192 / 384, Peclet 30, flow at 30 degrees to the
    x axis, no preconditioner, rtol 1e-8. Pe 30 keeps the central scheme's
    cell Peclet number below 1 on every grid (no spurious oscillations) while
    the convection still makes the matrix clearly nonsymmetric; unpreconditioned
    GMRES(40) then needs about 400 / 730 / 1420 iterations, a few seconds at
    most on medium. scipy gets the same budget in its units (restart cycles).
    """
    system = problems.convection_diffusion(
        CONVDIFF_N[size], CONVDIFF_PECLET, angle=CONVDIFF_ANGLE, scheme="central"
    )
    bench = _Bench("convdiff-gmres", size, system, repeat)
    options = {"restart": GMRES_RESTART, "rtol": RTOL, "maxiter": GMRES_MAXITER, "repeat": repeat}
    ours = runs.numlib_gmres(system.A, system.b, **options)
    peer = runs.scipy_gmres(system.A, system.b, **options)
    return bench.record(ours, peer, common={"restart": GMRES_RESTART})
