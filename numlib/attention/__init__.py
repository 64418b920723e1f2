"""Softmax and tensor (Kronecker) attention: exact, and near-linear for bounded entries.

Tensor attention (Alman & Song, "How to Capture Higher-order Correlations?
Generalizing Matrix Softmax Attention to Kronecker Computation", ICLR 2024,
arXiv:2310.04064) lets each query attend to *pairs* of keys:
``D^-1 exp(Q (K1 ⊘ K2)^T) (V1 ⊘ V2)`` with ``⊘`` the column-wise Kronecker
(Khatri-Rao) product, an ``n x n^2`` attention matrix.

- :mod:`~numlib.attention.exact`: :func:`softmax_attention`, :func:`tensor_attention`,
  blocked with an online softmax (``O(n^2 d)`` / ``O(n^3 d)`` time, ``O(n)`` memory per
  query block), causal and masked.
- :mod:`~numlib.attention.fast`: :func:`fast_softmax_attention`,
  :func:`fast_tensor_attention`, ``O(n r d)`` through polynomial feature maps and
  ``(U2 ⊘ U3)^T (V1 ⊘ V2) = (U2^T V1) ∘ (U3^T V2)``, with the degree picked by
  :func:`plan_attention` from an a-priori error bound; causal by prefix sums.
- :mod:`~numlib.attention.polynomial`: the polynomials, bounds and feature maps.

All functions take numpy, torch or cupy arrays of shape ``(..., n, d)`` and compute on
that library (torch autograd flows through them).
"""

from numlib.attention.exact import softmax_attention, tensor_attention
from numlib.attention.fast import (
    DEFAULT_MAX_FEATURES,
    AttentionPlan,
    fast_softmax_attention,
    fast_tensor_attention,
    logit_bound,
    plan_attention,
)
from numlib.attention.polynomial import (
    exp_polynomial,
    feature_size,
    output_error_bound,
    weight_error_bound,
)

__all__ = [
    "DEFAULT_MAX_FEATURES",
    "AttentionPlan",
    "exp_polynomial",
    "fast_softmax_attention",
    "fast_tensor_attention",
    "feature_size",
    "logit_bound",
    "output_error_bound",
    "plan_attention",
    "softmax_attention",
    "tensor_attention",
    "weight_error_bound",
]
