"""Training: the epoch plan, exact resume, the CLI's refusals, and 2-process torchrun (gloo)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch
from vbgm.cli import main
from vbgm.corpus_stats import FILE_NAME, read
from vbgm.dataset import Dataset, prepare
from vbgm.model import CMT, load_checkpoint
from vbgm.train import (
    LEGACY_DEFAULTS,
    TrainConfig,
    _autocast,
    _WithLoss,
    collate,
    cpu_bf16_native,
    dataset_stats,
    idle_threads,
    make_optimizer,
    make_step,
    pad_batch,
    plan_epoch,
    restore_config,
    train,
)

from vbgm import train as train_mod

TC = TrainConfig(model="tiny", steps=6, batch_size=3, seq_len=48, warmup=2, eval_every=3,
                 eval_batches=2, ckpt_every=2, log_every=1, cond_dropout=0.5, seed=3)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def dataset_dir(midi_root: Path, tmp_path_factory) -> Path:
    """A real prepared dataset (the Simutrans songs: all three splits are populated)."""
    out = tmp_path_factory.mktemp("ds") / "simutrans"
    prepare([midi_root / "simutrans"], out)
    ds = Dataset.load(out)
    assert ds.split("train") and ds.split("valid")
    return out


def test_epoch_plan_is_deterministic_and_covers_songs_in_bounds():
    lengths = {0: 1000, 3: 40, 5: 130, 9: 2}
    plan = plan_epoch(lengths, 4, 64, seed=1, epoch=0, cond_dropout=0.5)
    assert plan == plan_epoch(lengths, 4, 64, seed=1, epoch=0, cond_dropout=0.5)
    assert plan != plan_epoch(lengths, 4, 64, seed=1, epoch=1, cond_dropout=0.5)
    windows = [w for b in plan for w in b]
    per_song = {s: sum(w.song == s for w in windows) for s in lengths}
    assert per_song == {0: 16, 3: 1, 5: 3, 9: 1}  # ceil((n - 1) / seq_len)
    for w in windows:
        assert w.length == min(64, lengths[w.song] - 1)
        assert 0 <= w.start and w.start + w.length + 1 <= lengths[w.song]
    assert 0 < sum(w.any_init for w in windows) < len(windows)
    assert all(len(b) <= 4 for b in plan)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)[0].state_dict()


def _log(path: Path) -> list[tuple[str, ...]]:
    with open(path / "log.csv", newline="") as f:
        return [(r["step"], r["train_loss"], r["val_loss"], r["lr"]) for r in csv.DictReader(f)]


def test_resume_continues_exactly(dataset_dir, tmp_path):
    ds = Dataset.load(dataset_dir)
    straight = train(ds, tmp_path / "a", TC, progress=False)
    assert straight["step"] == 6
    half = train(ds, tmp_path / "b", TC, stop_after=3, progress=False)
    assert half["step"] == 3 and not (tmp_path / "b" / "model.pt").exists()
    train(ds, tmp_path / "b", resume=True, progress=False)
    wa, wb = _weights(tmp_path / "a" / "last.pt"), _weights(tmp_path / "b" / "last.pt")
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    ea = load_checkpoint(tmp_path / "a" / "last.pt")[1]["extra"]
    eb = load_checkpoint(tmp_path / "b" / "last.pt")[1]["extra"]
    assert (ea["epoch"], ea["pos"], ea["best_val"]) == (eb["epoch"], eb["pos"], eb["best_val"])
    sa, sb = ea["optimizer"]["state"], eb["optimizer"]["state"]
    assert all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)
    assert _log(tmp_path / "a") == _log(tmp_path / "b")
    # The finished run exported a half-precision model that loads and runs.
    model, meta = load_checkpoint(tmp_path / "a" / "model.pt")
    assert meta["config"].n_layer == 2 and (tmp_path / "a" / "curves.png").stat().st_size > 0
    assert (tmp_path / "a" / "best.pt").is_file()
    # Every checkpoint carries the dataset's corpus statistics, the resumed run's too.
    expected = read(dataset_dir / FILE_NAME).to_dict()
    for path in ("a/last.pt", "a/best.pt", "a/model.pt", "b/last.pt", "b/model.pt"):
        assert load_checkpoint(tmp_path / path)[1]["extra"]["corpus_stats"] == expected, path


def test_dataset_stats_measures_a_source_without_stats_json(dataset_dir):
    ds = Dataset.load(dataset_dir)

    class Bare:  # a SongSource with no folder behind it
        tokens, init, split = ds.tokens, ds.init, ds.split

    stored = dataset_stats(ds).to_dict()
    measured = dataset_stats(Bare()).to_dict()
    assert stored["source"] == str(dataset_dir.resolve()) and measured["source"] == ""
    assert {k: v for k, v in measured.items() if k != "source"} == {
        k: v for k, v in stored.items() if k != "source"}


def test_cli_refuses_to_overwrite_or_resume_nothing(dataset_dir, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", str(dataset_dir), "-o", str(run), "--config", "tiny", "--steps", "2",
            "--batch-size", "2", "--seq-len", "32", "--eval-every", "2", "--no-progress"]
    assert main(args) == 0
    assert "trained to step 2" in capsys.readouterr().out
    before = (run / "last.pt").read_bytes()
    assert main(args) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (run / "last.pt").read_bytes() == before
    assert main(["train", str(dataset_dir), "-o", str(tmp_path / "empty"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "nope"), "-o", str(tmp_path / "r2")]) == 2
    assert "not a vbgm dataset" in capsys.readouterr().err


def test_resume_accepts_repeated_flags_and_refuses_conflicting_ones(dataset_dir, tmp_path,
                                                                     capsys):
    run = tmp_path / "run"
    args = ["train", str(dataset_dir), "-o", str(run), "--config", "tiny", "--batch-size", "2",
            "--seq-len", "32", "--eval-every", "2", "--no-progress"]
    assert main([*args, "--steps", "2"]) == 0
    before = (run / "last.pt").read_bytes()
    # --config used to be ignored on resume: a model of another size is a conflict
    capsys.readouterr()
    assert main(["train", str(dataset_dir), "-o", str(run), "--resume", "--config", "small"]) == 2
    assert "model: 'tiny' -> 'small'" in capsys.readouterr().err
    assert main([*args, "--resume", "--lr", "0.5", "--ablate-controls"]) == 2
    err = capsys.readouterr().err
    assert "lr: 0.001 -> 0.5" in err and "ablate_controls: False -> True" in err
    assert "batch_size" not in err
    assert (run / "last.pt").read_bytes() == before
    # the same flags again are accepted, and --steps may grow
    assert main([*args, "--resume", "--steps", "3"]) == 0
    assert "trained to step 3" in capsys.readouterr().out
    # no flags: the stored settings
    assert main(["train", str(dataset_dir), "-o", str(run), "--resume", "--steps", "4",
                 "--no-progress"]) == 0
    extra = load_checkpoint(run / "last.pt")[1]["extra"]
    assert extra["step"] == 4 and extra["train"]["model"] == "tiny"
    assert extra["train"]["batch_size"] == 2 and set(extra["rng"][0]) == {"cpu"}
    # a new run without --cpu-bf16 takes bf16 where the CPU has it natively (measured faster)
    assert extra["train"]["cpu_bf16"] == cpu_bf16_native()
    assert not extra["train"]["compile"]


def test_idle_threads_leaves_the_busy_cores_alone():
    assert idle_threads(load=0.1, cores=2) == 2
    assert idle_threads(load=1.2, cores=2) == 1
    assert idle_threads(load=6.0, cores=2) == 1
    assert idle_threads(load=3.0, cores=16) == 13
    assert 1 <= idle_threads() <= (os.cpu_count() or 1)


def test_init_from_starts_a_new_run_from_shipped_weights(dataset_dir, tmp_path, capsys):
    """A later session continues training from committed weights (no optimiser state)."""
    ds = Dataset.load(dataset_dir)
    train(ds, tmp_path / "first", TC, progress=False)
    start = tmp_path / "first" / "model.pt"  # half precision, as shipped
    args = ["train", str(dataset_dir), "-o", str(tmp_path / "next"), "--config", "tiny",
            "--steps", "2", "--batch-size", "2", "--seq-len", "32", "--eval-every", "1",
            "--lr", "0", "--warmup", "1", "--no-progress", "--init-from", str(start)]
    assert main(args) == 0
    # With lr 0 the weights stay those of the start: it really started from them.
    got, want = _weights(tmp_path / "next" / "last.pt"), _weights(start)
    assert all(torch.allclose(got[k], want[k]) for k in want)
    extra = load_checkpoint(tmp_path / "next" / "last.pt")[1]["extra"]
    assert extra["train"]["init_from"] == str(start.resolve())
    # A model of another size, or --init-from with --resume, is refused in one line.
    capsys.readouterr()
    assert main(["train", str(dataset_dir), "-o", str(tmp_path / "x"), "--config", "small",
                 "--init-from", str(start)]) == 2
    assert "model config" in capsys.readouterr().err
    assert main([*args, "--resume"]) == 2
    assert "choose one" in capsys.readouterr().err


SCRIPT = """
import sys, torch
from vbgm.dataset import Dataset
from vbgm.train import TrainConfig, train
tc = TrainConfig(model="tiny", steps=3, batch_size=2, seq_len=32, warmup=1, eval_every=3,
                 eval_batches=1, ckpt_every=3, seed=1)
