"""Near-linear-time softmax and tensor attention through polynomial feature maps.

Alman & Song ("How to Capture Higher-order Correlations? Generalizing Matrix Softmax
Attention to Kronecker Computation", ICLR 2024, arXiv:2310.04064; and "Fast Attention
Requires Bounded Entries", NeurIPS 2023, for the matrix case): when every logit is at
most ``B`` in absolute value, ``exp`` is replaced by a polynomial ``p`` of degree ``g``
whose separable form ``p(<q, k1 ∘ k2>) = <phi(q), psi(k1) ∘ psi(k2)>``
(:mod:`numlib.attention.polynomial`) turns the ``n x n^2`` attention matrix into
``Phi(Q) (Psi(K1) ⊘ Psi(K2))^T``. The identity
``(Psi(K1) ⊘ Psi(K2))^T (V1 ⊘ V2) = (Psi(K1)^T V1) ∘ (Psi(K2)^T V2)`` then gives the
output as ``Phi(Q) [(Psi(K1)^T V1) ∘ (Psi(K2)^T V2)]``, normalised by the same product
with ``V = 1``: ``O(n r d_v)`` time for ``r = C(g + d, d)`` features, no ``n^2``-row
object ever formed. The matrix case is the same with one key factor.

The degree comes from an a-priori bound (:func:`plan_attention`): ``B`` is computed
from the inputs, never trusted from the caller, and ``tol=`` picks the smallest degree
whose bound meets it. Above the range where that is possible at a feature size
``<= max_features`` (the paper's hardness regime, ``B = Omega(cuberoot(log n))``),
the call raises ``ValueError`` or, with ``fallback=True``, computes exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from numlib.attention._inputs import (
    DEFAULT_TILE,
    check_attention_inputs,
    check_block,
    over_batch,
)
from numlib.attention.exact import softmax_attention, tensor_attention
from numlib.attention.polynomial import (
    BASES,
    exp_polynomial,
    feature_scales,
    feature_size,
    monomial_features,
    output_error_bound,
    weight_error_bound,
)
from numlib.validate import check_positive_int, check_tolerance

__all__ = [
    "DEFAULT_MAX_FEATURES",
    "AttentionPlan",
    "fast_softmax_attention",
    "fast_tensor_attention",
    "logit_bound",
    "plan_attention",
]

# 2**15 features keep one query chunk's feature block and the r x (d_v + 1) key
# summaries small (tens of MiB) while allowing degree 8 at d = 8 (12870 features).
DEFAULT_MAX_FEATURES = 2**15


@dataclass(frozen=True)
class AttentionPlan:
    """Degree and a-priori error of a fast attention call.

    Attributes
    ----------
    exact : bool
        True when the call falls back to exact attention (``fallback=True`` and no
        admissible degree).
    degree : int
        Polynomial degree ``g`` (-1 when ``exact``).
    basis : str
        ``"taylor"`` or ``"chebyshev"``.
    logit_bound : float
        ``B``, an upper bound on every ``|logit|``, computed from the inputs.
    weight_error : float
        Bound on the relative error of every attention weight.
    error_bound : float
        Bound on ``max |out_fast - out_exact| / ||V||_max`` (``||V||_max``: largest
        absolute entry of the value rows, ``V1 ⊘ V2`` for tensor attention); 0 when
        ``exact``.
    feature_size : int
        ``r = C(g + d, d)`` (0 when ``exact``).
    """

    exact: bool
    degree: int
    basis: str
    logit_bound: float
    weight_error: float
    error_bound: float
    feature_size: int


def logit_bound(Q: Any, *keys: Any) -> float:
    """Upper bound on ``|<q_i, k1_j ∘ ... ∘ km_l>|`` over all rows (and batch entries).

    ``max_i sum_t |q_it| prod_f max_j |kf_jt|``: at most ``max_i ||q_i||_1 prod_f
    max ||kf_j||_inf`` and sharper when the large coordinates of queries and keys
    differ. ``O((n_q + sum n_f) d)``.

    Raises
    ------
    TypeError, ValueError
        As :func:`plan_attention` for ``Q`` and ``keys`` (at least one key array,
        same width ``d``, floating-point, finite).

    Examples
    --------
    >>> import numpy as np
    >>> from numlib.attention import logit_bound
    >>> Q = np.array([[1.0, -2.0]]); K = np.array([[0.5, 0.0], [0.0, 0.25]])
    >>> logit_bound(Q, K)
    1.0
    """
    xp, _ = _check_queries_keys(Q, keys)
    return _logit_bound(xp, Q, keys)


def _key_names(count: int) -> list[str]:
    return ["K"] if count == 1 else [f"K{i}" for i in range(1, count + 1)]


def _check_queries_keys(Q: Any, keys: tuple[Any, ...]) -> tuple[ModuleType, tuple[int, ...]]:
    """Check ``Q`` and the key arrays as the attention functions do (no values)."""
    named = list(zip(_key_names(len(keys)), keys, strict=True))
    return check_attention_inputs(("Q", Q), named, [])


def _logit_bound(xp: ModuleType, Q: Any, keys: tuple[Any, ...]) -> float:
    """:func:`logit_bound` on checked inputs."""
    # A bound, not part of any computation graph: torch inputs are detached.
    q, *ks = (a.detach() if hasattr(a, "detach") else a for a in (Q, *keys))
    d = q.shape[-1]
    weight = None
    for k in ks:
        col = xp.max(xp.reshape(xp.abs(k), (-1, d)), axis=0)
        weight = col if weight is None else weight * col
    rows = xp.reshape(xp.abs(q), (-1, d))
    return float(xp.max(rows @ weight))


def _output_error(bound: float, degree: int, basis: str) -> float:
    # Finite inputs can still overflow the bound to inf: then nothing is guaranteed.
    return output_error_bound(bound, degree, basis) if math.isfinite(bound) else math.inf


def _choose_degree(
    bound: float, d: int, tol: float, basis: str, max_features: int
) -> tuple[int | None, int, float]:
    """Smallest degree meeting ``tol``; else ``(None, best degree tried, its bound)``."""
    g = 0
    best = math.inf
    while feature_size(d, g) <= max_features:
        err = _output_error(bound, g, basis)
        if err <= tol:
            return g, g, err
        best = err
        g += 1
    return None, g - 1, best


def plan_attention(
    Q: Any,
    *keys: Any,
    degree: int | None = None,
    tol: float = 1e-6,
    basis: str = "chebyshev",
    max_features: int = DEFAULT_MAX_FEATURES,
    fallback: bool = False,
) -> AttentionPlan:
    """Choose the polynomial degree of a fast attention call from its inputs.

    Parameters
    ----------
    Q : array, shape (..., n_q, d)
        Queries.
    *keys : array, shape (..., n_f, d)
        One key array (softmax attention) or two (tensor attention).
    degree : int, optional
        Use this degree (``>= 0``) instead of choosing one from ``tol``.
    tol : float, optional
        Target for the a-priori bound on ``max |out_fast - out_exact| / ||V||_max``.
    basis : {"chebyshev", "taylor"}, optional
        Polynomial approximation of ``exp`` (:mod:`numlib.attention.polynomial`).
    max_features : int, optional
        Largest admissible feature size ``C(g + d, d)``.
    fallback : bool, optional
        When no admissible degree meets ``tol`` (or the given ``degree`` guarantees
        nothing), plan an exact computation instead of raising.

    Returns
    -------
    AttentionPlan

    Raises
    ------
    TypeError
        ``Q`` or a key array is not an array, has an integer, boolean or complex
        dtype, or they differ in library or dtype; a non-integer ``degree``.
    ValueError
        No key array; ``Q`` or a key array that is not at least 2-D, is empty or
        holds NaN/Inf; key widths or leading (batch) dimensions that differ from
        ``Q``'s; ``degree < 0``, ``tol <= 0``, an unknown ``basis``,
        ``max_features < 1``; and without ``fallback``: a ``degree`` whose feature
        size exceeds ``max_features`` or whose weight error bound is ``>= 1``, or a
        ``tol`` no admissible degree reaches at the computed logit bound.

    Examples
    --------
    >>> import numpy as np
    >>> from numlib.attention import plan_attention
    >>> Q = np.full((4, 8), 1 / 8); K = np.ones((4, 8))
    >>> p = plan_attention(Q, K, K, tol=1e-4)
    >>> p.logit_bound, p.degree, p.feature_size, p.error_bound <= 1e-4
    (1.0, 6, 3003, True)
    """
    xp, _ = _check_queries_keys(Q, keys)
    return _plan(
        xp,
        Q,
        keys,
        degree=degree,
        tol=tol,
        basis=basis,
        max_features=max_features,
        fallback=fallback,
    )


def _plan(
    xp: ModuleType,
    Q: Any,
    keys: tuple[Any, ...],
    *,
    degree: int | None,
    tol: float,
    basis: str,
    max_features: int,
    fallback: bool,
) -> AttentionPlan:
    """:func:`plan_attention` on arrays already checked by ``check_attention_inputs``."""
    if basis not in BASES:
        raise ValueError(f"basis must be one of {BASES}, got {basis!r}")
    if degree is not None:
        if isinstance(degree, bool) or not isinstance(degree, int | np.integer):
            raise TypeError(f"degree must be an integer or None, got {type(degree).__name__}")
        if degree < 0:
            raise ValueError(f"degree must be >= 0, got {degree}")
    tol = check_tolerance(tol, "tol")
    if tol == 0:
        raise ValueError("tol must be > 0 (the fast path is approximate; use the exact one)")
    max_features = check_positive_int(max_features, "max_features")
    d = int(Q.shape[-1])
    bound = _logit_bound(xp, Q, keys)
    exact = AttentionPlan(True, -1, basis, bound, 0.0, 0.0, 0)
    if degree is not None:
        r = feature_size(d, int(degree))
        err = _output_error(bound, int(degree), basis)
        problem = None
        if r > max_features:
            problem = f"degree {degree} needs {r} features > max_features = {max_features}"
        elif not math.isfinite(err):
            problem = (
                f"degree {degree} at logit bound B = {bound:.4g} has weight error bound >= 1 "
                "(weights may be non-positive)"
            )
        if problem is None:
            delta = weight_error_bound(bound, int(degree), basis)
            return AttentionPlan(False, int(degree), basis, bound, delta, err, r)
        if fallback:
            return exact
        raise ValueError(problem + "; lower the entries, raise the degree, or pass fallback=True")
    g, tried, best = _choose_degree(bound, d, tol, basis, max_features)
    if g is not None:
        delta = weight_error_bound(bound, g, basis)
        return AttentionPlan(False, g, basis, bound, delta, best, feature_size(d, g))
    if fallback:
        return exact
    raise ValueError(
        f"tol = {tol:g} is unreachable at logit bound B = {bound:.4g} (d = {d}): the largest "
        f"degree with feature size <= max_features = {max_features} is {tried}, whose "
        f"a-priori error bound is {best:.3g}; bounded entries (B = o(cuberoot(log n))) are "
        "needed for fast attention. Scale the inputs down, raise tol or max_features, or "
        "pass fallback=True for the exact computation"
    )


def _ones_column(xp: ModuleType, v: Any) -> Any:
    kw = {} if xp is np else {"device": v.device}
    return xp.concat([v, xp.ones((*v.shape[:-1], 1), dtype=v.dtype, **kw)], axis=-1)


def _fast_3d(
    xp: ModuleType,
    q: Any,
    keys: list[Any],
    values: list[Any],
    plan: AttentionPlan,
    causal: bool,
    tile: int,
) -> Any:
    """Fast attention of a batch of ``(n, d)`` problems with ``len(keys)`` key factors."""
    count, nq, d = q.shape
    coeffs = exp_polynomial(plan.logit_bound, plan.degree, plan.basis)
    s_np, t_np = feature_scales(coeffs, d, len(keys))
    kw = {} if xp is np else {"device": q.device}
    s = xp.asarray(s_np, dtype=q.dtype, **kw)
    t = xp.asarray(t_np, dtype=q.dtype, **kw)
    r = s_np.size
    aug = [_ones_column(xp, v) for v in values]  # last column: the normaliser D
    width = aug[0].shape[-1]
    tile = max(1, tile // count)
    if causal:
        out = _causal_contract(xp, q, keys, aug, plan.degree, s, t, max(1, tile // (r * width)))
    else:
        rows = max(1, tile // r)
        summary = None
        # Psi(K_f)^T [V_f, 1], accumulated over row chunks; their Hadamard product is
        # (Psi(K1) ⊘ Psi(K2))^T ([V1, 1] ⊘ [V2, 1]).
        for k, a in zip(keys, aug, strict=True):
            acc = 0
            for j0 in range(0, k.shape[1], rows):
                psi = monomial_features(xp, k[:, j0 : j0 + rows], plan.degree, t)
                acc = acc + xp.matrix_transpose(psi) @ a[:, j0 : j0 + rows]
            summary = acc if summary is None else summary * acc
        out = xp.concat(
            [
                monomial_features(xp, q[:, i0 : i0 + rows], plan.degree, s) @ summary
                for i0 in range(0, nq, rows)
            ],
            axis=1,
        )
    return out[..., : width - 1] / out[..., width - 1 :]


def _causal_contract(
    xp: ModuleType,
    q: Any,
    keys: list[Any],
    aug: list[Any],
    degree: int,
    s: Any,
    t: Any,
    rows: int,
) -> Any:
    """Row ``i``: ``phi(q_i) [prod_f sum_{j <= i} psi(kf_j) [vf_j, 1]^T]``, chunked.

    Prefix sums over one chunk of rows at a time plus a carried total of the earlier
    chunks, so memory is ``O(rows r d_v)`` per batch entry and time ``O(n r d_v)``.
    """
    carry: list[Any] = [0] * len(keys)
    out = []
    n = q.shape[1]
    for i0 in range(0, n, rows):
        i1 = min(n, i0 + rows)
        prod = None
        for f, (k, a) in enumerate(zip(keys, aug, strict=True)):
            psi = monomial_features(xp, k[:, i0:i1], degree, t)
            terms = psi[..., :, None] * a[:, i0:i1, None, :]
            prefix = xp.cumulative_sum(terms, axis=1) + carry[f]
            carry[f] = prefix[:, -1:]
            prod = prefix if prod is None else prod * prefix
        phi = monomial_features(xp, q[:, i0:i1], degree, s)
        out.append((phi[..., None, :] @ prod)[..., 0, :])
    return xp.concat(out, axis=1)


def fast_softmax_attention(
    Q: Any,
    K: Any,
    V: Any,
    *,
    degree: int | None = None,
    tol: float = 1e-6,
    basis: str = "chebyshev",
    causal: bool = False,
    max_features: int = DEFAULT_MAX_FEATURES,
    fallback: bool = False,
    block: int | None = None,
) -> Any:
    """Softmax attention ``D^-1 exp(Q K^T) V`` in ``O(n r d_v)`` time (bounded entries).

    The matrix case of Alman & Song (NeurIPS 2023): ``exp(Q K^T) ≈ Phi(Q) Psi(K)^T`` with
    a polynomial feature map, so the output is ``Phi(Q) (Psi(K)^T V)`` normalised by
    ``Phi(Q) (Psi(K)^T 1)``.

    Parameters
    ----------
    Q, K, V : array, shapes (..., n_q, d), (..., n_k, d), (..., n_k, d_v)
        As for :func:`numlib.attention.softmax_attention`.
    degree, tol, basis, max_features, fallback
        See :func:`plan_attention`; the logit bound is ``max_i sum_t |q_it| max_j |k_jt|``.
    causal : bool, optional
        Query ``i`` sees keys ``j <= i``, through chunked prefix sums of
        ``psi(k_j) [v_j, 1]^T`` (needs ``n_q == n_k``). General masks: exact path only.
    block : int, optional
        Elements of the largest temporary (default ``2**21``).

    Returns
    -------
    array, shape (..., n_q, d_v)
        Entrywise within ``plan.error_bound * max |V|`` of the exact output, where
        ``plan = plan_attention(Q, K, ...)``; a convex combination of the rows of ``V``
        whenever the bound is finite (all approximate weights are then positive).

    Raises
    ------
    TypeError, ValueError
        As for the exact function and :func:`plan_attention`, before any work.

    Examples
    --------
    >>> import numpy as np
    >>> from numlib.attention import fast_softmax_attention, softmax_attention
    >>> rng = np.random.default_rng(0)
    >>> Q, K = (rng.uniform(-0.3, 0.3, (200, 4)) for _ in range(2))
    >>> V = rng.standard_normal((200, 2))
    >>> out = fast_softmax_attention(Q, K, V, tol=1e-8)
    >>> bool(np.abs(out - softmax_attention(Q, K, V)).max() <= 1e-8 * np.abs(V).max())
    True
    """
    xp, batch = check_attention_inputs(("Q", Q), [("K", K)], [("V", V)])
    block = check_block(block)
    if causal and Q.shape[-2] != K.shape[-2]:
        raise ValueError(f"causal fast attention needs n_q == n_k, got {Q.shape}, {K.shape}")
    plan = _plan(
        xp,
        Q,
        (K,),
        degree=degree,
        tol=tol,
        basis=basis,
        max_features=max_features,
        fallback=fallback,
    )
    if plan.exact:
        return softmax_attention(Q, K, V, causal=causal, block=block)
    tile = block if block is not None else DEFAULT_TILE

    def kernel(q: Any, k: Any, v: Any) -> Any:
        return _fast_3d(xp, q, [k], [v], plan, causal, tile)

    return over_batch(xp, batch, kernel, (Q, K, V))


def fast_tensor_attention(
    Q: Any,
    K1: Any,
    K2: Any,
    V1: Any,
    V2: Any,
    *,
    degree: int | None = None,
    tol: float = 1e-6,
    basis: str = "chebyshev",
    causal: bool = False,
    max_features: int = DEFAULT_MAX_FEATURES,
    fallback: bool = False,
    block: int | None = None,
) -> Any:
    """Tensor attention ``D^-1 exp(Q (K1 ⊘ K2)^T)(V1 ⊘ V2)`` in ``O(n r d_v)`` time.

    Alman & Song (ICLR 2024), Theorem on bounded entries: with the polynomial feature
    maps of :mod:`numlib.attention.polynomial`,
    ``out = Phi(Q) [(Psi(K1)^T V1) ∘ (Psi(K2)^T V2)]``, row-normalised by
    ``Phi(Q) [(Psi(K1)^T 1) ∘ (Psi(K2)^T 1)]``; ``r = C(g + d, d)``.

    Parameters
    ----------
    Q, K1, K2, V1, V2 : array
        As for :func:`numlib.attention.tensor_attention`.
    degree, tol, basis, max_features, fallback
        See :func:`plan_attention`; the logit bound is
        ``max_i sum_t |q_it| max_j |k1_jt| max_l |k2_lt|``.
    causal : bool, optional
        Query ``i`` sees pairs ``j, l <= i``: row ``i`` contracts ``phi(q_i)`` with the
        Hadamard product of the prefix sums ``sum_{j<=i} psi(k1_j) [v1_j, 1]^T`` and
        ``sum_{l<=i} psi(k2_l) [v2_l, 1]^T``, chunked (needs ``n_q == n_1 == n_2``).
        General masks: exact path only.
    block : int, optional
        Elements of the largest temporary (default ``2**21``).

    Returns
    -------
    array, shape (..., n_q, d_v)
        Entrywise within ``plan.error_bound * ||V1 ⊘ V2||_max`` of the exact output
        (``plan = plan_attention(Q, K1, K2, ...)``).

    Raises
    ------
    TypeError, ValueError
        As for the exact function and :func:`plan_attention`, before any work.

    Examples
    --------
    >>> import numpy as np
    >>> from numlib.attention import fast_tensor_attention, tensor_attention
    >>> rng = np.random.default_rng(0)
    >>> Q, K1, K2 = (rng.uniform(-0.5, 0.5, (64, 4)) for _ in range(3))
    >>> V1, V2 = (rng.standard_normal((64, 3)) for _ in range(2))
    >>> out = fast_tensor_attention(Q, K1, K2, V1, V2, tol=1e-6)
    >>> err = np.abs(out - tensor_attention(Q, K1, K2, V1, V2)).max()
    >>> bool(err <= 1e-6 * (np.abs(V1).max() * np.abs(V2).max()))
    True
    """
    xp, batch = check_attention_inputs(("Q", Q), [("K1", K1), ("K2", K2)], [("V1", V1), ("V2", V2)])
    block = check_block(block)
    if causal and not Q.shape[-2] == K1.shape[-2] == K2.shape[-2]:
        raise ValueError(
            f"causal fast attention needs n_q == n_1 == n_2, got {Q.shape}, {K1.shape}, {K2.shape}"
        )
    plan = _plan(
        xp,
        Q,
        (K1, K2),
        degree=degree,
        tol=tol,
        basis=basis,
        max_features=max_features,
        fallback=fallback,
    )
    if plan.exact:
        return tensor_attention(Q, K1, K2, V1, V2, causal=causal, block=block)
    tile = block if block is not None else DEFAULT_TILE

    def kernel(q: Any, k1: Any, k2: Any, v1: Any, v2: Any) -> Any:
        return _fast_3d(xp, q, [k1, k2], [v1, v2], plan, causal, tile)

    return over_batch(xp, batch, kernel, (Q, K1, K2, V1, V2))
