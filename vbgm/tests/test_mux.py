"""Muxing music onto real clips: stream copy vs re-encode, exact audio length, the original sound
kept under the music, and the file-safety rules (input never overwritten, atomic output)."""

from __future__ import annotations

import hashlib
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import symusic
from vbgm.errors import VbgmError
from vbgm.mux import MuxConfig, mux
from vbgm.render import render_midi

SR = 44100


def video_span(path: Path) -> tuple[float, int, str]:
    """(duration from first frame start to last frame end, packet count, codec) of the video."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        rate = s.average_rate or Fraction(25)
        pts = [(p.pts, p.duration or 1 / (rate * s.time_base)) for p in c.demux(s)
               if p.size and p.pts is not None]
        start = min(p for p, _ in pts)
        end = max(p + d for p, d in pts)
        return float((end - start) * s.time_base), len(pts), s.codec_context.name


def audio_info(path: Path) -> tuple[str, float, np.ndarray]:
    """(codec, end time in s of the last audio packet, decoded stereo samples) of the first
    audio stream."""
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        codec = s.codec_context.name
        end = max(p.pts + p.duration for p in c.demux(s) if p.size and p.pts is not None)
        end_s = float(end * s.time_base)
    with av.open(str(path)) as c:
        frames = [f.to_ndarray() for f in c.decode(audio=0)]
    return codec, end_s, np.concatenate(frames, axis=1).T


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def music() -> np.ndarray:
    """12 s of real rendered music: a piano arpeggio over a kick/hi-hat beat, 120 bpm."""
    score = symusic.Score(480)
    piano, drums = symusic.Track("piano", 0, False), symusic.Track("drums", 0, True)
    for eighth in range(48):
        piano.notes.append(symusic.Note(eighth * 240, 240, (60, 64, 67, 72)[eighth % 4], 90))
        drums.notes.append(symusic.Note(eighth * 240, 120, 36 if eighth % 2 == 0 else 42, 100))
    score.tracks.extend([piano, drums])
    return render_midi(score, SR, backend="symusic")


def check_output(out: Path, src: Path) -> tuple[float, np.ndarray]:
    """The common contract: one video and one AAC stream, audio as long as the video ±0.1 s."""
    with av.open(str(out)) as c:
        assert len(c.streams.video) == 1 and len(c.streams.audio) == 1
    duration, _, _ = video_span(out)
    src_duration, _, _ = video_span(src)
    assert abs(duration - src_duration) < 0.05
    codec, audio_s, samples = audio_info(out)
    assert codec == "aac"
    assert abs(audio_s - duration) < 0.1
    assert abs(len(samples) / SR - duration) < 0.1
    return duration, samples


def test_copy_h264_with_music(video_root: Path, tmp_path: Path, music: np.ndarray) -> None:
    src = video_root / "cup.mp4"
    before = digest(src)
    out = tmp_path / "cup.mp4"
    result = mux(src, music, SR, out)
    assert result.video_copied and result.video_codec == "h264"
    assert not result.kept_original_audio
    _, samples = check_output(out, src)
    # Stream copy: same codec, same packets.
    assert video_span(out)[1:] == video_span(src)[1:]
    # The music is there (music is 12 s, the clip 8.1 s: trimmed, with a fade at the very end).
    rms = float(np.sqrt(np.mean(samples[: 7 * SR] ** 2)))
    assert rms > 0.05 and np.abs(samples).max() <= 1.0
    assert digest(src) == before


def test_keep_audio_mixes_the_original_under(video_root: Path, tmp_path: Path) -> None:
    src = video_root / "cup.mp4"
    silence = np.zeros((SR, 2), np.float32)
    kept, dropped = tmp_path / "kept.mp4", tmp_path / "dropped.mp4"
    assert mux(src, silence, SR, kept, keep_audio=True, original_gain_db=-6.0).kept_original_audio
    mux(src, silence, SR, dropped, keep_audio=False)
    _, kept_samples = check_output(kept, src)
    _, dropped_samples = check_output(dropped, src)
    assert np.abs(dropped_samples).max() < 1e-3

    # The kept sound follows the original: loudness envelopes (50 ms blocks) correlate, level -6 dB.
    with av.open(str(src)) as c:
        orig = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1).T
        orig_sr = c.streams.audio[0].sample_rate

    def envelope(x: np.ndarray, sr: int, seconds: float = 8.0) -> np.ndarray:
        block = sr // 20
        x = x[: int(seconds * sr) // block * block].mean(axis=1)
        return np.sqrt((x.reshape(-1, block) ** 2).mean(axis=1))

    a, b = envelope(orig, orig_sr), envelope(kept_samples, SR)
    assert np.corrcoef(a, b)[0, 1] > 0.9
    level = 20 * np.log10(np.sqrt(np.mean(b ** 2)) / np.sqrt(np.mean(a ** 2)))
    assert -8.0 < level < -4.0


def test_reencode_msmpeg4_avi(video_root: Path, tmp_path: Path, music: np.ndarray) -> None:
    src = video_root / "vtest.avi"
    out = tmp_path / "vtest.mp4"
    result = mux(src, music, SR, out, config=MuxConfig(preset="ultrafast"))
    assert not result.video_copied and result.video_codec == "msmpeg4"
    duration, samples = check_output(out, src)
    span, packets, codec = video_span(out)
    assert codec == "h264" and packets == video_span(src)[1]
    # 12 s of music on a 79.5 s clip: padded with silence.
    assert np.abs(samples[int(13 * SR):]).max() < 1e-3
    assert np.sqrt(np.mean(samples[: 11 * SR] ** 2)) > 0.05


def test_no_audio_clip_and_short_music(video_root: Path, tmp_path: Path) -> None:
    src = video_root / "bikes.mp4"
    out = tmp_path / "bikes.mkv"
    t = np.arange(SR) / SR
    beep = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)  # mono, 1 s
    result = mux(src, beep, SR, out, keep_audio=True)
    assert result.video_copied and not result.kept_original_audio
    _, samples = check_output(out, src)
    assert np.sqrt(np.mean(samples[: SR // 2] ** 2)) > 0.1
    assert np.abs(samples[2 * SR:]).max() < 1e-3


def test_forced_reencode_keeps_every_frame(video_root: Path, tmp_path: Path,
                                           music: np.ndarray) -> None:
    src = video_root / "bikes.mp4"
    out = tmp_path / "bikes.mp4"
    result = mux(src, music, SR, out, config=MuxConfig(reencode=True, preset="ultrafast"))
    assert not result.video_copied
    check_output(out, src)
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == video_span(src)[1] == 250


def test_demo_video_roundtrip(tmp_path: Path, music: np.ndarray) -> None:
    from vbgm.demo_video import make_demo_video

    demo = make_demo_video(tmp_path / "demo.mp4", seconds=3, size=(160, 96), fps=20)
    out = tmp_path / "demo_music.mov"
    assert mux(demo.path, music, SR, out).video_copied
    check_output(out, demo.path)
    assert abs(video_span(out)[0] - demo.seconds) < 1e-6


def test_refuses_to_overwrite_input(video_root: Path, tmp_path: Path) -> None:
    src = tmp_path / "in" / "clip.mp4"
    src.parent.mkdir()
    shutil.copy(video_root / "bikes.mp4", src)
    before = digest(src)
    for target in (src, tmp_path / "in" / ".." / "in" / "clip.mp4"):
        with pytest.raises(VbgmError, match="overwrite the input"):
            mux(src, np.zeros((10, 2), np.float32), SR, target)
    link = tmp_path / "link.mp4"
    link.hardlink_to(src)
    with pytest.raises(VbgmError, match="overwrite the input"):
        mux(src, np.zeros((10, 2), np.float32), SR, link)
    assert digest(src) == before


def test_failure_leaves_existing_output(tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 but then nothing useful" * 10)
    out = tmp_path / "out.mp4"
    out.write_bytes(b"previous result")
    with pytest.raises(VbgmError, match="broken.mp4"):
        mux(bad, np.zeros((SR, 2), np.float32), SR, out)
    assert out.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.mp4", "out.mp4"]


def test_bad_requests(video_root: Path, tmp_path: Path) -> None:
    src = video_root / "bikes.mp4"
    z = np.zeros((SR, 2), np.float32)
    with pytest.raises(VbgmError, match="missing.mp4"):
        mux(tmp_path / "missing.mp4", z, SR, tmp_path / "o.mp4")
    with pytest.raises(VbgmError, match="unsupported output type"):
        mux(src, z, SR, tmp_path / "o.avi")
    with pytest.raises(VbgmError, match="12345 Hz"):
        mux(src, z, 12345, tmp_path / "o.mp4")
    with pytest.raises(VbgmError, match="NaN"):
        mux(src, np.full((SR, 2), np.nan, np.float32), SR, tmp_path / "o.mp4")
    assert not any(tmp_path.iterdir())
