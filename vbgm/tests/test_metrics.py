"""Metrics: known answers on hand-built songs, a brute-force check of the fitness DP, real songs,
and `vbgm evaluate midi` on a folder with a broken file."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import vbgm.metrics as M
from vbgm.cli import main
from vbgm.song import Song, sort_notes


def make_song(rows: list[tuple[int, int, int, int, int]] | np.ndarray,
              n_sixteenths: int | None = None) -> Song:
    """A Song from (onset, duration, pitch, instrument, velocity) rows."""
    notes = sort_notes(np.asarray(rows, dtype=np.int32).reshape(-1, 5))
    end = int((notes[:, 0] + notes[:, 1]).max()) if len(notes) else 0
    return Song(notes=notes, n_sixteenths=n_sixteenths or end)


# --------------------------------------------------------------------------------------------
# Pitch entropy


def test_one_pitch_song_has_zero_entropy() -> None:
    song = make_song([(i * 4, 4, 60, 2, 80) for i in range(32)])
    assert M.pitch_entropy(song) == 0.0
    assert M.pitch_entropy(song, bars=1) == 0.0
    assert M.pitch_entropy(song, pitch_classes=True) == 0.0


@pytest.mark.parametrize("k", [2, 5, 12, 40])
def test_uniform_pitches_give_log2_k(k: int) -> None:
    song = make_song([(i, 1, 30 + i % k, 2, 80) for i in range(k * 8)])
    assert M.pitch_entropy(song) == pytest.approx(math.log2(k))


def test_pitch_class_entropy_folds_octaves_and_ignores_drums() -> None:
    rows = [(i, 1, 48 + 12 * (i % 3), 2, 80) for i in range(24)]  # C3, C4, C5
    rows += [(i, 1, 36 + i % 7, 1, 80) for i in range(24)]  # drums: not pitches
    song = make_song(rows)
    assert M.pitch_entropy(song) == pytest.approx(math.log2(3))
    assert M.pitch_entropy(song, pitch_classes=True) == 0.0
    assert M.pitch_histogram(song).sum() == 24


def test_windowed_entropy_is_mean_over_non_empty_windows() -> None:
    # Bar 0: one pitch (H=0); bar 1: empty; bar 2: two pitches equally (H=1).
    rows = [(i, 1, 60, 2, 80) for i in range(4)] + [(32 + i, 1, 60 + i % 2, 2, 80)
                                                    for i in range(4)]
    song = make_song(rows)
    assert M.pitch_entropy(song, bars=1) == pytest.approx(0.5)
    assert M.pitch_entropy(song, bars=4) == pytest.approx(M.pitch_entropy(song))
    assert math.isnan(M.pitch_entropy(make_song([(0, 1, 36, 1, 80)])))


# --------------------------------------------------------------------------------------------
# Grooving pattern similarity


def test_identical_bars_have_similarity_one() -> None:
    pattern = [0, 3, 4, 8, 10, 14]
    song = make_song([(16 * b + p, 1, 60, 2, 80) for b in range(12) for p in pattern])
    assert M.grooving_similarity(song) == 1.0


def test_complementary_bars_have_similarity_zero() -> None:
    rows = [(p, 1, 60, 2, 80) for p in range(0, 16, 2)]
    rows += [(16 + p, 1, 38, 1, 80) for p in range(1, 16, 2)]  # other instrument, other slots
    assert M.grooving_similarity(make_song(rows)) == 0.0


def test_grooving_counts_positions_per_pair() -> None:
    # Three bars with 0, 2 and 4 differing positions from a base: pairs (0,1)=2, (0,2)=4,
    # (1,2)=6 differences -> mean similarity 1 - 4/16.
    base = {0, 4, 8, 12}
    bars = [base, base ^ {1, 2}, base ^ {5, 6, 9, 10}]
    rows = [(16 * b + p, 1, 60, 2, 80) for b, bar in enumerate(bars) for p in bar]
    assert M.grooving_similarity(make_song(rows)) == pytest.approx(1 - 4 / 16)


def test_grooving_sampling_is_deterministic_and_close_to_exact() -> None:
    rng = np.random.default_rng(3)
    grid = rng.random((120, 16)) < 0.4
    b, p = np.nonzero(grid)
    song = make_song([(16 * i + j, 1, 60, 2, 80) for i, j in zip(b, p, strict=True)])
    exact = M.grooving_similarity(song, max_pairs=10**6)
    sampled = M.grooving_similarity(song, max_pairs=2000, seed=7)
    assert sampled == M.grooving_similarity(song, max_pairs=2000, seed=7)
    assert sampled == pytest.approx(exact, abs=0.01)
    i, j = M._pair_from_index(np.arange(45), 10)
    ti, tj = np.triu_indices(10, k=1)
    assert (i == ti).all() and (j == tj).all()


# --------------------------------------------------------------------------------------------
# Structureness


def brute_force_fitness(ssm: np.ndarray, start: int, m: int) -> float:
    """Müller's fitness of one segment: textbook DP with explicit backtracking."""
    n = ssm.shape[0]
    seg = ssm[:, start:start + m]
    d = np.full((n, m + 1), -np.inf)  # column 0 = elevator, column c+1 = segment column c
    d[0, 0] = 0.0
    d[0, 1] = seg[0, 0]
    for i in range(1, n):
        d[i, 0] = max(d[i - 1, 0], d[i - 1, m])
        d[i, 1] = d[i, 0] + seg[i, 0]
        for c in range(2, m + 1):
            prev = [d[i - 1, c - 1]]
            if c >= 3:  # a (1,2) step never leaves from the elevator: paths start at column 0
                prev.append(d[i - 1, c - 2])
            if i >= 2:
                prev.append(d[i - 2, c - 1])
            d[i, c] = seg[i, c - 1] + max(prev)
    score = max(d[n - 1, 0], d[n - 1, m])
    # Backtrack the family: each path as a list of rows.
    paths, path = [], []
    i, c = n - 1, (m if d[n - 1, m] >= d[n - 1, 0] else 0)
    while True:
        if c == 0:
            if i == 0:
                break
            if d[i - 1, m] > d[i - 1, 0]:
                i, c = i - 1, m
            else:
                i -= 1
            continue
        path.append(i)
        if c == 1:
            paths.append(path)
            path = []
            c = 0
            continue
        options = [(d[i - 1, c - 1], i - 1, c - 1)]
        if c >= 3:
            options.append((d[i - 1, c - 2], i - 1, c - 2))
        if i >= 2:
            options.append((d[i - 2, c - 1], i - 2, c - 1))
        _, i, c = max(options)
    cells = sum(len(p) for p in paths)
    cover = sum(max(p) - min(p) + 1 for p in paths)
    score_n = max(0.0, (score - m) / cells)
    cover_n = max(0.0, (cover - m) / n)
    return 0.0 if score_n + cover_n == 0 else 2 * score_n * cover_n / (score_n + cover_n)


