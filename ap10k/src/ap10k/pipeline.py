"""From annotation records to network inputs: top-down samples, the training augmentation of the
recipe, the evaluation crops, and the torch `Dataset` that feeds the training loop.

One `Sample` is one animal instance (its image file, clamped box, keypoints, species). Training
augmentation (flip, half-body, scale, rotation, centre shift) is drawn from a generator seeded by
(seed, epoch, index), so a run is reproducible whatever the number of workers and an exact
`--resume` sees the same crops the uninterrupted run would have seen.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ap10k.dataset import CocoDataset
from ap10k.errors import AP10KError
from ap10k.transforms import (
    affine_matrix,
    apply_affine,
    box_to_center_size,
    clamp_box,
    flip_keypoints,
    half_body_box,
    heatmap_targets,
    invert_affine,
    normalize_image,
    warp_image,
)


@dataclass
class PipelineConfig:
    """Crop geometry, target and augmentation settings; defaults are the paper's recipe."""

    input_size: int = 256
    heatmap_size: int = 64
    sigma: float = 2.0
    padding: float = 1.25
    flip_prob: float = 0.5
    half_body_prob: float = 0.3
    half_body_min_points: int = 8  # half-body only when more keypoints than this are labelled
    scale_factor: float = 0.5  # s = clip(1 + 0.5·N(0,1), 0.5, 1.5)
    rotation_factor: float = 40.0  # r = clip(40·N(0,1), −80, 80) ...
    rotation_prob: float = 0.6  # ... applied with p 0.6
    shift_factor: float = 0.16  # centre += U(−1,1)·0.16·size ...
    shift_prob: float = 0.3  # ... with p 0.3

    @property
    def stride(self) -> float:
        return self.input_size / self.heatmap_size

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass
class Sample:
    """One annotated animal: where to find its image, its clamped box and keypoints (K, 3)."""

    image_path: Path
    image_id: int
    instance_id: int
    category_id: int
    bbox: np.ndarray  # (x, y, w, h), clamped to the image
    area: float
    keypoints: np.ndarray
    score: float = 1.0  # detector/box score (1 for ground-truth boxes)


def samples_from_dataset(data: CocoDataset, image_dir: str | os.PathLike[str],
                         require_keypoints: bool = True) -> list[Sample]:
    """Every instance of `data` as a Sample; with `require_keypoints`, those with no labelled
    keypoint (useless for training) are left out. Missing image files raise AP10KError."""
    image_dir = Path(image_dir)
    images = data.image_index()
    out = []
    for ann in data.annotations:
        if ann.iscrowd or (require_keypoints and not ann.labelled.any()):
            continue
        if ann.bbox[2] <= 0 or ann.bbox[3] <= 0:
            continue
        info = images.get(ann.image_id)
        if info is None:
            raise AP10KError(f"{data.source}: annotation {ann.id} refers to image "
                             f"{ann.image_id}, which is not in images[]")
        out.append(Sample(image_path=image_dir / info.file_name, image_id=info.id,
                          instance_id=ann.id, category_id=ann.category_id,
                          bbox=clamp_box(ann.bbox, info.width, info.height), area=ann.area,
                          keypoints=np.asarray(ann.keypoints, dtype=np.float64)))
    missing = sorted({str(s.image_path) for s in out if not s.image_path.is_file()})
    if missing:
        raise AP10KError(f"{image_dir}: {len(missing)} image files of {data.source} are missing, "
                         f"e.g. {missing[0]}")
    return out


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """An image file as uint8 RGB (H, W, 3); AP10KError when it cannot be decoded."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise AP10KError(f"{path}: cannot read the image (missing or not an image file)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def train_crop(image: np.ndarray, sample: Sample, cfg: PipelineConfig,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The augmented crop (uint8, S×S×3) and its crop-space keypoints (K, 3)."""
    kps = sample.keypoints.copy()
    bbox = sample.bbox
    height, width = image.shape[:2]
    if rng.random() < cfg.flip_prob:
        image = image[:, ::-1]
        kps = flip_keypoints(kps, width)
        bbox = np.array([width - 1 - bbox[0] - bbox[2], bbox[1], bbox[2], bbox[3]])
    center, size = box_to_center_size(bbox, cfg.padding)
    if (int((kps[:, 2] > 0).sum()) > cfg.half_body_min_points
            and rng.random() < cfg.half_body_prob):
        half = half_body_box(kps, rng)
        if half is not None:
            center, size = box_to_center_size(half, padding=1.0)
    if rng.random() < cfg.shift_prob:
        center = center + rng.uniform(-1, 1, 2) * cfg.shift_factor * size
    sf, rf = cfg.scale_factor, cfg.rotation_factor
    size = size * float(np.clip(1 + sf * rng.standard_normal(), 1 - sf, 1 + sf))
    rotation = 0.0
    if rng.random() < cfg.rotation_prob:
        rotation = float(np.clip(rf * rng.standard_normal(), -2 * rf, 2 * rf))
    m = affine_matrix(center, size, rotation, (cfg.input_size, cfg.input_size))
    crop = warp_image(np.ascontiguousarray(image), m, (cfg.input_size, cfg.input_size))
    out = kps.copy()
    out[:, :2] = apply_affine(kps[:, :2], m)
    return crop, out


def eval_matrix(sample: Sample, cfg: PipelineConfig) -> np.ndarray:
    """The test-time crop matrix: padded square box, no augmentation."""
    center, size = box_to_center_size(sample.bbox, cfg.padding)
    return affine_matrix(center, size, 0.0, (cfg.input_size, cfg.input_size))


class TopDownDataset(Dataset):
    """Samples → (image (3,S,S), target (K,h,w), weight (K,), inverse matrix (2,3), index).

    `train=True` applies the augmentation; call `set_epoch` before each epoch so augmentation
    differs between epochs yet is reproducible.
    """

    def __init__(self, samples: list[Sample], cfg: PipelineConfig, train: bool,
                 seed: int = 0) -> None:
        self.samples = samples
        self.cfg = cfg
        self.train = train
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        sample = self.samples[index]
        image = read_image(sample.image_path)
        cfg = self.cfg
        if self.train:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            crop, kps = train_crop(image, sample, cfg, rng)
            m = None
        else:
            m = eval_matrix(sample, cfg)
            crop = warp_image(image, m, (cfg.input_size, cfg.input_size))
            kps = sample.keypoints.copy()
            kps[:, :2] = apply_affine(kps[:, :2], m)
        target, weight = heatmap_targets(kps, (cfg.heatmap_size, cfg.heatmap_size), cfg.stride,
                                         cfg.sigma)
        inverse = invert_affine(m) if m is not None else np.zeros((2, 3))
        return (torch.from_numpy(normalize_image(crop)), torch.from_numpy(target),
                torch.from_numpy(weight), torch.from_numpy(inverse), torch.tensor(index))
