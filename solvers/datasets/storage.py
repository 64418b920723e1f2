"""On-disk format of a data set: atomic writes, manifest, order file, shards, and reading.

The folder layout is described in the :mod:`solvers.datasets` package docstring.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

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


def load_dataset(
    out: str | os.PathLike[str], *, allow_partial: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read a data set written by :func:`solvers.datasets.generate_dataset`, in sample-id order.

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
