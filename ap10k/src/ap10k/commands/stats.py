"""`ap10k stats ANNOTATIONS.json [--plot OUT.png] [--json OUT.json]`: dataset statistics."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stats", help="counts per family/species, visibility, backgrounds",
                       description=__doc__)
    p.add_argument("annotations", help="COCO keypoint JSON (AP-10K schema)")
    p.add_argument("--plot", metavar="OUT.png", help="write the long-tail plot (PNG)")
    p.add_argument("--json", metavar="OUT.json", help="write the statistics as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from ap10k import stats
    from ap10k.atomic import write_text_atomic
    from ap10k.dataset import CocoDataset

    st = stats.compute(CocoDataset.load(args.annotations))
    print(stats.format_stats(st))
    if args.plot:
        stats.plot_long_tail(st, args.plot)
        print(f"plot: {args.plot}")
    if args.json:
        write_text_atomic(args.json, json.dumps(st.to_dict(), indent=1) + "\n")
    return 0
