"""`ap10k convert --to ap10k|animalpose IN.json -o OUT.json`: Animal-Pose ↔ AP-10K skeletons.

Shared keypoints are carried over (16 of them; the mapping table is in `ap10k.animalpose`),
unmatched ones are marked missing (v = 0). Species: dog, cat, cow, horse, sheep, per instance: its
category when the file's categories name the species, else its image's Animal-Pose file name
(ca/do/co/ho/sh + number), since mmpose's converted files call every animal 'cat'.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert annotations between Animal-Pose and AP-10K",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="COCO keypoint JSON to convert")
    p.add_argument("--to", required=True, choices=["ap10k", "animalpose"],
                   help="target skeleton")
    p.add_argument("-o", "--out", required=True, metavar="OUT.json", help="output JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ap10k import animalpose
    from ap10k.dataset import CocoDataset

    ds = CocoDataset.load(args.input)
    if args.to == "ap10k":
        out = animalpose.animalpose_to_ap10k(ds)
        note = ""
    else:
        out, dropped = animalpose.ap10k_to_animalpose(ds)
        note = f"; {dropped} instance(s) of species Animal-Pose lacks dropped" if dropped else ""
    out.save(args.out)
    names = {c.id: c.name for c in out.categories}
    per = ", ".join(f"{names.get(c, c)} {n}" for c, n in out.species_counts().items())
    print(f"wrote {args.out}: {len(out.images)} images, {len(out.annotations)} instances"
          f"{' (' + per + ')' if per else ''}{note}")
    return 0
