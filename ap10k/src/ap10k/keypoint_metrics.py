"""Per-keypoint analysis of predictions: which joints a model gets wrong, and how.

- Per-keypoint AP: COCO keypoint AP with the OKS computed from that keypoint alone (its own
  sigma; ground truths where it is not labelled are ignored), so a joint that is often far off
  scores low even when the rest of the pose carries the overall OKS.
- Mean OKS contribution: over matched (ground truth, prediction) pairs where the keypoint is
  labelled, the mean of exp(-d² / 2s²k²), the term that keypoint adds to the instance's OKS.
- PCK@α: share of labelled ground-truth keypoints whose matched prediction lies within α × the
  longer side of the ground-truth box (α = 0.05 and 0.1); an animal without a prediction counts
  all its keypoints as misses. Reported per keypoint, per species and per family.

- Error types (after Ronchi & Perona's COCO keypoint analysis), per labelled keypoint of a
  matched animal, from its similarity ks = exp(-d² / 2s²k²): good (ks ≥ 0.85), jitter
  (0.5 ≤ ks < 0.85), left/right swap (ks < 0.5 but ≥ 0.5 against the mirrored keypoint's
  ground truth) and miss (the rest). Swaps with other animals' keypoints are not separated out.

Matching, for all but per-keypoint AP: within each (image, species), predictions in descending
score take the unmatched ground truth with the highest OKS, as COCO's matcher does at threshold 0.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ap10k import keypoints as kp
from ap10k import taxonomy
from ap10k.cocoeval import EvalParams, Prediction, evaluate, oks_matrix, parse_predictions
from ap10k.dataset import CocoDataset

PCK_THRESHOLDS = (0.05, 0.1)
ERROR_TYPES = ("good", "jitter", "swap", "miss")
GOOD_KS, JITTER_KS = 0.85, 0.5


@dataclass
class KeypointReport:
    """Per-keypoint AP, OKS contribution and PCK, and PCK per species and family.

    `pck[alpha]` is indexed like `names`; `pck_species[cid][alpha]` and
    `pck_family[family][alpha]` pool every labelled keypoint of that group.
    """

    names: tuple[str, ...]
    ap: list[float]
    oks_contribution: list[float]
    pck: dict[float, list[float]]
    labelled: list[int]  # labelled ground-truth keypoints per keypoint
    pck_species: dict[int, dict[float, float]]
    pck_family: dict[str, dict[float, float]]
    errors: dict[str, list[float]]  # error type -> share of each keypoint's matched labels

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (keys are strings)."""
        return {
            "per_keypoint": [
                {"keypoint": n, "AP": self.ap[i], "oks_contribution": self.oks_contribution[i],
                 "labelled": self.labelled[i],
                 **{f"PCK@{a:g}": self.pck[a][i] for a in PCK_THRESHOLDS},
                 **{e: self.errors[e][i] for e in ERROR_TYPES}}
                for i, n in enumerate(self.names)],
            "pck_per_species": {
                (taxonomy.species(c).name if taxonomy.is_species(c) else str(c)):
                    {f"PCK@{a:g}": v for a, v in d.items()}
                for c, d in self.pck_species.items()},
            "pck_per_family": {f: {f"PCK@{a:g}": v for a, v in d.items()}
                               for f, d in self.pck_family.items()},
        }

    def format(self) -> str:
        """Markdown tables: per keypoint, then PCK per species and per family."""
        cols = " | ".join(f"PCK@{a:g}" for a in PCK_THRESHOLDS)
        kinds = " | ".join(ERROR_TYPES)
        lines = [f"| keypoint | AP | mean OKS contribution | {cols} | {kinds} | labelled |",
                 "|---|---|---|" + "---|" * (len(PCK_THRESHOLDS) + len(ERROR_TYPES)) + "---|"]
        for i, n in enumerate(self.names):
            pcks = " | ".join(_num(self.pck[a][i]) for a in PCK_THRESHOLDS)
            errs = " | ".join(_num(self.errors[e][i]) for e in ERROR_TYPES)
            lines.append(f"| {n} | {_num(self.ap[i])} | {_num(self.oks_contribution[i])} | "
                         f"{pcks} | {errs} | {self.labelled[i]} |")
        for title, table in (("species", {(taxonomy.species(c).name if taxonomy.is_species(c)
                                           else str(c)): d for c, d in self.pck_species.items()}),
                             ("family", self.pck_family)):
            lines += ["", f"| {title} | {cols} |", "|---|" + "---|" * len(PCK_THRESHOLDS)]
            for name, d in table.items():
                lines.append(f"| {name} | "
                             + " | ".join(_num(d[a]) for a in PCK_THRESHOLDS) + " |")
        return "\n".join(lines)


