"""Controlled generation and the `vbgm generate` / `compose` commands, with the shipped model."""

from __future__ import annotations

import hashlib
from pathlib import Path

import av
import numpy as np
import pytest
import symusic
import torch
from scipy.stats import spearmanr
from vbgm.cli import main
from vbgm.errors import VbgmError
from vbgm.metrics import realised_bar_density
from vbgm.midi import load_song
from vbgm.pipeline import default_checkpoint, load_model
from vbgm.sampling import Controls, Held, Request, SamplingConfig, generate, row_losses
from vbgm.song import DURATION, INSTRUMENT, ONSET
from vbgm.tokens import ANY_INIT, encode
from vbgm.video import analyze

SHORT_CLIPS = ("carphone_pristine.mp4", "cup.mp4", "bikes.mp4")


@pytest.fixture(scope="module")
def model():
    return load_model()


def _controls(seed: int = 0, bars: int = 8) -> Controls:
    rng = np.random.default_rng(seed)
    n = bars * 16 - 5  # a partial last bar
    beats = np.sort(rng.choice(n, size=10, replace=False))
    return Controls(n_sixteenths=n, bar_density=rng.integers(1, 14, size=bars),
                    beats=np.stack([beats, rng.integers(1, 9, size=10)], axis=1))


def test_same_seed_same_tokens_and_only_chosen_instruments(model):
    req = Request.parse("rock", "drums,bass")
    a = generate(model, _controls(), req, SamplingConfig(control=0.5), candidates=2, seed=3)
    b = generate(model, _controls(), req, SamplingConfig(control=0.5), candidates=2, seed=3)
    assert [g.tokens.tobytes() for g in a] == [g.tokens.tobytes() for g in b]
    for g in a:
        assert set(np.unique(g.song.notes[:, INSTRUMENT])) <= {1, 4}
    c = generate(model, _controls(), req, SamplingConfig(control=0.5), candidates=1, seed=4)
    assert c[0].tokens.tobytes() != a[0].tokens.tobytes()


@pytest.fixture(scope="module")
def long_song_rows(midi_root: Path) -> torch.Tensor:
    """(1, 1537, 9) token rows of a real song much longer than the model's 512-row window."""
    song, _ = load_song(midi_root / "simutrans" / "01-Simutrans-Main-Theme.mid")
    return torch.from_numpy(encode(song)[:1537].astype(np.int64))[None]


def test_the_state_is_rebuilt_from_the_last_rows(model, long_song_rows):
    """Once the state holds `window` rows, `Held` rebuilds it from the conditioning rows and the
    last `keep`: the rows after that see exactly those (the parallel form over them)."""
    init, x = torch.from_numpy(ANY_INIT.astype(np.int64))[None], long_song_rows[:, :40]
    held, state = Held(window=32, keep=8), model.init_state(init)
    step = model.stepper()
    for t in range(40):
        if held.full():
            assert t == 32
            state = held.rebuilt(model, init)
        h, state = step(held.fed(x[:, t].numpy()), state)
    with torch.no_grad():
        want = model(init, x[:, 24:40])[:, -1]  # the 8 kept rows and the 8 after them
    assert (h - want).abs().max() <= 1e-3


def test_rebuilding_the_state_keeps_the_model_on_track_in_a_long_song(model, long_song_rows):
    """The shipped model learnt from 512-row windows; over a real song's rows 1024-1536 its loss
    run as generation runs it is several times its loss at the start, unless the state is
    rebuilt (`SamplingConfig.window`; benchmarks/bench_context.py has the figures)."""
    init = torch.from_numpy(ANY_INIT.astype(np.int64))[None]
    x, y = long_song_rows[:, :-1], long_song_rows[:, 1:]
    config = SamplingConfig()
    unbounded = row_losses(model, init, x, y)
    rebuilt = row_losses(model, init, x, y, config.window, config.keep)
    assert float(rebuilt[:, :512].mean()) == pytest.approx(float(unbounded[:, :512].mean()))
    late_unbounded, late = float(unbounded[:, 1024:].mean()), float(rebuilt[:, 1024:].mean())
    assert late < 0.5 * late_unbounded
    assert late < 1.5 * float(rebuilt[:, :512].mean())


def test_a_window_must_hold_more_rows_than_it_keeps():
    for window, keep in ((-1, 128), (64, 64), (64, 0)):
        with pytest.raises(VbgmError):
            SamplingConfig(window=window, keep=keep)
        with pytest.raises(VbgmError):
            Held(window, keep)
    assert not Held(0, 0).full()  # off: never rebuilt