def test_fitness_dp_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    n = 24
    base = rng.random((n, n)) * 1.4 - 0.6  # continuous values: no ties between paths
    ssm = np.minimum((base + base.T) / 2, 0.99)
    np.fill_diagonal(ssm, 1.0)
    lengths = np.array([1, 2, 3, 5, 8, 13, 24])
    fast = M.fitness_scape(ssm, lengths)
    for r, m in enumerate(lengths):
        for s in range(0, n - m + 1):
            assert fast[r, s] == pytest.approx(brute_force_fitness(ssm, s, m), abs=1e-9)
        assert np.isnan(fast[r, n - m + 1:]).all()
    strided = M.fitness_scape(ssm, lengths[:3], start_stride=3)
    assert np.allclose(strided[:, ::3][:, :8], fast[:3, ::3][:, :8], equal_nan=True)


def phrase_song(order: list[int], seed: int = 0) -> Song:
    """A melody + chords song built from 8 distinct random bars, played in `order`."""
    rng = np.random.default_rng(seed)
    bars = []
    for _ in range(8):
        root = int(rng.integers(0, 12))
        chord = [(0, 16, 48 + (root + i) % 12, 2, 70) for i in (0, 4, 7)]
        melody = [(4 * q, 4, 60 + int(rng.integers(0, 24)), 2, 90) for q in range(4)]
        bars.append(chord + melody)
    rows = [(16 * slot + o, d, p, i, v)
            for slot, b in enumerate(order) for o, d, p, i, v in bars[b]]
    return make_song(rows)


