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

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from numlib.validate import as_generator, check_positive_int, check_positive_real, check_tolerance
from solvers.fields import gaussian_random_field

__all__ = [
    "LinearSystem",
    "convection_diffusion",
    "darcy",
    "heat_step",
    "helmholtz",
    "poisson2d",
    "poisson3d",
]

Field = Callable[..., Any]
"""A vectorised function of the coordinates, ``f(x, y)`` or ``f(x, y, z)``."""

Stencil = tuple[float, float, float]

_SCHEMES = ("central", "upwind")


@dataclass(frozen=True, eq=False)
class LinearSystem:
    """A discretised PDE ``A x = b`` with the data that produced it.

    Equality is identity (``eq=False``): the fields are arrays, for which
    field-by-field ``==`` has no single truth value.

    Attributes
    ----------
    A : scipy.sparse.csr_array
        The ``N x N`` matrix, float64, canonical CSR (sorted indices, no duplicates).
    b : numpy.ndarray
        Right-hand side of length ``N``: the source plus the boundary terms.
    x_exact : numpy.ndarray or None
        The manufactured continuous solution sampled at the unknowns, length ``N``;
        ``None`` when the problem has no known solution (random data).
    name : str
        The generating function, e.g. ``"poisson2d"``.
    grid_shape : tuple of int
        Grid of the unknowns, C order: ``x.reshape(grid_shape)``.
    h : float
        Mesh width.
    params : dict
        The parameters that produced the system (``n``, ``k``, ``peclet``, ...), and
        for the random families the drawn data (``coefficient``, ``u_prev``).
    """

    A: sp.csr_array
    b: np.ndarray
    x_exact: np.ndarray | None
    name: str
    grid_shape: tuple[int, ...]
    h: float
    params: dict[str, Any]


# ---------------------------------------------------------------------------
# Default manufactured solutions. Derivatives are written by hand so that the
# convergence tests check the discretisation against independent calculus.


