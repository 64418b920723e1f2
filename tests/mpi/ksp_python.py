"""Under mpiexec: numlib's GCRO-DR as a PETSc KSP of type python, with PETSc preconditioners.

Usage: mpiexec -n P python tests/mpi/ksp_python.py OUT.npz PC_TYPE [PC_TYPE ...]
For each PC type, selects the solver through the options database only (-ksp_type python
-ksp_python_type solvers.petsc.ksp.GCRODR -pc_type PC_TYPE), solves three Darcy systems
with one KSP, changing the operators between solves, and saves iterations, converged
reasons, reported residual norms and the gathered solutions.
"""

import sys

import numpy as np


def main(path: str, pc_types: list[str]) -> None:
    from petsc4py import PETSc

    from solvers.petsc import gather_vec, to_petsc_mat, to_petsc_vec
    from solvers.problems import darcy

    n = 32
    systems = [to_petsc_mat(darcy(n, rng=seed).A) for seed in range(3)]
    out = {"ranks": PETSc.COMM_WORLD.getSize()}
    opts = PETSc.Options()
    opts["ksp_type"] = "python"
    opts["ksp_python_type"] = "solvers.petsc.ksp.GCRODR"
    opts["ksp_gcrodr_m"] = 30
    opts["ksp_gcrodr_k"] = 10
    opts["ksp_rtol"] = 1e-9
    for pc_type in pc_types:
        opts["pc_type"] = pc_type
        ksp = PETSc.KSP().create()
        ksp.setFromOptions()
        out[f"{pc_type}_ksp_type"] = ksp.getType()
        for seed, A in enumerate(systems):
            b = to_petsc_vec(np.ones(n * n), like=A)
            x = A.createVecLeft()
            ksp.setOperators(A)
            ksp.solve(b, x)
            out[f"{pc_type}_iterations_{seed}"] = ksp.getIterationNumber()
            out[f"{pc_type}_reason_{seed}"] = ksp.getConvergedReason()
            out[f"{pc_type}_residual_norm_{seed}"] = ksp.getResidualNorm()
            out[f"{pc_type}_x_{seed}"] = gather_vec(x)
        out[f"{pc_type}_pc_type"] = ksp.getPC().getType()
        ksp.destroy()
    if PETSc.COMM_WORLD.getRank() == 0:
        np.savez(path, **out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
