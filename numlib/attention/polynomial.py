"""Polynomial approximations of ``exp`` on ``[-B, B]`` and their separable feature maps.

A polynomial ``p(x) = sum_k a_k x^k`` of a logit ``x = <q, u>`` expands over monomials,
``<q, u>^k = sum_{|alpha| = k} k!/alpha! q^alpha u^alpha``, so
``p(<q, u>) = sum_{|alpha| <= g} c_alpha q^alpha u^alpha`` with
``c_alpha = a_|alpha| |alpha|! / alpha!``. For tensor attention ``u = k1 ∘ k2`` and
``u^alpha = k1^alpha k2^alpha``, so with features ``phi(q)_alpha = s_alpha q^alpha`` and
``psi(k)_alpha = t_alpha k^alpha`` (``s_alpha t_alpha^m = c_alpha``, ``m`` key factors),

    ``p(<q, k1 ∘ k2>) = <phi(q), psi(k1) ∘ psi(k2)>``.

The coefficient is split evenly, ``|c_alpha|^(1/(m+1))`` per side with its sign on the
query side, so no factor carries all of ``1/alpha!`` alone. Feature size is the number
of monomials of degree ``<= g`` in ``d`` variables, ``C(g + d, d)``.

Two polynomials (Alman & Song, ICLR 2024, use the Taylor one):

``taylor``
    ``a_k = 1/k!``. Lagrange remainder: relative error per weight
    ``|p(x) - e^x| / e^x <= e^B B^(g+1) / (g+1)!`` for ``|x| <= B``.
``chebyshev``
    Interpolant of ``e^x`` at the ``g + 1`` Chebyshev points of ``[-B, B]``. Interpolation
    remainder with ``max |prod (x - x_i)| = 2 (B/2)^(g+1)``: relative error per weight
    ``<= 2 e^(2B) (B/2)^(g+1) / (g+1)!``, smaller than Taylor's by ``2^g / e^B``, so a
    lower degree (and a much smaller feature size) reaches the same tolerance.

If every weight has relative error ``<= delta < 1``, the normalised output
``sum w~ v / sum w~`` differs from the exact one by
``sum w eps (v - out~) / sum w~``, so entrywise
``|out~ - out| <= delta / (1 - delta) * max_pairs |v - out~| <= 2 delta / (1 - delta) * ||V||_max``,
where ``||V||_max`` is the largest entry of the value rows (``V1 ⊘ V2`` for tensor
attention). That is the a-priori bound :func:`output_error_bound` returns.
"""

from __future__ import annotations

import math
from functools import lru_cache
from types import ModuleType
from typing import Any

import numpy as np

from numlib.validate import check_tolerance

__all__ = [
    "BASES",
    "exp_polynomial",
    "feature_scales",
    "feature_size",
    "monomial_features",
    "output_error_bound",
    "weight_error_bound",
]

BASES = ("taylor", "chebyshev")

# The Chebyshev interpolant is built for x / B in [-1, 1] and rescaled by B^-k; below
# this width the scale factors only add overflow risk while the bound is already tiny.
_MIN_WIDTH = 1e-3


def _check_basis(basis: str) -> None:
    if basis not in BASES:
        raise ValueError(f"basis must be one of {BASES}, got {basis!r}")


def _check_degree(degree: int) -> int:
    if isinstance(degree, bool) or not isinstance(degree, int | np.integer):
        raise TypeError(f"degree must be an integer, got {type(degree).__name__}")
    if degree < 0:
        raise ValueError(f"degree must be >= 0, got {degree}")
    return int(degree)


def _check_bound(bound: float) -> float:
    # A NaN or negative bound used to give a bound of 0.0 ("exact"): refuse it.
    return check_tolerance(bound, "bound")


def exp_polynomial(bound: float, degree: int, basis: str = "taylor") -> np.ndarray:
    """Monomial coefficients ``a_0..a_g`` of the degree-``g`` approximation of ``exp``.

    Parameters
    ----------
    bound : float
        Half-width ``B >= 0`` of the interval ``[-B, B]`` the logits lie in (used by
        ``chebyshev`` only).
    degree : int
        Polynomial degree ``g >= 0``.
    basis : {"taylor", "chebyshev"}
        See the module docstring.

    Returns
    -------
    numpy.ndarray, shape (degree + 1,)
        ``a_k``, lowest degree first.

    Raises
    ------
    TypeError
        If ``bound`` is not a real number or ``degree`` not an integer.
    ValueError
        If ``bound`` is NaN, infinite or negative, ``degree < 0``, or ``basis`` is unknown.

    Examples
    --------
    >>> from numlib.attention.polynomial import exp_polynomial
    >>> exp_polynomial(1.0, 3).tolist() == [1.0, 1.0, 0.5, 1 / 6]
    True
    """
    bound = _check_bound(bound)
    _check_basis(basis)
    degree = _check_degree(degree)
    if basis == "taylor":
        return np.array([1.0 / math.factorial(k) for k in range(degree + 1)])
    width = max(bound, _MIN_WIDTH)
    cheb = np.polynomial.chebyshev.chebinterpolate(lambda y: np.exp(width * y), degree)
    mono = np.polynomial.chebyshev.cheb2poly(cheb)
    mono = np.pad(mono, (0, degree + 1 - mono.size))
    return mono / width ** np.arange(degree + 1)


