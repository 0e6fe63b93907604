"""COCO keypoint evaluation (OKS AP/AR) in numpy, with AP-10K's sigmas and per-species results.

This re-implements pycocotools' `COCOeval(iouType="keypoints")` step for step so that the numbers
agree with it (tested to 1e-6), without needing a compiled extension at run time:

- OKS between a prediction and a ground-truth instance uses the ground truth's `area` (AP-10K's
  `use_area`: box w·h), the per-keypoint sigmas, and only the labelled ground-truth keypoints;
  for a ground truth without labelled keypoints the distance to a box twice its size is used.
- Ground truths with `iscrowd` or `num_keypoints == 0` are ignored; area ranges all / medium
  (32²–96²) / large (> 96²) ignore ground truths outside the range, and unmatched predictions whose
  own area (the extent of their keypoints, or their `bbox` when the results carry one) is outside.
- Matching is greedy by score at each OKS threshold 0.50:0.05:0.95, at most 20 predictions per
  image and category; precision is interpolated at 101 recall points.
- With `use_cats` (the benchmark's setting) matching is done per category, i.e. per species, and AP
  is the mean over categories that have ground truth. A prediction whose `category_id` is not its
  animal's species is a false positive in another category and leaves a miss behind, which is why
  wrong category ids roughly halve AP; `evaluate` warns loudly about it.

Per-species AP is the category's own AP; per-family AP is the mean AP of its species that have
ground truth (the same averaging the overall AP does). One deliberate difference: pycocotools marks
a match with the ground truth's id, so a ground truth with id 0 can never be matched there; here it
is matched like any other.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ap10k import keypoints as kp
from ap10k import taxonomy
from ap10k.dataset import CocoDataset
from ap10k.errors import AP10KError

STAT_NAMES = ("AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL")


@dataclass
class EvalParams:
    """Evaluation settings; the defaults are AP-10K's (COCO keypoints with AP-10K sigmas)."""

    sigmas: np.ndarray = field(default_factory=lambda: kp.SIGMAS.copy())
    oks_thresholds: np.ndarray = field(default_factory=lambda: np.linspace(0.5, 0.95, 10))
    recall_thresholds: np.ndarray = field(default_factory=lambda: np.linspace(0.0, 1.0, 101))
    max_dets: int = 20
    area_ranges: tuple[tuple[float, float], ...] = ((0.0, 1e10), (32.0**2, 96.0**2),
                                                    (96.0**2, 1e10))
    use_cats: bool = True


@dataclass
class Prediction:
    """One COCO result: `keypoints` is `(K, 3)`; `area` is what pycocotools' loadRes derives."""

    image_id: int
    category_id: int
    keypoints: np.ndarray
    score: float
    area: float