def test_full_control_places_every_visual_beat_and_follows_density(model):
    ctl = _controls(1)
    req = Request.parse("pop", "drums,piano,bass")
    (g,) = generate(model, ctl, req, SamplingConfig(control=1.0), seed=0)
    onsets = {}
    for onset, instr in g.song.notes[:, [ONSET, INSTRUMENT]]:
        onsets.setdefault(int(onset), set()).add(int(instr))
    for sixteenth, strength in ctl.beats:
        if strength > 0:  # every rhythm instrument has an onset on the beat's own sixteenth
            assert set(req.rhythm_instruments) <= onsets.get(int(sixteenth), set())
    rho = spearmanr(ctl.bar_density, realised_bar_density(g.song, len(ctl.bar_density))).statistic
    assert rho >= 0.8
    # Ends exactly on the last sixteenth: nothing after it, the last chord held to it.
    assert g.song.n_sixteenths == ctl.n_sixteenths
    assert (g.song.notes[:, ONSET] + g.song.notes[:, DURATION]).max() == ctl.n_sixteenths


def test_no_control_injected_at_c0_and_fidelity_grows_with_c(model):
    fits = {}
    for c in (0.0, 0.5, 1.0):
        gens = [generate(model, _controls(s), Request(), SamplingConfig(control=c), seed=s)[0]
                for s in range(3)]
        if c == 0.0:
            assert all(g.n_forced_beats == 0 for g in gens)
        fits[c] = np.mean([g.score for g in gens])
    assert fits[0.0] < fits[0.5] < fits[1.0]


def test_candidates_are_sorted_by_fit(model):
    gens = generate(model, _controls(2), Request(), SamplingConfig(control=0.7), candidates=3)
    assert len(gens) == 3
    assert [g.score for g in gens] == sorted((g.score for g in gens), reverse=True)


@pytest.mark.parametrize("clip", SHORT_CLIPS)
def test_density_follows_video_on_real_clips(model, video_root, clip):
    analysis = analyze(video_root / clip)
    ctl = Controls.from_analysis(analysis)
    (g,) = generate(model, ctl, Request(), SamplingConfig(control=1.0), seed=0)
    # A partial last bar or pickup bar 0 has no room for its class's onsets: whole bars only.
    full, first = ctl.n_sixteenths // 16, int(ctl.start > 0)
    dens = ctl.bar_density[first:full]
    realised = realised_bar_density(g.song, full)[first:]
    if np.ptp(dens) > 0:
        assert spearmanr(dens, realised).statistic >= 0.8
    else:  # one class everywhere: every bar gets the planned number of slots (+ forced beats)
        assert np.all(realised >= dens - 1)


def _streams(path: Path) -> tuple[float, float]:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        a = c.streams.audio[0]
        vd = float(v.duration * v.time_base) if v.duration else float(c.duration / 1e6)
        samples = sum(f.samples for f in c.decode(a))
        return vd, samples / a.rate


def test_generate_end_to_end_on_a_real_clip(video_root, tmp_path):
    src = video_root / "cup.mp4"
    before = hashlib.sha256(src.read_bytes()).hexdigest()
    out = tmp_path / "cup_music.mp4"
    rc = main(["generate", str(src), "-o", str(out), "--seed", "1", "--quiet",
               "--instruments", "drums,piano,bass"])
    assert rc == 0
    assert hashlib.sha256(src.read_bytes()).hexdigest() == before
    video_s, audio_s = _streams(out)
    assert abs(video_s - audio_s) <= 0.1
    analysis = analyze(src)
    score = symusic.Score(str(out.with_suffix(".mid")))
    assert score.tempos[0].qpm == pytest.approx(analysis.tempo_bpm, abs=0.01)
    sixteenth = 15.0 / analysis.tempo_bpm
    end_s = score.end() / score.ticks_per_quarter * 60.0 / analysis.tempo_bpm
    assert abs(end_s - analysis.duration_s) <= sixteenth
    assert {t.name for t in score.tracks} <= {"Drums", "Piano", "Bass"}
    assert any(t.is_drum for t in score.tracks)
    # Same seed, same bytes of MIDI.
    out2 = tmp_path / "again.mp4"
    assert main(["generate", str(src), "-o", str(out2), "--seed", "1", "--quiet",
                 "--instruments", "drums,piano,bass"]) == 0
    assert out.with_suffix(".mid").read_bytes() == out2.with_suffix(".mid").read_bytes()


