"""Stems that sum to the mix, and DAW-ready MIDI (metre, key, markers at cuts and sections)."""

from __future__ import annotations

import json

import numpy as np
import symusic
from vbgm.cli import main
from vbgm.midi import key_signature_sharps
from vbgm.outputs import Outputs
from vbgm.pipeline import load_model, score_video
from vbgm.render import read_wav, render_midi
from vbgm.sampling import Request


def _residual_db(parts: list[np.ndarray], mix: np.ndarray) -> float:
    """RMS of (sum of parts − mix) relative to the mix's RMS, in dB."""
    total = np.sum(parts, axis=0)
    err = np.sqrt(np.mean((total - mix) ** 2))
    return float(20 * np.log10(err / np.sqrt(np.mean(mix ** 2))))


def _fit(audio: np.ndarray, like: np.ndarray) -> np.ndarray:
    """`audio` trimmed or zero-padded to the length of `like`."""
    out = np.zeros_like(like)
    n = min(len(audio), len(like))
    out[:n] = audio[:n]
    return out


def _misfit_db(source: np.ndarray, target: np.ndarray) -> float:
    """RMS of target − g·source (g by least squares) relative to the target's RMS, in dB."""
    g = float(np.sum(source * target) / max(float(np.sum(source * source)), 1e-20))
    err = np.sqrt(np.mean((target - g * source) ** 2))
    return float(20 * np.log10(max(err, 1e-12) / np.sqrt(np.mean(target ** 2))))


def test_stems_sum_to_the_mix_and_midi_has_markers(video_root, tmp_path):
    src = video_root / "bikes.mp4"  # 10 s with 5 hard cuts
    out = Outputs(video=tmp_path / "bikes.mp4", midi=tmp_path / "bikes.mid",
                  wav=tmp_path / "bikes.wav", analysis=tmp_path / "bikes.json",
                  stems=tmp_path / "stems")
    music = score_video(src, out, load_model(), Request.parse("unknown", "all", key=14),
                        seed=3, log=lambda *a: None)
    doc = json.loads(out.analysis.read_text())
    stems = doc["stems"]
    score = symusic.Score(str(out.midi))
    assert [s["instrument"] for s in stems] == [t.name.lower() for t in score.tracks]
    assert len(stems) >= 2
    mix, sr = read_wav(out.wav)
    parts = []
    for stem, track in zip(stems, score.tracks):
        audio, rate = read_wav(stem["wav"])
        assert rate == sr and audio.shape == mix.shape
        parts.append(audio)
        one = symusic.Score(stem["midi"])  # only its instrument
        assert [(t.name, t.program, t.is_drum, t.note_num()) for t in one.tracks] == [
            (track.name, track.program, track.is_drum, track.note_num())]
    residual = _residual_db(parts, mix)
    print(f"stems sum vs mix: {residual:.1f} dB RMS")
    assert residual <= -20.0
    # Each stem is its instrument alone: its MIDI rendered by itself matches it (up to a gain; the
    # mix's limiter, applied to every stem, and the lone rendering's own limiter leave some
    # 15-20 dB of difference), and another instrument's does not fit at all (about 0 dB).
    alone = [_fit(render_midi(stem["midi"], sr), part) for stem, part in zip(stems, parts)]
    for i, part in enumerate(parts):
        fits = [_misfit_db(a, part) for a in alone]
        print(f"stem {stems[i]['instrument']}: misfit to each instrument alone "
              + ", ".join(f"{f:.1f}" for f in fits) + " dB")
        assert fits[i] <= -12.0 and all(f > -6.0 for j, f in enumerate(fits) if j != i)
    # DAW-ready MIDI: 4/4 after the pickup the cuts chose (2/4), the key, markers at the cuts
    # (where the video cuts: the notes' clock is the video's) and sections (one at each cut).
    assert [(t.numerator, t.denominator) for t in score.time_signatures] == [(2, 4), (4, 4)]
    key = music.candidates[0].key
    assert key is not None
    assert [(k.key, k.tonality) for k in score.key_signatures] == [
        (key_signature_sharps(key), int(key >= 12))]
    seconds = score.to("second")
    cut_marks = [m.time for m in seconds.markers if m.text.startswith("cut ")]
    cut_times = [c["time_s"] for c in doc["beats"] if c["is_cut"]]
    assert len(cut_marks) == len(cut_times) == 5
    assert np.abs(np.array(cut_marks) - np.array(cut_times)).max() <= 0.002
    sections = [m for m in score.markers if m.text.startswith("section ")]
    sixteenth = score.ticks_per_quarter // 4  # bar 0 starts the pickup's rest before tick 0
    assert [(m.time // sixteenth + music.song.start) // 16 for m in sections] == \
        music.candidates[0].sections == [0, 1, 2, 3, 4, 5]
    assert sections[0].text == "section A"


def test_compose_writes_stems(tmp_path, capsys):
    out, stems = tmp_path / "song.mid", tmp_path / "stems"
    assert main(["compose", "--seconds", "5", "-o", str(out), "--stems", str(stems),
                 "--quiet", "--instruments", "drums,bass", "--seed", "2"]) == 0
    names = {t.name.lower() for t in symusic.Score(str(out)).tracks}
    assert {p.name for p in stems.iterdir()} == {f"{n}.{e}" for n in names for e in ("wav", "mid")}
    # Without --force an existing stem stops the next run before anything is written.
    again = tmp_path / "again.mid"
    assert main(["compose", "--seconds", "5", "-o", str(again), "--stems", str(stems),
                 "--quiet", "--instruments", "drums,bass", "--seed", "2"]) == 2
    assert "already exists" in capsys.readouterr().err and not again.exists()


def test_key_signatures():
    assert key_signature_sharps(0) == 0  # C major
    assert key_signature_sharps(7) == 1  # G major
    assert key_signature_sharps(5) == -1  # F major
    assert key_signature_sharps(12 + 9) == 0  # A minor
    assert key_signature_sharps(12 + 2) == -1  # D minor
    assert key_signature_sharps(12 + 4) == 1  # E minor
