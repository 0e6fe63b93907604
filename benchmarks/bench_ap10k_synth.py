"""Proof of learning without AP-10K: train a small top-down model on procedural animals
(`ap10k synth`) within a CPU budget of 15 minutes on 2 cores and report held-out AP.

Model: SimpleBaseline ResNet-18 (128-channel deconvolutions) at 96×96 input (24×24 heatmaps),
from scratch, Adam 2e-3 with the recipe's schedule shape and milder augmentation (flip, ±20°
rotation with p 0.3, scale ±25 %, no half-body). Validation AP (GT boxes, flip test) after every
epoch. The budget is counted in CPU time (30 core-minutes = 15 min × 2 cores) because the
machine may be shared; wall time and load are recorded too. Writes the curve to
benchmarks/results/ap10k_synth.csv / .png and the figures to benchmarks/results/ap10k_synth.json.

    python benchmarks/bench_ap10k_synth.py [--n 2500] [--cpu-minutes 30] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
from ap10k.atomic import write_text_atomic
from ap10k.pipeline import PipelineConfig
from ap10k.synth import generate
from ap10k.train import TrainConfig, train

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2500, help="synthetic images (20 %% held out)")
    ap.add_argument("--cpu-minutes", type=float, default=30.0,
                    help="CPU budget, all cores together (default 15 min × 2 cores)")
    ap.add_argument("--epochs", type=int, default=40, help="schedule length (budget stops it)")
    ap.add_argument("--input-size", type=int, default=96)
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    ap.add_argument("--workdir", help="keep data and run here (default: a temporary folder)")
    ap.add_argument("--quick", action="store_true", help="a 3-minute smoke version")
    args = ap.parse_args()
    if args.quick:
        args.n, args.cpu_minutes, args.epochs = 400, 6.0, 6
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="ap10k-synth-"))
    t0 = time.monotonic()
    generate(work / "data", args.n, seed=0, val_fraction=0.2, size=(160, 160))
    gen_s = time.monotonic() - t0
    pipe = PipelineConfig(input_size=args.input_size, heatmap_size=args.input_size // 4,
                          half_body_prob=0.0, rotation_factor=20.0, rotation_prob=0.3,
                          scale_factor=0.25)
    cfg = TrainConfig(model="resnet18", model_options={"deconv_channels": 128},
                      train=str(work / "data" / "annotations" / "synth-train.json"),
                      val=str(work / "data" / "annotations" / "synth-val.json"),
                      images=str(work / "data" / "data"), out=str(work / "run"),
                      epochs=args.epochs, batch_size=32, lr=2e-3, warmup_iters=50, val_every=1,
                      workers=1, checkpoint_every=1000, max_cpu_minutes=args.cpu_minutes,
                      pipeline=pipe)
    load0 = os.getloadavg()[0]
    result = train(cfg)
    history = result.history
    RESULTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(work / "run" / "log.csv", RESULTS / "ap10k_synth.csv")
    shutil.copyfile(work / "run" / "curve.png", RESULTS / "ap10k_synth.png")
    final = history[-1]
    note = (f"resnet18 SimpleBaseline {args.input_size}px from scratch, {args.n} synthetic "
            f"images, {torch.get_num_threads()} threads, load avg {load0:.1f}")
    out = {
        "name": "ap10k_synth",
        "figures": [
            {"metric": "held-out AP (final)", "value": final["val_AP"], "unit": "AP",
             "note": note},
            {"metric": "held-out AP (best)", "value": result.best_ap, "unit": "AP", "note": note},
            {"metric": "training CPU time", "value": final["cpu_s"] / 60, "unit": "core-min",
             "note": f"budget {args.cpu_minutes} core-min"},
            {"metric": "training wall time", "value": final["wall_s"] / 60, "unit": "min",
             "note": "includes per-epoch validation"},
        ],
        "epochs": len(history), "data_generation_s": round(gen_s, 1),
        "load_average_start": load0, "load_average_end": os.getloadavg()[0],
        "curve": [{k: r[k] for k in ("epoch", "wall_s", "cpu_s", "train_loss", "val_AP")}
                  for r in history],
        "config": cfg.to_dict(),
    }
    write_text_atomic(RESULTS / "ap10k_synth.json", json.dumps(out, indent=1) + "\n")
    for r in history:
        print(f"epoch {r['epoch']:3d}  wall {r['wall_s'] / 60:5.1f} min  cpu "
              f"{r['cpu_s'] / 60:5.1f} core-min  loss {r['train_loss']:.2e}  AP {r['val_AP']:.3f}")
    print(f"-> {RESULTS / 'ap10k_synth.json'}")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
