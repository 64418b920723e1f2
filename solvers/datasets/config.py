"""Validation of a run's arguments into the normalised configuration the manifest records.

Everything is checked here, before any file is touched, so that a bad argument never
claims an output folder.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from numlib.validate import check_positive_int
from solvers.datasets.families import _FAMILIES, FAMILIES, _no_shared
from solvers.recycle import STRATEGIES

# Ordering methods of solvers.ordering.order_systems.
ORDERS = ("greedy", "curve", "none")
# Strategies that rely on symmetric positive definite matrices (CG underneath).
_SPD_STRATEGIES = ("amg-reuse", "deflated-cg", "cg")


def _check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def _family_options(family: str, given: dict[str, Any] | None) -> dict[str, Any]:
    """Merge ``given`` into the family's defaults, with types fixed and values checked.

    The merged, normalised dictionary is what the manifest records, so passing a
    default explicitly (or ``10`` for ``10.0``) is the same configuration as
    leaving it out.
    """
    defaults = _FAMILIES[family].defaults
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise TypeError(f"family_options must be a dict or None, got {type(given).__name__}")
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(
            f"family_options has unknown key(s) {unknown} for family {family!r}; "
            f"expected some of {sorted(defaults)}"
        )
    opts = dict(defaults)
    for key, value in given.items():
        name = f"family_options[{key!r}]"
        if isinstance(defaults[key], str):
            if not isinstance(value, str):
                raise TypeError(f"{name} must be a string, got {type(value).__name__}")
            opts[key] = value
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value}")
        opts[key] = value
    for key in ("alpha", "tau", "dt"):
        if key in opts and opts[key] <= 0:
            raise ValueError(f"family_options[{key!r}] must be > 0, got {opts[key]}")
    if "k" in opts and opts["k"] < 0:
        raise ValueError(f"family_options['k'] must be >= 0, got {opts['k']}")
    if "peclet_min" in opts and not 0 <= opts["peclet_min"] <= opts["peclet_max"]:
        raise ValueError(
            "family_options must have 0 <= peclet_min <= peclet_max, got "
            f"peclet_min={opts['peclet_min']}, peclet_max={opts['peclet_max']}"
        )
    if "scheme" in opts:
        _check_choice(opts["scheme"], "family_options['scheme']", ("central", "upwind"))
    return opts


def _check_strategy_fits(family: str, strategy: str, n_samples: int, shard_size: int) -> None:
    """Refuse a strategy the family's matrices cannot support, before any solve.

    solve_sequence would find out too, but only at the first shard, after the
    folder has been claimed; CG-based strategies on an indefinite or nonsymmetric
    family would not even fail, just never converge.
    """
    spec = _FAMILIES[family]
    if strategy in _SPD_STRATEGIES and not spec.spd:
        raise ValueError(
            f"strategy {strategy!r} needs symmetric positive definite matrices, which "
            f"family {family!r} does not have; use 'auto', 'gcrodr', 'lu-reuse', "
            "'ilu-reuse', 'warm-start' or 'gmres'"
        )
    # A one-system shard has a constant matrix whatever the family.
    if strategy == "direct" and spec.shared is _no_shared and min(n_samples, shard_size) > 1:
        raise ValueError(
            f"strategy 'direct' factorises one matrix for all systems, but family "
            f"{family!r} has a different matrix per sample; use 'auto'"
        )


def _check_rtol(rtol: Any) -> float:
    if isinstance(rtol, bool) or not isinstance(rtol, numbers.Real):
        raise TypeError(f"rtol must be a real number, got {type(rtol).__name__}")
    rtol = float(rtol)
    # rtol >= 1 accepts x = 0; rtol below about 1e-15 cannot be met in float64.
    if not 1e-15 <= rtol < 1:
        raise ValueError(f"rtol must be in [1e-15, 1), got {rtol}")
    return rtol


def _config(
    family: str,
    n_samples: int,
    n: int,
    seed: int,
    shard_size: int,
    strategy: str,
    order: str,
    rtol: float,
    family_options: dict[str, Any] | None,
) -> dict[str, Any]:
    """Validate every argument and return the normalised configuration."""
    family = _check_choice(family, "family", FAMILIES)
    n_samples = check_positive_int(n_samples, "n_samples")
    n = check_positive_int(n, "n", minimum=2)
    seed = check_positive_int(seed, "seed", minimum=0)
    shard_size = check_positive_int(shard_size, "shard_size")
    strategy = _check_choice(strategy, "strategy", STRATEGIES)
    order = _check_choice(order, "order", ORDERS)
    rtol = _check_rtol(rtol)
    opts = _family_options(family, family_options)
    _check_strategy_fits(family, strategy, n_samples, shard_size)
    # Build sample 0's system: it checks the family options against the grid (a
    # wavenumber on a discrete eigenvalue, say) before any file is touched.
    spec = _FAMILIES[family]
    _, params = spec.draw(np.random.default_rng([seed, 0]), n, opts)
    spec.build(params, n, opts, spec.shared(n, opts))
    return {
        "family": family,
        "n_samples": n_samples,
        "n": n,
        "seed": seed,
        "shard_size": shard_size,
        "strategy": strategy,
        "order": order,
        "rtol": rtol,
        "family_options": opts,
    }
