"""The originality check against the real prepared corpus (data/midi-ds, 1,925 songs; without it
a small corpus is prepared from three folders of the shared MIDI data): a passage planted from a
training song is flagged with its source, held-out real songs are not, and the check of a 60 s
song takes well under 2 s."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from vbgm.cli import main
from vbgm.dataset import Dataset, prepare
from vbgm.midi import write_midi
from vbgm.originality import build_index
from vbgm.song import ONSET, PITCH, Song
from vbgm.tokens import decode

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, midi_root) -> tuple[Path, Path]:
    """(a prepared dataset, its originality index file in a temporary folder)."""
    root = REPO / "data" / "midi-ds"
    if not (root / "index.json").is_file():
        root = tmp_path_factory.mktemp("ds") / "ds"
        prepare([midi_root / d for d in ("crystal_picnic", "simutrans", "lmd_samples")], root)
    index = tmp_path_factory.mktemp("index") / "originality.npz"
    build_index(root).save(index)
    return root, index


def _excerpt(song: Song, first_bar: int, bars: int, transpose: int) -> Song:
    notes = song.notes
    keep = (notes[:, ONSET] >= first_bar * 16) & (notes[:, ONSET] < (first_bar + bars) * 16)
    out = notes[keep].copy()
    out[:, ONSET] -= first_bar * 16
    pitched = out[:, 3] != 1
    out[pitched, PITCH] += transpose
    return Song(out, bars * 16)


def test_planted_copy_is_flagged(corpus, tmp_path, capsys):
    root, index = corpus
    ds = Dataset.load(root)
    i = next(i for i in ds.split("train") if ds.songs[i].bars >= 40
             and len(set(ds.songs[i].instruments) - {1}) >= 2)
    planted = _excerpt(decode(np.asarray(ds.tokens(i))), 8, 16, transpose=3)
    mid = write_midi(planted, tmp_path / "planted.mid", tempo_bpm=100.0)
    report = tmp_path / "report.json"
    assert main(["check-originality", str(mid), "--against", str(root), "--index", str(index),
                 "--json", str(report)]) == 1
    out = capsys.readouterr().out
    print(out)
    doc = json.loads(report.read_text())[str(mid)]
    assert doc["flagged"] and doc["longest_copied_bars"] >= 12
    assert doc["longest_copied_seconds"] == pytest.approx(doc["longest_copied_bars"] * 2.4)
    assert doc["closest"][0]["source"] == ds.songs[i].source
    assert "COPIED" in out and ds.songs[i].source in out

    # Only one instrument's part copied (8 bars, into another song's accompaniment): flagged.
    src = _excerpt(decode(np.asarray(ds.tokens(i))), 8, 8, transpose=-2)
    part = max(set(src.instruments) - {1}, key=lambda k: int((src.notes[:, 3] == k).sum()))
    other = next(j for j in ds.split("train") if j != i and ds.songs[j].bars >= 16)
    backing = _excerpt(decode(np.asarray(ds.tokens(other))), 0, 8, transpose=0)
    mixed = np.concatenate([src.notes[src.notes[:, 3] == part],
                            backing.notes[backing.notes[:, 3] != part]])
    mixed = mixed[np.lexsort((mixed[:, 2], mixed[:, 3], mixed[:, 0]))]
    mid = write_midi(Song(mixed, 8 * 16), tmp_path / "one_part.mid", tempo_bpm=100.0)
    assert main(["check-originality", str(mid), "--against", str(root), "--index",
                 str(index)]) == 1
    assert ds.songs[i].source in capsys.readouterr().out.splitlines()[1]


def test_held_out_real_songs_are_not_flagged(corpus, tmp_path, capsys):
    root, index = corpus
    ds = Dataset.load(root)
    held = [i for i in ds.split("test") if ds.songs[i].bars >= 16][:6]
    assert held
    paths = []
    for i in held:
        paths.append(write_midi(decode(np.asarray(ds.tokens(i))), tmp_path / f"held{i}.mid"))
    assert main(["check-originality", *map(str, paths), "--against", str(root), "--index",
                 str(index)]) == 0
    out = capsys.readouterr().out
    assert "COPIED" not in out and out.count("original:") == len(held)


def test_check_is_fast_and_runs_on_generation(corpus, tmp_path, capsys, monkeypatch):
    root, index = corpus
    song = tmp_path / "sixty.mid"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # compose builds it there
    assert main(["compose", "--seconds", "60", "--tempo", "120", "-o", str(song), "--quiet",
                 "--instruments", "drums,piano,bass", "--check-originality", str(root)]) == 0
    out = capsys.readouterr().out
    assert "indexing" in out and ("original:" in out or "COPIED" in out)
    t = time.perf_counter()
    main(["check-originality", str(song), "--against", str(root), "--index", str(index)])
    took = time.perf_counter() - t
    print(f"check-originality of a 60 s song against {root}: {took:.2f} s (index loaded)")
    assert took <= 2.0


def test_bad_input_is_one_line(corpus, tmp_path, capsys):
    root, index = corpus
    bad = tmp_path / "song.mid"
    bad.write_bytes(b"not a midi file")
    report = tmp_path / "r.json"
    assert main(["check-originality", str(bad), "--against", str(root), "--index",
                 str(index), "--json", str(report)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and not report.exists()
    ds = Dataset.load(root)
    good = write_midi(decode(np.asarray(ds.tokens(0))), tmp_path / "good.mid")
    assert main(["check-originality", str(good), "--against", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a vbgm dataset" in err[0] and str(tmp_path) in err[0]
