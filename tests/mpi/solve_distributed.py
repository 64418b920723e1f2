"""Under mpiexec: numlib's solvers on a row-distributed PETSc system; root writes an npz.

Usage: mpiexec -n P python tests/mpi/solve_distributed.py OUT.npz
Solves two Darcy systems (the second from the first's recycled space) with GCRO-DR,
in working and in single precision, and with GCRO-DR, GMRES and CG preconditioned by
PETSc's block Jacobi, and saves the gathered solutions, iteration counts and the number
of ranks.
"""

import sys

import numpy as np


def main(path: str) -> None:
    from petsc4py import PETSc

    from solvers.petsc import gather_vec, preconditioner, solve, to_petsc_mat, to_petsc_vec
    from solvers.problems import darcy

    n = 32
    out = {"ranks": PETSc.COMM_WORLD.getSize()}
    first = to_petsc_mat(darcy(n, rng=0).A)
    second = to_petsc_mat(darcy(n, rng=1).A)
    b = to_petsc_vec(np.ones(n * n), like=first)
    for precision, label in (("working", "gcrodr"), ("single", "gcrodr_single")):
        recycle = None
        for name, A in (("first", first), ("second", second)):
            result = solve(A, b, rtol=1e-10, m=30, k=10, recycle=recycle,
                           basis_precision=precision)  # fmt: skip
            recycle = result.info["recycle"]
            out[f"{label}_{name}_x"] = gather_vec(result.x)
            out[f"{label}_{name}_iterations"] = result.iterations
            out[f"{label}_{name}_converged"] = result.converged
    M = preconditioner(first, "bjacobi")
    for method in ("gcrodr", "gmres", "cg"):
        result = solve(first, b, method=method, M=M, rtol=1e-10, m=30, k=10, restart=30)
        out[f"{method}_pc_x"] = gather_vec(result.x)
        out[f"{method}_pc_iterations"] = result.iterations
        out[f"{method}_pc_converged"] = result.converged
    if PETSc.COMM_WORLD.getRank() == 0:
        np.savez(path, **out)


if __name__ == "__main__":
    main(sys.argv[1])
