"""Top-down geometry as pure functions over numpy arrays: boxes → square crops by affine warp,
Gaussian heatmap targets, the recipe's augmentations, and heatmap decoding.

Coordinates are pixels with integer values at pixel centres (COCO's convention and OpenCV's).
A crop is described by a 2×3 matrix `M` mapping image points to crop points; its inverse maps
decoded crop points back to the image. Heatmaps have `stride = input_size / heatmap_size` crop
pixels per heatmap pixel; heatmap pixel j sits at crop pixel j·stride.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ap10k.keypoints import FLIP_PAIRS, LOWER_BODY, UPPER_BODY, flip_permutation

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


# ------------------------------------------------------------------ boxes and crops
def clamp_box(bbox: tuple[float, float, float, float] | np.ndarray, width: int,
              height: int) -> np.ndarray:
    """(x, y, w, h) clipped to the image (as the official loader does before padding)."""
    x, y, w, h = (float(v) for v in bbox)
    x0, y0 = max(0.0, x), max(0.0, y)
    x1, y1 = min(width - 1.0, x + max(0.0, w - 1)), min(height - 1.0, y + max(0.0, h - 1))
    if x1 < x0 or y1 < y0:  # the box lies outside the image: keep it, unclipped
        return np.array([x, y, w, h], dtype=np.float64)
    return np.array([x0, y0, x1 - x0, y1 - y0], dtype=np.float64)


def box_to_center_size(bbox: np.ndarray | tuple[float, ...], padding: float = 1.25,
                       aspect: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Centre (x, y) and crop size (w, h) in pixels: the box grown to `aspect` (w/h), ×padding."""
    x, y, w, h = (float(v) for v in bbox)
    center = np.array([x + w * 0.5, y + h * 0.5])
    if w > aspect * h:
        h = w / aspect
    else:
        w = h * aspect
    return center, np.array([w, h]) * padding


def affine_matrix(center: np.ndarray, size: np.ndarray, rotation: float,
                  output_size: tuple[int, int]) -> np.ndarray:
    """2×3 matrix taking the image region (centre, size, rotated by `rotation` degrees
    counter-clockwise) onto an `output_size` (w, h) crop."""
    out_w, out_h = output_size
    s = out_w / float(size[0])
    a = math.radians(rotation)
    cos, sin = math.cos(a) * s, math.sin(a) * s
    # p' = s·R(rotation)ᵀ (p − c) + (out_w/2, out_h/2), rows of the matrix below
    linear = np.array([[cos, sin], [-sin, cos]])
    offset = np.array([out_w * 0.5, out_h * 0.5]) - linear @ np.asarray(center, dtype=np.float64)
    return np.hstack([linear, offset[:, None]])


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a 2×3 affine matrix (crop → image)."""
    return cv2.invertAffineTransform(np.asarray(m, dtype=np.float64))


def apply_affine(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    """(…, 2) points mapped through a 2×3 matrix."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ m[:, :2].T + m[:, 2]


