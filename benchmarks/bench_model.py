"""Model speed and memory on this machine: training tokens/s, peak memory of a 10,000-token song
at paper size, and recurrent generation tokens/s against the reference's strategy (re-running
the whole prefix for every new token).

    python benchmarks/bench_model.py [--quick] [--threads N] [--skip-memory]

Prints a table and writes benchmarks/results/model.json. On a shared CPU the figures move with
the load; the load average is recorded with them. One thread is the default: on an
oversubscribed CPU two OpenMP threads are several times slower than one (each small operation
waits for a descheduled partner thread).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from vbgm.atomic import write_text_atomic
from vbgm.model import CMT, CONFIGS, CMTConfig

from vbgm import vocab

RESULTS = Path(__file__).resolve().parent / "results" / "model.json"


def random_rows(B: int, T: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = list(vocab.N_CLASSES[:8]) + [5000]
    x = torch.stack([torch.randint(0, k, (B, T), generator=g) for k in n], -1)
    x[..., vocab.I_BEAT] = torch.sort(x[..., vocab.I_BEAT], -1).values
    return x


def init_rows(B: int) -> torch.Tensor:
    return torch.zeros(B, 7, 3, dtype=torch.long)


def train_tokens_per_s(config: CMTConfig, B: int, T: int, steps: int) -> float:
    """Optimiser steps (forward, backward, AdamW) on random rows; tokens/s after one warm-up."""
    torch.manual_seed(0)
    model = CMT(config).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x, init, mask = random_rows(B, T), init_rows(B), torch.ones(B, T, dtype=torch.bool)
    for i in range(steps + 1):
        if i == 1:
            t = time.perf_counter()
        loss, _ = model.loss(init, x, x, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps * B * T / (time.perf_counter() - t)


def generation_step_s(model: CMT, B: int, n: int) -> float:
    """Seconds per recurrent step including the two-stage heads (what sampling needs)."""
    state = model.init_state(init_rows(B))
    row = random_rows(B, 1)[:, 0]
    with torch.no_grad():
        for i in range(n + 3):
            if i == 3:
                t = time.perf_counter()
            h, state = model.step(row, state)
            types = model.type_logits(h).argmax(-1)
            model.field_logits(h, types)
    return (time.perf_counter() - t) / n


def prefix_forward_s(model: CMT, B: int, L: int, reps: int = 1) -> float:
    """Seconds for one forward pass over a prefix of L tokens, last position's heads only."""
    x, init = random_rows(B, L), init_rows(B)
    with torch.no_grad():
        model(init, x[:, :8])  # warm-up
        t = time.perf_counter()
        for _ in range(reps):
            h = model(init, x)[:, -1]
            model.field_logits(h, model.type_logits(h).argmax(-1))
    return (time.perf_counter() - t) / reps


def prefix_strategy_tokens_per_s(model: CMT, B: int, n_tokens: int, probe: tuple[int, int]
                                 ) -> float:
    """Reference strategy: token L costs one forward over L tokens. The forward cost is linear
    in L (a + b L, measured at two probe lengths), so generating N tokens costs
    N a + b N (N + 1) / 2."""
    l1, l2 = probe
    f1, f2 = prefix_forward_s(model, B, l1), prefix_forward_s(model, B, l2)
    b = max((f2 - f1) / (l2 - l1), 0.0)
    a = max(f1 - b * l1, 0.0)
    total = n_tokens * a + b * n_tokens * (n_tokens + 1) / 2
    return B * n_tokens / total


_MEMORY_CHILD = """
import resource, sys, time, torch
from vbgm.model import CMT, CONFIGS, CMTConfig
from dataclasses import asdict
sys.path.insert(0, {here!r})
from bench_model import random_rows, init_rows
cfg = CMTConfig(**{{**asdict(CONFIGS["paper"]), "checkpoint_layers": {ckpt}}})
model = CMT(cfg).train()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
x = random_rows(1, {T})
x[0, :, 8] = torch.arange({T}) % 20000
t = time.perf_counter()
loss, _ = model.loss(init_rows(1), x, x, torch.ones(1, {T}, dtype=torch.bool))
loss.backward()
dt = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(peak / 2**20, base / 2**20, dt)
"""


