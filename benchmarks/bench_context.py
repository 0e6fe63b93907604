"""Does the model keep its footing in long songs? The loss by position in the song.

A model trained on windows of W token rows never saw a recurrent state summed over more rows,
and generation runs the recurrent state over the whole song. For every validation song of more
than `--rows` rows (teacher-forced, its own key token), the recurrent step runs over its first
rows, as generation does, and the per-row loss (the mean of the seven fields' cross-entropies,
as in training) is averaged per position bucket (0-512, 512-1024, then doubling).

With `--window W` the state is rebuilt as the sampler rebuilds it (`SamplingConfig.window`,
`keep`): once it holds W rows, from the conditioning rows and the last `keep` rows.

Measured 2026-12-01 on the 11 validation songs of > 4096 rows, per bucket 0-512 / 512-1024 /
1024-2048 / 2048-4096: the shipped model (trained on 512-row windows) 0.26 / 0.97 / 1.98 / 2.80
with the state over every row (it is lost past its window), 0.26 / 0.26 / 0.25 / 0.24 rebuilt at
512 from the last 128 (the last 256: the same within 0.003). Two things that did not do it: the
same model trained on for 6 epochs of 2048-row windows (one GPU, 78 s) gave 0.27 / 0.27 / 0.27 /
0.78, and a state sliding over the last W rows (each step taking the oldest row's k v^T back
out of the sums) 1.07 / 2.25 / 1.95 past 512 with W = 512: a deeper layer's keys still carry
what their rows saw before.

    python benchmarks/bench_context.py [--checkpoint A.pt ...] [--rows 4096] [--window 0 512]
                                       [--keep 128]

Writes benchmarks/results/context.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from vbgm.atomic import write_text_atomic
from vbgm.dataset import Dataset
from vbgm.model import load_checkpoint
from vbgm.pipeline import default_checkpoint
from vbgm.request import SamplingConfig
from vbgm.sampling import row_losses
from vbgm.train import Window, collate

from vbgm import keys

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "context.json"
DATASET = Path(os.environ.get("VBGM_DATASET", ROOT / "data" / "midi-ds"))


def buckets(rows: int) -> list[tuple[int, int]]:
    """Position buckets 0-512, 512-1024, then doubling up to `rows`."""
    out, lo, hi = [], 0, 512
    while lo < rows:
        out.append((lo, min(hi, rows)))
        lo, hi = hi, hi * 2
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, nargs="+", default=None)
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--window", type=int, nargs="+", default=[0, SamplingConfig.window])
    ap.add_argument("--keep", type=int, default=SamplingConfig.keep)
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    ds = Dataset.load(DATASET)
    songs = [i for i in ds.split("valid") if len(ds.tokens(i)) > args.rows]
    out = {"name": "context", "rows": args.rows, "songs": len(songs), "runs": [],
           "buckets": buckets(args.rows)}
    t0 = time.perf_counter()
    for path in args.checkpoint or [default_checkpoint()]:
        model, _ = load_checkpoint(path)
        windows = [Window(int(i), 0, args.rows, False,
                          *keys.window_key(model.config.keys, int(ds.key(i)), None, False))
                   for i in songs]
        init, x, y, _ = collate(ds, windows)
        for window in args.window:
            loss = row_losses(model, init, x, y, window, args.keep).numpy()
            per = [float(loss[:, lo:hi].mean()) for lo, hi in out["buckets"]]
            out["runs"].append({"model": str(path), "window": window, "loss": per})
            print(f"{path} ({len(songs)} validation songs of > {args.rows} rows), window "
                  f"{window or 'none'}: " + "  ".join(
                      f"{lo}-{hi} {v:.4f}" for (lo, hi), v in zip(out["buckets"], per)))
    out["figures"] = [{"metric": f"model loss at rows {lo}-{hi}, " + (
                           f"state rebuilt at {r['window']}" if r["window"] else "unbounded state"),
                       "value": v, "unit": "nats",
                       "note": f"{Path(r['model']).name}, {out['songs']} validation songs"}
                      for r in out["runs"] for (lo, hi), v in zip(out["buckets"], r["loss"])]
    out["seconds"] = round(time.perf_counter() - t0, 1)
    write_text_atomic(RESULTS, json.dumps(out, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
