"""`ap10k synth -o DIR --n N`: render a procedural AP-10K-style dataset of four-legged animals.

Writes DIR/data/<12-digit id>.jpg and DIR/annotations/synth-{train,val}.json (COCO keypoints,
AP-10K's 54 categories; ten species in six families). Images are reproducible from --seed.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="render a synthetic four-legged-animal dataset",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.add_argument("--n", type=int, required=True, help="number of images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--size", type=int, nargs=2, default=(256, 256), metavar=("W", "H"),
                   help="largest image size (each image is 75–100 %% of it)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ap10k.errors import AP10KError
    from ap10k.synth import generate

    if args.n < 2:
        raise AP10KError("--n must be at least 2 (one training and one validation image)")
    if not 0 < args.val_fraction < 1:
        raise AP10KError("--val-fraction must be between 0 and 1")
    if min(args.size) < 64:
        raise AP10KError("--size must be at least 64 × 64")
    train, val = generate(args.out, args.n, args.seed, args.val_fraction, tuple(args.size))
    print(f"{args.out}: {len(train.images)} training and {len(val.images)} validation images")
    return 0