@pytest.mark.parametrize("extra, message", [
    (["--genre", "polka"], "unknown genre"),
    (["--instruments", "drums,kazoo"], "unknown instrument"),
    (["--control", "1.5"], "control degree"),
    (["--checkpoint", "missing.pt"], "no such checkpoint"),
    (["--window", "4"], "--window must be 0 or at least 8"),
])
def test_bad_requests_write_nothing(video_root, tmp_path, capsys, extra, message):
    out = tmp_path / "o.mp4"
    rc = main(["generate", str(video_root / "carphone_pristine.mp4"), "-o", str(out), *extra])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert list(tmp_path.iterdir()) == []


def test_output_equal_to_input_is_refused(tmp_path, video_root, capsys):
    src = tmp_path / "clip.mp4"
    src.write_bytes((video_root / "carphone_pristine.mp4").read_bytes())
    before = src.read_bytes()
    assert main(["generate", str(src), "-o", str(src), "--midi", str(tmp_path / "m.mid")]) == 2
    assert "input" in capsys.readouterr().err
    assert src.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_existing_output_needs_force(tmp_path, video_root, capsys):
    out = tmp_path / "o.mp4"
    out.write_bytes(b"keep me")
    rc = main(["generate", str(video_root / "carphone_pristine.mp4"), "-o", str(out)])
    assert rc == 2 and "--force" in capsys.readouterr().err
    assert out.read_bytes() == b"keep me"


def test_a_negative_seed_is_refused_before_any_work(model, video_root, tmp_path, capsys):
    """numpy's generators take no negative seed: the command line says so before analysing
    (it was a traceback), and the library (API, web app) raises a VbgmError."""
    from vbgm.controls import auto_key

    for argv in (["compose", "--seconds", "4", "-o", str(tmp_path / "x.mid"), "--seed", "-1"],
                 ["generate", str(video_root / "carphone_pristine.mp4"), "-o",
                  str(tmp_path / "x.mp4"), "--seed", "-2"]):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 2
        assert "argument --seed" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(VbgmError, match="seed"):
        auto_key(0.5, [9, 9], -1)
    with pytest.raises(VbgmError, match="seed"):
        generate(model, Controls(n_sixteenths=32), seed=-1)


def test_compose_without_video(tmp_path):
    out = tmp_path / "free.mid"
    assert main(["compose", "--seconds", "6", "--tempo", "100", "-o", str(out), "--quiet",
                 "--instruments", "piano,strings"]) == 0
    score = symusic.Score(str(out))
    assert score.tempos[0].qpm == pytest.approx(100.0)
    assert {t.name for t in score.tracks} <= {"Piano", "Strings"}
    n = int(np.ceil(6 * 100 / 15))
    assert score.end() == n * score.ticks_per_quarter // 4


def test_key_option_sets_the_key_and_auto_follows_the_picture(tmp_path, video_root, capsys):
    from vbgm.harmony import scale_mask
    from vbgm.midi import read_midi

    out = tmp_path / "dm.mid"
    assert main(["compose", "--seconds", "10", "-o", str(out), "--quiet", "--key", "d minor",
                 "--instruments", "piano,bass"]) == 0
    notes = read_midi(out).notes
    assert scale_mask(14)[notes[:, 2] % 12].mean() >= 0.9  # D minor's scale (+ C#)
    assert main(["compose", "--seconds", "4", "-o", str(tmp_path / "x.mid"), "--key", "H"]) == 2
    assert "unknown key 'H'" in capsys.readouterr().err
    assert main(["generate", str(video_root / "carphone_pristine.mp4"), "-o",
                 str(tmp_path / "c.mp4"), "--key", "auto", "--quiet"]) == 0
    assert "(score " in capsys.readouterr().out  # the console says which mode, and why


def test_shipped_model_is_small_and_loads():
    path = default_checkpoint()
    assert path.stat().st_size <= 25 * 2**20
    assert load_model(path).config.n_layer >= 1


def test_fades_are_counted_from_the_songs_start():
    """`fade_velocities` fades in over the first sixteenths of the song and out over its last,
    after a pickup's rest too: a song starting on sixteenth 8 fades as the same notes 8
    sixteenths earlier with no pickup do."""
    from vbgm.pipeline import FadeConfig, fade_velocities
    from vbgm.song import Song

    notes = np.array([[s, 1, 60, 2, 100] for s in range(8, 40)], dtype=np.int32)
    plain = notes.copy()
    plain[:, ONSET] -= 8
    fade = FadeConfig()
    got = fade_velocities(Song(notes=notes, n_sixteenths=40, start=8), fade).notes[:, 4]
    want = fade_velocities(Song(notes=plain, n_sixteenths=32), fade).notes[:, 4]
    np.testing.assert_array_equal(got, want)
    assert got[0] < got[16] > got[-1]  # softer at both ends
