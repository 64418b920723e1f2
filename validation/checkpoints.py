"""Finished benchmark work kept on disk, so that an interrupted run resumes where it stopped.

``numlib-bench`` saves the records of every case as it finishes, under
``<out>/partial/``, and ``--resume`` reuses them instead of running the case again. A
long case can keep finer steps the same way: :func:`cached` inside a case stores its
records in the case's own folder, so a resumed case repeats only the steps it had not
finished (the ``compress`` suite does this per recipe). Outside a run (a case called
directly, as the tests do) :func:`cached` just computes.

Records are stored as the JSON of ``results.json`` (non-finite numbers become null),
their residual histories as ``.npz`` arrays beside it (never pickled); other results of a
step (:func:`cached_json`, e.g. an MPI job's output) as JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np

from validation.registry import Record

__all__ = ["Store", "cached", "cached_json", "resumable"]

T = TypeVar("T")

_CURRENT: ContextVar[Store | None] = ContextVar("numlib_bench_store", default=None)


class Store:
    """A folder of finished steps: ``<key>.json`` records and ``<key>.npz`` histories.

    Parameters
    ----------
    folder : pathlib.Path
        Created on the first save.
    resume : bool
        Whether :meth:`load` returns what an earlier run saved. Without it the steps
        are recomputed (and saved again).
    """

    def __init__(self, folder: Path, *, resume: bool) -> None:
        self.folder = folder
        self.resume = resume

    def _path(self, key: str, suffix: str) -> Path:
        # keys come from case and recipe names ("nm-2:4"): keep them portable file names
        return self.folder / (re.sub(r"[^A-Za-z0-9._-]", "_", key) + suffix)

    def load_json(self, key: str) -> Any:
        """Return the JSON value saved under ``key``, or None when there is none to reuse."""
        path = self._path(key, ".json")
        if not self.resume or not path.is_file():
            return None
        return json.loads(path.read_text())

    def save_json(self, key: str, value: Any) -> None:
        """Write ``value`` under ``key`` atomically: a file that exists is complete."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self._path(key, ".json")
        partial = path.with_suffix(".json.tmp")
        partial.write_text(json.dumps(value))
        os.replace(partial, path)

    def load(self, key: str) -> list[Record] | None:
        """Return the records saved under ``key``, or None when there are none to reuse."""
        saved = self.load_json(key)
        if saved is None:
            return None
        records = [Record.from_json(item) for item in saved]
        histories = self._path(key, ".npz")
        if histories.is_file():
            with np.load(histories, allow_pickle=False) as arrays:
                records = [
                    replace(
                        r, history=arrays.get(f"history_{i}"), peer_history=arrays.get(f"peer_{i}")
                    )
                    for i, r in enumerate(records)
                ]
        return records

    def save(self, key: str, records: list[Record]) -> None:
        """Write ``records`` under ``key``: histories first, the JSON (the mark of done) last."""
        arrays = {
            f"{name}_{i}": h
            for i, r in enumerate(records)
            for name, h in (("history", r.history), ("peer", r.peer_history))
            if h is not None
        }
        histories = self._path(key, ".npz")
        if arrays:
            self.folder.mkdir(parents=True, exist_ok=True)
            np.savez(histories, **arrays)
        else:  # an interrupted earlier save may have left another step's histories
            histories.unlink(missing_ok=True)
        self.save_json(key, [r.to_json() for r in records])

    def sub(self, key: str) -> Store:
        """Return the store of the steps inside step ``key``."""
        return Store(self._path(key, ""), resume=self.resume)

    def clear(self) -> None:
        """Remove everything saved (a run that does not resume starts afresh)."""
        shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def resumable(store: Store) -> Iterator[Store]:
    """Make ``store`` the one :func:`cached` uses inside the block."""
    token = _CURRENT.set(store)
    try:
        yield store
    finally:
        _CURRENT.reset(token)


def cached(key: str, compute: Callable[[], list[Record]]) -> list[Record]:
    """Return the records of step ``key``: reused from the store, else computed and saved.

    ``compute`` runs with ``key``'s own sub-store current, so steps nested in it are
    kept too. A step that raises saves nothing and is run again on resume.
    """
    store = _CURRENT.get()
    if store is None:
        return compute()
    found = store.load(key)
    if found is not None:
        return found
    with resumable(store.sub(key)):
        records = compute()
    store.save(key, records)
    return records


def cached_json(key: str, compute: Callable[[], T], *, keep: Callable[[T], bool]) -> T:
    """Return step ``key``'s JSON-able result: reused from the store, else computed.

    The result is saved only when ``keep(result)`` holds, so a failure reported as a
    value (not raised) is tried again on resume.
    """
    store = _CURRENT.get()
    if store is None:
        return compute()
    found = store.load_json(key)
    if found is not None:
        return cast(T, found)
    result = compute()
    if keep(result):
        store.save_json(key, result)
    return result