def weight_error_bound(bound: float, degree: int, basis: str = "taylor") -> float:
    """A-priori bound on ``|p(x) - e^x| / e^x`` over ``|x| <= bound`` (see module docstring).

    Raises
    ------
    TypeError, ValueError
        As :func:`exp_polynomial`: ``bound`` must be a finite real number ``>= 0``.
    """
    b = _check_bound(bound)
    _check_basis(basis)
    degree = _check_degree(degree)
    if basis == "taylor":
        log = b + (degree + 1) * math.log(b) - math.lgamma(degree + 2) if b > 0 else -math.inf
    else:
        w = max(b, _MIN_WIDTH)
        log = math.log(2.0) + 2 * w + (degree + 1) * math.log(w / 2) - math.lgamma(degree + 2)
    return math.exp(log) if log < 700 else math.inf


def output_error_bound(bound: float, degree: int, basis: str = "taylor") -> float:
    """A-priori bound on ``max |out_fast - out_exact| / ||V||_max``; ``inf`` if not < 1 per weight.

    Parameters
    ----------
    bound : float
        Logit bound ``B``: every ``|<q_i, k_j>|`` (matrix) or ``|<q_i, k1_j ∘ k2_l>|``
        (tensor) is at most ``B``.
    degree : int
        Polynomial degree.
    basis : {"taylor", "chebyshev"}
        Polynomial.

    Returns
    -------
    float
        ``2 delta / (1 - delta)`` with ``delta`` the :func:`weight_error_bound`, or
        ``inf`` when ``delta >= 1`` (weights may then be <= 0 and nothing is guaranteed).

    Raises
    ------
    TypeError, ValueError
        As :func:`exp_polynomial`: ``bound`` must be a finite real number ``>= 0``.
    """
    delta = weight_error_bound(bound, degree, basis)
    return 2 * delta / (1 - delta) if delta < 1 else math.inf


def feature_size(d: int, degree: int) -> int:
    """Return ``C(degree + d, d)``, the number of monomials of degree <= ``degree``."""
    return math.comb(_check_degree(degree) + d, d)


@lru_cache(maxsize=64)
def _monomial_tree(d: int, degree: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Per degree ``k >= 1``: (parent index in level k-1, variable) of each monomial.

    Monomials are nondecreasing variable sequences ``t_1 <= ... <= t_k``; a level-k
    monomial extends a level-(k-1) one by a variable ``>= its last``, so each
    monomial appears once.
    """
    levels = []
    last = np.zeros(1, dtype=np.intp)  # the constant monomial may be extended by any variable
    for _ in range(degree):
        parents = np.concatenate([np.full(d - t, i) for i, t in enumerate(last)])
        variables = np.concatenate([np.arange(t, d) for t in last])
        levels.append((parents.astype(np.intp), variables.astype(np.intp)))
        last = variables
    return tuple(levels)


@lru_cache(maxsize=64)
def _log_multinomial(d: int, degree: int) -> tuple[np.ndarray, np.ndarray]:
    """Per monomial: total degree ``|alpha|`` and ``log(|alpha|! / alpha!)``."""
    counts = [np.zeros((1, d), dtype=np.int64)]
    for parents, variables in _monomial_tree(d, degree):
        nxt = counts[-1][parents].copy()
        nxt[np.arange(parents.size), variables] += 1
        counts.append(nxt)
    alpha = np.concatenate(counts)
    total = alpha.sum(axis=1)
    lgam = np.vectorize(math.lgamma)
    log_multi = lgam(total + 1.0) - lgam(alpha + 1.0).sum(axis=1)
    return total, log_multi


def feature_scales(coefficients: np.ndarray, d: int, factors: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-monomial scales ``(s, t)`` of the query and each key feature map.

    ``s_alpha t_alpha^factors = c_alpha = a_|alpha| |alpha|!/alpha!`` with
    ``|s_alpha| = t_alpha = |c_alpha|^(1/(factors+1))`` and the sign on ``s``.
    """
    degree = coefficients.size - 1
    total, log_multi = _log_multinomial(d, degree)
    a = coefficients[total]
    with np.errstate(divide="ignore"):
        log_c = np.log(np.abs(a)) + log_multi
    t = np.exp(log_c / (factors + 1))
    return np.sign(a) * t, t


def monomial_features(xp: ModuleType, X: Any, degree: int, scales: Any) -> Any:
    """All monomials ``X^alpha`` of degree ``<= degree`` of each row, times ``scales``.

    Parameters
    ----------
    xp : module
        Array namespace of ``X``.
    X : array, shape (..., n, d)
        Rows.
    degree : int
        Largest total degree.
    scales : array, shape (C(degree + d, d),)
        Per-monomial factors, in the order of the monomial tree (by degree).

    Returns
    -------
    array, shape (..., n, C(degree + d, d))
        ``n * C(degree + d, d)`` multiplications, one per entry; differentiable in
        ``X`` under torch autograd (no in-place updates).
    """
    # Built as (..., r, n), each monomial a contiguous row: gathering rows copies
    # contiguous blocks, where gathering columns of (n, r) would stride through memory.
    # The result is returned as a transposed view, which BLAS consumes without a copy.
    XT = xp.matrix_transpose(X)
    kw = {} if xp is np else {"device": X.device}
    level = xp.ones((*XT.shape[:-2], 1, XT.shape[-1]), dtype=X.dtype, **kw)
    levels = [level]
    for parents, variables in _monomial_tree(X.shape[-1], degree):
        pidx = xp.asarray(parents, **kw)
        vidx = xp.asarray(variables, **kw)
        level = xp.take(level, pidx, axis=-2) * xp.take(XT, vidx, axis=-2)
        levels.append(level)
    feats = xp.concat(levels, axis=-2) if len(levels) > 1 else level
    return xp.matrix_transpose(feats * scales[:, None])
