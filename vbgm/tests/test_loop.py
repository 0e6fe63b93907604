"""Loopable music (`--loop`): the loop audio concatenated with itself has no seam.

Measured on the real renders: the sample jump at the seam is no larger than the largest jump
elsewhere in the file; the onsets a detector finds lie on one sixteenth grid across the seam;
the key finder hears the loop's key, the last bar is its dominant seventh and the first downbeat
its tonic (a V7 -> I cadence across the seam).
"""

from __future__ import annotations

import numpy as np
import pytest
import symusic
from vbgm.cli import main
from vbgm.controls import auto_key_without_video
from vbgm.harmony import chord_tones, diatonic_triad, key_correlations
from vbgm.loop import fold_tail
from vbgm.midi import QuantizeConfig, key_signature_sharps, read_midi
from vbgm.render import read_wav

SR = 44100


def _seam_jump(audio: np.ndarray) -> tuple[float, float]:
    """(largest sample step at the seam of audio+audio, largest step anywhere else)."""
    x = np.concatenate([audio, audio]).astype(np.float64)
    steps = np.abs(np.diff(x, axis=0)).max(axis=1)
    seam = len(audio) - 1
    return float(steps[seam]), float(np.delete(steps, seam).max())


def _onsets_off_grid(audio: np.ndarray, tempo: float, around_s: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Signed offsets (s) from the sixteenth grid that starts at 0 of the onsets detected within
    `around_s` before and after the seam of audio+audio."""
    import librosa

    x = np.concatenate([audio, audio]).mean(axis=1)
    hop = 256
    times = librosa.onset.onset_detect(y=x, sr=SR, hop_length=hop, units="time", backtrack=False)
    seam = len(audio) / SR
    sixteenth = 15.0 / tempo
    off = times - np.round(times / sixteenth) * sixteenth
    return (off[(times < seam) & (times >= seam - around_s)],
            off[(times >= seam) & (times <= seam + around_s)])


@pytest.mark.parametrize("seed", [1, 3])
def test_compose_loop_is_seamless(tmp_path, seed):
    mid, wav, stems = tmp_path / "loop.mid", tmp_path / "loop.wav", tmp_path / "stems"
    tempo, bars = 100.0, 4
    assert main(["compose", "--loop", "--bars", str(bars), "--tempo", f"{tempo:g}", "-o",
                 str(mid), "--wav", str(wav), "--stems", str(stems), "--quiet",
                 "--seed", str(seed)]) == 0
    audio, rate = read_wav(wav)
    assert rate == SR and len(audio) == round(bars * 240 / tempo * SR)  # whole bars, no tail
    seam, elsewhere = _seam_jump(audio)
    print(f"seed {seed}: seam step {seam:.4f}, largest elsewhere {elsewhere:.4f}")
    assert seam <= elsewhere
    before, after = _onsets_off_grid(audio, tempo, around_s=240 / tempo)  # a bar either side
    lag = np.median(np.r_[before, after])  # the detector's own delay after each attack
    dev = np.abs(np.r_[before, after] - lag)
    print(f"  {len(before)} + {len(after)} onsets a bar before + after the seam: "
          f"{np.mean(dev <= 0.02):.0%} within 20 ms of one sixteenth grid (largest "
          f"{1000 * dev.max():.0f} ms, detector lag {1000 * lag:.0f} ms), median phase "
          f"{1000 * np.median(before):.0f} ms before, {1000 * np.median(after):.0f} ms after")
    assert len(before) >= 2 and len(after) >= 2
    # About three of the detector's 5.8 ms hops; a soft attack (strings) may be found late.
    assert np.mean(dev <= 0.02) >= 0.8
    assert abs(np.median(before) - np.median(after)) <= 0.012  # < a tenth of a sixteenth
    # The stems loop too, and still sum to the mix.
    parts = [read_wav(p)[0] for p in sorted(stems.glob("*.wav"))]
    assert all(len(p) == len(audio) for p in parts)
    residual = np.sqrt(np.mean((np.sum(parts, axis=0) - audio) ** 2) / np.mean(audio ** 2))
    assert 20 * np.log10(residual) <= -20
    # Harmony across the seam.
    song = read_midi(mid, QuantizeConfig(min_notes=0))
    key = auto_key_without_video(seed)  # `--key auto` without a video: planned from the seed
    sig = symusic.Score(str(mid)).key_signatures
    assert [(k.key, k.tonality) for k in sig] == [(key_signature_sharps(key), int(key >= 12))]
    notes = song.notes[song.notes[:, 3] != 1]
    last = notes[notes[:, 0] >= (song.n_bars - 1) * 16]
    downbeat = notes[notes[:, 0] == 0]
    assert len(last) and len(downbeat)
    assert set(last[:, 2] % 12) <= set(chord_tones(key, "V7"))
    assert set(downbeat[:, 2] % 12) <= set(diatonic_triad(key, 0))
    ends = notes[(notes[:, 0] < 16) | (notes[:, 0] >= (song.n_bars - 1) * 16)]
    r = key_correlations(np.bincount(ends[:, 2] % 12, weights=ends[:, 1], minlength=12))
    # The two bars alone fit the key (I and V7 hold six of its seven notes, which its dominant
    # and relative keys and theirs share: a few of those may fit as well).
    assert (r > r[key]).sum() <= 4 and r[key] > 0.3


def test_generate_loop_spans_the_video(video_root, tmp_path):
    out, wav = tmp_path / "clip.mp4", tmp_path / "clip.wav"
    assert main(["generate", str(video_root / "carphone_pristine.mp4"), "-o", str(out),
                 "--wav", str(wav), "--loop", "--quiet", "--seed", "2"]) == 0
    audio, _ = read_wav(wav)
    score = symusic.Score(str(out.with_suffix(".mid")))
    tempo = score.tempos[0].qpm
    sixteenths = round(len(audio) / SR * tempo / 15)
    assert len(audio) == round(sixteenths * 15 / tempo * SR)  # a whole number of sixteenths
    assert len(audio) / SR >= 4.0  # ... covering the 4 s clip
    seam, elsewhere = _seam_jump(audio)
    assert seam <= elsewhere


def test_fold_tail_adds_the_release_onto_the_start():
    tail = np.linspace(1, 0, 250, dtype=np.float32)[:, None]
    audio = np.concatenate([np.zeros((100, 1), np.float32), tail])
    folded = fold_tail(audio, 100)
    assert folded.shape == (100, 1)
    assert np.allclose(folded[:, 0], tail[:100, 0] + tail[100:200, 0]
                       + np.r_[tail[200:, 0], np.zeros(50)])
    assert np.isclose(folded.sum(), audio.sum())  # nothing cut off


def test_bars_needs_a_sensible_number(tmp_path, capsys):
    assert main(["compose", "--bars", "0", "-o", str(tmp_path / "x.mid")]) == 2
    assert "--bars 0" in capsys.readouterr().err and not list(tmp_path.iterdir())
