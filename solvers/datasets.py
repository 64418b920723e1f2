"""Neural-operator training data: many related PDE solves, written in resumable shards.

:func:`generate_dataset` draws ``n_samples`` random parameter fields of one PDE
family, orders the samples so that neighbours in the solve sequence have similar
matrices (the sorting step of SKR [1]_), and solves the ordered sequence with
:func:`solvers.recycle.solve_sequence` shard by shard. Each shard is one ``.npz``
file written atomically, so an interrupted run (Ctrl-C, a killed job) leaves only
complete shards behind and the same call picks up where it stopped.

Reproducibility. Sample ``i`` draws its parameters from
``numpy.random.default_rng([seed, i])`` alone, so its input does not depend on the
order, the sharding or on resumption. The global solve order is computed once and
saved (``order.npy``); a resumed run reuses it, so the shards of one data set always
hold the same samples, solved in the same order from the same starting point (each
shard is a fresh ``solve_sequence`` call under a fixed seed). A resumed run therefore
stores bit-for-bit the same arrays as an uninterrupted one (only the recorded solve
times differ).

Folder layout::

    out/manifest.json       configuration, numlib version, finished shards
    out/order.npy           the global solve order (a permutation of the sample ids)
    out/shard-00000.npz     index, input, solution, rel_residual, iterations,
                            solve_time, strategy

Every file is written under a temporary name (``*.tmp``) in the same folder and
moved into place with :func:`os.replace`, which is atomic on POSIX and Windows.
Only one process may write to a folder at a time.

Families (``input`` is what a neural operator reads, ``solution`` what it predicts;
GRF is :func:`solvers.fields.gaussian_random_field` with the family's ``alpha``
and ``tau``):

``"darcy"``
    ``-∇·(a ∇u) = 1`` with ``u = 0`` on the boundary, cell-centred
    (:func:`solvers.problems.darcy`), permeability ``a = exp(GRF)``. Input ``a``,
    shape ``(n, n)``. A different SPD matrix per sample.
``"helmholtz"``
    ``-Δu - k²u = f`` with ``u = 0`` on the boundary (:func:`solvers.problems.helmholtz`'s
    matrix), fixed wavenumber ``k`` (default 10: indefinite, since ``k > π√2``, and
    about 40 nodes per wavelength at ``n = 64``), source ``f = GRF``. Input ``f``,
    shape ``(n, n)``. One symmetric indefinite matrix for all samples.
``"convection_diffusion"``
    ``-Δu + Pe (w·∇u) = 1`` with ``u = 0`` on the boundary
    (:func:`solvers.problems.convection_diffusion`), wind ``w = (cos θ, sin θ)``
    with ``θ ~ U[0, 2π)`` and ``Pe ~ U[peclet_min, peclet_max]``, upwind
    differences by default (stable for every ``Pe``). Input: the velocity field
    ``Pe·w`` as two constant channels, shape ``(2, n, n)``. A different
    nonsymmetric matrix per sample; the ordering uses ``Pe·w`` itself.
``"heat"``
    One implicit-Euler step ``(I + dt L) u_new = u_prev`` with ``u = 0`` on the
    boundary (:func:`solvers.problems.heat_step`), ``u_prev = GRF``. Input
    ``u_prev``, shape ``(n, n)``; solution ``u_new``. One SPD matrix for all samples.
``"poisson"``
    ``-Δu = f`` with ``u = 0`` on the boundary (:func:`solvers.problems.poisson2d`'s
    matrix), ``f = GRF``. Input ``f``, shape ``(n, n)``. One SPD matrix for all
    samples, so ``strategy="auto"`` factorises it once.

References
----------
.. [1] H. Wang, Z. Hao, J. Wang, Z. Geng, Z. Wang, B. Li, F. Wu, "Accelerating
   data generation for neural operators via Krylov subspace recycling", ICLR 2024.
.. [2] Z. Li et al., "Fourier neural operator for parametric partial differential
   equations", ICLR 2021.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import numbers
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import numlib
from numlib.validate import check_positive_int
from solvers.fields import gaussian_random_field
from solvers.ordering import order_systems, parameter_features
from solvers.problems import convection_diffusion, darcy, heat_step, helmholtz, poisson2d
from solvers.recycle import STRATEGIES, solve_sequence

__all__ = [
    "FAMILIES",
    "ORDERS",
    "STRATEGIES",
    "DatasetInfo",
    "DatasetMismatchError",
    "generate_dataset",
    "load_dataset",
    "main",
]

MANIFEST = "manifest.json"
ORDER_FILE = "order.npy"
_FORMAT = "numlib-dataset/1"
# Every shard holds these arrays (``strategy`` a 0-d string array, never an object):
# enough to rebuild its manifest entry from the file alone.
_SHARD_KEYS = (
    "index",
    "input",
    "solution",
    "rel_residual",
    "iterations",
    "solve_time",
    "strategy",
)
# Temporary names this module writes; only these are cleaned up on start.
_TEMPORARIES = ("shard-*.npz.tmp", MANIFEST + ".tmp", ORDER_FILE + ".tmp")
# Ordering methods of solvers.ordering.order_systems.
ORDERS = ("greedy", "curve", "none")
# Field values drawn at once while computing ordering features.
_FEATURE_CHUNK_VALUES = 1 << 22
# The configuration keys that must agree before a run may add shards to a folder.
_CONFIG_KEYS = (
    "family",
    "n_samples",
    "n",
    "seed",
    "shard_size",
    "strategy",
    "order",
    "rtol",
    "family_options",
)


class DatasetMismatchError(ValueError):
    """The output folder already holds a data set generated with another configuration."""


@dataclass(frozen=True)
class DatasetInfo:
    """Summary of a :func:`generate_dataset` run.

    Attributes
    ----------
    out : pathlib.Path
        The data set folder.
    n_samples : int
        Samples in the (now complete) data set.
    shards_written : int
        Shards solved and written by this call.
    shards_skipped : int
        Shards found finished on disk and left as they were (resumption).
    solve_time_s : float
        Wall time of the ``solve_sequence`` calls over all shards of the data set,
        including those written by earlier, interrupted runs.
    strategy : str
        The strategy ``solve_sequence`` resolved to (``"auto"`` resolved); shards
        that resolved differently are listed comma-separated.
    mean_iterations : float
        Mean iteration count per sample over the whole data set (0 for direct
        solves).
    max_rel_residual : float
        Largest recomputed ``||b - A x|| / ||b||`` over the data set.
    unconverged : int
        Samples whose recomputed relative residual exceeds ``rtol``.
    """

    out: Path
    n_samples: int
    shards_written: int
    shards_skipped: int
    solve_time_s: float
    strategy: str
    mean_iterations: float
    max_rel_residual: float
    unconverged: int


# ---------------------------------------------------------------------------
# Families: how a sample's parameters are drawn and turned into a linear system.
# ---------------------------------------------------------------------------

Params = dict[str, Any]


def _no_shared(n: int, opts: Params) -> None:
    return None


@dataclass(frozen=True)
class _Family:
    """One PDE family.

    ``draw(rng, n, opts)`` returns the stored input and the parameters ``build``
    needs; ``shared(n, opts)`` builds the matrix common to all samples (``None``
    when the matrix varies); ``build(params, n, opts, shared)`` returns ``(A, b)``;
    ``features(inputs)`` maps a stack of inputs to ordering features. ``spd`` says
    whether the matrices are symmetric positive definite (for every option value).
    """

    defaults: dict[str, Any]
    spd: bool
    draw: Callable[[np.random.Generator, int, Params], tuple[np.ndarray, Params]]
    build: Callable[[Params, int, Params, Any], tuple[Any, np.ndarray]]
    shared: Callable[[int, Params], Any] = _no_shared
    features: Callable[[np.ndarray], np.ndarray] = lambda inputs: parameter_features(inputs)


def _grf(rng: np.random.Generator, n: int, opts: Params) -> np.ndarray:
    return gaussian_random_field((n, n), alpha=opts["alpha"], tau=opts["tau"], rng=rng)


def _field_draw(
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Callable[[np.random.Generator, int, Params], tuple[np.ndarray, Params]]:
    def draw(rng: np.random.Generator, n: int, opts: Params) -> tuple[np.ndarray, Params]:
        field = _grf(rng, n, opts)
        if transform is not None:
            field = transform(field)
        return field, {"field": field}

    return draw


def _rhs_build(params: Params, n: int, opts: Params, shared: Any) -> tuple[Any, np.ndarray]:
    # Constant-matrix families: every system gets the very same matrix object, so
    # solve_sequence can recognise the family as constant without comparing entries.
    return shared, params["field"].ravel()


def _darcy_build(params: Params, n: int, opts: Params, shared: Any) -> tuple[Any, np.ndarray]:
    system = darcy(n, coefficient=params["field"])
    return system.A, system.b


def _convection_draw(rng: np.random.Generator, n: int, opts: Params) -> tuple[np.ndarray, Params]:
    angle = float(rng.uniform(0.0, 2.0 * math.pi))
    peclet = float(rng.uniform(opts["peclet_min"], opts["peclet_max"]))
    velocity = peclet * np.array([math.cos(angle), math.sin(angle)])
    field = np.broadcast_to(velocity[:, None, None], (2, n, n)).copy()
    return field, {"peclet": peclet, "angle": angle}


def _convection_build(params: Params, n: int, opts: Params, shared: Any) -> tuple[Any, np.ndarray]:
    # The matrix does not depend on the manufactured solution; the data set's
    # right-hand side is f = 1 with zero boundary values.
    system = convection_diffusion(n, params["peclet"], angle=params["angle"], scheme=opts["scheme"])
    return system.A, np.ones(n * n)


def _convection_features(inputs: np.ndarray) -> np.ndarray:
    # The channels are constant: the velocity vector is the whole parameter, and
    # nearby velocities give nearby matrices.
    return inputs[:, :, 0, 0]


_GRF_DEFAULTS = {"alpha": 2.5, "tau": 7.0}

_FAMILIES: dict[str, _Family] = {
    "darcy": _Family(
        defaults=dict(_GRF_DEFAULTS),
        spd=True,
        draw=_field_draw(np.exp),
        build=_darcy_build,
    ),
    "helmholtz": _Family(
        defaults={"k": 10.0, **_GRF_DEFAULTS},
        spd=False,  # indefinite once k² passes the smallest Laplacian eigenvalue
        draw=_field_draw(),
        build=_rhs_build,
        shared=lambda n, opts: helmholtz(n, opts["k"]).A,
    ),
    "convection_diffusion": _Family(
        defaults={"peclet_min": 1.0, "peclet_max": 50.0, "scheme": "upwind"},
        spd=False,
        draw=_convection_draw,
        build=_convection_build,
        features=_convection_features,
    ),
    "heat": _Family(
        defaults={"dt": 1e-3, **_GRF_DEFAULTS},
        spd=True,
        draw=_field_draw(),
        build=_rhs_build,
        # heat_step's right-hand side without a source is u_prev itself.
        shared=lambda n, opts: heat_step(n, opts["dt"], u_prev=np.zeros((n, n))).A,
    ),
    "poisson": _Family(
        defaults=dict(_GRF_DEFAULTS),
        spd=True,
        draw=_field_draw(),
        build=_rhs_build,
        shared=lambda n, opts: poisson2d(n).A,
    ),
}

FAMILIES = tuple(_FAMILIES)
# Strategies that rely on symmetric positive definite matrices (CG underneath).
_SPD_STRATEGIES = ("amg-reuse", "deflated-cg", "cg")
"""The PDE families :func:`generate_dataset` can produce."""


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


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
            f"family {family!r} does not have; use 'auto', 'gcrodr', 'ilu-reuse', "
            "'warm-start' or 'gmres'"
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


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------


def _shard_name(k: int) -> str:
    return f"shard-{k:05d}.npz"


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable after a power cut; not possible on Windows,
    # where opening a directory fails, and not needed for Ctrl-C.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """Write through ``write(file)`` to ``path.tmp``, then rename onto ``path``.

    A reader sees either the old file or the complete new one, never a partial
    file; an exception (KeyboardInterrupt included) removes the temporary file.
    """
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    _atomic_write(path, lambda fh: fh.write(text.encode()))


def _read_manifest(out: Path) -> dict[str, Any] | None:
    path = out / MANIFEST
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetMismatchError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise DatasetMismatchError(f"{path} is not a numlib data set manifest ({_FORMAT})")
    return data


def _check_same_config(manifest: dict[str, Any], config: dict[str, Any], out: Path) -> None:
    # Compare through JSON so that tuples/lists and ints/floats read back from the
    # file compare as what was written.
    wanted = json.loads(json.dumps(config))
    differences = [
        f"{key}: folder has {manifest.get(key)!r}, requested {wanted[key]!r}"
        for key in _CONFIG_KEYS
        if manifest.get(key) != wanted[key]
    ]
    if differences:
        raise DatasetMismatchError(
            f"{out} already holds a data set with a different configuration; use another "
            "folder or repeat the original arguments to resume. Differences: "
            + "; ".join(differences)
        )


def _load_order(out: Path, n_samples: int) -> np.ndarray | None:
    path = out / ORDER_FILE
    if not path.exists():
        return None
    try:
        order = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DatasetMismatchError(f"cannot read {path}: {exc}") from None
    if order.shape != (n_samples,) or not np.array_equal(np.sort(order), np.arange(n_samples)):
        raise DatasetMismatchError(f"{path} is not a permutation of the {n_samples} sample ids")
    return order


def _finished_shard(path: Path, ids: np.ndarray, rtol: float) -> dict[str, Any] | None:
    """Return the manifest entry of a complete shard at ``path``, or None if it must be redone.

    Only the small arrays are read (``npz`` members load lazily), so checking a
    large data set on resume costs little.
    """
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if set(data.files) != set(_SHARD_KEYS):
                raise ValueError(f"members {sorted(data.files)}, expected {sorted(_SHARD_KEYS)}")
            index = data["index"]
            iterations = data["iterations"]
            rel_residual = data["rel_residual"]
            solve_time = float(data["solve_time"])
            strategy = str(data["strategy"])
    except (OSError, ValueError, KeyError) as exc:
        # Shards are only ever renamed into place complete, so this is damage from
        # outside (a copy cut short, a full disk); the data are reproducible, so
        # solve the shard again rather than stop.
        warnings.warn(f"{path} is unreadable ({exc}); solving it again", stacklevel=3)
        path.unlink()
        return None
    if not np.array_equal(index, ids):
        raise DatasetMismatchError(
            f"{path} holds samples {index.tolist()[:5]}..., not the ones this "
            "configuration puts in that shard"
        )
    return _shard_entry(path.name, solve_time, iterations, rel_residual, strategy, rtol)


def _shard_entry(
    name: str,
    solve_time: float,
    iterations: np.ndarray,
    rel_residual: np.ndarray,
    strategy: str,
    rtol: float,
) -> dict[str, Any]:
    return {
        "file": name,
        "samples": int(rel_residual.size),
        "solve_time_s": round(float(solve_time), 6),
        "strategy": strategy,
        "mean_iterations": float(np.mean(iterations)),
        "max_rel_residual": float(np.max(rel_residual)),
        "rel_residuals_above_rtol": int(np.count_nonzero(rel_residual > rtol)),
    }


# ---------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------


def _draw(config: dict[str, Any], ids: Sequence[int]) -> Iterator[tuple[np.ndarray, Params]]:
    spec = _FAMILIES[config["family"]]
    for i in ids:
        rng = np.random.default_rng([config["seed"], int(i)])
        yield spec.draw(rng, config["n"], config["family_options"])


def _global_order(config: dict[str, Any]) -> np.ndarray:
    """Return the solve order of all samples: ``order_systems`` on the family's features."""
    n_samples = config["n_samples"]
    if n_samples == 1:
        return np.zeros(1, dtype=np.int64)
    spec = _FAMILIES[config["family"]]
    # Features are per sample (no PCA), so the inputs are drawn and reduced a chunk at
    # a time: memory stays O(n_samples * features) however large the data set.
    chunk = max(1, _FEATURE_CHUNK_VALUES // config["n"] ** 2)
    features = np.concatenate(
        [
            spec.features(np.stack([field for field, _ in _draw(config, ids)]))
            for ids in np.array_split(np.arange(n_samples), -(-n_samples // chunk))
        ]
    )
    order = np.asarray(order_systems(features, method=config["order"]), dtype=np.int64)
    if order.shape != (n_samples,) or not np.array_equal(np.sort(order), np.arange(n_samples)):
        raise RuntimeError("order_systems did not return a permutation of the samples")
    return order


def _solve_shard(
    config: dict[str, Any], k: int, ids: np.ndarray, advance: Callable[[int], None]
) -> tuple[dict[str, np.ndarray], str]:
    """Build and solve the systems of one shard, in the order of ``ids``."""
    spec = _FAMILIES[config["family"]]
    n, opts = config["n"], config["family_options"]
    shared = spec.shared(n, opts)
    inputs, systems = [], []
    for field, params in _draw(config, ids):
        inputs.append(field)
        systems.append(spec.build(params, n, opts, shared))
    start = time.perf_counter()
    # A fresh solve_sequence per shard: a shard's solutions then depend on that
    # shard alone, which is what makes resumed runs reproduce uninterrupted ones.
    result = solve_sequence(
        systems,
        strategy=config["strategy"],
        order=np.arange(len(systems)),
        rtol=config["rtol"],
        progress=lambda done, total: advance(done),
    )
    solve_time = time.perf_counter() - start
    solutions = np.stack([np.asarray(x, dtype=np.float64) for x in result.solutions])
    rel_residual = np.array(
        [
            np.linalg.norm(b - A @ x) / np.linalg.norm(b)
            for (A, b), x in zip(systems, solutions, strict=True)
        ]
    )
    arrays = {
        "index": ids.astype(np.int64),
        "input": np.stack(inputs),
        "solution": solutions.reshape(len(ids), n, n),
        "rel_residual": rel_residual,
        "iterations": np.array([r.iterations for r in result.results], dtype=np.int64),
        "solve_time": np.array(solve_time),
        "strategy": np.array(str(result.strategy)),
    }
    return arrays, str(result.strategy)


def _progress_bar(enabled: bool) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )


def generate_dataset(
    family: str,
    n_samples: int,
    out: str | os.PathLike[str],
    *,
    n: int,
    shard_size: int = 50,
    seed: int = 0,
    strategy: str = "auto",
    order: str = "greedy",
    rtol: float = 1e-8,
    family_options: dict[str, Any] | None = None,
    progress: bool = True,
) -> DatasetInfo:
    """Generate (or finish) a data set of ``n_samples`` solved PDE systems in ``out``.

    The samples' parameters are drawn first (cheap), turned into features and put in
    one global order by :func:`solvers.ordering.order_systems`, so that consecutive
    systems are similar [1]_. The ordered sequence is cut into shards of
    ``shard_size``; each shard not yet on disk is built, solved with
    :func:`solvers.recycle.solve_sequence` (recycling within the shard) and
    written atomically. See the module docstring for the families, the folder
    layout and the reproducibility guarantee.

    Resumption: calling again with the same arguments after an interruption skips
    the finished shards, removes leftover temporary files and writes the rest; the
    result is identical to an uninterrupted run. A folder holding a data set with a
    different configuration is refused, never mixed.

    Parameters
    ----------
    family : {"darcy", "helmholtz", "convection_diffusion", "heat", "poisson"}
        The PDE family (see the module docstring).
    n_samples : int
        Number of samples, ``>= 1``.
    out : str or os.PathLike
        Output folder; created if missing.
    n : int
        Grid size: cells (Darcy) or interior nodes per dimension, ``>= 2``.
    shard_size : int, default 50
        Samples per shard file, ``>= 1``. Smaller shards lose less work to an
        interruption; larger ones recycle Krylov information across more systems.
    seed : int, default 0
        Non-negative seed; sample ``i`` uses ``numpy.random.default_rng([seed, i])``.
    strategy : str, default "auto"
        One of :data:`STRATEGIES`, passed to ``solve_sequence``.
    order : {"greedy", "curve", "none"}, default "greedy"
        Ordering method of :func:`solvers.ordering.order_systems`: the SKR greedy
        nearest-neighbour walk (``O(N²)``), a Hilbert curve (``O(N log N)``, for very
        many samples) or the sample-id order.
    rtol : float, default 1e-8
        Relative residual tolerance ``||b - A x|| <= rtol ||b||``, in ``[1e-15, 1)``.
    family_options : dict, optional
        Overrides of the family's parameters: ``alpha``, ``tau`` (GRF; all but
        convection-diffusion), ``k`` (Helmholtz, default 10), ``dt`` (heat, default
        1e-3), ``peclet_min``, ``peclet_max``, ``scheme`` (convection-diffusion,
        defaults 1, 50, ``"upwind"``).
    progress : bool, default True
        Show a rich progress bar over samples (on stderr).

    Returns
    -------
    DatasetInfo
        What was written, skipped, and how the solves went.

    Raises
    ------
    TypeError
        If an argument has the wrong type (a non-integer ``n``, a non-dict
        ``family_options`` ...).
    ValueError
        If ``family``, ``strategy`` or ``order`` is unknown, ``n_samples < 1``,
        ``shard_size < 1``, ``n < 2``, ``seed < 0``, ``rtol`` is outside
        ``[1e-15, 1)``, or ``family_options`` has an unknown key or a bad value. All
        are checked before anything is written.
    DatasetMismatchError
        If ``out`` holds a data set made with a different configuration (a
        ``ValueError`` subclass).

    Warns
    -----
    UserWarning
        If a sample's recomputed relative residual exceeds ``rtol`` (the shard is
        kept; the count is in the result and the manifest).

    Notes
    -----
    Interrupting (Ctrl-C) loses at most the shard being solved. Only one process
    may write to ``out`` at a time. Memory: the ordering step holds the features of
    all samples (``min(n, 12)²`` numbers each) and solving one shard's systems.

    References
    ----------
    .. [1] H. Wang et al., "Accelerating data generation for neural operators via
       Krylov subspace recycling", ICLR 2024.
    """
    config = _config(family, n_samples, n, seed, shard_size, strategy, order, rtol, family_options)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out must be a folder, but {out} is a file")
    out.mkdir(parents=True, exist_ok=True)

    manifest = _read_manifest(out)
    if manifest is None:
        if any(out.glob("shard-*.npz")):
            raise DatasetMismatchError(
                f"{out} holds shard files but no {MANIFEST}; refusing to mix data sets"
            )
    else:
        _check_same_config(manifest, config, out)
    for pattern in _TEMPORARIES:
        for leftover in out.glob(pattern):
            # Temporary files of an interrupted write: never complete, never counted.
            leftover.unlink()

    sample_order = _load_order(out, n_samples) if manifest is not None else None
    if sample_order is None:
        sample_order = _global_order(config)
        _atomic_write(out / ORDER_FILE, lambda fh: np.save(fh, sample_order))

    n_shards = -(-n_samples // shard_size)
    chunks = [sample_order[k * shard_size : (k + 1) * shard_size] for k in range(n_shards)]
    entries: dict[int, dict[str, Any]] = {}
    for k, ids in enumerate(chunks):
        # The shard files are the truth (the manifest may lag them by one, when a
        # run stopped between the two renames); each holds its own summary.
        entry = _finished_shard(out / _shard_name(k), ids, config["rtol"])
        if entry is not None:
            entries[k] = entry
    skipped = len(entries)

    def save_manifest() -> None:
        _write_json(
            out / MANIFEST,
            {
                "format": _FORMAT,
                **config,
                "numlib_version": numlib.__version__,
                "n_shards": n_shards,
                "complete": len(entries) == n_shards,
                "shards": [entries[k] for k in sorted(entries)],
            },
        )

    # Written before solving, so that the folder is claimed by this configuration
    # even if the first shard is interrupted.
    save_manifest()

    written = 0
    with _progress_bar(progress) as bar:
        task = bar.add_task(f"{family} n={n}", total=n_samples)
        bar.update(task, completed=sum(chunks[k].size for k in entries))
        for k, ids in enumerate(chunks):
            if k in entries:
                continue
            base = bar.tasks[0].completed

            def advance(done: int, base: float = base) -> None:
                bar.update(task, completed=base + done)

            arrays, used = _solve_shard(config, k, ids, advance)
            bar.update(task, completed=base + ids.size)
            path = out / _shard_name(k)
            _atomic_write(path, lambda fh, arrays=arrays: np.savez(fh, **arrays))
            entry = _shard_entry(
                path.name,
                float(arrays["solve_time"]),
                arrays["iterations"],
                arrays["rel_residual"],
                used,
                config["rtol"],
            )
            if entry["rel_residuals_above_rtol"]:
                warnings.warn(
                    f"{entry['rel_residuals_above_rtol']} sample(s) in {path.name} have a "
                    f"relative residual above rtol={config['rtol']:g} (largest "
                    f"{entry['max_rel_residual']:.3g}); kept and recorded in the manifest",
                    stacklevel=2,
                )
            entries[k] = entry
            written += 1
            save_manifest()

    return _summary(out, config, entries, written, skipped)


def _summary(
    out: Path,
    config: dict[str, Any],
    entries: dict[int, dict[str, Any]],
    written: int,
    skipped: int,
) -> DatasetInfo:
    shards = list(entries.values())
    samples = sum(e["samples"] for e in shards)
    strategies = sorted({e["strategy"] for e in shards})
    unconverged = sum(e["rel_residuals_above_rtol"] for e in shards)
    return DatasetInfo(
        out=out,
        n_samples=config["n_samples"],
        shards_written=written,
        shards_skipped=skipped,
        solve_time_s=sum(e["solve_time_s"] for e in shards),
        strategy=",".join(strategies),
        mean_iterations=sum(e["mean_iterations"] * e["samples"] for e in shards) / samples,
        max_rel_residual=max(e["max_rel_residual"] for e in shards),
        unconverged=unconverged,
    )


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------


def load_dataset(
    out: str | os.PathLike[str], *, allow_partial: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read a data set written by :func:`generate_dataset`, in sample-id order.

    Files are read with ``numpy.load(..., allow_pickle=False)``: nothing is ever
    unpickled, so a data set from an untrusted source cannot run code.

    Parameters
    ----------
    out : str or os.PathLike
        The data set folder.
    allow_partial : bool, default False
        Return the finished shards of an incomplete data set instead of raising.

    Returns
    -------
    inputs : numpy.ndarray
        ``(N, n, n)`` parameter fields (``(N, 2, n, n)`` for convection-diffusion).
    solutions : numpy.ndarray
        ``(N, n, n)`` solution fields.
    index : numpy.ndarray
        ``(N,)`` sample ids, increasing; ``0..n_samples-1`` for a complete data set.

    Raises
    ------
    FileNotFoundError
        If ``out`` has no manifest.
    ValueError
        If the data set is incomplete and ``allow_partial`` is False, or the shards
        are inconsistent (a sample stored twice, an id out of range).
    """
    out = Path(out)
    manifest = _read_manifest(out)
    if manifest is None:
        raise FileNotFoundError(f"{out} holds no {MANIFEST}: not a numlib data set")
    n_samples = int(manifest["n_samples"])
    inputs, solutions, index = [], [], []
    for path in sorted(out.glob("shard-*.npz")):
        with np.load(path, allow_pickle=False) as data:
            index.append(data["index"])
            inputs.append(data["input"])
            solutions.append(data["solution"])
    if not index:
        if not allow_partial:
            raise ValueError(f"{out} holds no finished shards yet (0 of {n_samples} samples)")
        n = int(manifest["n"])
        empty = np.empty((0, n, n))
        return empty, empty.copy(), np.empty(0, dtype=np.int64)
    ids = np.concatenate(index)
    if ids.size != np.unique(ids).size or ids.min() < 0 or ids.max() >= n_samples:
        raise ValueError(f"{out}: shards hold duplicate or out-of-range sample ids")
    if ids.size < n_samples and not allow_partial:
        raise ValueError(
            f"{out} is incomplete ({ids.size} of {n_samples} samples); run generate_dataset "
            "again with the same arguments to finish it, or pass allow_partial=True"
        )
    perm = np.argsort(ids, kind="stable")
    return np.concatenate(inputs)[perm], np.concatenate(solutions)[perm], ids[perm]


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def _option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed: Any = float(value)
    except ValueError:
        parsed = value
    return key, parsed


def build_parser() -> argparse.ArgumentParser:
    """Return the ``numlib-dataset`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="numlib-dataset",
        description=(
            "Generate a neural-operator training data set of solved PDE systems, in "
            "resumable shards: rerun the same command after an interruption to finish it."
        ),
    )
    parser.add_argument("family", choices=FAMILIES, help="PDE family")
    parser.add_argument("--samples", type=int, required=True, help="number of samples")
    parser.add_argument("--grid", type=int, required=True, help="grid size n per dimension (n x n)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--shard-size", type=int, default=50, help="samples per shard file")
    parser.add_argument("--seed", type=int, default=0, help="non-negative random seed")
    parser.add_argument("--strategy", choices=STRATEGIES, default="auto", help="solve strategy")
    parser.add_argument("--order", choices=ORDERS, default="greedy", help="ordering of the samples")
    parser.add_argument("--rtol", type=float, default=1e-8, help="relative residual tolerance")
    parser.add_argument(
        "--option",
        type=_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="family option, e.g. --option k=20 or --option scheme=central (repeatable)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``numlib-dataset`` with ``argv`` (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 when the data set is complete, 130 after Ctrl-C (finished shards are kept;
        the same command resumes). Bad arguments and a folder holding another data
        set exit with status 2 through argparse.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    options = dict(args.option) or None
    # Argument errors go through the parser, before any work; errors while solving
    # propagate with their traceback.
    try:
        _config(
            args.family,
            args.samples,
            args.grid,
            args.seed,
            args.shard_size,
            args.strategy,
            args.order,
            args.rtol,
            options,
        )
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
    try:
        info = generate_dataset(
            args.family,
            args.samples,
            args.out,
            n=args.grid,
            shard_size=args.shard_size,
            seed=args.seed,
            strategy=args.strategy,
            order=args.order,
            rtol=args.rtol,
            family_options=options,
            progress=not args.no_progress,
        )
    except DatasetMismatchError as exc:
        parser.error(f"argument --out: {exc}")
    except KeyboardInterrupt:
        print(
            f"interrupted: finished shards in {args.out} are kept; rerun to resume",
            file=sys.stderr,
        )
        return 130
    print(
        f"{info.n_samples} samples in {info.out}: {info.shards_written} shard(s) written, "
        f"{info.shards_skipped} skipped; strategy {info.strategy}, "
        f"{info.mean_iterations:.1f} iterations per sample, "
        f"solve time {info.solve_time_s:.2f} s, max rel. residual {info.max_rel_residual:.2e}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