out = train(Dataset.load(sys.argv[1]), sys.argv[2], tc, progress=False)
torch.save(out["model"].state_dict(), f"{sys.argv[2]}/rank{out['rank']}.pt")
"""


def test_torchrun_two_processes_hold_the_same_weights(dataset_dir, tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(textwrap.dedent(SCRIPT))
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(script), str(dataset_dir), str(run)],
        capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = torch.load(run / "rank0.pt"), torch.load(run / "rank1.pt")
    saved = _weights(run / "last.pt")
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k
        if k != "pe":
            assert torch.equal(r0[k], saved[k]), k
    # The ranks trained on different batches, so equality comes from the gradient all-reduce:
    # one process alone on the same plan ends elsewhere.
    ds = Dataset.load(dataset_dir)
    tc = replace(TrainConfig(model="tiny", steps=3, batch_size=2, seq_len=32, warmup=1,
                             eval_every=3, eval_batches=1, ckpt_every=3, seed=1))
    alone = train(ds, tmp_path / "alone", tc, progress=False)["model"].state_dict()
    assert not torch.equal(alone["in_proj.weight"], r0["in_proj.weight"])


# ---- speed options: padded static batches, torch.compile, CPU bf16 autocast ----
def _one_batch(dataset_dir: Path, B: int = 3, T: int = 40) -> tuple[torch.Tensor, ...]:
    ds = Dataset.load(dataset_dir)
    lengths = {i: len(ds.tokens(i)) for i in ds.split("train")}
    batch = next(b for b in plan_epoch(lengths, B, T, 0, 0) if len(b) == B)
    return collate(ds, batch)


def test_padding_a_batch_to_the_full_shape_changes_neither_loss_nor_gradients(dataset_dir):
    """A compiled step pads every batch to (batch_size, seq_len): causal attention, masked
    rows and a mean over real rows make that exact."""
    init, x, y, mask = _one_batch(dataset_dir)
    mask[1, 25:] = False  # a shorter window inside the batch
    torch.manual_seed(0)
    model = CMT(replace(TC.model_config(), dropout=0.0)).train()

    def loss_and_grads(*batch):
        model.zero_grad()
        loss, _ = model.loss(*batch)
        loss.backward()
        return loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters()
                               if p.grad is not None}

    padded = pad_batch(init, x, y, mask, 5, 70)
    assert padded[1].shape == (5, 70, 9) and padded[0].shape == (5, 7, 3)
    assert int(padded[3].sum()) == int(mask.sum())
    assert pad_batch(init, x, y, mask, 3, 40)[1] is x  # already full: untouched
    l0, g0 = loss_and_grads(init, x, y, mask)
    l1, g1 = loss_and_grads(*padded)
    assert torch.allclose(l0, l1, atol=1e-5)
    assert g0.keys() == g1.keys()
    for k in g0:
        assert torch.allclose(g0[k], g1[k], atol=1e-5, rtol=1e-4), k
    with pytest.raises(ValueError):
        pad_batch(init, x, y, mask, 2, 70)


def test_cpu_bf16_autocast_keeps_the_loss_and_the_cuda_path(dataset_dir):
    init, x, y, mask = _one_batch(dataset_dir)
    torch.manual_seed(0)
    model = CMT(replace(TC.model_config(), dropout=0.0)).train()
    with _autocast(torch.device("cpu"), cpu_bf16=False):
        full, _ = model.loss(init, x, y, mask)
    with _autocast(torch.device("cpu"), cpu_bf16=True):
        half, per_field = model.loss(init, x, y, mask)
    assert half.dtype == torch.float32 and all(v.dtype == torch.float32
                                               for v in per_field.values())
    assert abs(float(half.detach()) - float(full.detach())) < 0.05 * float(full.detach())
    # the GPU path is unchanged: bf16 autocast on CUDA whatever cpu_bf16 says
    with pytest.warns(UserWarning):  # no CUDA here: torch disables it, but the request stands
        ctx = _autocast(torch.device("cuda"), cpu_bf16=False)
    assert (ctx.device, ctx.fast_dtype) == ("cuda", torch.bfloat16)
    assert not _autocast(torch.device("cpu"))._enabled


def test_runs_stored_before_the_speed_options_resume_as_they_were_trained():
    old = {k: v for k, v in asdict(TC).items() if k not in LEGACY_DEFAULTS}
    restored = restore_config(old)
    assert (restored.compile, restored.cpu_bf16) == (False, False)
    assert replace(restored, **LEGACY_DEFAULTS) == replace(TC, **LEGACY_DEFAULTS)
    assert restore_config(asdict(replace(TC, cpu_bf16=True))).cpu_bf16


def test_compiled_bf16_run_keeps_plain_checkpoints_resume_and_init_from(dataset_dir, tmp_path,
                                                                        monkeypatch, capsys):
    """--compile --cpu-bf16 through the CLI (a light compile backend: the wrapping, the static
    shapes and the checkpoints are what is tested): the checkpoints hold the plain state_dict,
    load with the loader, resume exactly and start an --init-from run."""
    monkeypatch.setattr(train_mod, "COMPILE_BACKEND", "aot_eager")
    torch._dynamo.reset()
    common = ["--config", "tiny", "--batch-size", "3", "--seq-len", "48", "--eval-every", "3",
              "--ckpt-every", "2", "--warmup", "2", "--seed", "3", "--no-progress",
              "--compile", "--cpu-bf16", "--threads", "1"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["train", str(dataset_dir), "-o", str(a), "--steps", "5", *common]) == 0
    assert main(["train", str(dataset_dir), "-o", str(b), "--steps", "5", "--stop-after", "3",
                 *common]) == 0
    capsys.readouterr()
    # the stored speed settings are the run's: changing them on resume is a conflict
    assert main(["train", str(dataset_dir), "-o", str(b), "--resume", "--no-cpu-bf16"]) == 2
    assert "cpu_bf16: True -> False" in capsys.readouterr().err
    assert main(["train", str(dataset_dir), "-o", str(b), "--resume", "--no-progress"]) == 0
    for run in (a, b):
        raw = torch.load(run / "last.pt", weights_only=False)
        assert not any("_orig_mod" in k or k.startswith("module.") for k in raw["model"])
        assert raw["extra"]["train"]["compile"] and raw["extra"]["train"]["cpu_bf16"]
        assert raw["extra"]["step"] == 5
    wa, wb = _weights(a / "last.pt"), _weights(b / "last.pt")
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    model, meta = load_checkpoint(a / "model.pt")
    assert meta["config"].n_layer == 2
    assert main(["train", str(dataset_dir), "-o", str(tmp_path / "c"), "--steps", "1",
                 "--init-from", str(a / "model.pt"), "--lr", "0", *common]) == 0
    got, want = _weights(tmp_path / "c" / "last.pt"), _weights(a / "model.pt")
    assert all(torch.allclose(got[k], want[k]) for k in want)


@pytest.mark.skipif(os.environ.get("VBGM_COMPILE_TEST") != "1" and os.environ.get("CI") != "true",
                    reason="the inductor build takes 1-3 min on 2 cores: VBGM_COMPILE_TEST=1 "
                           "(always run in CI)")
def test_inductor_compiled_step_matches_the_eager_step(dataset_dir):
    """The real backend (a C++ build of the tiny model): the same losses and update as eager."""
    import shutil

    if shutil.which("g++") is None and shutil.which("c++") is None:
        pytest.skip("torch.compile needs a C++ compiler")
    torch._dynamo.reset()
    batch = _one_batch(dataset_dir, 3, 40)
    results = []
    for compiled in (False, True):
        torch.manual_seed(0)
        tc = replace(TC, batch_size=3, seq_len=48, compile=compiled)
        cmt = CMT(replace(tc.model_config(), dropout=0.0)).train()
        opt = make_optimizer(cmt, tc)
        run, step = make_step(_WithLoss(cmt), cmt, opt, tc, torch.device("cpu"))
        losses = [float(step(*batch)[0]) for _ in range(2)]
        assert (run is not cmt) and all("_orig_mod" not in k for k in cmt.state_dict())
        results.append((losses, cmt.state_dict()))
    (l0, s0), (l1, s1) = results
    assert l0 == pytest.approx(l1, abs=1e-4)
    for k in s0:
        assert torch.allclose(s0[k], s1[k], atol=1e-5), k
