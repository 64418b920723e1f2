import itertools
import math

import numpy as np
import pytest
import scipy.fft
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from solvers import ordering
from solvers.fields import gaussian_random_field
from solvers.hilbert import hilbert_index
from solvers.ordering import (
    curve_order,
    greedy_order,
    order_systems,
    parameter_features,
    path_length,
)

SMALL = settings(max_examples=30, deadline=None)


# ------------------------------------------------------------------ strategies


@st.composite
def point_sets(draw, grid_values: bool = False, max_n: int = 30, max_d: int = 5):
    """(N, d) float arrays, N >= 1, d >= 1; grid values make exact ties likely."""
    n = draw(st.integers(1, max_n))
    d = draw(st.integers(1, max_d))
    if grid_values:
        # Multiples of 1/8 in [-2, 2]: every squared distance is exact in float64,
        # so ties (and duplicates) are real ties for any summation order.
        elements = st.integers(-16, 16).map(lambda k: k / 8.0)
    else:
        elements = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
    return draw(hnp.arrays(np.float64, (n, d), elements=elements))


# ------------------------------------------------------------------ references


def brute_force_greedy(x, start):
    """Greedy nearest neighbour with the full distance matrix; ties to the lowest index."""
    n = x.shape[0]
    dist = ((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=-1)
    visited = np.zeros(n, dtype=bool)
    order = [start]
    visited[start] = True
    for _ in range(n - 1):
        row = np.where(visited, np.inf, dist[order[-1]])
        nxt = int(np.argmin(row))  # argmin returns the first (lowest) index of ties
        order.append(nxt)
        visited[nxt] = True
    return np.array(order)


def xy2d(n, x, y):
    """Wikipedia's iterative Hilbert curve index of (x, y) on an n x n grid."""
    d = 0
    s = n // 2
    while s > 0:
        rx = int((x & s) > 0)
        ry = int((y & s) > 0)
        d += s * s * ((3 * rx) ^ ry)
        if ry == 0:
            if rx == 1:
                x = n - 1 - x
                y = n - 1 - y
            x, y = y, x
        s //= 2
    return d


def all_cells(d, bits):
    side = 1 << bits
    return np.array(list(itertools.product(range(side), repeat=d)), dtype=np.int64)


def pairwise(x):
    flat = x.reshape(x.shape[0], -1)
    return np.sqrt(((flat[:, None, :] - flat[None, :, :]) ** 2).sum(axis=-1))


def is_permutation(order, n):
    return (
        isinstance(order, np.ndarray)
        and order.dtype == np.int64
        and order.shape == (n,)
        and np.array_equal(np.sort(order), np.arange(n))
    )


def smooth_curve(n, rng):
    """n points on a smooth random closed curve in R^3, in random order."""
    t = rng.uniform(0, 1, n)
    k = np.arange(1, 4)
    a = rng.standard_normal((3, 3)) / k
    b = rng.standard_normal((3, 3)) / k
    phase = 2 * np.pi * np.outer(t, k)
    return np.cos(phase) @ a.T + np.sin(phase) @ b.T


# ------------------------------------------------------------------ permutations


@SMALL
@given(x=st.one_of(point_sets(), point_sets(grid_values=True)), data=st.data())
def test_every_ordering_is_a_permutation(x, data):
    n = x.shape[0]
    before = x.copy()
    start = data.draw(st.integers(0, n - 1))
    for order in (
        greedy_order(x, start=start),
        curve_order(x),
        curve_order(x, bits=1),
        order_systems(x, "greedy", start=start),
        order_systems(x, "curve"),
        order_systems(x, "none"),
    ):
        assert is_permutation(order, n)
    assert greedy_order(x, start=start)[0] == start
    assert np.array_equal(x, before)


def test_single_point_and_one_dimension():
    one = np.array([[3.0, -1.0]])
    assert np.array_equal(greedy_order(one), [0])
    assert np.array_equal(curve_order(one), [0])
    assert path_length(one, np.array([0])) == 0.0
    line = np.array([[4.0], [0.0], [2.0], [1.0], [3.0]])
    assert np.array_equal(greedy_order(line, start=1), [1, 3, 2, 4, 0])
    assert np.array_equal(curve_order(line), [1, 3, 2, 4, 0])


def test_all_duplicates():
    x = np.ones((7, 3))
    assert np.array_equal(greedy_order(x, start=4), [4, 0, 1, 2, 3, 5, 6])
    assert np.array_equal(curve_order(x), np.arange(7))


# ------------------------------------------------------------------ greedy


@SMALL
@given(x=point_sets(grid_values=True), data=st.data())
def test_greedy_matches_brute_force_with_ties(x, data):
    start = data.draw(st.integers(0, x.shape[0] - 1))
    assert np.array_equal(greedy_order(x, start=start), brute_force_greedy(x, start))


@pytest.mark.parametrize(("n", "d", "seed"), [(200, 1, 0), (300, 3, 1), (250, 8, 2), (120, 40, 3)])
def test_greedy_matches_brute_force_continuous(n, d, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) * rng.uniform(0.1, 10.0, d) + 5.0
    start = int(rng.integers(n))
    assert np.array_equal(greedy_order(x, start=start), brute_force_greedy(x, start))


def test_greedy_tight_cluster_among_far_points():
    # A tight cluster plus far outliers: the screening product |y|^2 - 2 y.y_c has
    # rounding errors ~eps * 1e12, far above the cluster's squared spacings ~1e-8,
    # so only the exact recheck of candidates can recover the brute-force choice.
    rng = np.random.default_rng(5)
    cluster = 1e8 + 1e-4 * rng.standard_normal((120, 4))
    far = 1e8 + 1e6 * rng.standard_normal((10, 4))
    x = np.concatenate([cluster, far])[rng.permutation(130)]
    assert np.array_equal(greedy_order(x, start=7), brute_force_greedy(x, 7))


def test_scale_invariance_and_no_overflow():
    x = np.random.default_rng(6).standard_normal((60, 3))
    huge = x * 2.0**1000
    assert np.array_equal(greedy_order(huge), greedy_order(x))
    assert np.array_equal(curve_order(huge), curve_order(x))
    order = greedy_order(x)
    assert path_length(huge, order) == pytest.approx(2.0**1000 * path_length(x, order))


def test_float32_and_readonly_input():
    x = np.random.default_rng(7).standard_normal((40, 3)).astype(np.float32)
    x.setflags(write=False)
    assert np.array_equal(greedy_order(x), brute_force_greedy(x.astype(np.float64), 0))
    assert is_permutation(curve_order(x), 40)


# ------------------------------------------------------------------ Hilbert index


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 5])
def test_hilbert_2d_matches_wikipedia_xy2d(bits):
    cells = all_cells(2, bits)
    expected = [xy2d(1 << bits, int(x), int(y)) for x, y in cells]
    assert np.array_equal(hilbert_index(cells, bits), expected)


