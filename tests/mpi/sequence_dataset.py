"""Under mpiexec: the distributed sequence solver and data set generator.

Usage: mpiexec -n P python tests/mpi/sequence_dataset.py OUT.npz FOLDER [RESUME_FOLDER]
Solves a sorted Darcy sequence with solve_sequence_mpi (GCRO-DR, one recycling chain
per rank), generates a small Darcy data set with generate_dataset_mpi in FOLDER and,
if given, finishes the interrupted one in RESUME_FOLDER with the same arguments; the
root saves the solutions, the order, the chunk sizes and the shard counts.
"""

import sys

import numpy as np


def main(path: str, folder: str, resume: str | None) -> None:
    from mpi4py import MPI

    from solvers.petsc.dataset import generate_dataset_mpi
    from solvers.petsc.sequence import solve_sequence_mpi
    from solvers.problems import darcy

    systems = [darcy(16, rng=seed) for seed in range(8)]
    result = solve_sequence_mpi(systems, strategy="gcrodr", rtol=1e-10, m=20, k=5)
    info = generate_dataset_mpi("darcy", 10, folder, n=12, shard_size=3, seed=7)
    resumed = None
    if resume is not None:
        resumed = generate_dataset_mpi("darcy", 10, resume, n=12, shard_size=3, seed=7)
    if MPI.COMM_WORLD.rank == 0:
        np.savez(
            path,
            ranks=MPI.COMM_WORLD.size,
            solutions=np.stack(result.solutions),
            order=result.order,
            chunks=np.array(result.info["chunks"]),
            converged=result.info["converged"],
            strategy=result.strategy,
            shards_written=info.shards_written,
            max_rel_residual=info.max_rel_residual,
            resumed_written=-1 if resumed is None else resumed.shards_written,
            resumed_skipped=-1 if resumed is None else resumed.shards_skipped,
        )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
