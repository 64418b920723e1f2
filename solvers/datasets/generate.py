"""The generation flow: global solve order, shard-by-shard solving, and :func:`generate_dataset`."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import numlib
from solvers.datasets.config import _config
from solvers.datasets.families import _FAMILIES, Params
from solvers.datasets.storage import (
    _FORMAT,
    _TEMPORARIES,
    MANIFEST,
    ORDER_FILE,
    DatasetMismatchError,
    _atomic_write,
    _check_same_config,
    _finished_shard,
    _load_order,
    _read_manifest,
    _shard_entry,
    _shard_name,
    _write_json,
)
from solvers.ordering import order_systems
from solvers.recycle import solve_sequence

# Field values drawn at once while computing ordering features.
_FEATURE_CHUNK_VALUES = 1 << 22


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
    written atomically. See the :mod:`solvers.datasets` package docstring for the
    families, the folder layout and the reproducibility guarantee.

    Resumption: calling again with the same arguments after an interruption skips
    the finished shards, removes leftover temporary files and writes the rest; the
    result is identical to an uninterrupted run. A folder holding a data set with a
    different configuration is refused, never mixed.

    Parameters
    ----------
    family : {"darcy", "helmholtz", "convection_diffusion", "heat", "poisson"}
        The PDE family (see the :mod:`solvers.datasets` package docstring).
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
        One of :data:`solvers.recycle.STRATEGIES`, passed to ``solve_sequence``.
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
    chunks, entries = _open_dataset(out, config)
    n_shards = len(chunks)
    skipped = len(entries)

    written = 0
    with _progress_bar(progress) as bar:
        task = bar.add_task(f"{family} n={n}", total=n_samples)
        bar.update(task, completed=sum(chunks[k].size for k in entries))
        for k, ids in enumerate(chunks):
            if k in entries:
                continue
            entry = _write_shard(out, config, k, ids, bar, task)
            _warn_above_rtol(entry, config["rtol"], stacklevel=2)
            entries[k] = entry
            written += 1
            _write_manifest(out, config, entries, n_shards)

    return _summary(out, config, entries, written, skipped)


def _write_shard(
    out: Path, config: dict[str, Any], k: int, ids: np.ndarray, bar: Any, task: Any
) -> dict[str, Any]:
    """Solve shard ``k`` (the samples ``ids``), write it atomically and return its entry.

    The bar's ``task`` advances over the shard's samples from where it stands.
    Shared by the serial and the MPI generator, so that both write the same shards.
    """
    base = next(t.completed for t in bar.tasks if t.id == task)

    def advance(done: int) -> None:
        bar.update(task, completed=base + done)

    arrays, used = _solve_shard(config, k, ids, advance)
    bar.update(task, completed=base + ids.size)
    path = out / _shard_name(k)
    _atomic_write(path, lambda fh: np.savez(fh, **arrays))
    return _shard_entry(
        path.name,
        float(arrays["solve_time"]),
        arrays["iterations"],
        arrays["rel_residual"],
        used,
        config["rtol"],
    )


def _warn_above_rtol(entry: dict[str, Any], rtol: float, stacklevel: int) -> None:
    """Warn if the shard of manifest ``entry`` kept samples whose residual exceeds ``rtol``.

    ``stacklevel`` counts from the caller, as for :func:`warnings.warn`. Shared by
    the serial and the MPI generator.
    """
    if entry["rel_residuals_above_rtol"]:
        warnings.warn(
            f"{entry['rel_residuals_above_rtol']} sample(s) in {entry['file']} have a "
            f"relative residual above rtol={rtol:g} (largest "
            f"{entry['max_rel_residual']:.3g}); kept and recorded in the manifest",
            stacklevel=stacklevel + 1,
        )


def _open_dataset(
    out: Path, config: dict[str, Any]
) -> tuple[list[np.ndarray], dict[int, dict[str, Any]]]:
    """Claim ``out`` for ``config``; return the sample ids of every shard and the finished ones.

    Creates the folder; refuses shard files without a manifest, or a manifest of another
    configuration (:class:`DatasetMismatchError`); removes the temporaries of an
    interrupted write; loads the global order or computes and writes it; and writes the
    manifest before any shard is solved, so the folder is claimed even if the first
    shard is interrupted. Shared by the serial and the MPI generator.
    """
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

    n_samples, shard_size = config["n_samples"], config["shard_size"]
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
    _write_manifest(out, config, entries, n_shards)
    return chunks, entries


def _write_manifest(
    out: Path, config: dict[str, Any], entries: dict[int, dict[str, Any]], n_shards: int
) -> None:
    """Write the manifest: the configuration and the summary of every finished shard."""
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
