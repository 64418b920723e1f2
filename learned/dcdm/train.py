r"""Command line: train a DCDM network, resumably.

Example (the command behind the shipped 2-D model is in ``learned/models/dcdm2d.json``)::

    python -m learned.dcdm.train --dim 2 --grid 64 --steps 3000 \\
        --data-dir /tmp/dcdm-data --out learned/models/dcdm2d

writes ``<out>.safetensors`` (weights and configuration) and ``<out>.json`` (the
command, configuration, wall time and loss history). The full training state is
checkpointed to ``<data-dir>/<name>.ckpt.safetensors`` every ``--checkpoint-every``
steps; ``--resume`` continues from it. Lanczos Ritz bases are cached in
``--data-dir`` as npz.

``--loss`` picks the training loss (:mod:`learned.dcdm.loss`; "residual" is the
paper's, "energy" and "unrolled" are numlib's energy-norm losses) and
``--select-every N`` evaluates the solver's iteration count on validation grids
every ``N`` steps (:mod:`learned.dcdm.select`): the exported model is then the best
network by that count -- possibly the initialisation -- and the JSON records the
whole evaluation history. The best weights so far live in
``<data-dir>/<name>.best.safetensors`` and survive a resume.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pytorch_lightning as pl
import torch

from learned.dcdm.data import RitzDataModule
from learned.dcdm.io import save_model
from learned.dcdm.loss import LOSSES
from learned.dcdm.module import DCDMModule, SafetensorsCheckpoint
from learned.dcdm.network import INITS, RESTRICTIONS, DCDMConfig, DCDMNet
from learned.dcdm.select import BestIterationsCheckpoint, validation_problems
from numlib.validate import check_positive_int

__all__ = ["TrainConfig", "fit", "main"]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (with the seed, the weights too)."""

    dim: int
    grid: int
    steps: int
    batch_size: int = 16
    lr: float = 1e-3
    seed: int = 0
    operators: int = 8
    ritz_steps: int = 800
    pool: int = 20_000
    channels: int = 16
    blocks: int = 2
    levels: int | None = None
    init: str = "bpx"
    restriction: str = "average"
    galerkin: bool = False
    threads: int = 1
    loss: str = "residual"
    unroll: int = 4
    select_every: int | None = None


def fit(
    config: TrainConfig,
    data_dir: str | Path,
    *,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    checkpoint_every: int = 100,
    stop_after: int | None = None,
    progress: bool = True,
) -> tuple[DCDMNet, dict]:
    """Train a network; return it and a summary (steps, wall time, loss history).

    Deterministic on the CPU for a given ``config``: the weights depend only on it
    (single-threaded, Lightning's ``deterministic=True``, seeded initialisation and
    an index-seeded data stream), also across an interruption and ``resume``.

    Parameters
    ----------
    config : TrainConfig
        The run.
    data_dir : str or Path
        Cache of the Ritz bases.
    checkpoint : str or Path, optional
        Safetensors checkpoint written during training (and read by ``resume``).
    resume : bool
        Continue from ``checkpoint`` when it exists.
    checkpoint_every : int
        Steps between checkpoints.
    stop_after : int, optional
        End this session after this many steps *in total* (checkpointed), leaving
        the rest of ``config.steps`` (and of the learning-rate schedule) to a later
        ``resume``; 0 only loads the checkpoint (to export it).
    progress : bool
        Show Lightning's progress bar.

    With ``config.select_every`` the returned network is the best one by solver
    iterations on the validation problems (:mod:`learned.dcdm.select`), possibly
    the initialisation, and the summary holds the selection record.
    """
    torch.set_num_threads(config.threads)
    pl.seed_everything(config.seed, verbose=False)
    network_fields = ("dim", "channels", "blocks", "levels", "init", "restriction", "galerkin")
    net_config = DCDMConfig(**{name: getattr(config, name) for name in network_fields})
    data = RitzDataModule(
        dim=config.dim,
        n=config.grid,
        operators=config.operators,
        ritz_steps=config.ritz_steps,
        data_dir=data_dir,
        batch_size=config.batch_size,
        seed=config.seed,
        steps=config.steps,
        pool=config.pool,
    )
    module = DCDMModule(
        net_config,
        data.coefficients,
        data.geometry,
        lr=config.lr,
        steps=config.steps,
        seed=config.seed,
        loss=config.loss,
        unroll=config.unroll,
        matrices=[system.A for system in data.systems] if config.galerkin else None,
    )
    if resume and checkpoint is not None and Path(checkpoint).exists():
        module.restore(checkpoint)
        data.start_step = module.start_step
        print(f"resuming after step {module.start_step}", flush=True)
    data.prepare_bases()
    callbacks: list[pl.Callback] = []
    if checkpoint is not None:
        callbacks.append(SafetensorsCheckpoint(checkpoint, every=checkpoint_every))
    selector = None
    if config.select_every is not None:
        if checkpoint is None:
            raise ValueError("select_every needs a checkpoint (the best weights go next to it)")
        check_positive_int(config.select_every, "select_every")
        if not (resume and Path(checkpoint).exists()):
            _best_path(checkpoint).unlink(missing_ok=True)  # a fresh run: no stale selection
        systems = validation_problems(config.dim, 2 * config.grid)
        selector = BestIterationsCheckpoint(
            _best_path(checkpoint), systems, every=config.select_every
        )
        callbacks.append(selector)
    started = time.perf_counter()
    end = config.steps if stop_after is None else min(stop_after, config.steps)
    remaining = end - module.start_step
    if remaining > 0:
        trainer = pl.Trainer(
            accelerator="cpu",
            devices=1,
            max_steps=remaining,
            max_epochs=1,
            logger=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=progress,
            deterministic=True,
            callbacks=callbacks,
        )
        trainer.fit(module, datamodule=data)
    elapsed = module.elapsed_s + time.perf_counter() - started
    net = module.net
    selection = None
    if selector is not None:
        if remaining <= 0 and selector.best is None:
            selector._evaluate(module)
        # Ship the best weights by solver iterations, not the last ones.
        net = DCDMNet.from_config(module.net.config)
        net.load_state_dict(selector.best_state())
        selection = selector.summary()
    summary = {
        "steps": config.steps,
        "completed_steps": module.start_step + max(remaining, 0),
        "train_wall_s": round(elapsed, 1),
        "losses_every_50_steps": [round(x, 5) for x in module.losses],
        "parameters": sum(p.numel() for p in module.net.parameters()),
    }
    if selection is not None:
        summary["selection"] = selection
    return net.eval(), summary


