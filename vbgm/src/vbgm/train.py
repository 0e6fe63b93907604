"""Training loop for the CMT: random song windows, AdamW + warm-up/cosine, resumable, DDP.

Data: every epoch cuts each training song into about len/seq_len random windows (tokens keep
their original p_beat and i_beat), sorts windows by length inside large pools so a batch holds
windows of similar length, and shuffles the batches. An epoch's plan depends only on
(seed, epoch), so a checkpoint stores the position as (epoch, batch index) and `resume`
continues exactly. With probability `cond_dropout` a window's conditioning rows are replaced by
the "any" rows (genre 0, all instruments), which trains unconditioned requests.

Run directory: `last.pt` (every `ckpt_every` steps and at the end), `best.pt` (lowest
validation loss), `model.pt` (best weights in float16: the file to ship), `log.csv`,
`curves.png`. Every checkpoint carries the dataset's corpus statistics (`extra["corpus_stats"]`),
so the sampler's register rules follow the corpus the model learnt. Only rank 0 writes. Under
`torchrun` each rank takes every world-th batch.

Speed (benchmarks/bench_train_speed.py): on a CPU with native bfloat16 (AVX512-BF16 or AMX)
`cpu_bf16` runs the linear maps under bf16 autocast (the attention sums and the losses stay in
float32); `compile` wraps the forward and loss in `torch.compile`, with every batch padded to
(batch_size, seq_len) so one static graph serves the whole run. Checkpoints hold the plain
model's state_dict either way. On CUDA training always runs under bf16 autocast.
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from vbgm import corpus_stats, keys
from vbgm import tokens as tok
from vbgm.atomic import atomic_path, write_text_atomic
from vbgm.errors import VbgmError
from vbgm.model import CMT, CONFIGS, CMTConfig, load_checkpoint, save_checkpoint


class SongSource(Protocol):
    """What training needs from a dataset (`vbgm.dataset.Dataset` provides it)."""

    def tokens(self, i: int) -> np.ndarray: ...  # (T, 9) int rows, EOS included
    def init(self, i: int) -> np.ndarray: ...  # (7, 3) conditioning rows
    def key(self, i: int) -> int: ...  # detected key 0..23, -1 = unknown
    def split(self, name: str) -> list[int]: ...  # song indices of train|valid|test


@dataclass
class TrainConfig:
    """Training options; defaults suit the `small` model on a CPU."""

    model: str = "small"  # a key of vbgm.model.CONFIGS
    ablate_controls: bool = False
    steps: int = 1500
    batch_size: int = 8
    seq_len: int = 512
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    cond_dropout: float = 0.15
    start_prob: float = 0.2  # chance a window starts at the song start
    eval_every: int = 100
    eval_batches: int = 8
    ckpt_every: int = 50
    log_every: int = 10
    seed: int = 0
    init_from: str = ""  # a checkpoint whose weights a new run starts from ("" = random)
    keys: str = "none"  # key regime (`vbgm.keys`): none | augment | normalise
    compile: bool = False  # torch.compile the forward + loss (static shapes: padded batches)
    cpu_bf16: bool = False  # bf16 autocast on CPU (CUDA always uses it; `vbgm train` turns it
    # on where the CPU has native bf16, `cpu_bf16_native`)

    def model_config(self) -> CMTConfig:
        if self.model not in CONFIGS:
            raise VbgmError(f"unknown model config {self.model!r} (choose {sorted(CONFIGS)})")
        return CMTConfig(**{**asdict(CONFIGS[self.model]), "ablate_controls": self.ablate_controls,
                            "keys": keys.check_regime(self.keys)})


# Values of settings added later, for runs stored before they existed (resume stays exact).
LEGACY_DEFAULTS: dict[str, Any] = {"compile": False, "cpu_bf16": False}


def restore_config(stored: dict[str, Any]) -> TrainConfig:
    """The TrainConfig of a stored run (`extra["train"]` of its checkpoint); a setting the run
    predates takes the value that reproduces how it was trained (LEGACY_DEFAULTS)."""
    return TrainConfig(**{**LEGACY_DEFAULTS, **stored})


# ---- data ----
@dataclass
class Window:
    song: int
    start: int
    length: int
    any_init: bool
    shift: int = 0  # semitones the window's pitched notes are transposed by
    key_token: int = 0  # the initial rows' key token (`vbgm.keys`)


def plan_epoch(lengths: dict[int, int], batch_size: int, seq_len: int, seed: int, epoch: int,
               cond_dropout: float = 0.0, start_prob: float = 0.2, regime: str = "none",
               song_keys: dict[int, int] | None = None, augment: bool = True
               ) -> list[list[Window]]:
    """All batches of one epoch, a pure function of its arguments.

    lengths: song index -> number of token rows (EOS included); a song of n rows gives n-1
    (input, target) pairs. regime/song_keys: the key regime and each song's key (`vbgm.keys`);
    augment=False (validation) draws no random transposition.
    """
    rng = np.random.default_rng([seed, epoch])
    key_rng = np.random.default_rng([seed, epoch, 1])  # its own stream: plans without keys stay
    windows = []
    for s in rng.permutation(sorted(lengths)):
        n = lengths[int(s)] - 1
        if n < 1:
            continue
        length = min(n, seq_len)
        for _ in range(math.ceil(n / seq_len)):
            start = 0 if n == length or rng.random() < start_prob else int(
                rng.integers(0, n - length + 1))
            any_init = bool(rng.random() < cond_dropout)
            shift, token = 0, keys.ANY_KEY
            if regime != "none":
                drop = any_init or bool(key_rng.random() < cond_dropout)
                shift, token = keys.window_key(regime, (song_keys or {}).get(int(s), -1),
                                               key_rng if augment else None, drop)
            windows.append(Window(int(s), start, length, any_init, shift, token))
    pool = batch_size * 32
    batches = []
    for p in range(0, len(windows), pool):
        chunk = sorted(windows[p:p + pool], key=lambda w: w.length)
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def collate(ds: SongSource, batch: list[Window]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(init (B,7,3), x (B,T,9), y (B,T,9), mask (B,T)) with zero padding masked out."""
    T = max(w.length for w in batch)
    x = np.zeros((len(batch), T, 9), np.int64)
    y = np.zeros_like(x)
    mask = np.zeros((len(batch), T), bool)
    init = np.zeros((len(batch), 7, 3), np.int64)
    for b, w in enumerate(batch):
        rows = keys.transpose_rows(np.asarray(ds.tokens(w.song))[w.start:w.start + w.length + 1],
                                   w.shift)
        x[b, :w.length] = rows[:-1]
        y[b, :w.length] = rows[1:]
        mask[b, :w.length] = True
        init[b] = tok.ANY_INIT if w.any_init else ds.init(w.song)
        init[b, 1, 1] = w.key_token
    return (torch.from_numpy(init), torch.from_numpy(x), torch.from_numpy(y),
            torch.from_numpy(mask))


