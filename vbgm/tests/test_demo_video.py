"""The procedural demo video: valid H.264, its ground truth (cuts, speed) visible in the pixels."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from vbgm.demo_video import make_demo_video
from vbgm.errors import VbgmError


def decode(path: Path) -> tuple[str, np.ndarray]:
    with av.open(str(path)) as c:
        codec = c.streams.video[0].codec_context.name
        frames = [f.to_ndarray(format="rgb24").astype(np.float32) for f in c.decode(video=0)]
    return codec, np.stack(frames)


def test_demo_video_ground_truth(tmp_path: Path) -> None:
    demo = make_demo_video(tmp_path / "demo.mp4", seconds=8, size=(192, 108), fps=20, seed=3)
    codec, frames = decode(demo.path)
    assert codec == "h264"
    assert frames.shape == (160, 108, 192, 3) and demo.n_frames == 160 and demo.seconds == 8
    assert demo.cuts == pytest.approx((53 / 20, 106 / 20))

    # Hard cuts: the two largest frame-to-frame changes, each far above any change inside a scene.
    change = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))
    cut_idx = [round(c * demo.fps) - 1 for c in demo.cuts]  # change[i] is frame i → i+1
    inside = np.delete(change, cut_idx)
    assert change[cut_idx].min() > 5 * inside.max()

    # The shapes speed up and slow down as the ground-truth speed says.
    assert demo.speed.min() < 0.3 and demo.speed.max() > 1.9
    assert np.corrcoef(inside, np.delete(demo.speed[1:], cut_idx))[0, 1] > 0.6


def test_demo_video_is_seeded(tmp_path: Path) -> None:
    a = make_demo_video(tmp_path / "a.mp4", seconds=1, size=(96, 64), fps=10, seed=1)
    b = make_demo_video(tmp_path / "b.mp4", seconds=1, size=(96, 64), fps=10, seed=1)
    c = make_demo_video(tmp_path / "c.mp4", seconds=1, size=(96, 64), fps=10, seed=2)
    fa, fb, fc = (decode(v.path)[1] for v in (a, b, c))
    np.testing.assert_array_equal(fa, fb)
    assert np.abs(fa - fc).mean() > 1.0


def test_demo_video_bad_size(tmp_path: Path) -> None:
    with pytest.raises(VbgmError, match="odd.mp4"):
        make_demo_video(tmp_path / "odd.mp4", seconds=1, size=(101, 64))
    assert not (tmp_path / "odd.mp4").exists()
