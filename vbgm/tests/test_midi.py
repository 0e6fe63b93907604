"""MIDI <-> Song on synthetic files made with symusic, and the representation on real files.

Set VBGM_FULL=1 to check every real file instead of a sample (about a minute).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import symusic
from vbgm.midi import QuantizeConfig, SkipSong, load_song, read_midi, song_to_score, write_midi
from vbgm.song import Song
from vbgm.tokens import decode, encode
from vbgm.vocab import MAX_SIXTEENTHS, N_CLASSES

TPQ = 480
S = TPQ // 4  # ticks per sixteenth


def make_midi(path: Path, tracks, tpq: int = TPQ, time_sigs=((0, 4, 4),), tempos=((0, 120),)):
    """Write a MIDI file: tracks = [(program, is_drum, [(tick, dur_ticks, pitch, vel), ...])]."""
    score = symusic.Score(tpq)
    for t, n, d in time_sigs:
        score.time_signatures.append(symusic.TimeSignature(t, n, d))
    for t, bpm in tempos:
        score.tempos.append(symusic.Tempo(t, float(bpm)))
    for program, drum, notes in tracks:
        track = symusic.Track(name=f"p{program}", program=program, is_drum=drum)
        for t, d, p, v in notes:
            track.notes.append(symusic.Note(t, d, p, v))
        score.tracks.append(track)
    score.dump_midi(str(path))
    return path


def run_of(n: int, pitch: int = 60, step: int = S, start: int = 0, dur: int = S, vel: int = 90):
    return [(start + i * step, dur, pitch, vel) for i in range(n)]


def test_lpd5_merge_quantise_and_filter(tmp_path):
    tracks = [
        (0, True, run_of(24, 36)),                      # drums (program ignored)
        (5, False, run_of(12, 60) + run_of(12, 64)),    # piano (0-23)
        (20, False, run_of(10, 67)),                    # piano too: merged, 34 notes together
        (30, False, run_of(21, 52, start=S // 2 + 1)),  # guitar, off-grid: rounds to next 16th
        (33, False, run_of(20, 40)),                    # bass with 20 notes: dropped (<= 20)
        (48, False, run_of(25, 72, dur=0)),             # strings, zero-length notes -> 1
    ]
    song = read_midi(make_midi(tmp_path / "a.mid", tracks))
    counts = Counter(song.notes[:, 3].tolist())
    assert counts == {1: 24, 2: 34, 3: 21, 5: 25}
    guitar = song.notes[song.notes[:, 3] == 3]
    assert guitar[:, 0].tolist() == list(range(1, 22))
    assert (song.notes[song.notes[:, 3] == 5][:, 1] == 1).all()
    assert song.n_sixteenths == int((song.notes[:, 0] + song.notes[:, 1]).max())


def test_duplicates_overlaps_long_notes_and_tempo(tmp_path):
    notes = run_of(30, 60, step=4 * S) + [(0, 2 * S, 60, 50)]     # duplicate of the first note
    notes += [(8 * S, 40 * S, 72, 80), (10 * S, S, 72, 80)]       # 72 overlaps itself; 40 > 16
    a = read_midi(make_midi(tmp_path / "a.mid", [(0, False, notes)]))
    b = read_midi(make_midi(tmp_path / "b.mid", [(0, False, notes)],
                            tempos=((0, 90), (7 * S, 160), (30 * S, 60))))
    np.testing.assert_array_equal(a.notes, b.notes)  # tempo changes do not move the grid
    first = a.notes[(a.notes[:, 0] == 0) & (a.notes[:, 2] == 60)]
    assert first.tolist() == [[0, 2, 60, 2, 50]]     # one note kept: the longer one
    high = a.notes[a.notes[:, 2] == 72]
    # The first 72 is cut where the same pitch starts again; which note-off ends which 72 is
    # the reader's choice in MIDI, but every duration ends up within 1..16.
    assert high[:, 0].tolist() == [8, 10] and high[0, 1] == 2 and 1 <= high[1, 1] <= 16


def test_metre_policy(tmp_path):
    piano = [(0, False, run_of(64, 60, step=2 * S))]   # 8 bars of eighths
    # 3/4 from the start: skipped.
    with pytest.raises(SkipSong) as info:
        read_midi(make_midi(tmp_path / "w.mid", piano, time_sigs=((0, 3, 4),)))
    assert info.value.reason == "not-4/4" and "3/4" in str(info.value)
    # 4/4 then 6/8 at bar 5: the first 4 bars are kept, and the cut is reported.
    song, note = load_song(make_midi(tmp_path / "c.mid", piano,
                                     time_sigs=((0, 4, 4), (4 * 4 * TPQ, 6, 8))))
    assert song.notes[:, 0].max() < 64 and len(song.notes) == 32 and "6/8" in note
    # ... unless that is fewer than min_bars.
    with pytest.raises(SkipSong):
        read_midi(tmp_path / "c.mid", QuantizeConfig(min_bars=5))
    # POP909 writes 1/4 throughout; 2/4 tiles 4/4: both read on the 4/4 grid in full.
    for sig in ((0, 1, 4),), ((0, 2, 4), (4 * TPQ, 4, 4)):
        path = make_midi(tmp_path / "q.mid", piano, time_sigs=sig)
        assert load_song(path) [1] == "" and len(read_midi(path).notes) == 64
    # A 4/4 signature off the bar grid (after a 2/4 bar) cuts there.
    path = make_midi(tmp_path / "o.mid", piano, time_sigs=((0, 4, 4), (16 * TPQ, 2, 4),
                                                             (18 * TPQ, 4, 4)))
    song, note = load_song(path)
    assert song.notes[:, 0].max() < 18 * 4 and "off the 4/4 bar grid" in note


def test_a_pickup_ends_where_the_first_full_bar_begins(tmp_path):
    """EasyRPG's files open with a 1/4 pickup bar, then 4/4: the song is kept whole, the pickup
    at the end of bar 0 (not cut at the metre change)."""
    notes = run_of(33, 60, step=2 * S)  # a quarter-note pickup (2 eighths), then 31 eighths
    for sigs, pickup in ((((0, 1, 4), (TPQ, 4, 4)), 1), (((0, 1, 4), (TPQ, 1, 4),
                                                         (2 * TPQ, 4, 4)), 2)):
        path = make_midi(tmp_path / "p.mid", [(0, False, notes)], time_sigs=sigs)
        song, note = load_song(path)
        assert note == "" and len(song.notes) == 33
        assert song.notes[0, 0] == 16 - 4 * pickup  # the pickup sits before bar 1's downbeat
        assert 16 in set(song.notes[:, 0])  # ... and the first full bar starts on a bar line
    # A 4/4 bar that starts off a quarter is no pickup: cut as before.
    path = make_midi(tmp_path / "x.mid", [(0, False, notes)], time_sigs=((0, 1, 4),
                                                                        (TPQ + S, 4, 4)))
    with pytest.raises(SkipSong):
        read_midi(path)


def test_leading_empty_bars_are_trimmed(tmp_path):
    path = make_midi(tmp_path / "l.mid", [(0, False, run_of(30, 60, start=2 * 16 * S + 3 * S))])
    assert read_midi(path).notes[0, 0] == 3
    assert read_midi(path, QuantizeConfig(trim_leading_bars=False)).notes[0, 0] == 35


@pytest.mark.parametrize("content, reason, words", [
    (b"", "empty", "empty"),
    (b"this is not a MIDI file at all", "unreadable", "not a MIDI file"),
    (b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\x00\x00\x10\x00\x00\x90",
     "unreadable", "truncated"),
])
def test_unusable_files(tmp_path, content, reason, words):
    path = tmp_path / "bad.mid"
    path.write_bytes(content)
    with pytest.raises(SkipSong) as info:
        read_midi(path)
    assert info.value.reason == reason and words in str(info.value) and str(path) in str(info.value)


def test_no_notes_after_filter(tmp_path):
    with pytest.raises(SkipSong) as info:
        read_midi(make_midi(tmp_path / "f.mid", [(0, False, run_of(20))]))
    assert info.value.reason == "no-notes-after-filter"
    assert len(read_midi(tmp_path / "f.mid", QuantizeConfig(min_notes=0)).notes) == 20


def test_write_midi_named_tracks_programs_tempo_and_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    onset = np.sort(rng.integers(0, 256, 200))
    notes = np.stack([onset, rng.integers(1, 17, 200), rng.integers(30, 90, 200),
                      rng.integers(1, 6, 200), rng.integers(40, 120, 200)], axis=1)
    song = decode(encode(Song(notes=notes, n_sixteenths=272)))
    path = write_midi(song, tmp_path / "out.mid", tempo_bpm=96)
    score = symusic.Score(str(path))
    assert [(t.name, t.program, t.is_drum) for t in score.tracks] == [
        ("Drums", 0, True), ("Piano", 0, False), ("Guitar", 27, False), ("Bass", 33, False),
        ("Strings", 48, False)]
    assert round(score.tempos[0].qpm) == 96
    back = read_midi(path, QuantizeConfig(min_notes=0, trim_leading_bars=False))
    np.testing.assert_array_equal(back.notes, song.notes)  # velocities included
    assert len(np.unique(song.notes[:, 4])) > 3
    assert not list(tmp_path.glob(".*"))  # no temp file left behind
    assert len(song_to_score(song, 120).tracks) == 5



def test_a_song_with_a_pickup_is_written_with_a_short_first_bar_and_read_back(tmp_path):
    """A song starting on sixteenth 8 of bar 0 (the video opens 2 beats before bar 1) starts
    its MIDI there: a 2/4 bar first, 4/4 from bar 1, its first note on tick 0, markers moved
    with it. Read back, it is the same song (the pickup at the end of bar 0)."""
    notes = np.array([[8, 4, 60, 2, 90], [12, 4, 64, 2, 90], [16, 2, 36, 1, 100],
                      [16, 8, 67, 2, 90], [40, 8, 48, 4, 80]], dtype=np.int32)
    song = Song(notes=notes, n_sixteenths=48, start=8)
    score = song_to_score(song, 100, cut_times=[1.35, 1.4], sections=[0, 1])
    sigs = [(ts.time, ts.numerator, ts.denominator) for ts in score.time_signatures]
    assert sigs == [(0, 2, 4), (8 * S, 4, 4)]
    assert min(n.time for t in score.tracks for n in t.notes) == 0
    assert [(m.time, m.text) for m in score.markers] == [
        (0, "section A"), (8 * S, "section B"), (9 * S, "cut 1"),
        (round(1.4 * 100 / 60 * 4 * S), "cut 2")]  # where the video cuts, between sixteenths
    path = write_midi(song, tmp_path / "pickup.mid", tempo_bpm=100)
    back = read_midi(path, QuantizeConfig(min_notes=0))
    assert back.start == 8
    np.testing.assert_array_equal(back.notes, song.notes)
    odd = song_to_score(Song(notes=notes, n_sixteenths=48, start=6), 100)  # 10 sixteenths
    assert [(t.time, t.numerator, t.denominator) for t in odd.time_signatures] == [
        (0, 10, 16), (10 * S, 4, 4)]
    assert write_midi(Song(notes=notes, n_sixteenths=48), tmp_path / "plain.mid").is_file()
    assert read_midi(tmp_path / "plain.mid", QuantizeConfig(min_notes=0)).start == 0

# ---------------------------------------------------------------------------------- real files
def real_files(midi_root: Path) -> list[Path]:
    files = sorted(p for p in midi_root.rglob("*") if p.suffix.lower() in (".mid", ".midi"))
    if os.environ.get("VBGM_FULL") == "1":
        return files
    # A deterministic sample across every folder: every 8th file (~300 of 2,433).
    return files[::8]


def check_song_tokens(song: Song, tokens: np.ndarray) -> None:
    """Independent checks of one song's tokens against its notes (plain Python counting)."""
    assert tokens.dtype == np.int32 and tokens.shape[1] == 9
    # Every embedded field inside its vocabulary; i_beat indexes the 20,000-row position table.
    assert (tokens >= 0).all() and (tokens[:, :8].max(axis=0) < np.array(N_CLASSES[:8])).all()
    assert tokens[:, 8].max() < MAX_SIXTEENTHS
    assert not tokens[-1].any() and tokens[:-1, 1].all()
    notes = [tuple(r) for r in song.notes.tolist()]
    slots_per_bar: dict[int, set[int]] = {}
    per_group: Counter = Counter()
    for onset, _d, _p, instr, _v in notes:
        slots_per_bar.setdefault(onset // 16, set()).add(onset % 16)
        per_group[(onset, instr)] += 1
    bars = tokens[tokens[:, 0] == 17]
    assert len(bars) == -(-song.n_sixteenths // 16)
    for row in bars:
        assert row[2] == len(slots_per_bar.get(row[8] // 16, ())) + 1
    beats = tokens[(tokens[:, 1] == 1) & (tokens[:, 0] != 17)]
    assert len(beats) == len(per_group)
    for row in beats:
        onset, instr = int(row[8]), int(row[5])
        assert row[0] == onset % 16 + 1 and row[6] == min(per_group[(onset, instr)], 19)
        later = {s for s in slots_per_bar[onset // 16] if s > onset % 16}
        assert row[2] == len(later) + 1
    n = song.n_sixteenths
    assert (tokens[:-1, 7] == np.minimum(100 * tokens[:-1, 8] // n + 1, 101)).all()
    assert (np.diff(tokens[:-1, 8]) >= 0).all()
    assert (tokens[:, 1] == 2).sum() == len(notes)


def test_real_files(midi_root):
    files = real_files(midi_root)
    reasons: Counter = Counter()
    kept = 0
    for path in files:
        try:
            song = read_midi(path)
        except SkipSong as exc:
            reasons[exc.reason] += 1
            assert str(path) in str(exc)
            continue
        tokens = encode(song)
        check_song_tokens(song, tokens)
        back = decode(tokens)
        np.testing.assert_array_equal(back.notes[:, :4], song.notes[:, :4], err_msg=str(path))
        assert back.n_sixteenths == song.n_sixteenths
        kept += 1
    assert kept >= 0.6 * len(files)
    assert set(reasons) <= {"not-4/4", "no-notes-after-filter", "too-long"}


def test_real_multitrack_file_against_pretty_midi(midi_root):
    """LPD-5 merge and quantisation agree with an independent reader (pretty_midi)."""
    pretty_midi = pytest.importorskip("pretty_midi")
    compared = 0
    for path in sorted((midi_root / "lmd_samples").glob("*.mid"))[:4]:
        pm = pretty_midi.PrettyMIDI(str(path))
        if any((ts.numerator, ts.denominator) != (4, 4) for ts in pm.time_signature_changes):
            continue
        expected: dict[int, set] = {}
        for inst in pm.instruments:
            k = 1 if inst.is_drum else 2 if inst.program < 24 else 3 if inst.program < 32 \
                else 4 if inst.program < 40 else 5
            for n in inst.notes:
                tick = pm.time_to_tick(n.start)
                onset = (8 * tick + pm.resolution) // (2 * pm.resolution)
                expected.setdefault(k, set()).add((onset, n.pitch))
        expected = {k: v for k, v in expected.items() if len(v) > 20}
        song = read_midi(path, QuantizeConfig(trim_leading_bars=False))
        got: dict[int, set] = {}
        for onset, _d, pitch, instr, _v in song.notes.tolist():
            got.setdefault(instr, set()).add((onset, pitch))
        assert got == expected, path
        compared += 1
    assert compared >= 2
