"""Musicality measurements (vbgm.metrics, "a listener's proxy"): known answers on hand-built
songs for each of the fourteen, the bundle, speed, and plausible values on real files."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
import vbgm.metrics as M
from vbgm.song import Song, normalize_notes, sort_notes

DRUMS, PIANO, GUITAR, BASS, STRINGS = 1, 2, 3, 4, 5
C_MAJOR_WEIGHTS = {0: 4, 2: 1, 4: 2, 5: 1, 7: 3, 9: 1, 11: 1}  # tonic-heavy C-major melody


def make_song(rows: list[tuple[int, int, int, int, int]] | np.ndarray,
              n_sixteenths: int | None = None) -> Song:
    """A Song from (onset, duration, pitch, instrument, velocity) rows."""
    notes = sort_notes(np.asarray(rows, dtype=np.int32).reshape(-1, 5))
    end = int((notes[:, 0] + notes[:, 1]).max()) if len(notes) else 0
    return Song(notes=notes, n_sixteenths=n_sixteenths or end)


def held(pitches: list[int], bars: int = 1, instrument: int = PIANO) -> Song:
    """`pitches` held together as whole notes for `bars` bars."""
    return make_song([(16 * b, 16, p, instrument, 80) for b in range(bars) for p in pitches])


def melody(weights: dict[int, int], offset: int = 0, transpose: int = 0) -> list[tuple]:
    """Quarter notes in octave 4, pitch class pc repeated weights[pc] times, from `offset`."""
    pcs = [pc for pc, w in weights.items() for _ in range(w)]
    return [(offset + 4 * i, 4, 60 + (pc + transpose) % 12, PIANO, 80)
            for i, pc in enumerate(pcs)]


# --------------------------------------------------------------------------------------------
# Pitch: range, classes, scale, entropy


def test_pitch_range_and_classes_ignore_drums() -> None:
    song = make_song([(0, 4, 48, BASS, 80), (0, 4, 64, PIANO, 80), (4, 4, 72, PIANO, 80),
                      (0, 1, 36, DRUMS, 100), (4, 1, 100, DRUMS, 100)])
    assert M.pitch_range(song) == 24.0
    assert M.n_pitch_classes(song) == 2.0  # C and E


def test_triad_is_in_scale_with_log2_3_entropy() -> None:
    song = held([60, 64, 67])
    assert M.pitch_range(song) == 7.0
    assert M.n_pitch_classes(song) == 3.0
    assert M.scale_consistency(song) == 1.0
    assert M.pitch_class_entropy(song) == pytest.approx(math.log2(3))


def test_chromatic_scale() -> None:
    song = make_song([(i, 1, 60 + i, PIANO, 80) for i in range(12)])
    assert M.n_pitch_classes(song) == 12.0
    assert M.scale_consistency(song) == pytest.approx(7 / 12)
    assert M.pitch_class_entropy(song) == pytest.approx(math.log2(12))
    assert M.key_clarity(song) == 0.0  # a flat histogram suggests no key


def test_scale_consistency_counts_notes_and_uses_natural_minor() -> None:
    # Eight notes of A natural minor (= C major's set) and two C#: 8 / 10 in the best scale.
    rows = [(i, 1, p, PIANO, 80) for i, p in enumerate([57, 59, 60, 62, 64, 65, 67, 69])]
    rows += [(8, 1, 61, PIANO, 80), (9, 1, 73, PIANO, 80)]
    assert M.scale_consistency(make_song(rows)) == pytest.approx(0.8)


# --------------------------------------------------------------------------------------------
# Key clarity


def test_key_clarity_of_a_clear_key_and_of_a_triad() -> None:
    assert M.key_clarity(make_song(melody(C_MAJOR_WEIGHTS))) > 0.95
    assert M.key_clarity(held([60, 64, 67])) > 0.8


def test_key_clarity_is_duration_weighted() -> None:
    # C held long, F# short: the histogram is mostly C, so it differs from equal weights.
    long_c = make_song([(0, 16, 60, PIANO, 80), (16, 1, 66, PIANO, 80)])
    equal = make_song([(0, 1, 60, PIANO, 80), (16, 1, 66, PIANO, 80)])
    assert M.key_clarity(long_c) != pytest.approx(M.key_clarity(equal))


def test_windowed_key_clarity_sees_a_modulation_the_whole_song_misses() -> None:
    # 4 bars in C major, then the same 4 bars a tritone up (F# major).
    first = melody(C_MAJOR_WEIGHTS)
    song = make_song(first + melody(C_MAJOR_WEIGHTS, offset=64, transpose=6), 128)
    one_key = M.key_clarity(make_song(first, 64))
    assert M.key_clarity_windows(song) == pytest.approx(one_key)
    assert M.key_clarity(song) < 0.5 < one_key
    # One bar per window: each window holds part of a key, clarity is still defined.
    assert -1.0 <= M.key_clarity_windows(song, bars=1) <= 1.0
    with pytest.raises(M.VbgmError):
        M.key_clarity_windows(song, bars=0)


# --------------------------------------------------------------------------------------------
# Polyphony and dissonance


def test_held_triad_polyphony_three_no_dissonance() -> None:
    song = held([60, 64, 67], bars=2)
    assert M.polyphony(song) == 3.0
    assert M.dissonance_rate(song) == 0.0


def test_polyphony_counts_distinct_pitches_over_sounding_steps() -> None:
    # A melody with rests; the same pitch on two instruments counts once.
    song = make_song([(0, 2, 60, PIANO, 80), (0, 2, 60, GUITAR, 80), (8, 4, 62, PIANO, 80),
                      (0, 1, 36, DRUMS, 80)], 16)
    assert M.polyphony(song) == 1.0
    # Two pitches for 4 steps, one for 4 more: (4·2 + 4·1) / 8.
    song = make_song([(0, 8, 60, PIANO, 80), (0, 4, 67, STRINGS, 80)])
    assert M.polyphony(song) == 1.5


@pytest.mark.parametrize("interval", [1, 6, 11, 13, 18])
def test_dissonant_intervals(interval: int) -> None:
    assert M.dissonance_rate(held([60, 60 + interval])) == 1.0


@pytest.mark.parametrize("interval", [2, 3, 4, 5, 7, 8, 9, 10, 12, 19])
def test_consonant_intervals(interval: int) -> None:
    assert M.dissonance_rate(held([60, 60 + interval])) == 0.0


def test_dissonance_is_pooled_over_pairs_and_steps() -> None:
    # 4 steps of {C, E, F#} (3 pairs, 1 dissonant), then 4 steps of {C, C#} (1 pair, dissonant).
    song = make_song([(0, 4, 60, PIANO, 80), (0, 4, 64, PIANO, 80), (0, 4, 66, GUITAR, 80),
                      (4, 4, 60, PIANO, 80), (4, 4, 61, STRINGS, 80)])
    assert M.dissonance_rate(song) == pytest.approx((4 + 4) / (4 * 3 + 4))


def test_dissonance_undefined_without_two_pitches_and_ignores_drums() -> None:
    assert math.isnan(M.dissonance_rate(make_song([(i, 1, 60 + i, PIANO, 80)
                                                   for i in range(8)])))
    assert math.isnan(M.dissonance_rate(make_song([(0, 4, 60, PIANO, 80),
                                                   (0, 4, 61, DRUMS, 80)])))


# --------------------------------------------------------------------------------------------
# Rhythm: empty beats, groove consistency


def test_empty_beat_rate() -> None:
    # One bar, onsets only in beat 1 (drums and piano): 3 of 4 beats empty.
    song = make_song([(0, 1, 36, DRUMS, 90), (2, 2, 60, PIANO, 80)], 16)
    assert M.empty_beat_rate(song) == 0.75
    # 18 sixteenths round up to 5 beats.
    assert M.empty_beat_rate(make_song([(0, 1, 36, DRUMS, 90)], 18)) == 0.8
    assert M.empty_beat_rate(make_song([(4 * i, 1, 36, DRUMS, 90) for i in range(8)])) == 0.0
    assert math.isnan(M.empty_beat_rate(Song()))


def test_groove_consistency() -> None:
    four = [0, 4, 8, 12]
    same = make_song([(16 * b + o, 1, 36, DRUMS, 90) for b in range(3) for o in four])
    assert M.groove_consistency(same) == 1.0
    # Bar 2 loses two onsets, bar 3 equals bar 1: distances 2 and 2 → 1 − 2/16.
    rows = [(o, 1, 36, DRUMS, 90) for o in four] + [(16 + o, 1, 36, DRUMS, 90) for o in (0, 8)]
    rows += [(32 + o, 1, 60, PIANO, 90) for o in four]
    assert M.groove_consistency(make_song(rows, 48)) == pytest.approx(1 - 2 / 16)
    assert math.isnan(M.groove_consistency(make_song([(0, 1, 36, DRUMS, 90)], 16)))
    # A last bar cut short (8 of 16 sixteenths) that repeats the first half of the bar before
    # is no change of groove; one onset off within its 8 sixteenths is 1/8 of them.
    cut = make_song([(o, 1, 36, DRUMS, 90) for o in four] + [(16, 1, 36, DRUMS, 90),
                                                            (20, 1, 36, DRUMS, 90)], 24)
    assert M.groove_consistency(cut) == 1.0
    off = make_song([(o, 1, 36, DRUMS, 90) for o in four] + [(16, 1, 36, DRUMS, 90)], 24)
    assert M.groove_consistency(off) == pytest.approx(1 - 1 / 8)


# --------------------------------------------------------------------------------------------
# Bass and drums


def test_bass_register() -> None:
    low = make_song([(4 * i, 4, p, BASS, 80) for i, p in enumerate([36, 40, 38])])
    assert M.bass_median_pitch(low) == 38.0
    assert M.bass_high_share(low) == 0.0
    high = make_song([(4 * i, 4, 72, BASS, 80) for i in range(4)] + [(0, 4, 40, PIANO, 80)])
    assert M.bass_median_pitch(high) == 72.0
    assert M.bass_high_share(high) == 1.0
    mixed = make_song([(0, 4, 60, BASS, 80), (4, 4, 61, BASS, 80)])  # 60 is not above 60
    assert M.bass_high_share(mixed) == 0.5
    no_bass = held([60])
    assert math.isnan(M.bass_median_pitch(no_bass)) and math.isnan(M.bass_high_share(no_bass))


def test_drum_kit_share() -> None:
    assert M.drum_kit_share(make_song([(i, 1, 90, DRUMS, 90) for i in range(4)])) == 0.0
    edges = make_song([(0, 1, 34, DRUMS, 90), (1, 1, 35, DRUMS, 90), (2, 1, 81, DRUMS, 90),
                       (3, 1, 82, DRUMS, 90), (4, 4, 100, PIANO, 80)])
    assert M.drum_kit_share(edges) == 0.5
    assert math.isnan(M.drum_kit_share(held([60])))


# --------------------------------------------------------------------------------------------
# Bar repetition


def _bar(offset: int, pitches: list[int], instrument: int = PIANO) -> list[tuple]:
    return [(offset + 2 * i, 2, p, instrument, 80) for i, p in enumerate(pitches)]


def test_one_bar_repeated_recurs_everywhere() -> None:
    rows = [r for b in range(4) for r in _bar(16 * b, [60, 62, 64, 65, 67])]
    assert M.bar_repetition(make_song(rows)) == 1.0


def test_different_bars_do_not_recur() -> None:
    rows = [r for b in range(4) for r in _bar(16 * b, [60 + b, 62 + b, 64 + b])]
    assert M.bar_repetition(make_song(rows)) == 0.0
    # The same notes on another instrument are other events.
    rows = _bar(0, [60, 62, 64]) + _bar(16, [60, 62, 64], GUITAR)
    assert M.bar_repetition(make_song(rows)) == 0.0


def test_bar_repetition_threshold_and_empty_bars() -> None:
    # Bar 1 = bar 0 plus one event: Jaccard 5/6 ≥ 0.8; bar 3 differs; bar 2 is empty.
    rows = _bar(0, [60, 62, 64, 65, 67]) + _bar(16, [60, 62, 64, 65, 67, 69])
    rows += _bar(48, [50, 51, 52])
    song = make_song(rows, 64)
    assert M.bar_repetition(song) == pytest.approx(2 / 3)
    assert M.bar_repetition(song, threshold=0.9) == 0.0
    assert math.isnan(M.bar_repetition(make_song(_bar(0, [60, 62]), 64)))


def test_a_last_bar_cut_short_recurs_when_it_starts_another_bar() -> None:
    # Bars 0 and 1 the same riff; the song ends 6 sixteenths into bar 2, which starts it again.
    riff = [60, 62, 64, 65, 67]
    rows = _bar(0, riff) + _bar(16, riff) + _bar(32, riff[:3])  # onsets 32, 34, 36 < 38
    assert M.bar_repetition(make_song(rows, 38)) == 1.0
    # The same fragment in a whole bar does not recur: there it lacks the riff's end.
    assert M.bar_repetition(make_song(rows, 48)) == pytest.approx(2 / 3)
    # Nor does a cut-short bar that starts differently.
    rows = _bar(0, riff) + _bar(16, riff) + _bar(32, [50, 51, 52])
    assert M.bar_repetition(make_song(rows, 38)) == pytest.approx(2 / 3)



def test_a_pickup_bar_is_measured_on_the_sixteenths_it_has() -> None:
    """A song starting on sixteenth 8 of bar 0 (a 2-beat pickup): its rest before the start is
    no empty beat, bar 0 against bar 1 is a change of groove only within the pickup, and a
    pickup that plays the end of the riff recurs."""
    riff = [60, 62, 64, 65, 67]  # onsets 0, 2, 4, 6, 8 of a bar (`_bar`)
    late = [r for r in _bar(0, riff) if r[0] >= 8]  # the pickup: the riff's last onset
    rows = late + _bar(16, riff) + _bar(32, riff)
    song = Song(notes=make_song(rows, 48).notes, n_sixteenths=48, start=8)
    assert M.bar_repetition(song) == 1.0
    assert M.bar_repetition(make_song(rows, 48)) == pytest.approx(2 / 3)  # as a whole bar 0
    beats = Song(notes=make_song([(4 * i, 1, 36, DRUMS, 90) for i in range(2, 8)], 32).notes,
                 n_sixteenths=32, start=8)
    assert M.empty_beat_rate(beats) == 0.0
    assert M.empty_beat_rate(Song(notes=beats.notes, n_sixteenths=32)) == 0.25
    assert M.groove_consistency(beats) == 1.0  # bar 1 = the whole riff, bar 0 its last half
    assert M.groove_consistency(Song(notes=beats.notes, n_sixteenths=32)) < 1.0

# --------------------------------------------------------------------------------------------
# The bundle


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_musicality_bundle_matches_the_functions() -> None:
    rows = [r for b in range(4) for r in _bar(16 * b, [60, 64, 67, 71])]
    rows += [(16 * b, 16, 36, BASS, 80) for b in range(4)]
    rows += [(4 * i, 1, 36 if i % 2 == 0 else 38, DRUMS, 90) for i in range(16)]
    rows += [(0, 16, 61, STRINGS, 60)]
    song = make_song(rows)
    m = M.musicality(song)
    assert list(m) == [k for k, _ in M.MUSICALITY]
    assert len(M.MUSICALITY) == 14 and all(isinstance(t, str) and t for _, t in M.MUSICALITY)
    for key, _ in M.MUSICALITY:
        assert _same(m[key], float(getattr(M, key)(song))), key
        assert isinstance(m[key], float), key


def test_musicality_of_an_empty_song() -> None:
    m = M.musicality(Song(n_sixteenths=32))
    assert m["empty_beat_rate"] == 1.0
    defined = {"empty_beat_rate", "groove_consistency"}
    assert all(math.isnan(v) for k, v in m.items() if k not in defined)


def test_musicality_of_a_ten_minute_song_is_fast() -> None:
    rng = np.random.default_rng(0)
    n16, n = 10 * 60 * 8, 30000  # 10 minutes at 120 bpm
    notes = np.stack([rng.integers(0, n16, n), rng.integers(1, 17, n), rng.integers(28, 96, n),
                      rng.integers(1, 6, n), rng.integers(1, 128, n)], axis=1)
    song = Song(normalize_notes(notes), n16)
    M.musicality(song)  # warm (lazy imports)
    t0 = time.perf_counter()
    m = M.musicality(song)
    assert time.perf_counter() - t0 < 1.0
    assert all(math.isfinite(v) for v in m.values())


# --------------------------------------------------------------------------------------------
# Real files


FREEDOOM = ["head/d_map01.mid", "head/d_map09.mid"]


def test_freedoom_songs(midi_root: Path) -> None:
    from vbgm.midi import read_midi

    for name in FREEDOOM:
        m = M.musicality(read_midi(midi_root / "freedoom" / name))
        assert m["drum_kit_share"] > 0.95, (name, m)
        assert m["bass_median_pitch"] < 55 and m["bass_high_share"] < 0.1, (name, m)
        assert m["scale_consistency"] > 0.8, (name, m)
        assert m["key_clarity"] > 0.6 and m["key_clarity_windows"] > 0.6, (name, m)
        assert 24 <= m["pitch_range"] <= 80, (name, m)
        assert 2.0 < m["polyphony"] < 8.0, (name, m)
        assert m["dissonance_rate"] < 0.2, (name, m)
        assert m["empty_beat_rate"] < 0.1 and m["groove_consistency"] > 0.8, (name, m)
        assert 0.3 < m["bar_repetition"] <= 1.0, (name, m)


def test_pop909_song(midi_root: Path) -> None:
    from vbgm.midi import read_midi

    m = M.musicality(read_midi(midi_root / "pop909" / "001.mid"))
    assert m["scale_consistency"] > 0.95 and m["key_clarity"] > 0.9, m
    assert m["n_pitch_classes"] <= 9 and m["dissonance_rate"] < 0.05, m
    assert 1.0 < m["polyphony"] < 6.0, m
    assert 2.0 < m["pitch_class_entropy"] < math.log2(12), m
