"""Training and inference speed (images/s) of ResNet-50 SimpleBaseline and HRNet-w32 at 256×256.

Training = forward + MSE loss + backward + Adam step on random crops; inference = forward in eval
mode without the flip test (double the cost with it). Measured on the CPU (threads as torch
sets them), and on a CUDA GPU when one is present. Writes benchmarks/results/ap10k.json.

    python benchmarks/bench_ap10k.py [--models resnet50 hrnet_w32] [--batch 8] [--seconds 20]
                                     [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
from ap10k.atomic import write_text_atomic
from ap10k.models import build_model, count_parameters
from ap10k.train import heatmap_loss

RESULTS = Path(__file__).resolve().parent / "results" / "ap10k.json"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(name: str, device: torch.device, batch: int, seconds: float, size: int = 256
            ) -> dict[str, float]:
    """Images/s for training steps and for inference forwards (after one warm-up step each)."""
    torch.manual_seed(0)
    model = build_model(name).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    x = torch.randn(batch, 3, size, size, device=device)
    target = torch.rand(batch, 17, size // 4, size // 4, device=device)
    weight = torch.ones(batch, 17, device=device)

    def train_step() -> None:
        loss = heatmap_loss(model(x), target, weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def timed(step, min_steps: int = 2) -> float:
        step()  # warm-up
        _sync(device)
        n, t0 = 0, time.perf_counter()
        while n < min_steps or time.perf_counter() - t0 < seconds:
            step()
            n += 1
        _sync(device)
        return n * batch / (time.perf_counter() - t0)

    model.train()
    train_ips = timed(train_step)
    model.eval()
    with torch.no_grad():
        infer_ips = timed(lambda: model(x))
    return {"params_M": round(count_parameters(model) / 1e6, 2), "batch": batch,
            "train_images_per_s": round(train_ips, 2),
            "inference_images_per_s": round(infer_ips, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["resnet50", "hrnet_w32"])
    ap.add_argument("--batch", type=int, default=8, help="CPU batch size")
    ap.add_argument("--gpu-batch", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=20.0, help="time per measurement")
    ap.add_argument("--quick", action="store_true", help="3 s per measurement")
    args = ap.parse_args()
    if args.quick:
        args.seconds = 3.0
    out = {"name": "ap10k", "figures": [], "input": "256x256", "torch": torch.__version__,
           "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
           "threads": torch.get_num_threads(),
           "load_average_at_start": os.getloadavg()[0], "results": {}}
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
        out["gpu"] = torch.cuda.get_device_name(0)
    for device in devices:
        batch = args.batch if device.type == "cpu" else args.gpu_batch
        for name in args.models:
            r = measure(name, device, batch, args.seconds)
            out["results"][f"{name}@{device.type}"] = r
            note = f"256x256, batch {batch}, {device.type}" + (
                f" ({out['threads']} threads)" if device.type == "cpu" else "")
            for kind in ("train", "inference"):
                out["figures"].append({"metric": f"{name} {kind}", "unit": "images/s",
                                       "value": r[f"{kind}_images_per_s"], "note": note})
            print(f"{name:10s} {device.type}: train {r['train_images_per_s']:.2f} img/s, "
                  f"inference {r['inference_images_per_s']:.2f} img/s "
                  f"(batch {batch}, {r['params_M']} M params)", flush=True)
    out["load_average_at_end"] = os.getloadavg()[0]
    write_text_atomic(RESULTS, json.dumps(out, indent=1) + "\n")
    print(f"-> {RESULTS}")


if __name__ == "__main__":
    main()
