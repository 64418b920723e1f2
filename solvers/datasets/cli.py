"""The ``numlib-dataset`` command line: argument parsing and :func:`main`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from solvers.datasets.config import ORDERS, _config
from solvers.datasets.families import FAMILIES
from solvers.datasets.generate import generate_dataset
from solvers.datasets.storage import DatasetMismatchError
from solvers.recycle import STRATEGIES


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


def generator_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of :func:`generate_dataset` from the parsed command line.

    One place, so that ``numlib-dataset`` and its MPI twin (``python -m
    solvers.petsc.dataset``, which takes the same arguments) read them the same way.
    """
    return {
        "family": args.family,
        "n_samples": args.samples,
        "out": args.out,
        "n": args.grid,
        "shard_size": args.shard_size,
        "seed": args.seed,
        "strategy": args.strategy,
        "order": args.order,
        "rtol": args.rtol,
        "family_options": dict(args.option) or None,
        "progress": not args.no_progress,
    }


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
        info = generate_dataset(**generator_arguments(args))
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
