"""stats, evaluate and show through the CLI on the real sample."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ap10k.cli import main
from ap10k.dataset import CocoDataset
from PIL import Image

from ap10k import stats


def test_stats_on_sample(ap10k_sample: Path, tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    st = stats.compute(CocoDataset.load(ap10k_sample / "test_ap10k.json"))
    assert st.species_instances == {1: 1, 26: 1}
    assert st.family_instances == {"Bovidae": 1, "Felidae": 1}
    assert st.instances_per_image == {1: 2}
    assert st.labelled_fraction["right_eye"] == 0.0 and st.labelled_fraction["nose"] == 1.0
    assert st.visibility == {0: 2, 2: 32}
    assert st.backgrounds == {"grass/savanna": 1, "zoo/human habitation": 1}
    plot, js = tmp_path / "tail.png", tmp_path / "stats.json"
    assert main(["stats", str(ap10k_sample / "test_ap10k.json"), "--plot", str(plot),
                 "--json", str(js)]) == 0
    assert "Bovidae" in capsys.readouterr().out
    assert Image.open(plot).size[0] >= 800
    assert json.loads(js.read_text())["species"]["jaguar"] == {"instances": 1, "images": 1}


def test_stats_long_tail_plot_on_pool(species_pool: Path, tmp_path: Path) -> None:
    st = stats.compute(CocoDataset.load(species_pool))
    assert len(st.species_instances) == 54 and len(st.family_instances) == 23
    assert sum(st.family_instances.values()) == st.num_instances
    stats.plot_long_tail(st, tmp_path / "tail.png")
    im = np.asarray(Image.open(tmp_path / "tail.png").convert("RGB"))
    assert im.shape[1] > 1500 and im.std() > 10  # wide enough for 54 labels, not blank


def _results(ap10k_sample: Path, path: Path, category: int | None = None) -> Path:
    data = json.loads((ap10k_sample / "test_ap10k.json").read_text())
    rng = np.random.default_rng(0)
    res = []
    for a in data["annotations"]:
        k = np.array(a["keypoints"], dtype=float).reshape(17, 3)
        k[:, :2] += rng.normal(0, 0.05 * np.sqrt(a["area"]), (17, 2))
        k[:, 2] = 0.9
        res.append({"image_id": a["image_id"], "category_id": category or a["category_id"],
                    "keypoints": k.reshape(-1).tolist(), "score": 0.8})
    path.write_text(json.dumps(res))
    return path


def test_evaluate_cli(ap10k_sample: Path, tmp_path: Path,
                      capsys: pytest.CaptureFixture[str]) -> None:
    gt = str(ap10k_sample / "test_ap10k.json")
    pred = _results(ap10k_sample, tmp_path / "pred.json")
    out = tmp_path / "eval.json"
    assert main(["evaluate", gt, str(pred), "--per-species", "--json", str(out)]) == 0
    text = capsys.readouterr()
    assert "jaguar" in text.out and "Felidae" in text.out and text.err == ""
    result = json.loads(out.read_text())
    assert 0 < result["stats"]["AP"] < 1 and result["warnings"] == []
    assert {s["name"] for s in result["per_species"]} == {"antelope", "jaguar"}
    wrong = _results(ap10k_sample, tmp_path / "wrong.json", category=1)
    assert main(["evaluate", gt, str(wrong), "--json", str(out)]) == 0
    assert "WARNING" in capsys.readouterr().err
    assert json.loads(out.read_text())["stats"]["AP"] < result["stats"]["AP"]
    wrong.write_text('{"oops": 1}')
    assert main(["evaluate", gt, str(wrong)]) == 2
    assert "expected a JSON list" in capsys.readouterr().err


def test_evaluate_refuses_empty_or_foreign_predictions(ap10k_sample: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    gt = str(ap10k_sample / "test_ap10k.json")
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    capsys.readouterr()
    assert main(["evaluate", gt, str(empty)]) == 2
    err = capsys.readouterr().err
    assert err == (f"ap10k: error: {empty}: holds no predictions, which would score AP 0 "
                   f"against {gt}; pass --allow-empty to score it anyway\n")
    assert main(["evaluate", gt, str(empty), "--allow-empty"]) == 0
    assert "   AP 0.0000" in capsys.readouterr().out
    # one prediction for an image of another split: refused, named, one line
    pred = _results(ap10k_sample, tmp_path / "pred.json")
    data = json.loads(pred.read_text())
    data[0]["image_id"] = 999999
    pred.write_text(json.dumps(data))
    assert main(["evaluate", gt, str(pred)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "1 of 2 predictions are for image ids not in" in err
    assert "(e.g. 999999)" in err
    assert main(["evaluate", gt, str(pred), "--allow-empty"]) == 0
    assert "not in the ground truth" in capsys.readouterr().err


def test_show_side_by_side_and_overlay(ap10k_sample: Path, tmp_path: Path) -> None:
    pred = _results(ap10k_sample, tmp_path / "pred.json")
    out = tmp_path / "side.png"
    assert main(["show", str(ap10k_sample / "test_ap10k.json"), "--pred", str(pred),
                 "-o", str(out)]) == 0
    side = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert side.shape[1] == 1400 and side.shape[0] > 900  # two rows of GT | prediction
    # left limbs are drawn orange and right limbs blue
    orange = ((side[..., 0] > 240) & (np.abs(side[..., 1] - 140) < 6) & (side[..., 2] < 10)).sum()
    blue = ((side[..., 0] < 40) & (np.abs(side[..., 1] - 144) < 6) & (side[..., 2] > 245)).sum()
    assert orange > 500 and blue > 500
    overlay = tmp_path / "overlay.png"
    assert main(["show", str(ap10k_sample / "000000000004.jpg"), "--ann",
                 str(ap10k_sample / "test_ap10k.json"), "--pred", str(pred), "--overlay",
                 "-o", str(overlay)]) == 0
    assert Image.open(overlay).size[0] == 800
    assert main(["show", str(ap10k_sample / "000000000004.jpg"), "-o", str(overlay)]) == 2