def _num(x: float) -> str:
    return "—" if np.isnan(x) or x < 0 else f"{x:.3f}"


def _single_keypoint(gt: CocoDataset, preds: list[Prediction], k: int
                     ) -> tuple[CocoDataset, list[Prediction]]:
    """Ground truth and predictions reduced to keypoint `k` (one-keypoint instances)."""
    anns = [replace(a, keypoints=a.keypoints[k:k + 1].copy(),
                    num_keypoints=int(a.keypoints[k, 2] > 0)) for a in gt.annotations]
    return (replace(gt, annotations=anns),
            [replace(p, keypoints=p.keypoints[k:k + 1].copy()) for p in preds])


def _matches(gt: CocoDataset, preds: list[Prediction], sigmas: np.ndarray
             ) -> list[tuple[Any, Prediction | None]]:
    """Each non-crowd ground truth with its matched prediction (None when unmatched)."""
    by_cell: dict[tuple[int, int], list[Prediction]] = {}
    for p in preds:
        by_cell.setdefault((p.image_id, p.category_id), []).append(p)
    gts: dict[tuple[int, int], list[Any]] = {}
    for a in gt.annotations:
        if not a.iscrowd:
            gts.setdefault((a.image_id, a.category_id), []).append(a)
    out: list[tuple[Any, Prediction | None]] = []
    for cell, g in gts.items():
        d = sorted(by_cell.get(cell, []), key=lambda p: -p.score)
        if not d:
            out += [(a, None) for a in g]
            continue
        oks = oks_matrix(np.array([p.keypoints for p in d]),
                         np.array([a.keypoints for a in g]), np.array([a.area for a in g]),
                         np.array([a.bbox for a in g], dtype=np.float64), sigmas)
        taken: dict[int, Prediction] = {}
        for i, p in enumerate(d):
            free = [j for j in range(len(g)) if j not in taken]
            if free:
                j = max(free, key=lambda j: oks[i, j])
                taken[j] = p
        out += [(a, taken.get(j)) for j, a in enumerate(g)]
    return out


