"""Training a top-down heatmap model: the recipe's optimiser and schedule, periodic validation AP,
atomic best/last checkpoints, exact resume, CSV log + plot, and DDP under `torchrun`.

Run directory layout (`cfg.out`): `config.json`, `last.pt`, `best.pt`, `log.csv` (one row per
epoch), `curve.png`, `val_results.json` (the last validation's COCO results).

Determinism: the sample order of epoch e is a permutation seeded by (seed, e) and every crop's
augmentation by (seed, e, index), and the learning rate is a pure function of the iteration, so a
resumed run (model, optimiser, epoch, iteration and RNG states restored) continues exactly as the
uninterrupted one would have.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Sampler

from ap10k.atomic import atomic_path, write_text_atomic
from ap10k.errors import AP10KError
from ap10k.pipeline import PipelineConfig, Sample, TopDownDataset, samples_from_dataset

PAPER_EPOCHS = 210
PAPER_MILESTONES = (170, 200)


@dataclass
class TrainConfig:
    """Everything a training run needs; defaults are the paper's recipe (per process)."""

    model: str = "hrnet_w32"
    model_options: dict[str, Any] = field(default_factory=dict)
    pretrained: str | None = None  # ImageNet (torchvision/timm layout) or pose weights file
    train: str = ""  # COCO keypoint JSON
    val: str | None = None
    images: str = ""  # image folder of the training file
    val_images: str | None = None  # image folder of the validation file (default: images)
    out: str = "runs/ap10k"
    epochs: int = PAPER_EPOCHS
    batch_size: int = 64  # per process (the paper: 64 per GPU × 8 GPUs)
    lr: float = 5e-4
    warmup_iters: int = 500
    warmup_ratio: float = 0.001  # linear warm-up from lr × this
    milestones: list[int] | None = None  # None: 170/200 of 210, scaled to `epochs`
    gamma: float = 0.1
    val_every: int = 10
    checkpoint_every: int = 1  # epochs between `last.pt` saves (always at the end)
    val_batch_size: int = 32
    flip_test: bool = True
    workers: int = 2
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    max_minutes: float | None = None  # stop (after a complete epoch) past this wall time
    max_cpu_minutes: float | None = None  # ... or past this much CPU time (all cores, workers)
    amp: str = "none"  # none | bf16 (autocast of the training forward pass)
    compile: bool = False  # torch.compile the training step's model (needs a C++ compiler)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)

    def schedule_milestones(self) -> list[int]:
        """Epochs at which the lr drops: the given ones or 170/200 scaled to `epochs`."""
        if self.milestones is not None:
            return list(self.milestones)
        return [max(1, round(m * self.epochs / PAPER_EPOCHS)) for m in PAPER_MILESTONES]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pipeline"] = self.pipeline.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<config>") -> TrainConfig:
        """A config from JSON-like data; unknown keys are an error naming `source`."""
        if not isinstance(data, dict):
            raise AP10KError(f"{source}: a training config must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise AP10KError(f"{source}: unknown training config keys: {', '.join(unknown)}")
        data = dict(data)
        pipe = data.pop("pipeline", {}) or {}
        pknown = {f.name for f in fields(PipelineConfig)}
        bad = sorted(set(pipe) - pknown)
        if bad:
            raise AP10KError(f"{source}: unknown pipeline keys: {', '.join(bad)}")
        return cls(**data, pipeline=PipelineConfig(**pipe))


# Settings a resumed run may change: how long and where it runs, not what it computes.
RESUMABLE_CHANGES = ("out", "epochs", "max_minutes", "max_cpu_minutes", "workers", "device",
                     "compile")


def config_conflicts(stored: dict[str, Any], given: dict[str, Any],
                     allowed: tuple[str, ...] = RESUMABLE_CHANGES) -> list[str]:
    """`key: stored -> given` for every given setting (nested under `pipeline` too) that differs
    from the stored run's and may not change on resume; identical repeats are no conflict."""
    out = []
    for key, value in given.items():
        if key in allowed:
            continue
        old = stored.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            out += [f"{key}.{c}" for c in config_conflicts(old, value, ())]
        elif _jsonish(value) != _jsonish(old):
            out.append(f"{key}: {old!r} -> {value!r}")
    return out


def _jsonish(value: Any) -> Any:
    """Tuples and lists compare alike (a config read back from JSON holds lists)."""
    return json.loads(json.dumps(value))


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when `flag` is true on any (an all-reduce MAX; the flag's tensor lives
    on the process's device, as NCCL needs); the flag itself outside a process group."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def lr_at(iteration: int, epoch: int, cfg: TrainConfig) -> float:
    """Learning rate of an iteration: linear warm-up, then ×gamma at each milestone epoch."""
    lr = cfg.lr * cfg.gamma ** sum(epoch >= m for m in cfg.schedule_milestones())
    if iteration < cfg.warmup_iters:
        k = iteration / cfg.warmup_iters
        lr *= cfg.warmup_ratio + (1 - cfg.warmup_ratio) * k
    return lr


def heatmap_loss(pred: torch.Tensor | list[torch.Tensor], target: torch.Tensor,
                 weight: torch.Tensor) -> torch.Tensor:
    """MSE between heatmaps, each keypoint weighted by its visibility weight (summed over the
    stacks of a multi-output model)."""
    preds = pred if isinstance(pred, list | tuple) else [pred]
    w = weight[:, :, None, None]
    return sum(((p - target) ** 2 * w).mean() for p in preds)


class EpochSampler(Sampler[int]):
    """This process's share of a permutation seeded by (seed, epoch); equal shares per rank."""

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1) -> None:
        self.n, self.seed, self.rank, self.world = n, seed, rank, world
        self.epoch = 0
        self.per_rank = math.ceil(n / world)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):  # type: ignore[override]
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist()
        order += order[: self.per_rank * self.world - self.n]  # pad so every rank has as many
        return iter(order[self.rank::self.world])

    def __len__(self) -> int:
        return self.per_rank


