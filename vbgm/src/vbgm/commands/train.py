"""`vbgm train DATASET_DIR -o RUN_DIR`: train (or resume) a CMT on a prepared dataset.

Multi-process: `torchrun --nproc_per_node N -m vbgm.cli train ...` (gloo on CPU, nccl on GPU).

--resume continues the run in RUN_DIR with the settings stored in its last.pt: a flag that repeats
a stored setting is accepted, one that differs is an error (only --steps and --stop-after may
change). Without --resume a folder that already holds a run is refused; --init-from starts a new
run from given weights.

Speed on CPU (benchmarks/bench_train_speed.py): a new run trains under bf16 autocast where the
CPU has native bf16 (--no-cpu-bf16 to refuse), and takes the threads the load leaves idle
(--threads to choose); --compile is available but was no faster on 2 cores.
"""

from __future__ import annotations

import argparse
import os

from vbgm.commands.generate import seed_arg


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train the music model on a prepared dataset",
                              description=__doc__.splitlines()[0])
    p.add_argument("dataset", help="dataset folder written by `vbgm prepare`")
    p.add_argument("-o", "--output", required=True, help="run folder (checkpoints, log, plot)")
    p.add_argument("--config", choices=["small", "medium", "paper", "tiny"],
                   help="model size (default small; medium: for a GPU; tiny: smoke runs only)")
    p.add_argument("--keys", choices=["none", "augment", "normalise"],
                   help="train the initial key slot: augment = random transposition of each "
                        "window, normalise = every song in C major / A minor (default none)")
    p.add_argument("--steps", type=int, help="total optimiser steps (default 1500)")
    p.add_argument("--resume", action="store_true", help="continue the run in the run folder")
    p.add_argument("--init-from", metavar="MODEL.pt",
                   help="start a new run from these weights (e.g. the shipped model, to train "
                        "it further on another machine: a fresh optimiser and schedule)")
    p.add_argument("--stop-after", type=int, help="end this invocation after this many steps")
    p.add_argument("--minutes", type=float,
                   help="time budget: the number of steps (and the learning-rate schedule) is "
                        "fitted to it once the speed is measured (--steps is the upper bound)")
    p.add_argument("--batch-size", type=int, help="windows per batch and process (default 8)")
    p.add_argument("--seq-len", type=int, help="window length in tokens (default 512)")
    p.add_argument("--lr", type=float, help="peak learning rate (default 1e-3)")
    p.add_argument("--warmup", type=int, help="warm-up steps (default 100)")
    p.add_argument("--eval-every", type=int, help="validate every N steps (default 100)")
    p.add_argument("--ckpt-every", type=int, help="checkpoint every N steps (default 50)")
    p.add_argument("--cond-dropout", type=float, help="chance of 'any' conditioning (0.15)")
    p.add_argument("--ablate-controls", action="store_true",
                   help="baseline without density/strength/p_beat (the paper's ablation)")
    p.add_argument("--seed", type=seed_arg, help="random seed (default 0)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the forward and loss (a minute or more to build; no "
                        "faster than eager on a 2-core CPU, so off by default)")
    p.add_argument("--cpu-bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast on CPU (default: on where the CPU has native bf16, "
                        "AVX512-BF16 or AMX; CUDA always trains in bf16)")
    p.add_argument("--threads", type=int,
                   help="CPU threads per process (default: the cores the load average leaves "
                        "idle, at least 1; on a shared CPU 1 is several times faster than 2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


_OPTIONS = {"batch_size": "batch_size", "seq_len": "seq_len", "lr": "lr", "warmup": "warmup",
            "eval_every": "eval_every", "ckpt_every": "ckpt_every",
            "cond_dropout": "cond_dropout", "seed": "seed", "keys": "keys",
            "compile": "compile", "cpu_bf16": "cpu_bf16"}


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from vbgm.dataset import Dataset
    from vbgm.errors import VbgmError
    from vbgm.train import (
        TrainConfig,
        config_conflicts,
        cpu_bf16_native,
        idle_threads,
        stored_config,
        train,
    )

    given = {k: getattr(args, a) for a, k in _OPTIONS.items() if getattr(args, a) is not None}
    if args.config is not None:
        given["model"] = args.config
    if args.ablate_controls:
        given["ablate_controls"] = True
    if args.init_from:
        if args.resume:
            raise VbgmError(f"{args.output}: --init-from starts a new run; --resume continues "
                            "one (choose one)")
        from pathlib import Path

        if not Path(args.init_from).is_file():
            raise VbgmError(f"{args.init_from}: no such checkpoint file")
        given["init_from"] = str(Path(args.init_from).resolve())
    if args.resume:
        conflicts = config_conflicts(stored_config(args.output), given)
        if conflicts:
            raise VbgmError(f"{args.output}: --resume continues the stored settings; only "
                            f"--steps and --stop-after may change ({'; '.join(conflicts)})")
    else:  # a new run: speed defaults measured by benchmarks/bench_train_speed.py
        given.setdefault("cpu_bf16", cpu_bf16_native())
    tc = replace(TrainConfig(), **given)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    elif int(os.environ.get("WORLD_SIZE", "1")) == 1 and not torch.cuda.is_available():
        torch.set_num_threads(idle_threads())  # under torchrun each rank takes its share
    ds = Dataset.load(args.dataset)
    summary = train(ds, args.output, tc, resume=args.resume, steps=args.steps,
                    stop_after=args.stop_after, progress=not args.no_progress,
                    minutes=args.minutes)
    if summary.get("rank", 0) == 0:
        print(f"trained to step {summary['step']}; best validation loss "
              f"{summary['best_val']:.4f}; run folder {summary['run_dir']}")
    return 0