@dataclass
class EvalResult:
    """Summary numbers (`stats` keyed by STAT_NAMES), AP per category and family, warnings.

    `precision` is `(T, R, K, A)` and `recall` `(T, K, A)` as in pycocotools (maxDets axis
    dropped), -1 where a category has no ground truth; `category_ids` gives the K axis.
    """

    stats: dict[str, float]
    per_category: dict[int, float]
    per_family: dict[str, float]
    gt_counts: dict[int, int]
    warnings: list[str]
    category_ids: list[int]
    precision: np.ndarray
    recall: np.ndarray
    num_images: int
    num_predictions: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (no arrays)."""
        species = []
        for cid, ap in self.per_category.items():
            name = taxonomy.species(cid).name if taxonomy.is_species(cid) else str(cid)
            family = taxonomy.family_of(cid) if taxonomy.is_species(cid) else ""
            species.append({"category_id": cid, "name": name, "family": family,
                            "num_gt": self.gt_counts.get(cid, 0), "AP": ap})
        return {"stats": self.stats, "per_species": species, "per_family": self.per_family,
                "warnings": self.warnings, "num_images": self.num_images,
                "num_predictions": self.num_predictions}

    def summary(self) -> str:
        """Human-readable table of the ten summary numbers."""
        rows = []
        for name in STAT_NAMES:
            rows.append(f"{name:>5s} {self.stats[name]:.4f}")
        return "\n".join(rows)


# ------------------------------------------------------------------------ OKS
def oks_matrix(dts: np.ndarray, gts: np.ndarray, gt_areas: np.ndarray, gt_boxes: np.ndarray,
               sigmas: np.ndarray = kp.SIGMAS) -> np.ndarray:
    """Object keypoint similarity, as pycocotools computes it, of D predictions `(D, K, 2|3)`
    against G ground truths `(G, K, 3)` with their areas `(G,)` and boxes `(G, 4)` → `(D, G)`."""
    dts = np.asarray(dts, dtype=np.float64)
    gts = np.asarray(gts, dtype=np.float64)
    out = np.zeros((len(dts), len(gts)))
    if len(dts) == 0 or len(gts) == 0:
        return out
    variances = (2.0 * np.asarray(sigmas, dtype=np.float64)) ** 2
    xd, yd = dts[:, :, 0], dts[:, :, 1]
    for j, g in enumerate(gts):
        visible = g[:, 2] > 0
        if visible.any():
            dx, dy = xd - g[:, 0], yd - g[:, 1]
        else:  # distance to a box of twice the size around the ground-truth box
            x, y, w, h = gt_boxes[j]
            x0, x1, y0, y1 = x - w, x + 2 * w, y - h, y + 2 * h
            dx = np.maximum(0.0, x0 - xd) + np.maximum(0.0, xd - x1)
            dy = np.maximum(0.0, y0 - yd) + np.maximum(0.0, yd - y1)
        e = (dx**2 + dy**2) / variances / (gt_areas[j] + np.spacing(1)) / 2
        if visible.any():
            e = e[:, visible]
        out[:, j] = np.exp(-e).sum(axis=1) / e.shape[1]
    return out


# ------------------------------------------------------------------------ predictions
def parse_predictions(data: Any, source: str = "<predictions>",
                      num_keypoints: int = kp.NUM_KEYPOINTS) -> tuple[list[Prediction], list[str]]:
    """COCO results (a list of {image_id, category_id, keypoints, score}) → predictions.

    Also accepts a COCO annotation file's object (its `annotations` are used, score 1.0 when
    absent) and keypoints given nested `[[x, y, v], ...]`. Returns the predictions and notes.
    """
    notes: list[str] = []
    records = data
    default_score: float | None = None
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        records, default_score = data["annotations"], 1.0
        notes.append(f"{source}: read as a COCO annotation file; predictions without a score "
                     f"get score 1.0")
    if not isinstance(records, list):
        raise AP10KError(f"{source}: expected a JSON list of COCO keypoint results, "
                         f"got a {type(data).__name__}")
    # pycocotools' loadRes: when the first result has a non-empty bbox, every result's area is its
    # bbox's w·h; otherwise the area of the keypoints' extent.
    use_bbox = bool(records) and isinstance(records[0], dict) and bool(records[0].get("bbox"))
    preds = []
    for i, r in enumerate(records):
        where = f"{source}: result {i}"
        if not isinstance(r, dict):
            raise AP10KError(f"{where}: expected an object, got {type(r).__name__}")
        for key in ("image_id", "category_id", "keypoints"):
            if key not in r:
                raise AP10KError(f"{where}: missing '{key}'")
        if "score" not in r and default_score is None:
            raise AP10KError(f"{where}: missing 'score'")
        try:
            kps = np.asarray(r["keypoints"], dtype=np.float64).reshape(-1)
            score = float(r.get("score", default_score))
            image_id, category_id = int(r["image_id"]), int(r["category_id"])
        except (TypeError, ValueError):
            raise AP10KError(f"{where}: image_id, category_id, keypoints and score must be "
                             f"numbers") from None
        if kps.size != 3 * num_keypoints:
            raise AP10KError(f"{where}: {kps.size} keypoint values, expected "
                             f"{3 * num_keypoints} ({num_keypoints} × x, y, score)")
        if not np.isfinite(kps).all() or not np.isfinite(score):
            raise AP10KError(f"{where}: keypoints and score must be finite")
        kps = kps.reshape(-1, 3)
        if use_bbox:
            bbox = r.get("bbox")
            if not isinstance(bbox, list) or len(bbox) != 4:
                raise AP10KError(f"{where}: the first result has a bbox, so every result needs "
                                 f"[x, y, w, h]")
            area = float(bbox[2]) * float(bbox[3])
        else:
            x, y = kps[:, 0], kps[:, 1]
            area = float((x.max() - x.min()) * (y.max() - y.min()))
        preds.append(Prediction(image_id, category_id, kps, score, area))
    return preds, notes


# ------------------------------------------------------------------------ evaluation
@dataclass
class _Cell:
    """Ground truths and predictions of one (image, category) pair."""

    gt_kps: np.ndarray
    gt_boxes: np.ndarray
    gt_areas: np.ndarray
    gt_ignore: np.ndarray
    gt_crowd: np.ndarray
    dt_scores: np.ndarray
    dt_areas: np.ndarray
    oks: np.ndarray  # (D, G), predictions sorted by score, at most max_dets


def _match(cell: _Cell, area_range: tuple[float, float], params: EvalParams
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """pycocotools' evaluateImg: greedy matching → (dt_matched (T,D), dt_ignore (T,D),
    gt_ignore (G,), dt_scores (D,))."""
    lo, hi = area_range
    gt_ig = cell.gt_ignore | (cell.gt_areas < lo) | (cell.gt_areas > hi)
    order = np.argsort(gt_ig.astype(np.int64), kind="mergesort")  # not-ignored first
    gt_ig, crowd = gt_ig[order], cell.gt_crowd[order]
    oks = cell.oks[:, order] if cell.oks.size else cell.oks
    n_t, n_g, n_d = len(params.oks_thresholds), len(gt_ig), len(cell.dt_scores)
    dt_m = np.zeros((n_t, n_d), dtype=bool)
    dt_ig = np.zeros((n_t, n_d), dtype=bool)
    if oks.size:
        for t, thr in enumerate(params.oks_thresholds):
            gt_m = np.zeros(n_g, dtype=bool)
            for d in range(n_d):
                best, m = min(thr, 1 - 1e-10), -1
                for g in range(n_g):
                    if gt_m[g] and not crowd[g]:
                        continue
                    if m > -1 and not gt_ig[m] and gt_ig[g]:
                        break  # only ignored ground truths left
                    if oks[d, g] < best:
                        continue
                    best, m = oks[d, g], g
                if m == -1:
                    continue
                dt_ig[t, d] = gt_ig[m]
                dt_m[t, d] = True
                gt_m[m] = True
    out_of_range = (cell.dt_areas < lo) | (cell.dt_areas > hi)
    dt_ig |= ~dt_m & out_of_range[None, :]
    return dt_m, dt_ig, gt_ig, cell.dt_scores


def _accumulate(per_image: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
                params: EvalParams) -> tuple[np.ndarray, np.ndarray] | None:
    """pycocotools' accumulate for one (category, area range): → precision (T, R), recall (T,),
    or None when there is no non-ignored ground truth."""
    gt_ig = np.concatenate([e[2] for e in per_image]) if per_image else np.zeros(0, bool)
    n_pos = int((~gt_ig).sum())
    if n_pos == 0:
        return None
    scores = np.concatenate([e[3] for e in per_image])
    order = np.argsort(-scores, kind="mergesort")
    dt_m = np.concatenate([e[0] for e in per_image], axis=1)[:, order]
    dt_ig = np.concatenate([e[1] for e in per_image], axis=1)[:, order]
    tps = np.cumsum(dt_m & ~dt_ig, axis=1).astype(np.float64)
    fps = np.cumsum(~dt_m & ~dt_ig, axis=1).astype(np.float64)
    n_t, n_r = len(params.oks_thresholds), len(params.recall_thresholds)
    precision = np.zeros((n_t, n_r))
    recall = np.zeros(n_t)
    for t in range(n_t):
        tp, fp = tps[t], fps[t]
        n_d = len(tp)
        if n_d == 0:
            continue
        rc = tp / n_pos
        pr = tp / (fp + tp + np.spacing(1))
        recall[t] = rc[-1]
        pr = np.maximum.accumulate(pr[::-1])[::-1]  # precision envelope
        idx = np.searchsorted(rc, params.recall_thresholds, side="left")
        valid = idx < n_d
        precision[t, valid] = pr[idx[valid]]
    return precision, recall


def _mean_valid(x: np.ndarray) -> float:
    valid = x[x > -1]
    return float(valid.mean()) if valid.size else -1.0


def evaluate(gt: CocoDataset, predictions: list[Prediction] | Any,
             params: EvalParams | None = None, source: str = "<predictions>",
             warn: bool = True, strict: bool = False) -> EvalResult:
    """Evaluate predictions (parsed, or raw COCO results JSON) against a ground-truth dataset.

    Warnings (category ids that match no ground truth in their image, predictions on unknown
    images, too many predictions per image) are returned in the result and, with `warn`, also
    printed to stderr, because they silently change AP. With `strict`, an empty prediction list
    or predictions for image ids the ground truth lacks (another split's file, say) are an
    AP10KError instead: both would be scored as misses without anyone noticing.
    """
    params = params or EvalParams()
    k = len(params.sigmas)
    warnings: list[str] = []
    if not (isinstance(predictions, list) and all(isinstance(p, Prediction) for p in predictions)):
        predictions, notes = parse_predictions(predictions, source, num_keypoints=k)
        warnings.extend(notes)
    bad_k = [a.id for a in gt.annotations if len(a.keypoints) != k]
    if bad_k:
        raise AP10KError(f"{gt.source}: annotation {bad_k[0]} does not have {k} keypoints")

    image_ids = sorted({im.id for im in gt.images})
    known_images = set(image_ids)
    unknown = [p for p in predictions if p.image_id not in known_images]
    if strict and not predictions:
        raise AP10KError(f"{source}: holds no predictions, which would score AP 0 against "
                         f"{gt.source}; pass --allow-empty to score it anyway")
    if strict and unknown:
        raise AP10KError(f"{source}: {len(unknown)} of {len(predictions)} predictions are for "
                         f"image ids not in {gt.source} (e.g. {unknown[0].image_id}): another "
                         f"split's predictions? pass --allow-empty to ignore them")
    if unknown:
        warnings.append(
            f"{len(unknown)} of {len(predictions)} predictions are for image ids not in the "
            f"ground truth (e.g. {unknown[0].image_id}); they are ignored")
        predictions = [p for p in predictions if p.image_id in known_images]

    cat_ids = sorted({c.id for c in gt.categories}) if params.use_cats else [-1]
    if params.use_cats:
        warnings.extend(_category_warnings(gt, predictions, set(cat_ids)))

    def key_cat(c: int) -> int:
        return c if params.use_cats else -1

    gts: dict[tuple[int, int], list[Any]] = {}
    for a in gt.annotations:
        gts.setdefault((a.image_id, key_cat(a.category_id)), []).append(a)
    dts: dict[tuple[int, int], list[Prediction]] = {}
    for p in predictions:
        dts.setdefault((p.image_id, key_cat(p.category_id)), []).append(p)
    crowded = sum(1 for v in dts.values() if len(v) > params.max_dets)
    if crowded:
        warnings.append(f"{crowded} (image, category) pairs have more than {params.max_dets} "
                        f"predictions; only the {params.max_dets} best-scored count")

    n_t, n_r, n_k, n_a = (len(params.oks_thresholds), len(params.recall_thresholds),
                          len(cat_ids), len(params.area_ranges))
    precision = -np.ones((n_t, n_r, n_k, n_a))
    recall = -np.ones((n_t, n_k, n_a))
    for ki, cat in enumerate(cat_ids):
        cells = []
        for image_id in image_ids:
            g, d = gts.get((image_id, cat), []), dts.get((image_id, cat), [])
            if g or d:
                cells.append(_cell(g, d, params))
        for ai, area_range in enumerate(params.area_ranges):
            per_image = [_match(c, area_range, params) for c in cells]
            acc = _accumulate(per_image, params)
            if acc is not None:
                precision[:, :, ki, ai], recall[:, ki, ai] = acc

    stats = {
        "AP": _mean_valid(precision[:, :, :, 0]), "AP50": _mean_valid(precision[0, :, :, 0]),
        "AP75": _mean_valid(precision[5, :, :, 0]), "APM": _mean_valid(precision[:, :, :, 1]),
        "APL": _mean_valid(precision[:, :, :, 2]), "AR": _mean_valid(recall[:, :, 0]),
        "AR50": _mean_valid(recall[0, :, 0]), "AR75": _mean_valid(recall[5, :, 0]),
        "ARM": _mean_valid(recall[:, :, 1]), "ARL": _mean_valid(recall[:, :, 2]),
    }
    per_category = {}
    gt_counts: dict[int, int] = {}
    if params.use_cats:
        for ki, cat in enumerate(cat_ids):
            ap = _mean_valid(precision[:, :, ki, 0])
            if ap > -1:
                per_category[cat] = ap
        for a in gt.annotations:
            gt_counts[a.category_id] = gt_counts.get(a.category_id, 0) + 1
    per_family: dict[str, list[float]] = {}
    for cat, ap in per_category.items():
        if taxonomy.is_species(cat):
            per_family.setdefault(taxonomy.family_of(cat), []).append(ap)
    if warn:
        for w in warnings:
            print(f"ap10k: WARNING: {w}", file=sys.stderr)
    return EvalResult(stats=stats, per_category=per_category,
                      per_family={f: float(np.mean(v)) for f, v in sorted(per_family.items())},
                      gt_counts=dict(sorted(gt_counts.items())), warnings=warnings,
                      category_ids=cat_ids, precision=precision, recall=recall,
                      num_images=len(image_ids), num_predictions=len(predictions))


def _cell(gts: list[Any], dts: list[Prediction], params: EvalParams) -> _Cell:
    k = len(params.sigmas)
    order = np.argsort([-p.score for p in dts], kind="mergesort")[: params.max_dets]
    dts = [dts[i] for i in order]
    gt_kps = np.array([a.keypoints for a in gts]).reshape(-1, k, 3)
    gt_boxes = np.array([a.bbox for a in gts], dtype=np.float64).reshape(-1, 4)
    gt_areas = np.array([a.area for a in gts], dtype=np.float64)
    dt_kps = np.array([p.keypoints for p in dts]).reshape(-1, k, 3)
    return _Cell(
        gt_kps=gt_kps, gt_boxes=gt_boxes, gt_areas=gt_areas,
        gt_ignore=np.array([bool(a.iscrowd) or a.num_keypoints == 0 for a in gts], dtype=bool),
        gt_crowd=np.array([bool(a.iscrowd) for a in gts], dtype=bool),
        dt_scores=np.array([p.score for p in dts], dtype=np.float64),
        dt_areas=np.array([p.area for p in dts], dtype=np.float64),
        oks=oks_matrix(dt_kps, gt_kps, gt_areas, gt_boxes, params.sigmas),
    )


def _category_warnings(gt: CocoDataset, predictions: list[Prediction],
                       cat_ids: set[int]) -> list[str]:
    """Loud notes when prediction category ids do not match the ground truth's species."""
    out = []
    gt_cats: dict[int, set[int]] = {}
    for a in gt.annotations:
        gt_cats.setdefault(a.image_id, set()).add(a.category_id)
    foreign = sorted({p.category_id for p in predictions} - cat_ids)
    if foreign:
        out.append(f"prediction category ids {foreign[:10]} are not ground-truth categories; "
                   f"those predictions are ignored entirely")
    wrong = [p for p in predictions
             if p.category_id in cat_ids and p.category_id not in gt_cats.get(p.image_id, set())]
    if wrong and gt.annotations:
        ex = wrong[0]
        truth = sorted(gt_cats.get(ex.image_id, set()))
        out.append(
            f"{len(wrong)} of {len(predictions)} predictions "
            f"({100 * len(wrong) / max(len(predictions), 1):.0f}%) carry a category_id that no "
            f"ground-truth animal in their image has (e.g. image {ex.image_id}: predicted "
            f"{ex.category_id}, ground truth {truth}). AP-10K is evaluated per species, so these "
            f"are false positives and their animals count as missed, which can halve AP: give "
            f"each prediction its instance's species id.")
    return out
