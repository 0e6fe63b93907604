"""`ap10k experiment NAME --data-root DIR`: run one of the paper's experiments and write its table.

NAME: table3 (five models, with and without ImageNet pretraining, splits 1–3), table5/6/7
(leave one species out within Bovidae / Canidae / Felidae), table8 (across families), table9
(few-shot and transfer), table10 (Animal-Pose ↔ AP-10K; needs --animalpose-root), or all.
DIR is the official release: DIR/annotations/ap10k-{train,val,test}-split{1,2,3}.json, DIR/data/.
Each table is written to OUT/<name>.md (mean ± std over the repeats, the paper's numbers
alongside); runs live in OUT/runs/<key>/ and finished ones are not repeated, so an interrupted
experiment continues when started again. --dry-run prints the plan only.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("experiment", help="run a table of the paper (training + testing)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="table3 | table5 | table6 | table7 | table8 | table9 | "
                                "table10 | all")
    p.add_argument("--data-root", required=True, help="AP-10K release folder")
    p.add_argument("--out", default="runs/experiments", help="output folder")
    p.add_argument("--epochs", type=int, default=210)
    p.add_argument("--batch-size", type=int, default=64, help="per process")
    p.add_argument("--input-size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3, help="splits / split seeds to run")
    p.add_argument("--model", default="hrnet_w32", help="model of tables 5–10")
    p.add_argument("--models", nargs="+", help="table 3's models (default: the paper's five)")
    p.add_argument("--pretrained-dir", help="folder with ImageNet weights <model>.pth")
    p.add_argument("--animalpose-root", help="Animal-Pose in the same layout (table10)")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--val-every", type=int, default=10)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ap10k.errors import AP10KError
    from ap10k.experiments import TABLE3_MODELS, ExperimentOptions, describe, plan, run_plan

    if not Path(args.data_root).is_dir():
        raise AP10KError(f"{args.data_root}: data root not found")
    if args.epochs < 1 or args.repeats < 1 or not 1 <= args.repeats <= 3:
        raise AP10KError("--epochs must be ≥ 1 and --repeats between 1 and 3")
    opts = ExperimentOptions(
        epochs=args.epochs, batch_size=args.batch_size, workers=args.workers,
        device=args.device, input_size=args.input_size, repeats=args.repeats, model=args.model,
        models=tuple(args.models) if args.models else TABLE3_MODELS,
        pretrained_dir=args.pretrained_dir, animalpose_root=args.animalpose_root,
        val_every=args.val_every)
    runs = plan(args.name, args.data_root, opts, args.out)
    print(describe(runs, opts))
    if args.dry_run:
        return 0
    tables = run_plan(args.name, runs, opts, args.out)
    for name, md in tables.items():
        print(md)
        print(f"-> {Path(args.out) / (name + '.md')}")
    return 0
