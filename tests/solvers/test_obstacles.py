"""Poisson problems with obstacles and closed walls against independent references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solvers.problems import poisson2d, poisson3d
from solvers.problems.obstacles import WALLS, poisson_obstacles, random_obstacles


def _reference_matrix(solid: np.ndarray, closed: set[str], h: float) -> np.ndarray:
    """Dense matrix assembled node by node from the face rules (no vectorisation)."""
    shape = solid.shape
    n = shape[0]
    index = {node: k for k, node in enumerate(itertools.product(range(n), repeat=solid.ndim))}
    A = np.zeros((len(index), len(index)))
    for node, k in index.items():
        if solid[node]:
            A[k, k] = 2 * solid.ndim / h**2
            continue
        for axis in range(solid.ndim):
            for step, side in ((-1, "-"), (1, "+")):
                neighbour = list(node)
                neighbour[axis] += step
                if not 0 <= neighbour[axis] < n:
                    if f"{'xyz'[axis]}{side}" not in closed:
                        A[k, k] += 1 / h**2
                    continue
                if solid[tuple(neighbour)]:
                    continue
                A[k, k] += 1 / h**2
                A[k, index[tuple(neighbour)]] -= 1 / h**2
    return A


def _reaches_open_wall(solid: np.ndarray, closed: set[str]) -> np.ndarray:
    """Fluid nodes connected to an open wall, by breadth-first search."""
    n, dim = solid.shape[0], solid.ndim
    seen = np.zeros_like(solid)
    frontier = []
    for node in itertools.product(range(n), repeat=dim):
        if solid[node]:
            continue
        for axis in range(dim):
            for layer, side in ((0, "-"), (n - 1, "+")):
                if node[axis] == layer and f"{'xyz'[axis]}{side}" not in closed:
                    seen[node] = True
        if seen[node]:
            frontier.append(node)
    while frontier:
        node = frontier.pop()
        for axis in range(dim):
            for step in (-1, 1):
                nb = list(node)
                nb[axis] += step
                nb = tuple(nb)
                if 0 <= nb[axis] < n and not solid[nb] and not seen[nb]:
                    seen[nb] = True
                    frontier.append(nb)
    return seen


@st.composite
def domains(draw):
    dim = draw(st.sampled_from([2, 3]))
    n = draw(st.integers(4, 9 if dim == 2 else 5))
    walls = WALLS[: 2 * dim]
    closed = draw(st.sets(st.sampled_from(walls), max_size=len(walls) - 1))
    seed = draw(st.integers(0, 2**32 - 1))
    density = draw(st.floats(0.0, 0.6))
    solid = np.random.default_rng(seed).random((n,) * dim) < density
    return dim, n, closed, solid


@settings(max_examples=30)
@given(domains())
def test_matrix_matches_nodewise_assembly_and_is_spd(domain):
    dim, n, closed, solid = domain
    if solid.all():
        return
    expected_fluid = _reaches_open_wall(solid, closed)
    if not expected_fluid.any():
        with pytest.raises(ValueError, match="solid covers"):
            poisson_obstacles(n, dim, solid=solid, neumann=sorted(closed), source=1.0)
        return
    system = poisson_obstacles(n, dim, solid=solid, neumann=sorted(closed), source=1.0)
    final = system.params["solid"]
    np.testing.assert_array_equal(~final, expected_fluid)
    A = system.A.toarray()
    reference = _reference_matrix(final, closed, system.h)
    np.testing.assert_allclose(A, reference, rtol=1e-14, atol=0)
    assert np.linalg.eigvalsh(A).min() > 0
    np.testing.assert_array_equal(system.b, np.where(final.ravel(), 0.0, 1.0))


@pytest.mark.parametrize(("dim", "n"), [(2, 9), (3, 5)])
def test_empty_domain_is_the_gallery_poisson_matrix(dim, n):
    system = poisson_obstacles(n, dim, obstacles=0)
    gallery = poisson2d(n) if dim == 2 else poisson3d(n)
    assert abs(system.A - gallery.A).max() <= 1e-15 * abs(gallery.A).max()
    assert not system.params["solid"].any()


def test_enclosed_fluid_becomes_solid():
    solid = np.zeros((9, 9), dtype=bool)
    solid[2:7, 2:7] = True
    solid[4, 4] = False  # a fluid pocket with no way to a wall
    system = poisson_obstacles(9, 2, solid=solid, source=1.0)
    assert system.params["solid"][4, 4]
    assert system.b[4 * 9 + 4] == 0.0
    assert not solid[4, 4]  # the caller's mask is not modified


def test_random_obstacles_are_reproducible():
    a = random_obstacles(24, 3, count=4, rng=7)
    b = random_obstacles(24, 3, count=4, rng=7)
    np.testing.assert_array_equal(a, b)
    assert 0 < a.sum() < a.size
    sa = poisson_obstacles(16, 2, rng=3)
    sb = poisson_obstacles(16, 2, rng=3)
    np.testing.assert_array_equal(sa.b, sb.b)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n": 3}, ValueError, "n must be >= 4"),
        ({"n": 8, "dim": 4}, ValueError, "dim must be 2 or 3"),
        ({"n": 8, "dim": 2.0}, TypeError, "dim must be an integer"),
        ({"n": 8, "neumann": ("x-", "x+", "y-", "y+")}, ValueError, "closes every wall"),
        ({"n": 8, "neumann": ("z-",)}, ValueError, "unknown wall"),
        ({"n": 8, "neumann": "x-"}, TypeError, "sequence of wall names"),
        ({"n": 8, "solid": np.zeros((8, 8))}, TypeError, "boolean numpy array"),
        ({"n": 8, "solid": np.zeros((8, 7), dtype=bool)}, ValueError, r"shape \(8, 8\)"),
        ({"n": 8, "solid": np.ones((8, 8), dtype=bool)}, ValueError, "solid covers"),
        ({"n": 8, "source": np.full((8, 8), np.nan)}, ValueError, "source contains NaN"),
    ],
)
def test_bad_input_is_rejected(kwargs, error, match):
    with pytest.raises(error, match=match):
        poisson_obstacles(**kwargs)
