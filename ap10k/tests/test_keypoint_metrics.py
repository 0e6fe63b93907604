"""Per-keypoint AP, OKS contribution and PCK on the real sample with planted keypoint errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ap10k.cli import main
from ap10k.dataset import CocoDataset
from ap10k.keypoint_metrics import analyse

from ap10k import keypoints as kp


def _perfect(gt: CocoDataset) -> list[dict]:
    return [{"image_id": a.image_id, "category_id": a.category_id,
             "keypoints": a.keypoints.reshape(-1).tolist(), "score": 0.9}
            for a in gt.annotations]


def test_one_bad_keypoint_is_singled_out(ap10k_sample: Path) -> None:
    gt = CocoDataset.load(ap10k_sample / "test_ap10k.json")
    preds = _perfect(gt)
    nose = kp.INDEX["nose"]
    for p, a in zip(preds, gt.annotations):
        assert a.keypoints[nose, 2] > 0  # both sample animals have a labelled nose
        shift = 0.08 * max(a.bbox[2], a.bbox[3])  # inside PCK@0.1, outside PCK@0.05
        p["keypoints"][3 * nose] += shift
    r = analyse(gt, preds)
    assert r.pck[0.05][nose] == 0.0 and r.pck[0.1][nose] == 1.0
    assert r.ap[nose] < 0.5 and r.oks_contribution[nose] < 0.5
    others = [i for i in range(kp.NUM_KEYPOINTS) if i != nose and r.labelled[i] > 0]
    assert all(r.ap[i] == pytest.approx(1.0) for i in others)
    assert all(r.pck[0.05][i] == 1.0 and r.oks_contribution[i] == 1.0 for i in others)
    # per species and family: every labelled keypoint but the nose is within 5 %
    for cid, by_t in r.pck_species.items():
        n = int((next(a for a in gt.annotations if a.category_id == cid).keypoints[:, 2]
                 > 0).sum())
        assert by_t[0.05] == pytest.approx((n - 1) / n) and by_t[0.1] == 1.0
    assert set(r.pck_family) == {"Bovidae", "Felidae"}


def test_missing_animal_counts_as_misses_and_cli(ap10k_sample: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    gt_path = ap10k_sample / "test_ap10k.json"
    gt = CocoDataset.load(gt_path)
    preds = _perfect(gt)[:1]  # the second animal has no prediction
    r = analyse(gt, preds)
    first = gt.annotations[0]
    assert r.pck_species[first.category_id][0.05] == 1.0
    assert r.pck_species[gt.annotations[1].category_id][0.1] == 0.0
    both = np.array([(a.keypoints[:, 2] > 0) for a in gt.annotations]).sum(axis=0)
    assert r.labelled == both.tolist()
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps(preds))
    out = tmp_path / "eval.json"
    capsys.readouterr()
    assert main(["evaluate", str(gt_path), str(pred), "--per-keypoint", "--json",
                 str(out)]) == 0
    text = capsys.readouterr().out
    assert ("| keypoint | AP | mean OKS contribution | PCK@0.05 | PCK@0.1 | good | jitter | swap "
            "| miss | labelled |") in text
    assert "| Bovidae |" in text or "| Felidae |" in text
    rows = json.loads(out.read_text())["keypoints"]["per_keypoint"]
    assert [row["keypoint"] for row in rows] == list(kp.NAMES)


def test_error_types_find_planted_swaps_jitter_and_misses(ap10k_sample: Path,
                                                          tmp_path: Path) -> None:
    gt_path = ap10k_sample / "test_ap10k.json"
    gt = CocoDataset.load(gt_path)
    preds = _perfect(gt)
    neck, nose = kp.INDEX["neck"], kp.INDEX["nose"]
    swapped: set[int] = set()
    swaps = np.zeros(17)  # planted swaps per keypoint
    for p, a in zip(preds, gt.annotations):
        k = np.array(p["keypoints"]).reshape(17, 3)
        vis = a.keypoints[:, 2] > 0
        for left, right in kp.FLIP_PAIRS:
            # swap the pairs labelled on both sides whose two points lie far apart (close
            # ones, like a side view's two shoulders, would still be within jitter)
            d2 = ((a.keypoints[left, :2] - a.keypoints[right, :2]) ** 2).sum()
            ks = np.exp(-d2 / (2 * kp.SIGMAS[left]) ** 2 / a.area / 2)
            if vis[left] and vis[right] and ks < 0.1:
                k[[left, right]] = k[[right, left]]
                swapped |= {left, right}
                swaps[[left, right]] += 1
        scale = np.sqrt(a.area)
        k[neck, 0] += 0.5 * scale  # far off: a miss
        # ks = exp(-d² / 2s²k²) with k = 2σ: ks ≈ 0.7, a jitter
        k[nose, 0] += np.sqrt(-2 * np.log(0.7)) * 2 * kp.SIGMAS[nose] * scale
        p["keypoints"] = k.reshape(-1).tolist()
    assert swapped  # the sample has such pairs
    r = analyse(gt, preds)
    for i in swapped:
        assert r.errors["swap"][i] == swaps[i] / r.labelled[i], kp.NAMES[i]
        assert r.errors["good"][i] == 1 - swaps[i] / r.labelled[i]
    assert r.errors["miss"][neck] == 1.0 and r.errors["jitter"][nose] == 1.0
    untouched = [i for i in range(17) if r.labelled[i] and i not in swapped | {neck, nose}]
    assert untouched and all(r.errors["good"][i] == 1.0 for i in untouched)
    for i in range(17):
        if r.labelled[i]:
            assert sum(r.errors[e][i] for e in ("good", "jitter", "swap", "miss")) == 1.0
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps(preds))
    plot = tmp_path / "errors.png"
    assert main(["evaluate", str(gt_path), str(pred), "--error-plot", str(plot)]) == 0
    from PIL import Image

    assert Image.open(plot).size == (1000, 450)
