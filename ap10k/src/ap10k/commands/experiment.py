"""`ap10k experiment NAME --data-root DIR`: run one of the paper's experiments and write its table.

NAME: table3 (five models, with and without ImageNet pretraining), table4 (HRNet-w32 from a
COCO human-pose checkpoint, tested after epochs 20/30/40/210 of one run; needs --coco-checkpoint),
table5/6/7 (leave one species out within Bovidae / Canidae (dog, fox, wolf) / Felidae, AP on
every species), table8 (across families), table9 (Generalisation / Few-shot / Transfer for deer,
moose, horse, zebra, chimpanzee, gorilla), table10 (Animal-Pose ↔ AP-10K; needs
--animalpose-root), or all. Every table runs on the official splits 1..--repeats, as the paper
did (its ± is over those splits).
DIR is the official release: DIR/annotations/ap10k-{train,val,test}-split{1,2,3}.json, DIR/data/.
Each table is written to OUT/<name>.md (ours as mean ± std over the splits, the paper's figure
and the difference); runs live in OUT/runs/<key>/ and finished ones are not repeated, so an
interrupted experiment continues when started again. --dry-run prints every run with its
train/test sizes and exits.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("experiment", help="run a table of the paper (training + testing)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="table3 | table4 | table5 | table6 | table7 | table8 | table9 | "
                                "table10 | all")
    p.add_argument("--data-root", required=True, help="AP-10K release folder")
    p.add_argument("--out", default="runs/experiments", help="output folder")
    p.add_argument("--epochs", type=int, default=210)
    p.add_argument("--batch-size", type=int, default=64, help="per process")
    p.add_argument("--input-size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3, help="official splits to run (1..3)")
    p.add_argument("--model", default="hrnet_w32", help="model of tables 4–10")
    p.add_argument("--models", nargs="+", help="table 3's models (default: the paper's five)")
    p.add_argument("--pretrained-dir", help="folder with ImageNet weights <model>.pth")
    p.add_argument("--animalpose-root", help="Animal-Pose in the same layout (table10)")
    p.add_argument("--coco-checkpoint", metavar="PATH",
                   help="COCO human-pose checkpoint (mmpose HRNet-w32) to start table4 from")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="unpickle --coco-checkpoint fully (may run code: trusted files only); "
                        "numpy arrays in an mmpose `meta` load without it")
    p.add_argument("--include-arctic-fox", action="store_true",
                   help="table6 with arctic fox as a fourth Canidae species (paper: 3)")
    p.add_argument("--table4-epochs", type=int, nargs="+", metavar="N",
                   help="table4: also test after these epochs (default 20 30 40)")
    p.add_argument("--few-shot-k", type=int, default=20, help="table9 few-shot images")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--val-every", type=int, default=10)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ap10k.errors import AP10KError
    from ap10k.experiments import (
        TABLE3_MODELS,
        TABLE4_EPOCHS,
        ExperimentOptions,
        describe,
        plan_tables,
        run_plan,
    )

    if not Path(args.data_root).is_dir():
        raise AP10KError(f"{args.data_root}: data root not found")
    if args.epochs < 1 or args.repeats < 1 or not 1 <= args.repeats <= 3:
        raise AP10KError("--epochs must be ≥ 1 and --repeats between 1 and 3")
    opts = ExperimentOptions(
        epochs=args.epochs, batch_size=args.batch_size, workers=args.workers,
        device=args.device, input_size=args.input_size, repeats=args.repeats, model=args.model,
        models=tuple(args.models) if args.models else TABLE3_MODELS,
        pretrained_dir=args.pretrained_dir, animalpose_root=args.animalpose_root,
        val_every=args.val_every, coco_checkpoint=args.coco_checkpoint,
        trust_checkpoint=args.trust_checkpoint, include_arctic_fox=args.include_arctic_fox,
        few_shot_k=args.few_shot_k,
        table4_epochs=tuple(args.table4_epochs) if args.table4_epochs else TABLE4_EPOCHS)
    planned = plan_tables(args.name, args.data_root, opts, args.out)
    seen: set[str] = set()
    for name, runs in planned.items():
        print(f"{name}: " + describe(runs, opts))
        seen.update(r.key for r in runs)
    if args.name == "all":
        for table, needs in (("table4", "--coco-checkpoint"), ("table10", "--animalpose-root")):
            if table not in planned:
                print(f"{table}: skipped (needs {needs})")
        print(f"{len(seen)} distinct training runs in all")
    if args.dry_run:
        return 0
    tables = run_plan(planned, opts, args.out)
    for name, md in tables.items():
        print(md)
        print(f"-> {Path(args.out) / (name + '.md')}")
    return 0