@pytest.mark.parametrize(("d", "bits"), [(1, 5), (2, 1), (2, 2), (2, 3), (2, 4), (3, 1), (3, 2),
                                         (3, 3), (4, 2), (5, 2)])  # fmt: skip
def test_hilbert_visits_every_cell_once_with_unit_steps(d, bits):
    cells = all_cells(d, bits)
    before = cells.copy()
    index = hilbert_index(cells, bits)
    assert np.array_equal(cells, before)
    assert index.dtype == np.int64
    assert np.array_equal(np.sort(index), np.arange(1 << (d * bits)))
    path = cells[np.argsort(index)]
    assert np.array_equal(path[0], np.zeros(d))
    assert (np.abs(np.diff(path, axis=0)).sum(axis=1) == 1).all()


def test_hilbert_one_dimension_is_identity_and_max_bits():
    x = np.array([[0], [5], [2**62 - 1]], dtype=np.int64)
    assert np.array_equal(hilbert_index(x, 62), x[:, 0])
    corner = np.full((1, 2), 2**31 - 1, dtype=np.int64)
    assert 0 <= hilbert_index(corner, 31)[0] < 2**62


# ------------------------------------------------------------------ quality


def test_orderings_shorten_a_smooth_curve():
    rng = np.random.default_rng(11)
    x = smooth_curve(1500, rng)
    random_length = path_length(x, rng.permutation(len(x)))
    for method in ("greedy", "curve"):
        assert path_length(x, order_systems(x, method)) < 0.3 * random_length


