"""Suite ``dcdm``: the deep conjugate-direction method against CG, PCG and AMG-PCG.

Every case builds one Poisson system, 2-D or 3-D, on the empty unit square/cube
(:func:`solvers.problems.poisson2d` / ``poisson3d``, their manufactured right-hand
side) or with obstacles (:func:`solvers.problems.poisson_obstacles`: 6 random
obstacles from a fixed seed, closed walls ``x-``, ``y-``, ``y+``, a Gaussian random
field source), and solves it to ``rtol`` = :data:`RTOL` from zero with
:func:`learned.dcdm.dcdm_solve` and the shipped model
(:func:`learned.dcdm.pretrained`: the multilevel network with Galerkin operator
layers) as ``method: "dcdm"``, and with each peer, in the same process:

``cg``            numlib's unpreconditioned CG
``jacobi-pcg``    numlib's CG with ``M = diag(A)^{-1}``
``ic-pcg``        numlib's CG with zero-fill incomplete Cholesky, IC(0), natural
                  ordering (:mod:`validation.peers.ic0`; the factorisation is exact
                  IC(0), checked against a dense reference)
``pyamg-sa-pcg``  pyamg's smoothed-aggregation hierarchy as preconditioner of pyamg's CG

Case names carry the dimension and grid: ``poisson2d-256``,
``poisson2d-256-obstacles``, ``poisson3d-64``. Metrics per side: ``iterations``,
``converged``, ``rel_residual`` (recomputed), ``rel_error`` / ``max_abs_error``
against a sparse direct solve where that is cheap (2-D, and 3-D up to 32³),
``unknowns``; preconditioned peers add ``setup_s`` (building ``M``; for AMG the
hierarchy) and ``solve_s``, and their ``peer_time_s`` is ``setup_s + solve_s`` --
except IC(0): this repository's IC(0) set-up is a Python loop over the rows (scipy has
no incomplete Cholesky), far slower than a compiled one, so ``ic-pcg``'s
``peer_time_s`` is its solve alone (``setup_counted: false``, the set-up time still
reported), which favours the peer.
DCDM adds ``network_steps``, ``fallback_steps``, ``network_time_s`` (time inside
the network), ``setup_s`` (loading the model), ``pyramid_s`` (building the Galerkin
operators, inside the timed solve, as AMG's set-up is inside its total) and,
where CUDA is available, ``gpu_time_s`` / ``gpu_network_time_s`` (the same solve
with the network on the GPU). ``memory_mb`` is not measured here (torch's allocator
is invisible to tracemalloc) and is null.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import scipy.sparse as sp

from solvers import krylov, problems
from solvers.problems import LinearSystem
from solvers.problems.obstacles import poisson_obstacles
from validation import runs
from validation.accuracy import Reference
from validation.measure import best_time, one_torch_thread
from validation.peers.ic0 import ic0_preconditioner
from validation.registry import Record, case

SUITE = "dcdm"
RTOL = 1e-6
MAXITER = 20_000
OBSTACLE_SEED = 20261127
OBSTACLE_WALLS = ("x-", "y-", "y+")
REFERENCE_LIMIT_3D = 32**3

GRIDS = {
    "small": [(2, 64), (3, 16)],
    "medium": [(2, 128), (2, 256), (2, 512), (3, 32), (3, 64)],
    "large": [(2, 128), (2, 256), (2, 512), (3, 32), (3, 64), (3, 128)],
}


def _system(dim: int, n: int, obstacles: bool) -> LinearSystem:
    if obstacles:
        return poisson_obstacles(n, dim, neumann=OBSTACLE_WALLS, rng=OBSTACLE_SEED)
    return problems.poisson2d(n) if dim == 2 else problems.poisson3d(n)


def _reference(system: LinearSystem) -> Reference | None:
    A = system.A
    if len(system.grid_shape) == 3 and A.shape[0] > REFERENCE_LIMIT_3D:
        return None  # 3-D sparse direct solves fill in far too much past 32³
    import scipy.sparse.linalg as sla

    return Reference(sla.spsolve(A.tocsc(), system.b), "direct")


def _run_from(method: str, time_s: float, result: Any, b_norm: float, **extra: Any) -> runs.Run:
    return runs.Run(
        method=method,
        time_s=time_s,
        x=np.asarray(result.x),
        iterations=result.iterations,
        converged=result.converged,
        history=np.asarray(result.residual_norms) / b_norm,
        memory_mb=math.nan,
        extra=extra,
    )


def _dcdm(system: LinearSystem, repeat: int) -> runs.Run:
    import torch

    from learned.dcdm import dcdm_solve, pretrained

    dim = len(system.grid_shape)
    started = time.perf_counter()
    model = pretrained(dim)
    setup_s = time.perf_counter() - started
    A, b = system.A, system.b

    def solve(net: Any) -> Any:
        with torch.inference_mode():
            return runs._quiet(
                dcdm_solve,
                A,
                b,
                net,
                grid_shape=system.grid_shape,
                rtol=RTOL,
                maxiter=MAXITER,
            )

    with one_torch_thread():
        time_s, result = best_time(lambda: solve(model), repeat)
    extra: dict[str, Any] = {
        "network_steps": result.info["network_steps"],
        "fallback_steps": result.info["fallback_steps"],
        "network_time_s": result.info["network_time_s"],
        "pyramid_s": result.info["pyramid_s"],
        "setup_s": setup_s,
    }
    if torch.cuda.is_available():
        gpu_model = pretrained(dim).to("cuda")
        solve(gpu_model)  # warm-up: kernels and allocator
        gpu_s, gpu_result = best_time(lambda: solve(gpu_model), repeat)
        extra.update(gpu_time_s=gpu_s, gpu_network_time_s=gpu_result.info["network_time_s"])
    else:
        extra["gpu"] = "skipped: no CUDA device"
    return _run_from("dcdm", time_s, result, float(np.linalg.norm(b)), **extra)


def _pcg(
    system: LinearSystem, name: str, make_m: Any, repeat: int, *, count_setup: bool = True
) -> runs.Run:
    A, b = system.A, system.b
    setup_s, M = best_time(make_m, repeat) if make_m is not None else (0.0, None)
    solve_s, result = best_time(
        lambda: runs._quiet(krylov.cg, A, b, rtol=RTOL, maxiter=MAXITER, M=M), repeat
    )
    extra = {"setup_s": setup_s, "solve_s": solve_s} if make_m is not None else {}
    if not count_setup:
        extra["setup_counted"] = False
    total = setup_s + solve_s if count_setup else solve_s
    return _run_from(name, total, result, float(np.linalg.norm(b)), **extra)


def _amg(system: LinearSystem, repeat: int) -> runs.Run:
    A, b = system.A, system.b
    ml, setup = runs.pyamg_setup(A, repeat=repeat)
    peer = runs.pyamg_pcg(A, b, ml, rtol=RTOL, maxiter=MAXITER, repeat=repeat)
    extra = {
        "setup_s": setup["setup_s"],
        "solve_s": peer.time_s,
        "operator_complexity": setup["operator_complexity"],
    }
    return runs.Run(
        "pyamg-sa-pcg",
        setup["setup_s"] + peer.time_s,
        peer.x,
        peer.iterations,
        peer.converged,
        peer.history,
        math.nan,
        extra,
    )


def _jacobi(A: sp.csr_array) -> Any:
    inverse = 1.0 / A.diagonal()
    return sp.diags_array(inverse, format="csr")


def _compare(dim: int, n: int, obstacles: bool, size: str, repeat: int) -> list[Record]:
    name = f"poisson{dim}d-{n}" + ("-obstacles" if obstacles else "")
    system = _system(dim, n, obstacles)
    A, b = system.A, system.b
    try:
        ours = _dcdm(system, repeat)
    except FileNotFoundError as error:
        return [Record.skip(SUITE, name, size, f"no shipped model: {error}", method="dcdm")]
    reference = _reference(system)
    common = {"unknowns": A.shape[0], "nnz": A.nnz}
    if obstacles:
        common["fluid_fraction"] = float(1.0 - system.params["solid"].mean())
    peers = [
        _pcg(system, "cg", None, repeat),
        _pcg(system, "jacobi-pcg", lambda: _jacobi(A), repeat),
        # A Python-loop set-up would handicap the peer: its solve alone is timed.
        _pcg(system, "ic-pcg", lambda: ic0_preconditioner(A), repeat, count_setup=False),
        _amg(system, repeat),
    ]
    return [
        runs.compare(SUITE, name, size, ours, peer, A, b, reference, common=common)
        for peer in peers
    ]


def _register(dim: int, n: int, obstacles: bool) -> None:
    sizes = tuple(size for size, grids in GRIDS.items() if (dim, n) in grids)
    name = f"poisson{dim}d-{n}" + ("-obstacles" if obstacles else "")
    domain = "with obstacles and closed walls" if obstacles else "on the empty box"

    def run(size: str, *, repeat: int) -> list[Record]:
        return _compare(dim, n, obstacles, size, repeat)

    run.__doc__ = (
        f"Compare DCDM with CG, Jacobi-PCG, IC(0)-PCG and pyamg SA-PCG: {dim}-D Poisson "
        f"{n}^{dim} {domain}, rtol {RTOL:g}."
    )
    run.__name__ = name.replace("-", "_")
    case(SUITE, name, sizes=sizes)(run)


for _dim, _n in sorted({grid for grids in GRIDS.values() for grid in grids}):
    for _obstacles in (False, True):
        _register(_dim, _n, _obstacles)