def analyse(gt: CocoDataset, predictions: list[Prediction] | Any,
            params: EvalParams | None = None, source: str = "<predictions>") -> KeypointReport:
    """Per-keypoint AP, OKS contribution and PCK of predictions against `gt`."""
    params = params or EvalParams()
    sigmas = np.asarray(params.sigmas, dtype=np.float64)
    n_k = len(sigmas)
    if not (isinstance(predictions, list)
            and all(isinstance(p, Prediction) for p in predictions)):
        predictions, _ = parse_predictions(predictions, source, num_keypoints=n_k)
    ap = []
    for k in range(n_k):
        g_k, p_k = _single_keypoint(gt, predictions, k)
        ap.append(evaluate(g_k, p_k, replace(params, sigmas=sigmas[k:k + 1]),
                           warn=False).stats["AP"])
    contrib = [[] for _ in range(n_k)]  # type: list[list[float]]
    hits = {a: np.zeros(n_k) for a in PCK_THRESHOLDS}
    labelled = np.zeros(n_k, dtype=int)
    kinds = {e: np.zeros(n_k) for e in ERROR_TYPES}
    matched = np.zeros(n_k)
    mirror = kp.flip_permutation() if n_k == kp.NUM_KEYPOINTS else np.arange(n_k)
    group_hits: dict[int, dict[float, float]] = {}
    group_total: dict[int, int] = {}
    for a, p in _matches(gt, predictions, sigmas):
        vis = a.keypoints[:, 2] > 0
        if not vis.any():
            continue
        labelled += vis
        cid = a.category_id
        group_total[cid] = group_total.get(cid, 0) + int(vis.sum())
        group = group_hits.setdefault(cid, {t: 0.0 for t in PCK_THRESHOLDS})
        if p is None:
            continue
        d2 = ((p.keypoints[:, :2] - a.keypoints[:, :2]) ** 2).sum(axis=1)
        sim = np.exp(-d2 / (2.0 * sigmas) ** 2 / (a.area + np.spacing(1)) / 2)
        for k in np.flatnonzero(vis):
            contrib[k].append(float(sim[k]))
        # similarity to the mirrored keypoint's ground truth (scored with its own sigma)
        m = mirror
        d2m = ((p.keypoints[:, :2] - a.keypoints[m, :2]) ** 2).sum(axis=1)
        sim_m = np.exp(-d2m / (2.0 * sigmas[m]) ** 2 / (a.area + np.spacing(1)) / 2)
        swap = vis & vis[m] & (m != np.arange(n_k)) & (sim < JITTER_KS) & (sim_m >= JITTER_KS)
        kinds["good"] += vis & (sim >= GOOD_KS)
        kinds["jitter"] += vis & (sim >= JITTER_KS) & (sim < GOOD_KS)
        kinds["swap"] += swap
        kinds["miss"] += vis & (sim < JITTER_KS) & ~swap
        matched += vis
        size = max(a.bbox[2], a.bbox[3])
        for t in PCK_THRESHOLDS:
            ok = vis & (np.sqrt(d2) <= t * size)
            hits[t] += ok
            group[t] += float(ok.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        pck = {t: list(hits[t] / labelled) for t in PCK_THRESHOLDS}
        errors = {e: list(kinds[e] / matched) for e in ERROR_TYPES}
    pck_species = {c: {t: group_hits[c][t] / group_total[c] for t in PCK_THRESHOLDS}
                   for c in sorted(group_total)}
    fam_hits: dict[str, dict[float, float]] = {}
    fam_total: dict[str, int] = {}
    for c, n in group_total.items():
        if taxonomy.is_species(c):
            f = taxonomy.family_of(c)
            fam_total[f] = fam_total.get(f, 0) + n
            fh = fam_hits.setdefault(f, {t: 0.0 for t in PCK_THRESHOLDS})
            for t in PCK_THRESHOLDS:
                fh[t] += group_hits[c][t]
    pck_family = {f: {t: fam_hits[f][t] / fam_total[f] for t in PCK_THRESHOLDS}
                  for f in sorted(fam_total)}
    names = kp.NAMES if n_k == kp.NUM_KEYPOINTS else tuple(str(i) for i in range(n_k))
    return KeypointReport(
        names=tuple(names), ap=ap,
        oks_contribution=[float(np.mean(c)) if c else float("nan") for c in contrib],
        pck=pck, labelled=[int(x) for x in labelled], pck_species=pck_species,
        pck_family=pck_family, errors=errors)


def plot_errors(report: KeypointReport, path: str | os.PathLike[str]) -> None:
    """A stacked bar per keypoint of its error types (shares of matched labelled keypoints)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ap10k.atomic import atomic_path

    colours = {"good": "#4c9a2a", "jitter": "#f2c14e", "swap": "#d1495b", "miss": "#5b5b5b"}
    fig, ax = plt.subplots(figsize=(10, 4.5))
    x = np.arange(len(report.names))
    bottom = np.zeros(len(x))
    for e in ERROR_TYPES:
        share = np.nan_to_num(np.array(report.errors[e]))
        ax.bar(x, share, bottom=bottom, color=colours[e], label=e)
        bottom += share
    ax.set_xticks(x, report.names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("share of matched labelled keypoints")
    ax.set_ylim(0, 1)
    ax.set_title("keypoint error types (good ks ≥ 0.85, jitter ≥ 0.5, swap = left/right, miss)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