def test_orderings_shorten_clustered_high_dimensional_data():
    # 16-D features: curve_order reduces them to 8 principal axes first.
    rng = np.random.default_rng(12)
    centres = 10.0 * rng.standard_normal((20, 16))
    x = (centres[:, None, :] + 0.3 * rng.standard_normal((20, 40, 16))).reshape(-1, 16)
    x = x[rng.permutation(len(x))]
    random_length = path_length(x, rng.permutation(len(x)))
    assert path_length(x, greedy_order(x)) < 0.3 * random_length
    assert path_length(x, curve_order(x)) < 0.3 * random_length
    few = x[:5]  # fewer points than dimensions: PCA rank < 8, padded
    assert is_permutation(curve_order(few), 5)


def test_curve_order_is_stable_within_a_cell():
    x = np.array([[0.0, 0.0], [0.1, 0.1], [1.0, 1.0], [0.05, 0.0]])
    assert np.array_equal(curve_order(x, bits=1), [0, 1, 3, 2])


# ------------------------------------------------------------------ path length


@SMALL
@given(x=point_sets(), data=st.data())
def test_path_length_matches_direct_sum(x, data):
    order = np.array(data.draw(st.permutations(range(x.shape[0]))), dtype=np.int64)
    # math.dist scales internally, so tiny or huge coordinates neither underflow nor
    # overflow in the reference either.
    expected = math.fsum(math.dist(x[a], x[b]) for a, b in itertools.pairwise(order))
    assert path_length(x, order) == pytest.approx(expected, rel=1e-12)


# ------------------------------------------------------------------ features


def test_features_are_the_low_dct_modes():
    rng = np.random.default_rng(20)
    fields = rng.standard_normal((4, 9, 7))
    feats = parameter_features(fields, modes=5)
    expected = scipy.fft.dctn(fields, type=2, norm="ortho", axes=(1, 2))[:, :5, :5]
    np.testing.assert_allclose(feats, expected.reshape(4, -1), atol=1e-12)
    cube = rng.standard_normal((3, 4, 6, 5))
    feats = parameter_features(cube, modes=4)
    expected = scipy.fft.dctn(cube, type=2, norm="ortho", axes=(1, 2, 3))[:, :4, :4, :4]
    np.testing.assert_allclose(feats, expected.reshape(3, -1), atol=1e-12)


@pytest.mark.parametrize(("shape", "modes"), [((6, 8, 8), 8), ((5, 7, 9), None), ((4, 3, 4, 5), 5),
                                              ((7, 11), None)])  # fmt: skip
def test_parseval_all_modes_keep_frobenius_distances(shape, modes):
    fields = np.random.default_rng(21).standard_normal(shape)
    feats = parameter_features(fields, modes=modes)
    np.testing.assert_allclose(pairwise(feats), pairwise(fields), rtol=1e-10, atol=1e-10)


@SMALL
@given(
    fields=hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=6),
        elements=st.floats(-100, 100),
    ),
    modes=st.integers(1, 6),
    use_pca=st.booleans(),
)
def test_features_never_exceed_frobenius_distances(fields, modes, use_pca):
    before = fields.copy()
    n_features = int(np.prod([min(modes, s) for s in fields.shape[1:]]))
    components = min(3, n_features) if use_pca else None
    feats = parameter_features(fields, modes=modes, components=components)
    assert np.array_equal(fields, before)
    assert feats.shape == (fields.shape[0], components or n_features)
    assert (pairwise(feats) <= pairwise(fields) * (1 + 1e-9) + 1e-9).all()


def test_identical_fields_identical_features():
    rng = np.random.default_rng(22)
    base = rng.standard_normal((3, 10, 10))
    fields = np.concatenate([base, base[:1], base])
    for components in (None, 4):
        feats = parameter_features(fields, modes=4, components=components)
        # Equal up to rounding: a BLAS may treat the rows of one product differently
        # (edge kernels), so bit equality is not guaranteed on every machine.
        tol = 1e-13 * np.abs(feats).max()
        np.testing.assert_allclose(feats[0], feats[3], rtol=0, atol=tol)
        np.testing.assert_allclose(feats[:3], feats[4:], rtol=0, atol=tol)


