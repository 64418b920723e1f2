"""The neural-operator data set generator fanned out over MPI ranks, shards written per rank.

:func:`generate_dataset_mpi` produces *the same files* as
:func:`solvers.datasets.generate_dataset` with the same arguments — same
manifest configuration, same ``order.npy``, same shards bit for bit (up to the
recorded solve times) — with the shards solved by several ranks at once. It
reuses the serial generator's pieces, so the guarantees carry over:

- the root rank validates the arguments, claims the folder (manifest), computes
  the global solve order once (SKR's sorting step) and finds the shards already
  finished on disk;
- the unfinished shards, in sorted order, are cut into contiguous chunks, one
  per rank; each rank solves its shards (each shard one recycling chain, as in
  the serial generator) and writes each one atomically itself;
- the root gathers the shards' summaries and writes the final manifest.

An interrupted run leaves only complete shards; running the same command again
(with any number of ranks) finishes the rest. Run it as::

    mpiexec -n 4 python -m solvers.petsc.dataset darcy --samples 1000 --grid 64 --out data/

which takes the arguments of ``numlib-dataset``.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from solvers.datasets.config import _config
from solvers.datasets.generate import (
    DatasetInfo,
    _open_dataset,
    _progress_bar,
    _summary,
    _warn_above_rtol,
    _write_manifest,
    _write_shard,
)
from solvers.petsc._require import mpi
from solvers.petsc.sequence import _communicator, chunk_bounds

__all__ = ["generate_dataset_mpi", "main"]


def generate_dataset_mpi(
    family: str,
    n_samples: int,
    out: str | os.PathLike[str],
    *,
    n: int,
    shard_size: int = 50,
    seed: int = 0,
    strategy: str = "auto",
    order: str = "greedy",
    rtol: float = 1e-8,
    family_options: dict[str, Any] | None = None,
    progress: bool = False,
    comm: Any = None,
) -> DatasetInfo:
    """Generate (or finish) a data set in ``out`` with the ranks of ``comm`` sharing the shards.

    Collective: every rank calls it with the same arguments. The arguments,
    the folder layout, the resumption rule and the reproducibility guarantee
    are those of :func:`solvers.datasets.generate_dataset`; the data set is
    identical to the serial one for the same arguments, whatever the number of
    ranks.

    Parameters
    ----------
    family, n_samples, out, n, shard_size, seed, strategy, order, rtol, family_options
        As for :func:`solvers.datasets.generate_dataset`.
    progress : bool, default False
        Show a progress bar of the root rank's own shards (on stderr).
    comm : mpi4py.MPI.Comm, optional
        Communicator (default ``MPI.COMM_WORLD``); a petsc4py one converts with
        ``.tompi4py()``.

    Returns
    -------
    DatasetInfo
        The same summary on every rank; ``shards_written`` counts the shards
        written by all ranks in this call.

    Raises
    ------
    TypeError, ValueError
        For bad arguments (those of the serial generator, and a ``comm`` that is
        not an ``mpi4py.MPI.Comm``), on every rank, before anything is written.
    DatasetMismatchError
        If ``out`` holds a data set of another configuration (every rank).
    RuntimeError
        On every rank, if solving or writing failed on some rank (naming it);
        the shards finished before the failure are kept.

    Warns
    -----
    UserWarning
        On the root rank, for samples whose relative residual exceeds ``rtol``.

    References
    ----------
    .. [1] H. Wang et al., "Accelerating data generation for neural operators
       via Krylov subspace recycling", ICLR 2024.
    """
    comm = _communicator(comm)
    config = _config(family, n_samples, n, seed, shard_size, strategy, order, rtol, family_options)
    out = Path(out)

    shards, entries = _on_root(comm, lambda: _open_dataset(out, config))
    n_shards = len(shards)
    todo = np.array([s for s in range(n_shards) if s not in entries], dtype=np.int64)
    bounds = chunk_bounds(todo.size, comm.size)
    mine = todo[bounds[comm.rank] : bounds[comm.rank + 1]]

    written: dict[int, dict[str, Any]] = {}
    failure = None
    try:
        with _progress_bar(progress and comm.rank == 0) as bar:
            total = int(sum(shards[s].size for s in mine))
            task = bar.add_task(f"{family} n={n} (rank 0 of {comm.size})", total=total)
            for s in mine:
                written[int(s)] = _write_shard(out, config, int(s), shards[s], bar, task)
    except Exception as exc:  # reported on every rank below instead of a hang
        failure = f"rank {comm.rank}: {type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    gathered = comm.gather((written, failure), root=0)

    def finish() -> DatasetInfo:
        new: dict[int, dict[str, Any]] = {}
        for part, _ in gathered:
            new.update(part)
        entries.update(new)
        _write_manifest(out, config, entries, n_shards)
        failures = [f for _, f in gathered if f]
        if failures:
            raise RuntimeError("generate_dataset_mpi failed on " + "; ".join(failures))
        for entry in new.values():
            # finish <- _on_root <- generate_dataset_mpi <- its caller
            _warn_above_rtol(entry, config["rtol"], stacklevel=4)
        return _summary(out, config, entries, len(new), n_shards - todo.size)

    return _on_root(comm, finish)


def _on_root(comm: Any, work: Any) -> Any:
    """Run ``work()`` on rank 0 and hand its result (or its exception) to every rank."""
    outcome: Any = None
    if comm.rank == 0:
        try:
            outcome = ("ok", work())
        except Exception as exc:  # re-raised on every rank
            outcome = ("error", exc)
    status, value = comm.bcast(outcome, root=0)
    if status == "error":
        raise value
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the distributed generator with ``numlib-dataset``'s arguments (under ``mpiexec``).

    Returns
    -------
    int
        0 when the data set is complete; argument errors exit with status 2.
    """
    from solvers.datasets.cli import build_parser, generator_arguments

    MPI = mpi()
    parser = build_parser()
    parser.prog = "mpiexec -n P python -m solvers.petsc.dataset"
    args = parser.parse_args(argv)
    try:
        info = generate_dataset_mpi(**generator_arguments(args))
    except (TypeError, ValueError) as exc:
        if MPI.COMM_WORLD.rank == 0:
            parser.error(str(exc))
        return 2
    if MPI.COMM_WORLD.rank == 0:
        print(
            f"{info.n_samples} samples in {info.out} on {MPI.COMM_WORLD.size} rank(s): "
            f"{info.shards_written} shard(s) written, {info.shards_skipped} skipped; "
            f"strategy {info.strategy}, {info.mean_iterations:.1f} iterations per sample, "
            f"max rel. residual {info.max_rel_residual:.2e}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
