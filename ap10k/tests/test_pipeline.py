"""Top-down pipeline: crop geometry, targets, augmentation, decoding, flip test, NMS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ap10k.dataset import CocoDataset
from ap10k.errors import AP10KError
from ap10k.inference import oks_nms, predict_heatmaps
from ap10k.keypoints import flip_permutation
from ap10k.pipeline import PipelineConfig, Sample, samples_from_dataset, train_crop
from ap10k.transforms import (
    affine_matrix,
    apply_affine,
    box_to_center_size,
    decode_heatmaps,
    flip_heatmaps,
    heatmap_targets,
    heatmap_to_image,
    invert_affine,
    rescore,
    warp_image,
)
from torch import nn


def test_keypoint_warped_and_decoded_lands_within_half_a_heatmap_pixel() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        box = np.array([*rng.uniform(0, 400, 2), *rng.uniform(20, 300, 2)])
        center, size = box_to_center_size(box, 1.25)
        rotation = float(rng.uniform(-80, 80))
        m = affine_matrix(center, size, rotation, (256, 256))
        kps = np.zeros((17, 3))
        kps[:, :2] = box[:2] + rng.uniform(0, 1, (17, 2)) * box[2:]
        kps[:, 2] = 2
        crop_kps = kps.copy()
        crop_kps[:, :2] = apply_affine(kps[:, :2], m)
        # rotated box corners can leave the padded crop; the claim is for points inside it
        inside = ((crop_kps[:, :2] >= 0) & (crop_kps[:, :2] <= 252)).all(axis=1)
        target, weight = heatmap_targets(crop_kps, (64, 64), 4.0, 2.0)
        assert weight.all()
        coords, maxvals = decode_heatmaps(target[None])
        back = heatmap_to_image(coords[0], 4.0, invert_affine(m))
        hm_pixel = size[0] / 64  # one heatmap pixel in image pixels
        err = np.linalg.norm(back - kps[:, :2], axis=1)[inside]
        assert inside.sum() >= 10
        assert err.max() < 0.5 * hm_pixel, (err.max(), hm_pixel)
        assert maxvals[0, inside].min() > 0.9


def test_image_warp_and_keypoint_transform_agree() -> None:
    image = np.zeros((300, 400, 3), np.uint8)
    point = np.array([250.0, 120.0])
    image[120, 250] = 255
    m = affine_matrix(np.array([240.0, 140.0]), np.array([120.0, 120.0]), 30.0, (256, 256))
    crop = warp_image(image, m, (256, 256)).astype(float).sum(axis=2)
    y, x = np.unravel_index(crop.argmax(), crop.shape)
    assert np.linalg.norm(apply_affine(point, m) - (x, y)) <= 1.0


def test_targets_weight_unlabelled_and_far_outside_keypoints_zero() -> None:
    kps = np.array([[10.0, 10.0, 2.0], [10.0, 10.0, 0.0], [-40.0, 20.0, 2.0], [300, 20, 2]])
    target, weight = heatmap_targets(kps, (64, 64), 4.0, 2.0)
    assert weight.tolist() == [1.0, 0.0, 0.0, 0.0]
    assert target[0].max() == pytest.approx(np.exp(-(0.5**2 + 0.5**2) / 8), rel=1e-5)
    assert not target[1:].any()


def _dot_image(points: dict[int, tuple[int, int]], shape: tuple[int, int] = (240, 320)
               ) -> np.ndarray:
    image = np.zeros((*shape, 3), np.uint8)
    for i, (x, y) in points.items():
        image[y - 1:y + 2, x - 1:x + 2] = (255, 0, 0) if i == 0 else (0, 255, 0)
    return image


def test_augmented_crop_moves_keypoints_with_the_pixels_and_swaps_sides() -> None:
    kps = np.zeros((17, 3))
    kps[0] = (100, 80, 2)  # left_eye: a red dot
    kps[12] = (200, 170, 2)  # left_knee: a green dot
    sample = Sample(Path("x.jpg"), 1, 1, 1, np.array([60.0, 50.0, 200.0, 150.0]), 3e4, kps)
    cfg = PipelineConfig(input_size=128, heatmap_size=32, flip_prob=1.0, half_body_prob=0.0,
                         rotation_prob=1.0, shift_prob=1.0)
    image = _dot_image({0: (100, 80), 12: (200, 170)})
    for seed in range(5):
        crop, out = train_crop(image, sample, cfg, np.random.default_rng(seed))
        # after a flip the left eye's dot is the right eye (1), the left knee the right knee (15)
        assert out[0, 2] == 0 and out[12, 2] == 0 and out[1, 2] == 2 and out[15, 2] == 2
        for k, channel in ((1, 0), (15, 1)):
            x, y = out[k, :2]
            if 2 <= x < 126 and 2 <= y < 126:
                win = crop[int(y) - 2:int(y) + 3, int(x) - 2:int(x) + 3, channel]
                assert win.max() > 60, (seed, k)


def test_half_body_crop_frames_one_half() -> None:
    kps = np.zeros((17, 3))
    kps[:, 2] = 2
    kps[:, 0] = np.linspace(50, 300, 17)
    kps[:, 1] = 100
    sample = Sample(Path("x.jpg"), 1, 1, 1, np.array([40.0, 50.0, 270.0, 100.0]), 27e3, kps)
    cfg = PipelineConfig(input_size=64, heatmap_size=16, flip_prob=0, half_body_prob=1.0,
                         scale_factor=0, rotation_prob=0, shift_prob=0)
    image = np.zeros((240, 360, 3), np.uint8)
    inside_counts = set()
    for seed in range(6):
        _, out = train_crop(image, sample, cfg, np.random.default_rng(seed))
        inside = (out[:, 0] >= 0) & (out[:, 0] < 64)
        inside_counts.add(int(inside.sum()))
    assert max(inside_counts) < 17  # the crop no longer frames the whole animal


class DotOracle(nn.Module):
    """A stand-in pose network that finds the brightest crop pixel exactly and answers with a
    Gaussian there on every channel (heatmap pixel j at crop pixel 4j), to test the flip test."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = []
        for img in x:
            s = img.sum(dim=0)
            y, xx = divmod(int(s.argmax()), s.shape[1])
            kps = np.tile([[xx, y, 2.0]], (17, 1))
            out.append(heatmap_targets(kps, (s.shape[1] // 4, s.shape[0] // 4), 4.0)[0])
        return torch.from_numpy(np.stack(out))


def test_flip_test_one_pixel_shift_reduces_the_mirror_offset() -> None:
    oracle = DotOracle()
    errors = {True: [], False: []}
    for x in range(20, 236, 7):
        img = torch.zeros(1, 3, 64 * 4, 64 * 4)
        img[0, :, 100, x] = 1.0
        for shift in (True, False):
            hm = predict_heatmaps(oracle, img, flip_test=True, shift=shift).numpy()
            coords, _ = decode_heatmaps(hm)
            errors[shift].append(abs(coords[0, 0, 0] - x / 4))
    assert np.mean(errors[True]) < np.mean(errors[False])
    assert np.mean(errors[True]) < 0.3


def test_flip_test_is_mirror_symmetric_on_a_mirror_symmetric_input() -> None:
    from ap10k.models import build_model

    torch.manual_seed(0)
    model = build_model("resnet18", deconv_channels=32).eval()
    x = torch.randn(2, 3, 64, 64)
    x = (x + torch.flip(x, dims=[3])) / 2  # symmetric image
    hm = predict_heatmaps(model, x, flip_test=True, shift=False).numpy()
    tol = 1e-4 * np.abs(hm).max()
    np.testing.assert_allclose(flip_heatmaps(hm), hm, atol=tol)
    plain = model(x).detach().numpy()
    assert not np.allclose(flip_heatmaps(plain), plain, atol=tol)  # the model alone is not


def test_flip_heatmaps_swaps_pairs_and_mirrors() -> None:
    hm = np.zeros((17, 4, 5))
    hm[0, 1, 0] = 1  # left_eye at x=0
    out = flip_heatmaps(hm)
    assert out[1, 1, 4] == 1 and out[0].sum() == 0
    assert (flip_permutation()[flip_permutation()] == np.arange(17)).all()


def test_rescore_and_oks_nms() -> None:
    maxvals = np.array([[0.9, 0.1, 0.5] + [0.0] * 14])
    assert rescore(maxvals, 0.5)[0] == pytest.approx(0.5 * 0.7)
    base = np.zeros((17, 3))
    base[:, 0] = np.arange(17) * 10
    base[:, 1] = 50
    base[:, 2] = 0.9
    near = base.copy()
    near[:, :2] += 0.5
    far = base.copy()
    far[:, 0] += 300
    kps = np.stack([near, base, far])
    keep = oks_nms(kps, np.array([0.5, 0.9, 0.8]), np.full(3, 200.0**2), 0.9)
    assert keep == [1, 2]  # the near-duplicate of the best pose is suppressed


def test_samples_from_the_real_sample_are_clamped_and_missing_images_refused(
        ap10k_sample: Path, tmp_path: Path) -> None:
    ds = CocoDataset.load(ap10k_sample / "test_ap10k.json")
    samples = samples_from_dataset(ds, ap10k_sample)
    assert {s.category_id for s in samples} == {1, 26}
    for s in samples:
        info = ds.image_index()[s.image_id]
        assert s.bbox[0] >= 0 and s.bbox[0] + s.bbox[2] <= info.width
        assert s.bbox[1] + s.bbox[3] <= info.height
    with pytest.raises(AP10KError, match="missing"):
        samples_from_dataset(ds, tmp_path)
