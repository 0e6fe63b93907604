"""Corpus statistics (vbgm.corpus_stats): measured on hand-made and real songs, written beside a
prepared dataset, carried by checkpoints and handed to the sampler."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from vbgm.cli import main
from vbgm.corpus_stats import (
    FILE_NAME,
    GM_PERCUSSION,
    CorpusStats,
    measure,
    measure_dataset,
    read,
    shipped,
    write,
)
from vbgm.dataset import Dataset, prepare
from vbgm.errors import VbgmError
from vbgm.model import CMT, CONFIGS, save_checkpoint
from vbgm.pipeline import load_model_and_stats
from vbgm.sampling import Generated
from vbgm.song import Song

DRUMS, PIANO, GUITAR, BASS, STRINGS = 1, 2, 3, 4, 5


def _song(rows: list[tuple[int, int, int]]) -> Song:
    """A song from (onset, pitch, instrument) rows, each note a sixteenth long."""
    notes = np.array([(t, 1, p, k, 90) for t, p, k in rows], dtype=np.int32).reshape(-1, 5)
    return Song(notes=notes, n_sixteenths=int(notes[:, 0].max()) + 1 if len(notes) else 0)


# ----------------------------------------------------------------------- measure, hand-made
def test_measure_registers_chords_and_kit_of_hand_made_songs():
    # Piano: pitches 20..120 once each, one at a time, spread over two songs.
    piano = [(i, 20 + i, PIANO) for i in range(101)]
    # Guitar: 100 onsets: 80 single notes, 15 three-note and 5 four-note chords.
    guitar = []
    for g in range(100):
        size = 1 if g < 80 else 3 if g < 95 else 4
        guitar += [(200 + g, 52 + 4 * j, GUITAR) for j in range(size)]
    # Drums: kick 600, snare 300, hat 99 times, one ride (under 0.1 %) and one non-GM key.
    drums = ([(t, 36, DRUMS) for t in range(600)] + [(t, 38, DRUMS) for t in range(300)]
             + [(t, 42, DRUMS) for t in range(99)] + [(0, 51, DRUMS), (1, 90, DRUMS)])
    songs = [_song(piano[:50] + drums[:500]), _song(piano[50:] + guitar + drums[500:])]
    s = measure(songs, source="hand-made")
    fallback = CorpusStats()
    assert (s.songs, s.source) == (2, "hand-made")
    # np.percentile of 20..120: the 3rd is 23, the 97th 117 (REGISTER_PERCENTILES).
    assert (s.low[PIANO], s.high[PIANO]) == (23, 117)
    assert (s.chord_p90[PIANO], s.chord_p99[PIANO]) == (1, 1)
    # Sorted chord sizes: 80 ones, 15 threes, 5 fours -> 90th percentile 3, 99th 4.
    assert (s.chord_p90[GUITAR], s.chord_p99[GUITAR]) == (3, 4)
    assert (s.low[GUITAR], s.high[GUITAR]) == (52, 62)
    # The kit by frequency; the rare ride and the non-GM key 90 are out; drums span GM.
    assert s.kit == (36, 38, 42)
    assert (s.low[DRUMS], s.high[DRUMS]) == GM_PERCUSSION
    # Instruments no song has keep the built-in fallback.
    for k in (BASS, STRINGS):
        assert (s.low[k], s.high[k], s.chord_p99[k]) == (
            fallback.low[k], fallback.high[k], fallback.chord_p99[k])
    # The masks the sampler reads follow the figures.
    assert np.flatnonzero(s.pitch_mask(DRUMS)).tolist() == [36, 38, 42]
    piano_mask = s.pitch_mask(PIANO)
    assert piano_mask[23] and piano_mask[117] and not piano_mask[22] and not piano_mask[118]


def test_measure_of_nothing_is_the_fallback():
    s = measure([])
    assert s.songs == 0 and s.low == CorpusStats().low and s.kit == CorpusStats().kit


# ------------------------------------------------------------------------- files, shipped
def test_write_read_round_trip_and_errors(tmp_path: Path):
    s = CorpusStats(low=(0, 35, 30, 40, 25, 45), high=(127, 81, 90, 80, 60, 88), kit=(36, 38),
                    songs=7, source="somewhere", extra={"note": "kept"})
    path = tmp_path / FILE_NAME
    write(s, path)
    assert read(path) == s
    assert CorpusStats.from_dict(json.loads(path.read_text())) == s
    assert len(path.read_text().splitlines()) == len(s.to_dict()) + 2  # one field a line
    path.write_text("{not json")
    with pytest.raises(VbgmError, match="unreadable corpus statistics"):
        read(path)
    path.write_text('{"low": [1], "colour": "red"}')
    with pytest.raises(VbgmError, match="malformed"):
        read(path)
    with pytest.raises(VbgmError):
        read(tmp_path / "missing.json")


def test_shipped_statistics_read_and_are_sane():
    s = shipped()
    assert s.songs > 0
    assert all(GM_PERCUSSION[0] <= k <= GM_PERCUSSION[1] for k in s.kit) and 36 in s.kit
    for k in (PIANO, GUITAR, BASS, STRINGS):
        assert 0 <= s.low[k] < s.high[k] <= 127
        assert 1 <= s.chord_p90[k] <= s.chord_p99[k]
    assert s.high[BASS] < s.high[PIANO]


# -------------------------------------------------------------------------- the real corpus
@pytest.fixture(scope="module")
def dataset_dir(midi_root: Path, tmp_path_factory) -> Path:
    """A prepared dataset of two real folders (Freedoom and Simutrans)."""
    out = tmp_path_factory.mktemp("stats") / "ds"
    prepare([midi_root / "freedoom", midi_root / "simutrans"], out, workers=2)
    return out


def test_prepare_writes_the_train_split_statistics(dataset_dir: Path):
    path = dataset_dir / FILE_NAME
    assert path.is_file()
    assert not list(dataset_dir.parent.glob(".*"))  # written in the folder swap: no leftovers
    s = read(path)
    ds = Dataset.load(dataset_dir)
    assert s.songs == len(ds.split("train")) > 100
    assert s.source == str(dataset_dir.resolve())
    # The same figures as measuring the loaded dataset.
    again = measure_dataset(ds).to_dict()
    assert {k: v for k, v in again.items() if k != "source"} == {
        k: v for k, v in s.to_dict().items() if k != "source"}


def test_real_corpus_figures_are_plausible(dataset_dir: Path):
    s = read(dataset_dir / FILE_NAME)
    print(f"\nbass {s.low[BASS]}..{s.high[BASS]}, chord p99 {s.chord_p99[1:]}, "
          f"kit {len(s.kit)} keys")
    assert 20 <= s.low[BASS] < s.high[BASS] <= 64  # the bass stays low
    assert s.chord_p99[BASS] <= 3  # and plays single notes, a dyad at most now and then
    assert s.kit and all(35 <= k <= 81 for k in s.kit)
    assert set(s.kit[:3]) & {35, 36} and set(s.kit[:4]) & {38, 40}  # kick, snare lead
    for k in (PIANO, GUITAR, STRINGS):
        assert s.low[k] < 60 < s.high[k]


# ------------------------------------------------------------------- checkpoints, sampling
def _checkpoint(path: Path, stats: CorpusStats | None) -> Path:
    extra = {"step": 1} if stats is None else {"step": 1, "corpus_stats": stats.to_dict()}
    save_checkpoint(path, CMT(CONFIGS["tiny"]), CONFIGS["tiny"], extra)
    return path


MINE = CorpusStats(low=(0, 35, 40, 41, 30, 50), high=(127, 81, 80, 79, 50, 90), kit=(36, 38, 42),
                   songs=3, source="mine")


def test_load_stats_from_a_checkpoint_or_the_shipped_file(tmp_path: Path):
    default = shipped()
    assert load_model_and_stats(None)[1] == default
    old = _checkpoint(tmp_path / "old.pt", None)
    assert load_model_and_stats(old)[1] == default  # trained before statistics were stored
    new = _checkpoint(tmp_path / "new.pt", MINE)
    model, stats = load_model_and_stats(new)
    assert stats == MINE and model.config.n_layer == CONFIGS["tiny"].n_layer
    with pytest.raises(VbgmError):
        load_model_and_stats(tmp_path / "missing.pt")


def test_compose_passes_the_checkpoint_statistics(tmp_path: Path, monkeypatch):
    """`vbgm compose --checkpoint` samples with that checkpoint's statistics (generation itself
    is replaced: this checks the wiring only)."""
    import vbgm.pipeline

    seen: list[CorpusStats | None] = []

    def fake_generate(model, controls, request, config, candidates=1, seed=0, progress=False,
                      stats=None):
        seen.append(stats)
        song = _song([(0, 60, PIANO), (4, 64, PIANO)])
        song.n_sixteenths = controls.n_sixteenths
        return [Generated(np.zeros((0, 9), np.int32), song, 1.0, 0)]

    monkeypatch.setattr(vbgm.pipeline, "generate", fake_generate)
    ckpt = _checkpoint(tmp_path / "new.pt", MINE)
    args = ["compose", "--seconds", "2", "--quiet", "--checkpoint", str(ckpt)]
    assert main([*args, "-o", str(tmp_path / "a.mid")]) == 0
    old = _checkpoint(tmp_path / "old.pt", None)
    assert main([*args[:-1], str(old), "-o", str(tmp_path / "b.mid")]) == 0
    assert seen == [MINE, shipped()]


def test_table1_generation_uses_each_models_statistics(monkeypatch):
    """`evaluation.table1_values` hands each row's model its own statistics."""
    import vbgm.sampling
    from vbgm.evaluation import table1_values

    seen: dict[str, CorpusStats | None] = {}

    def fake_generate(model, controls, request, config, candidates=1, seed=0, progress=False,
                      stats=None):
        seen[model] = stats
        song = _song([(t, 60 + t % 12, PIANO) for t in range(0, controls.n_sixteenths, 2)])
        return [Generated(np.zeros((0, 9), np.int32), song, 1.0, 0)] * candidates

    monkeypatch.setattr(vbgm.sampling, "generate", fake_generate)
    data = [_song([(t, 60, PIANO) for t in range(0, 32, 4)])]
    songs, _ = table1_values(data, {"Baseline": "base", "CMT": "cmt"}, n=2, n_sixteenths=32,
                             tempo=120.0, stats={"CMT": MINE})
    assert seen == {"base": None, "cmt": MINE}
    assert len(songs["CMT"]) == 2
