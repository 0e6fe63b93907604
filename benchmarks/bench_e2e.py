"""End-to-end time of the product on a 60-second 1280x720 clip on this CPU (goal: ≤ 15 s).

Runs exactly what `vbgm score` runs (`vbgm.pipeline.score_video`, shipped model, default request,
control degree 0.7, seed 0, one candidate) and reports each stage (analyze, generate, render,
mux), their total, the real-time factor (clip seconds per wall-clock second) and the generation
speed in tokens/s. Loading the model is timed apart (a long-running service pays it once).

Batch-1 generation is a chain of small matrix-vector steps, where extra threads can cost more in
synchronisation than they give, so recurrent generation alone is first timed with 1 and with 2
torch threads (alternating, best of two each, as the CPU may be shared) and the pipeline runs
with the faster count. The clip is `vbgm.demo_video.make_demo_video` (three scenes, two cuts),
made once and cached in the temp dir.

Writes benchmarks/results/e2e.json (run_all.py's convention: "figures", the details beside them).

    python benchmarks/bench_e2e.py [--quick] [--seconds 60] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from vbgm.atomic import write_text_atomic
from vbgm.demo_video import make_demo_video
from vbgm.model import CMT
from vbgm.outputs import Outputs
from vbgm.pipeline import free_controls, load_model, score_video
from vbgm.sampling import Request, SamplingConfig, generate

RESULTS = Path(__file__).resolve().parent / "results" / "e2e.json"
CACHE = Path(tempfile.gettempdir()) / "vbgm-bench-e2e"
SIZE = (1280, 720)
GOAL_S = 15.0  # for the 60 s clip
STAGES = ("analyze", "generate", "render", "mux")
CONFIG = SamplingConfig(control=0.7)


def demo_clip(seconds: float) -> tuple[Path, float]:
    """The cached demo clip of `seconds` at 1280x720, and how long making it took (0 if cached)."""
    path = CACHE / f"demo{SIZE[1]}p{seconds:g}s.mp4"
    if path.is_file():
        return path, 0.0
    CACHE.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    make_demo_video(path, seconds=seconds, size=SIZE, progress=True)
    return path, time.perf_counter() - t


def generation_tokens_per_s(model: CMT, threads: int, n_sixteenths: int) -> float:
    """Recurrent batch-1 generation speed with `threads` torch threads (after a short warm-up)."""
    torch.set_num_threads(threads)
    controls = free_controls(n_sixteenths * 15.0 / 120.0, 120.0)
    generate(model, free_controls(2.0, 120.0), Request(), CONFIG, seed=1)  # warm-up
    t = time.perf_counter()
    tokens = len(generate(model, controls, Request(), CONFIG, seed=0)[0].tokens)
    return tokens / (time.perf_counter() - t)


def pick_threads(model: CMT, n_sixteenths: int, rounds: int = 2) -> dict[int, float]:
    """Best tokens/s over `rounds` alternating runs for 1 and 2 threads."""
    best = {1: 0.0, 2: 0.0}
    for _ in range(rounds):
        for n in best:
            best[n] = max(best[n], generation_tokens_per_s(model, n, n_sixteenths))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a 15 s clip instead of 60 s")
    ap.add_argument("--seconds", type=float, help="clip length (default 60, or 15 with --quick)")
    ap.add_argument("--threads", type=int, help="torch threads (default: the faster of 1 and 2)")
    ap.add_argument("--checkpoint", type=Path, help="a model other than the shipped one")
    ap.add_argument("--int8", action=argparse.BooleanOptionalAction, default=True,
                    help="int8 recurrent step (the default, as `vbgm generate`'s; --no-int8 for "
                         "float32)")
    args = ap.parse_args()
    seconds = args.seconds or (15.0 if args.quick else 60.0)

    clip, made_s = demo_clip(seconds)
    print(f"clip {clip} ({seconds:g} s, {SIZE[0]}x{SIZE[1]})"
          + (f", made in {made_s:.1f} s" if made_s else ", cached"), flush=True)
    t = time.perf_counter()
    model = load_model(args.checkpoint)
    load_s = time.perf_counter() - t
    n_params = sum(p.numel() for p in model.parameters())

    speeds: dict[int, float] = {}
    threads = args.threads
    if threads is None:
        speeds = pick_threads(model, n_sixteenths=32 if args.quick else 64)
        threads = max(speeds, key=speeds.get)
        print("batch-1 generation: " + ", ".join(f"{n} thread(s) {v:.0f} tokens/s"
                                                 for n, v in speeds.items())
              + f" -> using {threads}", flush=True)
    torch.set_num_threads(threads)

    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="vbgm-bench-e2e-") as tmp:
        out = Outputs(video=Path(tmp) / "scored.mp4", midi=Path(tmp) / "scored.mid")
        t = time.perf_counter()
        config = replace(CONFIG, int8=args.int8)
        music = score_video(clip, out, model, Request(), config, seed=0)
        wall_s = time.perf_counter() - t
        out_mib = out.video.stat().st_size / 2**20
    stages = {k: music.timings[k] for k in STAGES}
    total = sum(stages.values())
    n_tokens = len(music.candidates[0].tokens)
    tok_s = n_tokens / stages["generate"]
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    what = f"{seconds:g} s {SIZE[0]}x{SIZE[1]} demo clip"
    note = (f"{os.cpu_count()} CPUs, load {load_start:.1f}, {threads} torch thread(s), "
            f"{n_params / 1e6:.1f} M-parameter model")
    figs = [{"metric": f"e2e {stage}, {what}", "value": round(v, 2), "unit": "s", "note": note}
            for stage, v in stages.items()]
    goal = f"goal ≤ {GOAL_S:g} s on the 60 s clip" + ("" if seconds == 60 else
                                                      f" (≤ {GOAL_S * seconds / 60:g} s here)")
    figs += [
        {"metric": f"e2e total (4 stages), {what}", "value": round(total, 2), "unit": "s",
         "note": f"{goal}; score_video wall {wall_s:.2f} s; {note}"},
        {"metric": f"e2e speed, {what}", "value": round(seconds / total, 2),
         "unit": "x real time", "note": note},
        {"metric": "e2e generation speed, batch 1", "value": round(tok_s, 1), "unit": "tokens/s",
         "note": f"{n_tokens} tokens for {music.song.n_sixteenths} sixteenths; {note}"},
        {"metric": "load shipped model", "value": round(load_s, 2), "unit": "s",
         "note": "not in the e2e total"},
        {"metric": "e2e peak RSS", "value": round(peak_mib), "unit": "MiB", "note": note},
    ]
    figs += [{"metric": f"recurrent generation, batch 1, {n} thread(s)", "value": round(v, 1),
              "unit": "tokens/s", "note": f"best of 2; load {load_start:.1f}"}
             for n, v in speeds.items()]

    print(f"\n{'stage':10} {'s':>7}")
    for stage, v in stages.items():
        print(f"{stage:10} {v:7.2f}")
    print(f"{'total':10} {total:7.2f}   ({seconds / total:.1f}x real time; {goal})")
    print(f"generation: {n_tokens} tokens at {tok_s:.0f} tokens/s with {threads} thread(s); "
          f"model load {load_s:.2f} s; peak RSS {peak_mib:.0f} MiB")
    result = {"name": "e2e", "figures": figs, "clip": {"seconds": seconds, "size": list(SIZE),
                                                       "made_in_s": round(made_s, 2)},
              "threads": threads,
              "generation_tokens_per_s_by_threads": {n: round(v, 1) for n, v in speeds.items()},
              "timings_s": {k: round(v, 3) for k, v in music.timings.items()},
              "tokens": n_tokens, "notes": len(music.song.notes),
              "tempo_bpm": music.tempo_bpm, "output_mib": round(out_mib, 2),
              "model_parameters": n_params, "torch": torch.__version__,
              "cpu_count": os.cpu_count(), "load_average": [load_start, os.getloadavg()[0]]}
    write_text_atomic(RESULTS, json.dumps(result, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
