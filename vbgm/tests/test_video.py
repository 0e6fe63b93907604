"""Video analysis: real clips, synthetic clips with known truth, containers/codecs, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import av
import numpy as np
import pytest
from vbgm.cli import main
from vbgm.controls import (
    DENSITY_FLOOR,
    DENSITY_THRESHOLDS,
    STRENGTH_THRESHOLDS,
    density_class,
    strength_class,
)
from vbgm.errors import VbgmError
from vbgm.synthetic_video import pan_frames, positions_from_velocity, write_video
from vbgm.video import AnalysisConfig, VideoAnalysis, analyze, read_motion, smooth_frames

FPS = 30.0
H, W = 180, 320  # synthetic clips are small: encoding and decoding stay fast


def pan_clip(path: Path, velocity, seconds: float, fps: float = FPS, height: int = H,
             width: int = W, noise: float = 0.0, **kw) -> Path:
    """A panning-texture clip whose horizontal speed (frame heights/s) is velocity(t)."""
    n = round(seconds * fps)
    frames = pan_frames(positions_from_velocity(velocity, n, fps), height, width)
    if noise:
        rng = np.random.default_rng(0)
        frames = (np.clip(f + rng.normal(0, noise, f.shape), 0, 255).astype(np.uint8)
                  for f in frames)
    write_video(path, frames, fps, **kw)
    return path


def reversals(times: list[float], speed: float = 0.4):
    """Velocity that flips direction at each of `times` (each flip is a visual impact)."""
    return lambda t: speed * (-1) ** sum(t >= x for x in times)


# ---------------------------------------------------------------------------------------------
# Real clips


@pytest.fixture(scope="module")
def real_analyses(video_root: Path) -> dict[str, VideoAnalysis]:
    return {p.name: analyze(p) for p in sorted(video_root.iterdir())}


def test_real_clips(real_analyses: dict[str, VideoAnalysis], video_root: Path) -> None:
    assert len(real_analyses) == 5
    for name, a in real_analyses.items():
        with av.open(str(video_root / name)) as c:
            s = c.streams.video[0]
            declared = float(s.duration * s.time_base) if s.duration else c.duration / 1e6
        assert abs(a.duration_s - declared) < 0.15, name
        assert 60 <= a.tempo_bpm <= 160, name
        assert a.tempo_source == ("cuts" if name == "bikes.mp4" else "estimated"), name
        assert a.n_sixteenths == a.start + math.ceil(a.duration_s * a.tempo_bpm / 15 - 1e-9), name
        assert len(a.bars) == math.ceil(a.n_sixteenths / 16), name
        assert [b.index for b in a.bars] == list(range(len(a.bars)))
        assert all(1 <= b.density <= 17 and b.flow >= 0 for b in a.bars), name
        sixteenths = [b.sixteenth for b in a.beats]
        assert sixteenths == sorted(set(sixteenths)), name
        assert all(0 <= s < a.n_sixteenths for s in sixteenths), name
        assert all(1 <= b.strength <= 10 and 0 < b.weight <= 1 for b in a.beats), name
        for b in a.beats:  # each beat sits on the sixteenth nearest its time (a cut: or on
            # the bar line a sixteenth away)
            assert abs(b.time_s - (b.sixteenth - a.start) * a.sixteenth_s) \
                <= a.sixteenth_s * (1.5 if b.is_cut else 0.5) + 1e-6
        assert len(a.frame_times) == len(a.frame_flow) == len(a.envelope)
    # What the footage is: a static camera on pedestrians is slower than cycling with pans.
    vtest = max(b.density for b in real_analyses["vtest.avi"].bars)
    bikes = min(b.density for b in real_analyses["bikes.mp4"].bars)
    assert vtest < bikes
    assert real_analyses["vtest.avi"].fps == pytest.approx(10.0, abs=0.01)
    assert len(real_analyses["bikes.mp4"].cuts) == 5  # the clip has five shot changes
    assert sum(len(a.cuts) for n, a in real_analyses.items() if n != "bikes.mp4") == 0
    # Only bikes.mp4's cuts needed a pickup (its cuts set the tempo: see below).
    assert [n for n, a in real_analyses.items() if a.start] == ["bikes.mp4"]


def test_bikes_cuts_set_the_tempo(video_root: Path,
                                  real_analyses: dict[str, VideoAnalysis]) -> None:
    """bikes.mp4 cuts every 1.8-2.6 s: at its motion's 76 bpm (3.2 s bars, what
    `cuts_set_tempo=False` keeps) two of its five cuts fall 6 sixteenths from any bar line. By
    default the cuts choose the grid: bars of about two seconds, the video entering bar 0
    after a pickup, every cut on a bar line (within a sixteenth before `snap_to_bar_line`); the
    visual beats and the bars' motion are those of the same video."""
    plain = analyze(video_root / "bikes.mp4", AnalysisConfig(cuts_set_tempo=False))
    off = [min(b.sixteenth % 16, 16 - b.sixteenth % 16) for b in plain.cuts]
    assert max(off) > 4 and plain.tempo_bpm == 76.0 and plain.start == 0
    a = real_analyses["bikes.mp4"]
    assert a.tempo_source == "cuts" and 95 <= a.tempo_bpm <= 125 and a.start in (4, 8, 12)
    assert [b.sixteenth % 16 for b in a.cuts] == [0] * 5
    assert a.bars[0].start_s < 0 < a.bars[1].start_s  # bar 0 starts before the video
    assert [round(b.time_s, 3) for b in a.beats] == [round(b.time_s, 3) for b in plain.beats]
    assert a.n_sixteenths == a.start + math.ceil(a.duration_s * a.tempo_bpm / 15 - 1e-9)


