"""Suite ``petsc``: numlib's GCRO-DR on PETSc against PETSc's own GMRES, LGMRES and DGMRES.

Every comparison runs inside one MPI job (``mpiexec -n P``, P = 1 and 2,
launched from the case as a subprocess), all methods in the same processes on
the same distributed matrices, with the same PETSc preconditioner:

``gcrodr-petsc-np{P}-{pc}``
    numlib's GCRO-DR(40, 20) as a PETSc ``KSP`` of type ``python``
    (:class:`solvers.petsc.ksp.GCRODR`), the recycled space carried from system
    to system, the systems in SKR's sorted order (greedy nearest neighbour on
    the coefficient fields; the ordering time is added to numlib's total).
``gcrodr-petsc-single-np{P}-{pc}``
    The same with its recycled and Krylov rows in single precision
    (``-ksp_gcrodr_basis_precision single``, two Gram-Schmidt passes per step);
    ``x``, the residual and the test stay in double.
``petsc-gmres``, ``petsc-lgmres``, ``petsc-dgmres``
    PETSc's built-in KSPs, restart 40 (LGMRES: 2 augmentation vectors; DGMRES,
    the deflated GMRES closest to recycling, with ``-ksp_dgmres_force``: its
    adaptive test never switched deflation on for these systems, where it then
    equals GMRES; forced, it deflates its default eigenvalue count at every
    restart), one KSP per method for the whole sequence, in the same order, as a
    user would. DGMRES then keeps its deflation vectors from one ``KSPSolve`` to the
    next, so it recycles across systems too: on the medium sequence with ILU(0)
    blocks it took 6,765 iterations, against 11,340 with a fresh KSP per system.

Every method orthogonalises with PETSc's default for its GMRES family, classical
Gram-Schmidt in one pass (``REFINE_NEVER``; numlib's python KSPs take the same
default and the same ``*_cgs_refinement_type`` option), except the single-precision
GCRO-DR, which needs two passes. All methods use right
preconditioning and PETSc's unpreconditioned-norm test,
``rtol = 1e-8``, ``atol = 0``, zero initial guess, at most 10,000 iterations
per system; the preconditioner (``bjacobi`` — one ILU(0) block per rank — or
``gamg``) is rebuilt for each system by ``KSPSetOperators`` for every method
alike. After each solve ``||b - A x|| / ||b||`` is recomputed with
``MatMult`` (not timed).

Cases:

``darcy-sequence``
    Symmetric finite-volume Darcy flow ``-div(a grad u) = 1``, ``a = exp(GRF)``
    per system (SKR's data): 576 unknowns x 8 systems (small), 1e4 x 100
    (medium), 317^2 ~ 1e5 x 100 (large).
``poisson3d``
    One 3-D Poisson system (7-point, 16^3 / 48^3 / 80^3 unknowns): no sequence, so
    GCRO-DR recycles only across its own restarts.

Metrics (each side): ``iterations`` (total over the sequence; for GCRO-DR the
Arnoldi steps, as PETSc counts; its ``operator_applications`` counts the
products with ``A``: one per step, the ``k`` that re-derive ``C = A Y`` for each
new matrix (no preconditioner applied) and one residual check per cycle), ``rel_residual``
(largest recomputed relative residual), ``converged`` (every system reached
the tolerance), ``systems``, ``ranks``, ``pc``, ``timed_runs`` (1: each sequence
is timed once, not best of ``repeat``), ``job_started_at`` (UTC, the MPI job's
start; each rank count is a job of its own); ``time_s`` is the wall time of the
slowest rank for all systems (PC set-up included; numlib's also includes one
Frobenius norm of ``A`` per system, its NaN check). At ``P = 2`` both sides also
carry ``strong_scaling_efficiency`` = ``T(1) / (2 T(2))`` and
``per_iteration_scaling_efficiency`` = ``(T(1) / its(1)) / (2 T(2) / its(2))``: with
``bjacobi`` the preconditioner itself changes with the rank count (one ILU(0) block
per rank), which the first mixes in and the second leaves out. This machine has two
cores sharing one memory system, so both are floors, not a cluster's.
``target_met`` (numlib side) says whether numlib converged (by its recomputed
residual) and, against a peer that converged, took fewer iterations, fewer
products with ``A`` than the peer's iterations (each of which applies ``A`` at least
once) *and* less time than this peer; ``target_met_all_peers`` whether it did against
every built-in with this preconditioner and rank count.

The worker is this module's :func:`main`, which the cases run under mpiexec as
``python -c "<import and call main>" --problem darcy-sequence --size small --out
result.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np

from validation.checkpoints import cached_json
from validation.registry import Record, case

SUITE = "petsc"
RTOL = 1e-8
RESTART = 40
RECYCLED = 20
MAXIT = 10_000
PEERS = ("gmres", "lgmres", "dgmres")
# numlib's variants: worker run name -> basis precision
NUMLIB = {"gcrodr": "working", "gcrodr-single": "single"}
PCS = ("bjacobi", "gamg")
RANKS = (1, 2)
DARCY = {"small": (24, 8), "medium": (100, 100), "large": (317, 100)}
POISSON = {"small": 16, "medium": 48, "large": 80}
SEED = 2024
# A whole large run (8 method-PC pairs x 100 systems of 1e5 unknowns, 1 and 2 ranks) took
# 24 minutes on the idle 2-core machine and several times that on a loaded one.
TIMEOUT_S = {"small": 300, "medium": 3600, "large": 6 * 3600}


# --------------------------------------------------------------------------------------
# The worker: runs under mpiexec, every rank executes it.


def _darcy_problem(size: str) -> tuple[list[Any], float]:
    """Return a builder per system in SKR's sorted order, and the ordering time."""
    from solvers.ordering import order_systems, parameter_features
    from solvers.problems import darcy

    n, count = DARCY[size]
    fields = [
        darcy(n, rng=np.random.default_rng([SEED, i])).params["coefficient"] for i in range(count)
    ]
    start = time.perf_counter()
    order = order_systems(parameter_features(np.stack(fields), modes=12), method="greedy")
    ordering_s = time.perf_counter() - start
    return [lambda a=fields[i]: darcy(n, coefficient=a) for i in order], ordering_s


