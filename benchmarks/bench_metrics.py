"""Benchmark the music metrics: structureness cost per range and source on one real ~3-minute
song, and `evaluate midi` throughput (files/s) with the Table 1 metrics over real POP909 and
Lakh-style songs. Prints the figures and writes benchmarks/results/metrics.json (run_all.py's
convention).

    python benchmarks/bench_metrics.py [--quick] [--songs 50]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import vbgm.metrics as M
from vbgm.atomic import write_text_atomic
from vbgm.evaluation import evaluate_folder, file_tempo, table_rows
from vbgm.midi import read_midi

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("VBGM_DATA", ROOT.parent / "shared" / "data")) / "midi"


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    """Best wall time of `repeat` calls, and the last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer songs, no long range / audio")
    ap.add_argument("--songs", type=int, default=50, help="POP909 songs for the throughput run")
    args = ap.parse_args()
    n_songs = 10 if args.quick else args.songs
    machine = f"{platform.machine()}, {os.cpu_count()} cpus"
    figures = []

    def add(metric: str, value: float, unit: str, note: str = "") -> None:
        figures.append({"metric": metric, "value": round(float(value), 4), "unit": unit,
                        "note": note or machine})
        print(f"{metric:48s} {value:10.4g} {unit:10s} {note}")

    path = DATA / "pop909" / "001.mid"
    song, tempo = read_midi(path), file_tempo(path)
    dur = song.n_sixteenths * 15 / tempo
    what = f"pop909/001 ({dur:.0f} s, {tempo:.0f} bpm)"
    t, _ = timed(lambda: (M.pitch_entropy(song), M.grooving_similarity(song)), 3)
    add("entropy + grooving per song", t * 1000, "ms", what)
    ranges = ("short", "mid") if args.quick else ("short", "mid", "long")
    for r in ranges:
        t, si = timed(lambda r=r: M.structureness(song, tempo, "notes", r))
        add(f"SI {r} (notes) per song", t, "s", f"{what}, SI={si:.3f}")
    if not args.quick:
        t, si = timed(lambda: M.structureness(song, tempo, "audio", "short"))
        add("SI short (audio: render + STFT) per song", t, "s", f"{what}, SI={si:.3f}")

    for folder, limit in (("pop909", n_songs), ("lmd_samples", None)):
        t0 = time.perf_counter()
        result = evaluate_folder(DATA / folder, limit=limit, progress=False)
        took = time.perf_counter() - t0
        row = table_rows([result])[0]
        note = f"{folder}, {row['files']} files, {row['skipped']} skipped"
        add(f"evaluate midi throughput ({folder})", row["files"] / took, "files/s", note)
        for key in ("pitch_entropy", "grooving_similarity", "structureness"):
            add(f"{key} mean ({folder})", row[f"{key}_mean"], "", f"{note}, std "
                f"{row[f'{key}_std']:.3f}")

    out = ROOT / "benchmarks" / "results" / "metrics.json"
    write_text_atomic(out, json.dumps({"name": "metrics", "figures": figures,
                                       "numpy": np.__version__}, indent=1) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