@dataclass
class TrainResult:
    """What a run ended with."""

    epochs_done: int
    best_ap: float | None
    last_ap: float | None
    history: list[dict[str, Any]]
    out: Path
    model: nn.Module | None = None  # the trained model (this rank's copy)


def cpu_seconds() -> float:
    """CPU time used so far by this process and its finished children (data workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _dist_info() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world


def _pick_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise AP10KError("device 'cuda' requested but no CUDA GPU is available")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device(name)


def _rng_state(device: torch.device) -> dict[str, Any]:
    """This process's RNG states; on CUDA also its own device's generator."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Restore `_rng_state`; a CUDA state goes to this process's device (when it is CUDA)."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if device.type == "cuda" and cuda is not None:
        if isinstance(cuda, list | tuple):  # older checkpoints: every visible device's state
            cuda = cuda[device.index or 0] if len(cuda) > (device.index or 0) else None
        if cuda is not None:
            torch.cuda.set_rng_state(cuda, device)


def plain_state_dict(state: dict[str, Any]) -> dict[str, Any]:
    """`state` with the key prefixes of wrappers removed, so that it loads into a bare model:
    `_orig_mod.` (torch.compile) and `module.` (DistributedDataParallel), each only where every
    key carries it (a model's own submodule called `module` keeps its name)."""
    keys = list(state)
    stripped = True
    while keys and stripped:
        stripped = False
        for prefix in ("_orig_mod.", "module."):
            if all(k.startswith(prefix) for k in keys):
                keys = [k[len(prefix):] for k in keys]
                stripped = True
    return dict(zip(keys, state.values()))


def compile_model(net: nn.Module) -> nn.Module | None:
    """`torch.compile(net)`, or None (with one warning line on stderr) when it cannot be set up.

    The build itself happens at the first call; `train` falls back to the eager model when that
    fails (no C++ compiler, an unsupported platform...).
    """
    try:
        return torch.compile(net)
    except Exception as exc:  # torch.compile raises early on e.g. unsupported Python versions
        _compile_warning(exc)
        return None


