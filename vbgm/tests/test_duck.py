"""Ducking (`--keep-audio --duck`): the music is lowered under speech, measured on the output.

The speech is real synthesised speech (Debian's espeak-ng) muxed over a real clip; the music's
level in the output is measured by projecting the decoded output onto the music alone (the --wav
render) and the original sound, window by window, so the speech itself cannot be mistaken for
music.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
from scipy.signal import resample_poly
from vbgm.cli import main
from vbgm.duck import DuckConfig, duck_curve
from vbgm.mux import mux
from vbgm.render import read_wav

SR = 44100
SPEECH_AT = 4.0  # s into the 10 s clip
WIN = 4410  # 100 ms measurement windows


def _decode(path: Path) -> np.ndarray:
    """The first audio stream of a video as float stereo at SR."""
    with av.open(str(path)) as c:
        res = av.AudioResampler(format="flt", layout="stereo", rate=SR)
        chunks = [o.to_ndarray().reshape(-1, 2) for f in c.decode(c.streams.audio[0])
                  for o in res.resample(f)]
        chunks += [o.to_ndarray().reshape(-1, 2) for o in res.resample(None)]
    return np.concatenate(chunks).astype(np.float64)


@pytest.fixture(scope="module")
def speech_clip(video_root, tmp_path_factory) -> Path:
    """bikes.mp4 (10 s, silent) with about 3 s of espeak-ng speech from 4 s on."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed (Debian: espeak-ng)")
    d = tmp_path_factory.mktemp("speech")
    subprocess.run(["espeak-ng", "-w", str(d / "speech.wav"),
                    "Welcome back to the channel. Today we ride through the park."], check=True)
    speech, rate = read_wav(d / "speech.wav")
    assert rate == 22050
    speech = resample_poly(speech[:, 0], 2, 1).astype(np.float32)
    track = np.zeros(10 * SR, np.float32)
    at = round(SPEECH_AT * SR)
    track[at: at + len(speech)] = speech[: len(track) - at]
    mux(video_root / "bikes.mp4", track, SR, d / "speech.mp4")
    return d / "speech.mp4"


def _music_gain_per_window(out: np.ndarray, music: np.ndarray, original: np.ndarray
                           ) -> np.ndarray:
    """Least-squares gain of `music` in `out` per window, with `original` as a second regressor
    (whatever the mix's original-sound gain); NaN where the music is too quiet to tell."""
    n = min(len(out), len(music), len(original)) // WIN * WIN
    gains = np.full(n // WIN, np.nan)
    for w in range(n // WIN):
        s = slice(w * WIN, (w + 1) * WIN)
        m, o, y = music[s].ravel(), original[s].ravel(), out[s].ravel()
        if np.sqrt(np.mean(m ** 2)) < 10 ** (-50 / 20):
            continue
        coef, *_ = np.linalg.lstsq(np.stack([m, o], axis=1), y, rcond=None)
        gains[w] = coef[0]
    return gains


def _lag(out: np.ndarray, music: np.ndarray) -> int:
    """Samples by which `out` is late relative to `music` (AAC priming), from 0.5-3.5 s."""
    a, b = out[SR // 2: 7 * SR // 2, 0], music[SR // 2: 7 * SR // 2, 0]
    lags = range(-2048, 2049)
    return max(lags, key=lambda k: float(np.dot(np.roll(a, -k), b)))


def test_duck_lowers_the_music_under_speech(speech_clip, tmp_path):
    out, wav, plot = tmp_path / "out.mp4", tmp_path / "music.wav", tmp_path / "out.png"
    amount = 12.0
    assert main(["generate", str(speech_clip), "-o", str(out), "--wav", str(wav), "--plot",
                 str(plot), "--keep-audio", "--duck", f"{amount:g}", "--quiet", "--seed", "1",
                 "--instruments", "piano,bass,strings"]) == 0
    assert plot.stat().st_size > 0
    music, rate = read_wav(wav)
    assert rate == SR
    mixed, original = _decode(out), _decode(speech_clip)
    lag = _lag(mixed, music)
    mixed = mixed[lag:] if lag >= 0 else np.concatenate([np.zeros((-lag, 2)), mixed])
    gains = _music_gain_per_window(mixed, music.astype(np.float64), original)
    level = np.array([np.sqrt(np.mean(original[w * WIN:(w + 1) * WIN] ** 2))
                      for w in range(len(gains))])
    speaking = level > level.max() * 10 ** (-20 / 20)
    near = np.convolve(speaking, np.ones(21), mode="same") > 0  # within 1 s of speech
    quiet = ~near & (level < 10 ** (-60 / 20))
    during, outside = gains[speaking & np.isfinite(gains)], gains[quiet & np.isfinite(gains)]
    assert len(during) >= 15 and len(outside) >= 15
    drop = 20 * np.log10(np.median(outside) / np.median(during))
    print(f"music {drop:.2f} dB lower during speech ({len(during)} windows) than outside "
          f"({len(outside)}), --duck {amount:g}; worst speech window "
          f"{20 * np.log10(np.median(outside) / np.max(during)):.1f} dB")
    assert drop >= amount - 0.05  # the projection's precision on AAC-coded audio


def test_duck_curve_holds_between_words_and_ramps():
    sr = 8000
    t = np.arange(4 * sr) / sr
    x = np.where((t > 1) & (t < 2) & ((t * 5) % 1 < 0.7), np.sin(2 * np.pi * 200 * t), 0.0)
    cfg = DuckConfig(amount_db=9.0)
    times, gain = duck_curve(x + 1e-4 * np.sin(2 * np.pi * 50 * t), sr, cfg)
    inside = (times > 1.0) & (times < 2.0)
    assert np.allclose(gain[inside], -9.0)  # whole depth, gaps between "words" held
    assert gain[times < 1 - cfg.attack_s - 0.03].max() == 0.0  # look-ahead only as long as attack
    assert gain[times > 2 + cfg.hold_s + cfg.release_s + 0.06].max() == 0.0
    assert np.all(np.abs(np.diff(gain)) <= 9.0 * cfg.hop_s / cfg.attack_s + 1e-9)  # no jumps


def test_duck_needs_keep_audio(video_root, tmp_path, capsys):
    out = tmp_path / "o.mp4"
    assert main(["generate", str(video_root / "bikes.mp4"), "-o", str(out), "--duck"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--keep-audio" in err[0]
    assert main(["generate", str(video_root / "bikes.mp4"), "-o", str(out), "--keep-audio",
                 "--duck", "-3"]) == 2
    assert "--duck -3" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
