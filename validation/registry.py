"""Registry of benchmark cases and the record every case produces.

A case is a function registered under ``(suite, case name)`` with the sizes it
supports. It is called as ``func(size, repeat=repeat)`` and returns one
:class:`Record` or a list of them, one per (method, peer) comparison it makes.
Suites register their cases when :mod:`validation.suites` is imported.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_SUITES",
    "SIZES",
    "Case",
    "CaseFunction",
    "PlotFunction",
    "Record",
    "case",
    "cases",
    "plot",
    "plotters",
    "suites",
]

SIZES: tuple[str, ...] = ("small", "medium", "large")
DEFAULT_SUITES: tuple[str, ...] = ("krylov", "kron")


@dataclass(frozen=True)
class Record:
    """One comparison of a numlib method against a peer on the same input.

    The JSON form (:meth:`to_json`) is the record of ``results.json`` fixed in
    DESIGN.md, "How performance is shown".

    Attributes
    ----------
    suite, case, size : str
        Where the record comes from.
    method, peer : str
        The numlib method timed, and the peer it is compared with.
    time_s, peer_time_s : float or None
        Best-of-``repeat`` wall time of each; None when skipped.
    metrics, peer_metrics : dict
        Accuracy and cost of each (``iterations``, ``rel_residual``, ``rel_error``,
        ``max_abs_error``, ``memory_mb`` and case-specific names).
    skipped : str or None
        Why the comparison could not run (missing peer, no GPU, an error); the
        key appears in the JSON only when set.
    history, peer_history : numpy.ndarray or None
        Relative residual ``||r_k|| / ||b||`` per iteration, for the plots only;
        never written to ``results.json``, so its shape stays fixed.
    speedup : float or None
        ``peer_time_s / time_s`` (> 1 means numlib is faster); derived, not passed.
    """

    suite: str
    case: str
    size: str
    method: str
    peer: str
    time_s: float | None
    peer_time_s: float | None
    metrics: dict[str, Any] = field(default_factory=dict)
    peer_metrics: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None
    history: np.ndarray | None = field(default=None, repr=False, compare=False)
    peer_history: np.ndarray | None = field(default=None, repr=False, compare=False)
    speedup: float | None = field(init=False)

    def __post_init__(self) -> None:
        ratio = None
        if self.time_s is not None and self.peer_time_s is not None and self.time_s > 0:
            ratio = self.peer_time_s / self.time_s
        # Derived here so that no caller can write a speedup inconsistent with the times.
        object.__setattr__(self, "speedup", ratio)

    @classmethod
    def skip(
        cls, suite: str, case: str, size: str, reason: str, *, method: str = "", peer: str = ""
    ) -> Record:
        """Record a comparison that could not run, with the reason."""
        return cls(suite, case, size, method, peer, None, None, skipped=reason)

    def to_json(self) -> dict[str, Any]:
        """Return the record as the JSON object of ``results.json``.

        Non-finite numbers become ``null`` so that the file is strict JSON.
        """
        out: dict[str, Any] = {
            "suite": self.suite,
            "case": self.case,
            "size": self.size,
            "method": self.method,
            "peer": self.peer,
            "time_s": _plain(self.time_s),
            "peer_time_s": _plain(self.peer_time_s),
            "speedup": _plain(self.speedup),
            "metrics": {k: _plain(v) for k, v in self.metrics.items()},
            "peer_metrics": {k: _plain(v) for k, v in self.peer_metrics.items()},
        }
        if self.skipped is not None:
            out["skipped"] = self.skipped
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Record:
        """Rebuild a record from :meth:`to_json`'s object (without residual histories)."""
        return cls(
            obj["suite"],
            obj["case"],
            obj["size"],
            obj["method"],
            obj["peer"],
            obj["time_s"],
            obj["peer_time_s"],
            obj["metrics"],
            obj["peer_metrics"],
            obj.get("skipped"),
        )


def _plain(value: Any) -> Any:
    """Convert numpy scalars to Python ones and non-finite floats to None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


CaseFunction = Callable[..., "Record | list[Record]"]


@dataclass(frozen=True)
class Case:
    """A registered benchmark case.

    Attributes
    ----------
    suite, name : str
        Registry key.
    sizes : tuple of str
        Sizes the case has a configuration for.
    func : callable
        ``func(size, repeat=repeat)`` returning a Record or a list of them.
    """

    suite: str
    name: str
    sizes: tuple[str, ...]
    func: CaseFunction

    @property
    def summary(self) -> str:
        """First line of the case function's docstring."""
        return (inspect.getdoc(self.func) or "").partition("\n")[0]

    def run(self, size: str, *, repeat: int) -> list[Record]:
        """Run the case at ``size``, or record why it cannot run at that size."""
        if size not in self.sizes:
            return [Record.skip(self.suite, self.name, size, f"no {size!r} configuration")]
        out = self.func(size, repeat=repeat)
        return [out] if isinstance(out, Record) else list(out)


_REGISTRY: dict[tuple[str, str], Case] = {}


def case(
    suite: str, name: str, *, sizes: tuple[str, ...] = SIZES
) -> Callable[[CaseFunction], CaseFunction]:
    """Register the decorated function as case ``name`` of ``suite``.

    Parameters
    ----------
    suite, name : str
        Registry key; registering the same key twice is an error.
    sizes : tuple of str
        The sizes the function accepts, a subset of :data:`SIZES`.

    Returns
    -------
    callable
        A decorator returning the function unchanged.

    Raises
    ------
    ValueError
        For a duplicate key or an unknown size.
    """
    unknown = set(sizes) - set(SIZES)
    if unknown:
        raise ValueError(f"sizes must be among {SIZES}, got {sorted(unknown)}")

    def register(func: CaseFunction) -> CaseFunction:
        if (suite, name) in _REGISTRY:
            raise ValueError(f"case {name!r} is already registered in suite {suite!r}")
        _REGISTRY[suite, name] = Case(suite, name, tuple(sizes), func)
        return func

    return register


def suites() -> list[str]:
    """Return the names of the registered suites, in registration order."""
    return list(dict.fromkeys(suite for suite, _ in _REGISTRY))


def cases(suite: str) -> list[Case]:
    """Return the cases of ``suite``, in registration order."""
    return [c for (s, _), c in _REGISTRY.items() if s == suite]


PlotFunction = Callable[[Sequence[Record], Path], "list[Path]"]

_PLOTTERS: dict[str, list[PlotFunction]] = {}


def plot(suite: str) -> Callable[[PlotFunction], PlotFunction]:
    """Register the decorated function as a plot of ``suite``'s records.

    The CLI calls ``func(records, out_dir)`` with the records of ``suite`` from one run
    (after ``results.json`` is written, so a failing plot cannot lose numbers); it
    returns the paths of the files it wrote (an empty list when the records do not
    suffice).
    """

    def register(func: PlotFunction) -> PlotFunction:
        _PLOTTERS.setdefault(suite, []).append(func)
        return func

    return register


def plotters(suite: str) -> list[PlotFunction]:
    """Return the plot functions registered for ``suite``, in registration order."""
    return list(_PLOTTERS.get(suite, []))
