"""The :class:`Recipe`: what to do to each targeted layer, validated up front, JSON-able."""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any

__all__ = ["ALLOCATIONS", "METHODS", "Recipe"]

METHODS = (
    "magnitude",
    "wanda",
    "sparsegpt",
    "block",
    "lowrank",
    "monarch",
    "rtn",
    "gptq",
    "ptq161",
    "nystrom",
)
ALLOCATIONS = ("uniform", "farms", "global", "sensitivity")
_CALIBRATED = {"wanda", "sparsegpt", "gptq", "ptq161", "nystrom"}
_PRUNING = {"magnitude", "wanda", "sparsegpt", "block"}
# The methods that read each optional field; any other method must leave it at its default.
# Solver settings shared across methods (damp, blocksize, sequential, dense_target) are
# not listed: one setting for a sweep over methods is fine.
_READ_BY: dict[str, set[str]] = {
    "sparsity": _PRUNING,
    "pattern": {"magnitude", "wanda", "sparsegpt"},
    "block": {"block"},
    "kind": {"lowrank", "monarch"},
    "rank": {"lowrank", "monarch"},
    "param_ratio": {"lowrank", "nystrom"},
    "energy": {"lowrank"},
    "multiple_of": {"lowrank", "nystrom"},
    "selection": {"nystrom"},
    "nblocks": {"monarch"},
    "bits": {"rtn", "gptq"},
    "group_size": {"rtn", "gptq"},
    "activation_bits": {"rtn", "gptq", "ptq161"},
    "act_order": {"gptq"},
    "salient_fraction": {"ptq161"},
    "high_bits": {"ptq161"},
    "binary_block": {"ptq161"},
    # nystrom keeps dense (narrower) layers: no compression error for EoRA to fit
    "eora_rank": set(METHODS) - {"nystrom"},
}