def test_repeated_section_raises_structureness() -> None:
    repeated = [0, 1, 2, 3] * 6  # a 4-bar (8 s at 120 bpm) phrase, six times
    shuffled = list(np.random.default_rng(1).permutation(repeated))
    si_rep = M.structureness(phrase_song(repeated), 120.0)
    si_shuf = M.structureness(phrase_song(shuffled), 120.0)
    assert 0.0 <= si_shuf < si_rep <= 1.0
    assert si_rep > 0.5
    # A transposed repeat is still a repeat (transposition invariance).
    up = phrase_song([0, 1, 2, 3] * 3)
    notes = up.notes.copy()
    half = notes[:, 0] >= 16 * 4 * 3
    moved = phrase_song([0, 1, 2, 3] * 6).notes
    moved = moved[moved[:, 0] >= 16 * 12].copy()
    moved[:, 2] += 5
    transposed = make_song(np.concatenate([notes[~half], moved]))
    assert M.structureness(transposed, 120.0) > si_shuf


def test_structureness_from_rendered_audio_sees_the_repeat() -> None:
    repeated = [0, 1, 2, 3] * 4
    shuffled = list(np.random.default_rng(2).permutation(repeated))
    si_rep = M.structureness(phrase_song(repeated), 150.0, source="audio", sample_rate=16000)
    si_shuf = M.structureness(phrase_song(shuffled), 150.0, source="audio", sample_rate=16000)
    assert 0.0 <= si_shuf < si_rep <= 1.0


def test_structureness_from_precomputed_chroma_matches() -> None:
    song = phrase_song([0, 1, 2, 3] * 4)
    chroma = M.notes_chroma(song, 100.0)
    assert chroma.shape[0] == 12
    assert M.structureness_from_chroma(chroma, 10.0) == M.structureness(song, 100.0)
    with pytest.raises(M.VbgmError):
        M.structureness(song, 100.0, range_name="huge")
    assert math.isnan(M.structureness_from_chroma(chroma[:, :20], 10.0, "mid"))  # 2 s < 8 s


def test_audio_chroma_finds_the_pitch_class() -> None:
    sr = 22050
    t = np.arange(sr * 2) / sr
    tone = np.sin(2 * np.pi * 440.0 * t) + 0.5 * np.sin(2 * np.pi * 659.26 * t)  # A4 + E5
    chroma = M.audio_chroma(tone, sr)
    assert chroma.shape == (12, 20)
    mean = chroma[:, 2:-2].mean(axis=1)
    assert set(np.argsort(mean)[-2:]) == {9, 4}


# --------------------------------------------------------------------------------------------
# Video–music fit


def test_onsets_on_every_visual_beat_hit_and_align_perfectly() -> None:
    beats = np.array([0, 5, 18, 33, 40, 61])
    song = make_song([(int(b), 2, 60, k, 80) for b in beats for k in (1, 2, 3)])
    assert M.beat_hit_rate(song, beats) == 1.0
    assert M.beat_align_score(song, beats) == 1.0
    assert M.strength_fidelity(song, beats, np.ones(len(beats))) == 0.0
    assert M.strength_fidelity(song, beats, np.full(len(beats), 3)) == 2.0
    late = make_song([(int(b) + 2, 2, 60, 2, 80) for b in beats])
    assert M.beat_hit_rate(late, beats) == 0.0
    assert M.beat_align_score(late, beats) == pytest.approx(math.exp(-2.0))
    assert M.beat_align_score(late, beats, sigma=2.0) == pytest.approx(math.exp(-0.5))
    assert M.beat_hit_rate(late, beats + 1.6) == 1.0  # sub-grid beat 0.4 sixteenth away
    assert M.beat_hit_rate(Song(), beats) == 0.0


def test_density_fidelity_is_rank_agreement() -> None:
    request = np.array([1, 3, 2, 8, 5, 12])
    # Bar b gets request[b] + 1 distinct onset positions (any instrument, chords count once).
    rows = [(16 * b + p, 1, 60 + k, 2 + k, 80) for b, r in enumerate(request)
            for p in range(r + 1) for k in (0, 1)]
    song = make_song(rows, n_sixteenths=6 * 16)
    assert list(M.realised_bar_density(song, 6)) == list(request + 1)
    assert M.density_fidelity(song, request) == pytest.approx(1.0)
    assert M.density_fidelity(song, -request) == pytest.approx(-1.0)
    assert math.isnan(M.density_fidelity(song, np.full(6, 4)))
    # A last bar cut short by the song's end (8 of 16 sixteenths) asks for its share: 12
    # onsets a bar there are 6, fewer than bar 0's 8 but more than bar 1's 4.
    onsets = [*range(8), *range(16, 20), *range(32, 38)]
    short = make_song([(o, 1, 60, 1, 80) for o in onsets], n_sixteenths=40)
    assert M.density_fidelity(short, np.array([9, 5, 13])) == pytest.approx(1.0)
    # So does a pickup bar 0 (the song starts on its sixteenth 8): 13 onsets a bar are 6 in its
    # last 8, more than bar 1's 4 and fewer than bar 2's 8.
    onsets = [*range(8, 14), *range(16, 20), *range(32, 40)]
    notes = make_song([(o, 1, 60, 1, 80) for o in onsets], n_sixteenths=48).notes
    pickup = Song(notes=notes, n_sixteenths=48, start=8)
    assert M.density_fidelity(pickup, np.array([13, 5, 9])) == pytest.approx(1.0)
    assert M.density_fidelity(Song(notes=notes, n_sixteenths=48),
                              np.array([13, 5, 9])) == pytest.approx(0.5)