def _poisson_problem(size: str) -> tuple[list[Any], float]:
    from solvers.problems import poisson3d

    n = POISSON[size]
    return [lambda: poisson3d(n)], 0.0


PROBLEMS = {"darcy-sequence": _darcy_problem, "poisson3d": _poisson_problem}


def _ksp(method: str, pc_type: str) -> Any:
    from petsc4py import PETSc

    from solvers.petsc.ksp import set_numlib_ksp

    ksp = PETSc.KSP().create()
    if method in NUMLIB:
        context = set_numlib_ksp(
            ksp, "gcrodr", m=RESTART, k=RECYCLED, basis_precision=NUMLIB[method]
        )
    else:
        context = None
        ksp.setType(method)
        ksp.setGMRESRestart(RESTART)
        ksp.setPCSide(PETSc.PC.Side.RIGHT)
        ksp.setNormType(PETSc.KSP.NormType.UNPRECONDITIONED)
        if method == "dgmres":
            # DGMRES's adaptive test never switched deflation on for these
            # systems (it then equals GMRES); forced, it deflates at every restart.
            prefix = f"bench_{method}_"
            ksp.setOptionsPrefix(prefix)
            PETSc.Options()[f"{prefix}ksp_dgmres_force"] = None
            ksp.setFromOptions()
    ksp.getPC().setType(pc_type)
    ksp.setTolerances(rtol=RTOL, atol=0.0, max_it=MAXIT)
    return ksp, context


def _run_method(method: str, pc_type: str, builders: list[Any], comm: Any) -> dict[str, Any]:
    """Solve every system with one KSP; time only ``KSPSetOperators`` + ``KSPSolve``."""
    from solvers.petsc import to_petsc_mat, to_petsc_vec

    ksp, context = _ksp(method, pc_type)
    iterations, residuals, reasons, elapsed, applications = [], [], [], 0.0, 0
    for build in builders:
        system = build()
        A = to_petsc_mat(system.A)
        b = to_petsc_vec(system.b, like=A)
        x = A.createVecLeft()
        comm.barrier()
        start = time.perf_counter()
        ksp.setOperators(A)
        ksp.solve(b, x)
        elapsed += time.perf_counter() - start
        r = b.duplicate()
        A.mult(x, r)
        r.aypx(-1.0, b)
        residuals.append(r.norm() / b.norm())
        iterations.append(ksp.getIterationNumber())
        reasons.append(int(ksp.getConvergedReason()))
        if context is not None:
            applications += context.last_result.info["matvecs"]
        for obj in (A, b, x, r):
            obj.destroy()
    ksp.destroy()
    out = {} if context is None else {"operator_applications": applications}
    return out | {
        "iterations": int(sum(iterations)),
        "rel_residual": float(max(residuals)),
        "converged": all(reason > 0 for reason in reasons),
        "failed_systems": int(sum(reason <= 0 for reason in reasons)),
        "systems": len(builders),
        "time_s": comm.allreduce(elapsed, op=_max_op()),
    }