def pad_batch(init: Tensor, x: Tensor, y: Tensor, mask: Tensor, batch_size: int, seq_len: int
              ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """A collated batch zero-padded to (batch_size, seq_len) rows, the padding masked out.

    The loss does not change: attention is causal (trailing rows cannot reach earlier ones),
    padded rows are masked and the loss is a mean over real rows. A compiled step then sees one
    shape for the whole run instead of recompiling for each window length.
    """
    B, T = mask.shape
    if B > batch_size or T > seq_len:
        raise ValueError(f"batch {B}x{T} exceeds {batch_size}x{seq_len}")
    if (B, T) == (batch_size, seq_len):
        return init, x, y, mask
    db, dt = batch_size - B, seq_len - T
    init = F.pad(init, (0, 0, 0, 0, 0, db))
    x, y = (F.pad(t, (0, 0, 0, dt, 0, db)) for t in (x, y))
    return init, x, y, F.pad(mask, (0, dt, 0, db))


# ---- distributed ----
@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # this call created the process group (and ends it)

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed() -> Dist:
    """Join the torchrun process group when WORLD_SIZE > 1 (nccl on CUDA, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    owns = False
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        owns = True
        if device.type == "cpu":  # share the cores among the local processes
            local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    rank = dist.get_rank() if dist.is_initialized() else 0
    return Dist(rank, world, device, owns)


class _WithLoss(nn.Module):
    """Routes `loss` through forward so DistributedDataParallel sees the call."""

    def __init__(self, cmt: CMT) -> None:
        super().__init__()
        self.cmt = cmt

    def forward(self, init: Tensor, x: Tensor, y: Tensor, mask: Tensor
                ) -> tuple[Tensor, dict[str, Tensor]]:
        return self.cmt.loss(init, x, y, mask)


# ---- optimisation ----
def lr_factor(step: int, tc: TrainConfig) -> float:
    """Linear warm-up to 1, then cosine decay to `min_lr_ratio` at `steps`."""
    if step < tc.warmup:
        return (step + 1) / tc.warmup
    t = min(1.0, (step - tc.warmup) / max(1, tc.steps - tc.warmup))
    return tc.min_lr_ratio + (1 - tc.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))


def make_optimizer(model: CMT, tc: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices of linear layers only."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        is_matrix = p.dim() == 2 and "emb" not in name
        (decay if is_matrix else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": tc.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=tc.lr, betas=(0.9, 0.95))


@torch.no_grad()
def field_losses(model: CMT, ds: SongSource, batches: list[list[Window]],
                 device: torch.device = torch.device("cpu")) -> dict[str, float]:
    """Token-weighted mean cross-entropy per field over fixed batches (dropout off), and their
    mean ("mean", the training loss)."""
    was = model.training
    model.eval()
    sums: dict[str, float] = {}
    count = 0.0
    for batch in batches:
        init, x, y, mask = (t.to(device) for t in collate(ds, batch))
        with _autocast(device):
            _, per_field = model.loss(init, x, y, mask)
        n = float(mask.sum())
        for name, value in per_field.items():
            sums[name] = sums.get(name, 0.0) + float(value) * n
        count += n
    model.train(was)
    out = {name: v / max(count, 1.0) for name, v in sums.items()}
    out["mean"] = sum(out.values()) / max(len(out), 1)
    return out


def evaluate(model: CMT, ds: SongSource, batches: list[list[Window]], device: torch.device
             ) -> float:
    """Token-weighted mean validation loss over fixed batches (dropout off)."""
    return field_losses(model, ds, batches, device)["mean"]


def split_windows(ds: SongSource, split: str, seq_len: int, regime: str) -> list[Window]:
    """Every song of a split cut into consecutive windows from its start (all its tokens, once),
    with the key token (and, for a normalising model, the transposition) of its key."""
    out = []
    for i in ds.split(split):
        n = len(ds.tokens(i)) - 1
        shift, token = keys.window_key(regime, int(ds.key(i)), None, False)
        out += [Window(int(i), s, min(seq_len, n - s), False, shift, token)
                for s in range(0, n, seq_len)]
    return out


def split_losses(model: CMT, ds: SongSource, split: str = "valid", seq_len: int = 512,
                 batch_size: int = 16) -> dict[str, float]:
    """`field_losses` over every token of a split (consecutive windows of seq_len): one figure
    comparable across models and runs, whatever their batch size or validation sample."""
    windows = sorted(split_windows(ds, split, seq_len, model.config.keys), key=lambda w: w.length)
    return field_losses(model, ds, [windows[b:b + batch_size]
                                    for b in range(0, len(windows), batch_size)])


def _autocast(device: torch.device, cpu_bf16: bool = False) -> Any:
    """bf16 autocast on CUDA (always) and, when asked, on CPU; else a disabled context."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=cpu_bf16)


def cpu_bf16_native() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), the case where CPU bf16
    autocast pays (benchmarks/bench_train_speed.py); without it bf16 is emulated and slower."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    try:
        return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)
    except Exception:  # a torch build without the probes
        return False


