"""Compressed replacements for :class:`torch.nn.Linear`: low-rank, Monarch, sparse, N:M.

Every layer stores only its compressed representation (factors; the kept values and a
one-bit-per-weight mask of their positions), never a dense weight, and rebuilds from
its own state dict and the constructor arguments listed by :meth:`config` (which
:mod:`learned.compress.serialize` writes to JSON). ``y = x W^T + b`` throughout, as in
``nn.Linear``.

These live here rather than in ``learned/layers.py`` because that file is being edited
concurrently for the attention layers.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from numlib.monarch import Monarch

__all__ = [
    "SPARSE_MM_MAX_DENSITY",
    "CompensatedLinear",
    "LowRankLinear",
    "MonarchLinear",
    "NMSparseLinear",
    "SparseLinear",
    "dense_linear",
    "pack_mask",
    "unpack_mask",
]


#: Density (``nnz / (in * out)``) up to which :class:`SparseLinear` multiplies in CSR.
SPARSE_MM_MAX_DENSITY = 0.1


def dense_linear(weight: torch.Tensor, bias: torch.Tensor | None, like: nn.Linear) -> nn.Linear:
    """Return an ``nn.Linear`` holding ``weight`` and ``bias``, on ``like``'s dtype and device."""
    out_features, in_features = weight.shape
    layer = nn.Linear(in_features, out_features, bias=bias is not None).to(
        dtype=like.weight.dtype, device=like.weight.device
    )
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            assert layer.bias is not None
            layer.bias.copy_(bias)
    return layer