def _ratio(value: Any, name: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not 0.0 < float(value) < 1.0:
        raise ValueError(f"{name} must lie in (0, 1), got {value}")


def _pos_int(value: Any, name: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


@dataclass(frozen=True)
class Recipe:
    """One compression method and its strength, applied to every targeted layer.

    Parameters
    ----------
    method : str
        One of :data:`METHODS`.
    sparsity : float, optional
        Pruning fraction in ``(0, 1)`` (magnitude, wanda, sparsegpt, block).
    pattern : (int, int), optional
        N:M pattern ``(n, m)``: keep ``n`` of every ``m`` inputs (instead of ``sparsity``).
    block : (int, int), optional
        Tile shape for ``"block"``.
    allocation : {"uniform", "farms", "global", "sensitivity"}
        Per-layer strengths: the same everywhere (default); pruning ratios from FARMS
        heavy-tail exponents; or, for low rank under ``param_ratio`` (then a budget for
        all targeted weights together), ranks allocated greedily across layers by
        relative truncation error (:func:`~learned.compress.lowrank.allocate_ranks`), or
        by the measured change of the model's output when each layer alone is
        truncated, some layers possibly kept dense (ASVD's sensitivity search,
        :mod:`learned.compress.sensitivity`; on the first
        ``api.SENSITIVITY_BATCHES`` calibration batches).
    kind : {"whitened", "svd", "fisher"}
        Low rank and Monarch: fit the expected output error on the calibration inputs
        (``"whitened"``, default) or the weights in the Frobenius norm (``"svd"``).
        Low rank also ``"fisher"``: Fisher-weighted SVD (FWSVD), the Frobenius error with
        each output row weighted by the Fisher information of the task loss
        (``compress(..., loss_fn=...)``; :mod:`learned.compress.fisher`).
    rank : int, optional
        Low-rank (per layer, clipped) or Monarch block rank.
    param_ratio : float, optional
        Low rank: the fraction of every layer's (or with ``"global"`` and
        ``"sensitivity"``, of all targeted) weights kept. ``"nystrom"``: the fraction
        of each pair's hidden units kept.
    energy : float, optional
        Low rank: per layer, the smallest rank (rounded up to ``multiple_of``) that keeps
        this fraction in ``(0, 1]`` of the squared singular values of the layer's
        objective (``W``, ``W C^{1/2}`` or the Fisher-weighted ``W``). Exactly one of
        ``rank``, ``param_ratio`` and ``energy``.
    multiple_of : int
        Granularity of ranks and of kept hidden units (GEMM-friendly sizes).
    selection : {"greedy", "top"}
        ``"nystrom"``: hidden units by greedy elimination of the consumer's output error
        (default) or by MoDeGPT's top ridge leverage scores
        (:func:`learned.compress.units.fit_unit_pair`).
    nblocks : (int, int), optional
        Monarch ``(bi, bo)``; default ``(b, b)`` with ``b`` the largest of 2, 4, 8, 16
        dividing both sides, chosen per layer.
    bits : int, optional
        Weight bits (1..8) for rtn and gptq.
    group_size : int, optional
        Inputs per quantisation scale (None: per output channel).
    activation_bits : int or None
        Activation bits of :class:`~learned.bitplane_linear.BitplaneLinear`; None keeps
        activations in floating point (weight-only quantisation).
    act_order : bool
        GPTQ: quantise columns in order of decreasing ``diag(C)`` (static group scales;
        default), or left to right with each group's scale chosen when the sweep reaches
        it (``False``).
    salient_fraction, high_bits, binary_block
        PTQ1.61-style mixed scheme: fraction of 4-bit input channels, their bits, and
        the positive block width of the binarised rest's scales (a target's
        ``in_features`` must be a multiple of it and at least twice it).
    eora_rank : int, optional
        Add an EoRA low-rank compensation of this rank to every compressed layer (all
        methods but ``"nystrom"``).
    sequential : bool
        Recalibrate stage by stage on the already-compressed model (default); ``False``
        calibrates once on the dense model (one-shot).
    dense_target : bool
        With ``sequential``: each layer fits the dense model's outputs on the compressed
        model's inputs (asymmetric calibration, default) rather than its own outputs.
    damp, blocksize
        Hessian damping (finite, ``>= 0``) and OBS block width (SparseGPT, GPTQ;
        a multiple of ``group_size`` and of an N:M pattern's ``M``).

    Raises
    ------
    ValueError, TypeError
        For an unknown method, a missing strength, values out of range, or a field
        the method does not read set to anything but its default (e.g. ``bits`` for
        ``"magnitude"``, ``param_ratio`` for ``"monarch"``, ``eora_rank`` for
        ``"nystrom"``).
    """

    method: str
    sparsity: float | None = None
    pattern: tuple[int, int] | None = None
    block: tuple[int, int] | None = None
    allocation: str = "uniform"
    kind: str = "whitened"
    rank: int | None = None
    param_ratio: float | None = None
    energy: float | None = None
    multiple_of: int = 16
    selection: str = "greedy"
    nblocks: tuple[int, int] | None = None
    bits: int | None = None
    group_size: int | None = None
    activation_bits: int | None = 8
    act_order: bool = True
    salient_fraction: float = 0.2
    high_bits: int = 4
    binary_block: int = 64
    eora_rank: int | None = None
    sequential: bool = True
    dense_target: bool = True
    damp: float = 0.01
    blocksize: int = 128

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        for name in ("pattern", "block", "nblocks"):
            value = getattr(self, name)
            if value is not None:
                if len(tuple(value)) != 2:
                    raise ValueError(f"{name} must be a pair of ints, got {value!r}")
                for v in value:
                    _pos_int(v, name)
                object.__setattr__(self, name, tuple(int(v) for v in value))
        _ratio(self.sparsity, "sparsity")
        _ratio(self.param_ratio, "param_ratio")
        _ratio(self.salient_fraction, "salient_fraction")
        for name in ("rank", "multiple_of", "group_size", "eora_rank", "blocksize"):
            _pos_int(getattr(self, name), name)
        _pos_int(self.binary_block, "binary_block")
        if self.allocation not in ALLOCATIONS:
            raise ValueError(f"allocation must be one of {ALLOCATIONS}, got {self.allocation!r}")
        m = self.method
        defaults = {f.name: f.default for f in fields(self) if f.default is not MISSING}
        for name, readers in _READ_BY.items():
            if m not in readers and getattr(self, name) != defaults[name]:
                raise ValueError(
                    f"{name} does not apply to method {m!r} (it is read by "
                    f"{', '.join(sorted(readers))})"
                )
        if self.allocation == "farms" and m not in _PRUNING:
            raise ValueError(f"allocation 'farms' sets pruning ratios; method is {m!r}")
        if self.allocation in ("global", "sensitivity") and (
            m != "lowrank" or self.param_ratio is None
        ):
            raise ValueError(
                f"allocation {self.allocation!r} needs method 'lowrank' with param_ratio"
            )
        if m in _PRUNING:
            if m == "block":
                if self.sparsity is None or self.block is None:
                    raise ValueError("method 'block' needs sparsity and block")
            elif (self.sparsity is None) == (self.pattern is None):
                raise ValueError(f"method {m!r} needs exactly one of sparsity and pattern")
            if self.pattern is not None and not self.pattern[0] < self.pattern[1]:
                raise ValueError(f"pattern must be N:M with N < M, got {self.pattern}")
        kinds = ("whitened", "svd", "fisher") if m == "lowrank" else ("whitened", "svd")
        if m in ("lowrank", "monarch") and self.kind not in kinds:
            raise ValueError(f"kind must be one of {kinds} for method {m!r}, got {self.kind!r}")
        if self.energy is not None:
            if isinstance(self.energy, bool) or not isinstance(self.energy, numbers.Real):
                raise TypeError(f"energy must be a real number, got {type(self.energy).__name__}")
            if not 0.0 < float(self.energy) <= 1.0 or m != "lowrank":
                raise ValueError(
                    f"energy must lie in (0, 1] for method 'lowrank', got {self.energy}"
                )
        if m == "lowrank" and [self.rank, self.param_ratio, self.energy].count(None) != 2:
            raise ValueError("method 'lowrank' needs exactly one of rank, param_ratio and energy")
        if m == "nystrom" and self.param_ratio is None:
            raise ValueError("method 'nystrom' needs param_ratio (fraction of hidden units kept)")
        if self.selection not in ("greedy", "top"):
            raise ValueError(f"selection must be 'greedy' or 'top', got {self.selection!r}")
        if m in ("rtn", "gptq"):
            if self.bits is None:
                raise ValueError(f"method {m!r} needs bits")
        for name in ("bits", "activation_bits", "high_bits"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 8):
                raise ValueError(f"{name} must be an int in 1..8, got {v!r}")
        for name in ("act_order", "sequential", "dense_target"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if isinstance(self.damp, bool) or not isinstance(self.damp, numbers.Real):
            raise TypeError(f"damp must be a real number, got {type(self.damp).__name__}")
        if not (math.isfinite(self.damp) and self.damp >= 0):
            raise ValueError(f"damp must be finite and >= 0, got {self.damp}")
        if m == "gptq" and self.group_size is not None and self.blocksize % self.group_size:
            raise ValueError(
                f"blocksize {self.blocksize} must be a multiple of group_size {self.group_size}"
            )
        if m == "sparsegpt" and self.pattern is not None and self.blocksize % self.pattern[1]:
            raise ValueError(
                f"blocksize {self.blocksize} must be a multiple of M = {self.pattern[1]}"
            )

    @property
    def needs_calibration(self) -> bool:
        """Whether the recipe reads layer-input statistics."""
        return (
            self.method in _CALIBRATED
            or (self.method in ("lowrank", "monarch") and self.kind != "svd")
            or self.eora_rank is not None
            or self.allocation == "sensitivity"
        )

    @property
    def needs_loss(self) -> bool:
        """Whether the recipe differentiates a task loss (Fisher-weighted low rank)."""
        return self.method == "lowrank" and self.kind == "fisher"

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-serialisable dict (pairs as lists)."""
        out = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        """Inverse of :meth:`to_dict` (unknown keys are an error)."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown recipe fields {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    def to_json(self) -> str:
        """JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), sort_keys=True)