def _compile_warning(exc: BaseException) -> None:
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    print(f"ap10k: warning: torch.compile failed ({type(exc).__name__}: {first}); "
          "training without it", file=sys.stderr, flush=True)


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """torch.save through a temporary file and one rename."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _write_log(out: Path, history: list[dict[str, Any]], plot: bool = True) -> None:
    keys = list(dict.fromkeys(k for row in history for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(history)
    write_text_atomic(out / "log.csv", buf.getvalue())
    if plot:
        plot_history(history, out / "curve.png")


def plot_history(history: list[dict[str, Any]], path: Path) -> None:
    """Training loss and validation AP against epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ep = [r["epoch"] for r in history]
    ax.plot(ep, [r["train_loss"] for r in history], color="tab:blue", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("heatmap MSE", color="tab:blue")
    ax.set_yscale("log")
    val = [(r["epoch"], r["val_AP"]) for r in history if r.get("val_AP") not in (None, "")]
    if val:
        ax2 = ax.twinx()
        ax2.plot(*zip(*val), "o-", color="tab:red", label="val AP")
        ax2.set_ylabel("val AP", color="tab:red")
        ax2.set_ylim(0, 1)
    ax.set_title("ap10k training")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def validate(model: nn.Module, samples: list[Sample], gt: Any, cfg: TrainConfig,
             out: Path | None = None) -> dict[str, float]:
    """COCO keypoint AP/AR of `model` on the validation samples (ground-truth boxes)."""
    from ap10k.cocoeval import evaluate
    from ap10k.inference import predict_samples

    results = predict_samples(model, samples, cfg.pipeline, cfg.val_batch_size, cfg.flip_test,
                              workers=0)
    if out is not None:
        write_text_atomic(out / "val_results.json", json.dumps(results))
    return dict(evaluate(gt, results, warn=False).stats)


def _forward_backward(net: nn.Module, images: torch.Tensor, target: torch.Tensor,
                      weight: torch.Tensor, optimizer: torch.optim.Optimizer, stacked: bool,
                      bf16: bool) -> torch.Tensor:
    """Loss of one batch, with the gradients computed (the optimiser step is the caller's)."""
    # always through `net` (or its compiled form), so DDP all-reduces every stack's gradients
    with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=bf16):
        pred = net(images, stacks=True) if stacked else net(images)
        loss = heatmap_loss(pred, target, weight)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    return loss


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True,
          stop_after: int | None = None) -> TrainResult:
    """Train `cfg.model` as configured; `resume` continues from `cfg.out/last.pt`.

    `stop_after` ends the run after that many epochs in total (the schedule still follows
    `cfg.epochs`); used to simulate an interrupted run. A new run refuses a folder that holds a
    run (`last.pt`); a resumed one refuses settings that differ from the stored ones, except
    those in RESUMABLE_CHANGES. The time budget is decided by all ranks together.
    """
    from ap10k.dataset import CocoDataset
    from ap10k.models import build_model

    rank, local_rank, world = _dist_info()
    distributed = world > 1
    device = _pick_device(cfg.device, local_rank)
    if distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    main = rank == 0
    out = Path(cfg.out)
    if cfg.amp not in ("none", "bf16"):
        raise AP10KError(f"amp {cfg.amp!r}: choose none or bf16")
    if not resume and (out / "last.pt").is_file():
        raise AP10KError(f"{out}: already holds a run (last.pt); pass --resume or another -o")

    random.seed(cfg.seed + rank)
    np.random.seed(cfg.seed + rank)
    torch.manual_seed(cfg.seed)  # same initial weights on every rank

    train_set = CocoDataset.load(cfg.train)
    train_samples = samples_from_dataset(train_set, cfg.images)
    if not train_samples:
        raise AP10KError(f"{cfg.train}: no instance with labelled keypoints to train on")
    val_set = CocoDataset.load(cfg.val) if cfg.val else None
    val_samples = (samples_from_dataset(val_set, cfg.val_images or cfg.images,
                                        require_keypoints=False) if val_set else [])

    model = build_model(cfg.model, cfg.pretrained, **cfg.model_options).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    start_epoch, iteration, best_ap = 0, 0, None
    history: list[dict[str, Any]] = []
    if resume:
        last = out / "last.pt"
        if not last.is_file():
            raise AP10KError(f"{last}: nothing to resume (no last checkpoint in {out})")
        ckpt = torch.load(last, map_location="cpu", weights_only=False)
        if ckpt["config"]["model"] != cfg.model:
            raise AP10KError(f"{last}: was trained as {ckpt['config']['model']!r}, "
                             f"not {cfg.model!r}")
        conflicts = config_conflicts(ckpt["config"], cfg.to_dict())
        if conflicts:
            raise AP10KError(f"{last}: --resume continues the stored settings; these differ: "
                             + "; ".join(conflicts))
        model.load_state_dict(plain_state_dict(ckpt["model"]))
        optimizer.load_state_dict(ckpt["optimizer"])
        start_epoch, iteration = ckpt["epoch"], ckpt["iteration"]
        best_ap, history = ckpt["best_ap"], ckpt["history"]
        _set_rng_state(ckpt["rng"][min(rank, len(ckpt["rng"]) - 1)], device)
    elif main:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / "config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")

    net: nn.Module = model
    if distributed:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[local_rank] if device.type == "cuda" else None)
    # full batches go through the compiled model, a last smaller one through `net` (no rebuild
    # for a second shape); the first compiled step that fails falls back to `net` for good
    fast = compile_model(net) if cfg.compile else None
    fast_ok = False

    data = TopDownDataset(train_samples, cfg.pipeline, train=True, seed=cfg.seed)
    sampler = EpochSampler(len(data), cfg.seed, rank, world)
    loader_kw: dict[str, Any] = {"batch_size": cfg.batch_size, "sampler": sampler,
                                 "num_workers": cfg.workers, "drop_last": False,
                                 "pin_memory": device.type == "cuda"}
    if cfg.workers > 0:
        loader_kw["prefetch_factor"] = 2
    t_start, cpu_start = time.monotonic(), cpu_seconds()
    end_epoch = cfg.epochs if stop_after is None else min(cfg.epochs, stop_after)
    last_ap = next((r["val_AP"] for r in reversed(history) if r.get("val_AP") != ""), None)
    epochs_done = start_epoch
    stacked = getattr(model, "num_stacks", 1) > 1
    for epoch in range(start_epoch, end_epoch):
        data.set_epoch(epoch)
        sampler.set_epoch(epoch)
        loader = DataLoader(data, **loader_kw)
        net.train()
        total, count = 0.0, 0
        t0 = time.monotonic()
        bar = loader
        if progress and main:
            from tqdm import tqdm
            bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch",
                       leave=False)
        for images, target, weight, _, _ in bar:
            lr = lr_at(iteration, epoch, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            images, target, weight = (t.to(device, non_blocking=True)
                                      for t in (images, target, weight))
            step_net = fast if fast is not None and len(images) == cfg.batch_size else net
            try:
                loss = _forward_backward(step_net, images, target, weight, optimizer,
                                         stacked, cfg.amp == "bf16")
            except Exception as exc:
                if step_net is net or fast_ok:
                    raise
                _compile_warning(exc)
                fast = None
                loss = _forward_backward(net, images, target, weight, optimizer, stacked,
                                         cfg.amp == "bf16")
            fast_ok = fast_ok or step_net is fast
            optimizer.step()
            iteration += 1
            total += loss.item() * len(images)
            count += len(images)
            if progress and main:
                bar.set_postfix(loss=f"{loss.item():.2e}", lr=f"{lr:.1e}")
        seconds = time.monotonic() - t0
        row: dict[str, Any] = {"epoch": epoch + 1, "iteration": iteration,
                               "wall_s": round(time.monotonic() - t_start, 1),
                               "cpu_s": round(cpu_seconds() - cpu_start, 1),
                               "lr": lr_at(max(iteration - 1, 0), epoch, cfg),
                               "train_loss": total / max(count, 1),
                               "images_per_s": count * world / max(seconds, 1e-9),
                               "val_AP": "", "val_AP50": "", "val_AR": ""}
        # each rank's clock differs: stop when any rank is past the budget, all together
        over_budget = any_rank((cfg.max_minutes is not None
                                and time.monotonic() - t_start > cfg.max_minutes * 60)
                               or (cfg.max_cpu_minutes is not None
                                   and cpu_seconds() - cpu_start > cfg.max_cpu_minutes * 60),
                               device)
        is_last = epoch + 1 == end_epoch or over_budget
        do_val = val_set is not None and ((epoch + 1) % cfg.val_every == 0 or is_last)
        if do_val and main:
            stats = validate(model, val_samples, val_set, cfg, out)
            row.update(val_AP=stats["AP"], val_AP50=stats["AP50"], val_AR=stats["AR"])
            last_ap = stats["AP"]
        history.append(row)
        rngs = [_rng_state(device)]
        if distributed:
            gathered: list[Any] = [None] * world
            dist.all_gather_object(gathered, rngs[0])
            rngs = gathered
        if main:
            payload = {"model": plain_state_dict(model.state_dict()),
                       "optimizer": optimizer.state_dict(), "epoch": epoch + 1,
                       "iteration": iteration, "best_ap": best_ap,
                       "history": history, "config": cfg.to_dict(), "rng": rngs}
            if do_val and (best_ap is None or last_ap > best_ap):
                best_ap = last_ap
                payload["best_ap"] = best_ap
                # the best model is for testing: no optimiser state (a third of the size)
                save_checkpoint(out / "best.pt", {k: v for k, v in payload.items()
                                                  if k not in ("optimizer", "rng")})
            if (epoch + 1) % cfg.checkpoint_every == 0 or is_last:
                save_checkpoint(out / "last.pt", payload)
            _write_log(out, history, plot=do_val or is_last)
            if progress:
                ap = f", val AP {last_ap:.4f}" if do_val else ""
                print(f"epoch {epoch + 1}/{cfg.epochs}: loss {row['train_loss']:.3e}, "
                      f"{row['images_per_s']:.1f} img/s{ap}", flush=True)
        epochs_done = epoch + 1
        if distributed:
            dist.barrier()
        if over_budget:
            break
    if distributed:
        dist.destroy_process_group()
    return TrainResult(epochs_done=epochs_done, best_ap=best_ap, last_ap=last_ap,
                       history=history, out=out, model=model)
