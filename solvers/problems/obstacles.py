"""Poisson problems on variable domains: interior solid obstacles and Neumann walls.

The pressure-Poisson systems of grid-based fluid simulation (and of the DCDM
paper's test problems) live on a regular grid of which only the *fluid* nodes are
unknowns: solid obstacles inside the domain and closed walls impose a zero normal
flux (homogeneous Neumann), open walls a zero pressure (homogeneous Dirichlet).
Discretised with the vertex-centred 5/7-point stencil of
:func:`solvers.problems.poisson2d`, a face between two fluid nodes contributes
``(u_i - u_j)/h²`` to both rows, a face to an open wall ``u_i/h²`` (the wall value
is zero), and a face to a solid node or a closed wall nothing.

To keep every problem on the full grid (so that grid-structured solvers, such as
the convolutional networks of :mod:`learned.dcdm`, see one fixed layout) the solid
nodes stay in the system as *decoupled* rows ``(2d/h²) u_i = 0``: ``A`` is then
block diagonal between the fluid part and a positive diagonal, and solving the
whole system is solving the fluid problem.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.ndimage as ndi
import scipy.sparse as sp

from numlib.validate import as_generator, check_positive_int
from solvers.fields import gaussian_random_field
from solvers.problems.system import LinearSystem, _canonical, _grid, _grid_values, _interior_nodes

__all__ = ["WALLS", "fluid_fraction", "poisson_obstacles", "random_obstacles"]

WALLS: tuple[str, ...] = ("x-", "x+", "y-", "y+", "z-", "z+")
"""Names of the outer walls: axis letter, then ``-`` (coordinate 0) or ``+`` (1)."""


def random_obstacles(
    n: int,
    dim: int,
    *,
    count: int = 6,
    rng: int | np.random.Generator | None = None,
) -> np.ndarray:
    """Draw a solid mask of ``count`` random boxes and balls on an ``n^dim`` grid.

    Centres are uniform over the grid; box half-widths and ball radii are uniform
    in ``[n/16, n/6]`` (at least one node). Half the obstacles are boxes, half balls,
    so that the domain has both axis-aligned and curved (staircase) boundaries.

    Parameters
    ----------
    n : int
        Nodes per dimension, ``>= 4``.
    dim : {2, 3}
        Dimension.
    count : int, default 6
        Number of obstacles, ``>= 0``; they may overlap.
    rng : int, numpy.random.Generator or None
        Seed or generator.

    Returns
    -------
    numpy.ndarray
        Boolean array of shape ``(n,) * dim``, True on solid nodes.

    Raises
    ------
    TypeError, ValueError
        For a non-integer or out-of-range ``n``, ``dim`` or ``count``, or a bad ``rng``.

    Examples
    --------
    >>> solid = random_obstacles(32, 2, count=3, rng=0)
    >>> solid.shape, solid.dtype, bool(0 < solid.sum() < 32 * 32)
    ((32, 32), dtype('bool'), True)
    """
    n = check_positive_int(n, "n", minimum=4)
    dim = _check_dim(dim)
    count = check_positive_int(count, "count", minimum=0)
    gen = as_generator(rng)
    coords = np.meshgrid(*[np.arange(n)] * dim, indexing="ij")
    solid = np.zeros((n,) * dim, dtype=bool)
    for index in range(count):
        centre = gen.uniform(0, n - 1, size=dim)
        size = gen.uniform(max(n / 16, 1.0), max(n / 6, 1.0), size=dim)
        offsets = [c - m for c, m in zip(coords, centre, strict=True)]
        if index % 2 == 0:
            solid |= np.all([np.abs(o) <= s for o, s in zip(offsets, size, strict=True)], axis=0)
        else:
            solid |= sum(o * o for o in offsets) <= size[0] ** 2
    return solid


def poisson_obstacles(
    n: int,
    dim: int = 2,
    *,
    solid: np.ndarray | None = None,
    obstacles: int = 6,
    neumann: Sequence[str] = (),
    source: Any = None,
    rng: int | np.random.Generator | None = None,
) -> LinearSystem:
    """Poisson problem ``-Δu = f`` with solid obstacles (Neumann) on a 2-D/3-D grid.

    Vertex-centred 5-point (2-D) or 7-point (3-D) finite differences on ``n^dim``
    interior nodes of the unit square/cube, ``h = 1/(n+1)``. Fluid nodes carry the
    unknowns; faces to solid nodes and to the walls named in ``neumann`` have zero
    flux, the other walls are open (``u = 0``). Solid nodes are kept as decoupled
    rows ``(2 dim/h²) u_i = 0`` (see the module docstring).

    Guarantee: ``A`` is symmetric positive definite. The fluid block is an
    irreducibly diagonally dominant M-matrix on every connected fluid region that
    touches an open wall; regions that touch none (pure Neumann, singular) are
    filled as solid, so ``params["solid"]`` can hold more nodes than ``solid``.
    Without obstacles and Neumann walls the matrix equals :func:`poisson2d`'s
    (or :func:`poisson3d`'s).

    Parameters
    ----------
    n : int
        Interior nodes per dimension, ``>= 4``.
    dim : {2, 3}, default 2
        Dimension.
    solid : numpy.ndarray of bool, optional
        Solid mask of shape ``(n,) * dim``. ``None`` draws one with
        :func:`random_obstacles` (``obstacles`` of them, from ``rng``).
    obstacles : int, default 6
        Number of random obstacles when ``solid`` is None (0 for an empty domain).
    neumann : sequence of str, default ()
        Closed walls, among :data:`WALLS` (``"z-"``, ``"z+"`` only in 3-D). At least
        one wall must stay open.
    source : float, numpy.ndarray or callable, optional
        Source ``f`` at the nodes: a constant, an array of shape ``(n,) * dim`` or
        ``(n**dim,)``, or a callable of the coordinates. ``None`` draws a Gaussian
        random field (``alpha = 2.5``, ``tau = 7``) from ``rng``. ``b`` is ``f`` on
        fluid nodes and zero on solid ones.
    rng : int, numpy.random.Generator or None
        Seed or generator for the random obstacles and source.

    Returns
    -------
    LinearSystem
        ``name="poisson_obstacles"``, ``grid_shape=(n,) * dim``, ``x_exact=None``,
        ``params={"n", "dim", "solid", "neumann"}`` with the final solid mask.

    Raises
    ------
    TypeError
        If ``n``, ``dim`` or ``obstacles`` are not integers, ``solid`` is not a
        boolean numpy array, ``neumann`` holds a non-string, or ``source``/``rng``
        have an unsupported type.
    ValueError
        If ``n < 4``, ``dim`` is not 2 or 3, ``solid`` has the wrong shape or
        covers every node, ``neumann`` names an unknown wall or closes them all,
        or ``source`` has the wrong shape or non-finite values.

    References
    ----------
    .. [1] R. Bridson, "Fluid Simulation for Computer Graphics", 2nd ed., CRC Press,
       2015, Chapter 5 (the pressure Poisson matrix with solid boundaries).
    .. [2] A. Kaneda, O. Akar, J. Chen, V. A. T. Kala, D. Hyde, J. Teran, "A Deep
       Conjugate Direction Method for Iteratively Solving Linear Systems", ICML 2023.

    Examples
    --------
    >>> system = poisson_obstacles(32, 2, obstacles=4, neumann=("y-", "y+"), rng=1)
    >>> system.A.shape, bool(abs(system.A - system.A.T).max() == 0)
    ((1024, 1024), True)
    >>> bool((system.b[system.params["solid"].ravel()] == 0).all())
    True
    """
    n = check_positive_int(n, "n", minimum=4)
    dim = _check_dim(dim)
    gen = as_generator(rng)
    closed = _check_walls(neumann, dim)
    shape = (n,) * dim
    if solid is None:
        mask = random_obstacles(n, dim, count=obstacles, rng=gen)
    else:
        mask = _check_solid(solid, shape)
    mask = _fill_enclosed(mask, closed)
    if mask.all():
        raise ValueError("solid covers every node (or leaves only regions without an open wall)")

    h = 1.0 / (n + 1)
    nodes = _grid([_interior_nodes(n)] * dim)
    if source is None:
        f = gaussian_random_field(shape, rng=gen)
    else:
        f = _grid_values(source, "source", nodes)
    b = np.where(mask, 0.0, f).ravel()
    A = _assemble(mask, closed, h)
    params = {"n": n, "dim": dim, "solid": mask, "neumann": tuple(sorted(closed))}
    return LinearSystem(A, b, None, "poisson_obstacles", shape, h, params)


def _check_dim(dim: Any) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int | np.integer):
        raise TypeError(f"dim must be an integer, got {type(dim).__name__}")
    if dim not in (2, 3):
        raise ValueError(f"dim must be 2 or 3, got {dim}")
    return int(dim)


def _check_walls(neumann: Any, dim: int) -> set[str]:
    if isinstance(neumann, str) or not isinstance(neumann, Sequence):
        raise TypeError(f"neumann must be a sequence of wall names, got {neumann!r}")
    allowed = WALLS[: 2 * dim]
    closed = set()
    for wall in neumann:
        if not isinstance(wall, str):
            raise TypeError(f"neumann must hold wall names (str), got {wall!r}")
        if wall not in allowed:
            raise ValueError(f"neumann: unknown wall {wall!r}; expected some of {allowed}")
        closed.add(wall)
    if len(closed) == len(allowed):
        raise ValueError("neumann closes every wall: the problem would be singular")
    return closed


def _check_solid(solid: Any, shape: tuple[int, ...]) -> np.ndarray:
    if not isinstance(solid, np.ndarray) or solid.dtype != np.bool_:
        raise TypeError(f"solid must be a boolean numpy array, got {type(solid).__name__}")
    if solid.shape != shape:
        raise ValueError(f"solid must have shape {shape}, got {solid.shape}")
    return solid.copy()


def _fill_enclosed(solid: np.ndarray, closed: set[str]) -> np.ndarray:
    """Mark fluid regions that touch no open wall as solid (they would be singular)."""
    labels, count = ndi.label(~solid)
    if count == 0:
        return solid
    open_labels: set[int] = set()
    for axis in range(solid.ndim):
        for side, layer in (("-", 0), ("+", -1)):
            if f"{'xyz'[axis]}{side}" in closed:
                continue
            open_labels.update(np.unique(np.take(labels, layer, axis=axis)).tolist())
    keep = np.isin(labels, sorted(open_labels - {0}))
    return ~keep


def _assemble(solid: np.ndarray, closed: set[str], h: float) -> sp.csr_array:
    """Sum over axes of face conductances: ``A = Σ_faces c_f (e_i - e_j)(e_i - e_j)^T``."""
    dim, n = solid.ndim, solid.shape[0]
    fluid = ~solid
    inv_h2 = 1.0 / (h * h)
    diagonal = np.zeros(solid.shape)
    offsets, bands = [], []
    for axis in range(dim):
        stride = n ** (dim - 1 - axis)
        lo = [slice(None)] * dim
        hi = [slice(None)] * dim
        lo[axis], hi[axis] = slice(0, -1), slice(1, None)
        # Interior faces between neighbours i and i + stride along this axis.
        face = fluid[tuple(lo)] & fluid[tuple(hi)]
        diagonal[tuple(lo)] += face
        diagonal[tuple(hi)] += face
        coupling = np.zeros(solid.shape)
        coupling[tuple(lo)] = face
        # Wall faces: an open wall adds u_i / h² to its fluid neighbour.
        for side, layer in (("-", 0), ("+", n - 1)):
            if f"{'xyz'[axis]}{side}" in closed:
                continue
            index = [slice(None)] * dim
            index[axis] = layer
            diagonal[tuple(index)] += fluid[tuple(index)]
        offsets.append(stride)
        bands.append(-coupling.ravel()[: n**dim - stride])
    diagonal = np.where(solid, 2.0 * dim, diagonal).ravel()
    A = sp.diags_array(
        [diagonal, *bands, *bands],
        offsets=[0, *offsets, *(-s for s in offsets)],
        shape=(n**dim, n**dim),
    )
    return _canonical(inv_h2 * A)


def fluid_fraction(system: LinearSystem) -> float:
    """Fraction of the grid's nodes that are fluid in an obstacle problem."""
    solid = system.params["solid"]
    return 1.0 - float(solid.sum()) / math.prod(solid.shape)