def _best_path(checkpoint: str | Path) -> Path:
    checkpoint = Path(checkpoint)
    stem = checkpoint.name.removesuffix(".safetensors").removesuffix(".ckpt")
    return checkpoint.with_name(stem + ".best.safetensors")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m learned.dcdm.train", description=__doc__)
    defaults = TrainConfig(2, 64, 1)
    parser.add_argument("--dim", type=int, choices=(2, 3), required=True)
    parser.add_argument("--grid", type=int, required=True, help="nodes per axis")
    parser.add_argument("--steps", type=int, required=True, help="optimiser steps")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--operators", type=int, default=defaults.operators)
    parser.add_argument("--ritz-steps", type=int, default=defaults.ritz_steps)
    parser.add_argument("--pool", type=int, default=defaults.pool)
    parser.add_argument("--channels", type=int, default=defaults.channels)
    parser.add_argument("--blocks", type=int, default=defaults.blocks)
    parser.add_argument(
        "--levels", type=int, default=None, help="pooling levels (1: the paper); default: all"
    )
    parser.add_argument(
        "--init", choices=INITS, default=defaults.init, help="initial weights (DCDMNet)"
    )
    parser.add_argument(
        "--restriction",
        choices=RESTRICTIONS,
        default=defaults.restriction,
        help="fine-to-coarse transfer (DCDMNet)",
    )
    parser.add_argument(
        "--galerkin",
        action="store_true",
        help="blocks also read each level's Galerkin operator (DCDMNet, OperatorPyramid)",
    )
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument(
        "--loss",
        choices=LOSSES,
        default=defaults.loss,
        help="residual: the paper's; energy / unrolled: relative A-norm error after "
        "one / --unroll solver steps (learned.dcdm.loss)",
    )
    parser.add_argument(
        "--unroll", type=int, default=defaults.unroll, help="solver steps of --loss unrolled"
    )
    parser.add_argument(
        "--select-every",
        type=int,
        default=None,
        help="evaluate solver iterations on validation grids every this many steps "
        "and ship the best weights (learned.dcdm.select)",
    )
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="output path without suffix")
    parser.add_argument("--checkpoint-every", type=int, default=100)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument(
        "--stop-after",
        type=int,
        default=None,
        help="end this session after this many steps in total (resume later); "
        "with --resume, 0 exports the checkpoint as it is",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m learned.dcdm.train``."""
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    config = TrainConfig(
        dim=args.dim,
        grid=args.grid,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        operators=args.operators,
        ritz_steps=args.ritz_steps,
        pool=args.pool,
        channels=args.channels,
        blocks=args.blocks,
        levels=args.levels,
        init=args.init,
        restriction=args.restriction,
        galerkin=args.galerkin,
        threads=args.threads,
        loss=args.loss,
        unroll=args.unroll,
        select_every=args.select_every,
    )
    checkpoint = args.data_dir / f"{args.out.name}.ckpt.safetensors"
    net, summary = fit(
        config,
        args.data_dir,
        checkpoint=checkpoint,
        resume=args.resume,
        checkpoint_every=args.checkpoint_every,
        stop_after=args.stop_after,
    )
    command = "python -m learned.dcdm.train " + shlex.join(argv)
    commands = [command]
    previous = args.out.with_suffix(".json")
    if args.resume and previous.exists():
        # A resumed run keeps the commands of its earlier sessions.
        commands = json.loads(previous.read_text()).get("commands", []) + commands
    record = {"commands": commands, "config": asdict(config), **summary}
    save_model(net, args.out.with_suffix(".safetensors"), metadata={"training": record})
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}.safetensors ({summary['train_wall_s']} s of training)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
