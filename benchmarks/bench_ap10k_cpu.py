"""CPU training-step speed of the synthetic proof-of-learning model under channels-last memory
layout, bf16 autocast and `torch.compile`, each against plain float32 on the same machine.

Model and input as `bench_ap10k_synth.py` trains: SimpleBaseline ResNet-18 (128-channel
deconvolutions) at 96×96 (24×24 heatmaps), batch 32; a step is forward + MSE loss + backward +
Adam. The variants run interleaved (A B C A B C ...) so that a machine shared with other work
slows them alike; the figures are the median images per wall second and per CPU second (all of
the process's threads) over rounds. With more than one torch thread, float32 and compile also run
with one thread (on a shared machine a second thread mostly spins). Writes
benchmarks/results/ap10k_cpu.json.

`torch.compile` needs a C++ compiler and builds for about a minute on 2 busy cores.

    python benchmarks/bench_ap10k_cpu.py [--rounds 3] [--seconds 5] [--no-compile] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from ap10k.atomic import write_text_atomic
from ap10k.models import build_model
from ap10k.train import heatmap_loss

RESULTS = Path(__file__).resolve().parent / "results" / "ap10k_cpu.json"


def make_step(channels_last: bool, bf16: bool, compiled: bool, batch: int, size: int
              ) -> Callable[[], None]:
    """One training step of a fresh model with the given settings (same seed each time)."""
    torch.manual_seed(0)
    model = build_model("resnet18", None, deconv_channels=128)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt).train()
    net = torch.compile(model) if compiled else model
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=fmt)
    target = torch.rand(batch, 17, size // 4, size // 4)
    weight = torch.ones(batch, 17)

    def step() -> None:
        ctx = (torch.autocast("cpu", dtype=torch.bfloat16) if bf16
               else contextlib.nullcontext())
        with ctx:
            loss = heatmap_loss(net(x), target, weight)
        opt.zero_grad(set_to_none=True)
        loss.float().backward()
        opt.step()

    return step


def images_per_s(step: Callable[[], None], batch: int, seconds: float, threads: int
                 ) -> tuple[float, float]:
    """Images per wall second and per CPU second (all of this process's threads) of `step`
    run for about `seconds` with `threads` torch threads."""
    torch.set_num_threads(threads)
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while n < 2 or time.perf_counter() - t0 < seconds:
        step()
        n += 1
    return (n * batch / (time.perf_counter() - t0),
            n * batch / max(time.process_time() - c0, 1e-9))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0, help="time per variant and round")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--no-compile", action="store_true", help="leave out torch.compile")
    ap.add_argument("--quick", action="store_true", help="2 rounds of 2 s")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.seconds = 2, 2.0
    threads = torch.get_num_threads()
    # name: (channels_last, bf16, compile, torch threads)
    variants = {"float32": (False, False, False, threads),
                "channels_last": (True, False, False, threads),
                "bf16_autocast": (False, True, False, threads),
                "channels_last+bf16": (True, True, False, threads)}
    if not args.no_compile:
        variants["compile"] = (False, False, True, threads)
    if threads > 1:
        variants["float32, 1 thread"] = (False, False, False, 1)
        if not args.no_compile:
            variants["compile, 1 thread"] = (False, False, True, 1)
    load0 = os.getloadavg()[0]
    steps = {}
    compile_s = {}
    for name, (cl, bf, comp, n_threads) in variants.items():
        torch.set_num_threads(n_threads)
        steps[name] = make_step(cl, bf, comp, args.batch, args.size)
        t0 = time.perf_counter()
        steps[name]()  # warm-up (for compile: the build)
        if comp:
            compile_s[name] = round(time.perf_counter() - t0, 1)
    rates: dict[str, list[float]] = {n: [] for n in variants}
    cpu_rates: dict[str, list[float]] = {n: [] for n in variants}
    for _ in range(args.rounds):
        for name, step in steps.items():
            wall, cpu = images_per_s(step, args.batch, args.seconds, variants[name][3])
            rates[name].append(wall)
            cpu_rates[name].append(cpu)
    base = statistics.median(rates["float32"])
    cpu_base = statistics.median(cpu_rates["float32"])
    out = {"name": "ap10k_cpu", "torch": torch.__version__,
           "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
           "threads": threads, "load_average_at_start": load0,
           "batch": args.batch, "input": f"{args.size}x{args.size}", "results": {},
           "figures": [], "compile_seconds": compile_s}
    for name, r in rates.items():
        med, cpu_med = statistics.median(r), statistics.median(cpu_rates[name])
        out["results"][name] = {"images_per_s": round(med, 2), "rounds": [round(v, 2) for v in r],
                                "speedup": round(med / base, 3),
                                "images_per_cpu_s": round(cpu_med, 2),
                                "cpu_efficiency": round(cpu_med / cpu_base, 3),
                                "threads": variants[name][3]}
        out["figures"].append({"metric": f"synth model train step, {name}", "unit": "images/s",
                               "value": round(med, 2),
                               "note": f"x{med / base:.2f} vs float32 ({threads} threads), "
                                       f"{cpu_med:.1f} images per CPU-second "
                                       f"(x{cpu_med / cpu_base:.2f}), batch {args.batch}"})
        print(f"{name:20s} {med:8.2f} img/s  x{med / base:.2f}  {cpu_med:6.2f} img/CPU-s  "
              f"x{cpu_med / cpu_base:.2f}  (rounds: {', '.join(f'{v:.1f}' for v in r)})",
              flush=True)
    out["load_average_at_end"] = os.getloadavg()[0]
    write_text_atomic(RESULTS, json.dumps(out, indent=1) + "\n")
    print(f"-> {RESULTS}")


if __name__ == "__main__":
    main()
