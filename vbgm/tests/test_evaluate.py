"""`vbgm evaluate table1` and `vbgm evaluate video` with tiny random models, a tiny prepared
dataset of real MIDI files and two real video clips; and the pure table/plot helpers."""

from __future__ import annotations

import csv
import math
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from vbgm.cli import main
from vbgm.evaluation import (
    MUSIC_COLUMNS,
    SONG_KEYS,
    crop_song,
    csv_text,
    folder_names,
    held_out_songs,
    mean_std,
    means_markdown,
    plot_tradeoff,
    relative_gap,
    summary_row,
    table1_markdown,
)
from vbgm.metrics import MUSICALITY, music_metrics, musicality
from vbgm.model import CMT, CMTConfig, save_checkpoint
from vbgm.song import Song
from vbgm.vocab import STRENGTH

N_SONGS = 3
BARS = 8
TINY = dict(n_layer=1, d_model=64, n_head=2, d_ff=128, dropout=0.0, chunk=16)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models step fastest on one thread, and the machine's cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _save_model(path: Path, ablate: bool) -> Path:
    """A random tiny model. The full one gets a strength head that says 1-2 notes per beat, as
    a trained model mostly does: a uniform one asks ~8 notes on every beat and can run into the
    sampler's token cap (12 per sixteenth) before the video's last beats."""
    torch.manual_seed(1)
    config = CMTConfig(**TINY, ablate_controls=ablate)
    model = CMT(config)
    if not ablate:
        head = model.heads[str(STRENGTH)]
        with torch.no_grad():
            head.weight.zero_()
            head.bias.fill_(-4.0)
            head.bias[1:3] = 4.0
    save_checkpoint(path, model, config)
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A full model as a run folder (best.pt) and an ablated one as a bare .pt file."""
    root = tmp_path_factory.mktemp("runs")
    (root / "full").mkdir()
    return {"model": _save_model(root / "full" / "best.pt", ablate=False).parent,
            "baseline": _save_model(root / "baseline.pt", ablate=True)}


@pytest.fixture(scope="module")
def dataset(midi_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six real pop songs prepared with every song in the test split."""
    from vbgm.dataset import PrepareConfig, prepare

    src = tmp_path_factory.mktemp("midi") / "lmd"
    src.mkdir()
    for f in sorted((midi_root / "lmd_samples").glob("*.mid"))[:6]:
        shutil.copy(f, src / f.name)
    out = tmp_path_factory.mktemp("ds") / "dataset"
    report = prepare([src], out, PrepareConfig(split_percent=(0, 0, 100)))
    assert report.kept >= N_SONGS
    return out


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_table1_rows_and_data_row_matches_direct_metrics(dataset: Path, runs: dict[str, Path],
                                                         tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    from vbgm.dataset import Dataset
    from vbgm.tokens import decode

    md, out_csv = tmp_path / "t1.md", tmp_path / "t1.csv"
    rc = main(["evaluate", "table1", str(dataset), "--baseline", str(runs["baseline"]),
               "--model", str(runs["model"]), "--n", str(N_SONGS), "--bars", str(BARS),
               "--batch", "2", "--md", str(md), "--csv", str(out_csv)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert printed == md.read_text()
    assert "| 4.452 |" in printed and "| 0.810 |" in printed  # the paper's values beside ours
    rows = _read_csv(out_csv)
    assert [r["row"] for r in rows] == ["Data", "Baseline", "CMT"]
    assert all(int(r["songs"]) == N_SONGS for r in rows)
    for r in rows:
        for key, _ in MUSIC_COLUMNS:
            assert math.isfinite(float(r[f"{key}_mean"])), (r["row"], key)
        assert all(f"{key}_mean" in r for key in SONG_KEYS)
    assert "Key clarity (song)" in printed and "CMT vs Data" in printed

    # The Data row: the same songs, decoded and cut here by hand, measured directly.
    ds = Dataset.load(dataset)
    ids = [i for i, _ in held_out_songs(ds, N_SONGS, BARS * 16, seed=0)]
    assert len(ids) == N_SONGS
    direct = {k: [] for k in SONG_KEYS}
    for i in ids:
        song = decode(ds.tokens(i))
        notes = song.notes[song.notes[:, 0] < BARS * 16].copy()
        notes[:, 1] = np.minimum(notes[:, 1], BARS * 16 - notes[:, 0])
        cut = Song(notes, BARS * 16)
        m = {**asdict(music_metrics(cut, 120.0)), **musicality(cut)}
        for k in direct:
            direct[k].append(m[k])
    for k, values in direct.items():
        if not np.isfinite(values).any():  # e.g. no bass in these songs: "nan" in the CSV
            assert int(rows[0][f"{k}_n"]) == 0
            continue
        mean, std, _ = mean_std(values)
        assert float(rows[0][f"{k}_mean"]) == pytest.approx(mean, rel=1e-5), k
        assert float(rows[0][f"{k}_std"]) == pytest.approx(std, rel=1e-4, abs=1e-6), k


def test_free_generation_asks_for_the_key_compose_picks(runs: dict[str, Path]) -> None:
    """`generate_free(auto_key=True)` (Table 1's default) makes each batch as `vbgm compose
    --key auto` would with the batch's seed; 'free' (no key) and a named key differ from it."""
    from vbgm.controls import auto_key_without_video
    from vbgm.evaluation import generate_free
    from vbgm.model import load_checkpoint
    from vbgm.request import Request, SamplingConfig
    from vbgm.sampling import Controls, generate

    model, _ = load_checkpoint(runs["model"] / "best.pt")
    n16, seed, free_config = 64, 3, SamplingConfig(control=0.0)
    songs = generate_free(model, 4, n16, seed=seed, batch=2, auto_key=True)
    expected = []
    for k in range(2):
        batch_seed = seed * 1_000_003 + k
        key = auto_key_without_video(batch_seed)
        expected += [g.song for g in generate(model, Controls(n_sixteenths=n16), Request(key=key),
                                              free_config, candidates=2, seed=batch_seed)]
    assert all((a.notes == b.notes).all() for a, b in zip(songs, expected, strict=True))
    free = generate_free(model, 4, n16, seed=seed, batch=2)
    assert any(a.notes.shape != b.notes.shape or (a.notes != b.notes).any()
               for a, b in zip(songs, free))
    named = generate_free(model, 2, n16, seed=seed, batch=2, request=Request(key=14),
                          auto_key=True)  # a named key wins over auto
    by_hand = generate(model, Controls(n_sixteenths=n16), Request(key=14), free_config,
                       candidates=2, seed=seed * 1_000_003)
    assert all((a.notes == g.song.notes).all() for a, g in zip(named, by_hand, strict=True))


def test_table1_bad_inputs_fail_cleanly(dataset: Path, runs: dict[str, Path], tmp_path: Path,
                                        capsys: pytest.CaptureFixture) -> None:
    empty_run = tmp_path / "empty-run"
    empty_run.mkdir()
    base = ["evaluate", "table1", str(dataset), "--baseline", str(runs["baseline"])]
    for argv, needle in (
            (base + ["--model", str(tmp_path / "missing")], "no such run folder"),
            (base + ["--model", str(empty_run)], "no checkpoint in this run folder"),
            (["evaluate", "table1", str(tmp_path), "--baseline", str(runs["baseline"]),
              "--model", str(runs["model"])], "not a vbgm dataset"),
            (base + ["--model", str(runs["model"]), "--bars", "100000"], "no test song"),
            (base + ["--model", str(runs["model"]), "--n", "0"], "--n must be"),
            (base + ["--model", str(runs["model"]), "--key", "H major"], "unknown key")):
        md = tmp_path / "never.md"
        assert main(argv + ["--md", str(md)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err, err
        assert not md.exists()


@pytest.fixture(scope="module")
def clips(video_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two short real clips (8 s and 4 s) in a folder of their own."""
    folder = tmp_path_factory.mktemp("clips")
    for name in ("cup.mp4", "carphone_pristine.mp4"):
        (folder / name).symlink_to(video_root / name)
    return folder


def test_video_fit_table_hit_rate_and_outputs(clips: Path, runs: dict[str, Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    md, out_csv, plot = tmp_path / "fit.md", tmp_path / "fit.csv", tmp_path / "fit.png"
    rc = main(["evaluate", "video", str(clips), "--control", "1", "0",
               "--checkpoint", str(runs["model"]), "--samples", "2", "--md", str(md),
               "--csv", str(out_csv), "--plot", str(plot)])
    assert rc == 0
    assert capsys.readouterr().out == md.read_text()
    rows = {float(r["control"]): r for r in _read_csv(out_csv)}
    assert sorted(rows) == [0.0, 1.0]
    assert all(int(r["videos"]) == 2 and int(r["songs"]) == 4 for r in rows.values())
    hit0, hit1 = (float(rows[c]["beat_hit_rate_mean"]) for c in (0.0, 1.0))
    # At C = 1 the sampler places an onset on every visual beat of strength > 0.
    assert hit1 == 1.0 and float(rows[1.0]["beat_hit_rate_std"]) == 0.0
    assert hit1 >= hit0
    assert float(rows[1.0]["beat_align_mean"]) == 1.0
    for r in rows.values():
        assert 0.0 <= float(r["length_error_s_mean"]) < 1.0  # music ends with the video
        assert math.isfinite(float(r["pitch_entropy_mean"]))
        assert 0.0 <= float(r["empty_beat_rate_mean"]) <= 1.0
        assert all(f"{key}_mean" in r for key, _ in MUSICALITY)
    assert "Musicality, mean per C" in md.read_text() and " C=1 |" in md.read_text()
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_video_bad_inputs_fail_cleanly(clips: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not a video")
    for argv, needle in (
            ([str(empty)], "no video files"),
            ([str(tmp_path / "missing")], "not a folder"),
            ([str(clips), "--control", "1.5"], "must be in [0, 1]"),
            ([str(clips), "--checkpoint", str(tmp_path / "nope")], "no such run folder"),
            ([str(clips), "--plot", str(tmp_path / "fit.txt")], "the plot must be")):
        assert main(["evaluate", "video", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err, err


def test_summary_helpers() -> None:
    assert mean_std([1.0, math.nan, 3.0]) == (2.0, 1.0, 2)
    assert math.isnan(mean_std([math.nan])[0])
    row = summary_row({"row": "CMT", "from": "x", "songs": 2},
                      {"pitch_entropy": [1.0, math.nan], "grooving_similarity": [0.5, 0.7]},
                      [k for k, _ in MUSIC_COLUMNS])
    md = table1_markdown([row])
    assert "1.000 ± 0.000 (n=1)" in md and "0.600 ± 0.100" in md and "n/a" in md
    assert "| 3.617 |" in md
    assert csv_text([row]).splitlines()[0].startswith("row,from,songs,pitch_entropy_mean")
    song = Song(np.array([[0, 8, 60, 2, 90], [6, 4, 62, 2, 90], [9, 2, 64, 2, 90]], np.int32), 12)
    cut = crop_song(song, 8)
    assert cut.n_sixteenths == 8 and cut.notes[:, 1].tolist() == [8, 2]


def test_plot_tradeoff_writes_image(tmp_path: Path) -> None:
    from vbgm.evaluation import FIT_COLUMNS

    keys = [k for k, _, _ in FIT_COLUMNS] + [k for k, _ in MUSIC_COLUMNS]
    rng = np.random.default_rng(0)
    rows = [summary_row({"control": c, "videos": 1, "songs": 3},
                        {k: list(rng.random(3)) for k in keys}, keys) for c in (0.0, 0.5, 1.0)]
    out = tmp_path / "plot.svg"
    plot_tradeoff(rows, out)
    text = out.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text


def test_structureness_of_a_clip_shorter_than_the_path_filter() -> None:
    """A 4 s clip (8 feature frames, under the 6 s path-smoothing filter) is measured, not a
    crash: short videos give such clips."""
    from vbgm.metrics import structureness

    onsets = np.arange(0, 32, 2)
    notes = np.stack([onsets, np.full(16, 2), 60 + onsets % 7, np.full(16, 2), np.full(16, 90)],
                     axis=1).astype(np.int32)
    si = structureness(Song(notes, 32), tempo_bpm=120.0)
    assert 0.0 <= si <= 1.0


def test_means_table_and_relative_gap() -> None:
    assert relative_gap(2.0, 3.0) == 0.5 and relative_gap(-2.0, -3.0) == -0.5
    assert math.isnan(relative_gap(0.0, 1.0)) and math.isnan(relative_gap(math.nan, 1.0))
    keys = [k for k, _ in MUSICALITY]
    real = summary_row({"folder": "a/real"}, {"polyphony": [2.0, 4.0], "pitch_range": [40.0]},
                       keys)
    gen = summary_row({"folder": "b/gen"}, {"polyphony": [4.5], "pitch_range": [30.0]}, keys)
    md = means_markdown([real, gen], ["real", "gen"], MUSICALITY, reference=0)
    lines = md.splitlines()
    assert len(lines) == 2 + len(MUSICALITY)
    assert len({len(line) for line in lines}) == 1  # padded: the columns line up
    assert lines[0].split("|")[1:-1] == [c.ljust(len(c)) for c in lines[0].split("|")[1:-1]]
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
             for line in lines[2:]}
    assert cells["Polyphony (pitches)"] == ["3.000", "4.500", "+50.0%"]
    assert cells["Pitch range (semitones)"] == ["40.00", "30.00", "-25.0%"]
    assert cells["Bass median pitch"] == ["n/a", "n/a", "n/a"]
    assert "gen vs real" in lines[0]
    assert "vs" not in means_markdown([real, gen], ["real", "gen"], MUSICALITY)
    assert folder_names(["x/real", "y/gen"]) == ["real", "gen"]
    assert folder_names(["x/songs", "y/songs"]) == ["x/songs", "y/songs"]


def test_evaluate_midi_two_folders_shows_musicality_and_gap(midi_root: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    out_csv = tmp_path / "t.csv"
    rc = main(["evaluate", "midi", str(midi_root / "pop909"), str(midi_root / "freedoom"),
               "--limit", "2", "--csv", str(out_csv)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "| Folder | Files | Skipped | Pitch entropy (bits) |" in out  # the paper table first
    assert "freedoom vs pop909" in out
    for _, title in MUSICALITY:
        line = next(x for x in out.splitlines() if x.startswith(f"| {title} "))
        assert line.rstrip().endswith("% |") or line.rstrip().endswith("n/a |"), line
    rows = _read_csv(out_csv)
    assert len(rows) == 2 and all(f"{k}_mean" in rows[0] for k in SONG_KEYS)
    assert float(rows[0]["scale_consistency_mean"]) > 0.9  # pop909 is tonal
    assert float(rows[1]["drum_kit_share_mean"]) > 0.9  # freedoom's drums are GM
