"""Test-time top-down inference: batched crops → heatmaps (with the flip test) → keypoints in the
image → rescored, OKS-NMS'd COCO keypoint results.

`predict_samples` is what validation and `ap10k predict` share; `load_checkpoint` rebuilds a model
and its crop settings from a training checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ap10k.errors import AP10KError
from ap10k.keypoints import SIGMAS
from ap10k.pipeline import PipelineConfig, Sample, TopDownDataset
from ap10k.transforms import decode_heatmaps, flip_heatmaps, heatmap_to_image, rescore


@torch.no_grad()
def predict_heatmaps(model: nn.Module, images: torch.Tensor, flip_test: bool = True,
                     shift: bool = True) -> torch.Tensor:
    """Heatmaps (N, K, h, w) for normalised crops (N, 3, S, S); with `flip_test` averaged with the
    heatmaps of the mirrored crops, mirrored back, pairs swapped and (`shift`) moved one pixel
    right, which compensates the half-stride offset a pixel-index mirror introduces."""
    out = model(images)
    if not flip_test:
        return out
    flipped = model(torch.flip(images, dims=[3]))
    back = torch.from_numpy(flip_heatmaps(flipped.cpu().numpy())).to(out.device)
    if shift:
        back[..., 1:] = back[..., :-1].clone()
    return (out + back) * 0.5


def oks_iou(kps: np.ndarray, others: np.ndarray, area: float, other_areas: np.ndarray,
            sigmas: np.ndarray = SIGMAS, vis_thr: float | None = 0.2) -> np.ndarray:
    """OKS between one pose (K, 3) and others (M, K, 3) as the recipe's OKS-NMS computes it: the
    mean area as scale, only keypoints scored above `vis_thr` in both poses."""
    variances = (2 * sigmas) ** 2
    d2 = ((others[:, :, :2] - kps[None, :, :2]) ** 2).sum(axis=2)
    e = d2 / variances / ((area + other_areas[:, None]) / 2 + np.spacing(1)) / 2
    if vis_thr is None:
        return np.exp(-e).mean(axis=1)
    used = (kps[None, :, 2] > vis_thr) & (others[:, :, 2] > vis_thr)
    return np.where(used.any(axis=1),
                    (np.exp(-e) * used).sum(axis=1) / np.maximum(used.sum(axis=1), 1), 0.0)


def oks_nms(kps: np.ndarray, scores: np.ndarray, areas: np.ndarray, threshold: float = 0.9,
            sigmas: np.ndarray = SIGMAS, vis_thr: float | None = 0.2) -> list[int]:
    """Indices kept by greedy OKS non-maximum suppression (highest score first)."""
    order = list(np.argsort(-np.asarray(scores), kind="stable"))
    keep = []
    while order:
        i, rest = order[0], np.array(order[1:], dtype=np.int64)
        keep.append(int(i))
        if len(rest) == 0:
            break
        overlap = oks_iou(kps[i], kps[rest], areas[i], areas[rest], sigmas, vis_thr)
        order = [int(j) for j in rest[overlap <= threshold]]
    return keep


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def predict_samples(model: nn.Module, samples: list[Sample], cfg: PipelineConfig,
                    batch_size: int = 32, flip_test: bool = True, workers: int = 0,
                    nms_threshold: float | None = 0.9, progress: bool = False
                    ) -> list[dict[str, Any]]:
    """COCO keypoint results for each sample's box (one per sample before NMS).

    Each result carries the sample's `category_id` (AP is computed per species), keypoints
    (x, y, heatmap score), the rescored instance score and `bbox` = the sample's box.
    """
    if not samples:
        return []
    was_training = model.training
    model.eval()
    device = _device_of(model)
    data = TopDownDataset(samples, cfg, train=False)
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=workers)
    results: list[dict[str, Any]] = []
    areas: list[float] = []
    if progress:
        from tqdm import tqdm
        loader = tqdm(loader, desc="predict", unit="batch", leave=False)
    for images, _, _, inverses, indices in loader:
        heatmaps = predict_heatmaps(model, images.to(device), flip_test).float().cpu().numpy()
        coords, maxvals = decode_heatmaps(heatmaps)
        for b, index in enumerate(indices.tolist()):
            s = samples[index]
            xy = heatmap_to_image(coords[b], cfg.stride, inverses[b].numpy())
            kps = np.concatenate([xy, maxvals[b][:, None]], axis=1)
            score = float(rescore(maxvals[b], s.score)[0])
            results.append({"image_id": s.image_id, "category_id": s.category_id,
                            "keypoints": [round(float(v), 3) for v in kps.reshape(-1)],
                            "score": round(score, 6),
                            "bbox": [round(float(v), 2) for v in s.bbox]})
            side = max(s.bbox[2], s.bbox[3]) * cfg.padding
            areas.append(float(side * side))
    model.train(was_training)
    if nms_threshold is None:
        return results
    return _nms_per_image(results, np.array(areas), nms_threshold)


def _nms_per_image(results: list[dict[str, Any]], areas: np.ndarray,
                   threshold: float) -> list[dict[str, Any]]:
    by_image: dict[int, list[int]] = {}
    for i, r in enumerate(results):
        by_image.setdefault(r["image_id"], []).append(i)
    kept: list[int] = []
    for idx in by_image.values():
        kps = np.array([results[i]["keypoints"] for i in idx]).reshape(len(idx), -1, 3)
        scores = np.array([results[i]["score"] for i in idx])
        kept += [idx[j] for j in oks_nms(kps, scores, areas[idx], threshold)]
    return [results[i] for i in sorted(kept)]


# ------------------------------------------------------------------ checkpoints
def load_checkpoint(path: str | os.PathLike[str], device: str | torch.device = "cpu"
                    ) -> tuple[nn.Module, PipelineConfig, dict[str, Any]]:
    """Model (eval mode), crop settings and the raw checkpoint of a training run's `.pt` file."""
    from ap10k.models import build_model

    path = Path(path)
    if not path.is_file():
        raise AP10KError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise AP10KError(f"{path}: not a readable checkpoint ({exc})") from exc
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise AP10KError(f"{path}: not an ap10k training checkpoint (needs 'model' and 'config')")
    config = ckpt["config"]
    model = build_model(config["model"], None, **config.get("model_options", {}))
    from ap10k.train import plain_state_dict

    model.load_state_dict(plain_state_dict(ckpt["model"]))
    pipe = PipelineConfig(**config.get("pipeline", {}))
    return model.to(device).eval(), pipe, ckpt