def test_a_cut_a_sixteenth_from_a_bar_line_is_put_on_it() -> None:
    from vbgm.video import snap_to_bar_line

    assert [snap_to_bar_line(s, 1) for s in (15, 16, 17, 18, 31, 33)] == [16, 16, 16, 18, 32, 32]
    assert snap_to_bar_line(17, 0) == 17 and snap_to_bar_line(2, 2) == 0


def _cut_motion(cut_times: list[float], seconds: float, fps: float = 60.0):
    """Still frames with a hard cut (a warp residual spike) at each of `cut_times`."""
    from vbgm.video import Motion

    t = np.arange(0, seconds, 1 / fps)
    residual = np.full(len(t), 0.001)
    residual[[round(c * fps) for c in cut_times]] = 0.5
    return Motion(times=t, speed=np.full(len(t), 0.1), directogram=np.zeros((len(t), 8)),
                  residual=residual, histogram_change=np.zeros(len(t)), duration_s=seconds,
                  n_frames=len(t), width=320, height=180)


def test_a_cut_is_not_put_where_another_is_or_far_from_it() -> None:
    """Two cuts on sixteenths 16 and 17 (100 bpm): the first on the bar line, the second not
    moved onto it (both stay cuts). At 40 bpm a sixteenth is 0.375 s: a cut that far from the
    bar line stays where it is (`AnalysisConfig.cut_snap_s`)."""
    from vbgm.video import analyze_motion

    a = analyze_motion(_cut_motion([2.3333, 2.6167], 6.0), tempo=100)
    assert [(b.sixteenth, b.is_cut) for b in a.beats] == [(16, True), (17, True)]
    slow = analyze_motion(_cut_motion([17 * 0.375], 8.0), tempo=40)
    assert [(b.sixteenth, b.is_cut) for b in slow.beats] == [(17, True)]
    near = analyze_motion(_cut_motion([17 * 0.15], 5.0), tempo=100)  # 0.15 s from the line
    assert [(b.sixteenth, b.is_cut) for b in near.beats] == [(16, True)]


def test_smooth_frames_is_scipys_gaussian_filter() -> None:
    from scipy.ndimage import gaussian_filter1d

    x = np.random.default_rng(0).random((40, 8))
    for sigma in (0.5, 1.0, 2.5):
        want = gaussian_filter1d(x, sigma, axis=0, mode="nearest")
        assert np.allclose(smooth_frames(x, sigma), want, atol=1e-12)
    assert np.allclose(smooth_frames(x[:2], 1.0), gaussian_filter1d(x[:2], 1.0, axis=0,
                                                                     mode="nearest"))


