"""Vertex-centred finite differences: Poisson, Helmholtz, convection-diffusion, heat."""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from numlib.validate import as_generator, check_positive_int, check_positive_real, check_tolerance
from solvers.fields import gaussian_random_field
from solvers.problems.system import (
    Field,
    LinearSystem,
    _canonical,
    _check_solution,
    _default_or,
    _grid,
    _grid_values,
    _interior_nodes,
    _sample,
)

__all__ = ["convection_diffusion", "heat_step", "helmholtz", "poisson2d", "poisson3d"]

Stencil = tuple[float, float, float]

_SCHEMES = ("central", "upwind")


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