def test_pca_dims_and_distances():
    rng = np.random.default_rng(23)
    fields = rng.standard_normal((12, 8, 8))
    fourier = parameter_features(fields, modes=4)
    assert parameter_features(fields, modes=4, components=7).shape == (12, 7)
    # Projecting on all N-1 directions the centred data span keeps every distance.
    full = parameter_features(fields, modes=4, components=11)
    np.testing.assert_allclose(pairwise(full), pairwise(fourier), rtol=1e-10)
    # More components than the data span: extra columns are zero.
    padded = parameter_features(fields, modes=4, components=16)
    assert padded.shape == (12, 16)
    np.testing.assert_allclose(padded[:, 11:], 0.0, atol=1e-10)
    np.testing.assert_allclose(pairwise(padded), pairwise(fourier), rtol=1e-10)
    # Variance decreases along the components; the scores are centred.
    var = full.var(axis=0)
    assert (np.diff(var) <= 1e-12).all()
    np.testing.assert_allclose(full.mean(axis=0), 0.0, atol=1e-12)


def test_pca_sign_convention_is_deterministic():
    fields = np.random.default_rng(24).standard_normal((15, 6, 6))
    a = parameter_features(fields, modes=4, components=5)
    np.testing.assert_array_equal(a, parameter_features(fields.copy(), modes=4, components=5))
    # Negating the data negates the principal scores: the axes themselves are fixed by
    # the sign convention, not by the sign the SVD happened to return.
    np.testing.assert_allclose(parameter_features(-fields, modes=4, components=5), -a, atol=1e-10)


def test_randomized_pca_path(monkeypatch):
    rng = np.random.default_rng(25)
    # Fields of effective rank 6 plus tiny noise, so 4 components are well separated.
    basis = rng.standard_normal((6, 10, 10))
    weights = rng.standard_normal((60, 6)) * np.array([10.0, 8.0, 6.0, 4.0, 0.1, 0.05])
    fields = np.tensordot(weights, basis, axes=1) + 1e-6 * rng.standard_normal((60, 10, 10))
    exact = parameter_features(fields, modes=None, components=4)
    monkeypatch.setattr(ordering, "_EXACT_PCA_LIMIT", 8)
    approx = parameter_features(fields, modes=None, components=4, rng=3)
    again = parameter_features(fields, modes=None, components=4, rng=3)
    np.testing.assert_array_equal(approx, again)
    np.testing.assert_allclose(approx, exact, rtol=1e-6, atol=1e-6 * np.abs(exact).max())
    assert (pairwise(approx) <= pairwise(fields) * (1 + 1e-9)).all()


def test_low_modes_carry_most_of_a_darcy_coefficient_difference():
    s = 48
    fields = np.stack(
        [np.exp(gaussian_random_field((s, s), alpha=2.5, tau=7.0, rng=i)) for i in range(8)]
    )
    feats = parameter_features(fields, modes=12)
    off = ~np.eye(8, dtype=bool)
    ratio = pairwise(feats)[off] / pairwise(fields)[off]
    assert ratio.min() > 0.98


def test_plain_parameter_vectors():
    params = np.random.default_rng(26).uniform(size=(20, 5))
    feats = parameter_features(params, modes=None)
    assert feats.shape == (20, 5)
    np.testing.assert_allclose(pairwise(feats), pairwise(params), rtol=1e-12)
    assert np.array_equal(greedy_order(feats), brute_force_greedy(params, 0))


# ------------------------------------------------------------------ dispatch


def test_order_systems_dispatch():
    x = np.random.default_rng(30).standard_normal((50, 3))
    assert np.array_equal(order_systems(x), greedy_order(x))
    assert np.array_equal(order_systems(x, "greedy", start=9), greedy_order(x, start=9))
    assert np.array_equal(order_systems(x, "curve", bits=5), curve_order(x, bits=5))
    assert np.array_equal(order_systems(x, "none"), np.arange(50))