def test_json_round_trip(real_analyses: dict[str, VideoAnalysis]) -> None:
    a = real_analyses["cup.mp4"]
    doc = json.loads(a.to_json())
    assert {"duration_s", "fps", "tempo_bpm", "n_sixteenths", "bars", "beats"} <= doc.keys()
    assert set(doc["bars"][0]) == {"index", "start_s", "flow", "density"}
    assert set(doc["beats"][0]) == {"time_s", "sixteenth", "weight", "strength", "is_cut"}
    b = VideoAnalysis.from_json(a.to_json())
    assert b.bars == a.bars and b.beats == a.beats and b.n_sixteenths == a.n_sixteenths
    np.testing.assert_allclose(b.envelope, a.envelope, atol=1e-5)
    with pytest.raises(VbgmError):
        VideoAnalysis.from_json('{"format": "something else"}')


# ---------------------------------------------------------------------------------------------
# Synthetic clips with known truth


def test_still_scene_is_lowest_density(tmp_path: Path) -> None:
    a = analyze(pan_clip(tmp_path / "still.mp4", lambda t: 0.0, 5.0, noise=2.0))
    assert {b.density for b in a.bars} == {DENSITY_FLOOR}
    assert a.beats == []
    assert a.tempo_source == "default" and a.tempo_bpm == 120.0  # nothing to follow


def test_motion_speeding_up_makes_later_bars_denser(tmp_path: Path) -> None:
    path = pan_clip(tmp_path / "speedup.mp4", lambda t: 0.03 if t < 4 else 0.6, 8.0)
    a = analyze(path, tempo=120)  # bars of 2 s: two slow bars, two fast bars
    dens = [b.density for b in a.bars]
    assert len(dens) == 4
    assert min(dens[2:]) > max(dens[:2]) + 4, dens
    assert max(dens[:2]) <= 10 and min(dens[2:]) >= 14, dens


def test_sudden_motion_changes_are_beats(tmp_path: Path) -> None:
    flips = [1.0, 1.9, 3.3, 4.1]
    a = analyze(pan_clip(tmp_path / "flips.mp4", reversals(flips), 5.0))
    beat_times = np.array([b.time_s for b in a.beats])
    for t in flips:
        assert np.min(np.abs(beat_times - t)) <= 2 / FPS + 1e-6, (t, beat_times)
    strong = [b.time_s for b in a.beats if b.strength >= 5]
    assert all(min(abs(t - f) for f in flips) <= 2 / FPS + 1e-6 for t in strong), strong
    assert a.cuts == []


def test_hard_cuts_are_detected(tmp_path: Path) -> None:
    cut_frames = [40, 95, 130]
    n = 160
    shots = np.searchsorted(cut_frames, np.arange(n), side="right")
    frames = pan_frames(positions_from_velocity(lambda t: 0.3, n, FPS), H, W, shots=shots)
    path = tmp_path / "cuts.mp4"
    write_video(path, frames, FPS)
    a = analyze(path)
    cut_times = [b.time_s for b in a.cuts]
    assert cut_times == pytest.approx([f / FPS for f in cut_frames], abs=1e-3)
    assert all(b.strength == 10 and b.weight == 1.0 for b in a.cuts)


def test_periodic_impacts_give_their_tempo(tmp_path: Path) -> None:
    period = 0.6  # 100 bpm; its octaves (50, 200) are out of range
    flips = list(np.arange(period, 8.0, period))
    a = analyze(pan_clip(tmp_path / "periodic.mp4", reversals(flips), 8.0))
    assert a.tempo_bpm == pytest.approx(100, abs=2)


def test_tempo_override_and_short_video(tmp_path: Path) -> None:
    path = pan_clip(tmp_path / "short.mp4", reversals([0.8]), 1.5)
    a = analyze(path)  # shorter than one bar: a defined result
    assert a.tempo_source == "default" and a.tempo_bpm == 120.0
    assert a.n_sixteenths == math.ceil(1.5 * 120 / 15) and len(a.bars) == 1
    b = analyze(path, tempo=90)
    assert b.tempo_source == "given" and b.n_sixteenths == math.ceil(1.5 * 90 / 15)
    with pytest.raises(VbgmError, match="tempo"):
        analyze(path, tempo=5)


