"""Proof of learning without AP-10K: train a small top-down model on procedural animals
(`ap10k synth`) within 15 minutes of wall-clock training on this 2-core CPU and report the AP on
held-out synthetic images.

Model: SimpleBaseline ResNet-18 (128-channel deconvolutions) at 96×96 input (24×24 heatmaps),
from scratch, Adam 2e-3, batch 32, 50-iteration warm-up, milder augmentation than the recipe
(flip, ±20° rotation with p 0.3, scale ±25 %, no half-body), `torch.compile` (×1.0–1.4 per
step on this machine depending on its load, see bench_ap10k_cpu.py). The held-out images are the
last 20 % of the generated ids (`ap10k.synth.generate`'s validation split); training never reads
them.

The schedule is fitted to the budget: the first `--probe-epochs` epochs run with a long nominal
schedule (constant lr after the warm-up), their last epoch's time gives the epoch length and so
the number of epochs that fit in what is left; training resumes (`train(..., resume=True)`, which
may change `epochs`) with the nominal schedule up to `--refit-at` of that, the epoch length is
measured again over that longer stretch (the load of a shared machine moves) and the run resumes
once more with as many epochs as fit, so the recipe's two ×0.1 lr drops (at 170/210 and 200/210
of the schedule) land inside the budget. The training clock runs from the first `train` call
(model build, compile, data loading, validations and the resumes included) to the end of the last
epoch; data generation is timed apart. Defaults: 3000 images (2400 train / 600 held out), 96 px,
compile on; `--threads 1` was the fastest on the shared 2-core machine (bench_ap10k_cpu.py).
Wall time, CPU time (all cores, data and compile workers included) and the load average are
recorded, because the machine may be shared; on a busy machine `--cpu-minutes` (with
`--threads 1`, whose CPU minutes are wall minutes on an idle machine) fits the schedule to CPU time
instead, which other work barely moves. Writes benchmarks/results/ap10k_synth.json (--out), the
per-epoch curve included.

    python benchmarks/bench_ap10k_synth.py --threads 1 [--minutes 15 | --cpu-minutes 15]
        [--n 3000] [--input-size 96] [--no-compile] [--workdir DIR] [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# compile in this process, so that its CPU time is counted (a pool's workers are not reaped)
os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")

import torch  # noqa: E402
from ap10k.atomic import write_text_atomic
from ap10k.pipeline import PipelineConfig
from ap10k.synth import generate
from ap10k.train import TrainConfig, cpu_seconds, train

RESULTS = Path(__file__).resolve().parent / "results" / "ap10k_synth.json"


def synth_data(root: Path, n: int) -> tuple[Path, float]:
    """`n` synthetic images (seed 0, 20 % held out) under `root`, reused when already there;
    returns the folder and the seconds spent generating (0 when reused)."""
    data = root / f"synth-{n}"
    if (data / "annotations" / "synth-val.json").is_file():
        return data, 0.0
    t0 = time.monotonic()
    generate(data, n, seed=0, val_fraction=0.2, size=(160, 160))
    return data, time.monotonic() - t0


def epochs_that_fit(budget_s: float, elapsed_s: float, epoch_s: float, done: int,
                    reserve_s: float) -> int:
    """Total epochs when `done` took `elapsed_s`, each further one takes `epoch_s` and
    `reserve_s` is kept for the resume and the final validation (at least `done` + 1)."""
    more = math.floor((budget_s - elapsed_s - reserve_s) / max(epoch_s, 1e-9))
    return done + max(1, more)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000, help="synthetic images (20 %% held out)")
    ap.add_argument("--minutes", type=float, default=15.0, help="wall-clock training budget")
    ap.add_argument("--cpu-minutes", type=float,
                    help="budget in CPU time instead (core-minutes, all cores and workers), "
                         "steadier than wall time on a shared machine")
    ap.add_argument("--input-size", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--probe-epochs", type=int, default=2,
                    help="epochs run before the schedule is fitted to the budget")
    ap.add_argument("--reserve", type=float, default=20.0,
                    help="seconds kept for the resume (re-compile) and the validations")
    ap.add_argument("--refit-at", type=float, default=0.75,
                    help="fraction of the fitted schedule after which the epoch time is "
                         "measured again and the schedule refitted (before the first lr drop)")
    ap.add_argument("--val-every", type=int, default=5)
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    ap.add_argument("--workdir", help="keep data and runs here (default: a temporary folder); "
                                      "data already there is reused")
    ap.add_argument("--out", help=f"results JSON (default: {RESULTS}; with --quick: "
                                  "ap10k_synth_quick.json in the temporary folder)")
    ap.add_argument("--quick", action="store_true", help="a ~4-minute smoke version")
    args = ap.parse_args()
    if args.quick:
        args.n, args.minutes, args.probe_epochs = 400, 3.0, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path(args.workdir or tempfile.mkdtemp(prefix="ap10k-synth-"))
    data, gen_s = synth_data(root, args.n)
    run = root / f"run-{time.strftime('%Y%m%d-%H%M%S')}"
    pipe = PipelineConfig(input_size=args.input_size, heatmap_size=args.input_size // 4,
                          half_body_prob=0.0, rotation_factor=20.0, rotation_prob=0.3,
                          scale_factor=0.25)
    cfg = TrainConfig(model="resnet18", model_options={"deconv_channels": 128},
                      train=str(data / "annotations" / "synth-train.json"),
                      val=str(data / "annotations" / "synth-val.json"),
                      images=str(data / "data"), out=str(run), epochs=200,
                      batch_size=args.batch_size, lr=args.lr, warmup_iters=50,
                      val_every=args.val_every, workers=1, checkpoint_every=1000,
                      compile=args.compile, pipeline=pipe)
    clock = "cpu_s" if args.cpu_minutes else "wall_s"
    budget = (args.cpu_minutes or args.minutes) * 60
    load0 = os.getloadavg()
    t0, c0 = time.monotonic(), cpu_seconds()
    history: list[dict[str, Any]] = []

    def segment(stop_after: int | None) -> None:
        """Train (resuming after the first call) to `stop_after` epochs or the end; the rows'
        clocks, which restart with each call, are shifted to count from the first."""
        offset, cpu_offset = time.monotonic() - t0, cpu_seconds() - c0
        result = train(cfg, resume=bool(history), progress=False, stop_after=stop_after)
        for r in result.history[len(history):]:
            history.append({**r, "wall_s": round(r["wall_s"] + offset, 1),
                            "cpu_s": round(r["cpu_s"] + cpu_offset, 1)})

    def used() -> float:
        return cpu_seconds() - c0 if args.cpu_minutes else time.monotonic() - t0

    segment(args.probe_epochs)  # nominal 200-epoch schedule: constant lr after the warm-up
    done = len(history)
    epoch_s = history[-1][clock] - (history[-2][clock] if done > 1 else 0.0)
    cfg.epochs = epochs_that_fit(budget, used(), epoch_s, done, args.reserve)
    print(f"probe ({clock[:-2]} clock): {done} epochs in {used() / 60:.1f} min, "
          f"{epoch_s:.0f} s/epoch -> {cfg.epochs} epochs", flush=True)
    # refit once more over a longer stretch, still before the first lr drop, since the load of
    # a shared machine moves
    mid = min(round(cfg.epochs * args.refit_at), cfg.schedule_milestones()[0] - 1)
    if mid > done:
        cfg.epochs = 200
        segment(mid)
        epoch_s = (history[-1][clock] - history[done - 1][clock]) / (mid - done)
        cfg.epochs = epochs_that_fit(budget, used(), epoch_s, mid, args.reserve)
        print(f"refit: {mid} epochs in {used() / 60:.1f} min, {epoch_s:.0f} s/epoch -> "
              f"{cfg.epochs} epochs", flush=True)
    print(f"lr drops at {cfg.schedule_milestones()}", flush=True)
    segment(None)
    wall, cpu = time.monotonic() - t0, cpu_seconds() - c0
    load1 = os.getloadavg()
    quick_out = Path(tempfile.gettempdir()) / "ap10k_synth_quick.json"
    results = Path(args.out or (quick_out if args.quick else RESULTS))
    results.parent.mkdir(parents=True, exist_ok=True)
    final = history[-1]
    settings = (f"resnet18 SimpleBaseline (128-ch deconvs) {args.input_size}px from scratch, "
                f"{args.n} synthetic images ({_count(cfg.train)} train / "
                f"{_count(cfg.val)} held out), batch {args.batch_size}, Adam {args.lr:g}, "
                f"{cfg.epochs} epochs (lr ×0.1 at {cfg.schedule_milestones()}), "
                f"compile {'on' if args.compile else 'off'}, "
                f"torch threads {torch.get_num_threads()}, 1 data worker")
    load = f"load avg (1/5/15 min) {load0[0]:.1f}/{load0[1]:.1f}/{load0[2]:.1f} at start, " \
           f"{load1[0]:.1f}/{load1[1]:.1f}/{load1[2]:.1f} at end"
    out: dict[str, Any] = {
        "name": "ap10k_synth",
        "command": "python benchmarks/bench_ap10k_synth.py " + " ".join(sys.argv[1:]),
        "settings": settings,
        "figures": [
            {"metric": "held-out AP (final epoch)", "value": round(final["val_AP"], 4),
             "unit": "AP", "note": settings},
            {"metric": "training wall time", "value": round(wall / 60, 2), "unit": "min",
             "note": f"{'' if args.cpu_minutes else f'budget {args.minutes:g} min; '}"
                     f"build, compile, validations and resume included; {load}"},
            {"metric": "training CPU time", "value": round(cpu / 60, 2), "unit": "core-min",
             "note": f"{f'budget {args.cpu_minutes:g} core-min; ' if args.cpu_minutes else ''}"
                     "this process, its data workers and compile workers, all cores"},
            {"metric": "held-out AP50 (final epoch)", "value": round(final["val_AP50"], 4),
             "unit": "AP", "note": ""},
        ],
        "epochs": len(history), "data_generation_s": round(gen_s, 1),
        "load_average_start": load0, "load_average_end": load1,
        "curve": [{k: r[k] for k in ("epoch", "wall_s", "cpu_s", "lr", "train_loss",
                                     "images_per_s", "val_AP")} for r in history],
        "config": cfg.to_dict(),
    }
    write_text_atomic(results, json.dumps(out, indent=1) + "\n")
    for r in history:
        ap_text = f"{r['val_AP']:.3f}" if r["val_AP"] not in ("", None) else "  -  "
        print(f"epoch {r['epoch']:3d}  wall {r['wall_s'] / 60:5.1f} min  lr {r['lr']:.1e}  "
              f"loss {r['train_loss']:.2e}  {r['images_per_s']:5.1f} img/s  AP {ap_text}")
    print(settings)
    print(f"held-out AP {final['val_AP']:.4f} (AP50 {final['val_AP50']:.4f}) after "
          f"{wall / 60:.2f} min wall / {cpu / 60:.1f} core-min of training; {load}")
    if args.workdir is None:
        shutil.rmtree(root, ignore_errors=True)
    print(f"-> {results}" + (f" (curve plot: {run / 'curve.png'})" if args.workdir else ""))


def _count(annotations: str | None) -> int:
    """Number of annotated instances in a COCO JSON file."""
    return len(json.loads(Path(annotations or "").read_text())["annotations"])


if __name__ == "__main__":
    main()
