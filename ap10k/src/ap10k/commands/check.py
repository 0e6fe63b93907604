"""`ap10k check ANNOTATIONS.json [--images DIR]`: schema and quality report; exit 1 on errors."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="validate an annotation file (schema and quality rules)",
                       description=__doc__)
    p.add_argument("annotations", help="COCO keypoint JSON (AP-10K schema)")
    p.add_argument("--images", metavar="DIR",
                   help="folder of the image files (default: next to the JSON, data/ or ../data)")
    p.add_argument("--max", type=int, default=10, metavar="N",
                   help="list at most N records per rule (0: all; default 10)")
    p.add_argument("--json", metavar="OUT", help="also write the report as JSON")
    p.add_argument("--duplicate-keypoints", choices=("error", "warning"), default="error",
                   help="two keypoints of one instance at the same pixel: an error as in the "
                        "paper's automatic check (default), or only a warning")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from ap10k.atomic import write_text_atomic
    from ap10k.checks import check_file

    report = check_file(args.annotations, args.images,
                        severities={"duplicate_keypoint_position": args.duplicate_keypoints})
    print(report.format(args.max))
    if args.json:
        write_text_atomic(args.json, json.dumps(report.to_dict(), indent=1) + "\n")
    return 0 if report.ok else 1
