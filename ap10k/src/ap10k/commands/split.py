"""`ap10k split ANNOTATIONS.json -o DIR --kind KIND`: write experiment splits as COCO JSON files.

Kinds: random (7:1:2, three seeds, stratified by species), within-family (leave one species out),
across-family, few-shot (k images per target species on top of a base family), transfer, all.
Files go to DIR/<experiment>/<part>.json; DIR/manifest.json lists them with their counts.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("split", help="write random / taxonomy-aware experiment splits",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("annotations", help="pool of annotations (COCO JSON, AP-10K schema)")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--kind", default="random",
                   choices=["random", "within-family", "across-family", "few-shot", "transfer",
                            "all"])
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--k", type=int, default=20, help="few-shot images per target species")
    p.add_argument("--families", default="Bovidae,Canidae,Felidae",
                   help="within-family: comma-separated families (default: the paper's)")
    p.add_argument("--across", action="append", metavar="TRAIN:TEST1,TEST2",
                   help="across-family pair (repeatable; default Bovidae:Cervidae,Equidae,"
                        "Hominidae and Cercopithecidae:Hominidae)")
    p.add_argument("--base", default="Bovidae", help="few-shot/transfer base family")
    p.add_argument("--targets", default="",
                   help="few-shot/transfer target families or species, comma-separated "
                        "(default: the base's across-family test families)")
    p.set_defaults(func=run)


def _names(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def run(args: argparse.Namespace) -> int:
    from ap10k import splits
    from ap10k.dataset import CocoDataset
    from ap10k.errors import AP10KError

    if args.k < 1:
        raise AP10KError(f"--k must be at least 1, got {args.k}")
    across = splits.ACROSS_FAMILIES
    if args.across:
        pairs = []
        for item in args.across:
            if ":" not in item:
                raise AP10KError(f"--across {item!r}: expected TRAIN:TEST1,TEST2")
            train, tests = item.split(":", 1)
            pairs.append((train.strip(), _names(tests)))
        across = tuple(pairs)
    config = splits.SplitConfig(seed=args.seed, k=args.k, within_families=_names(args.families),
                                across=across, base=args.base, targets=_names(args.targets))
    pool = CocoDataset.load(args.annotations)
    experiments = splits.make(pool, args.kind, config)
    manifest = splits.write(experiments, args.out, args.annotations, config)
    for e in experiments:
        sizes = ", ".join(f"{part} {len(ds.images)} img / {len(ds.annotations)} inst"
                          for part, ds in e.parts.items())
        print(f"{e.name}: {sizes}")
    print(f"wrote {sum(len(e.parts) for e in experiments)} files; manifest {manifest}")
    return 0
