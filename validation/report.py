"""Writers for ``results.json`` and ``report.md``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from validation.machine import summary
from validation.registry import Record
from validation.table import markdown_table

__all__ = ["results", "write_json", "write_markdown"]


def results(
    machine: dict[str, Any], suites: Sequence[str], records: Sequence[Record]
) -> dict[str, Any]:
    """Assemble the ``results.json`` object ``{"machine", "suites", "cases"}`` (DESIGN.md)."""
    return {
        "machine": machine,
        "suites": list(suites),
        "cases": [r.to_json() for r in records],
    }


def write_json(
    path: Path, machine: dict[str, Any], suites: Sequence[str], records: Sequence[Record]
) -> None:
    """Write :func:`results` to ``path`` as strict JSON (no NaN/Infinity)."""
    text = json.dumps(results(machine, suites, records), indent=2, allow_nan=False)
    path.write_text(text + "\n")


def write_markdown(
    path: Path,
    machine: dict[str, Any],
    records: Sequence[Record],
    *,
    size: str,
    repeat: int,
    plots: Sequence[Path],
) -> None:
    """Write the run's table, machine line and plots as Markdown to ``path``.

    Parameters
    ----------
    path : pathlib.Path
        File to write; plots are linked relative to its folder.
    machine : dict
        From :func:`validation.machine.describe_machine`.
    records : sequence of Record
        The run's records.
    size : str
        Problem size of the run.
    repeat : int
        Timed runs per measurement (the best is reported).
    plots : sequence of pathlib.Path
        PNG files to embed.
    """
    lines = [
        "# numlib benchmark report",
        "",
        f"**Machine:** {summary(machine)}",
        "",
        f"Size `{size}`; times are the best of {repeat} run(s), except where a record's "
        "`timed_runs` metric says fewer (whole sequences, references that take tens of "
        "seconds); speedup = peer time / numlib time (> 1: numlib faster), absent where the "
        "two times are not comparable (a peer stopped by a time budget, a comparison of two "
        "peers); rel_residual = ||b - A x|| / ||b|| recomputed from each returned x. All "
        "metrics are in `results.json`.",
        "",
        markdown_table(records),
    ]
    lines += [f"![{plot.stem}]({plot.relative_to(path.parent).as_posix()})\n" for plot in plots]
    path.write_text("\n".join(lines))
