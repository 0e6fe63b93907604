"""The paper's tables as plans on a fake official release (three random 7:1:2 splits of a
54-species pool built from the real sample), their markdown, and Table 4 from an mmpose-style
COCO checkpoint."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from ap10k.cli import main
from ap10k.dataset import CocoDataset
from ap10k.experiments import ExperimentOptions, plan_tables, table_markdown
from ap10k.synth import generate

from ap10k import paper, splits, taxonomy

SIX = ("deer", "moose", "horse", "zebra", "chimpanzee", "gorilla")


@pytest.fixture(scope="module")
def official(species_pool: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DATA_ROOT/annotations/ap10k-{train,val,test}-split{1,2,3}.json, as the release has."""
    root = tmp_path_factory.mktemp("official")
    for exp in splits.random_splits(CocoDataset.load(species_pool), seed=0):
        for name, ds in exp.parts.items():
            ds.save(root / "annotations" / f"{name}.json")
    return root


def _ids(ds: CocoDataset) -> set[int]:
    return {im.id for im in ds.images}


def _with(ds: CocoDataset, sid: int) -> set[int]:
    return {a.image_id for a in ds.annotations if a.category_id == sid}


def _dry(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["experiment", *args, "--dry-run"]) == 0
    return capsys.readouterr().out