def idle_threads(load: float | None = None, cores: int | None = None) -> int:
    """CPU threads for one training process: the cores other work leaves idle (cores minus the
    1-minute load average, rounded), at least one. On a shared CPU two OpenMP threads that wait
    for a descheduled partner are several times slower than one (bench_train_speed)."""
    cores = cores or os.cpu_count() or 1
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:
            load = 0.0
    return max(1, min(cores, cores - round(load)))


COMPILE_BACKEND = "inductor"  # torch.compile backend of `compile` (tests use a lighter one)


def make_step(net: nn.Module, cmt: CMT, opt: torch.optim.Optimizer, tc: TrainConfig,
              device: torch.device
              ) -> tuple[nn.Module, Callable[[Tensor, Tensor, Tensor, Tensor],
                                             tuple[Tensor, Tensor]]]:
    """The training step of `train`: (the module it runs, maybe compiled; step(init, x, y,
    mask) -> (loss, gradient norm)). A step is forward + loss under the run's autocast,
    backward, gradient clipping and an optimiser step when the norm is finite. With
    `tc.compile` the module is `torch.compile`d and batches are padded to (batch_size,
    seq_len); the weights stay `cmt`'s, so its state_dict has no `_orig_mod.` prefix.
    """
    run = torch.compile(net, backend=COMPILE_BACKEND) if tc.compile else net
    params = list(cmt.parameters())

    def step(init: Tensor, x: Tensor, y: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        if tc.compile:
            init, x, y, mask = pad_batch(init, x, y, mask, tc.batch_size, tc.seq_len)
        with _autocast(device, tc.cpu_bf16):
            loss, _ = run(init, x, y, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        # The norm is of the all-reduced gradients, so every rank takes the same decision.
        norm = torch.nn.utils.clip_grad_norm_(params, tc.grad_clip)
        if torch.isfinite(norm):
            opt.step()
        return loss.detach(), norm

    return run, step


# ---- run directory ----
LOG_FIELDS = ("step", "epoch", "lr", "train_loss", "val_loss", "tokens_per_s", "elapsed_s")


def write_log(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, LOG_FIELDS)
    w.writeheader()
    w.writerows(rows)
    write_text_atomic(run_dir / "log.csv", buf.getvalue())


def read_log(run_dir: Path, up_to_step: int) -> list[dict[str, Any]]:
    path = run_dir / "log.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if int(r["step"]) <= up_to_step]


def plot_curves(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    """Training and validation loss against step, written to curves.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for key, style in (("train_loss", "-"), ("val_loss", "o-")):
        pts = [(int(r["step"]), float(r[key])) for r in rows if r.get(key) not in ("", None)]
        if pts:
            ax.plot(*zip(*pts), style, label=key.replace("_", " "), ms=3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (mean over fields)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(run_dir / "curves.png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def _song_lengths(ds: SongSource, split: str) -> dict[int, int]:
    return {int(i): len(ds.tokens(int(i))) for i in ds.split(split)}


def dataset_stats(ds: SongSource) -> corpus_stats.CorpusStats:
    """The dataset's corpus statistics: its `stats.json` when it has one (a `vbgm prepare`
    folder), else measured over its decoded train split (an older dataset, or any SongSource)."""
    root = getattr(ds, "root", None)
    if root is not None and (Path(root) / corpus_stats.FILE_NAME).is_file():
        return corpus_stats.read(Path(root) / corpus_stats.FILE_NAME)
    return corpus_stats.measure_dataset(ds)


def initial_weights(path: Path, mc: CMTConfig) -> dict[str, Tensor]:
    """The weights of a checkpoint (e.g. the shipped model.pt) to start a new run from: the
    optimiser state does not travel between machines, the weights do. Its model config must be
    the run's.
    Starting a keyed run (`vbgm.keys`) from an unkeyed model is allowed: every key token's
    embedding starts as the old model's "any key" one."""
    src, meta = load_checkpoint(path)
    if replace(meta["config"], keys=mc.keys) != mc:
        raise VbgmError(f"{path}: its model config ({meta['config']}) is not this run's ({mc}); "
                        "pass the matching --config")
    state = src.state_dict()
    name = "init_emb.1.weight"
    want = keys.n_key_classes(mc.keys)
    if state[name].shape[0] != want:
        if meta["config"].keys != "none":
            raise VbgmError(f"{path}: trained with keys={meta['config'].keys!r}, this run "
                            f"asks for keys={mc.keys!r}")
        state[name] = state[name][:1].expand(want, -1).clone()
    return state


# Settings a resumed run may change: its length, not what it computes.
RESUMABLE_CHANGES = ("steps",)


def stored_config(run_dir: str | Path) -> TrainConfig:
    """The TrainConfig of the run in run_dir (from its last.pt)."""
    last = Path(run_dir) / "last.pt"
    if not last.is_file():
        raise VbgmError(f"{last}: nothing to resume (no checkpoint in the run directory)")
    return restore_config(load_checkpoint(last)[1]["extra"]["train"])


def config_conflicts(stored: TrainConfig, given: dict[str, Any]) -> list[str]:
    """`key: stored -> given` for each given setting that differs from the stored run's and may
    not change on resume (RESUMABLE_CHANGES may); repeating a stored value is no conflict."""
    old = asdict(stored)
    return [f"{k}: {old.get(k)!r} -> {v!r}" for k, v in given.items()
            if k not in RESUMABLE_CHANGES and old.get(k) != v]


def _rng_state(d: Dist) -> dict[str, Tensor]:
    """This process's torch RNG states: the CPU one and, on CUDA, its own device's."""
    state = {"cpu": torch.get_rng_state()}
    if d.device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(d.device)
    return state


def _set_rng_state(state: dict[str, Tensor] | Tensor, d: Dist) -> None:
    """Restore `_rng_state` (older checkpoints stored the CPU state alone)."""
    if isinstance(state, Tensor):
        state = {"cpu": state}
    torch.set_rng_state(state["cpu"])
    if d.device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], d.device)


