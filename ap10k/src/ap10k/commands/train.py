"""`ap10k train [CONFIG.json] --model NAME --train JSON --val JSON --images DIR -o RUN`: train a
top-down heatmap model with the paper's recipe (Adam 5e-4, 500-iteration warm-up, ×0.1 at epochs
170 and 200 of 210, scaled when --epochs is smaller).

Flags override the values in CONFIG.json (a JSON object with the fields of
`ap10k.train.TrainConfig`, `pipeline` nested). Multi-GPU / multi-process:
`torchrun --nproc_per_node N -m ap10k.cli train ...` (NCCL on GPUs, gloo on CPU);
--batch-size is per process.

--resume continues RUN (-o, or `out` of CONFIG.json) from RUN/last.pt with the settings stored in
RUN/config.json: a flag (or CONFIG.json value) that repeats a stored setting is accepted, one that
differs is an error, except --epochs, --max-minutes, --max-cpu-minutes, --workers, --device and
--compile.
Without --resume a folder that already holds a run is refused.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a SimpleBaseline / HRNet / Hourglass pose model",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", nargs="?", help="training config JSON (optional)")
    p.add_argument("--model", help="model name (e.g. hrnet_w32, resnet50, hourglass52)")
    p.add_argument("--pretrained", help="ImageNet weights (torchvision/timm layout) or a pose "
                                        "checkpoint to start from")
    p.add_argument("--train", help="training annotations (COCO keypoint JSON)")
    p.add_argument("--val", help="validation annotations (COCO keypoint JSON)")
    p.add_argument("--images", help="image folder of the annotation files")
    p.add_argument("--val-images", help="image folder of the validation file (default --images)")
    p.add_argument("-o", "--out", help="run folder (checkpoints, log.csv, curve.png)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="images per process (paper: 64 per GPU)")
    p.add_argument("--lr", type=float)
    p.add_argument("--val-every", type=int, help="epochs between validations")
    p.add_argument("--input-size", type=int, help="crop side (heatmaps are a quarter of it)")
    p.add_argument("--workers", type=int, help="data loading processes")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"))
    p.add_argument("--seed", type=int)
    p.add_argument("--max-minutes", type=float, help="stop after the epoch that passes this")
    p.add_argument("--max-cpu-minutes", type=float,
                   help="stop after the epoch that passes this much CPU time (all cores)")
    p.add_argument("--amp", choices=("none", "bf16"),
                   help="autocast the training forward pass (bf16: for GPUs)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the training step (needs a C++ compiler; default off: "
                        "the build takes ~45 CPU-seconds, then ×1.0-1.4 per step on a 2-core "
                        "CPU, so it pays off in runs of several minutes; falls back to eager "
                        "with a warning)")
    p.add_argument("--resume", action="store_true",
                   help="continue RUN/last.pt exactly, with RUN/config.json's settings")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the command line gives (those not given are left out)."""
    flags = {"model": args.model, "pretrained": args.pretrained, "train": args.train,
             "val": args.val, "images": args.images, "val_images": args.val_images,
             "out": args.out, "epochs": args.epochs, "batch_size": args.batch_size,
             "lr": args.lr, "val_every": args.val_every, "workers": args.workers,
             "device": args.device, "seed": args.seed, "max_minutes": args.max_minutes,
             "max_cpu_minutes": args.max_cpu_minutes, "amp": args.amp,
             "compile": args.compile}
    given: dict[str, Any] = {k: v for k, v in flags.items() if v is not None}
    if args.input_size is not None:
        given["pipeline"] = {"input_size": args.input_size,
                             "heatmap_size": args.input_size // 4}
    return given


def _resume_config(args: argparse.Namespace, data: dict[str, Any]):  # -> TrainConfig
    """The stored run's config (RUN/config.json) with the given settings checked against it."""
    from pathlib import Path

    from ap10k.dataset import read_json
    from ap10k.errors import AP10KError
    from ap10k.train import RESUMABLE_CHANGES, TrainConfig, config_conflicts

    given = {**data, **_flags(args)}
    if "pipeline" in data and "pipeline" in given:
        given["pipeline"] = {**data["pipeline"], **given["pipeline"]}
    if not given.get("out"):
        raise AP10KError("--resume needs the run folder: -o RUN (or `out` in CONFIG)")
    stored_file = Path(given["out"]) / "config.json"
    if not stored_file.is_file():
        raise AP10KError(f"{stored_file}: nothing to resume (no config.json in the run folder)")
    cfg = TrainConfig.from_dict(read_json(stored_file), source=str(stored_file))
    conflicts = config_conflicts(cfg.to_dict(), given)
    if conflicts:
        raise AP10KError(f"{given['out']}: --resume continues the stored settings; only "
                         f"{', '.join(RESUMABLE_CHANGES[1:])} may change ("
                         + "; ".join(conflicts) + ")")
    for key in RESUMABLE_CHANGES:
        if key in given:
            setattr(cfg, key, given[key])
    return cfg


def build_config(args: argparse.Namespace):  # -> TrainConfig (lazy import keeps --help fast)
    """The TrainConfig from CONFIG.json (if given) with the command-line flags applied."""
    from ap10k.dataset import read_json
    from ap10k.errors import AP10KError
    from ap10k.train import TrainConfig

    if args.input_size is not None and args.input_size % 4:
        raise AP10KError(f"--input-size {args.input_size}: must be a multiple of 4")
    data = read_json(args.config) if args.config else {}
    cfg = TrainConfig.from_dict(data, source=args.config or "<flags>")
    if args.resume:
        cfg = _resume_config(args, data)
    for key, value in ({} if args.resume else _flags(args)).items():
        if key == "pipeline":
            for name, v in value.items():
                setattr(cfg.pipeline, name, v)
        else:
            setattr(cfg, key, value)
    if not cfg.train or not cfg.images:
        raise AP10KError("training needs --train JSON and --images DIR (or them in CONFIG)")
    for name in ("epochs", "batch_size", "val_every", "checkpoint_every"):
        if getattr(cfg, name) < 1:
            raise AP10KError(f"{name.replace('_', '-')} must be at least 1")
    if cfg.lr <= 0:
        raise AP10KError("--lr must be positive")
    return cfg


def run(args: argparse.Namespace) -> int:
    from ap10k.train import train

    cfg = build_config(args)
    result = train(cfg, resume=args.resume, progress=not args.no_progress)
    best = f", best val AP {result.best_ap:.4f}" if result.best_ap is not None else ""
    print(f"{cfg.out}: {result.epochs_done} epochs{best}")
    return 0