# ------------------------------------------------------------------ bad input

X = np.zeros((4, 2))


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: greedy_order([[0.0, 1.0]]), TypeError, "features must be a numpy"),
        (lambda: greedy_order(np.zeros((3, 2), dtype=int)), TypeError, "features .* floating"),
        (lambda: greedy_order(np.zeros((3, 2), dtype=complex)), TypeError, "features"),
        (lambda: greedy_order(np.zeros(3)), ValueError, "features must be 2-D"),
        (lambda: greedy_order(np.zeros((0, 2))), ValueError, "features must have at least one row"),
        (lambda: greedy_order(np.zeros((3, 0))), ValueError, "features must have at least one col"),
        (lambda: greedy_order(np.array([[0.0], [np.nan]])), ValueError, "features contains NaN"),
        (lambda: curve_order(np.array([[np.inf, 0.0]])), ValueError, "features contains NaN"),
        (lambda: greedy_order(X, start=4), ValueError, "start must be in"),
        (lambda: greedy_order(X, start=-1), ValueError, "start must be in"),
        (lambda: greedy_order(X, start=1.0), TypeError, "start must be an integer"),
        (lambda: greedy_order(X, start=True), TypeError, "start must be an integer"),
        (lambda: curve_order(X, bits=0), ValueError, "bits must be in"),
        (lambda: curve_order(X, bits=32), ValueError, r"bits must be in \[1, 31\]"),
        (lambda: curve_order(np.zeros((3, 20)), bits=8), ValueError, r"bits must be in \[1, 7\]"),
        (lambda: curve_order(X, bits=2.0), TypeError, "bits must be an integer"),
        (lambda: order_systems(X, "sorted"), ValueError, "method must be one of"),
        (lambda: order_systems(X, "greedy", bits=3), ValueError, "bits applies only"),
        (lambda: order_systems(X, "none", start=9), ValueError, "start must be in"),
        (lambda: path_length(X, [0, 1]), TypeError, "order must be an integer"),
        (lambda: path_length(X, np.array([0.0, 1.0])), TypeError, "order must be an integer"),
        (lambda: path_length(X, np.array([], dtype=int)), ValueError, "order must be a non-empty"),
        (lambda: path_length(X, np.array([[0, 1]])), ValueError, "order must be a non-empty 1-D"),
        (lambda: path_length(X, np.array([0, 4])), ValueError, "order entries"),
        (lambda: hilbert_index(np.zeros((2, 2)), 3), TypeError, "coords must have an integer"),
        (lambda: hilbert_index(np.array([[0, 8]]), 3), ValueError, "coords entries"),
        (lambda: hilbert_index(np.array([[0, -1]]), 3), ValueError, "coords entries"),
        (lambda: hilbert_index(np.zeros((2, 3), dtype=int), 21), ValueError, "bits must be in"),
        (lambda: hilbert_index(np.zeros(3, dtype=int), 2), ValueError, "coords must be 2-D"),
        (lambda: parameter_features(np.zeros(5)), ValueError, "fields must have shape"),
        (lambda: parameter_features(np.zeros((0, 4))), ValueError, "fields must not have an empty"),
        (lambda: parameter_features(np.zeros((3, 4), dtype=int)), TypeError, "fields .* floating"),
        (lambda: parameter_features([[0.0]]), TypeError, "fields must be a numpy"),
        (lambda: parameter_features(np.full((2, 3), np.nan)), ValueError, "fields contains NaN"),
        (lambda: parameter_features(np.zeros((2, 3)), modes=0), ValueError, "modes must be >= 1"),
        (lambda: parameter_features(np.zeros((2, 3)), modes=2.5), TypeError, "modes must be an"),
        (
            lambda: parameter_features(np.zeros((2, 8, 8)), modes=2, components=5),
            ValueError,
            "components must be <= the number of DCT features 4",
        ),
        (
            lambda: parameter_features(np.zeros((2, 3)), components=0),
            ValueError,
            "components must be >= 1",
        ),
        (lambda: parameter_features(np.zeros((2, 3)), rng="seed"), TypeError, "rng must be"),
    ],
)
def test_bad_input_raises_naming_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