def test_table6_has_the_papers_three_species_per_split(official: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    out = tmp_path / "exp"
    text = _dry(["table6", "--data-root", str(official), "--out", str(out)], capsys)
    assert text.startswith("table6: 9 training runs of 210 epochs")
    assert "arctic" not in text
    stem = "table6-without-wolf-of-dog-fox-wolf"
    line = next(ln for ln in text.splitlines() if f"{stem}-split2:" in ln)
    train = CocoDataset.load(out / "splits" / "split2" / f"{stem}.json")
    # the printed sizes are the written file's; it holds dog and fox only, no wolf image
    assert f"({len(train.images)} images, {len(train.annotations)} instances)" in line
    assert {a.category_id for a in train.annotations} == {8, 9}
    official_train = CocoDataset.load(official / "annotations" / "ap10k-train-split2.json")
    assert _ids(train) <= _ids(official_train) and not _ids(train) & _with(official_train, 10)
    # every species is tested on split 2's own test images of it
    official_test = CocoDataset.load(official / "annotations" / "ap10k-test-split2.json")
    for name, sid in (("dog", 8), ("fox", 9), ("wolf", 10)):
        assert f"{name}=test-{name}.json" in line
        test = CocoDataset.load(out / "splits" / "split2" / f"test-{name}.json")
        assert _ids(test) == _with(official_test, sid)
    # the three splits train on different images, as the paper's did
    other = CocoDataset.load(out / "splits" / "split1" / f"{stem}.json")
    assert _ids(other) != _ids(train)
    text = _dry(["table6", "--data-root", str(official), "--out", str(out),
                 "--include-arctic-fox", "--repeats", "1"], capsys)
    assert text.startswith("table6: 4 training runs")
    assert "table6-without-arctic-fox-of-arctic-fox-dog-fox-wolf-split1" in text


def test_table9_generalisation_few_shot_transfer_for_the_six_species(
        official: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "exp"
    text = _dry(["table9", "--data-root", str(official), "--out", str(out)], capsys)
    # per split: the Bovidae model + a few-shot and a transfer fine-tune per species
    assert text.startswith("table9: 39 training runs")
    assert "orangutan" not in text
    base = "hrnet_w32-scratch-train-bovidae-split1"
    assert f"{base}-ft-gorilla-k20: hrnet_w32 from run:{base}" in text
    few = {n: CocoDataset.load(out / "splits" / f"split{n}" / "finetune-zebra-k20.json")
           for n in (1, 2)}
    for n, ds in few.items():
        official_train = CocoDataset.load(official / "annotations" / f"ap10k-train-split{n}.json")
        transfer = CocoDataset.load(out / "splits" / f"split{n}" / "finetune-zebra-all.json")
        assert len(ds.images) == 20 and {a.category_id for a in ds.annotations} == {22}
        assert _ids(ds) < _ids(transfer) == _with(official_train, 22)
    assert _ids(few[1]) != _ids(few[2])
    for sp in SIX:
        assert f"-ft-{taxonomy.slug(sp)}-all" in text
    assert "fewer than the 500 of few-shot" in _fail(
        ["table9", "--data-root", str(official), "--out", str(out), "--few-shot-k", "500"],
        capsys)


def _fail(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["experiment", *args, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ap10k: error: ")
    return err


def test_all_tables_dry_run(official: Path, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "coco.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, ckpt)
    text = _dry(["all", "--data-root", str(official), "--out", str(tmp_path / "exp"),
                 "--coco-checkpoint", str(ckpt)], capsys)
    counts = {line.split(":")[0]: int(line.split()[1]) for line in text.splitlines()
              if line.startswith("table") and "skipped" not in line}
    # table3 without ImageNet files: 5 models x 3 splits; table5/7: 6 and 10 species x 3
    assert counts == {"table3": 15, "table4": 3, "table5": 18, "table6": 9, "table7": 30,
                      "table8": 6, "table9": 39}
    # table9's Generalisation model is table8's Bovidae model: run once
    assert text.rstrip().endswith(f"{sum(counts.values()) - 3} distinct training runs in all")
    assert "tested after epochs 20, 30, 40, 210" in text
    assert "table10: skipped (needs --animalpose-root)" in text
    assert "table4 needs --coco-checkpoint" in _fail(
        ["table4", "--data-root", str(official)], capsys)


def test_markdown_puts_ours_beside_the_paper(official: Path, tmp_path: Path) -> None:
    opts = ExperimentOptions()
    runs = plan_tables("table6", official, opts, tmp_path)["table6"]
    # fabricated results: AP on fox = 0.7, 0.8, 0.9 over the splits, 0.5 elsewhere
    results = {r.key: {"AP": {sp: (0.6 + 0.1 * r.repeat if sp == "fox" else 0.5)
                              for sp in r.tests}} for r in runs}
    md = table_markdown("table6", runs, results, opts)
    assert md.startswith("## table6 (3 of 3 splits done")
    assert "| dog | fox | 0.800 ± 0.100 | 0.699 ± 0.009 | +0.101 |" in md
    assert "| fox | fox (held out) | 0.800 ± 0.100 | 0.627 ± 0.005 | +0.173 |" in md
    # Average over the trained species fox (0.8) and wolf (0.5): mean ± population std
    assert "| dog | average of the trained species | 0.650 ± 0.150 | 0.699 ± 0.000 | -0.049 |" \
        in md
    runs9 = plan_tables("table9", official, opts, tmp_path)["table9"]
    deer = str(taxonomy.species_by_name("deer").id)
    results9 = {r.key: {"AP": {t: 0.4 for t in r.tests},
                        "per_category": {t: {deer: 0.7} for t in r.tests}} for r in runs9}
    md9 = table_markdown("table9", runs9, results9, opts)
    gen = paper.TABLE9["deer"][0]
    assert f"| deer | Generalisation | 0.700 ± 0.000 | {gen[0]:.3f} ± {gen[1]:.3f} | " \
           f"{0.7 - gen[0]:+.3f} |" in md9
    assert "| gorilla | Few-shot (20 images) | 0.400 ± 0.000 | 0.144 ± 0.121 | +0.256 |" in md9
    assert "| gorilla | Generalisation | — | 0.017 ± 0.006 | — |" in md9


def _mmpose_checkpoint(path: Path, extra_meta: dict | None = None) -> dict[str, torch.Tensor]:
    """A file laid out as mmpose 0.x saves a SimpleBaseline ResNet: `meta` with numpy arrays
    and scalars, `state_dict` with `backbone.*` / `keypoint_head.*` names, `optimizer`."""
    from ap10k.models import build_model

    names = build_model("resnet18").state_dict()
    gen = torch.Generator().manual_seed(3)
    state = collections.OrderedDict()
    for name, t in names.items():
        key = name if name.startswith("backbone.") else f"keypoint_head.{name}"
        state[key] = (t.clone() if t.dtype == torch.int64
                      else torch.rand(t.shape, generator=gen) + 0.5)
    meta = {"mmcv_version": "1.3.9", "time": "Mon Jul 12 2021", "epoch": 210, "iter": 43260,
            "hook_msgs": {"last_ckpt": "work_dirs/epoch_210.pth", "best_score": np.float64(0.72),
                          "best_ckpt": "work_dirs/best_AP_epoch_200.pth"},
            "dataset_meta": {"sigmas": np.full(17, 0.079, dtype=np.float32),
                             "flip_indices": np.array([1, 0, 2]), "num_keypoints": np.int64(17)},
            "config": "model = dict(type='TopDown', ...)", **(extra_meta or {})}
    torch.save({"meta": meta, "state_dict": state, "optimizer": {"state": {}, "param_groups": [
        {"lr": 5e-4, "betas": (0.9, 0.999)}]}}, path)
    return state


def test_table4_from_an_mmpose_checkpoint_end_to_end(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    root = tmp_path / "release"
    generate(root, 12, seed=4, val_fraction=0.0, size=(96, 96), progress=False)
    full = CocoDataset.load(root / "annotations" / "synth-train.json")
    ids = [im.id for im in full.images]
    for name, part in (("train", ids[:8]), ("val", ids[8:10]), ("test", ids[10:])):
        full.subset(part).save(root / "annotations" / f"ap10k-{name}-split1.json")
    ckpt = tmp_path / "hrnet_coco.pth"
    state = _mmpose_checkpoint(ckpt)
    out = tmp_path / "exp"
    args = ["experiment", "table4", "--data-root", str(root), "--out", str(out),
            "--coco-checkpoint", str(ckpt), "--model", "resnet18", "--repeats", "1",
            "--epochs", "2", "--table4-epochs", "1", "--batch-size", "4", "--input-size", "64",
            "--workers", "0"]
    assert main(args) == 0
    # the numpy-holding file loaded without --trust-checkpoint, tensors exactly
    converted = torch.load(out / "converted" / "hrnet_coco-tensors.pth", weights_only=True)
    assert set(converted) == set(state)
    assert torch.equal(converted["keypoint_head.final_layer.weight"],
                       state["keypoint_head.final_layer.weight"])
    run = out / "runs" / "resnet18-coco-split1"
    first = torch.load(run / "epoch1.pt", weights_only=False)
    second = torch.load(run / "epoch2.pt", weights_only=False)
    assert (first["epoch"], second["epoch"]) == (1, 2)
    md = (out / "table4.md").read_text()
    for epoch in (1, 2):
        for stat in paper.TABLE4_STATS:
            row = next(ln for ln in md.splitlines() if ln.startswith(f"| {epoch} | {stat} |"))
            cells = [c.strip() for c in row.strip("|").split("|")]
            assert cells[3:] == ["—", "—"]
            if stat != "APL":  # 96-pixel images have no large (> 96²) animals: APL is "—"
                assert 0.0 <= float(cells[2]) <= 1.0
    assert md.count("| APL | — | — | — |") == 2
    result = json.loads((run / "result.json").read_text())
    assert set(result["stats"]) == {"epoch 1", "epoch 2"}
    # a file pickling any other object is refused in one line, unless trusted
    bad = tmp_path / "odd.pth"
    _mmpose_checkpoint(bad, {"args": argparse.Namespace(lr=5e-4)})
    odd = ["experiment", "table4", "--data-root", str(root), "--out", str(tmp_path / "odd"),
           "--coco-checkpoint", str(bad), "--model", "resnet18", "--repeats", "1",
           "--epochs", "1", "--batch-size", "4", "--input-size", "64", "--workers", "0"]
    capsys.readouterr()
    assert main(odd) == 2
    err = capsys.readouterr().err
    assert err == (f"ap10k: error: {bad}: it pickles argparse.Namespace, which a safe load "
                   "refuses; if you trust the file, pass --trust-checkpoint to load it anyway\n")
    from ap10k.models.pretrained import read_state_dict

    trusted = read_state_dict(bad, trust=True)
    assert torch.equal(trusted["backbone.conv1.weight"], state["backbone.conv1.weight"])


def test_mmpose_1x_checkpoint_loads_into_the_model(tmp_path: Path) -> None:
    """mmpose 1.x (mmengine) names the head `head.*` and keeps numpy arrays in `meta` too."""
    from ap10k.models import build_model
    from ap10k.models.pretrained import load_pretrained

    state = _mmpose_checkpoint(tmp_path / "v0.pth")
    renamed = {k.replace("keypoint_head.", "head."): v for k, v in state.items()}
    meta = {"dataset_meta": {"sigmas": np.full(17, 0.079), "flip_indices": [1, 0]},
            "seed": np.int64(0), "epoch": 210}
    torch.save({"meta": meta, "state_dict": renamed, "message_hub": {"log_scalars": {}}},
               tmp_path / "v1.pth")
    model = build_model("resnet18")
    report = load_pretrained(model, tmp_path / "v1.pth")
    assert report.unused == [] and report.head_kept == []
    mine = model.state_dict()
    for key, value in renamed.items():
        ours = key.removeprefix("head.")
        assert torch.equal(mine[ours], value), key


def test_table8_markdown_has_family_and_species_rows(official: Path, tmp_path: Path) -> None:
    opts = ExperimentOptions(repeats=2)
    runs = plan_tables("table8", official, opts, tmp_path)["table8"]
    assert {r.row for r in runs} == {"Bovidae", "Cercopithecidae"}
    bov = next(r for r in runs if r.row == "Bovidae")
    assert set(bov.tests) == {"Bovidae", "Cervidae", "Equidae", "Hominidae"}
    horse = str(taxonomy.species_by_name("horse").id)
    results = {r.key: {"AP": {t: 0.5 for t in r.tests},
                       "per_category": {t: {horse: 0.6} for t in r.tests}} for r in runs}
    md = table_markdown("table8", runs, results, opts)
    assert "| Bovidae | Equidae (family) | 0.500 ± 0.000 | 0.468 ± 0.019 | +0.032 |" in md
    assert "| Bovidae | horse | 0.600 ± 0.000 | 0.618 ± 0.005 | -0.018 |" in md
    assert "| Bovidae | Bovidae (family) | 0.500 ± 0.000 | 0.782 ± 0.002 | -0.282 |" in md
    assert "| Cercopithecidae | gorilla | — | 0.445 ± 0.011 | — |" in md
    # Tables 5 and 7 render every held-out species with the paper's row
    for name, n in (("table5", 6), ("table7", 10)):
        runs = plan_tables(name, official, ExperimentOptions(repeats=1), tmp_path)[name]
        md = table_markdown(name, runs, {}, ExperimentOptions(repeats=1))
        assert md.count("average of the trained species") == n
        assert md.count("(held out)") == n


def test_unreadable_weights_file_is_one_clear_error(tmp_path: Path) -> None:
    from ap10k.errors import AP10KError
    from ap10k.models.pretrained import read_state_dict

    junk = tmp_path / "weights.pth"
    junk.write_text("<html>404 Not Found</html>")  # a failed download
    with pytest.raises(AP10KError) as info:
        read_state_dict(junk)
    assert str(info.value) == (f"{junk}: not a PyTorch weights file (neither torch.save's zip "
                               "format nor a legacy pickle)")
