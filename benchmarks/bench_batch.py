"""Batch throughput: `vbgm generate DIR -o OUT --workers N` against one process (goal: 2 workers
≥ 1.7× one on this 2-core machine).

The batches are the four short real clips of ../shared/data/videos (bikes, box, cup, carphone;
4-15 s, 37 s in all), each `--copies` times under other names: 2 copies = 8 videos, 4 copies =
16, 8 copies = 32. Each run is the whole command as a user runs it (a fresh process: imports,
model loading, worker start-up included), best of `--repeats`. Start-up (about 0.9 s: torch's
import and the model, which no second core shortens) weighs on a small batch, so the ratio of
whole commands grows with the batch; the throughput itself is the steady rate: the seconds each
further video adds, (t(largest batch) - t(smallest)) / (their difference in videos), per worker
count.

    python benchmarks/bench_batch.py [--workers 1 2] [--copies 2 4 8] [--repeats 3]

Writes benchmarks/results/batch.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vbgm.atomic import write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "batch.json"
DATA = Path(os.environ.get("VBGM_DATA", ROOT.parent / "shared" / "data"))
CLIPS = ("bikes.mp4", "box.mp4", "cup.mp4", "carphone_pristine.mp4")


def run(folder: Path, out: Path, workers: int) -> float:
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "vbgm.cli", "generate", str(folder), "-o", str(out),
                    "--quiet", "--workers", str(workers)], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--copies", type=int, nargs="+", default=[2, 4, 8])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    figs = []
    times: dict[int, dict[int, float]] = {}  # videos -> workers -> best seconds
    with tempfile.TemporaryDirectory(prefix="vbgm-bench-batch-") as tmp:
        for copies in args.copies:
            folder = Path(tmp) / f"clips{copies}"
            folder.mkdir()
            for name in CLIPS:
                for copy in range(copies):
                    shutil.copyfile(DATA / "videos" / name,
                                    folder / f"{Path(name).stem}-{copy}.mp4")
            n = len(list(folder.iterdir()))
            best: dict[int, float] = {}
            for _ in range(args.repeats):  # interleaved, so a load change hits every count alike
                for w in args.workers:
                    s = run(folder, Path(tmp) / f"out{w}", w)
                    best[w] = min(best.get(w, s), s)
                    print(f"{n} videos, {w} worker(s): {s:.1f} s", flush=True)
            times[n] = best
            base = best[min(best)]
            figs += [{"metric": f"vbgm generate, {n} short real clips, --workers {w}",
                      "value": round(s, 2), "unit": "s",
                      "note": f"{base / s:.2f}x one process; best of {args.repeats}; "
                              f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"}
                     for w, s in best.items()]
            for w, s in best.items():
                print(f"{n} videos, --workers {w}: {s:.1f} s ({base / s:.2f}x)")
    if len(times) > 1:
        small, large = min(times), max(times)
        per_video = {w: (times[large][w] - times[small][w]) / (large - small)
                     for w in times[large] if w in times[small]}
        one = per_video[min(per_video)]
        for w, s in per_video.items():
            print(f"steady rate, --workers {w}: {s:.3f} s per further video ({one / s:.2f}x)")
            figs.append({"metric": f"vbgm generate, steady rate ({small} -> {large} videos), "
                                   f"--workers {w}",
                         "value": round(s, 3), "unit": "s/video",
                         "note": f"{one / s:.2f}x one process"})
    write_text_atomic(RESULTS, json.dumps({"name": "batch", "figures": figs}, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
