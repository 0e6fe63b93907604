"""CPU training speed of the CMT: tokens/s of `vbgm train`'s step under bf16 autocast,
`torch.compile` and 1 or 2 threads, against plain float32, for the small, medium and paper
models; and the share of padding in the batches `vbgm train` builds (is sequence packing worth
it?).

A step is the one `vbgm train` runs (`vbgm.train.make_step`): forward + loss, backward, gradient
clipping, AdamW. Batches are real training windows of data/midi-ds (the first full
batch_size x seq_len batches of the epoch plan; random token rows when the dataset is absent).
The variants run interleaved (A B C A B C ...) so that load from other work on a shared CPU
slows them alike; the figure is the median tokens/s over rounds. A bf16 loss check trains the
same start for a few steps in float32 and in bf16 on the same batches and compares the losses.
Writes benchmarks/results/train_speed.json (a run with --configs updates only those configs).

    python benchmarks/bench_train_speed.py [--quick] [--rounds 3] [--configs small,medium,paper]
        [--seconds 8] [--no-compile] [--variants "NAME;..."] [--loss-steps 30] [--loss-only]

`torch.compile` needs a C++ compiler and builds for one to three minutes per model on 2 busy
cores (reported as compile_seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from vbgm.atomic import write_text_atomic
from vbgm.model import CMT
from vbgm.train import (
    TrainConfig,
    _song_lengths,
    _WithLoss,
    collate,
    cpu_bf16_native,
    make_optimizer,
    make_step,
    plan_epoch,
)

from vbgm import vocab

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "train_speed.json"
DATASET = ROOT / "data" / "midi-ds"
Batch = tuple[Tensor, Tensor, Tensor, Tensor]
# name -> (compile, cpu_bf16, threads); the first is the baseline.
VARIANTS: dict[str, tuple[bool, bool, int]] = {
    "float32, 2 threads": (False, False, 2),
    "float32, 1 thread": (False, False, 1),
    "bf16, 2 threads": (False, True, 2),
    "bf16, 1 thread": (False, True, 1),
    "compile, 1 thread": (True, False, 1),
    "compile+bf16, 2 threads": (True, True, 2),
    "compile+bf16, 1 thread": (True, True, 1),
}


def padding_waste(lengths: dict[int, int], batch_size: int, seq_len: int, epochs: int = 3
                  ) -> dict[str, float]:
    """Share of padded positions in the batches `vbgm train` builds (windows sorted by length
    inside pools, each batch padded to its longest window), and what padding every batch to
    (batch_size, seq_len) (a compiled step's static shape) would cost; over `epochs` plans."""
    real = as_built = full = 0
    short = n_batches = 0
    for epoch in range(epochs):
        for batch in plan_epoch(lengths, batch_size, seq_len, 0, epoch, 0.15, 0.2):
            T = max(w.length for w in batch)
            real += sum(w.length for w in batch)
            as_built += T * len(batch)
            full += batch_size * seq_len
            short += T < seq_len
            n_batches += 1
    song = np.array(list(lengths.values())) - 1
    return {"as_built": round(1 - real / as_built, 4),
            "padded_to_full_shape": round(1 - real / full, 4),
            "share_of_batches_shorter_than_seq_len": round(short / n_batches, 4),
            "share_of_songs_shorter_than_seq_len": round(float((song < seq_len).mean()), 4),
            "median_song_tokens": float(np.median(song)), "songs": len(song),
            "batches": n_batches}


def random_batch(B: int, T: int, seed: int) -> Batch:
    """Random token rows (when the real dataset is absent)."""
    g = torch.Generator().manual_seed(seed)
    n = list(vocab.N_CLASSES[:8]) + [5000]
    x = torch.stack([torch.randint(0, k, (B, T + 1), generator=g) for k in n], -1)
    x[..., vocab.I_BEAT] = torch.sort(x[..., vocab.I_BEAT], -1).values
    return (torch.zeros(B, 7, 3, dtype=torch.long), x[:, :-1], x[:, 1:],
            torch.ones(B, T, dtype=torch.bool))


def real_batches(B: int, T: int, n: int) -> tuple[list[Batch], dict[int, int] | None]:
    """n full (B, T) training batches of data/midi-ds as `vbgm train` builds them, and the
    train split's song lengths; random rows (and None) without the dataset."""
    if not (DATASET / "index.json").is_file():
        return [random_batch(B, T, i) for i in range(n)], None
    from vbgm.dataset import Dataset

    ds = Dataset.load(DATASET)
    lengths = _song_lengths(ds, "train")
    out = []
    for batch in plan_epoch(lengths, B, T, 0, 0, 0.15, 0.2):
        if len(batch) == B and min(w.length for w in batch) == T:
            out.append(collate(ds, batch))
        if len(out) == n:
            break
    return out, lengths


def build(model: str, batch_size: int, seq_len: int, variants: dict[str, tuple[bool, bool, int]]
          ) -> dict[str, Callable[[Batch], Tensor]]:
    """One step function per variant, all on one model and optimiser (a variant's speed does
    not depend on the weights); the compiled module is built once and shared (a bf16 variant
    adds a graph to it)."""
    torch.manual_seed(0)
    tc = TrainConfig(model=model, batch_size=batch_size, seq_len=seq_len)
    cmt = CMT(tc.model_config()).train()
    opt = make_optimizer(cmt, tc)
    net = _WithLoss(cmt)
    cpu = torch.device("cpu")
    compiled = None
    steps: dict[str, Callable[[Batch], Tensor]] = {}
    for name, (comp, bf16, _) in variants.items():
        vtc = replace(tc, compile=comp, cpu_bf16=bf16)
        if comp:
            if compiled is None:
                compiled, _ = make_step(net, cmt, opt, replace(vtc, cpu_bf16=False), cpu)
            # the compiled module is shared: make_step(compile=False) on it adds no wrapper
            _, fn = make_step(compiled, cmt, opt, replace(vtc, compile=False), cpu)
        else:
            _, fn = make_step(net, cmt, opt, vtc, cpu)
        steps[name] = (lambda f: lambda b: f(*b)[0])(fn)
    return steps


def tokens_per_s(step: Callable[[Batch], Tensor], batches: list[Batch], seconds: float,
                 start: int) -> tuple[float, int]:
    """Steps (at least 2) over the batches in turn for about `seconds`; tokens/s and the next
    batch index."""
    n = tokens = 0
    t0 = time.perf_counter()
    while n < 2 or time.perf_counter() - t0 < seconds:
        b = batches[(start + n) % len(batches)]
        float(step(b))
        tokens += int(b[3].sum())
        n += 1
    return tokens / (time.perf_counter() - t0), start + n


def loss_check(model: str, batches: list[Batch], steps: int, threads: int) -> dict[str, object]:
    """Train the same start on the same batches in float32 and under CPU bf16 autocast; the
    loss curves and their largest gap (dropout off, so only the precision differs)."""
    torch.set_num_threads(threads)
    curves = {}
    for bf16 in (False, True):
        torch.manual_seed(0)
        tc = TrainConfig(model=model, batch_size=batches[0][3].shape[0],
                         seq_len=batches[0][3].shape[1], cpu_bf16=bf16, lr=1e-3, warmup=1)
        cmt = CMT(replace(tc.model_config(), dropout=0.0)).train()
        opt = make_optimizer(cmt, tc)
        _, fn = make_step(_WithLoss(cmt), cmt, opt, tc, torch.device("cpu"))
        curves["bf16" if bf16 else "float32"] = [
            round(float(fn(*batches[i % len(batches)])[0]), 4) for i in range(steps)]
    gap = max(abs(a - b) for a, b in zip(curves["float32"], curves["bf16"]))
    return {"steps": steps, "max_abs_gap": round(gap, 4), **curves}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="small,medium,paper")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8.0, help="time per variant and round")
    ap.add_argument("--batch-size", type=int, default=8, help="vbgm train's default: 8")
    ap.add_argument("--seq-len", type=int, default=512, help="vbgm train's default: 512")
    ap.add_argument("--no-compile", action="store_true", help="leave out torch.compile")
    ap.add_argument("--variants", help="semicolon-separated subset of the variant names (the "
                    "first is the baseline; default: all)")
    ap.add_argument("--loss-steps", type=int, default=30,
                    help="steps of the float32/bf16 loss check (small model; 0: none)")
    ap.add_argument("--loss-only", action="store_true", help="only the bf16 loss check")
    ap.add_argument("--quick", action="store_true", help="2 rounds of 3 s, loss check 10 steps")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.loss_steps = 2, 3.0, min(args.loss_steps, 10)
    chosen = ([n.strip() for n in args.variants.split(";")] if args.variants
              else list(VARIANTS))
    unknown = [n for n in chosen if n not in VARIANTS]
    if unknown:
        ap.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    variants = {k: VARIANTS[k] for k in chosen if not (args.no_compile and VARIANTS[k][0])}
    baseline = next(iter(variants))
    configs = [] if args.loss_only else [c.strip() for c in args.configs.split(",")
                                         if c.strip()]
    out = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    out.update({"name": "train_speed", "torch": torch.__version__,
                "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                "bf16_native": cpu_bf16_native(),
                "batch_size": args.batch_size, "seq_len": args.seq_len})
    out.setdefault("results", {})
    batches, lengths = real_batches(args.batch_size, args.seq_len, 4)
    out["data"] = "data/midi-ds train windows" if lengths else "random token rows"
    if lengths:
        out["padding_waste"] = padding_waste(lengths, args.batch_size, args.seq_len)
        print("padding waste:", out["padding_waste"], flush=True)
    for model in configs:
        load0 = os.getloadavg()[0]
        steps = build(model, args.batch_size, args.seq_len, variants)
        compile_s: dict[str, float] = {}
        for name, step in steps.items():  # warm-up; for a compiled one, the build
            torch.set_num_threads(variants[name][2])
            t0 = time.perf_counter()
            float(step(batches[0]))
            if variants[name][0]:
                compile_s[name] = round(time.perf_counter() - t0, 1)
        rates: dict[str, list[float]] = {n: [] for n in steps}
        pos = 0
        for _ in range(args.rounds):
            for name, step in steps.items():
                torch.set_num_threads(variants[name][2])
                rate, pos = tokens_per_s(step, batches, args.seconds, pos)
                rates[name].append(rate)
        base = statistics.median(rates[baseline])
        res = {"load_average_at_start": round(load0, 2), "compile_seconds": compile_s,
               "variants": {}}
        print(f"\n{model} (B={args.batch_size}, T={args.seq_len}), load {load0:.1f}, "
              f"compile {compile_s} s", flush=True)
        for name, r in rates.items():
            med = statistics.median(r)
            res["variants"][name] = {"tokens_per_s": round(med), "speedup": round(med / base, 3),
                                     "rounds": [round(v) for v in r]}
            print(f"  {name:26s} {med:8.0f} tok/s  x{med / base:.2f}  (rounds: "
                  f"{', '.join(f'{v:.0f}' for v in r)})", flush=True)
        res["load_average_at_end"] = round(os.getloadavg()[0], 2)
        res["baseline"] = baseline
        out["results"][model] = res
        del steps
        write_results(out, variants)  # after each config: a long run keeps what it measured
    if args.loss_steps and ("small" in configs or args.loss_only):
        out["bf16_loss_check_small"] = loss_check("small", batches, args.loss_steps, 1)
        lc = out["bf16_loss_check_small"]
        print(f"\nbf16 loss check (small, {lc['steps']} steps): float32 "
              f"{lc['float32'][0]} -> {lc['float32'][-1]}, bf16 {lc['bf16'][0]} -> "
              f"{lc['bf16'][-1]}, largest gap {lc['max_abs_gap']}", flush=True)
    write_results(out, variants)
    print(f"-> {RESULTS}")


