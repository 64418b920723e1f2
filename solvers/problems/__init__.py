"""A gallery of PDE linear systems, assembled as scipy.sparse CSR arrays.

Every problem lives on the unit square (or cube) with Dirichlet boundary conditions
and is returned as a :class:`LinearSystem`. Matrices are in physical scaling (they
include the ``1/h²`` factor), so the right-hand side is the source ``f`` sampled at
the unknowns plus the boundary terms moved over from the stencil.

Unknowns are laid out on ``grid_shape`` in C order with axis 0 the ``x`` direction,
axis 1 ``y`` and axis 2 ``z``: ``x.reshape(grid_shape)[i, j]`` is the value at
``(x_i, y_j)``. Vertex-centred problems (Poisson, Helmholtz, convection-diffusion,
heat) have ``n`` interior nodes per axis at ``x_i = (i + 1) h``, ``h = 1/(n + 1)``;
the cell-centred Darcy problem has ``n`` cells per axis with centres at
``x_i = (i + 1/2) h``, ``h = 1/n``.

Manufactured solutions. Each function takes ``solution=(u, f)``: two vectorised
callables of the coordinates (``u(x, y)`` or ``u(x, y, z)``, called with float
arrays of one common shape and returning arrays broadcastable to it), where ``u`` is
the exact continuous solution and ``f`` the source that makes it one, i.e. ``f`` is
the problem's differential operator applied to ``u`` (spelled out in each
function). The boundary data are ``u`` on the boundary, ``b`` holds ``f`` plus the
boundary terms, and ``x_exact`` is ``u`` at the unknowns, so the discretisation error
``x - x_exact`` can be measured. Without ``solution`` the constant-coefficient
problems use a default smooth solution with nonzero boundary values (given in each
docstring).

All matrices are built by vectorised sparse constructions (Kronecker sums of 1-D
stencils or banded diagonals), in ``O(N)`` time and memory for ``N`` unknowns.
scipy.sparse is numpy-only, so every array argument must be a numpy array.
"""

from solvers.problems.darcy import darcy, darcy_skr
from solvers.problems.finite_difference import (
    convection_diffusion,
    heat_step,
    helmholtz,
    poisson2d,
    poisson3d,
)
from solvers.problems.obstacles import poisson_obstacles
from solvers.problems.system import Field, LinearSystem

__all__ = [
    "Field",
    "LinearSystem",
    "convection_diffusion",
    "darcy",
    "darcy_skr",
    "heat_step",
    "helmholtz",
    "poisson2d",
    "poisson3d",
    "poisson_obstacles",
]
