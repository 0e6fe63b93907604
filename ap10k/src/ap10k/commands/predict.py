"""`ap10k predict IMAGE... --checkpoint CKPT [--boxes JSON] -o OUT`: keypoints for animals in
your images with a trained model.

Boxes: a COCO annotation file (images matched to IMAGE by file name; its image ids, boxes and
species are used, so `ap10k evaluate` can score OUT/results.json against it) or a JSON list of
{"file_name", "bbox": [x, y, w, h], "score"?, "category_id"?}. Without boxes the whole image is the
box. Writes OUT/results.json (COCO keypoint results; with --boxes from a COCO file the ids are
that file's, otherwise image ids count from 0 in argument order) and OUT/<image>_pose.jpg.

Video (`ap10k predict CLIP.mp4 --boxes track.json | --whole-frame -o OUT`): boxes per frame from a
track file (a list of {"frame", "bbox", "track_id"?, "category_id"?}) or the whole frame; writes
OUT/<clip>.jsonl (one line per frame: frame, time, poses) and OUT/<clip>_pose.mp4 (the skeleton
drawn, same frame rate and duration). --smooth applies a One-Euro filter per track.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predict keypoints on images with a trained checkpoint",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--checkpoint", required=True,
                   help="a training run's best.pt / last.pt, or an `ap10k export` .onnx model")
    p.add_argument("--boxes", help="boxes: COCO annotation JSON or a list of {file_name, bbox}")
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.add_argument("--category", default="1",
                   help="species (id or name) of boxes that carry none (default 1)")
    p.add_argument("--no-flip", action="store_true", help="skip the flip test")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--threshold", type=float, default=0.2,
                   help="keypoints scoring at or below this are not drawn")
    p.add_argument("--whole-frame", action="store_true",
                   help="video: the whole frame is the animal's box")
    p.add_argument("--smooth", action="store_true",
                   help="video: One-Euro temporal smoothing of each track's keypoints")
    p.add_argument("--smooth-min-cutoff", type=float, default=1.0,
                   help="One-Euro cut-off at rest, Hz (lower: smoother; default 1.0)")
    p.add_argument("--smooth-beta", type=float, default=0.1,
                   help="One-Euro speed coefficient (higher: less lag; default 0.1)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from PIL import Image

    from ap10k import taxonomy
    from ap10k.atomic import atomic_path, write_text_atomic
    from ap10k.draw import Pose, draw_poses
    from ap10k.errors import AP10KError
    from ap10k.inference import predict_samples
    from ap10k.predict_io import read_boxes

    category = (int(args.category) if args.category.isdigit()
                else taxonomy.species_by_name(args.category).id)
    paths = [Path(p) for p in args.images]
    for p in paths:
        if not p.is_file():
            raise AP10KError(f"{p}: no such image file")
    from ap10k import video

    if any(video.is_video(p) for p in paths):
        return _run_video(args, paths, category)
    model, pipe = _load_model(args)
    if args.whole_frame or args.smooth:
        raise AP10KError("--whole-frame and --smooth are for videos (images without --boxes "
                         "are already whole-frame)")
    samples = read_boxes(args.boxes, paths, category)
    results = predict_samples(model, samples, pipe, args.batch_size, not args.no_flip)
    out = Path(args.out)
    write_text_atomic(out / "results.json", json.dumps(results) + "\n")
    by_image: dict[int, list[dict]] = {}
    for r in results:
        by_image.setdefault(r["image_id"], []).append(r)
    import numpy as np

    seen: set[Path] = set()
    for s in samples:
        if s.image_path in seen:
            continue
        seen.add(s.image_path)
        poses = [Pose(np.array(r["keypoints"]).reshape(-1, 3), tuple(r["bbox"]),
                      f"{r['score']:.2f}") for r in by_image.get(s.image_id, [])]
        drawn = draw_poses(Image.open(s.image_path), poses, threshold=args.threshold)
        with atomic_path(out / f"{s.image_path.stem}_pose.jpg") as tmp:
            drawn.save(tmp, format="JPEG", quality=92)
    print(f"{out}: {len(results)} poses on {len(seen)} images -> results.json")
    return 0


def _load_model(args: argparse.Namespace):  # -> (nn.Module, PipelineConfig)
    """A checkpoint's model, or an exported ONNX model (run by onnxruntime)."""
    from pathlib import Path

    from ap10k.inference import load_checkpoint

    if Path(args.checkpoint).suffix == ".onnx":
        from ap10k.export import load_onnx

        return load_onnx(args.checkpoint)
    model, pipe, _ = load_checkpoint(args.checkpoint, args.device)
    return model, pipe


def _run_video(args: argparse.Namespace, paths: list, category: int) -> int:
    from ap10k import video
    from ap10k.errors import AP10KError

    if len(paths) != 1:
        raise AP10KError("give one video at a time (images and videos cannot be mixed)")
    if bool(args.boxes) == bool(args.whole_frame):
        raise AP10KError(f"{paths[0]}: give either --boxes track.json or --whole-frame")
    tracks = video.read_tracks(args.boxes, category) if args.boxes else None
    model, pipe = _load_model(args)
    smoothing = (video.OneEuro(args.smooth_min_cutoff, args.smooth_beta)
                 if args.smooth else None)
    summary = video.predict_video(model, pipe, paths[0], args.out, tracks, category,
                                  not args.no_flip, smoothing, args.threshold,
                                  batch_size=args.batch_size)
    print(f"{paths[0]}: {summary['frames']} frames at {summary['fps']:.3f} fps -> "
          f"{summary['jsonl']}, {summary['overlay']}")
    return 0
