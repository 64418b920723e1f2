"""The summary table, shared by the terminal (rich) and ``report.md`` (Markdown)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from validation.registry import Record

__all__ = ["COLUMNS", "markdown_table", "rich_table", "rows"]

COLUMNS: tuple[str, ...] = (
    "case",
    "method",
    "peer",
    "time [s]",
    "peer time [s]",
    "speedup",
    "iters",
    "peer iters",
    "rel_residual",
    "peer rel_residual",
    "note",
)
_NUMERIC = frozenset(COLUMNS[3:10])


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _iterations(metrics: dict[str, Any]) -> str:
    # Sequence suites report a mean per system, which is rarely a whole number.
    value = metrics.get("iterations")
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.4g}"


def _residual(metrics: dict[str, Any]) -> str:
    value = metrics.get("rel_residual")
    return "-" if value is None else f"{value:.1e}"


def _note(record: Record) -> str:
    if record.skipped is not None:
        return f"skipped: {record.skipped}"
    unconverged = [
        who
        for who, metrics in (("numlib", record.metrics), ("peer", record.peer_metrics))
        if metrics.get("converged") is False
    ]
    return " and ".join(unconverged) + " not converged" if unconverged else ""


def rows(records: Sequence[Record]) -> list[list[str]]:
    """Format one row of :data:`COLUMNS` per record."""
    return [
        [
            r.case,
            r.method,
            r.peer,
            _seconds(r.time_s),
            _seconds(r.peer_time_s),
            "-" if r.speedup is None else f"{r.speedup:.2f}x",
            _iterations(r.metrics),
            _iterations(r.peer_metrics),
            _residual(r.metrics),
            _residual(r.peer_metrics),
            _note(r),
        ]
        for r in records
    ]


def rich_table(records: Sequence[Record], title: str) -> Table:
    """Build the table for the terminal."""
    table = Table(title=title)
    # Text, not str: rich would read "[s]" or an error message's brackets as markup.
    for column in COLUMNS:
        table.add_column(Text(column), justify="right" if column in _NUMERIC else "left")
    for row in rows(records):
        table.add_row(*(Text(cell) for cell in row))
    return table


def markdown_table(records: Sequence[Record]) -> str:
    """Render the table as GitHub-flavoured Markdown."""
    align = ["---:" if column in _NUMERIC else ":---" for column in COLUMNS]
    lines = [_md_row(COLUMNS), _md_row(align)]
    lines += [_md_row(row) for row in rows(records)]
    return "\n".join(lines) + "\n"


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"
