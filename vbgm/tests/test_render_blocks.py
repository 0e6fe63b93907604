"""Rendering and muxing in blocks give the audio of the whole-array path (memory flat)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from test_render import SR, _need_fluidsynth, make_score

from vbgm import mux as mux_module
from vbgm import render

SMALL_BLOCK = 10_240  # a multiple of the AAC frame, far below a song: many block boundaries


@pytest.mark.parametrize("backend", ["symusic", "fluidsynth"])
def test_blocked_render_is_the_whole_render(backend: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    if backend == "fluidsynth":
        _need_fluidsynth()
    score = make_score(bars=4, bpm=140)
    whole = render.render_midi(score, SR, backend=backend)
    monkeypatch.setattr(render, "BLOCK", SMALL_BLOCK)
    audio = render.render_to_file(score, tmp_path / "a.f32", SR, backend=backend)
    blocked = audio.to_array()
    assert blocked.shape == whole.shape
    np.testing.assert_allclose(blocked, whole, atol=1e-6)
    assert render.peak_db(whole) > -1.5  # the limiter was at work in both
    assert not (tmp_path / "a.f32.synth.wav").exists()


def test_limit_blocks_matches_limit_peaks_across_block_edges() -> None:
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal((50_000, 2)) * 0.5).astype(np.float32)
    whole = render.limit_peaks(audio, SR, -1.0)
    blocks = list(render.limit_blocks(lambda a, b: audio[a:b], len(audio), SR, -1.0, size=4096))
    np.testing.assert_allclose(np.concatenate(blocks), whole, atol=1e-6)


def _decoded(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1)


def test_mux_of_an_audio_file_is_the_mux_of_the_array(video_root: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Longer than the clip (trimmed, faded) and loud (limited): the same sound track."""
    clip = video_root / "carphone_pristine.mp4"
    rng = np.random.default_rng(1)
    music = np.clip(rng.standard_normal((6 * SR, 2)) * 0.4, -1, 1).astype(np.float32)
    raw = tmp_path / "music.f32"
    raw.write_bytes(music.astype("<f4").tobytes())
    monkeypatch.setattr(mux_module, "BLOCK", SMALL_BLOCK)
    mux_module.mux(clip, music, SR, tmp_path / "array.mp4")
    mux_module.mux(clip, render.AudioFile(raw, len(music), SR), SR, tmp_path / "file.mp4")
    a, b = _decoded(tmp_path / "array.mp4"), _decoded(tmp_path / "file.mp4")
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, atol=1e-4)