def test_same_classes_at_two_resolutions(tmp_path: Path) -> None:
    vel = lambda t: [0.02, 0.1, 0.5, 0.25][int(t // 2) % 4] * (1 if t < 4.5 else -1)  # noqa: E731
    big = analyze(pan_clip(tmp_path / "big.mp4", vel, 8.0, height=360, width=640), tempo=120)
    small = analyze(pan_clip(tmp_path / "small.mp4", vel, 8.0, height=144, width=256), tempo=120)
    assert [b.density for b in big.bars] == [b.density for b in small.bars]
    np.testing.assert_allclose([b.flow for b in big.bars], [b.flow for b in small.bars],
                               rtol=0.1)
    assert [b.sixteenth for b in big.beats] == [b.sixteenth for b in small.beats]


def test_variable_frame_rate_uses_timestamps(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    times = np.cumsum(rng.choice([1 / 50, 1 / 30, 1 / 15], size=120))
    times -= times[0]
    speed = 0.3  # frame heights per second, whatever the frame interval
    positions = [(speed * t, 0.0) for t in times]
    path = tmp_path / "vfr.mkv"
    write_video(path, pan_frames(positions, H, W), 30, times=times)
    m = read_motion(path, AnalysisConfig(max_fps=0))
    np.testing.assert_allclose(m.times, times, atol=1.5e-3)
    assert np.median(m.speed[1:]) == pytest.approx(speed, rel=0.1)
    assert np.percentile(np.abs(m.speed[1:] / speed - 1), 90) < 0.25


def test_high_frame_rate_is_analysed_at_max_fps(tmp_path: Path) -> None:
    path = pan_clip(tmp_path / "fast.mp4", lambda t: 0.3, 2.0, fps=60.0)
    m = read_motion(path)
    assert m.n_frames == 120 and len(m.times) == 60
    assert np.median(m.speed) == pytest.approx(0.3, rel=0.1)


def test_rotation_metadata_is_honoured(tmp_path: Path) -> None:
    vel = reversals([1.0], 0.3)
    plain = pan_clip(tmp_path / "plain.mp4", vel, 2.0)
    n = round(2.0 * FPS)
    # The same display, stored as a portrait picture with a 90° display rotation (as phones do).
    coded = (np.ascontiguousarray(np.rot90(f, -1))
             for f in pan_frames(positions_from_velocity(vel, n, FPS), H, W))
    rotated = tmp_path / "rotated.mp4"
    write_video(rotated, coded, FPS, rotation=90)
    a, b = read_motion(plain), read_motion(rotated)
    assert (b.width, b.height, b.rotation) == (W, H, 90)
    np.testing.assert_allclose(b.speed, a.speed, rtol=0.1, atol=0.01)
    # Motion is horizontal on screen: the directogram's left/right bins hold it.
    horizontal = b.directogram[:, [0, 4]].sum() / b.directogram.sum()
    assert horizontal > 0.8


CODECS = [
    ("mp4", "libx264", "yuv420p"),
    ("avi", "mpeg4", "yuv420p"),
    ("avi", "msmpeg4v2", "yuv420p"),
    ("mkv", "libx264", "yuv420p"),
    ("webm", "libvpx", "yuv420p"),
    ("webm", "libvpx-vp9", "yuv420p"),
    ("mpg", "mpeg2video", "yuv420p"),
    ("mov", "mjpeg", "yuvj420p"),
]


@pytest.mark.parametrize(("ext", "codec", "pix_fmt"), CODECS,
                         ids=[f"{e}-{c}" for e, c, _ in CODECS])
def test_containers_and_codecs(tmp_path: Path, ext: str, codec: str, pix_fmt: str) -> None:
    flips = [0.8, 1.6]
    options = {"deadline": "realtime", "cpu-used": "8"} if "vpx" in codec else None
    path = pan_clip(tmp_path / f"clip.{ext}", reversals(flips), 2.4, fps=25.0, codec=codec,
                    pix_fmt=pix_fmt, options=options)
    a = analyze(path)
    assert a.n_frames == 60
    assert a.duration_s == pytest.approx(2.4, abs=0.05)
    assert np.median(a.frame_flow) == pytest.approx(0.4, rel=0.15)
    beat_times = np.array([b.time_s for b in a.beats])
    for t in flips:
        assert np.min(np.abs(beat_times - t)) <= 2 / 25 + 1e-6


# ---------------------------------------------------------------------------------------------
# Controls


def test_control_mapping_is_monotonic_and_covers_the_range() -> None:
    speeds = np.geomspace(1e-5, 10, 500)
    dens = [density_class(s) for s in speeds]
    assert dens == sorted(dens) and dens[0] == DENSITY_FLOOR and dens[-1] == 17
    assert len(DENSITY_THRESHOLDS) == 17 - DENSITY_FLOOR
    assert list(DENSITY_THRESHOLDS) == sorted(DENSITY_THRESHOLDS)
    weights = np.linspace(0.001, 1, 500)
    st = [strength_class(w) for w in weights]
    assert st == sorted(st) and st[0] == 1 and st[-1] == 10 and strength_class(0.0) == 0
    assert len(STRENGTH_THRESHOLDS) == 9


# ---------------------------------------------------------------------------------------------
# CLI and bad input


def test_cli_writes_summary_json_and_plot(tmp_path: Path, capsys) -> None:
    from vbgm.plot import plot_analysis

    path = pan_clip(tmp_path / "clip.mp4", reversals([1.0, 2.0]), 3.0)
    out_json, out_png = tmp_path / "a.json", tmp_path / "a.png"
    assert main(["analyze", str(path), "--json", str(out_json), "--plot", str(out_png),
                 "--tempo", "100", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "clip.mp4: 3.00 s" in text and "tempo 100 bpm (given)" in text and "density" in text
    a = VideoAnalysis.from_json(out_json.read_text())
    assert a.tempo_bpm == 100 and a.n_sixteenths == 20
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    notes = np.array([[0, 4, 60, 2, 80], [4, 2, 36, 4, 90], [8, 1, 38, 1, 100]])
    plot_analysis(a, tmp_path / "notes.png", notes=notes)
    assert (tmp_path / "notes.png").stat().st_size > 10_000
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 8000), np.int16), format="s16",
                                           layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _truncated(tmp: Path, faststart: bool) -> Path:
    src = pan_clip(tmp / f"full{faststart}.mp4", lambda t: 0.3, 4.0)
    if faststart:  # index at the front: the header promises 4 s that are not all there
        fixed = tmp / "fast.mp4"
        with av.open(str(src)) as i, av.open(str(fixed), "w",
                                             options={"movflags": "faststart"}) as o:
            s = o.add_stream_from_template(i.streams.video[0])
            for packet in i.demux(i.streams.video[0]):
                if packet.dts is not None:
                    packet.stream = s
                    o.mux(packet)
        src = fixed
    data = src.read_bytes()
    out = tmp / f"truncated{faststart}.mp4"
    out.write_bytes(data[: len(data) // 2])
    return out


BAD = {
    "missing": (lambda d: d / "nope.mp4", "no such file"),
    "zero-byte": (lambda d: (d / "empty.mp4", (d / "empty.mp4").write_bytes(b""))[0], "empty"),
    "not-a-video": (lambda d: (d / "notes.mp4", (d / "notes.mp4").write_text("hello " * 500))[0],
                    "not a readable video"),
    "audio-only": (lambda d: _audio_only(d / "sound.wav"), "no video stream"),
    "truncated": (lambda d: _truncated(d, False), "not a readable video"),
    "truncated-faststart": (lambda d: _truncated(d, True), "truncated"),
    "single-frame": (lambda d: pan_clip(d / "one.mp4", lambda t: 0.0, 1 / FPS), "only one frame"),
    "image": (lambda d: (d / "pic.png", av.VideoFrame.from_ndarray(
        np.zeros((32, 32, 3), np.uint8), format="rgb24").to_image().save(d / "pic.png"))[0],
        "only one frame"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_clear_error(tmp_path: Path, case: str, capsys) -> None:
    make, message = BAD[case]
    path = make(tmp_path)
    with pytest.raises(VbgmError, match=message) as err:
        analyze(path)
    assert path.name in str(err.value) and "\n" not in str(err.value)
    out_json, out_png = tmp_path / "out" / "a.json", tmp_path / "out" / "a.png"
    out_json.parent.mkdir()
    out_json.write_text("old")
    assert main(["analyze", str(path), "--json", str(out_json), "--plot", str(out_png),
                 "--quiet"]) == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and err_lines[0].startswith("vbgm: error:")
    assert path.name in err_lines[0]
    assert out_json.read_text() == "old" and not out_png.exists()
    assert sorted(p.name for p in out_json.parent.iterdir()) == ["a.json"]


def test_bad_tempo_on_cli(tmp_path: Path) -> None:
    path = pan_clip(tmp_path / "c.mp4", lambda t: 0.1, 1.0)
    assert main(["analyze", str(path), "--tempo", "0", "--quiet"]) == 2


def test_tempo_moves_a_little_to_put_cuts_on_bar_lines() -> None:
    from vbgm.video import fit_grid_to_cuts

    cfg = AnalysisConfig()
    cuts = np.array([20.0, 40.0])  # at 138 bpm they fall mid-bar (11.5 and 23 bars)
    bpm, start = fit_grid_to_cuts(138.0, cuts, cfg)
    assert abs(bpm - 138.0) <= 138.0 * cfg.cut_tempo_tolerance and start == 0
    bars = cuts * bpm / 240.0
    assert np.allclose(bars, np.round(bars), atol=0.02)  # both cuts on bar lines
    assert fit_grid_to_cuts(138.0, np.zeros(0), cfg) == (138.0, 0)
    assert fit_grid_to_cuts(120.0, np.array([8.0]), cfg) == (120.0, 0)  # already on a bar line


def test_tempo_from_motion_on_the_cli(video_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "bikes.json"
    assert main(["analyze", str(video_root / "bikes.mp4"), "--quiet", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["tempo_source"] == "cuts" and doc["start"] in (4, 8, 12)
    assert VideoAnalysis.from_json(out.read_text()).start == doc["start"]
    assert main(["analyze", str(video_root / "bikes.mp4"), "--tempo-from-motion", "--quiet",
                 "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["tempo_source"] == "estimated" and doc["start"] == 0


def test_a_pickup_puts_an_early_cut_on_a_downbeat() -> None:
    """A cut 1 s into a 120 bpm video (half a bar in) cannot reach a bar line by moving the
    tempo 6 %: the video starts two beats before bar 1 instead, at the same tempo."""
    from vbgm.video import cut_distances, fit_grid_to_cuts

    bpm, start = fit_grid_to_cuts(120.0, np.array([1.0]))
    assert start == 8 and abs(bpm - 120.0) <= 120.0 * AnalysisConfig().cut_tempo_tolerance
    assert cut_distances(bpm, start, np.array([1.0]))[0] <= 0.25
    assert fit_grid_to_cuts(117.0, np.array([1.0]), fixed=True) == (117.0, 8)  # a given tempo


def test_cuts_faster_than_the_bars_move_the_tempo_further() -> None:
    """Cuts every 2 s at a motion tempo of 76 bpm (3.2 s bars): no grid near 76 bpm puts them
    all on downbeats; bars of about 2 s (about 120 bpm) do. Without `cuts_set_tempo` (the
    CLI's --tempo-from-motion) the tempo moves only a little."""
    from vbgm.video import cut_distances, fit_grid_to_cuts

    cuts = np.array([1.9, 4.0, 6.0, 8.1])
    assert fit_grid_to_cuts(76.0, cuts, AnalysisConfig(cuts_set_tempo=False))[0] <= 76.0 * 1.06
    bpm, start = fit_grid_to_cuts(76.0, cuts)
    assert cut_distances(bpm, start, cuts).max() <= 0.875
    assert 100 <= bpm <= 140
    near_76 = [cut_distances(t, s, cuts).max() for t in np.arange(71.5, 80.6, 0.5)
               for s in (0, 4, 8, 12)]
    assert min(near_76) > 1.0  # why it had to move


def test_sections_of_the_music_start_at_the_demo_clips_cuts(tmp_path: Path) -> None:
    from vbgm.demo_video import make_demo_video
    from vbgm.pipeline import load_model
    from vbgm.sampling import Controls, Request, SamplingConfig, generate

    path = tmp_path / "demo.mp4"
    make_demo_video(path, seconds=24.0, size=(320, 180))
    controls = Controls.from_analysis(analyze(path))
    assert len(controls.cuts) == 2
    (g,) = generate(load_model(), controls, Request(), SamplingConfig(control=0.7), seed=0)
    bounds = np.array(g.sections) * 16
    for cut in controls.cuts:  # every cut within one beat of a section boundary
        assert np.min(np.abs(bounds - cut)) <= 4, (g.sections, controls.cuts)
