"""Training: the epoch plan, exact resume, the CLI's refusals, and 2-process torchrun (gloo)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from vbgm.cli import main
from vbgm.corpus_stats import FILE_NAME, read
from vbgm.dataset import Dataset, prepare
from vbgm.model import load_checkpoint
from vbgm.train import TrainConfig, dataset_stats, plan_epoch, train

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
