"""`ap10k show IMAGE|ANNOTATIONS.json [--pred PRED.json] -o OUT.png`: draw skeletons on images.

With an annotation file, its first --max images (or those given by --image-id) are drawn; with an
image file, --ann names the annotation file holding it. Predictions (COCO results) are drawn next
to the ground truth, or on it with --overlay, labelled with their score and OKS.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="draw ground-truth / predicted skeletons on images",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="an annotation JSON, or one image file (then pass --ann)")
    p.add_argument("-o", "--out", required=True, metavar="OUT.png", help="output image")
    p.add_argument("--ann", metavar="GT.json", help="annotations when INPUT is an image")
    p.add_argument("--images", metavar="DIR", help="image folder (default: found near the JSON)")
    p.add_argument("--pred", metavar="PRED.json", help="predictions (COCO results) to draw")
    p.add_argument("--image-id", type=int, action="append", help="image id to draw (repeatable)")
    p.add_argument("--max", type=int, default=4, help="images to draw at most (default 4)")
    p.add_argument("--overlay", action="store_true", help="draw predictions over the ground truth")
    p.add_argument("--threshold", type=float, default=0.2,
                   help="hide predicted keypoints with score <= this (default 0.2)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from ap10k import draw, taxonomy
    from ap10k.atomic import atomic_path
    from ap10k.cocoeval import oks_matrix, parse_predictions
    from ap10k.dataset import CocoDataset, find_image_folder, read_json
    from ap10k.errors import AP10KError

    inp = Path(args.input)
    if inp.suffix.lower() == ".json":
        ann_path = inp
        wanted = args.image_id
    else:
        if not args.ann:
            raise AP10KError(f"{inp}: an image needs --ann ANNOTATIONS.json to find its skeletons")
        if not inp.is_file():
            raise AP10KError(f"{inp}: no such file")
        ann_path = Path(args.ann)
        wanted = None
    gt = CocoDataset.load(ann_path)
    if wanted is None and inp.suffix.lower() != ".json":
        wanted = [im.id for im in gt.images if Path(im.file_name).name == inp.name]
        if not wanted:
            raise AP10KError(f"{ann_path}: no image named {inp.name}")
        folder = inp.parent
    else:
        folder = Path(args.images) if args.images else find_image_folder(
            [im.file_name for im in gt.images], ann_path)
        if folder is None:
            raise AP10KError(f"{ann_path}: image files not found near it; pass --images DIR")
    images = gt.image_index()
    if wanted:
        missing = [i for i in wanted if i not in images]
        if missing:
            raise AP10KError(f"{ann_path}: no image with id {missing[0]}")
        chosen = [images[i] for i in wanted]
    else:
        chosen = gt.images[: max(1, args.max)]

    preds_by_image: dict[int, list] = {}
    if args.pred:
        preds, _ = parse_predictions(read_json(args.pred), args.pred)
        for p in preds:
            preds_by_image.setdefault(p.image_id, []).append(p)
    by_image = gt.instances_by_image()

    def name(cid: int) -> str:
        return taxonomy.species(cid).name if taxonomy.is_species(cid) else f"category {cid}"

    panels = []
    for im in chosen:
        path = folder / im.file_name
        try:
            image = Image.open(path)
            image.load()
        except (FileNotFoundError, OSError) as exc:
            raise AP10KError(f"{path}: cannot open image ({exc})") from None
        anns = by_image.get(im.id, [])
        gt_poses = [draw.Pose(a.keypoints, a.bbox, name(a.category_id)) for a in anns]
        pred_poses = None
        if args.pred:
            pred_poses = []
            for p in sorted(preds_by_image.get(im.id, []), key=lambda p: -p.score):
                same = [a for a in anns if a.category_id == p.category_id]
                label = f"{name(p.category_id)} {p.score:.2f}"
                if same:
                    o = oks_matrix(p.keypoints[None], np.stack([a.keypoints for a in same]),
                                   np.array([a.area for a in same]),
                                   np.array([a.bbox for a in same]))
                    label += f" OKS {o.max():.2f}"
                else:
                    label += " (no GT of this species)"
                pred_poses.append(draw.Pose(p.keypoints, None, label))
        panels.append(draw.panel(image, gt_poses, pred_poses, args.overlay,
                                 title=f"image {im.id}: ", pred_threshold=args.threshold))
    side_by_side = bool(args.pred) and not args.overlay
    figure = draw.grid(panels, columns=1 if side_by_side else 2,
                       cell_width=1400 if side_by_side else 800)
    legend = draw.legend_strip(figure.width)
    out = Image.new("RGB", (figure.width, figure.height + legend.height))
    out.paste(legend, (0, 0))
    out.paste(figure, (0, legend.height))
    with atomic_path(args.out) as tmp:
        out.save(tmp, format="PNG")
    print(f"wrote {args.out} ({len(chosen)} image(s))")
    return 0
