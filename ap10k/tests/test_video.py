"""Video prediction on a real clip (overlay duration = input's), track files, and the One-Euro
filter's effect on jitter on a synthetic moving animal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ap10k.cli import main
from ap10k.video import OneEuro, jitter

av = pytest.importorskip("av")


@pytest.fixture(scope="module")
def small_checkpoint(small_checkpoint_file) -> Path:
    return small_checkpoint_file(16, 64)


def _clip(data_root: Path) -> Path:
    clip = data_root / "videos" / "carphone_pristine.mp4"
    if not clip.is_file():
        pytest.skip(f"{clip} not found")
    return clip


def _duration_and_frames(path: Path) -> tuple[float, int]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        n = sum(1 for _ in c.decode(s))
        return n / float(s.average_rate), n


def test_whole_frame_video_jsonl_and_overlay(data_root: Path, small_checkpoint: Path,
                                            tmp_path: Path) -> None:
    clip = _clip(data_root)
    out = tmp_path / "out"
    assert main(["predict", str(clip), "--checkpoint", str(small_checkpoint), "--whole-frame",
                 "--no-flip", "--smooth", "-o", str(out)]) == 0
    lines = (out / "carphone_pristine.jsonl").read_text().splitlines()
    duration, frames = _duration_and_frames(clip)
    assert len(lines) == frames == 120
    first = json.loads(lines[0])
    assert first["frame"] == 0 and len(first["poses"]) == 1
    assert first["poses"][0]["bbox"] == [0.0, 0.0, 175.0, 143.0]  # clamped to the last pixel
    assert len(first["poses"][0]["keypoints"]) == 51
    overlay_duration, overlay_frames = _duration_and_frames(out / "carphone_pristine_pose.mp4")
    assert overlay_frames == frames and overlay_duration == pytest.approx(duration, abs=1e-6)


def test_track_file_boxes_and_errors(data_root: Path, small_checkpoint: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    clip = _clip(data_root)
    track = tmp_path / "track.json"
    # a box that moves right over the first 10 frames, none afterwards; two on frame 0
    entries = [{"frame": f, "bbox": [10 + 5 * f, 20, 60, 50], "track_id": 1} for f in range(10)]
    entries.append({"frame": 0, "bbox": [100, 60, 40, 40], "track_id": 2, "category_id": 24})
    track.write_text(json.dumps(entries))
    out = tmp_path / "out"
    assert main(["predict", str(clip), "--checkpoint", str(small_checkpoint), "--boxes",
                 str(track), "--no-flip", "-o", str(out)]) == 0
    records = [json.loads(x) for x in (out / "carphone_pristine.jsonl").read_text().splitlines()]
    assert [len(r["poses"]) for r in records[:11]] == [2] + [1] * 9 + [0]
    assert records[3]["poses"][0]["bbox"] == [25.0, 20.0, 59.0, 49.0]  # as clamp_box gives
    assert records[0]["poses"][1]["category_id"] == 24
    capsys.readouterr()
    assert main(["predict", str(clip), "--checkpoint", str(small_checkpoint), "-o",
                 str(out)]) == 2
    assert "give either --boxes track.json or --whole-frame" in capsys.readouterr().err
    track.write_text(json.dumps([{"frame": -1, "bbox": [0, 0, 1, 1]}]))
    assert main(["predict", str(clip), "--checkpoint", str(small_checkpoint), "--boxes",
                 str(track), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"ap10k: error: {track}: entry 0 needs 'frame' (≥ 0) and 'bbox': [x, y, w, h]\n"


def moving_animal(ap10k_sample: Path, speed: float = 120.0, frames: int = 150,
                  fps: float = 30.0, noise: float = 2.0, seed: int = 0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The real jaguar's 17 keypoints walking at `speed` px/s along a bobbing path (truth), and
    the same with Gaussian per-frame detection noise of `noise` pixels (a model's jitter)."""
    ann = json.loads((ap10k_sample / "test_ap10k.json").read_text())["annotations"]
    pose = np.array(ann[-1]["keypoints"], dtype=float).reshape(17, 3)[:, :2]
    t = np.arange(frames) / fps
    path = np.stack([speed * t, 15 * np.sin(2 * np.pi * 0.5 * t)], axis=1)
    truth = pose[None] + path[:, None, :]
    noisy = truth + np.random.default_rng(seed).normal(0, noise, truth.shape)
    return truth, noisy


def _error(track: np.ndarray, truth: np.ndarray) -> float:
    """Mean keypoint distance to the truth after the filter's first second."""
    return float(np.linalg.norm(track[30:] - truth[30:], axis=-1).mean())


@pytest.mark.parametrize("speed, max_ratio", [(120.0, 0.6), (10.0, 0.4)])
def test_one_euro_reduces_jitter_of_a_moving_animal(ap10k_sample: Path, speed: float,
                                                    max_ratio: float) -> None:
    truth, noisy = moving_animal(ap10k_sample, speed)
    smooth = OneEuro().filter(noisy, 30.0)
    assert jitter(truth) < 0.15  # the motion itself is smooth
    assert jitter(smooth) < max_ratio * jitter(noisy)
    # and it follows the animal: the error to the truth drops rather than lagging behind
    assert _error(smooth, truth) < _error(noisy, truth)