def test_average_ranks_give_scipys_spearman_with_ties() -> None:
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    assert M.average_ranks(np.array([5, 1, 5, 3])).tolist() == [2.5, 0.0, 2.5, 1.0]
    for _ in range(20):
        a, b = rng.integers(0, 5, 12), rng.integers(0, 5, 12)  # many ties
        if np.ptp(a) and np.ptp(b):
            ours = np.corrcoef(M.average_ranks(a), M.average_ranks(b))[0, 1]
            assert ours == pytest.approx(spearmanr(a, b).statistic)


def test_length_error_and_video_fit_bundle() -> None:
    song = make_song([(0, 4, 60, 2, 80), (60, 4, 62, 2, 80)])  # ends at 64 sixteenths
    assert M.music_seconds(song, 120.0) == pytest.approx(8.0)
    assert M.length_error(song, 120.0, 10.0) == pytest.approx(2.0)
    fit = M.video_fit(song, [3, 1, 1, 1], [0, 60], [1, 1], 120.0, 8.0, instruments=(2,))
    assert (fit.beat_hit_rate, fit.beat_align, fit.strength_fidelity, fit.length_error_s) == (
        1.0, 1.0, 0.0, 0.0)
    # Realised densities 1, 0, 0, 1 against requests 3, 1, 1, 1: ranks agree partly.
    assert fit.density_fidelity == pytest.approx(1 / math.sqrt(3))
    with pytest.raises(M.VbgmError):
        M.strength_fidelity(song, [0, 60], [1])


# --------------------------------------------------------------------------------------------
# Real songs


REAL = ["pop909/001.mid", "pop909/045.mid", "lmd_samples/Funkytown.mid",
        "freedoom/head/d_map09.mid"]


def test_real_songs_are_in_plausible_ranges_and_stable(midi_root: Path) -> None:
    from vbgm.evaluation import file_tempo
    from vbgm.midi import read_midi

    for name in REAL:
        path = midi_root / name
        song = read_midi(path)
        tempo = file_tempo(path)
        m = M.music_metrics(song, tempo)
        assert 2.0 < m.pitch_entropy < 6.0, (name, m)
        assert 1.0 < M.pitch_entropy(song, bars=4, pitch_classes=True) < math.log2(12)
        assert 0.5 < m.grooving_similarity < 1.0, (name, m)
        assert 0.0 < m.structureness < 1.0, (name, m)
        if name == REAL[-1]:
            assert M.music_metrics(read_midi(path), tempo) == m  # deterministic


# --------------------------------------------------------------------------------------------
# CLI


def test_evaluate_midi_reports_broken_file_and_goes_on(midi_root: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "songs"
    folder.mkdir()
    for name in ("001.mid", "045.mid"):
        shutil.copy(midi_root / "pop909" / name, folder / name)
    (folder / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    (folder / "notes.txt").write_text("not midi, not looked at")
    csv, md = tmp_path / "out" / "t.csv", tmp_path / "out" / "t.md"
    rc = main(["evaluate", "midi", str(folder), "--csv", str(csv), "--md", str(md)])
    out, err = capsys.readouterr()
    assert rc == 0
    assert "broken.mid" in err and "001.mid" not in err
    assert "| 2 | 1 |" in out and "±" in out
    assert md.read_text() == out
    header, row = csv.read_text().splitlines()
    assert header.startswith("folder,files,skipped,pitch_entropy_mean")
    assert row.split(",")[1:3] == ["2", "1"]


def test_evaluate_midi_fails_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["evaluate", "midi", str(tmp_path / "missing")]) == 2
    assert "missing: not a folder" in capsys.readouterr().err
    (tmp_path / "bad.mid").write_bytes(b"nope")
    assert main(["evaluate", "midi", str(tmp_path), "--csv", str(tmp_path / "x.csv")]) == 2
    assert "no usable MIDI file" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
