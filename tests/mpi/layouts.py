"""Under mpiexec: PETSc's row split and the checks of mat_from_local_rows on several ranks.

Usage: mpiexec -n P python tests/mpi/layouts.py OUT.npz
Saves, from rank 0, per rank: the row ranges numlib computes next to those of a PETSc
Vec, the error each rank raised for row counts that do not add up and for NaN rows held
by one rank only, and the product of a matrix assembled from an uneven split.
"""

import sys

import numpy as np

SIZES = (0, 1, 2, 5, 17, 100)


def _error(call) -> str:
    try:
        call()
    except ValueError as exc:
        return str(exc)
    return ""


def main(path: str) -> None:
    from mpi4py import MPI
    from petsc4py import PETSc

    from solvers.petsc import gather_vec, mat_from_local_rows, ownership
    from solvers.problems import darcy

    comm, rank = MPI.COMM_WORLD, MPI.COMM_WORLD.rank
    numlib_ranges = [ownership(n) for n in SIZES]
    petsc_ranges = [
        PETSc.Vec().createMPI((PETSc.DECIDE, n)).getOwnershipRange() if n else (0, 0) for n in SIZES
    ]
    A = darcy(4, rng=0).A.tocsr()  # 16 x 16
    n = A.shape[0]
    short = [(0, 5), (5, 12)][rank]  # 12 of the 16 rows
    uneven = [(0, 3), (3, n)][rank]
    rows = A[uneven[0] : uneven[1]].toarray()
    if rank == 1:
        rows_nan = rows.copy()
        rows_nan[0, 0] = np.nan
    else:
        rows_nan = rows
    mat = mat_from_local_rows(A[uneven[0] : uneven[1]], n)
    x, y = mat.createVecs()
    x.set(1.0)
    mat.mult(x, y)
    out = {
        "numlib_ranges": np.array(comm.gather(numlib_ranges, root=0)),
        "petsc_ranges": np.array(comm.gather(petsc_ranges, root=0)),
        "short_error": comm.gather(
            _error(lambda: mat_from_local_rows(A[short[0] : short[1]], n)), root=0
        ),
        "nan_error": comm.gather(_error(lambda: mat_from_local_rows(rows_nan, n)), root=0),
        "product": gather_vec(y),
        "ownership_of_uneven": np.array(comm.gather(mat.getOwnershipRange(), root=0)),
    }
    if rank == 0:
        np.savez(path, **out)


if __name__ == "__main__":
    main(sys.argv[1])