def warp_image(image: np.ndarray, m: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
    """The crop: `image` resampled (bilinear, black outside) through `m`."""
    return cv2.warpAffine(image, m, output_size, flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def normalize_image(crop: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) → float32 (3, H, W) with ImageNet mean/std."""
    x = crop.astype(np.float32) / 255.0
    return np.ascontiguousarray(((x - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1))


# ------------------------------------------------------------------ targets
def heatmap_targets(keypoints: np.ndarray, heatmap_size: tuple[int, int], stride: float,
                    sigma: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian targets (K, H, W) and weights (K,) for crop-space keypoints (K, 3).

    The Gaussian is centred on the exact sub-pixel position (j = x / stride); a keypoint that is
    unlabelled (v = 0) or whose 3σ window misses the heatmap gets weight 0 and an empty map.
    """
    w, h = heatmap_size
    k = len(keypoints)
    targets = np.zeros((k, h, w), dtype=np.float32)
    weights = (keypoints[:, 2] > 0).astype(np.float32)
    xs = np.arange(w, dtype=np.float32)
    ys = np.arange(h, dtype=np.float32)[:, None]
    radius = 3 * sigma
    for i in range(k):
        if weights[i] == 0:
            continue
        mx, my = keypoints[i, 0] / stride, keypoints[i, 1] / stride
        if mx + radius < 0 or my + radius < 0 or mx - radius > w - 1 or my - radius > h - 1:
            weights[i] = 0
            continue
        targets[i] = np.exp(-((xs - mx) ** 2 + (ys - my) ** 2) / (2 * sigma**2))
    return targets, weights


# ------------------------------------------------------------------ augmentation primitives
def flip_keypoints(keypoints: np.ndarray, width: int) -> np.ndarray:
    """Keypoints (K, 3) of the horizontally flipped image: x → width − 1 − x, left ↔ right."""
    out = keypoints[flip_permutation()].copy()
    out[:, 0] = np.where(out[:, 2] > 0, width - 1 - out[:, 0], out[:, 0])
    return out


def flip_heatmaps(heatmaps: np.ndarray) -> np.ndarray:
    """(…, K, H, W) heatmaps of a flipped crop turned back: mirror W and swap the flip pairs."""
    out = heatmaps[..., ::-1].copy()
    perm = flip_permutation()
    return out[..., perm, :, :]


def half_body_box(keypoints: np.ndarray, rng: np.random.Generator, padding: float = 1.5,
                  min_points: int = 2) -> np.ndarray | None:
    """A box (x, y, w, h) around the labelled upper or lower body keypoints, or None.

    The upper half is picked with p 0.5 when it has more than `min_points` labelled points,
    otherwise the lower half; the returned box is already grown by `padding` about its centre
    (the recipe's 1.5) and is not further padded by the caller.
    """
    labelled = keypoints[:, 2] > 0
    upper = [i for i in UPPER_BODY if labelled[i]]
    lower = [i for i in LOWER_BODY if labelled[i]]
    chosen = upper if (rng.random() < 0.5 and len(upper) > min_points) else lower
    if len(chosen) < min_points:
        chosen = upper if len(upper) >= min_points else []
    if not chosen:
        return None
    pts = keypoints[chosen, :2]
    (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    w, h = max(x1 - x0, 1.0) * padding, max(y1 - y0, 1.0) * padding
    return np.array([cx - w / 2, cy - h / 2, w, h])


# ------------------------------------------------------------------ decoding
def decode_heatmaps(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Argmax + quarter-pixel offset towards the higher neighbour.

    heatmaps (N, K, H, W) → coordinates (N, K, 2) in heatmap pixels and peak values (N, K).
    """
    n, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(n, k, -1)
    idx = flat.argmax(axis=2)
    maxvals = np.take_along_axis(flat, idx[..., None], axis=2)[..., 0]
    x = (idx % w).astype(np.int64)
    y = (idx // w).astype(np.int64)
    coords = np.stack([x, y], axis=-1).astype(np.float64)
    ni, ki = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")
    xl, xr = np.clip(x - 1, 0, w - 1), np.clip(x + 1, 0, w - 1)
    yu, yd = np.clip(y - 1, 0, h - 1), np.clip(y + 1, 0, h - 1)
    dx = heatmaps[ni, ki, y, xr] - heatmaps[ni, ki, y, xl]
    dy = heatmaps[ni, ki, yd, x] - heatmaps[ni, ki, yu, x]
    inner_x = (x > 0) & (x < w - 1)
    inner_y = (y > 0) & (y < h - 1)
    coords[..., 0] += np.where(inner_x, np.sign(dx) * 0.25, 0.0)
    coords[..., 1] += np.where(inner_y, np.sign(dy) * 0.25, 0.0)
    coords[maxvals <= 0] = 0.0  # a dead channel: no location
    return coords, maxvals


def heatmap_to_image(coords: np.ndarray, stride: float, inverse: np.ndarray) -> np.ndarray:
    """Heatmap coordinates (…, K, 2) of one crop → image coordinates via the crop's inverse."""
    return apply_affine(coords * stride, inverse)


def rescore(maxvals: np.ndarray, box_score: float | np.ndarray = 1.0,
            threshold: float = 0.2) -> np.ndarray:
    """Instance score = box score × mean of the keypoint scores above `threshold` (per row)."""
    maxvals = np.atleast_2d(maxvals)
    above = maxvals > threshold
    mean = np.where(above.any(axis=1),
                    (maxvals * above).sum(axis=1) / np.maximum(above.sum(axis=1), 1), 0.0)
    return mean * box_score


__all__ = [
    "FLIP_PAIRS", "IMAGENET_MEAN", "IMAGENET_STD", "affine_matrix", "apply_affine",
    "box_to_center_size", "clamp_box", "decode_heatmaps", "flip_heatmaps", "flip_keypoints",
    "half_body_box", "heatmap_targets", "heatmap_to_image", "invert_affine", "normalize_image",
    "rescore", "warp_image",
]
