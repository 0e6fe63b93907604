"""MIDI → audio with both synthesisers, loudness normalisation, limiter, fades and WAV files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import symusic
from hypothesis import given, settings
from hypothesis import strategies as st
from vbgm.errors import VbgmError

from vbgm import render

SR = 44100
TPQ = 480


def _need_fluidsynth() -> None:
    if render.fluidsynth_program() and render.system_soundfont():
        return
    if os.environ.get("CI") == "true":
        pytest.fail("fluidsynth and a GM SoundFont must be installed in CI")
    pytest.skip("fluidsynth or a GM SoundFont is not installed")


def make_score(bars: int = 2, bpm: float = 120.0, drums: bool = True, piano: bool = True
               ) -> symusic.Score:
    """A small 4/4 song: a piano chord per beat (C, F, G, C …) and a kick/snare/hi-hat groove."""
    score = symusic.Score(TPQ)
    score.tempos.append(symusic.Tempo(0, bpm))
    if piano:
        track = symusic.Track("piano", 0, False)
        roots = [60, 65, 67, 60]
        for beat in range(4 * bars):
            for step in (0, 4, 7):
                track.notes.append(symusic.Note(beat * TPQ, TPQ, roots[beat % 4] + step, 80))
        score.tracks.append(track)
    if drums:
        track = symusic.Track("drums", 0, True)
        for eighth in range(8 * bars):
            t = eighth * TPQ // 2
            track.notes.append(symusic.Note(t, TPQ // 4, 42, 70))  # closed hi-hat
            if eighth % 4 == 0:
                track.notes.append(symusic.Note(t, TPQ // 4, 36, 110))  # kick
            elif eighth % 4 == 2:
                track.notes.append(symusic.Note(t, TPQ // 4, 38, 100))  # snare
        score.tracks.append(track)
    return score


@pytest.fixture(scope="module")
def midi_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("midi") / "song.mid"
    make_score().dump_midi(str(path))
    return path


@pytest.mark.parametrize("backend", ["fluidsynth", "symusic"])
def test_render_both_backends(backend: str, midi_file: Path) -> None:
    if backend == "fluidsynth":
        _need_fluidsynth()
    audio = render.render_midi(midi_file, SR, backend=backend)
    assert audio.dtype == np.float32 and audio.ndim == 2 and audio.shape[1] == 2
    music_s = 4.0  # 2 bars at 120 bpm
    assert music_s <= len(audio) / SR <= music_s + render.RenderConfig().max_tail_s + 0.05
    # Loud enough and at the target, never above the limiter's ceiling.
    peak = float(np.abs(audio).max())
    rms_db = render.loudness_db(audio, SR)
    print(f"{backend}: {len(audio) / SR:.2f} s, gated RMS {rms_db:.1f} dBFS, "
          f"peak {render.peak_db(audio):.2f} dBFS")
    assert peak <= 1.0 and render.peak_db(audio) <= -1.0 + 1e-4
    assert -18.0 <= rms_db <= -15.0
    # Sound all the way through the music, in both channels.
    for second in range(4):
        chunk = audio[second * SR:(second + 1) * SR]
        assert np.sqrt(np.mean(chunk ** 2, axis=0)).min() > 0.01


@pytest.mark.parametrize("backend", ["fluidsynth", "symusic"])
def test_drums_go_to_the_drum_kit(backend: str) -> None:
    """A hi-hat on the drum channel is noise-like; the same key on the piano is tonal."""
    if backend == "fluidsynth":
        _need_fluidsynth()

    def flatness(audio: np.ndarray) -> float:
        x = audio[:4096].mean(axis=1) * np.hanning(4096)
        power = np.abs(np.fft.rfft(x))[10:] ** 2 + 1e-20
        return float(np.exp(np.mean(np.log(power))) / np.mean(power))

    def one_note(is_drum: bool) -> symusic.Score:
        score = symusic.Score(TPQ)
        track = symusic.Track("x", 0, is_drum)
        track.notes.append(symusic.Note(0, TPQ, 42, 100))
        score.tracks.append(track)
        return score

    hat = flatness(render.render_midi(one_note(True), SR, backend=backend))
    key = flatness(render.render_midi(one_note(False), SR, backend=backend))
    print(f"spectral flatness: hi-hat {hat:.3f}, piano {key:.2e}")
    assert hat > 0.01 > 0.001 > key


def test_score_and_file_render_alike(midi_file: Path) -> None:
    from_file = render.render_midi(midi_file, SR, backend="symusic")
    from_score = render.render_midi(make_score().to("second"), SR, backend="symusic")
    assert from_file.shape == from_score.shape
    np.testing.assert_allclose(from_file, from_score, atol=1e-5)


def test_sample_rate_is_honoured(midi_file: Path) -> None:
    audio = render.render_midi(midi_file, 22050, backend="symusic")
    assert abs(len(audio) / 22050 - 4.0) < 0.1


def test_choose_backend() -> None:
    backend, sf = render.choose_backend("symusic")
    assert backend == "symusic" and sf.name == "TimGM6mb.sf2" and sf.is_file()
    auto, _ = render.choose_backend("auto")
    has_fluid = render.fluidsynth_program() is not None and render.system_soundfont() is not None
    assert auto == ("fluidsynth" if has_fluid else "symusic")
    with pytest.raises(VbgmError, match="unknown audio backend"):
        render.choose_backend("timidity")
    with pytest.raises(VbgmError, match="nope.sf2"):
        render.choose_backend("symusic", "/nope.sf2")


def test_soundfont_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    sf = render.bundled_soundfont()
    assert sf is not None
    monkeypatch.setenv("VBGM_SOUNDFONT", str(sf))
    assert render.system_soundfont() == sf
    monkeypatch.setenv("VBGM_SOUNDFONT", str(tmp_path / "missing.sf2"))
    assert render.system_soundfont() != tmp_path / "missing.sf2"


def test_bad_midi_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"MThd this is not midi")
    with pytest.raises(VbgmError, match="bad.mid"):
        render.render_midi(bad, backend="symusic")
    with pytest.raises(VbgmError, match="missing.mid"):
        render.render_midi(tmp_path / "missing.mid", backend="symusic")


def test_empty_score_renders_silence() -> None:
    audio = render.render_midi(symusic.Score(TPQ), SR, backend="symusic")
    assert audio.shape[1] == 2 and not np.any(audio)


# --- loudness, limiter, fades ---------------------------------------------------------------


def test_normalize_reaches_target_without_limiting() -> None:
    t = np.arange(2 * SR) / SR
    quiet = (0.01 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[:, None].repeat(2, axis=1)
    out = render.normalize(quiet, SR, target_db=-20.0, ceiling_db=-1.0)
    assert abs(render.loudness_db(out, SR) - -20.0) < 0.05
    # A sine at -20 dB RMS peaks at -17 dB: the limiter must leave it alone (pure gain).
    ratio = out[SR // 3] / quiet[SR // 3]
    np.testing.assert_allclose(out, quiet * ratio, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(gain_db=st.floats(-30, 40), seed=st.integers(0, 2 ** 16), ceiling_db=st.floats(-12, -0.1))
def test_limiter_never_exceeds_ceiling(gain_db: float, seed: int, ceiling_db: float) -> None:
    rng = np.random.default_rng(seed)
    audio = rng.normal(0, 0.1, (SR // 4, 2)).astype(np.float32)
    audio[rng.integers(0, len(audio), 5)] *= 8  # transients
    audio *= np.float32(render.db_to_gain(gain_db))
    out = render.limit_peaks(audio, SR, ceiling_db)
    assert render.peak_db(out) <= ceiling_db + 1e-4
    # Only ever turns down, and leaves a signal already under the ceiling unchanged.
    assert np.all(np.abs(out) <= np.abs(audio) + 1e-7)
    if render.peak_db(audio) <= ceiling_db:
        np.testing.assert_array_equal(out, audio)


def test_running_min_and_mean_are_scipys_filters() -> None:
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    rng = np.random.default_rng(0)
    for n, width in ((1000, 441), (50, 441), (7, 3), (300, 1), (2000, 63)):
        x = rng.random(n)
        want_min = minimum_filter1d(x, width, mode="nearest")
        want_mean = uniform_filter1d(x, width, mode="nearest")
        assert np.array_equal(render.running_min(x, width), want_min)
        assert np.allclose(render.running_mean(x, width), want_mean, atol=1e-12)


def test_limiter_is_smooth_around_a_spike() -> None:
    audio = np.full((SR, 2), 0.1, np.float32)
    audio[SR // 2] = 2.0
    out = render.limit_peaks(audio, SR, -1.0, window_s=0.005)
    gain = out[:, 0] / audio[:, 0]
    assert gain[SR // 2 - 600] == pytest.approx(1.0)  # untouched 14 ms before
    assert np.abs(np.diff(gain)).max() < 0.01  # a ramp over ~10 ms, not a jump


def test_fade() -> None:
    audio = np.ones((SR, 2), np.float32)
    out = render.fade(audio, SR, in_s=0.1, out_s=0.2)
    assert out[0, 0] == 0.0 and out[-1, 1] == 0.0
    assert np.all(np.diff(out[: SR // 10, 0]) >= 0) and np.all(np.diff(out[-SR // 5:, 0]) <= 0)
    np.testing.assert_array_equal(out[SR // 10: -SR // 5], 1.0)
    assert audio.min() == 1.0  # input untouched


def test_silence_stays_silent() -> None:
    silence = np.zeros((SR, 2), np.float32)
    assert render.loudness_db(silence, SR) == float("-inf")
    np.testing.assert_array_equal(render.normalize(silence, SR), silence)


# --- WAV files -------------------------------------------------------------------------------


def test_wav_roundtrip_and_atomic(tmp_path: Path, midi_file: Path) -> None:
    audio = render.render_midi(midi_file, SR, backend="symusic")
    path = tmp_path / "song.wav"
    render.write_wav(path, audio, SR)
    back, sr = render.read_wav(path)
    assert sr == SR and back.shape == audio.shape
    assert np.abs(back - audio).max() <= 1.0 / 32767 + 1e-6
    before = path.read_bytes()
    bad = audio.copy()
    bad[10] = np.nan
    with pytest.raises(VbgmError, match="song.wav"):
        render.write_wav(path, bad, SR)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song.wav"]
