"""A sorted sequence of related systems solved over MPI ranks: one recycling chain per rank.

:func:`solve_sequence_mpi` is :func:`solvers.recycle.solve_sequence` fanned out
with mpi4py. The sequence is put in the same order as the serial function
would (computed once, on the root rank), cut into ``P`` contiguous chunks of
that order, and rank ``r`` solves chunk ``r`` with ``solve_sequence`` — a
recycling chain (GCRO-DR space, reused AMG hierarchy or ILU, warm starts) that
starts afresh at the chunk's first system. Neighbours in the sorted order are
the similar systems, so contiguous chunks keep almost all of the reuse; only
the ``P - 1`` chunk starts pay for a cold start.

Every solution meets the tolerance by its recomputed residual, as in the serial
function, so the distributed solutions equal the serial ones to within the
tolerance (not bit for bit: the chains start at different systems).

The systems are solved independently of PETSc's row distribution: each rank
works serially (scipy, pyamg) on whole systems. This is data parallelism over
the sequence, the right split when each system fits one core and there are many.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from numlib.result import ConvergenceWarning, SolveResult
from numlib.validate import check_positive_int
from solvers.ordering import order_systems, path_length
from solvers.petsc._require import mpi

# The serial function's own argument checks (so both refuse the same calls), kind
# detection and default features (so the distributed order is the serial one).
from solvers.recycle import SequenceResult, _check_request, _default_features, solve_sequence

__all__ = ["chunk_bounds", "solve_sequence_mpi"]


def chunk_bounds(count: int, parts: int) -> np.ndarray:
    """Boundaries of ``parts`` contiguous chunks of ``count`` items, sizes differing by <= 1.

    Chunk ``r`` is ``bounds[r]:bounds[r + 1]``; the first ``count % parts``
    chunks hold one item more (PETSc's split of rows, applied to the sequence).

    Examples
    --------
    >>> chunk_bounds(10, 3).tolist()
    [0, 4, 7, 10]
    """
    count = check_positive_int(count, "count", minimum=0)
    parts = check_positive_int(parts, "parts")
    base, extra = divmod(count, parts)
    sizes = [base + (1 if r < extra else 0) for r in range(parts)]
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


def solve_sequence_mpi(
    systems: Sequence[Any],
    *,
    comm: Any = None,
    root: int | None = 0,
    strategy: str = "auto",
    order: str | np.ndarray = "greedy",
    features: np.ndarray | None = None,
    rtol: float = 1e-8,
    atol: float = 0.0,
    maxiter: int | None = None,
    m: int = 40,
    k: int = 20,
    progress: Callable[[int, int], None] | None = None,
) -> SequenceResult | None:
    """Solve ``A_i x_i = b_i`` for a sequence split over the ranks of ``comm``.

    Collective: every rank passes the same ``systems`` and arguments (each
    rank builds its own copy; only its chunk is solved). See the module
    docstring for the split.

    Parameters
    ----------
    systems, strategy, order, features, rtol, atol, maxiter, m, k
        As for :func:`solvers.recycle.solve_sequence`; ``strategy="auto"`` is
        resolved once for the whole sequence, so every rank uses the same one.
    comm : mpi4py.MPI.Comm, optional
        Communicator (default ``MPI.COMM_WORLD``); a petsc4py one converts with
        ``.tompi4py()``.
    root : int or None, default 0
        Rank that receives the whole result (any integer type but ``bool``);
        ``None`` gives it to every rank.
    progress : callable, optional
        Called on each rank as ``progress(done, total)`` over its own chunk.

    Returns
    -------
    SequenceResult or None
        On ``root`` (every rank if ``root`` is None): solutions and results in
        the caller's order, ``order`` the global solve order, and ``info`` as
        in the serial function plus ``"ranks"``, ``"chunks"`` (systems per
        rank) and ``"rank_solve_s"`` (each rank's solve time). ``total_s`` is
        the wall time until the root had every result. Other ranks get None.
        ``info["recycle"]`` of each result is dropped (it stays on its rank).

    Raises
    ------
    TypeError
        If ``comm`` is not an ``mpi4py.MPI.Comm`` or ``root`` is neither None
        nor an integer, and for the arguments the serial function refuses (the
        same checks and messages); on every rank, before any ordering or solve.
    ValueError
        If ``root`` is not a rank of ``comm``, and as the serial function; on
        every rank, before any ordering or solve.
    RuntimeError
        On every rank, if solving failed on some rank (naming it and the error).

    Warns
    -----
    ConvergenceWarning
        On the receiving rank(s), if some system did not converge.

    References
    ----------
    .. [1] H. Wang et al., "Accelerating data generation for neural operators
       via Krylov subspace recycling", ICLR 2024.
    """
    comm = _communicator(comm)
    if root is not None:
        root = check_positive_int(root, "root", minimum=0)
        if root >= comm.size:
            raise ValueError(f"root must be None or a rank in [0, {comm.size}), got {root}")
    request = _check_request(
        systems,
        strategy=strategy,
        order=order,
        features=features,
        rtol=rtol,
        atol=atol,
        maxiter=maxiter,
        m=m,
        k=k,
        progress=progress,
    )
    pairs, features, permutation = request.pairs, request.features, request.permutation

    start = time.perf_counter()
    if permutation is None:
        if features is None and order != "none":
            features = _default_features(pairs, request.kind)
        if comm.rank == (root or 0):
            permutation = order_systems(
                np.zeros((len(pairs), 1)) if features is None else features, method=order
            )
        permutation = comm.bcast(permutation, root=root or 0)
    bounds = chunk_bounds(len(pairs), comm.size)
    mine = permutation[bounds[comm.rank] : bounds[comm.rank + 1]]

    local: SequenceResult | None = None
    failure = None
    solve_start = time.perf_counter()
    try:
        if mine.size:
            with warnings.catch_warnings():
                # One summary for the whole sequence below, on the receiving rank.
                warnings.simplefilter("ignore", ConvergenceWarning)
                local = solve_sequence(
                    [pairs[i] for i in mine],
                    strategy=request.strategy,
                    order=np.arange(mine.size),
                    rtol=request.rtol,
                    atol=request.atol,
                    maxiter=request.maxiter,
                    m=request.m,
                    k=request.k,
                    progress=progress,
                )
    except Exception as exc:  # reported on every rank below instead of a hang
        failure = f"rank {comm.rank}: {type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    solve_s = time.perf_counter() - solve_start
    message = (mine, _portable(local), solve_s, failure)
    parts = comm.allgather(message) if root is None else comm.gather(message, root=root)
    failures = comm.bcast(
        [p[3] for p in parts if p[3]] if parts is not None else None, root=root or 0
    )
    if failures:
        raise RuntimeError("solve_sequence_mpi failed on " + "; ".join(failures))
    if parts is None:
        return None
    return _assemble(
        parts, len(pairs), permutation, request.strategy, request.reason, features, start
    )


def _communicator(comm: Any) -> Any:
    """Return ``comm`` (``MPI.COMM_WORLD`` for None) once it is known to be an mpi4py one.

    Raises
    ------
    TypeError
        If ``comm`` is not an ``mpi4py.MPI.Comm``; a petsc4py communicator is
        one only after ``.tompi4py()``.
    """
    MPI = mpi()
    if comm is None:
        return MPI.COMM_WORLD
    if not isinstance(comm, MPI.Comm):
        kind = f"{type(comm).__module__}.{type(comm).__qualname__}"
        raise TypeError(f"comm must be an mpi4py communicator (mpi4py.MPI.Comm), got {kind}")
    return comm


def _portable(result: SequenceResult | None) -> Any:
    """Return the part of a chunk's result worth sending: no recycled spaces (n x k each)."""
    if result is None:
        return None
    results = [
        dataclasses.replace(r, info={key: v for key, v in r.info.items() if key != "recycle"})
        for r in result.results
    ]
    return result.solutions, results, result.info


def _assemble(
    parts: list[Any],
    count: int,
    permutation: np.ndarray,
    strategy: str,
    reason: str,
    features: np.ndarray | None,
    start: float,
) -> SequenceResult:
    solutions: list[Any] = [None] * count
    results: list[SolveResult | None] = [None] * count
    infos = []
    for mine, portable, _, _ in parts:
        if portable is None:
            continue
        chunk_solutions, chunk_results, info = portable
        infos.append(info)
        for i, x, result in zip(mine, chunk_solutions, chunk_results, strict=True):
            solutions[int(i)], results[int(i)] = x, result
    final = [r for r in results if r is not None]
    failed = [i for i, r in enumerate(final) if not r.converged]
    if failed:
        warnings.warn(
            f"{len(failed)} of {len(final)} systems did not converge "
            f"({strategy}; first: system {failed[0]})",
            ConvergenceWarning,
            stacklevel=3,
        )
    info = {
        "reason": reason,
        "setup_s": float(sum(i["setup_s"] for i in infos)),
        "total_s": time.perf_counter() - start,
        "rebuilds": int(sum(i["rebuilds"] for i in infos)),
        "converged": not failed,
        "iterations": float(np.mean([r.iterations for r in final])),
        "path_length": None if features is None else path_length(features, permutation),
        "ranks": len(parts),
        "chunks": [int(p[0].size) for p in parts],
        "rank_solve_s": [float(p[2]) for p in parts],
    }
    return SequenceResult(solutions, final, np.asarray(permutation), strategy, info)
