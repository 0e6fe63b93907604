"""Training: overfitting the real sample to AP 1.0, exact resume, torchrun DDP, learning on
synthetic animals, and the train/predict/synth command lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ap10k.cli import main
from ap10k.pipeline import PipelineConfig
from ap10k.synth import generate
from ap10k.train import TrainConfig, lr_at, train

FAST = {"warmup_iters": 0, "milestones": [10**6], "workers": 0, "checkpoint_every": 1000}


def no_aug(size: int) -> PipelineConfig:
    return PipelineConfig(input_size=size, heatmap_size=size // 4, flip_prob=0, half_body_prob=0,
                          scale_factor=0, rotation_prob=0, shift_prob=0)


@pytest.fixture(scope="module")
def tiny_synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate(out, 12, seed=5, val_fraction=0.25, size=(96, 96), progress=False)
    return out


def test_lr_schedule_warms_up_and_steps_at_scaled_milestones() -> None:
    cfg = TrainConfig(epochs=21, warmup_iters=10, lr=1e-3)
    assert cfg.schedule_milestones() == [17, 20]
    assert lr_at(0, 0, cfg) == pytest.approx(1e-6)
    assert lr_at(5, 0, cfg) == pytest.approx(1e-3 * (0.001 + 0.999 * 0.5))
    assert lr_at(50, 16, cfg) == pytest.approx(1e-3)
    assert lr_at(50, 17, cfg) == pytest.approx(1e-4)
    assert lr_at(50, 20, cfg) == pytest.approx(1e-5)
    assert TrainConfig().schedule_milestones() == [170, 200]


def test_overfits_the_real_sample_to_ap_1(ap10k_sample: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    gt = ap10k_sample / "test_ap10k.json"
    cfg = TrainConfig(model="resnet18", model_options={"deconv_channels": 64}, train=str(gt),
                      images=str(ap10k_sample), out=str(tmp_path / "run"), epochs=120,
                      batch_size=2, lr=2e-3, pipeline=no_aug(128), **FAST)
    result = train(cfg, progress=False)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"] / 20
    # predict with the ground-truth boxes, then score with `ap10k evaluate`
    images = [str(ap10k_sample / n) for n in ("000000000004.jpg", "000000037516.jpg")]
    assert main(["predict", *images, "--checkpoint", str(tmp_path / "run" / "last.pt"),
                 "--boxes", str(gt), "-o", str(tmp_path / "pred")]) == 0
    assert (tmp_path / "pred" / "000000037516_pose.jpg").is_file()
    capsys.readouterr()
    report = tmp_path / "eval.json"
    assert main(["evaluate", str(gt), str(tmp_path / "pred" / "results.json"),
                 "--json", str(report)]) == 0
    stats = json.loads(report.read_text())["stats"]
    assert stats["AP"] == pytest.approx(1.0)


def test_resume_continues_exactly(tiny_synth: Path, tmp_path: Path) -> None:
    base = dict(model="resnet18", model_options={"deconv_channels": 32},
                train=str(tiny_synth / "annotations" / "synth-train.json"),
                images=str(tiny_synth / "data"), epochs=2, batch_size=4, lr=1e-3,
                warmup_iters=3, pipeline=PipelineConfig(input_size=64, heatmap_size=16))
    straight = TrainConfig(**base, out=str(tmp_path / "a"), workers=0)
    train(straight, progress=False)
    # the interrupted run also uses worker processes: crops must not depend on them
    interrupted = TrainConfig(**base, out=str(tmp_path / "b"), workers=2)
    first = train(interrupted, progress=False, stop_after=1)
    assert first.epochs_done == 1
    second = train(interrupted, resume=True, progress=False)
    assert second.epochs_done == 2
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=False)
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=False)
    assert a["iteration"] == b["iteration"] == 2 * 3
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
    assert [r["train_loss"] for r in a["history"]] == [r["train_loss"] for r in b["history"]]
    assert (tmp_path / "b" / "log.csv").read_text().count("\n") == 3


def test_torchrun_two_processes_gloo(tiny_synth: Path, tmp_path: Path) -> None:
    config = {"model": "resnet18", "model_options": {"deconv_channels": 32},
              "train": str(tiny_synth / "annotations" / "synth-train.json"),
              "val": str(tiny_synth / "annotations" / "synth-val.json"),
              "images": str(tiny_synth / "data"), "out": str(tmp_path / "ddp"), "epochs": 2,
              "batch_size": 3, "workers": 0, "device": "cpu", "val_every": 2,
              "pipeline": {"input_size": 64, "heatmap_size": 16}}
    (tmp_path / "cfg.json").write_text(json.dumps(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "ap10k.cli", "train", str(tmp_path / "cfg.json"), "--no-progress"],
        capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = torch.load(tmp_path / "ddp" / "last.pt", weights_only=False)
    # 9 training images over 2 ranks → 5 per rank → 2 batches of ≤3 per epoch
    assert ckpt["epoch"] == 2 and ckpt["iteration"] == 4
    assert len(ckpt["rng"]) == 2
    assert isinstance(ckpt["history"][-1]["val_AP"], float)
    assert (tmp_path / "ddp" / "curve.png").is_file()


def template_ap(train_json: Path, val_json: Path, images: Path) -> float:
    """AP of the best guess without looking at the image: every keypoint at its mean position
    relative to the (padded, square) box over the training set."""
    import numpy as np
    from ap10k.cocoeval import evaluate
    from ap10k.dataset import CocoDataset
    from ap10k.pipeline import samples_from_dataset
    from ap10k.transforms import box_to_center_size

    train_samples = samples_from_dataset(CocoDataset.load(train_json), images)
    rel = np.zeros((17, 2))
    for k in range(17):
        pts = [(s.keypoints[k, :2] - c) / size for s in train_samples if s.keypoints[k, 2] > 0
               for c, size in [box_to_center_size(s.bbox)]]
        rel[k] = np.mean(pts, axis=0)
    val = CocoDataset.load(val_json)
    results = []
    for s in samples_from_dataset(val, images, require_keypoints=False):
        c, size = box_to_center_size(s.bbox)
        kps = np.c_[c + rel * size, np.ones(17)]
        results.append({"image_id": s.image_id, "category_id": s.category_id,
                        "keypoints": kps.ravel().tolist(), "score": 1.0})
    return evaluate(val, results, warn=False).stats["AP"]


def test_learns_synthetic_animals_well_above_chance(tmp_path: Path) -> None:
    # Reduced size (64×64 crops, 180 training images, 12 epochs, ~1 CPU-minute): localisation
    # at 16×16 heatmaps is coarse, so AP stays low in absolute terms; the claim is that it is
    # far above what knowing the box alone gives. The full-size run is
    # benchmarks/bench_ap10k_synth.py.
    data = tmp_path / "synth"
    generate(data, 240, seed=1, val_fraction=0.25, size=(128, 128), progress=False)
    train_json = data / "annotations" / "synth-train.json"
    val_json = data / "annotations" / "synth-val.json"
    torch.manual_seed(0)
    cfg = TrainConfig(model="resnet18", model_options={"deconv_channels": 64},
                      train=str(train_json), val=str(val_json), images=str(data / "data"),
                      out=str(tmp_path / "run"), epochs=12, batch_size=16, lr=3e-3,
                      warmup_iters=10, val_every=12, workers=0, checkpoint_every=1000,
                      pipeline=PipelineConfig(input_size=64, heatmap_size=16,
                                              half_body_prob=0, rotation_prob=0,
                                              scale_factor=0.25))
    result = train(cfg, progress=False)
    chance = template_ap(train_json, val_json, data / "data")
    assert chance < 1e-3
    assert result.last_ap is not None and result.last_ap > max(0.003, 50 * chance)
    assert result.history[-1]["train_loss"] < 0.9 * result.history[0]["train_loss"]


def test_command_line_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--model", "resnet18", "-o", str(tmp_path / "r")]) == 2
    assert "--train" in capsys.readouterr().err
    bad = tmp_path / "cfg.json"
    bad.write_text(json.dumps({"modle": "resnet18"}))
    assert main(["train", str(bad)]) == 2
    assert "modle" in capsys.readouterr().err
    img = tmp_path / "x.jpg"
    img.write_bytes(b"")
    assert main(["predict", str(img), "--checkpoint", str(tmp_path / "no.pt"),
                 "-o", str(tmp_path / "p")]) == 2
    assert "no.pt" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()
    assert main(["synth", "-o", str(tmp_path / "s"), "--n", "1"]) == 2


def test_synth_command_writes_an_ap10k_style_dataset(tmp_path: Path) -> None:
    from ap10k.dataset import CocoDataset

    assert main(["synth", "-o", str(tmp_path), "--n", "10", "--seed", "3",
                 "--size", "96", "96"]) == 0
    train_set = CocoDataset.load(tmp_path / "annotations" / "synth-train.json")
    val_set = CocoDataset.load(tmp_path / "annotations" / "synth-val.json")
    assert len(train_set.images) == 8 and len(val_set.images) == 2
    assert len(train_set.categories) == 54
    for a in train_set.annotations + val_set.annotations:
        lab = a.keypoints[:, 2] > 0
        assert lab.sum() >= 6 and set(a.keypoints[:, 2]) <= {0.0, 2.0}
        x, y, w, h = a.bbox
        assert (a.keypoints[lab, 0] >= x).all() and (a.keypoints[lab, 0] <= x + w).all()
        assert (a.keypoints[lab, 1] >= y).all() and (a.keypoints[lab, 1] <= y + h).all()
    first = (tmp_path / "data" / "000000000001.jpg").read_bytes()
    assert main(["synth", "-o", str(tmp_path / "again"), "--n", "3", "--seed", "3",
                 "--size", "96", "96"]) == 0
    assert (tmp_path / "again" / "data" / "000000000001.jpg").read_bytes() == first


@pytest.fixture(scope="module")
def fake_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A miniature dataset in the official release layout, made of synthetic animals."""
    from ap10k.dataset import CocoDataset

    root = tmp_path_factory.mktemp("release")
    generate(root, 40, seed=9, val_fraction=0.0, size=(96, 96), progress=False)
    full = CocoDataset.load(root / "annotations" / "synth-train.json")
    ids = [im.id for im in full.images]
    for name, part in (("train", ids[:28]), ("val", ids[28:34]), ("test", ids[34:])):
        full.subset(part).save(root / "annotations" / f"ap10k-{name}-split1.json")
    return root


