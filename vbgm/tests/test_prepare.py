"""`vbgm prepare` end to end on a folder mixing real MIDI files with broken ones."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import symusic
from vbgm.cli import main
from vbgm.dataset import Dataset, parse_genre, run_isolated, split_of
from vbgm.errors import VbgmError
from vbgm.midi import read_midi
from vbgm.tokens import encode, init_tokens

GOOD = ["pop909/001.mid", "pop909/002.mid", "simutrans/02-Gotta-catch-that-train.mid",
        "groove/drummer1/eval_session/1_funk-groove1_138_beat_4-4.mid"]


def waltz(path: Path) -> None:
    """A valid 3/4 song of 60 piano notes."""
    score = symusic.Score(480)
    score.time_signatures.append(symusic.TimeSignature(0, 3, 4))
    track = symusic.Track(name="piano", program=0)
    for i in range(60):
        track.notes.append(symusic.Note(i * 480, 400, 60 + i % 12, 80))
    score.tracks.append(track)
    score.dump_midi(str(path))


@pytest.fixture
def mixed(tmp_path: Path, midi_root: Path) -> Path:
    root = tmp_path / "corpus"
    for rel in GOOD:
        (root / Path(rel).parent).mkdir(parents=True, exist_ok=True)
        shutil.copy(midi_root / rel, root / rel)
    (root / "extra").mkdir()
    shutil.copy(midi_root / "pop909/003.mid", root / "extra/UPPER.MIDI")  # case-insensitive
    data = (midi_root / "pop909/004.mid").read_bytes()
    (root / "broken").mkdir()
    (root / "broken/truncated.mid").write_bytes(data[: len(data) // 2])
    (root / "broken/empty.mid").write_bytes(b"")
    (root / "broken/not_midi.mid").write_text("just some text, not a MIDI file\n")
    waltz(root / "broken/waltz.mid")
    (root / "readme.txt").write_text("not a .mid file: ignored\n")
    return root


def test_prepare_skips_exactly_the_broken_files_and_is_repeatable(mixed, tmp_path, capsys):
    out = tmp_path / "ds"
    labels = tmp_path / "labels.csv"
    labels.write_text("path,genre\npop909/002.mid,rock\n")
    argv = ["prepare", str(mixed), "-o", str(out), "--workers", "2", "--no-progress",
            "--genre", "pop909=pop", "--labels", str(labels)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "9 MIDI files -> 5 songs" in printed and "not-4/4" in printed
    assert "licences: MIT 2, Artistic License 1, CC-BY-4.0 1, unknown 1\n" in printed

    report = json.loads((out / "report.json").read_text())
    skipped = {s["source"]: s["reason"] for s in report["skipped"]}
    assert skipped == {"corpus/broken/empty.mid": "empty",
                       "corpus/broken/not_midi.mid": "unreadable",
                       "corpus/broken/truncated.mid": "unreadable",
                       "corpus/broken/waltz.mid": "not-4/4"}
    assert report["licences"] == {"MIT": 2, "Artistic License": 1, "CC-BY-4.0": 1, "unknown": 1}
    messages = {s["source"]: s["message"] for s in report["skipped"]}
    assert "truncated" in messages["corpus/broken/truncated.mid"]
    assert "3/4" in messages["corpus/broken/waltz.mid"]

    ds = Dataset.load(out)
    assert [s.source for s in ds.songs] == sorted([f"corpus/{r}" for r in GOOD] + [
        "corpus/extra/UPPER.MIDI"])
    genres = {s.source: s.genre for s in ds.songs}
    assert genres["corpus/pop909/001.mid"] == 5 and genres["corpus/pop909/002.mid"] == 6
    assert genres["corpus/extra/UPPER.MIDI"] == 0
    for i, s in enumerate(ds.songs):
        expected = encode(read_midi(mixed.parent / s.source))
        np.testing.assert_array_equal(ds.tokens(i), expected)
        assert s.tokens == len(expected) and s.split == split_of(s.source.split("/", 1)[1])
        np.testing.assert_array_equal(ds.init(i), init_tokens(s.genre, s.instruments))
    assert sorted(i for name in ("train", "valid", "test") for i in ds.split(name)) == \
        list(range(len(ds)))

    before = {f.name: f.read_bytes() for f in out.iterdir()}
    assert set(before) == {"index.json", "tokens.npy", "report.json", "stats.json"}
    assert main(argv) == 0  # over the existing dataset: replaced whole, byte-identical
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "ds", "labels.csv"]


def test_cli_errors_leave_files_alone(mixed, tmp_path, capsys):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    assert main(["prepare", str(mixed), "-o", str(precious), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vbgm: error: ") and "not a vbgm dataset" in err and err.count("\n") == 1
    assert [p.name for p in precious.iterdir()] == ["notes.txt"]

    assert main(["prepare", str(tmp_path / "nowhere"), "-o", str(tmp_path / "d")]) == 2
    assert "nowhere: not a folder" in capsys.readouterr().err

    bad = tmp_path / "bad.csv"
    bad.write_text("pop909/001.mid,polka\n")
    assert main(["prepare", str(mixed), "-o", str(tmp_path / "d"), "--labels", str(bad)]) == 2
    assert "bad.csv:1: unknown genre 'polka'" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_dataset_load_errors(tmp_path):
    with pytest.raises(VbgmError, match="not a vbgm dataset"):
        Dataset.load(tmp_path)
    (tmp_path / "index.json").write_text('{"format": "something else"}')
    with pytest.raises(VbgmError, match="index.json: not a vbgm dataset index"):
        Dataset.load(tmp_path)
    (tmp_path / "index.json").write_text('{"format": "vbgm-dataset", "version": 1, "songs": []}')
    with pytest.raises(VbgmError, match="tokens.npy"):
        Dataset.load(tmp_path)
    ds_songs = {"format": "vbgm-dataset", "version": 1, "songs": []}
    (tmp_path / "index.json").write_text(json.dumps(ds_songs))
    np.save(tmp_path / "tokens.npy", np.zeros((0, 9), np.int32))
    ds = Dataset.load(tmp_path)
    assert len(ds) == 0 and ds.split("train") == []
    with pytest.raises(VbgmError, match="unknown split"):
        ds.split("training")


def test_split_is_deterministic_and_about_90_5_5():
    names = [f"folder/song{i:05d}.mid" for i in range(4000)]
    splits = [split_of(n) for n in names]
    assert splits == [split_of(n) for n in names]
    share = {s: splits.count(s) / len(names) for s in ("train", "valid", "test")}
    assert 0.88 < share["train"] < 0.92 and 0.035 < share["valid"] < 0.065


def test_parse_genre():
    assert parse_genre("Pop") == 5 and parse_genre("6") == 6 and parse_genre(0) == 0
    with pytest.raises(VbgmError):
        parse_genre("7")


def _square_or_die(x: int) -> int:
    if x == 3:
        os.kill(os.getpid(), signal.SIGKILL)  # dies without raising, as a segfaulting parser
    return x * x


def test_run_isolated_survives_a_crashing_item():
    items = list(range(40))
    results = run_isolated(_square_or_die, items, (), workers=2, progress=False,
                           on_crash=lambda x: -x)
    assert results == [-3 if x == 3 else x * x for x in items]