def _check_size(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _check_matrix(tensor: Any, name: str) -> torch.Tensor:
    """Require a finite floating 2-D tensor: what every ``from_*`` builder packs."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.ndim != 2 or not tensor.is_floating_point():
        raise ValueError(
            f"{name} must be a 2-D floating tensor, got shape {tuple(tensor.shape)} and "
            f"dtype {tensor.dtype}"
        )
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} contains NaN or Inf")
    return tensor


def _bias(layer: nn.Module, out_features: int, bias: bool, dtype: torch.dtype | None) -> None:
    if bias:
        layer.bias = nn.Parameter(torch.zeros(out_features, dtype=dtype))
    else:
        layer.register_parameter("bias", None)


class _CompressedLinear(nn.Module):
    """Shared by the compressed layers: ``config`` and ``repr`` from the shape fields."""

    in_features: int
    out_features: int
    bias: nn.Parameter | None

    def _structure(self) -> dict[str, Any]:
        """Return the constructor arguments other than the sizes and ``bias``."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """Return the constructor arguments (JSON-serialisable)."""
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            **self._structure(),
            "bias": self.bias is not None,
        }

    def extra_repr(self) -> str:
        """Sizes and structure."""
        fields = {"in_features": self.in_features, "out_features": self.out_features}
        fields.update(self._structure())
        return ", ".join(f"{name}={value}" for name, value in fields.items())


class LowRankLinear(_CompressedLinear):
    """``y = (x R^T) L^T + b`` with ``L`` (``out x rank``) and ``R`` (``rank x in``).

    Stores ``rank (in + out)`` numbers instead of ``in * out``; a token costs the same
    number of multiply-adds, so the layer is faster than dense when
    ``rank < in * out / (in + out)`` (and in practice when ``rank`` is a multiple of 16,
    which BLAS blocks well).

    Parameters
    ----------
    in_features, out_features, rank : int
    bias : bool
    dtype : torch.dtype, optional

    Examples
    --------
    >>> layer = LowRankLinear(8, 6, 2)
    >>> layer(torch.randn(3, 8)).shape
    torch.Size([3, 6])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rank: int,
        *,
        bias: bool = True,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features = _check_size(in_features, "in_features")
        self.out_features = _check_size(out_features, "out_features")
        self.rank = _check_size(rank, "rank")
        self.left = nn.Parameter(torch.zeros(out_features, rank, dtype=dtype))
        self.right = nn.Parameter(torch.zeros(rank, in_features, dtype=dtype))
        _bias(self, out_features, bias, dtype)

    @classmethod
    def from_factors(
        cls,
        left: torch.Tensor,
        right: torch.Tensor,
        bias: torch.Tensor | None,
        *,
        dtype: torch.dtype | None = None,
    ) -> LowRankLinear:
        """Build from ``W ~ left @ right``, all cast to ``dtype`` (default: ``left``'s).

        Pass the dtype of the weight being replaced: the factors of
        :mod:`numlib.lowrank` are float64 whatever the layer's dtype, and a layer
        without bias has nothing else to take it from.
        """
        _check_matrix(left, "left")
        _check_matrix(right, "right")
        if left.shape[1] != right.shape[0]:
            raise ValueError(
                f"left and right must be (out, k) and (k, in), got {tuple(left.shape)} "
                f"and {tuple(right.shape)}"
            )
        if dtype is None:
            dtype = left.dtype
        out = cls(
            int(right.shape[1]),
            int(left.shape[0]),
            int(left.shape[1]),
            bias=bias is not None,
            dtype=dtype,
        )
        with torch.no_grad():
            out.left.copy_(left.to(dtype))
            out.right.copy_(right.to(dtype))
            if bias is not None:
                out.bias.copy_(bias)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the layer to ``x`` of shape ``(..., in_features)``."""
        return F.linear(F.linear(x, self.right), self.left, self.bias)

    def dense_weight(self) -> torch.Tensor:
        """Return ``L R``, the ``out x in`` weight the layer applies."""
        return self.left @ self.right

    def _structure(self) -> dict[str, Any]:
        return {"rank": self.rank}


class MonarchLinear(_CompressedLinear):
    """``y = M x + b`` with a Monarch ``M = P_out L P R`` (:class:`numlib.monarch.Monarch`).

    ``L`` has shape ``(bo, out / bo, bi r)`` and ``R`` ``(bi, bo r, in / bi)``; the product is
    two batched matmuls through :meth:`numlib.monarch.Monarch.apply` (Dao et al., ICML 2022),
    ``r (bo in + bi out)`` parameters and multiply-adds per token.

    Examples
    --------
    >>> layer = MonarchLinear(16, 8, (4, 2), rank=1)
    >>> layer(torch.randn(5, 16)).shape
    torch.Size([5, 8])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        nblocks: tuple[int, int],
        *,
        rank: int = 1,
        bias: bool = True,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features = _check_size(in_features, "in_features")
        self.out_features = _check_size(out_features, "out_features")
        bi, bo = (_check_size(int(b), "nblocks") for b in nblocks)
        if in_features % bi or out_features % bo:
            raise ValueError(
                f"nblocks {(bi, bo)} must divide (in_features, out_features) = "
                f"{(in_features, out_features)}"
            )
        self.nblocks = (bi, bo)
        self.rank = _check_size(rank, "rank")
        self.L = nn.Parameter(torch.zeros(bo, out_features // bo, bi * rank, dtype=dtype))
        self.R = nn.Parameter(torch.zeros(bi, bo * rank, in_features // bi, dtype=dtype))
        _bias(self, out_features, bias, dtype)

    @classmethod
    def from_monarch(
        cls, monarch: Monarch, bias: torch.Tensor | None, *, dtype: torch.dtype | None = None
    ) -> MonarchLinear:
        """Build from the factors of :func:`numlib.monarch.monarch_project`.

        All cast to ``dtype`` (default: the factors'); pass the replaced weight's.
        """
        m, n = monarch.shape
        if dtype is None:
            dtype = torch.as_tensor(monarch.L).dtype
        out = cls(
            n, m, monarch.nblocks, rank=monarch.block_rank, bias=bias is not None, dtype=dtype
        )
        with torch.no_grad():
            out.L.copy_(torch.as_tensor(monarch.L).to(dtype))
            out.R.copy_(torch.as_tensor(monarch.R).to(dtype))
            if bias is not None:
                out.bias.copy_(bias)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the layer to ``x`` of shape ``(..., in_features)``."""
        y = Monarch(self.L, self.R).apply(x)
        return y if self.bias is None else y + self.bias

    def dense_weight(self) -> torch.Tensor:
        """Return the dense ``out x in`` Monarch matrix."""
        return Monarch(self.L, self.R).to_dense()

    def _structure(self) -> dict[str, Any]:
        return {"nblocks": list(self.nblocks), "rank": self.rank}


_BIT_POSITIONS = torch.arange(8, dtype=torch.uint8)


def pack_mask(mask: torch.Tensor) -> torch.Tensor:
    """Pack a boolean ``rows x cols`` mask into uint8 ``rows x ceil(cols / 8)``.

    Bit ``j`` (least significant first) of byte ``i`` of a row holds column ``8 i + j``
    (numpy's ``packbits(..., bitorder="little")``).
    """
    rows, cols = mask.shape
    padded = F.pad(mask.to(torch.uint8), (0, -cols % 8)).view(rows, -1, 8)
    # distinct powers of two: the sum is an OR and stays below 256
    return (padded << _BIT_POSITIONS.to(mask.device)).sum(dim=-1, dtype=torch.uint8)


def unpack_mask(packed: torch.Tensor, cols: int) -> torch.Tensor:
    """Invert :func:`pack_mask`: the boolean ``rows x cols`` mask."""
    bits = (packed.unsqueeze(-1) >> _BIT_POSITIONS.to(packed.device)) & 1
    return bits.flatten(-2)[:, :cols].bool()


class _MaskedLinear(_CompressedLinear):
    """Shared by the sparse layers: ``values`` at the positions a packed bit ``mask`` marks."""

    mask: torch.Tensor
    values: nn.Parameter

    def _register_mask(self) -> None:
        packed = (self.out_features, -(-self.in_features // 8))
        self.register_buffer("mask", torch.zeros(packed, dtype=torch.uint8))

    def dense_weight(self) -> torch.Tensor:
        """Return the dense ``out x in`` weight (zeros included)."""
        weight = self.values.new_zeros(self.out_features, self.in_features)
        # masked_scatter fills the marked positions in row-major order, the values' order
        return weight.masked_scatter(unpack_mask(self.mask, self.in_features), self.values)


class SparseLinear(_MaskedLinear):
    """Unstructured (or block) sparse ``y = x W^T + b``: a bit mask and the kept weights.

    Buffer ``mask`` (uint8 ``out x ceil(in / 8)``, :func:`pack_mask`) marks the kept
    weights and the parameter ``values`` (``nnz``) holds them in row-major order. At
    density ``d`` that is ``1/8 + 4d`` bytes per float32 weight: smaller than the dense
    weight at any sparsity above 3%, and than CSR with int32 column indices (``8d``)
    above 3% density. ``forward`` scatters the values into a dense weight for one GEMM
    above :data:`SPARSE_MM_MAX_DENSITY`, and multiplies in CSR (built from the mask once
    and cached) below it.

    Examples
    --------
    >>> w = torch.tensor([[1.0, 0.0, 2.0], [0.0, 0.0, 3.0]])
    >>> layer = SparseLinear.from_dense(w, None)
    >>> layer.nnz, torch.allclose(layer(torch.eye(3)), w.T)
    (3, True)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        nnz: int,
        *,
        bias: bool = True,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features = _check_size(in_features, "in_features")
        self.out_features = _check_size(out_features, "out_features")
        if isinstance(nnz, bool) or not isinstance(nnz, int) or nnz < 0:
            raise ValueError(f"nnz must be a non-negative int, got {nnz!r}")
        self.nnz = nnz
        self._register_mask()
        self.values = nn.Parameter(torch.zeros(nnz, dtype=dtype))
        _bias(self, out_features, bias, dtype)
        self._csr_cache: tuple[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] | None = None

    @classmethod
    def from_dense(cls, weight: torch.Tensor, bias: torch.Tensor | None) -> SparseLinear:
        """Keep the non-zeros of ``weight`` (``out x in``)."""
        kept = _check_matrix(weight, "weight").detach() != 0
        out = cls(
            int(weight.shape[1]),
            int(weight.shape[0]),
            int(kept.sum()),
            bias=bias is not None,
            dtype=weight.dtype,
        )
        with torch.no_grad():
            out.mask.copy_(pack_mask(kept))
            out.values.copy_(weight.detach()[kept])  # row-major, the order of the mask
            if bias is not None:
                out.bias.copy_(bias)
        return out

    def _indices(self) -> tuple[torch.Tensor, torch.Tensor]:
        """CSR row pointers and column indices of the mask, kept until it changes."""
        # _version counts in-place writes (load_state_dict, copy_), data_ptr catches .to()
        key = (self.mask.data_ptr(), self.mask._version)
        if self._csr_cache is None or self._csr_cache[0] != key:
            kept = unpack_mask(self.mask, self.in_features)
            crow = F.pad(kept.sum(dim=1).cumsum(0), (1, 0))
            self._csr_cache = (key, (crow, kept.nonzero()[:, 1]))
        return self._csr_cache[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the layer to ``x`` of shape ``(..., in_features)``.

        Above :data:`SPARSE_MM_MAX_DENSITY` the values are scattered into a dense weight
        for one GEMM: CPU sparse kernels lose to dense BLAS there (measured 2.8x slower
        at 50%, break-even near 10%, on a 1536 x 384 layer, 1920 tokens, one thread).
        """
        if self.nnz > SPARSE_MM_MAX_DENSITY * self.in_features * self.out_features:
            return F.linear(x, self.dense_weight(), self.bias)
        lead = x.shape[:-1]
        crow, col = self._indices()
        with warnings.catch_warnings():
            # The CSR "beta" notice is about the API's stability, not this use of it.
            warnings.simplefilter("ignore", UserWarning)
            csr = torch.sparse_csr_tensor(
                crow, col, self.values, (self.out_features, self.in_features)
            )
        y = torch.sparse.mm(csr, x.reshape(-1, self.in_features).T).T
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*lead, self.out_features)

    def _structure(self) -> dict[str, Any]:
        return {"nnz": self.nnz}


class NMSparseLinear(_MaskedLinear):
    """N:M sparse ``y = x W^T + b``: ``n`` kept weights in every ``m`` consecutive inputs.

    Stores ``values`` (``out x in n / m``) and the kept positions as a bit mask
    (:func:`pack_mask`, exactly ``n`` bits in every group of ``m``): one bit per weight,
    the size of 2:4 sparse tensor cores' 2-bit metadata per kept value. CPUs have no N:M
    kernel, so ``forward`` scatters the values into a dense weight and runs a GEMM: the
    saving here is memory (``n / m`` of the values plus ``1/8`` byte per weight), not time.

    Examples
    --------
    >>> w = torch.tensor([[0.0, 2.0, 0.0, -1.0]])
    >>> layer = NMSparseLinear.from_dense(w, None, n=2, m=4)
    >>> bin(layer.mask.item()), torch.equal(layer.dense_weight(), w)
    ('0b1010', True)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        n: int,
        m: int,
        bias: bool = True,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features = _check_size(in_features, "in_features")
        self.out_features = _check_size(out_features, "out_features")
        self.n, self.m = _check_size(n, "n"), _check_size(m, "m")
        if n > m or in_features % m:
            raise ValueError(f"need n <= m and m | in_features; got {n}:{m}, {in_features}")
        groups = in_features // m
        self.values = nn.Parameter(torch.zeros(out_features, groups, n, dtype=dtype))
        self._register_mask()
        _bias(self, out_features, bias, dtype)

    @classmethod
    def from_dense(
        cls, weight: torch.Tensor, bias: torch.Tensor | None, *, n: int, m: int
    ) -> NMSparseLinear:
        """Pack ``weight`` (``out x in``), which must have at most ``n`` non-zeros per group.

        Raises
        ------
        ValueError
            If some group of ``m`` has more than ``n`` non-zeros.
        """
        out_f, in_f = (int(s) for s in _check_matrix(weight, "weight").shape)
        layer = cls(in_f, out_f, n=n, m=m, bias=bias is not None, dtype=weight.dtype)
        groups = weight.detach().reshape(out_f, in_f // m, m)
        if int((groups != 0).sum(-1).max()) > n:
            raise ValueError(f"weight has more than {n} non-zeros in some group of {m}")
        # Non-zeros first (stable, so a group with fewer keeps zeros in valid positions).
        order = torch.argsort((groups == 0).to(torch.int8), dim=-1, stable=True)[..., :n]
        kept = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, order, True)
        with torch.no_grad():
            layer.values.copy_(groups[kept].view(out_f, in_f // m, n))  # in-group order
            layer.mask.copy_(pack_mask(kept.view(out_f, in_f)))
            if bias is not None:
                layer.bias.copy_(bias)
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the layer to ``x`` of shape ``(..., in_features)``."""
        return F.linear(x, self.dense_weight(), self.bias)

    def _structure(self) -> dict[str, Any]:
        return {"n": self.n, "m": self.m}

    def extra_repr(self) -> str:
        """Sizes and pattern."""
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"pattern={self.n}:{self.m}"
        )


class CompensatedLinear(nn.Module):
    """``y = base(x) + correction(x)``: a compressed layer plus a low-rank error term (EoRA).

    Parameters
    ----------
    base : nn.Module
        Any compressed layer with ``in_features`` / ``out_features``.
    correction : LowRankLinear
        Without bias, of the same shape as ``base``.

    Raises
    ------
    TypeError
        If ``base`` is not an ``nn.Module`` or ``correction`` not a :class:`LowRankLinear`.
    ValueError
        If ``correction`` has a bias or the two shapes differ.
    """

    def __init__(self, base: nn.Module, correction: LowRankLinear) -> None:
        super().__init__()
        if not isinstance(base, nn.Module):
            raise TypeError(f"base must be an nn.Module, got {type(base).__name__}")
        if not isinstance(correction, LowRankLinear):
            raise TypeError(f"correction must be a LowRankLinear, got {type(correction).__name__}")
        if correction.bias is not None:
            raise ValueError("correction must have no bias")
        shape = (getattr(base, "out_features", None), getattr(base, "in_features", None))
        if shape != (correction.out_features, correction.in_features):
            raise ValueError(
                f"base (out, in) = {shape} must equal the correction's "
                f"{(correction.out_features, correction.in_features)}"
            )
        self.base = base
        self.correction = correction
        self.in_features = correction.in_features
        self.out_features = correction.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply ``base`` and add the low-rank correction."""
        return self.base(x) + self.correction(x).to(x.dtype)