def _gather_rng(d: Dist) -> list[dict[str, Tensor]]:
    """Every rank's RNG states, in rank order (all ranks call it)."""
    state = _rng_state(d)
    if d.world == 1:
        return [state]
    out: list[Any] = [None] * d.world
    dist.all_gather_object(out, state)
    return out


# ---- the loop ----
FIT_AFTER, FIT_OVER = 10, 40  # a time budget measures the speed over steps 10..50 of a run
BUDGET_MARGIN = 0.9  # share of the remaining budget given to steps (the rest: evals, saves)


def fit_steps(steps_done: int, seconds: float, seconds_left: float, step: int, d: Dist) -> int:
    """The total number of steps that fits the remaining time at the measured speed; every
    rank takes rank 0's answer (the schedule must be the same everywhere)."""
    total = step + int(BUDGET_MARGIN * max(seconds_left, 0.0) * steps_done / max(seconds, 1e-9))
    if d.world > 1:
        t = torch.tensor([total], dtype=torch.int64, device=d.device)
        dist.broadcast(t, 0)
        total = int(t)
    return max(total, step + 1)


def train(ds: SongSource, run_dir: str | Path, tc: TrainConfig | None = None,
          resume: bool = False, steps: int | None = None, stop_after: int | None = None,
          progress: bool = True, minutes: float | None = None) -> dict[str, Any]:
    """Train into run_dir (a new run from `tc`, or `resume` the one there); returns a summary.

    On resume the stored TrainConfig is used (`tc` is ignored; the command line checks given
    flags against it with `config_conflicts`); `steps` overrides the total
    number of steps in either case. `stop_after` ends this run after that many steps (with a
    checkpoint) without changing the schedule, for time-sliced training. `minutes` fits the
    run to a time budget: once the speed is measured (`fit_steps`) the total number of steps
    (the schedule's length, stored in the checkpoint) becomes what the budget allows.
    """
    d = setup_distributed()
    run_dir = Path(run_dir)
    last = run_dir / "last.pt"
    ckpt_meta: dict[str, Any] = {}
    if resume:
        if not last.is_file():
            raise VbgmError(f"{last}: nothing to resume (no checkpoint in the run directory)")
        resumed, meta = load_checkpoint(last)
        ckpt_meta = meta["extra"]
        tc = restore_config(ckpt_meta["train"])
    elif last.is_file():
        raise VbgmError(f"{run_dir}: already holds a run (last.pt); pass --resume or another -o")
    elif tc is None:
        tc = TrainConfig()
    if steps is not None:
        tc = TrainConfig(**{**asdict(tc), "steps": steps})
    mc = tc.model_config()

    train_len = _song_lengths(ds, "train")
    if not train_len:
        raise VbgmError("dataset: the train split is empty")
    valid_len = _song_lengths(ds, "valid")
    song_keys = ({i: int(ds.key(i)) for i in [*train_len, *valid_len]}
                 if tc.keys != "none" else None)
    val_batches = plan_epoch(valid_len, tc.batch_size, tc.seq_len, tc.seed, 10**9,
                             regime=tc.keys, song_keys=song_keys, augment=False
                             )[:tc.eval_batches]
    # Only rank 0 writes checkpoints, so only it needs the statistics.
    stats = dataset_stats(ds).to_dict() if d.main else {}

    torch.manual_seed(tc.seed)  # identical initial weights on every rank
    cmt = CMT(mc)
    if resume:
        cmt.load_state_dict(resumed.state_dict())
    elif tc.init_from:
        cmt.load_state_dict(initial_weights(Path(tc.init_from), mc))
    cmt.to(d.device).train()
    net: nn.Module = _WithLoss(cmt)
    if d.world > 1:
        net = nn.parallel.DistributedDataParallel(
            net, device_ids=[d.device.index] if d.device.type == "cuda" else None)
    opt = make_optimizer(cmt, tc)
    _, train_step = make_step(net, cmt, opt, tc, d.device)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, tc))
    step, epoch, pos, best = 0, 0, 0, math.inf
    torch.manual_seed(tc.seed + 1000 * d.rank + 1)  # dropout stream of this rank
    if resume:
        opt.load_state_dict(ckpt_meta["optimizer"])
        sched.load_state_dict(ckpt_meta["scheduler"])
        step, epoch, pos, best = (ckpt_meta["step"], ckpt_meta["epoch"], ckpt_meta["pos"],
                                  ckpt_meta["best_val"])
        rngs = ckpt_meta["rng"]
        if len(rngs) == d.world:
            _set_rng_state(rngs[d.rank], d)
    rows = read_log(run_dir, step) if (resume and d.main) else []

    def batches_from(epoch: int, pos: int) -> Iterator[tuple[int, int, list[Window]]]:
        while True:
            plan = plan_epoch(train_len, tc.batch_size, tc.seq_len, tc.seed, epoch,
                              tc.cond_dropout, tc.start_prob, tc.keys, song_keys)
            plan = plan[d.rank: len(plan) - len(plan) % d.world: d.world]
            for i in range(pos, len(plan)):
                yield epoch, i + 1, plan[i]
            epoch, pos = epoch + 1, 0

    def checkpoint(path: Path) -> None:
        rng = _gather_rng(d)
        if d.main:
            extra = {"train": asdict(tc), "step": step, "epoch": epoch, "pos": pos,
                     "best_val": best, "optimizer": opt.state_dict(),
                     "scheduler": sched.state_dict(), "rng": rng, "corpus_stats": stats}
            save_checkpoint(path, cmt, mc, extra)

    end = tc.steps if stop_after is None else min(tc.steps, step + stop_after)
    data = batches_from(epoch, pos)
    from tqdm import tqdm

    bar = tqdm(total=end, initial=step, disable=not (progress and d.main), unit="step",
               dynamic_ncols=True)
    t0, tokens_seen, loss_sum, loss_n, t_start = time.perf_counter(), 0.0, 0.0, 0, time.time()
    val, skipped = math.nan, 0
    first, fit_from = step, time.perf_counter()
    while step < end:
        if minutes is not None and step == first + FIT_AFTER + FIT_OVER:
            total = fit_steps(step - first - FIT_AFTER, time.perf_counter() - fit_from,
                              minutes * 60 - (time.time() - t_start), step, d)
            tc = replace(tc, steps=min(tc.steps, total))
            end = tc.steps if stop_after is None else min(tc.steps, end)
            bar.total = end
        if minutes is not None and step == first + FIT_AFTER:
            fit_from = time.perf_counter()
        epoch, pos, batch = next(data)
        init, x, y, mask = (t.to(d.device) for t in collate(ds, batch))
        loss, norm = train_step(init, x, y, mask)
        if not torch.isfinite(norm):
            skipped += 1
            if skipped > 20:
                raise VbgmError(f"{run_dir}: {skipped} non-finite gradients; resume from "
                                "last.pt with a lower --lr")
        sched.step()
        step += 1
        tokens_seen += float(mask.sum()) * d.world
        loss_sum += float(loss.detach())
        loss_n += 1
        do_eval = bool(val_batches) and (step % tc.eval_every == 0 or step == end)
        if d.main and (step % tc.log_every == 0 or do_eval or step == end):
            dt = time.perf_counter() - t0
            rate = tokens_seen / max(dt, 1e-9)
            row = {"step": step, "epoch": epoch, "lr": f"{sched.get_last_lr()[0]:.3g}",
                   "train_loss": f"{loss_sum / loss_n:.4f}", "val_loss": "",
                   "tokens_per_s": f"{rate:.0f}", "elapsed_s": f"{time.time() - t_start:.0f}"}
            if do_eval:
                val = evaluate(cmt, ds, val_batches, d.device)
                row["val_loss"] = f"{val:.4f}"
            rows.append(row)
            bar.set_postfix(loss=f"{loss_sum / loss_n:.3f}", val=f"{val:.3f}",
                            tok_s=f"{rate:.0f}")
            write_log(run_dir, rows)
            if do_eval:
                plot_curves(run_dir, rows)
            t0, tokens_seen, loss_sum, loss_n = time.perf_counter(), 0.0, 0.0, 0
        bar.update(1)
        improved = False
        if do_eval:
            if d.world > 1:  # every rank learns the validation result (for `best`)
                # on the process's device: NCCL takes CUDA tensors only
                v = torch.tensor([val if d.main else 0.0], dtype=torch.float64,
                                 device=d.device)
                dist.broadcast(v, 0)
                val = float(v)
            improved = val < best
            best = min(best, val)
        if step % tc.ckpt_every == 0 or step == end or improved:
            checkpoint(last)
            if improved and d.main:
                save_checkpoint(run_dir / "best.pt", cmt, mc,
                                {"step": step, "val_loss": val, "corpus_stats": stats})
    bar.close()
    if d.main and step >= tc.steps:  # finished: export the shippable half-precision model
        src = run_dir / "best.pt" if (run_dir / "best.pt").is_file() else last
        model, meta = load_checkpoint(src)
        save_checkpoint(run_dir / "model.pt", model, meta["config"],
                        {"step": meta["extra"].get("step", step), "val_loss": best,
                         "corpus_stats": stats}, half=True)
    if d.world > 1:
        dist.barrier(device_ids=[d.device.index] if d.device.type == "cuda" else None)
        if d.owns_group:
            dist.destroy_process_group()
    return {"step": step, "best_val": best, "run_dir": str(run_dir), "rank": d.rank,
            "model": cmt}