def test_experiment_dry_run_plans_the_paper_tables(fake_release: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "exp")
    assert main(["experiment", "table3", "--data-root", str(fake_release), "--out", out,
                 "--repeats", "1", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("table3: 5 training runs of 210 epochs")
    for key in ("resnet50-scratch-split1", "hrnet_w48-scratch-split1", "hourglass52-scratch"):
        assert key in text
    assert "train ap10k-train-split1.json (28 images, " in text
    assert not (tmp_path / "exp" / "runs").exists()
    assert main(["experiment", "table3", "--data-root", str(tmp_path / "none"),
                 "--dry-run"]) == 2


def test_experiment_table3_runs_end_to_end(fake_release: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from ap10k.models import build_model

    weights = tmp_path / "weights"
    weights.mkdir()
    # an "ImageNet" file in torchvision layout: backbone names without prefix, plus fc
    state = build_model("resnet18").backbone.state_dict()
    state["fc.weight"] = torch.zeros(1000, 512)
    torch.save(state, weights / "resnet18.pth")
    out = tmp_path / "exp"
    args = ["experiment", "table3", "--data-root", str(fake_release), "--out", str(out),
            "--repeats", "1", "--models", "resnet18", "--pretrained-dir", str(weights),
            "--epochs", "1", "--batch-size", "8", "--input-size", "64", "--workers", "0"]
    assert main(args) == 0
    table = (out / "table3.md").read_text()
    assert "| resnet18 |" in table and "1 of 1 splits done" in table
    rows = [line for line in table.splitlines() if line.startswith("| resnet18")]
    assert [r.split("|")[2].strip() for r in rows] == ["scratch", "ImageNet"]
    for row in rows:  # ours | paper (none for resnet18) | difference
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert 0.0 <= float(cells[2]) <= 1.0 and cells[3:] == ["—", "—"]
    results = sorted((out / "runs").glob("*/result.json"))
    assert [p.parent.name for p in results] == ["resnet18-imagenet-split1",
                                                "resnet18-scratch-split1"]
    # started again, finished runs are reused, not retrained
    stamp = results[0].stat().st_mtime_ns
    capsys.readouterr()
    assert main(args) == 0
    assert results[0].stat().st_mtime_ns == stamp


DDP_SCRIPT = """
import json, os, sys, torch
from ap10k.train import TrainConfig, train
cfg = TrainConfig.from_dict(json.loads(open(sys.argv[1]).read()))
rank = int(os.environ["RANK"])
if sys.argv[2] == "rank0-stops":  # only rank 0's clock is past the budget
    cfg.max_minutes = 0.0 if rank == 0 else None
result = train(cfg, progress=False)
params = {k: v.detach() for k, v in result.model.named_parameters()}
torch.save({"epochs": result.epochs_done, "params": params}, f"{cfg.out}/rank{rank}.pt")
"""


def _torchrun_hourglass(tiny_synth: Path, tmp_path: Path, mode: str, epochs: int
                        ) -> list[dict]:
    """A 2-process gloo run of a tiny two-stack hourglass; each rank's result."""
    config = {"model": "hourglass104", "device": "cpu", "workers": 0, "epochs": epochs,
              "model_options": {"widths": [16, 16, 24, 24, 24, 32], "feat_channel": 16},
              "train": str(tiny_synth / "annotations" / "synth-train.json"),
              "images": str(tiny_synth / "data"), "out": str(tmp_path / "run"),
              "batch_size": 3, "lr": 1e-2, "warmup_iters": 0, "checkpoint_every": 1000,
              "pipeline": {"input_size": 64, "heatmap_size": 16}}
    (tmp_path / "cfg.json").write_text(json.dumps(config))
    (tmp_path / "ddp.py").write_text(DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(tmp_path / "ddp.py"), str(tmp_path / "cfg.json"), mode],
        capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [torch.load(tmp_path / "run" / f"rank{r}.pt") for r in (0, 1)]


def test_torchrun_hourglass_stacks_train_through_ddp(tiny_synth: Path, tmp_path: Path) -> None:
    # Each rank sees other crops; only gradients averaged over every stack (the forward goes
    # through the DDP wrapper) keep the two copies of the weights equal.
    r0, r1 = _torchrun_hourglass(tiny_synth, tmp_path, "plain", epochs=2)
    assert r0["epochs"] == r1["epochs"] == 2
    assert r0["params"].keys() == r1["params"].keys()
    for k, v in r0["params"].items():
        assert torch.equal(v, r1["params"][k]), k
    # the first stack's head learnt too (its gradient came from the intermediate output)
    start = build_model_params()
    assert not torch.equal(r0["params"]["final_layers.0.weight"],
                           start["final_layers.0.weight"])


def build_model_params() -> dict[str, torch.Tensor]:
    from ap10k.models import build_model

    torch.manual_seed(0)
    model = build_model("hourglass104", widths=(16, 16, 24, 24, 24, 32), feat_channel=16)
    return {k: v.detach() for k, v in model.named_parameters()}


def test_time_budget_stop_is_collective(tiny_synth: Path, tmp_path: Path) -> None:
    # Rank 0 is past its time budget after the first epoch, rank 1 is not: both stop there
    # (a rank going on alone would wait for its peer's gradients forever).
    r0, r1 = _torchrun_hourglass(tiny_synth, tmp_path, "rank0-stops", epochs=3)
    assert r0["epochs"] == r1["epochs"] == 1
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert ckpt["epoch"] == 1 and len(ckpt["rng"]) == 2


def test_any_rank_outside_a_process_group_is_the_flag() -> None:
    from ap10k.train import any_rank

    assert any_rank(True, torch.device("cpu")) and not any_rank(False, torch.device("cpu"))


def test_resume_reloads_the_run_config_and_rejects_conflicting_flags(
        tiny_synth: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    args = ["train", "--model", "resnet18", "--train",
            str(tiny_synth / "annotations" / "synth-train.json"),
            "--images", str(tiny_synth / "data"), "-o", str(run), "--input-size", "64",
            "--batch-size", "4", "--lr", "1e-3", "--workers", "0", "--no-progress"]
    assert main([*args, "--epochs", "1"]) == 0
    before = (run / "last.pt").read_bytes()
    # a fresh run refuses the folder
    assert main([*args, "--epochs", "1"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (run / "last.pt").read_bytes() == before
    # conflicting settings are refused, naming them; nothing is trained
    assert main([*args, "--resume", "--lr", "2e-3", "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert "lr: 0.001 -> 0.002" in err and "batch" not in err
    assert main([*args, "--resume", "--input-size", "96"]) == 2
    assert "pipeline.input_size: 64 -> 96" in capsys.readouterr().err
    assert (run / "last.pt").read_bytes() == before
    # repeated identical flags are accepted, --epochs may grow
    assert main([*args, "--resume", "--epochs", "2"]) == 0
    assert torch.load(run / "last.pt", weights_only=False)["epoch"] == 2
    # -o alone: the rest comes from RUN/config.json
    assert main(["train", "-o", str(run), "--resume", "--epochs", "3", "--no-progress"]) == 0
    ckpt = torch.load(run / "last.pt", weights_only=False)
    assert ckpt["epoch"] == 3 and ckpt["config"]["pipeline"]["input_size"] == 64
    capsys.readouterr()
    assert main(["train", "-o", str(tmp_path / "none"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def _compile_config(tiny_synth: Path, out: Path, epochs: int = 1) -> TrainConfig:
    """A small model on the tiny synthetic set (3 steps an epoch), with torch.compile on."""
    return TrainConfig(model="resnet18", model_options={"deconv_channels": 32},
                       train=str(tiny_synth / "annotations" / "synth-train.json"),
                       images=str(tiny_synth / "data"), out=str(out), epochs=epochs, batch_size=4,
                       lr=1e-3, warmup_iters=0, workers=0, compile=True,
                       pipeline=PipelineConfig(input_size=64, heatmap_size=16))


def test_plain_state_dict_strips_compile_and_ddp_prefixes() -> None:
    from ap10k.train import plain_state_dict

    assert plain_state_dict({"_orig_mod.a.weight": 1, "_orig_mod.b": 2}) == {"a.weight": 1,
                                                                               "b": 2}
    assert plain_state_dict({"module._orig_mod.a": 1, "module._orig_mod.b": 2}) == {"a": 1,
                                                                                    "b": 2}
    assert plain_state_dict({"_orig_mod.module.a": 1}) == {"a": 1}
    # a prefix only some keys carry is a name of the model's own
    mixed = {"module.a": 1, "b": 2}
    assert plain_state_dict(mixed) == mixed and plain_state_dict({}) == {}


def test_compile_failure_falls_back_with_one_warning(tiny_synth: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    calls = []

    def broken_compile(model: torch.nn.Module, **_: object):  # the build fails at first call
        def run(*args: object, **kwargs: object) -> None:
            calls.append(1)
            raise RuntimeError("no C++ compiler found\nlong traceback")
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    cfg = _compile_config(tiny_synth, tmp_path / "run", epochs=2)
    result = train(cfg, progress=False)
    assert result.epochs_done == 2 and calls == [1]  # tried once, eager afterwards
    err = [line for line in capsys.readouterr().err.splitlines() if line]
    assert err == ["ap10k: warning: torch.compile failed (RuntimeError: no C++ compiler "
                   "found); training without it"]
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=False)["iteration"] == 6


def test_compiled_training_writes_a_plain_loadable_checkpoint(
        tiny_synth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The real build (inductor, C++) takes a minute or more on 2 busy cores, too slow for the
    # suite: this runs torch.compile with its "eager" backend (dynamo traces the model, the
    # compiled module wraps it as `_orig_mod`); AP10K_TEST_INDUCTOR=1 runs the real build.
    from ap10k.inference import load_checkpoint

    real_compile = torch.compile
    used = []

    def compile_eager(model: torch.nn.Module, **kwargs: object):
        used.append(model)
        if os.environ.get("AP10K_TEST_INDUCTOR") != "1":
            kwargs["backend"] = "eager"
        return real_compile(model, **kwargs)

    monkeypatch.setattr(torch, "compile", compile_eager)
    result = train(_compile_config(tiny_synth, tmp_path / "run"), progress=False)
    assert len(used) == 1 and result.epochs_done == 1
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert ckpt["iteration"] == 3 and ckpt["config"]["compile"] is True
    assert not any("_orig_mod" in k or k.startswith("module.") for k in ckpt["model"])
    model, _, _ = load_checkpoint(tmp_path / "run" / "last.pt")
    assert set(model.state_dict()) == set(ckpt["model"])
    # a checkpoint written from a compiled module's own state_dict loads too
    compiled = {f"_orig_mod.{k}": v for k, v in ckpt["model"].items()}
    torch.save({**ckpt, "model": compiled}, tmp_path / "wrapped.pt")
    load_checkpoint(tmp_path / "wrapped.pt")


def test_compile_flag_reaches_the_config(tiny_synth: Path, tmp_path: Path) -> None:
    from ap10k.cli import build_parser
    from ap10k.commands.train import build_config

    base = ["train", "--model", "resnet18", "--train", "t.json", "--images", "."]
    parse = build_parser().parse_args
    assert build_config(parse([*base, "--compile"])).compile is True
    assert build_config(parse([*base, "--no-compile"])).compile is False
    assert build_config(parse(base)).compile is False
