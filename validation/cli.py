"""The ``numlib-bench`` command: run benchmark cases and write the report.

Usage::

    numlib-bench                          # suite krylov, size medium
    numlib-bench --size large --suite krylov --repeat 5 --out results/
    numlib-bench --size small --case poisson2d-cg
    numlib-bench --list

Writes ``results.json``, ``report.md`` and PNG plots to ``--out``. The exit code
is 1 if any case raised (the others still run and are written), else 0.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import validation.suites  # noqa: F401  (importing it registers every case)
from validation.checkpoints import Store, cached, resumable
from validation.machine import describe_machine
from validation.plots import residual_plots, speedup_plot
from validation.registry import DEFAULT_SUITES, SIZES, Case, Record, cases, plotters, suites
from validation.report import write_json, write_markdown
from validation.table import rich_table

__all__ = ["build_parser", "main"]

_LOG_WIDTH = 180


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of ``numlib-bench``."""
    parser = argparse.ArgumentParser(
        prog="numlib-bench",
        description="Benchmark numlib against its peers (scipy, pyamg, ...) on the same "
        "inputs and write results.json, report.md and PNG plots.",
    )
    parser.add_argument(
        "--suite",
        action="append",
        choices=suites(),
        metavar="NAME",
        help=f"suite to run, repeatable (default: {', '.join(DEFAULT_SUITES)}; "
        f"available: {', '.join(suites())})",
    )
    parser.add_argument(
        "--case",
        action="append",
        metavar="NAME",
        help="run only this case of the selected suites, repeatable",
    )
    parser.add_argument(
        "--size", choices=SIZES, default="medium", help="problem size (default: medium)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench-results"),
        help="output folder (default: bench-results)",
    )
    parser.add_argument(
        "--repeat",
        type=_positive_int,
        default=3,
        help="timed runs per measurement, the best is kept (default: 3)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="reuse the cases (and steps of cases) an interrupted run finished in --out/partial",
    )
    parser.add_argument(
        "--list", action="store_true", help="list suites, cases and their sizes, then exit"
    )
    return parser


def _listing() -> str:
    lines = []
    for suite in suites():
        default = " (default)" if suite in DEFAULT_SUITES else ""
        lines.append(f"{suite}{default}")
        for c in cases(suite):
            lines.append(f"  {c.name:<20} [{', '.join(c.sizes)}]  {c.summary}")
    return "\n".join(lines)


def _select(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[Case]:
    selected = [c for suite in args.suite or DEFAULT_SUITES for c in cases(suite)]
    if args.case:
        known = {c.name for c in selected}
        unknown = [name for name in args.case if name not in known]
        if unknown:
            parser.error(
                f"argument --case: unknown case(s) {', '.join(unknown)}; "
                f"choose from {', '.join(sorted(known))}"
            )
        selected = [c for c in selected if c.name in args.case]
    return selected


def _run_cases(
    selected: Sequence[Case], size: str, repeat: int, store: Store, console: Console
) -> tuple[list[Record], bool]:
    """Run every case, recording a failure instead of stopping at it.

    Each finished case is saved in ``store`` (with the steps it saved itself), and a
    case the store already holds is reused when the store resumes.
    """
    records: list[Record] = []
    failed = False
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("cases", total=len(selected))
        for c in selected:
            progress.update(task, description=f"{c.suite}/{c.name}")
            start = time.perf_counter()
            key = f"{c.suite}--{c.name}--{size}--repeat{repeat}"
            try:
                reused = store.load(key)
                if reused is not None:
                    records += reused
                    status = "reused from an earlier run"
                else:
                    with resumable(store):
                        records += cached(key, lambda c=c: c.run(size, repeat=repeat))
                    status = "done"
            except Exception as exc:
                failed = True
                progress.console.print_exception()
                records.append(
                    Record.skip(c.suite, c.name, size, f"error: {type(exc).__name__}: {exc}")
                )
                status = "[red]failed[/red]"
            progress.console.print(
                f"{c.suite}/{c.name} {status} in {time.perf_counter() - start:.1f} s"
            )
            progress.advance(task)
    return records, failed


def _suite_plots(
    run_suites: Sequence[str], records: Sequence[Record], out: Path, console: Console
) -> list[Path]:
    """Draw each suite's own plots; a failing plot is reported, never fatal."""
    written: list[Path] = []
    for suite in run_suites:
        ours = [r for r in records if r.suite == suite and r.skipped is None]
        for draw in plotters(suite):
            try:
                written += draw(ours, out)
            except Exception:
                console.print(f"[red]plot {draw.__name__} of suite {suite} failed[/red]")
                console.print_exception()
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``numlib-bench`` with ``argv`` (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 if every case ran, 1 if any raised. Bad arguments exit with status 2
        through argparse.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    console = Console()
    if not console.is_terminal:
        # Logs and pipes get no terminal width; the 80 columns rich assumes then
        # would cut the table's names to ellipses.
        console = Console(width=_LOG_WIDTH)
    if args.list:
        console.print(_listing(), markup=False, highlight=False)
        return 0
    selected = _select(parser, args)
    out: Path = args.out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        parser.error(f"argument --out: cannot create {out}: {exc}")
    machine = describe_machine()
    run_suites = list(dict.fromkeys(c.suite for c in selected))
    store = Store(out / "partial", resume=args.resume)
    if not args.resume:
        store.clear()
    records, failed = _run_cases(selected, args.size, args.repeat, store, console)

    # The numbers first, so that a plotting failure cannot lose them.
    write_json(out / "results.json", machine, run_suites, records)
    plots = residual_plots(records, out)
    speedup = speedup_plot(records, out)
    if speedup is not None:
        plots.append(speedup)
    plots += _suite_plots(run_suites, records, out, console)
    write_markdown(
        out / "report.md", machine, records, size=args.size, repeat=args.repeat, plots=plots
    )

    console.print(rich_table(records, f"numlib-bench ({args.size}, best of {args.repeat})"))
    console.print(f"wrote {out / 'results.json'}, {out / 'report.md'} and {len(plots)} plot(s)")
    return 1 if failed else 0
