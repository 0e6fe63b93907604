"""`ap10k evaluate GT.json PRED.json`: OKS keypoint AP/AR with AP-10K sigmas, per species.

Predictions are COCO results ([{image_id, category_id, keypoints, score}]); each category_id must
be the animal's species, because AP is computed per species and averaged (a loud warning is printed
when they do not match the ground truth). An empty prediction list, or predictions for image ids
the ground truth lacks, is an error (exit 2) unless --allow-empty.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="COCO keypoint AP with AP-10K sigmas, per species/family",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("gt", help="ground-truth annotations (COCO JSON)")
    p.add_argument("pred", help="predictions (COCO keypoint results JSON)")
    p.add_argument("--per-species", action="store_true", help="print AP per species and family")
    p.add_argument("--json", metavar="OUT.json", help="write the results as JSON")
    p.add_argument("--per-keypoint", action="store_true",
                   help="print per-keypoint AP, mean OKS contribution and PCK@0.05/0.1 (of the "
                        "box's longer side), error types, and PCK per species and family")
    p.add_argument("--error-plot", metavar="OUT.png",
                   help="plot each keypoint's error types (good/jitter/swap/miss)")
    p.add_argument("--allow-empty", action="store_true",
                   help="score an empty prediction list (AP 0) and ignore predictions for "
                        "unknown image ids, with a warning, instead of failing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from ap10k import taxonomy
    from ap10k.atomic import write_text_atomic
    from ap10k.cocoeval import evaluate
    from ap10k.dataset import CocoDataset, read_json

    gt = CocoDataset.load(args.gt)
    result = evaluate(gt, read_json(args.pred), source=args.pred, strict=not args.allow_empty)
    print(f"{args.gt}: {result.num_images} images, {len(gt.annotations)} instances; "
          f"{result.num_predictions} predictions")
    print(result.summary())
    if args.per_species:
        print("per species (AP, ground-truth instances):")
        for cid, ap in result.per_category.items():
            name = taxonomy.species(cid).name if taxonomy.is_species(cid) else str(cid)
            print(f"  {cid:3d} {name:<20s} {ap:.4f}  ({result.gt_counts.get(cid, 0)})")
        print("per family (mean AP of its species):")
        for family, ap in result.per_family.items():
            print(f"  {family:<20s} {ap:.4f}")
    report = None
    if args.per_keypoint or args.error_plot:
        from ap10k.keypoint_metrics import analyse, plot_errors

        report = analyse(gt, read_json(args.pred), source=args.pred)
        if args.per_keypoint:
            print(report.format())
        if args.error_plot:
            plot_errors(report, args.error_plot)
            print(f"-> {args.error_plot}")
    if result.warnings:
        print(f"{len(result.warnings)} warning(s): see stderr")
    if args.json:
        data = result.to_dict()
        if report is not None:
            data["keypoints"] = report.to_dict()
        write_text_atomic(args.json, json.dumps(data, indent=1) + "\n")
    return 0