def _max_op() -> Any:
    from mpi4py import MPI

    return MPI.MAX


def worker(problem: str, size: str, out: str) -> None:
    """Run every method with every preconditioner on ``problem``; rank 0 writes JSON."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    builders, ordering_s = PROBLEMS[problem](size)
    results: dict[str, Any] = {
        "ranks": comm.size,
        "ordering_s": ordering_s,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "runs": {},
    }
    # One untimed solve per method first: the first KSPSolve of a process pays for
    # page faults, PETSc's lazy registrations and the python KSP's imports.
    for pc_type in PCS:
        for method in (*NUMLIB, *PEERS):
            _run_method(method, pc_type, builders[:1], comm)
    for pc_type in PCS:
        for method in (*NUMLIB, *PEERS):
            outcome = _run_method(method, pc_type, builders, comm)
            if method in NUMLIB:
                outcome["time_s"] += ordering_s
            results["runs"][f"{method}/{pc_type}"] = outcome
            if comm.rank == 0:
                print(f"  np{comm.size} {pc_type} {method}: {outcome}", file=sys.stderr)
    if comm.rank == 0:
        Path(out).write_text(json.dumps(results, indent=1))


# --------------------------------------------------------------------------------------
# The cases: launch the worker at each rank count and turn its results into records.


def _launch(problem: str, size: str, ranks: int) -> dict[str, Any] | str:
    """Run the worker on ``ranks`` ranks; return its results or why it could not run."""
    if shutil.which("mpiexec") is None:
        return "mpiexec not found (install OpenMPI / Debian's petsc-dev)"
    env = dict(os.environ)
    # Open MPI refuses root without these; set for this child only.
    env.update(
        OMPI_ALLOW_RUN_AS_ROOT="1",
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        # Ranks waiting in a collective yield the core instead of spinning: with
        # more processes than the two cores, spinning ranks starve the working one.
        OMPI_MCA_mpi_yield_when_idle="1",
    )
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        command = [
            "mpiexec", "--oversubscribe", "-n", str(ranks), sys.executable, "-c", _WORKER,
            "--problem", problem, "--size", size, "--out", str(out),
        ]  # fmt: skip
        try:
            done = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=TIMEOUT_S[size]
            )
        except subprocess.TimeoutExpired:
            return f"timed out after {TIMEOUT_S[size]} s at {ranks} rank(s)"
        if done.returncode != 0 or not out.exists():
            return f"worker failed at {ranks} rank(s): {done.stderr.strip()[-500:]}"
        return json.loads(out.read_text())


def _side(run: dict[str, Any], ranks: int, pc_type: str) -> dict[str, Any]:
    keys = ("iterations", "rel_residual", "converged", "failed_systems", "systems")
    extra = ("operator_applications",)
    measured = {key: run[key] for key in keys + extra if key in run}
    return measured | {"ranks": ranks, "pc": pc_type, "timed_runs": 1}


def _records(name: str, size: str, problem: str) -> list[Record]:
    # each MPI job is a step of its own: an interrupted run resumes at the next one
    # (the key names numlib's variants: a cache from a run without one is not reused)
    outcomes = {
        ranks: cached_json(
            f"{problem}-np{ranks}-{'+'.join(NUMLIB)}",
            lambda ranks=ranks: _launch(problem, size, ranks),
            keep=lambda outcome: isinstance(outcome, dict),
        )
        for ranks in RANKS
    }
    records: list[Record] = []
    for (ranks, outcome), pc_type, variant in product(outcomes.items(), PCS, NUMLIB):
        precision = NUMLIB[variant]
        label = "gcrodr-petsc" + ("-single" if precision == "single" else "")
        method = f"{label}-np{ranks}-{pc_type}"
        if isinstance(outcome, str):
            records += [
                Record.skip(SUITE, name, size, outcome, method=method, peer=f"petsc-{peer}")
                for peer in PEERS
            ]
            continue
        runs = outcome["runs"]
        ours = runs[f"{variant}/{pc_type}"]
        peers = {peer: runs[f"{peer}/{pc_type}"] for peer in PEERS}

        all_met = all(_target_met(ours, theirs) for theirs in peers.values())
        for peer, theirs in peers.items():
            started = {"job_started_at": outcome.get("started_at")}
            metrics = (
                _side(ours, ranks, pc_type)
                | started
                | {
                    "basis_precision": precision,
                    "target_met": _target_met(ours, theirs),
                    "target_met_all_peers": all_met,
                    "ordering_s": outcome["ordering_s"],
                }
            )
            peer_metrics = _side(theirs, ranks, pc_type) | started
            serial = outcomes.get(1)
            if ranks > 1 and isinstance(serial, dict):
                one = serial["runs"]
                for side, run, key in ((metrics, ours, variant), (peer_metrics, theirs, peer)):
                    side.update(_scaling(one[f"{key}/{pc_type}"], run, ranks))
            records.append(
                Record(
                    suite=SUITE,
                    case=name,
                    size=size,
                    method=method,
                    peer=f"petsc-{peer}",
                    time_s=ours["time_s"],
                    peer_time_s=theirs["time_s"],
                    metrics=metrics,
                    peer_metrics=peer_metrics,
                )
            )
    return records


def _target_met(ours: dict[str, Any], peer: dict[str, Any]) -> bool:
    """Whether numlib's run meets the issue's target against one peer's run (module doc)."""
    # Converged by the residual PETSc recomputes, not only by numlib's own report.
    if not (ours["converged"] and ours["rel_residual"] <= RTOL * 1.01):
        return False
    if not peer["converged"]:  # a peer stopped early: its counts are no bar
        return True
    # A peer applies A at least once per iteration: GCRO-DR's products with A, the k per
    # new system included, must be fewer than that too.
    applications = ours.get("operator_applications", ours["iterations"])
    return bool(
        ours["iterations"] < peer["iterations"]
        and applications < peer["iterations"]
        and ours["time_s"] < peer["time_s"]
    )


