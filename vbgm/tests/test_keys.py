"""Keys: the key token, transposition of rows and songs, the two training regimes, keyed
training (time budget, whole-split losses) and starting a keyed run from an unkeyed model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from vbgm.cli import main
from vbgm.dataset import Dataset, prepare, song_key
from vbgm.midi import SkipSong, read_midi
from vbgm.model import CMT, CONFIGS, CMTConfig, load_checkpoint, save_checkpoint
from vbgm.sampling import Controls, Request, generate
from vbgm.song import DRUMS, INSTRUMENT, PITCH
from vbgm.tokens import decode, encode, init_tokens
from vbgm.train import (
    TrainConfig,
    initial_weights,
    plan_epoch,
    split_losses,
    split_windows,
    train,
)
from vbgm.vocab import INSTR, TYPE, TYPE_NOTE

from vbgm import harmony, keys

pytestmark = pytest.mark.usefixtures("one_thread")


def test_home_shift_takes_every_key_to_c_major_or_a_minor_within_a_tritone():
    for key in range(harmony.N_KEYS):
        t = keys.home_shift(key)
        assert -6 <= t <= 5
        assert keys.shift_key(key, t) == (21 if harmony.is_minor(key) else 0)
        assert keys.generation_key("normalise", key) == (keys.shift_key(key, t), -t)
    assert keys.generation_key("augment", 5) == (5, 0)
    assert keys.generation_key("normalise", None) == (None, 0)


def test_key_tokens_and_the_initial_rows():
    assert keys.key_token(None) == keys.key_token(-1) == keys.ANY_KEY == 0
    assert [keys.key_token(k) for k in (0, 23)] == [1, 24]
    rows = init_tokens(5, [1, 4], key_token=keys.key_token(harmony.parse_key("D minor")))
    assert rows[1].tolist() == [0, 15, 0] and rows[0, 0] == 5
    assert keys.n_key_classes("none") == 1 and keys.n_key_classes("augment") == 25
    with pytest.raises(Exception, match="key regime"):
        keys.n_key_classes("sideways")


@pytest.fixture(scope="module")
def real_song(midi_root: Path):
    """A real multi-track song with drums (a Freedoom level theme)."""
    for path in sorted((midi_root / "freedoom").rglob("*.mid")):
        try:
            song = read_midi(path)
        except SkipSong:  # not 4/4
            continue
        if (song.notes[:, INSTRUMENT] == DRUMS).any() and song_key(song)[1] > 0.6:
            return song
    pytest.fail("no Freedoom song with drums and a clear key")


@pytest.mark.parametrize("semitones", [-6, -1, 3, 6])
def test_transposing_rows_moves_the_key_and_leaves_the_drums(real_song, semitones):
    rows = encode(real_song)
    moved = keys.transpose_rows(rows, semitones)
    drums = rows[:, INSTR] == DRUMS
    assert np.array_equal(moved[drums], rows[drums])
    assert np.array_equal(np.delete(moved, 3, axis=1), np.delete(rows, 3, axis=1))
    notes = (rows[:, TYPE] == TYPE_NOTE) & ~drums
    assert ((moved[notes, 3] - rows[notes, 3]) % 12 == semitones % 12).all()
    assert moved[notes, 3].min() >= 1 and moved[notes, 3].max() <= 128
    # The key finder agrees, and the song-level transposition is the same operation.
    key = song_key(real_song)[0]
    assert song_key(decode(moved))[0] == keys.shift_key(key, semitones)
    assert np.array_equal(decode(moved).notes,
                          decode(encode(keys.transpose_song(real_song, semitones))).notes)


def test_transposition_folds_by_octaves_instead_of_dropping_notes():
    rows = np.zeros((2, 9), np.int64)
    rows[:, TYPE], rows[:, INSTR], rows[:, 3] = TYPE_NOTE, 2, [1, 128]  # pitches 0 and 127
    assert (keys.transpose_rows(rows, -3)[:, 3] - 1).tolist() == [9, 124]
    assert (keys.transpose_rows(rows, 5)[:, 3] - 1).tolist() == [5, 120]


def test_window_keys_of_each_regime():
    rng = np.random.default_rng(0)
    assert keys.window_key("none", 4, rng, False) == (0, 0)
    d_minor = harmony.parse_key("Dm")
    assert keys.window_key("normalise", d_minor, rng, False) == (-5, keys.key_token(21))
    assert keys.window_key("normalise", d_minor, rng, True) == (-5, 0)  # dropout: any key
    shifts = set()
    for _ in range(200):
        t, token = keys.window_key("augment", d_minor, rng, False)
        assert token == keys.key_token(keys.shift_key(d_minor, t))
        shifts.add(t)
    assert shifts == set(keys.AUGMENT_SHIFTS.tolist())
    assert keys.window_key("augment", d_minor, None, False) == (0, keys.key_token(d_minor))
    assert keys.window_key("augment", -1, rng, False) == (0, 0)  # no known key: as it is


def test_plans_without_keys_are_unchanged_and_keyed_plans_are_deterministic():
    lengths = {i: 40 + 17 * i for i in range(12)}
    plain = plan_epoch(lengths, 4, 32, seed=2, epoch=1, cond_dropout=0.3)
    keyed = plan_epoch(lengths, 4, 32, seed=2, epoch=1, cond_dropout=0.3, regime="augment",
                       song_keys={i: i % 24 for i in lengths})
    strip = [[(w.song, w.start, w.length, w.any_init) for w in b] for b in keyed]
    assert strip == [[(w.song, w.start, w.length, w.any_init) for w in b] for b in plain]
    assert all(w.shift == 0 and w.key_token == 0 for b in plain for w in b)
    assert {w.shift for b in keyed for w in b} > {0}
    assert all(w.key_token == 0 for b in keyed for w in b if w.any_init)
    again = plan_epoch(lengths, 4, 32, seed=2, epoch=1, cond_dropout=0.3, regime="augment",
                       song_keys={i: i % 24 for i in lengths})
    assert again == keyed


@pytest.fixture(scope="module")
def dataset_dir(midi_root: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ds") / "simutrans"
    prepare([midi_root / "simutrans"], out)
    return out


def test_split_losses_cover_every_token_once(dataset_dir):
    ds = Dataset.load(dataset_dir)
    windows = split_windows(ds, "valid", 64, "augment")
    for i in ds.split("valid"):
        mine = sorted((w.start, w.length) for w in windows if w.song == i)
        n = len(ds.tokens(i)) - 1
        assert sum(length for _, length in mine) == n and mine[0][0] == 0
        assert all(a + la == b for (a, la), (b, _) in zip(mine, mine[1:]))
    torch.manual_seed(0)
    losses = split_losses(CMT(CONFIGS["tiny"]), ds, "valid", seq_len=64)
    assert set(losses) == {"barbeat", "type", "density", "pitch", "duration", "instrument",
                           "strength", "mean"}
    assert losses["mean"] == pytest.approx(np.mean([v for k, v in losses.items()
                                                    if k != "mean"]))
    assert 0 < losses["mean"] < 10


def test_keyed_training_with_a_time_budget(dataset_dir, tmp_path, capsys):
    """A keyed run fits its schedule to --minutes, stores the regime, and exports a model
    whose key slot has 25 classes; it then follows a requested key token in generation."""
    ds = Dataset.load(dataset_dir)
    tc = TrainConfig(model="tiny", steps=10_000, batch_size=2, seq_len=32, warmup=2,
                     eval_every=1000, ckpt_every=1000, keys="augment", seed=1)
    out = train(ds, tmp_path / "run", tc, progress=False, minutes=0.15)
    assert 50 < out["step"] < 10_000  # stopped by the fitted schedule, not by --steps
    model, meta = load_checkpoint(tmp_path / "run" / "model.pt")
    assert meta["config"].keys == "augment" and model.init_emb[1].num_embeddings == 25
    last = load_checkpoint(tmp_path / "run" / "last.pt")[1]["extra"]
    assert last["train"]["steps"] == out["step"]  # the fitted length is the stored schedule
    controls = Controls(n_sixteenths=64, bar_density=[9] * 4, beats=np.zeros((0, 2), int))
    (g,) = generate(model, controls, Request(key=harmony.parse_key("E")), seed=0)
    assert len(g.song.notes)
    # `vbgm evaluate loss` reports the seven fields and their mean for each model.
    assert main(["evaluate", "loss", str(dataset_dir), str(tmp_path / "run" / "model.pt"),
                 "--seq-len", "64", "--csv", str(tmp_path / "loss.csv")]) == 0
    row = (tmp_path / "loss.csv").read_text().splitlines()
    assert row[0].split(",")[:3] == ["model", "keys", "barbeat"] and "augment" in row[1]
    assert "| mean |" in capsys.readouterr().out


def test_a_keyed_run_starts_from_an_unkeyed_model(tmp_path):
    torch.manual_seed(0)
    plain = CMT(CONFIGS["tiny"])
    save_checkpoint(tmp_path / "plain.pt", plain, CONFIGS["tiny"], half=True)
    keyed = CMTConfig(**{**CONFIGS["tiny"].__dict__, "keys": "augment"})
    state = initial_weights(tmp_path / "plain.pt", keyed)
    table = state["init_emb.1.weight"]
    assert table.shape[0] == 25
    assert torch.allclose(table, plain.init_emb[1].weight.half().float()[:1].expand(25, -1))
    CMT(keyed).load_state_dict(state)
    # ... but not the other way round: a keyed model's key table has no unkeyed meaning.
    save_checkpoint(tmp_path / "keyed.pt", CMT(keyed), keyed)
    with pytest.raises(Exception, match="keys"):
        initial_weights(tmp_path / "keyed.pt", CONFIGS["tiny"])


def test_a_checkpoint_from_before_keys_loads_as_unkeyed(tmp_path):
    """Checkpoints saved before the key regime existed have no `keys` in their config."""
    model = CMT(CONFIGS["tiny"])
    save_checkpoint(tmp_path / "old.pt", model, CONFIGS["tiny"])
    payload = torch.load(tmp_path / "old.pt", weights_only=False)
    del payload["config"]["keys"]
    torch.save(payload, tmp_path / "old.pt")
    loaded, meta = load_checkpoint(tmp_path / "old.pt")
    assert meta["config"].keys == "none" and loaded.init_emb[1].num_embeddings == 1


def test_pitched_notes_of_a_song_keep_their_place(real_song):
    moved = keys.transpose_song(real_song, 4)
    pitched = real_song.notes[:, INSTRUMENT] != DRUMS
    assert np.array_equal(np.delete(moved.notes, PITCH, axis=1),
                          np.delete(real_song.notes, PITCH, axis=1))
    assert np.array_equal(moved.notes[~pitched], real_song.notes[~pitched])


def test_auto_key_gives_a_calm_dark_clip_minor_and_a_bright_lively_one_major(video_root):
    """`--key auto` on two real clips: vtest.avi (a still surveillance camera, people walking;
    brightness 0.47, median density class 6) and cup.mp4 (bright, 0.67, hand-held, class 11.5)."""
    from vbgm.controls import video_auto_key
    from vbgm.video import analyze

    modes = {}
    for name in ("vtest.avi", "cup.mp4"):
        a = analyze(video_root / name)
        modes[name] = harmony.is_minor(video_auto_key(a, 0))
    assert modes == {"vtest.avi": True, "cup.mp4": False}