def _u_2d(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.exp(x) * np.sin(np.pi * y) + x**2 * y + np.cos(2 * x + y)


def _minus_laplacian_u_2d(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (np.pi**2 - 1) * np.exp(x) * np.sin(np.pi * y) - 2 * y + 5 * np.cos(2 * x + y)


def _grad_u_2d(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ux = np.exp(x) * np.sin(np.pi * y) + 2 * x * y - 2 * np.sin(2 * x + y)
    uy = np.pi * np.exp(x) * np.cos(np.pi * y) + x**2 - np.sin(2 * x + y)
    return ux, uy


def _u_3d(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    return np.exp(x + y) * np.sin(np.pi * z) + x * y * z + np.cos(x + 2 * y + 3 * z)


def _minus_laplacian_u_3d(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    return (np.pi**2 - 2) * np.exp(x + y) * np.sin(np.pi * z) + 14 * np.cos(x + 2 * y + 3 * z)


# ---------------------------------------------------------------------------
# Public problems.


def poisson2d(n: int, *, solution: tuple[Field, Field] | None = None) -> LinearSystem:
    """Five-point finite-difference Poisson problem ``-Δu = f`` on the unit square.

    ``A = (1/h²)(T ⊗ I + I ⊗ T)`` with ``T = tridiag(-1, 2, -1)``, symmetric positive
    definite with eigenvalues ``(4/h²)(sin²(iπh/2) + sin²(jπh/2))``, ``1 <= i, j <= n``.
    For smooth ``u`` the error ``max|x - x_exact|`` is ``O(h²)``.

    Parameters
    ----------
    n : int
        Interior nodes per dimension, ``>= 1``; ``N = n²`` unknowns, ``h = 1/(n+1)``.
    solution : (callable, callable), optional
        ``(u, f)`` with ``f = -Δu``; see the module docstring. The default is
        ``u = e^x sin(πy) + x²y + cos(2x + y)``.

    Returns
    -------
    LinearSystem
        ``name="poisson2d"``, ``grid_shape=(n, n)``, ``params={"n": n}``.

    Raises
    ------
    TypeError
        If ``n`` is not an integer or ``solution`` is not a pair of callables.
    ValueError
        If ``n < 1`` or ``solution`` returns non-finite or wrongly shaped values.

    References
    ----------
    .. [1] R. J. LeVeque, "Finite Difference Methods for Ordinary and Partial
       Differential Equations", SIAM, 2007, Chapter 3.
    """
    n = check_positive_int(n, "n")
    u, f = _default_or(solution, (_u_2d, _minus_laplacian_u_2d))
    return _vertex_system("poisson2d", n, 2, _laplacian_stencils(n, 2), 0.0, u, f, {"n": n})


def poisson3d(n: int, *, solution: tuple[Field, Field] | None = None) -> LinearSystem:
    """Seven-point finite-difference Poisson problem ``-Δu = f`` on the unit cube.

    ``A = (1/h²)(T ⊗ I ⊗ I + I ⊗ T ⊗ I + I ⊗ I ⊗ T)``, symmetric positive definite;
    the error is ``O(h²)`` in the max norm for smooth ``u``.

    Parameters
    ----------
    n : int
        Interior nodes per dimension, ``>= 1``; ``N = n³`` unknowns, ``h = 1/(n+1)``.
    solution : (callable, callable), optional
        ``(u, f)`` with ``f = -Δu``, functions of ``(x, y, z)``. The default is
        ``u = e^(x+y) sin(πz) + xyz + cos(x + 2y + 3z)``.

    Returns
    -------
    LinearSystem
        ``name="poisson3d"``, ``grid_shape=(n, n, n)``, ``params={"n": n}``.

    Raises
    ------
    TypeError
        If ``n`` is not an integer or ``solution`` is not a pair of callables.
    ValueError
        If ``n < 1`` or ``solution`` returns non-finite or wrongly shaped values.

    References
    ----------
    .. [1] R. J. LeVeque, "Finite Difference Methods for Ordinary and Partial
       Differential Equations", SIAM, 2007, Chapter 3.
    """
    n = check_positive_int(n, "n")
    u, f = _default_or(solution, (_u_3d, _minus_laplacian_u_3d))
    return _vertex_system("poisson3d", n, 3, _laplacian_stencils(n, 3), 0.0, u, f, {"n": n})


def helmholtz(n: int, k: float, *, solution: tuple[Field, Field] | None = None) -> LinearSystem:
    """Five-point Helmholtz problem ``-Δu - k²u = f`` on the unit square.

    ``A = L - k² I`` with ``L`` the matrix of :func:`poisson2d`, symmetric with
    eigenvalues ``λ_ij - k²``, where ``λ_ij = (4/h²)(sin²(iπh/2) + sin²(jπh/2))``.
    ``A`` is indefinite exactly when ``λ_11 < k² < λ_nn``. Because
    ``λ_11 = (8/h²) sin²(πh/2)`` increases to ``2π²`` as ``h → 0``, every
    ``k > π√2`` gives an indefinite matrix on every grid fine enough that
    ``k² < λ_nn = (8/h²) cos²(πh/2)`` (about ``kh < 2``); a ``k`` slightly below
    ``π√2`` is indefinite on coarse grids only, and ``k² < λ_11`` is positive
    definite. Resolving the waves needs ``kh`` well below 1 (about ten nodes per
    wavelength, ``kh <= 0.6``); the error is then ``O(h²)`` with a constant that
    grows with ``k`` (pollution).

    Parameters
    ----------
    n : int
        Interior nodes per dimension, ``>= 1``; ``h = 1/(n+1)``.
    k : float
        Wavenumber, finite and ``>= 0``.
    solution : (callable, callable), optional
        ``(u, f)`` with ``f = -Δu - k²u``. The default is the :func:`poisson2d`
        solution ``u = e^x sin(πy) + x²y + cos(2x + y)``.

    Returns
    -------
    LinearSystem
        ``name="helmholtz"``, ``grid_shape=(n, n)``, ``params={"n": n, "k": k}``.

    Raises
    ------
    TypeError
        If ``n`` is not an integer, ``k`` not a real number, or ``solution`` not a
        pair of callables.
    ValueError
        If ``n < 1``, ``k`` is negative or not finite, ``k²`` lies within a relative
        ``1e-10`` of a discrete eigenvalue ``λ_ij`` (the matrix is singular), or
        ``solution`` returns non-finite or wrongly shaped values.

    References
    ----------
    .. [1] O. G. Ernst, M. J. Gander, "Why it is difficult to solve Helmholtz
       problems with classical iterative methods", in Numerical Analysis of
       Multiscale Problems, Springer, 2012, pp. 325-363.
    """
    n = check_positive_int(n, "n")
    k = check_tolerance(k, "k")
    if solution is None:

        def f(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            return _minus_laplacian_u_2d(x, y) - k**2 * _u_2d(x, y)

        u: Field = _u_2d
    else:
        u, f = _check_solution(solution)
    _check_not_eigenvalue(n, k)
    stencils = _laplacian_stencils(n, 2)
    return _vertex_system("helmholtz", n, 2, stencils, -(k**2), u, f, {"n": n, "k": k})


def convection_diffusion(
    n: int,
    peclet: float,
    *,
    angle: float = math.pi / 6,
    scheme: str = "central",
    solution: tuple[Field, Field] | None = None,
) -> LinearSystem:
    """Five-point convection-diffusion problem ``-Δu + Pe (w·∇u) = f``, unit square.

    The wind is ``w = (cos angle, sin angle)``. Diffusion uses the 5-point Laplacian;
    convection uses either central differences ``Pe w_x (u_E - u_W)/(2h)`` (second
    order; an M-matrix, hence free of spurious oscillations, only while the cell
    Péclet number ``Pe h max|w_i| / 2 <= 1``) or first-order upwind differences
    ``Pe w_x (u_P - u_W)/h`` for ``w_x >= 0`` (mirrored for ``w_x < 0``; an M-matrix
    for every ``Pe``, but with ``O(h)`` error and artificial diffusion ``Pe h/2``).
    ``A`` is nonsymmetric for ``Pe > 0`` and equals :func:`poisson2d`'s at ``Pe = 0``.

    Parameters
    ----------
    n : int
        Interior nodes per dimension, ``>= 1``; ``h = 1/(n+1)``.
    peclet : float
        Péclet number ``Pe``, finite and ``>= 0``.
    angle : float, default π/6
        Wind direction in radians, measured from the ``x`` axis.
    scheme : {"central", "upwind"}, default "central"
        Differencing of the convection term.
    solution : (callable, callable), optional
        ``(u, f)`` with ``f = -Δu + Pe (w·∇u)``. The default is the :func:`poisson2d`
        solution ``u = e^x sin(πy) + x²y + cos(2x + y)``.

    Returns
    -------
    LinearSystem
        ``name="convection_diffusion"``, ``grid_shape=(n, n)``,
        ``params={"n", "peclet", "angle", "scheme"}``.

    Raises
    ------
    TypeError
        If ``n`` is not an integer, ``peclet`` or ``angle`` not a real number, or
        ``solution`` not a pair of callables.
    ValueError
        If ``n < 1``, ``peclet`` is negative or not finite, ``angle`` is not finite,
        ``scheme`` is not ``"central"`` or ``"upwind"``, or ``solution`` returns
        non-finite or wrongly shaped values.

    References
    ----------
    .. [1] H. C. Elman, D. J. Silvester, A. J. Wathen, "Finite Elements and Fast
       Iterative Solvers", 2nd ed., Oxford University Press, 2014, Chapter 6.
    """
    n = check_positive_int(n, "n")
    peclet = check_tolerance(peclet, "peclet")
    if isinstance(angle, bool) or not isinstance(angle, numbers.Real):
        raise TypeError(f"angle must be a real number, got {type(angle).__name__}")
    angle = float(angle)
    if not math.isfinite(angle):
        raise ValueError(f"angle must be finite, got {angle}")
    if not isinstance(scheme, str) or scheme not in _SCHEMES:
        raise ValueError(f"scheme must be one of {_SCHEMES}, got {scheme!r}")
    wind = (math.cos(angle), math.sin(angle))
    if solution is None:

        def f(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            ux, uy = _grad_u_2d(x, y)
            return _minus_laplacian_u_2d(x, y) + peclet * (wind[0] * ux + wind[1] * uy)

        u: Field = _u_2d
    else:
        u, f = _check_solution(solution)

    h = 1.0 / (n + 1)
    stencils = []
    for (lo, mid, hi), component in zip(_laplacian_stencils(n, 2), wind, strict=True):
        c = peclet * component
        if scheme == "central":
            stencils.append((lo - c / (2 * h), mid, hi + c / (2 * h)))
        elif c >= 0:
            stencils.append((lo - c / h, mid + c / h, hi))
        else:
            stencils.append((lo, mid - c / h, hi + c / h))
    params = {"n": n, "peclet": peclet, "angle": angle, "scheme": scheme}
    return _vertex_system("convection_diffusion", n, 2, stencils, 0.0, u, f, params)


def heat_step(
    n: int,
    dt: float,
    *,
    u_prev: np.ndarray | None = None,
    source: float | np.ndarray | Field | None = None,
    rng: int | np.random.Generator | None = None,
    solution: tuple[Field, Field] | None = None,
) -> LinearSystem:
    """One implicit-Euler step of the heat equation ``u_t - Δu = f`` on the unit square.

    The system is ``(I + dt L) u_new = u_prev + dt f`` with ``L`` the 5-point
    ``-Δ`` of :func:`poisson2d`; ``A`` is symmetric positive definite with
    eigenvalues in ``(1, 1 + 8 dt/h²)``. Without ``solution`` the boundary values
    are zero. Drawing ``u_prev`` from ``rng`` gives a family of related systems
    sharing one matrix.

    With ``solution=(u, f)``, ``f = -Δu`` (so ``u`` is a steady state of the forced
    heat equation), the step starts from ``u_prev = u`` with source ``f`` and
    boundary values ``u``: the exact solution of the spatially continuous step is
    ``u`` itself, so ``max|x - x_exact|`` measures the spatial error alone, which
    is ``O(h²)``.

    Parameters
    ----------
    n : int
        Interior nodes per dimension, ``>= 1``; ``h = 1/(n+1)``.
    dt : float
        Time step, finite and ``> 0``.
    u_prev : numpy.ndarray, optional
        Previous state at the interior nodes, float, shape ``(n, n)`` or ``(n*n,)``.
        ``None`` draws ``gaussian_random_field((n, n), rng=rng)`` (``alpha = 2.5``,
        ``tau = 7``) as nodal values.
    source : float, numpy.ndarray or callable, optional
        Source ``f``: a constant, values at the nodes (shape ``(n, n)`` or
        ``(n*n,)``), or a callable ``f(x, y)``. ``None`` means ``f = 0``.
    rng : int, numpy.random.Generator or None
        Seed or generator for the random ``u_prev``; unused otherwise.
    solution : (callable, callable), optional
        ``(u, f)`` with ``f = -Δu``, for convergence tests; excludes ``u_prev`` and
        ``source``.

    Returns
    -------
    LinearSystem
        ``name="heat_step"``, ``grid_shape=(n, n)``, ``params={"n": n, "dt": dt,
        "u_prev": ...}`` with the ``(n, n)`` previous state actually used.
        ``x_exact`` is ``None`` without ``solution``.

    Raises
    ------
    TypeError
        If ``n`` is not an integer, ``dt`` not a real number, ``u_prev`` or
        ``source`` of an unsupported type or dtype, ``rng`` not a seed or
        generator, or ``solution`` not a pair of callables.
    ValueError
        If ``n < 1``, ``dt`` is not finite and positive, ``u_prev`` or ``source``
        has the wrong shape or non-finite values, or ``solution`` is combined with
        ``u_prev`` or ``source``.

    References
    ----------
    .. [1] R. J. LeVeque, "Finite Difference Methods for Ordinary and Partial
       Differential Equations", SIAM, 2007, Chapter 9.
    """
    n = check_positive_int(n, "n")
    dt = check_positive_real(dt, "dt")
    h = 1.0 / (n + 1)
    nodes = _grid([_interior_nodes(n)] * 2)
    stencils = [(dt * lo, dt * mid, dt * hi) for lo, mid, hi in _laplacian_stencils(n, 2)]
    if solution is not None:
        if u_prev is not None or source is not None:
            raise ValueError("solution cannot be combined with u_prev or source")
        u, f = _check_solution(solution)
        previous = _sample(u, nodes, "solution")
        forcing = _sample(f, nodes, "solution")
        b = previous + dt * forcing + _dirichlet_lift(u, n, stencils)
        x_exact: np.ndarray | None = previous.ravel()
    else:
        if u_prev is not None and not isinstance(u_prev, np.ndarray):
            raise TypeError(f"u_prev must be a numpy array or None, got {type(u_prev).__name__}")
        forcing = np.zeros((n, n)) if source is None else _grid_values(source, "source", nodes)
        gen = as_generator(rng)
        if u_prev is None:
            previous = gaussian_random_field((n, n), rng=gen)
        else:
            previous = _grid_values(u_prev, "u_prev", nodes)
        b = previous + dt * forcing
        x_exact = None
    A = _stencil_matrix(n, stencils, 1.0)
    params = {"n": n, "dt": dt, "u_prev": previous}
    return LinearSystem(A, b.ravel(), x_exact, "heat_step", (n, n), h, params)


def darcy(
    n: int,
    *,
    coefficient: float | np.ndarray | Field | None = None,
    rhs: float | np.ndarray | Field | None = None,
    rng: int | np.random.Generator | None = None,
    alpha: float = 2.5,
    tau: float = 7.0,
    solution: tuple[Field, Field] | None = None,
) -> LinearSystem:
    """Cell-centred finite-volume Darcy problem ``-∇·(a ∇u) = f`` on the unit square.

    ``n x n`` cells of width ``h = 1/n``. The flux through the face between cells
    ``P`` and ``E`` is ``a_PE (u_P - u_E)/h`` with the harmonic mean
    ``a_PE = 2 a_P a_E / (a_P + a_E)``; on a boundary face with Dirichlet value
    ``g`` it is ``a_P (u_P - g)/(h/2)``. Dividing by the cell area gives a symmetric
    positive definite M-matrix (its two off-diagonal entries per face are the same
    number, so ``A == A.T`` exactly). For smooth ``a`` and ``u`` the error is
    ``O(h²)`` in the max norm. The harmonic mean keeps the flux continuous across
    jumps in ``a``, as in the high-contrast fields ``a = exp(GRF)`` of operator-
    learning data sets.

    Parameters
    ----------
    n : int
        Cells per dimension, ``>= 1``; ``N = n²`` unknowns.
    coefficient : float, numpy.ndarray, callable or None
        Permeability ``a``, positive and finite: a constant, cell values of shape
        ``(n, n)`` or ``(n*n,)``, or a callable ``a(x, y)`` evaluated at the cell
        centres. ``None`` draws ``a = exp(gaussian_random_field((n, n), alpha=alpha,
        tau=tau, rng=rng))``.
    rhs : float, numpy.ndarray, callable or None
        Source ``f``: a constant, cell values, or a callable ``f(x, y)`` evaluated at
        the cell centres. ``None`` means ``f = 1``. Must be ``None`` with
        ``solution``.
    rng : int, numpy.random.Generator or None
        Seed or generator for the random coefficient; unused otherwise. Passing one
        generator to successive calls draws a sequence of related systems.
    alpha, tau : float
        Smoothness and inverse length scale of the random field (see
        :func:`solvers.fields.gaussian_random_field`), finite and ``> 0``.
    solution : (callable, callable), optional
        ``(u, f)`` with ``f = -∇·(a ∇u)``; needs ``coefficient`` to be a constant or
        a callable (the continuous ``f`` depends on ``a`` between the cell centres).
        The boundary values are then ``u`` and ``x_exact`` is ``u`` at the cell
        centres; without it they are zero and ``x_exact`` is ``None``.

    Returns
    -------
    LinearSystem
        ``name="darcy"``, ``grid_shape=(n, n)``, ``h = 1/n``, ``params`` with ``n``,
        ``alpha``, ``tau`` and ``coefficient``, the ``(n, n)`` cell values used.

    Raises
    ------
    TypeError
        If ``n`` is not an integer, ``coefficient`` or ``rhs`` is of an unsupported
        type or dtype, ``alpha`` or ``tau`` not a real number, ``rng`` not a seed or
        generator, or ``solution`` not a pair of callables.
    ValueError
        If ``n < 1``, ``coefficient`` is not positive and finite or has the wrong
        shape, ``rhs`` has the wrong shape or non-finite values, ``alpha`` or
        ``tau`` is not finite and positive, or ``solution`` is given with a
        coefficient array, with no coefficient, or with ``rhs``.

    References
    ----------
    .. [1] R. Eymard, T. Gallouët, R. Herbin, "Finite volume methods", Handbook of
       Numerical Analysis VII, 2000, pp. 713-1020.
    .. [2] Z. Li et al., "Fourier neural operator for parametric partial
       differential equations", ICLR 2021.
    .. [3] H. Wang et al., "Accelerating data generation for neural operators via
       Krylov subspace recycling", ICLR 2024.
    """
    n = check_positive_int(n, "n")
    alpha = check_positive_real(alpha, "alpha")
    tau = check_positive_real(tau, "tau")
    h = 1.0 / n
    centres = _grid([(np.arange(n) + 0.5) * h] * 2)
    if solution is not None:
        u, f = _check_solution(solution)
        if rhs is not None:
            raise ValueError("rhs must be None when solution is given (f comes from solution)")
        if coefficient is None or isinstance(coefficient, np.ndarray):
            raise ValueError(
                "solution needs coefficient to be a number or a callable a(x, y), "
                f"got {type(coefficient).__name__}"
            )
    if solution is None:
        forcing = np.ones((n, n)) if rhs is None else _grid_values(rhs, "rhs", centres)
    else:
        forcing = _sample(f, centres, "solution")
    if coefficient is None:
        a = np.exp(gaussian_random_field((n, n), alpha=alpha, tau=tau, rng=as_generator(rng)))
    else:
        a = _grid_values(coefficient, "coefficient", centres)
        if not (a > 0).all():
            raise ValueError("coefficient must be positive")

    # Face transmissibilities divided by the cell area h²: tx[i, j] is the face
    # below cell (i, j) along x (tx[n] the one above the last cell), ty likewise
    # along y. Boundary faces see a_P across the half-cell distance h/2.
    tx = np.empty((n + 1, n))
    tx[1:-1] = 2 * a[:-1] * a[1:] / (a[:-1] + a[1:])
    tx[0], tx[-1] = 2 * a[0], 2 * a[-1]
    ty = np.empty((n, n + 1))
    ty[:, 1:-1] = 2 * a[:, :-1] * a[:, 1:] / (a[:, :-1] + a[:, 1:])
    ty[:, 0], ty[:, -1] = 2 * a[:, 0], 2 * a[:, -1]
    tx /= h * h
    ty /= h * h

    diagonal = (tx[:-1] + tx[1:] + ty[:, :-1] + ty[:, 1:]).ravel()
    along_x = -tx[1:-1].ravel()
    # Neighbours along y are one index apart except across row ends, where the
    # band must hold zeros.
    along_y = np.zeros((n, n))
    along_y[:, :-1] = -ty[:, 1:-1]
    along_y = along_y.ravel()[:-1]
    # With n = 1 the bands are empty and offsets ±1 and ±n coincide, which
    # diags_array rejects, so empty bands are left out.
    bands = [(along_x, -n), (along_y, -1), (diagonal, 0), (along_y, 1), (along_x, n)]
    bands = [(values, offset) for values, offset in bands if values.size]
    A = sp.diags_array(
        [values for values, _ in bands],
        offsets=[offset for _, offset in bands],
        shape=(n * n, n * n),
    )

    b = forcing
    x_exact: np.ndarray | None = None
    if solution is not None:
        b = b + _face_lift(u, n, tx, ty)
        x_exact = _sample(u, centres, "solution").ravel()
    params = {"n": n, "alpha": alpha, "tau": tau, "coefficient": a}
    return LinearSystem(_canonical(A), b.ravel(), x_exact, "darcy", (n, n), h, params)


# ---------------------------------------------------------------------------
# Assembly helpers.


def _interior_nodes(n: int) -> np.ndarray:
    return np.arange(1, n + 1) / (n + 1)


def _grid(axes: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
    # Dense rather than sparse meshgrid: user callables may assume full-shape inputs.
    return tuple(np.meshgrid(*axes, indexing="ij"))


def _laplacian_stencils(n: int, d: int) -> list[Stencil]:
    h2 = float((n + 1) ** 2)
    return [(-h2, 2.0 * h2, -h2)] * d


def _stencil_matrix(n: int, stencils: Sequence[Stencil], shift: float) -> sp.csr_array:
    """Kronecker sum of constant 3-point stencils, one per axis, plus ``shift * I``."""
    d = len(stencils)
    eye = sp.eye_array(n, format="csr")
    A = shift * sp.eye_array(n**d, format="csr")
    for axis, (lo, mid, hi) in enumerate(stencils):
        band = sp.diags_array(
            [np.full(n - 1, lo), np.full(n, mid), np.full(n - 1, hi)],
            offsets=[-1, 0, 1],
            shape=(n, n),
        )
        factors = [eye] * d
        factors[axis] = band
        A = A + functools.reduce(lambda P, Q: sp.kron(P, Q, format="csr"), factors)
    return _canonical(A)


def _canonical(A: Any) -> sp.csr_array:
    A = sp.csr_array(A, dtype=np.float64)
    # Bands hold explicit zeros (Darcy's y band at row ends) and stencil weights can
    # cancel exactly (central convection at cell Péclet number 1); CSR should not
    # store them.
    A.eliminate_zeros()
    A.sum_duplicates()
    return A


def _dirichlet_lift(u: Field, n: int, stencils: Sequence[Stencil]) -> np.ndarray:
    """Boundary terms of a vertex-centred stencil: minus its weights on ``u`` there."""
    d = len(stencils)
    lift = np.zeros((n,) * d)
    nodes = _interior_nodes(n)
    for axis, (lo, _, hi) in enumerate(stencils):
        for side, weight, layer in ((0.0, lo, slice(0, 1)), (1.0, hi, slice(-1, None))):
            axes = [nodes] * d
            axes[axis] = np.array([side])
            index = [slice(None)] * d
            index[axis] = layer
            lift[tuple(index)] -= weight * _sample(u, _grid(axes), "solution")
    return lift


def _face_lift(u: Field, n: int, tx: np.ndarray, ty: np.ndarray) -> np.ndarray:
    """Boundary terms of the cell-centred scheme: boundary transmissibility times ``u``."""
    centres = (np.arange(n) + 0.5) / n
    lift = np.zeros((n, n))
    for side, layer in ((0.0, slice(0, 1)), (1.0, slice(-1, None))):
        wall = np.array([side])
        lift[layer, :] += tx[layer, :] * _sample(u, _grid([wall, centres]), "solution")
        lift[:, layer] += ty[:, layer] * _sample(u, _grid([centres, wall]), "solution")
    return lift


def _vertex_system(
    name: str,
    n: int,
    d: int,
    stencils: Sequence[Stencil],
    shift: float,
    u: Field,
    f: Field,
    params: dict[str, Any],
) -> LinearSystem:
    nodes = _grid([_interior_nodes(n)] * d)
    b = _sample(f, nodes, "solution") + _dirichlet_lift(u, n, stencils)
    x_exact = _sample(u, nodes, "solution").ravel()
    A = _stencil_matrix(n, stencils, shift)
    return LinearSystem(A, b.ravel(), x_exact, name, (n,) * d, 1.0 / (n + 1), params)


def _check_not_eigenvalue(n: int, k: float) -> None:
    """Raise if ``k²`` is (relatively) within 1e-10 of an eigenvalue of the Laplacian."""
    h = 1.0 / (n + 1)
    k2 = k * k
    mu = (4 / h**2) * np.sin(np.arange(1, n + 1) * np.pi * h / 2) ** 2
    # λ_ij = μ_i + μ_j with μ ascending: for each i only the two μ_j bracketing
    # k² - μ_i can be nearest, which avoids forming all n² eigenvalues.
    right = np.searchsorted(mu, k2 - mu)
    candidates = mu[np.clip(np.stack([right - 1, right]), 0, n - 1)] + mu
    close = np.abs(candidates - k2) <= 1e-10 * candidates
    if close.any():
        lam = float(candidates[close][0])
        raise ValueError(
            f"k**2 = {k2!r} is within a relative 1e-10 of the discrete Dirichlet "
            f"eigenvalue {lam!r} for n = {n}: the Helmholtz matrix is singular"
        )


# ---------------------------------------------------------------------------
# Input checks.


def _default_or(
    solution: tuple[Field, Field] | None, default: tuple[Field, Field]
) -> tuple[Field, Field]:
    return default if solution is None else _check_solution(solution)


def _check_solution(solution: Any) -> tuple[Field, Field]:
    if not (isinstance(solution, tuple) and len(solution) == 2 and all(map(callable, solution))):
        raise TypeError(f"solution must be a pair (u, f) of callables, got {solution!r}")
    return solution


def _sample(func: Field, coords: tuple[np.ndarray, ...], name: str) -> np.ndarray:
    """Evaluate a user callable on the grid as a fresh, finite float64 array."""
    values = np.asarray(func(*coords))
    if values.dtype.kind not in "iuf":
        raise TypeError(f"{name} must return real numbers, got dtype {values.dtype}")
    shape = coords[0].shape
    try:
        values = np.broadcast_to(values, shape)
    except ValueError:
        raise ValueError(
            f"{name} returned shape {values.shape}, not broadcastable to the grid {shape}"
        ) from None
    if not np.isfinite(values).all():
        raise ValueError(f"{name} returned NaN or Inf")
    return values.astype(np.float64)


def _grid_values(value: Any, name: str, coords: tuple[np.ndarray, ...]) -> np.ndarray:
    """Turn a constant, array or callable into a fresh float64 array on the grid."""
    shape = coords[0].shape
    if callable(value):
        return _sample(value, coords, name)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value}")
        return np.full(shape, float(value))
    if not isinstance(value, np.ndarray):
        raise TypeError(
            f"{name} must be a number, a numpy array or a callable, got {type(value).__name__}"
        )
    if not np.issubdtype(value.dtype, np.floating):
        raise TypeError(f"{name} must have a real floating-point dtype, got {value.dtype}")
    size = math.prod(shape)
    if value.shape not in (shape, (size,)):
        raise ValueError(f"{name} must have shape {shape} or {(size,)}, got {value.shape}")
    if not np.isfinite(value).all():
        raise ValueError(f"{name} contains NaN or Inf")
    return value.reshape(shape).astype(np.float64)
