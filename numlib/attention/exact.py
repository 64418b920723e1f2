"""Exact softmax attention and exact tensor (Kronecker) attention, blocked and stable.

Both are computed tile by tile with an online softmax: a running row maximum ``m``,
running sum ``s`` and running weighted value sum ``acc``; a new tile of logits ``L``
rescales the old state by ``exp(m_old - m_new)`` and adds ``exp(L - m_new)``. No
exponential ever sees a positive argument, so nothing overflows whatever the logits,
and the largest temporary is one tile, never the full ``n x n`` (matrix) or
``n x n^2`` (tensor) attention matrix.

Tensor attention (Alman & Song, "How to Capture Higher-order Correlations?
Generalizing Matrix Softmax Attention to Kronecker Computation", ICLR 2024,
arXiv:2310.04064) is ``D^-1 exp(Q (K1 ⊘ K2)^T) (V1 ⊘ V2)`` with ``⊘`` the column-wise
Kronecker (Khatri-Rao) product: row ``(j, l)`` of ``K1 ⊘ K2`` is ``k1_j ∘ k2_l``. For a
block of query rows ``Q_b`` and key rows ``j``, the logits of every pair ``(j, l)`` are
one GEMM, ``(Q_b ∘ k1_j) K2^T``, and the weighted values one more,
``sum_j v1_j ∘ (P_j V2)``.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from numlib.attention._inputs import (
    DEFAULT_TILE,
    check_attention_inputs,
    check_block,
    check_mask,
    in_place_ok,
    over_batch,
)

__all__ = ["softmax_attention", "tensor_attention"]

# Query rows per tile: enough rows for GEMM efficiency, few enough that a tile over
# 16384 keys still fits the default tile size.
_QUERY_ROWS = 64


class _OnlineSoftmax:
    """Running (max, sum, weighted sum) of a row-wise softmax over key tiles.

    State is per (batch, query row); a tile of logits has shape
    ``(batch, rows, keys...)``.
    """

    def __init__(self, xp: ModuleType, batch: int, rows: int, width: int, like: Any) -> None:
        self.xp = xp
        kw = _placement(xp, like)
        self.m = xp.full((batch, rows), -float("inf"), dtype=like.dtype, **kw)
        self.s = xp.zeros((batch, rows), dtype=like.dtype, **kw)
        self.acc = xp.zeros((batch, rows, width), dtype=like.dtype, **kw)

    def update(self, logits: Any) -> Any:
        """Fold in a tile of ``logits`` (``-inf`` = masked out); return its probabilities.

        The caller must then pass ``sum_k P[b, i, k...] v_k`` (shape
        ``(batch, rows, width)``) for the returned unnormalised probabilities ``P`` to
        :meth:`add`. ``logits`` is overwritten on numpy (it is a temporary).
        """
        xp = self.xp
        axes = tuple(range(2, logits.ndim))
        m_new = xp.maximum(self.m, xp.max(logits, axis=axes))
        # A row with no visible key so far keeps m = -inf; shift it by 0 instead so
        # that exp(-inf - (-inf)) never produces NaN.
        shift = xp.where(xp.isinf(m_new), xp.zeros_like(m_new), m_new)
        expand = (slice(None), slice(None)) + (None,) * (logits.ndim - 2)
        if in_place_ok(xp):
            logits -= shift[expand]
            p = xp.exp(logits, out=logits)
        else:
            p = xp.exp(logits - shift[expand])
        self._decay = xp.exp(self.m - shift)
        self.s = self.s * self._decay + xp.sum(p, axis=axes)
        self.m = m_new
        return p

    def add(self, weighted: Any) -> None:
        """Add the weighted values of the tile last passed to :meth:`update`."""
        self.acc = self.acc * self._decay[..., None] + weighted

    def result(self) -> Any:
        return self.acc / self.s[..., None]


def _placement(xp: ModuleType, like: Any) -> dict[str, Any]:
    """``device=`` keyword for creating arrays next to ``like`` (none for numpy)."""
    return {} if xp is np else {"device": like.device}


def _mask_logits(xp: ModuleType, logits: Any, allowed: Any) -> Any:
    neg_inf = xp.asarray(-float("inf"), dtype=logits.dtype, **_placement(xp, logits))
    return xp.where(allowed, logits, neg_inf)


def _arange(xp: ModuleType, start: int, stop: int, like: Any) -> Any:
    return xp.arange(start, stop, **_placement(xp, like))


def _causal(xp: ModuleType, i0: int, i1: int, j0: int, j1: int, like: Any) -> Any:
    """``(1, i1 - i0, j1 - j0)`` boolean: key ``j`` visible to query ``i`` iff ``j <= i``."""
    return (_arange(xp, j0, j1, like)[None, :] <= _arange(xp, i0, i1, like)[:, None])[None]


def _softmax_3d(
    xp: ModuleType, q: Any, k: Any, v: Any, mask: Any, causal: bool, block: int | None
) -> Any:
    count, nq, _ = q.shape
    nk = k.shape[1]
    tile = max(1, (block if block is not None else DEFAULT_TILE) // count)
    rows = min(nq, _QUERY_ROWS * 4, tile)
    cols = max(1, min(nk, tile // rows))
    kt = xp.matrix_transpose(k)
    out = []
    for i0 in range(0, nq, rows):
        i1 = min(nq, i0 + rows)
        state = _OnlineSoftmax(xp, count, i1 - i0, v.shape[2], q)
        stop = min(nk, i1) if causal else nk
        for j0 in range(0, stop, cols):
            j1 = min(stop, j0 + cols)
            logits = q[:, i0:i1] @ kt[:, :, j0:j1]
            if causal and j1 > i0 + 1:
                logits = _mask_logits(xp, logits, _causal(xp, i0, i1, j0, j1, q))
            if mask is not None:
                logits = _mask_logits(xp, logits, mask[:, i0:i1, j0:j1])
            state.add(state.update(logits) @ v[:, j0:j1])
        out.append(state.result())
    return xp.concat(out, axis=1)


def _tensor_3d(
    xp: ModuleType,
    q: Any,
    k1: Any,
    k2: Any,
    v1: Any,
    v2: Any,
    mask1: Any,
    mask2: Any,
    causal: bool,
    block: int | None,
) -> Any:
    count, nq, d = q.shape
    n1, n2 = k1.shape[1], k2.shape[1]
    dv = v1.shape[2]
    tile = max(1, (block if block is not None else DEFAULT_TILE) // count)
    out = []
    rows = min(nq, _QUERY_ROWS)
    for i0 in range(0, nq, rows):
        i1 = min(nq, i0 + rows)
        b = i1 - i0
        qb = q[:, i0:i1]
        # Causal: query i sees pairs (j, l) with j, l <= i, so keys past the block's
        # last row are never needed.
        stop1, stop2 = (min(n1, i1), min(n2, i1)) if causal else (n1, n2)
        k2t, v2b = xp.matrix_transpose(k2[:, :stop2]), v2[:, :stop2]
        allowed2 = _causal(xp, i0, i1, 0, stop2, q) if causal else None
        if mask2 is not None:
            m2 = mask2[:, i0:i1, :stop2]
            allowed2 = m2 if allowed2 is None else allowed2 & m2
        step = max(1, min(stop1, tile // (b * stop2)))
        state = _OnlineSoftmax(xp, count, b, dv, q)
        for j0 in range(0, stop1, step):
            j1 = min(stop1, j0 + step)
            jb = j1 - j0
            # Logits of pairs (j, l) for the block: one GEMM (Q_b ∘ k1_j) @ K2^T.
            scaled = xp.reshape(qb[:, :, None, :] * k1[:, None, j0:j1, :], (count, b * jb, d))
            logits = xp.reshape(scaled @ k2t, (count, b, jb, stop2))
            allowed1 = _causal(xp, i0, i1, j0, j1, q) if causal else None
            if mask1 is not None:
                m1 = mask1[:, i0:i1, j0:j1]
                allowed1 = m1 if allowed1 is None else allowed1 & m1
            if allowed1 is not None and allowed2 is not None:
                logits = _mask_logits(xp, logits, allowed1[..., None] & allowed2[:, :, None, :])
            elif allowed1 is not None:
                logits = _mask_logits(xp, logits, allowed1[..., None])
            elif allowed2 is not None:
                logits = _mask_logits(xp, logits, allowed2[:, :, None, :])

            p = xp.reshape(state.update(logits), (count, b * jb, stop2))
            pv2 = xp.reshape(p @ v2b, (count, b, jb, dv))
            state.add(xp.sum(pv2 * v1[:, None, j0:j1], axis=2))
        out.append(state.result())
    return xp.concat(out, axis=1)


def softmax_attention(
    Q: Any,
    K: Any,
    V: Any,
    *,
    causal: bool = False,
    mask: Any = None,
    block: int | None = None,
) -> Any:
    """Exact softmax attention ``D^-1 exp(Q K^T) V``, blocked and overflow-free.

    Parameters
    ----------
    Q : array, shape (..., n_q, d)
        Queries (numpy, torch or cupy; computed on that library and device).
    K : array, shape (..., n_k, d)
        Keys.
    V : array, shape (..., n_k, d_v)
        Values.
    causal : bool, optional
        Query ``i`` attends to keys ``j <= i`` only (needs ``n_q <= n_k``).
    mask : array of bool, shape (n_q, n_k) or (..., n_q, n_k), optional
        ``True`` where query ``i`` may attend to key ``j``; combined with ``causal``.
    block : int, optional
        Elements of the largest temporary (a tile of logits); default ``2**21``.
        Memory is ``O(block + n_q d_v)``.

    Returns
    -------
    array, shape (..., n_q, d_v)
        ``out_i = sum_j w_ij v_j`` with ``w_ij = exp(q_i . k_j) / sum_l exp(q_i . k_l)``
        over the visible keys: a convex combination of the rows of ``V``.

    Raises
    ------
    TypeError
        Non-floating or complex dtypes, mixed dtypes or array libraries.
    ValueError
        Mismatched shapes, NaN/Inf, a mask that hides every key from some query.

    Notes
    -----
    Cost ``O(n_q n_k (d + d_v))`` flops and ``n_q n_k`` exponentials; every exponential
    has argument ``<= 0`` (running-max subtraction), so any finite logits are safe.

    Examples
    --------
    >>> import numpy as np
    >>> from numlib.attention import softmax_attention
    >>> rng = np.random.default_rng(0)
    >>> Q, K, V = (rng.standard_normal((5, 3)) for _ in range(3))
    >>> W = np.exp(Q @ K.T)
    >>> np.allclose(softmax_attention(Q, K, V), (W / W.sum(1, keepdims=True)) @ V)
    True
    """
    xp, batch = check_attention_inputs(("Q", Q), [("K", K)], [("V", V)])
    block = check_block(block)
    nq, nk = Q.shape[-2], K.shape[-2]
    if causal and nq > nk:
        raise ValueError(f"causal attention needs n_q <= n_k, got Q {Q.shape} and K {K.shape}")
    if mask is not None:
        check_mask(mask, "mask", nq, nk, batch)
        if causal:
            _check_causal_mask_rows(xp, mask, "mask")

    def kernel(q: Any, k: Any, v: Any, m: Any) -> Any:
        return _softmax_3d(xp, q, k, v, m, causal, block)

    return over_batch(xp, batch, kernel, (Q, K, V), (mask,))


def _check_causal_mask_rows(xp: ModuleType, mask: Any, name: str) -> None:
    n = mask.shape[-2]
    tril = _arange(xp, 0, mask.shape[-1], mask)[None, :] <= _arange(xp, 0, n, mask)[:, None]
    if not bool(xp.all(xp.any(mask & tril, axis=-1))):
        raise ValueError(f"{name} with causal=True leaves a query row with no key to attend to")


def tensor_attention(
    Q: Any,
    K1: Any,
    K2: Any,
    V1: Any,
    V2: Any,
    *,
    causal: bool = False,
    mask: tuple[Any, Any] | None = None,
    block: int | None = None,
) -> Any:
    """Exact tensor attention ``D^-1 exp(Q (K1 ⊘ K2)^T) (V1 ⊘ V2)`` (Alman & Song).

    Query ``i`` attends to every pair ``(j, l)`` of a row of ``K1`` and a row of ``K2``
    with logit ``<q_i, k1_j ∘ k2_l> = sum_t q_it k1_jt k2_lt`` and value ``v1_j ∘ v2_l``.

    Parameters
    ----------
    Q : array, shape (..., n_q, d)
        Queries.
    K1, K2 : array, shape (..., n_1, d) and (..., n_2, d)
        The two key sets.
    V1, V2 : array, shape (..., n_1, d_v) and (..., n_2, d_v)
        Values paired with ``K1`` and ``K2``.
    causal : bool, optional
        Query ``i`` sees pairs with ``j <= i`` and ``l <= i`` (needs ``n_q <= n_1, n_2``).
    mask : pair of bool arrays, shapes (n_q, n_1) and (n_q, n_2), optional
        Factored mask ``(M1, M2)``: pair ``(j, l)`` is visible to query ``i`` iff
        ``M1[i, j] and M2[i, l]`` (padding, windows, causality are of this form; a
        general ``n x n x n`` mask would cost more memory than the computation).
        Leading batch dimensions are allowed as for ``softmax_attention``.
    block : int, optional
        Elements of the largest temporary (a ``(rows x j) x n_2`` tile of logits);
        default ``2**21``. Memory is ``O(block + n_q d_v)``, i.e. ``O(n)`` per query block
        instead of the ``n^3`` attention tensor.

    Returns
    -------
    array, shape (..., n_q, d_v)
        A convex combination of the rows of ``V1 ⊘ V2`` per query.

    Raises
    ------
    TypeError
        Non-floating or complex dtypes, mixed dtypes or array libraries.
    ValueError
        Mismatched ``n`` or ``d``, NaN/Inf, a mask hiding every pair from a query.

    Notes
    -----
    ``O(n_q n_1 n_2 (d + d_v))`` flops and ``n_q n_1 n_2`` exponentials, exactly linear
    in ``n_q`` (rows are independent), which is what makes timing a subset of rows
    and scaling meaningful. Under SETH nothing is much faster for unbounded entries;
    :func:`numlib.attention.fast_tensor_attention` is near-linear for bounded ones.

    Examples
    --------
    >>> import numpy as np
    >>> from numlib.attention import tensor_attention
    >>> rng = np.random.default_rng(0)
    >>> Q, K1, K2, V1, V2 = (rng.standard_normal((4, 3)) for _ in range(5))
    >>> W = np.exp(np.einsum("it,jt,lt->ijl", Q, K1, K2))
    >>> ref = np.einsum("ijl,jc,lc->ic", W, V1, V2) / W.sum(axis=(1, 2))[:, None]
    >>> np.allclose(tensor_attention(Q, K1, K2, V1, V2), ref)
    True
    """
    xp, batch = check_attention_inputs(("Q", Q), [("K1", K1), ("K2", K2)], [("V1", V1), ("V2", V2)])
    block = check_block(block)
    nq, n1, n2 = Q.shape[-2], K1.shape[-2], K2.shape[-2]
    if causal and nq > min(n1, n2):
        raise ValueError(
            f"causal attention needs n_q <= n_1, n_2, got Q {Q.shape}, K1 {K1.shape}, K2 {K2.shape}"
        )
    masks: tuple[Any, Any] = (None, None)
    if mask is not None:
        if not isinstance(mask, tuple | list) or len(mask) != 2:
            raise TypeError("mask must be a pair (M1, M2) of boolean arrays")
        check_mask(mask[0], "mask[0]", nq, n1, batch)
        check_mask(mask[1], "mask[1]", nq, n2, batch)
        if causal:
            _check_causal_mask_rows(xp, mask[0], "mask[0]")
            _check_causal_mask_rows(xp, mask[1], "mask[1]")
        masks = (mask[0], mask[1])

    def kernel(q: Any, k1: Any, k2: Any, v1: Any, v2: Any, m1: Any, m2: Any) -> Any:
        return _tensor_3d(xp, q, k1, k2, v1, v2, m1, m2, causal, block)

    return over_batch(xp, batch, kernel, (Q, K1, K2, V1, V2), masks)
