"""Cell-centred finite-volume Darcy flow with a random log-normal permeability."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from numlib.validate import as_generator, check_positive_int, check_positive_real
from solvers.fields import gaussian_random_field
from solvers.problems.system import (
    Field,
    LinearSystem,
    _canonical,
    _check_solution,
    _grid,
    _grid_values,
    _sample,
)

__all__ = ["darcy", "darcy_skr"]


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
        If ``n < 1``, ``coefficient`` is not positive and finite, has the wrong
        shape or has values so large or small (outside about ``[1e-154, 1e154]``
        for ``n > 1``) that the face transmissibilities overflow or underflow in
        float64, ``rhs`` has the wrong shape or non-finite values, ``alpha`` or
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
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):  # checked below
        products = a[:-1] * a[1:], a[:, :-1] * a[:, 1:]
        tx = np.empty((n + 1, n))
        tx[1:-1] = 2 * products[0] / (a[:-1] + a[1:])
        tx[0], tx[-1] = 2 * a[0], 2 * a[-1]
        ty = np.empty((n, n + 1))
        ty[:, 1:-1] = 2 * products[1] / (a[:, :-1] + a[:, 1:])
        ty[:, 0], ty[:, -1] = 2 * a[:, 0], 2 * a[:, -1]
        tx /= h * h
        ty /= h * h
        diagonal = (tx[:-1] + tx[1:] + ty[:, :-1] + ty[:, 1:]).ravel()
    # Outside float64's normal range the matrix would hold Inf/NaN (a_P a_E or
    # a / h² overflowing) or harmonic means rounded through subnormal products.
    tiny = np.finfo(np.float64).tiny
    normal = a.min() >= tiny and all(p.min(initial=tiny) >= tiny for p in products)
    if not (normal and np.isfinite(diagonal).all()):
        raise ValueError(
            f"coefficient values in [{a.min():.3g}, {a.max():.3g}] are out of range for "
            f"n = {n}: the face transmissibilities 2 a_P a_E / ((a_P + a_E) h²) overflow "
            "or underflow in float64"
        )
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


def _face_lift(u: Field, n: int, tx: np.ndarray, ty: np.ndarray) -> np.ndarray:
    """Boundary terms of the cell-centred scheme: boundary transmissibility times ``u``."""
    centres = (np.arange(n) + 0.5) / n
    lift = np.zeros((n, n))
    for side, layer in ((0.0, slice(0, 1)), (1.0, slice(-1, None))):
        wall = np.array([side])
        lift[layer, :] += tx[layer, :] * _sample(u, _grid([wall, centres]), "solution")
        lift[:, layer] += ty[:, layer] * _sample(u, _grid([centres, wall]), "solution")
    return lift


def darcy_skr(
    n: int,
    *,
    rng: int | np.random.Generator | None = None,
    alpha: float = 2.5,
    tau: float = 7.0,
    reference_indexing: bool = False,
) -> LinearSystem:
    """Build the SKR reference code's "Darcy" system ``-Δ(a u) = 1`` as ``L diag(a)``.

    Kept only to reproduce the numbers of Wang et al. (ICLR 2024) on their own
    operator. It is *not* Darcy flow: ``-Δ(a u)`` is not ``-∇·(a ∇u)``, and
    ``L diag(a)`` (5-point Laplacian times the nodal coefficient) is nonsymmetric,
    with a condition number about the coefficient's contrast times the
    Laplacian's, which is why GMRES needs many more iterations on it than on
    :func:`darcy`. The reference code's extra defect, its diagonal ``-n`` read
    two entries early, is reproduced only with ``reference_indexing=True``.
    Interior nodes of an ``(n + 2)``-point grid,
    ``h = 1/(n + 1)``, ``a = exp(GRF)`` at the nodes with their periodic GRF
    (``boundary="periodic"``), zero Dirichlet data.

    Parameters
    ----------
    n : int
        Interior nodes per dimension (``n = s - 2`` for the paper's ``s``).
    rng : int, numpy.random.Generator or None
        Seed or generator for the coefficient.
    alpha, tau : float
        Random-field parameters (the paper's 2.5 and 7).
    reference_indexing : bool
        Build the matrix the reference code builds: entry ``(j + n, j)`` of the
        diagonal ``-n`` holds the coefficient of the node two places before ``j``
        in the flattened padded field (``coef[:-2, 1:-1].flatten()[s - 2:]``,
        which ``scipy.sparse.diags`` silently truncates), instead of ``j``'s own.
        The result is no longer ``L diag(a)`` and is indefinite: at ``n = 100``
        (seed 0) it has real eigenvalues from ``-0.028 / h^2`` up to
        ``-0.0009 / h^2``, where the correct operator's smallest is
        ``+0.0018 / h^2``, and GMRES(40) stagnates on it (relative residual
        1.3e-4 after 10,000 iterations, against 876 iterations to 1e-8 on the
        correct operator). This is the matrix behind the paper's Darcy figures.

    Returns
    -------
    LinearSystem
        ``name="darcy_skr"``, ``params`` with the nodal ``coefficient``.

    References
    ----------
    .. [1] H. Wang et al., "Accelerating data generation for neural operators via
       Krylov subspace recycling", ICLR 2024; reference code NO-DataGen-SKR.
    """
    n = check_positive_int(n, "n")
    alpha = check_positive_real(alpha, "alpha")
    tau = check_positive_real(tau, "tau")
    if not isinstance(reference_indexing, bool | np.bool_):
        kind = type(reference_indexing).__name__
        raise TypeError(f"reference_indexing must be a bool, got {kind}")
    # Their coefficient: the FNO periodic GRF on the full (n + 2)^2 node grid, of
    # which the interior nodes enter the matrix.
    field = gaussian_random_field(
        (n + 2, n + 2), alpha=alpha, tau=tau, rng=as_generator(rng), boundary="periodic"
    )
    padded = np.exp(field)
    a = padded[1:-1, 1:-1]
    h = 1.0 / (n + 1)
    second = sp.diags_array([-1.0, 2.0, -1.0], offsets=[-1, 0, 1], shape=(n, n)) / h**2
    eye = sp.eye_array(n)
    laplacian = sp.kron(second, eye) + sp.kron(eye, second)
    A = laplacian @ sp.diags_array(a.ravel())
    if reference_indexing and n > 1:
        read = padded[:-2, 1:-1].ravel()[n - 2 : n * n - 2]
        A = A + sp.diags_array((a.ravel()[:-n] - read) / h**2, offsets=-n, shape=A.shape)
    params = {
        "n": n,
        "alpha": alpha,
        "tau": tau,
        "coefficient": a,
        "reference_indexing": bool(reference_indexing),
    }
    return LinearSystem(_canonical(A), np.ones(n * n), None, "darcy_skr", (n, n), h, params)
