"""OKS evaluation: perfect predictions, jitter, wrong species ids, agreement with pycocotools."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from ap10k.cocoeval import STAT_NAMES, evaluate, oks_matrix
from ap10k.dataset import CocoDataset
from ap10k.errors import AP10KError

from ap10k import keypoints as kp


def _pycocotools(gt_path: Path, results: list[dict]) -> np.ndarray:
    coco = pytest.importorskip("pycocotools.coco")
    cocoeval = pytest.importorskip("pycocotools.cocoeval")
    with contextlib.redirect_stdout(io.StringIO()):
        gt = coco.COCO(str(gt_path))
        dt = gt.loadRes(results)
        e = cocoeval.COCOeval(gt, dt, "keypoints")
        e.params.kpt_oks_sigmas = np.array(kp.SIGMAS)
        e.evaluate()
        e.accumulate()
        e.summarize()
    return np.asarray(e.stats)


def _ours(gt_path: Path, results: list[dict], **kw) -> tuple[np.ndarray, object]:
    r = evaluate(CocoDataset.load(gt_path), results, **kw)
    return np.array([r.stats[n] for n in STAT_NAMES]), r


def _as_results(data: dict, category: int | None = None, jitter: float = 0.0,
                seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for a in data["annotations"]:
        k = np.array(a["keypoints"], dtype=float).reshape(17, 3)
        k[:, :2] += rng.normal(0, jitter * np.sqrt(a["area"]), (17, 2))
        k[:, 2] = 1.0
        out.append({"image_id": a["image_id"], "category_id": category or a["category_id"],
                    "keypoints": k.reshape(-1).tolist(), "score": 0.9})
    return out


def test_ground_truth_as_prediction_scores_one(ap10k_sample: Path) -> None:
    path = ap10k_sample / "test_ap10k.json"
    stats, r = _ours(path, _as_results(json.loads(path.read_text())), warn=False)
    one = pytest.approx(1.0, abs=1e-12)  # precision is tp / (tp + fp + eps), as in COCO
    assert r.stats["AP"] == one and r.stats["AR"] == one and r.stats["APL"] == one
    assert r.stats["APM"] == -1.0  # both animals are large
    assert r.per_category == {1: one, 26: one}
    assert r.per_family == {"Bovidae": one, "Felidae": one}
    assert r.warnings == []
    np.testing.assert_allclose(stats, _pycocotools(path, _as_results(json.loads(
        path.read_text()))), atol=1e-6)


def test_jittered_predictions_agree_with_pycocotools(ap10k_sample: Path) -> None:
    path = ap10k_sample / "test_ap10k.json"
    results = _as_results(json.loads(path.read_text()), jitter=0.05)
    ours, r = _ours(path, results, warn=False)
    assert 0.0 < r.stats["AP"] < 1.0
    np.testing.assert_allclose(ours, _pycocotools(path, results), atol=1e-6)


def test_wrong_category_ids_warn_and_halve_ap(ap10k_sample: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = ap10k_sample / "test_ap10k.json"
    results = _as_results(json.loads(path.read_text()), category=1)  # everything 'antelope'
    ours, r = _ours(path, results)
    assert r.stats["AP"] == pytest.approx(0.5)
    assert any("category_id" in w and "halve AP" in w for w in r.warnings)
    assert "WARNING" in capsys.readouterr().err
    np.testing.assert_allclose(ours, _pycocotools(path, results), atol=1e-6)


def _random_set(rng: np.random.Generator, categories: list, tmp: Path) -> tuple[Path, list]:
    """Many images with 0-3 animals of 5 species, crowd and keypoint-less ground truths, several
    predictions per animal (some with another species id), pure false positives, tied scores."""
    images, anns, results = [], [], []
    for i in range(1, 41):
        images.append(dict(id=i, file_name=f"{i:012d}.jpg", width=800, height=600, background=1))
        for _ in range(rng.integers(0, 4)):
            w, h = rng.uniform(10, 400, 2)
            x, y = rng.uniform(0, 300, 2)
            k = np.zeros((17, 3))
            k[:, 0], k[:, 1] = x + rng.uniform(0, w, 17), y + rng.uniform(0, h, 17)
            k[:, 2] = np.where(rng.random(17) < 0.8, 2, 0) * (rng.random() > 0.1)
            k[k[:, 2] == 0, :2] = 0
            anns.append(dict(id=len(anns) + 1, image_id=i, category_id=int(rng.integers(1, 6)),
                             bbox=[x, y, w, h], area=w * h, iscrowd=int(rng.random() < 0.05),
                             num_keypoints=int((k[:, 2] > 0).sum()),
                             keypoints=k.reshape(-1).tolist()))
    for a in anns:
        for _ in range(rng.integers(0, 3)):
            k = np.array(a["keypoints"]).reshape(17, 3)
            k[:, :2] = np.where(k[:, 2:] > 0, k[:, :2], rng.uniform(0, 500, (17, 2)))
            k[:, :2] += rng.normal(0, rng.uniform(0.01, 0.2) * np.sqrt(a["area"]), (17, 2))
            k[:, 2] = rng.random(17)
            cat = a["category_id"] if rng.random() < 0.9 else int(rng.integers(1, 6))
            results.append(dict(image_id=a["image_id"], category_id=cat,
                                keypoints=k.reshape(-1).tolist(),
                                score=float(np.round(rng.random(), 1))))  # ties
    for _ in range(10):
        k = np.ones((17, 3))
        k[:, :2] = rng.uniform(0, 600, (17, 2))
        results.append(dict(image_id=int(rng.integers(1, 41)), category_id=int(rng.integers(1, 6)),
                            keypoints=k.reshape(-1).tolist(), score=float(rng.random())))
    path = tmp / "gt.json"
    path.write_text(json.dumps(dict(info={}, licenses=[], images=images, annotations=anns,
                                    categories=categories)))
    return path, results


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_pycocotools_on_random_sets(seed: int, ap10k_sample: Path,
                                                tmp_path: Path) -> None:
    categories = json.loads((ap10k_sample / "test_ap10k.json").read_text())["categories"]
    path, results = _random_set(np.random.default_rng(seed), categories, tmp_path)
    ours, r = _ours(path, results, warn=False)
    theirs = _pycocotools(path, results)
    assert np.all(theirs[:5] > 0)  # a meaningful, non-trivial case
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    # per-species AP averages to the overall AP (categories with ground truth only)
    assert np.mean(list(r.per_category.values())) == pytest.approx(r.stats["AP"])
    # a results file carrying boxes switches the prediction areas to the boxes, as loadRes does
    for p in results:
        p["bbox"] = [0, 0, 50, 50]
    np.testing.assert_allclose(_ours(path, results, warn=False)[0],
                               _pycocotools(path, results), atol=1e-6)


def test_oks_is_one_for_exact_and_decays() -> None:
    g = np.zeros((1, 17, 3))
    g[0, :, :2] = np.arange(34).reshape(17, 2) * 10
    g[0, :, 2] = 2
    areas, boxes = np.array([10000.0]), np.array([[0.0, 0.0, 400.0, 400.0]])
    assert oks_matrix(g[:, :, :2], g, areas, boxes)[0, 0] == pytest.approx(1.0)
    shifted = g.copy()
    shifted[0, :, 0] += 5
    far = g.copy()
    far[0, :, 0] += 20
    o = oks_matrix(np.concatenate([shifted, far]), g, areas, boxes)[:, 0]
    assert 1.0 > o[0] > o[1] > 0.0


def test_prediction_format_errors_and_tolerance(ap10k_sample: Path) -> None:
    gt = CocoDataset.load(ap10k_sample / "test_ap10k.json")
    with pytest.raises(AP10KError, match="result 0: missing 'score'"):
        evaluate(gt, [{"image_id": 4, "category_id": 1, "keypoints": [0] * 51}])
    with pytest.raises(AP10KError, match="51"):
        evaluate(gt, [{"image_id": 4, "category_id": 1, "keypoints": [0] * 50, "score": 1}])
    with pytest.raises(AP10KError, match="expected a JSON list"):
        evaluate(gt, "nonsense")
    # nested keypoints and an unknown image id are tolerated (the latter with a warning)
    a = gt.annotations[1]
    r = evaluate(gt, [{"image_id": a.image_id, "category_id": a.category_id,
                       "keypoints": a.keypoints.tolist(), "score": 1.0},
                      {"image_id": 12345, "category_id": 1, "keypoints": [0] * 51, "score": 1}],
                 warn=False)
    assert r.per_category[a.category_id] == pytest.approx(1.0)
    assert any("not in the ground truth" in w for w in r.warnings)
