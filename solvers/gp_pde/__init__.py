"""GP-HM: Gaussian-process solver for high-frequency and multi-scale PDEs on tensor grids.

``solvers.gp_pde.kernels``
    :class:`SpectralMixture`, the per-axis kernel, with closed-form derivative kernels.
``solvers.gp_pde.spectrum``
    Mixture frequencies from the spectral peaks of the source term and boundary data.
``solvers.gp_pde.basis``
    Whitened per-axis eigenbases; derivatives at grid and test points as Kronecker operators.
``solvers.gp_pde.system``
    The MAP problem: normal equations as sums of Kronecker products, Cholesky or
    Jacobi preconditioned CG, dense QR, Gauss-Newton.
``solvers.gp_pde.solver``
    :class:`GPPDESolver` (validation, initialisation, optional evidence outer loop) and
    :class:`GPPDEResult`.
``solvers.gp_pde.problems``
    :class:`PDEOperator` (Poisson, Helmholtz, advection, Allen-Cahn) and the paper's
    manufactured problems, :data:`PAPER_PROBLEMS`.

The gpytorch kernel modules are in :mod:`learned.gp_kernels` and the PINN baseline in
:mod:`learned.gp_pinn`, so importing this package imports no torch.

References
----------
S. Fang, M. Cooley, D. Long, S. Li, R. M. Kirby, S. Zhe, "Solving high frequency and
multi-scale PDEs with Gaussian processes", ICLR 2024.
"""

from solvers.gp_pde.kernels import SpectralMixture
from solvers.gp_pde.problems import (
    PAPER_PROBLEMS,
    PDEOperator,
    Problem,
    advection,
    allen_cahn,
    helmholtz,
    poisson,
)
from solvers.gp_pde.solver import GPPDEResult, GPPDESolver

__all__ = [
    "PAPER_PROBLEMS",
    "GPPDEResult",
    "GPPDESolver",
    "PDEOperator",
    "Problem",
    "SpectralMixture",
    "advection",
    "allen_cahn",
    "helmholtz",
    "poisson",
]