def peak_memory_gib(T: int, checkpoint_layers: bool) -> dict[str, float]:
    """Peak resident memory of a fresh process doing forward + backward on one T-token song."""
    code = _MEMORY_CHILD.format(here=str(Path(__file__).parent), ckpt=checkpoint_layers, T=T)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    peak, base, dt = map(float, out)
    return {"peak_rss_gib": round(peak, 2), "model_only_rss_gib": round(base, 2),
            "seconds": round(dt, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    res: dict = {"threads": args.threads, "cpu_count": os.cpu_count(),
                 "load_average_at_start": os.getloadavg()[0], "torch": torch.__version__}
    n_gen = 30 if args.quick else 100

    res["train_tokens_per_s"] = {
        "small (B=8, T=512)": round(train_tokens_per_s(CONFIGS["small"], 8, 512, 3)),
        "paper (B=2, T=512)": round(train_tokens_per_s(CONFIGS["paper"], 2, 512, 2)),
    }
    print("training tokens/s:", res["train_tokens_per_s"], flush=True)

    gen = {}
    for name in ("small", "paper"):
        torch.manual_seed(0)
        model = CMT(CONFIGS[name]).eval()
        for B in (1, 8):
            rec = B / generation_step_s(model, B, n_gen)
            row = {"recurrent": round(rec, 1)}
            for N in (1000, 4000):
                pre = prefix_strategy_tokens_per_s(model, B, N, (125, 500))
                row[f"prefix_{N}"] = round(pre, 2)
                row[f"speedup_{N}"] = round(rec / pre, 1)
            gen[f"{name} B={B}"] = row
            print(f"generation {name} B={B}:", row, flush=True)
    res["generation_tokens_per_s"] = gen
    paper_w = sum(p.numel() for lay in CMT(CONFIGS["paper"]).layers for p in lay.parameters())
    res["paper_layer_weight_mb_per_token"] = round(paper_w * 4 / 1e6, 1)

    if not args.skip_memory:
        res["paper_10000_tokens_fwd_bwd"] = {
            "plain": peak_memory_gib(10_000, False),
            "checkpoint_layers": peak_memory_gib(10_000, True),
        }
        print("paper, 10,000 tokens:", res["paper_10000_tokens_fwd_bwd"], flush=True)
    res["load_average_at_end"] = os.getloadavg()[0]
    res["peak_rss_this_process_gib"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)

    print("\n| figure | value |\n|---|---|")
    for k, v in res["train_tokens_per_s"].items():
        print(f"| training tokens/s, {k} | {v} |")
    for k, v in gen.items():
        print(f"| generation tokens/s, {k} | recurrent {v['recurrent']}; prefix 1k "
              f"{v['prefix_1000']} ({v['speedup_1000']}x), 4k {v['prefix_4000']} "
              f"({v['speedup_4000']}x) |")
    for k, v in res.get("paper_10000_tokens_fwd_bwd", {}).items():
        print(f"| paper 10k-token fwd+bwd, {k} | peak {v['peak_rss_gib']} GiB, {v['seconds']} s |")
    note = f"CPU, {args.threads} thread(s), load average {res['load_average_at_start']:.1f}"
    figs = [{"metric": f"training tokens/s, {k}", "value": v, "unit": "tokens/s", "note": note}
            for k, v in res["train_tokens_per_s"].items()]
    for k, v in gen.items():
        figs.append({"metric": f"recurrent generation, {k}", "value": v["recurrent"],
                     "unit": "tokens/s", "note": note})
        for N in (1000, 4000):
            figs.append({"metric": f"reference prefix strategy, {k}, {N} tokens",
                         "value": v[f"prefix_{N}"], "unit": "tokens/s", "note": note})
            figs.append({"metric": f"recurrent speed-up, {k}, {N} tokens",
                         "value": v[f"speedup_{N}"], "unit": "x", "note": note})
    for k, v in res.get("paper_10000_tokens_fwd_bwd", {}).items():
        figs.append({"metric": f"peak memory, paper fwd+bwd of 10,000 tokens ({k})",
                     "value": v["peak_rss_gib"], "unit": "GiB", "note": note})
    res = {"name": "model", "figures": figs, **res}
    write_text_atomic(RESULTS, json.dumps(res, indent=2) + "\n")
    print(f"\nwrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
