"""Neural-operator training data: many related PDE solves, written in resumable shards.

:func:`generate_dataset` draws ``n_samples`` random parameter fields of one PDE
family, orders the samples so that neighbours in the solve sequence have similar
matrices (the sorting step of SKR [1]_), and solves the ordered sequence with
:func:`solvers.recycle.solve_sequence` shard by shard. Each shard is one ``.npz``
file written atomically, so an interrupted run (Ctrl-C, a killed job) leaves only
complete shards behind and the same call picks up where it stopped.

Reproducibility. Sample ``i`` draws its parameters from
``numpy.random.default_rng([seed, i])`` alone, so its input does not depend on the
order, the sharding or on resumption. The global solve order is computed once and
saved (``order.npy``); a resumed run reuses it, so the shards of one data set always
hold the same samples, solved in the same order from the same starting point (each
shard is a fresh ``solve_sequence`` call under a fixed seed). A resumed run therefore
stores bit-for-bit the same arrays as an uninterrupted one (only the recorded solve
times differ).

Folder layout::

    out/manifest.json       configuration, numlib version, finished shards
    out/order.npy           the global solve order (a permutation of the sample ids)
    out/shard-00000.npz     index, input, solution, rel_residual, iterations,
                            solve_time, strategy

Every file is written under a temporary name (``*.tmp``) in the same folder and
moved into place with :func:`os.replace`, which is atomic on POSIX and Windows.
Only one process may write to a folder at a time.

Families (``input`` is what a neural operator reads, ``solution`` what it predicts;
GRF is :func:`solvers.fields.gaussian_random_field` with the family's ``alpha``
and ``tau``):

``"darcy"``
    ``-∇·(a ∇u) = 1`` with ``u = 0`` on the boundary, cell-centred
    (:func:`solvers.problems.darcy`), permeability ``a = exp(GRF)``. Input ``a``,
    shape ``(n, n)``. A different SPD matrix per sample.
``"helmholtz"``
    ``-Δu - k²u = f`` with ``u = 0`` on the boundary (:func:`solvers.problems.helmholtz`'s
    matrix), fixed wavenumber ``k`` (default 10: indefinite, since ``k > π√2``, and
    about 40 nodes per wavelength at ``n = 64``), source ``f = GRF``. Input ``f``,
    shape ``(n, n)``. One symmetric indefinite matrix for all samples.
``"convection_diffusion"``
    ``-Δu + Pe (w·∇u) = 1`` with ``u = 0`` on the boundary
    (:func:`solvers.problems.convection_diffusion`), wind ``w = (cos θ, sin θ)``
    with ``θ ~ U[0, 2π)`` and ``Pe ~ U[peclet_min, peclet_max]``, upwind
    differences by default (stable for every ``Pe``). Input: the velocity field
    ``Pe·w`` as two constant channels, shape ``(2, n, n)``. A different
    nonsymmetric matrix per sample; the ordering uses ``Pe·w`` itself.
``"heat"``
    One implicit-Euler step ``(I + dt L) u_new = u_prev`` with ``u = 0`` on the
    boundary (:func:`solvers.problems.heat_step`), ``u_prev = GRF``. Input
    ``u_prev``, shape ``(n, n)``; solution ``u_new``. One SPD matrix for all samples.
``"poisson"``
    ``-Δu = f`` with ``u = 0`` on the boundary (:func:`solvers.problems.poisson2d`'s
    matrix), ``f = GRF``. Input ``f``, shape ``(n, n)``. One SPD matrix for all
    samples, so ``strategy="auto"`` factorises it once.

References
----------
.. [1] H. Wang, Z. Hao, J. Wang, Z. Geng, Z. Wang, B. Li, F. Wu, "Accelerating
   data generation for neural operators via Krylov subspace recycling", ICLR 2024.
.. [2] Z. Li et al., "Fourier neural operator for parametric partial differential
   equations", ICLR 2021.
"""

from solvers.datasets.cli import build_parser, main
from solvers.datasets.config import ORDERS
from solvers.datasets.families import FAMILIES
from solvers.datasets.generate import DatasetInfo, generate_dataset
from solvers.datasets.storage import MANIFEST, ORDER_FILE, DatasetMismatchError, load_dataset
from solvers.recycle import STRATEGIES

__all__ = [
    "FAMILIES",
    "MANIFEST",
    "ORDERS",
    "ORDER_FILE",
    "STRATEGIES",
    "DatasetInfo",
    "DatasetMismatchError",
    "build_parser",
    "generate_dataset",
    "load_dataset",
    "main",
]