def _scaling(serial: dict[str, Any], parallel: dict[str, Any], ranks: int) -> dict[str, float]:
    """Strong-scaling efficiencies of one method from its 1-rank and ``ranks``-rank runs."""
    per_iteration = (serial["time_s"] / serial["iterations"]) / (
        ranks * parallel["time_s"] / parallel["iterations"]
    )
    return {
        "strong_scaling_efficiency": serial["time_s"] / (ranks * parallel["time_s"]),
        "per_iteration_scaling_efficiency": per_iteration,
    }


def _available() -> str | None:
    import importlib.util

    for module in ("petsc4py", "mpi4py"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install numlib[petsc]; make setup)"
    return None


@case(SUITE, "darcy-sequence")
def darcy_sequence(size: str, *, repeat: int) -> list[Record]:
    """Sorted Darcy sequence (a = exp(GRF)): GCRO-DR on PETSc vs GMRES/LGMRES/DGMRES, 1-2 ranks."""
    missing = _available()
    if missing:
        return [Record.skip(SUITE, "darcy-sequence", size, missing)]
    return _records("darcy-sequence", size, "darcy-sequence")


@case(SUITE, "poisson3d")
def poisson_3d(size: str, *, repeat: int) -> list[Record]:
    """One 3-D Poisson system: GCRO-DR on PETSc vs GMRES/LGMRES/DGMRES, 1-2 ranks."""
    missing = _available()
    if missing:
        return [Record.skip(SUITE, "poisson3d", size, missing)]
    return _records("poisson3d", size, "poisson3d")


# Imported, not run as ``-m``: as ``__main__`` this module would register its cases a
# second time next to the copy that ``validation.suites`` imports.
_WORKER = "import sys; from validation.suites.petsc import main; sys.exit(main(sys.argv[1:]))"


def main(argv: Sequence[str] | None = None) -> int:
    """Worker entry point (run under mpiexec by the cases, see the module docstring)."""
    parser = argparse.ArgumentParser(prog="validation.suites.petsc worker")
    parser.add_argument("--problem", choices=sorted(PROBLEMS), required=True)
    parser.add_argument("--size", choices=sorted(DARCY), required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    worker(args.problem, args.size, args.out)
    return 0