def write_results(out: dict[str, Any], variants: dict[str, tuple[bool, bool, int]]) -> None:
    """Print the table of every measured config and write the JSON (with its figures)."""
    out["figures"] = []
    names = list(dict.fromkeys([*variants, *(n for r in out["results"].values()
                                              for n in r["variants"])]))
    print("\n| config | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for model, res in out["results"].items():
        v = res["variants"]
        print(f"| {model} | " + " | ".join(
            f"{v[n]['tokens_per_s']} (x{v[n]['speedup']:.2f})" if n in v else "-"
            for n in names) + " |")
        for n, r in v.items():
            out["figures"].append({"metric": f"training tokens/s, {model}, {n}",
                                   "value": r["tokens_per_s"], "unit": "tokens/s",
                                   "note": f"x{r['speedup']:.2f} vs {res['baseline']}, load "
                                           f"{res['load_average_at_start']}"})
    if "padding_waste" in out:
        out["figures"].append({"metric": "padding share of training batches",
                               "value": out["padding_waste"]["as_built"], "unit": "share",
                               "note": f"B={out['batch_size']}, T={out['seq_len']}, "
                                       "data/midi-ds"})
    out["load_average_at_end"] = round(os.getloadavg()[0], 2)
    write_text_atomic(RESULTS, json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
