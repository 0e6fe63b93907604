"""Video → rhythm: decoding, optical flow, directogram impact envelope, visual beats, cuts, tempo.

The pipeline is one streaming pass over the frames followed by pure functions over small arrays:

1. `read_motion` decodes the video with PyAV, one frame at a time (memory stays bounded whatever
   the length), scales each frame in the decoder to a fixed analysis height (grey, `config.height`
   pixels, default 144) so that the results do not depend on the source resolution, honours the
   rotation metadata, and takes every frame time from its timestamp (variable frame rate works).
   For each pair of consecutive frames it measures dense optical flow (OpenCV DIS, see
   `AnalysisConfig.flow`) and keeps only a few numbers per frame (`Motion`):
   - speed: mean flow magnitude in frame heights per second (normalised by the analysis height
     and by the real time between the two frames, so neither resolution nor frame rate matter);
   - the directogram (Davis & Agrawala, "Visual Rhythm and Beat", SIGGRAPH 2018): the same flow
     magnitude split into `direction_bins` angular bins;
   - cut cues: the mean absolute difference left after warping one frame onto the other with the
     flow (large only when the flow cannot explain the change, i.e. at a shot change) and the
     change of the grey-level histogram.
2. `detect_cuts` finds hard cuts from the cut cues with an adaptive threshold.
3. `impact_envelope`: the decrease of motion per direction, half-wave rectified and summed over
   directions: a moving thing that stops or turns makes a peak (a visual "impact").
4. `pick_beats`: peaks of the envelope with a minimum spacing; weight = peak height relative to the
   strongest peak of the video (0..1). Cuts are added as beats of weight 1.
5. `estimate_tempo`: autocorrelation of the envelope over 60–160 bpm, weighted towards moderate
   tempi, plus a bonus for tempi that put the beats on the eighth-note grid.
6. `analyze` snaps every beat to its sixteenth (a cut a sixteenth from a bar line to the bar
   line: `snap_to_bar_line`), cuts the timeline into bars (16 sixteenths), takes
   each bar's mean speed, and maps speed → density class and weight → strength class
   (`vbgm.controls`).

Time zero is the first frame's presentation time, so the music starts with the picture. When the
video has cuts, `fit_grid_to_cuts` moves the tempo (and may add a pickup: the video then enters
bar 0 on its sixteenth `start`) so that every cut falls on a bar line.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from itertools import product
from pathlib import Path

import numpy as np

from vbgm.controls import density_class, strength_class
from vbgm.errors import VbgmError
from vbgm.song import SIXTEENTHS_PER_BAR

FORMAT = "vbgm-video-analysis"
VERSION = 1


@dataclass
class AnalysisConfig:
    """Settings of the analysis; the defaults are the measured choices (see benchmarks/)."""

    height: int = 144  # analysis frame height in pixels: fast, and the same for every source
    max_aspect: float = 3.0  # wider frames are squeezed to this width/height ratio
    max_fps: float = 30.0  # frames closer than 1/max_fps to the last analysed one are skipped
    # Decoder threads; 0 = FFmpeg's choice (about one per core). Processes that share the cores
    # (`vbgm.batch` workers) use 1: box.mp4's analysis took 0.45 s alone with FFmpeg's threads
    # but 0.71 s each with two running at once; on one thread 0.68 s, alone or side by side.
    decode_threads: int = 0
    flow: str = "dis"  # "dis" (OpenCV DIS, preset FAST) or "farneback" (the reference's, slower)
    direction_bins: int = 8  # directogram bins
    envelope_smoothing_s: float = 1 / 30  # Gaussian sigma over the directogram, in seconds
    min_beat_spacing_s: float = 0.25  # two visual beats are at least this far apart
    beat_floor: float = 0.01  # an impact must be >= this (frame heights/s lost) to be a beat ...
    beat_relative: float = 0.15  # ... and >= this fraction of the video's strongest impact
    beat_local: float = 2.0  # ... and >= this many times the local (1 s) median of the envelope
    cut_residual: float = 0.06  # a cut leaves >= this mean abs difference (0..1) after warping
    cut_ratio: float = 6.0  # ... which is >= this many times the residual around it;
    cut_histogram: float = 0.3  # or half as much residual and the grey histogram changes this much
    tempo_min: float = 60.0
    tempo_max: float = 160.0
    tempo_prior_bpm: float = 110.0  # centre of the log-normal tempo preference
    tempo_prior_octaves: float = 1.0  # its width (standard deviation, in octaves)
    tempo_grid_bonus: float = 0.3  # weight of the eighth-note grid alignment in the tempo score
    min_tempo_duration_s: float = 3.0  # shorter videos get default_tempo
    default_tempo: float = 120.0
    cut_tempo_tolerance: float = 0.06  # an estimated tempo may move this much to put cuts on bars
    # Cuts faster than the motion's bars set the tempo (`fit_grid_to_cuts` step 3; the CLI's
    # --tempo-from-motion switches it off)
    cuts_set_tempo: bool = True
    cut_tempo_pull: float = 0.1  # then a grid's misfit (beats²) per octave from the motion's tempo
    # A cut this many sixteenths or fewer from a bar line, and no farther in time than
    # cut_snap_s, is placed on it (its accent on the downbeat: a kick and crash a sixteenth off
    # the bar line sound late or early, not on it), unless another cut is there already.
    cut_snap_16ths: int = 1
    cut_snap_s: float = 0.2


@dataclass
class Motion:
    """Per-analysed-frame measurements from the streaming pass (index i = frame i).

    times: frame presentation times in seconds, first frame at 0, strictly increasing.
    speed: mean flow magnitude between frame i-1 and i, frame heights per second (speed[0] copies
        speed[1]).
    directogram: (N, bins) the same magnitude split by flow direction: bin j is centred on angle
        2πj/bins from rightwards, turning towards +y (image y points down: bin 2 of 8 = down).
    residual: mean |frame i - frame i-1 warped by the flow| in 0..1 (cut cue).
    histogram_change: half the L1 distance of the grey histograms of frames i-1 and i, 0..1.
    duration_s: the video's duration (last frame time + its display duration).
    n_frames: frames decoded (including skipped ones); fps = n_frames / duration_s.
    width, height: displayed size of the source (after rotation).
    brightness: mean grey level of each analysed frame, 0..1 (empty when not measured).
    """

    times: np.ndarray
    speed: np.ndarray
    directogram: np.ndarray
    residual: np.ndarray
    histogram_change: np.ndarray
    duration_s: float
    n_frames: int
    width: int
    height: int
    rotation: int = 0
    brightness: np.ndarray = field(default_factory=lambda: np.zeros(0))


@dataclass
class Bar:
    """One bar of 16 sixteenths: start time, mean flow speed (frame heights/s), density class."""

    index: int
    start_s: float
    flow: float
    density: int


@dataclass
class Beat:
    """One visual beat: time, its sixteenth (the nearest; a cut's may be the bar line a
    sixteenth away), weight 0..1, strength class 0..10, whether a cut."""

    time_s: float
    sixteenth: int
    weight: float
    strength: int
    is_cut: bool = False


@dataclass
class VideoAnalysis:
    """Everything the music generation needs from a video, plus what the plot shows.

    JSON schema (`to_json`): {"format": "vbgm-video-analysis", "version": 1, "source",
    "duration_s", "fps", "n_frames", "width", "height", "tempo_bpm", "tempo_source"
    ("estimated" | "cuts": set by cuts faster than the motion's bars | "given" | "default"),
    "n_sixteenths" (counted from bar 0's downbeat), "start" (the sixteenth of bar 0 the video
    starts on: 0, or 4, 8, 12 for a pickup of 3, 2, 1 beats that puts the cuts on bar lines;
    absent = 0), "brightness" (mean grey level 0..1, or null), "bars": [{"index", "start_s"
    (negative for a pickup bar: it starts before the video), "flow", "density"}], "beats":
    [{"time_s", "sixteenth", "weight", "strength", "is_cut"}], "frames": {"time_s": [...],
    "flow": [...], "envelope": [...]}}. flow is in frame heights per
    second; density is 1..17 and strength 0..10 as in the CMT tokens.
    """

    source: str
    duration_s: float
    fps: float
    n_frames: int
    width: int
    height: int
    tempo_bpm: float
    tempo_source: str
    n_sixteenths: int
    start: int = 0
    bars: list[Bar] = field(default_factory=list)
    beats: list[Beat] = field(default_factory=list)
    frame_times: np.ndarray = field(default_factory=lambda: np.zeros(0))
    frame_flow: np.ndarray = field(default_factory=lambda: np.zeros(0))
    envelope: np.ndarray = field(default_factory=lambda: np.zeros(0))
    brightness: float = math.nan

    @property
    def sixteenth_s(self) -> float:
        """Length of one sixteenth in seconds."""
        return 15.0 / self.tempo_bpm

    @property
    def pickup_text(self) -> str:
        """' after a 2-beat pickup' (the beats of bar 0 the video starts with), or ''."""
        beats = (SIXTEENTHS_PER_BAR - self.start) // 4
        return f" after a {beats}-beat pickup" if self.start else ""

    @property
    def cuts(self) -> list[Beat]:
        """The beats that are hard cuts."""
        return [b for b in self.beats if b.is_cut]

    def to_dict(self) -> dict:
        """A JSON-ready dict (see the class docstring for the schema)."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "source": self.source,
            "duration_s": round(self.duration_s, 6),
            "fps": round(self.fps, 6),
            "n_frames": self.n_frames,
            "width": self.width,
            "height": self.height,
            "tempo_bpm": self.tempo_bpm,
            "tempo_source": self.tempo_source,
            "n_sixteenths": self.n_sixteenths,
            "start": self.start,
            "brightness": None if math.isnan(self.brightness) else round(self.brightness, 4),
            "bars": [asdict(b) for b in self.bars],
            "beats": [asdict(b) for b in self.beats],
            "frames": {
                "time_s": np.round(self.frame_times, 5).tolist(),
                "flow": np.round(self.frame_flow, 6).tolist(),
                "envelope": np.round(self.envelope, 6).tolist(),
            },
        }

    def to_json(self) -> str:
        """Serialise to JSON text."""
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, d: dict) -> VideoAnalysis:
        """Inverse of `to_dict`; raises VbgmError on a document of another kind."""
        if d.get("format") != FORMAT or d.get("version") != VERSION:
            raise VbgmError(f"not a {FORMAT} v{VERSION} document")
        frames = d.get("frames", {})
        try:
            return cls(
                source=d["source"], duration_s=float(d["duration_s"]), fps=float(d["fps"]),
                n_frames=int(d["n_frames"]), width=int(d["width"]), height=int(d["height"]),
                tempo_bpm=float(d["tempo_bpm"]), tempo_source=d["tempo_source"],
                n_sixteenths=int(d["n_sixteenths"]), start=int(d.get("start", 0)),
                bars=[Bar(**b) for b in d["bars"]], beats=[Beat(**b) for b in d["beats"]],
                frame_times=np.asarray(frames.get("time_s", []), dtype=np.float64),
                frame_flow=np.asarray(frames.get("flow", []), dtype=np.float64),
                envelope=np.asarray(frames.get("envelope", []), dtype=np.float64),
                brightness=float(d.get("brightness") if d.get("brightness") is not None
                                 else math.nan),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise VbgmError(f"malformed {FORMAT} document: {exc}") from exc

    @classmethod
    def from_json(cls, text: str) -> VideoAnalysis:
        """Parse JSON text written by `to_json`."""
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise VbgmError(f"not JSON: {exc}") from exc


# ---------------------------------------------------------------------------------------------
# Decoding


def _open(path: Path):
    """Open `path` with PyAV and return (container, video stream); VbgmError when unusable."""
    import av

    if not path.exists():
        raise VbgmError(f"{path}: no such file")
    if path.is_dir():
        raise VbgmError(f"{path}: is a directory, not a video file")
    if path.stat().st_size == 0:
        raise VbgmError(f"{path}: empty file (0 bytes)")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        raise VbgmError(f"{path}: not a readable video ({_reason(exc)})") from exc
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        container.close()
        raise VbgmError(f"{path}: has no video stream (contains: {', '.join(kinds)})")
    stream = container.streams.video[0]
    if stream.codec_context is None or not stream.codec_context.name:
        container.close()
        raise VbgmError(f"{path}: video stream has no known codec")
    return container, stream


def _reason(exc: Exception) -> str:
    """A short, one-line description of a PyAV error."""
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split())


def _declared_duration(container, stream) -> float | None:
    """The duration the file's header declares, in seconds, if any."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return None


def _analysis_size(width: int, height: int, sar: float, quarter_turns: int,
                   config: AnalysisConfig) -> tuple[int, int]:
    """Coded-orientation (width, height) to scale decoded frames to, so that after rotation the
    displayed frame is `config.height` high with the source's display aspect (capped)."""
    disp_w, disp_h = width * sar, float(height)
    if quarter_turns % 2:
        disp_w, disp_h = disp_h, disp_w
    aspect = min(max(disp_w / disp_h, 1.0 / config.max_aspect), config.max_aspect)
    out_h = config.height
    out_w = max(16, 2 * round(out_h * aspect / 2))
    return (out_h, out_w) if quarter_turns % 2 else (out_w, out_h)


# 8-bit formats whose first plane is the luma: read it directly and shrink it with OpenCV's
# area filter, which is several times faster than a full swscale conversion.
_LUMA_FORMATS = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p",
                           "yuv440p", "yuvj440p", "yuv411p", "yuv410p", "nv12", "nv21", "gray"})


def _grey(frame, size: tuple[int, int]) -> np.ndarray:
    """The frame's grey image scaled to `size` (width, height), uint8."""
    import cv2

    if frame.format.name in _LUMA_FORMATS:
        plane = frame.planes[0]
        luma = np.frombuffer(plane, np.uint8, count=plane.line_size * plane.height)
        luma = luma.reshape(plane.height, plane.line_size)[:, : plane.width]
        return cv2.resize(luma, size, interpolation=cv2.INTER_AREA)
    return frame.reformat(width=size[0], height=size[1], format="gray",
                          interpolation="AREA").to_ndarray()


def iter_frames(path: str | os.PathLike[str], config: AnalysisConfig = AnalysisConfig(),
                info: dict | None = None,
                progress: bool = False) -> Iterator[tuple[float, np.ndarray]]:
    """Yield (time_s, grey uint8 frame) for every analysed frame, scaled and rotated for display.

    Streams: one decoded frame is alive at a time. `info`, when given, is filled with n_frames
    (decoded, including skipped), duration_s, width, height (displayed) and rotation (degrees),
    complete once the iterator is exhausted. Times start at 0 at the first frame.
    """
    import av

    from vbgm.progress import stage

    path = Path(path)
    container, stream = _open(path)
    stream.thread_type = "AUTO"
    stream.thread_count = config.decode_threads
    rate = float(stream.average_rate or stream.guessed_rate or 25)
    declared = _declared_duration(container, stream)
    sar = float(stream.sample_aspect_ratio) if stream.sample_aspect_ratio else 1.0
    info = {} if info is None else info
    min_gap = 1.0 / config.max_fps * 0.9 if config.max_fps else 0.0
    total = stream.frames or (round(declared * rate) if declared else None)
    bar = stage(f"decode {path.name}", total, "frame", enabled=progress)
    completed = False
    n_decoded, t0, last_t, last_kept, last_dt = 0, None, None, None, 1.0 / rate
    size, turns = None, 0
    try:
        try:
            for frame in container.decode(stream):
                t = frame.time
                if t is None or (last_t is not None and t <= last_t):  # missing / bad timestamp
                    t = (last_t if last_t is not None else 0.0) + 1.0 / rate
                if t0 is None:
                    t0 = t
                    turns = round((frame.rotation or 0) / 90) % 4
                    size = _analysis_size(frame.width, frame.height, sar, turns, config)
                    info["width"], info["height"] = (
                        (frame.height, round(frame.width * sar)) if turns % 2
                        else (round(frame.width * sar), frame.height))
                    info["rotation"] = 90 * turns
                if last_t is not None:
                    last_dt = t - last_t
                last_t = t
                n_decoded += 1
                bar.update(1)
                if last_kept is not None and t - last_kept < min_gap:
                    continue
                last_kept = t
                grey = _grey(frame, size)
                if turns:
                    grey = np.rot90(grey, turns)
                yield t - t0, np.ascontiguousarray(grey)
        except av.FFmpegError as exc:
            at = f" at {last_t - t0:.2f} s" if last_t is not None and t0 is not None else ""
            raise VbgmError(f"{path}: damaged video, decoding failed{at} ({_reason(exc)})") from exc
        if n_decoded == 0:
            raise VbgmError(f"{path}: no decodable video frames")
        duration = last_t - t0 + last_dt
        # A file cut short keeps a header that promises more than can be decoded: say so.
        if declared is not None and declared - duration > max(1.0, 0.1 * declared):
            raise VbgmError(f"{path}: truncated or damaged: the header says {declared:.2f} s "
                            f"but only {duration:.2f} s could be decoded")
        info["n_frames"] = n_decoded
        info["duration_s"] = duration
        completed = True
    finally:
        bar.close(completed)
        container.close()


# ---------------------------------------------------------------------------------------------
# Motion measurement (the streaming pass)


def _flow_function(config: AnalysisConfig):
    """A function (prev, cur) -> flow (H, W, 2) float32 in pixels, per `config.flow`."""
    import cv2

    if config.flow == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        return lambda a, b: dis.calc(a, b, None)
    if config.flow == "farneback":  # the reference's parameters
        return lambda a, b: cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    raise VbgmError(f"unknown optical flow method {config.flow!r} (use 'dis' or 'farneback')")


def read_motion(path: str | os.PathLike[str], config: AnalysisConfig = AnalysisConfig(),
                progress: bool = False) -> Motion:
    """Decode `path` and measure per-frame motion (see `Motion`). VbgmError on unusable input."""
    import cv2

    flow_of = _flow_function(config)
    k = config.direction_bins
    info: dict = {}
    times, speed, dirgram, residual, hist_change, light = [], [], [], [], [], []
    prev, prev_hist, grid = None, None, None
    for t, grey in iter_frames(path, config, info, progress):
        hist = np.bincount((grey >> 3).ravel(), minlength=32) / grey.size
        light.append(float(hist @ (np.arange(32) + 0.5)) / 32)
        if prev is None:
            h, w = grey.shape
            grid = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
            row = (0.0, np.zeros(k), 0.0, 0.0)
        else:
            dt = t - times[-1]
            flow = flow_of(prev, grey)
            mag, ang = cv2.cartToPolar(flow[..., 0], flow[..., 1])
            bins = (ang * (k / (2 * np.pi)) + 0.5).astype(np.int32) % k  # bin 0 centred on →
            per_dir = np.bincount(bins.ravel(), weights=mag.ravel(), minlength=k)
            scale = 1.0 / (grey.size * grey.shape[0] * dt)  # → frame heights per second
            # Warp the current frame back onto the previous one: what flow cannot explain is left.
            back = cv2.remap(grey, grid[0] + flow[..., 0], grid[1] + flow[..., 1],
                             cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            res = cv2.absdiff(back, prev).mean() / 255.0
            change = 0.5 * np.abs(hist - prev_hist).sum()
            row = (per_dir.sum() * scale, per_dir * scale, res, change)
        times.append(t)
        speed.append(row[0])
        dirgram.append(row[1])
        residual.append(row[2])
        hist_change.append(row[3])
        prev, prev_hist = grey, hist
    if len(times) < 2:
        raise VbgmError(f"{path}: has only one frame; motion needs at least two")
    speed[0], dirgram[0] = speed[1], dirgram[1]
    return Motion(
        times=np.asarray(times), speed=np.asarray(speed), directogram=np.asarray(dirgram),
        residual=np.asarray(residual), histogram_change=np.asarray(hist_change),
        duration_s=float(info["duration_s"]), n_frames=int(info["n_frames"]),
        width=int(info["width"]), height=int(info["height"]), rotation=int(info["rotation"]),
        brightness=np.asarray(light),
    )


# ---------------------------------------------------------------------------------------------
# Pure functions over the measurements


def _window(times: np.ndarray, seconds: float) -> int:
    """Half-width in frames of a window of about `seconds`."""
    dt = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    return max(1, round(seconds / 2 / dt))


def _local_median(x: np.ndarray, half: int, exclude_centre: bool = False) -> np.ndarray:
    """Median of x over [i-half, i+half] for each i (optionally without x[i] itself)."""
    pad = np.pad(x, half, mode="edge")
    win = np.lib.stride_tricks.sliding_window_view(pad, 2 * half + 1)
    if exclude_centre:
        win = np.delete(win, half, axis=1)
    return np.median(win, axis=1)


def detect_cuts(motion: Motion, config: AnalysisConfig = AnalysisConfig()) -> np.ndarray:
    """Indices of frames that start a new shot (hard cuts).

    A cut leaves a large residual after motion compensation, much larger than around it, and
    either a large residual in absolute terms or a changed grey histogram. Cuts closer than
    `min_beat_spacing_s` keep the strongest.
    """
    r = motion.residual
    base = _local_median(r, _window(motion.times, 1.0), exclude_centre=True)
    strong = r >= config.cut_residual
    changed = (motion.histogram_change >= config.cut_histogram) & (r >= 0.5 * config.cut_residual)
    cand = np.flatnonzero((strong | changed) & (r >= config.cut_ratio * (base + 1e-3)))
    cand = cand[cand > 0]
    return _suppress(motion.times, cand, r[cand], config.min_beat_spacing_s)


def _suppress(times: np.ndarray, idx: np.ndarray, height: np.ndarray, spacing: float) -> np.ndarray:
    """Greedy non-maximum suppression: keep the highest, drop others within `spacing` s."""
    keep: list[int] = []
    for j in np.argsort(-height, kind="stable"):
        if all(abs(times[idx[j]] - times[i]) >= spacing for i in keep):
            keep.append(int(idx[j]))
    return np.array(sorted(keep), dtype=np.int64)


def smooth_frames(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing along axis 0 with the edges extended (scipy.ndimage's
    gaussian_filter1d, mode "nearest", kernel cut at 4 sigma), in numpy: importing scipy.ndimage
    costs 0.13-0.15 s of every start."""
    radius = int(4.0 * sigma + 0.5)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    padded = np.pad(x, [(radius, radius)] + [(0, 0)] * (x.ndim - 1), mode="edge")
    return sum(w * padded[i: i + len(x)] for i, w in enumerate(taps))


def impact_envelope(motion: Motion, cuts: np.ndarray, sigma_frames: float = 1.0) -> np.ndarray:
    """Per-frame visual impact: sum over directions of the half-wave rectified decrease of motion.

    Across a cut neither the flow nor its change means anything (the cut is a beat of its own),
    so the envelope is zero on the cut frame and the one after. Units: frame heights per second
    of motion lost.
    """
    # Light temporal smoothing of each shot's directogram: flow noise flickers from frame to
    # frame, real impacts last; it triples the ratio of true impacts to noise peaks on the
    # synthetic tests, without moving the peaks.
    d = motion.directogram.copy()
    for i in cuts:  # the flow across the cut is garbage: use the new shot's first real one
        d[i] = d[min(i + 1, len(d) - 1)]
    if sigma_frames > 0:
        d = np.concatenate([smooth_frames(part, sigma_frames)
                            for part in np.split(d, cuts) if len(part)])
    env = np.concatenate([[0.0], np.maximum(d[:-1] - d[1:], 0.0).sum(axis=1)])
    for i in cuts:
        env[i : i + 2] = 0.0
    return env


def pick_beats(times: np.ndarray, envelope: np.ndarray,
               config: AnalysisConfig = AnalysisConfig(),
               cut_times: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Visual beats from the envelope: (frame indices, weights 0..1).

    A beat is a local maximum that is at least `beat_floor` (absolute), `beat_relative` of the
    video's strongest impact and `beat_local` times the envelope's 1-s median, and not within
    `min_beat_spacing_s` of a cut (the cut is the beat there); beats closer than that to each
    other keep the strongest. Weight = height / the strongest beat's height.
    """
    e = envelope
    if len(e) < 3 or e.max() <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    is_peak = np.zeros(len(e), dtype=bool)
    is_peak[1:-1] = (e[1:-1] >= e[:-2]) & (e[1:-1] > e[2:])
    is_peak[-1] = e[-1] > e[-2]
    local = _local_median(e, _window(times, 1.0))
    thresh = np.maximum(max(config.beat_floor, config.beat_relative * e.max()),
                        config.beat_local * local)
    cand = np.flatnonzero(is_peak & (e >= thresh))
    if cut_times is not None and len(cut_times) and len(cand):
        gap = np.abs(times[cand][:, None] - np.asarray(cut_times)[None, :]).min(axis=1)
        cand = cand[gap >= config.min_beat_spacing_s]
    idx = _suppress(times, cand, e[cand], config.min_beat_spacing_s)
    if len(idx) == 0:
        return idx, np.zeros(0)
    return idx, e[idx] / e[idx].max()


def estimate_tempo(times: np.ndarray, envelope: np.ndarray, beat_times: np.ndarray,
                   beat_weights: np.ndarray, config: AnalysisConfig = AnalysisConfig()) -> float:
    """Tempo in bpm (a multiple of 0.5) in [tempo_min, tempo_max].

    Score(bpm) = log-normal prior(bpm) · autocorrelation of the envelope at one beat period
    + tempo_grid_bonus · weighted mean of cos(2π · beat time / eighth-note length) (how well the
    beats sit on eighths of a grid that starts with the video). `default_tempo` when the envelope
    is flat and there are no beats.
    """
    candidates = np.arange(config.tempo_min, config.tempo_max + 0.25, 0.5)
    prior = np.exp(-0.5 * (np.log2(candidates / config.tempo_prior_bpm)
                           / config.tempo_prior_octaves) ** 2)
    # Resample the envelope on a uniform grid (VFR) and autocorrelate.
    rate = 1.0 / float(np.median(np.diff(times)))
    grid = np.arange(0.0, times[-1], 1.0 / rate)
    x = np.interp(grid, times, envelope)
    x = x - x.mean()
    n = len(x)
    spec = np.fft.rfft(x, 2 * n)
    acf = np.fft.irfft(spec * np.conj(spec))[:n]
    score = np.zeros_like(candidates)
    if acf[0] > 0:
        acf = acf / acf[0] * n / np.maximum(n - np.arange(n), 1)  # unbiased, 1 at lag 0
        lags = 60.0 / candidates * rate
        score += prior * np.interp(lags, np.arange(n), acf, right=0.0)
    if len(beat_times):
        phase = 2 * np.pi * np.outer(candidates / 30.0, beat_times)  # eighth notes
        align = (np.cos(phase) * beat_weights).sum(axis=1) / beat_weights.sum()
        score += config.tempo_grid_bonus * prior * align
    if not np.any(score != 0):
        return float(config.default_tempo)
    return float(candidates[int(np.argmax(score))])


# Where the video may enter bar 0: on its downbeat, or 1, 2 or 3 beats before bar 1 (a pickup).
PICKUP_STARTS = (0, 12, 8, 4)


def cut_distances(bpm: float, start: int, cut_times: np.ndarray) -> np.ndarray:
    """Distance in beats from each cut to its nearest bar line, for bars of 16 sixteenths at
    `bpm` whose bar 0 the video enters on sixteenth `start`."""
    pos = np.asarray(cut_times, dtype=np.float64) * bpm / 15.0 + start
    return np.abs(pos - SIXTEENTHS_PER_BAR * np.round(pos / SIXTEENTHS_PER_BAR)) / 4.0


def fit_grid_to_cuts(bpm: float, cut_times: np.ndarray,
                     config: AnalysisConfig = AnalysisConfig(),
                     fixed: bool = False) -> tuple[float, int]:
    """(tempo, start): the bar grid that puts every cut of the video within one beat of a bar
    line (within 7/8 of a beat before snapping to sixteenths), so that a new scene starts on a
    downbeat, where a section can start.

    Tried in order, the misfit of a grid being the mean squared distance (in beats) of the cuts
    to their bar lines: (1) the best-fitting tempo within ±cut_tempo_tolerance of `bpm`
    (multiples of 0.5 bpm; `bpm` itself when `fixed`, a tempo the user gave), the video starting
    on bar 0's downbeat, as long as it puts every cut on a downbeat; (2) those tempi with a
    pickup (`start` 12, 8 or 4: the video opens 1, 2 or 3 beats before bar 1), the
    best-fitting; (3) with `config.cuts_set_tempo`, any tempo of the range, with or without a
    pickup, trading misfit against distance from `bpm` (`cut_tempo_pull` per octave): cuts
    every two seconds need bars of about two seconds (bikes.mp4: cuts every 1.8-2.6 s, motion
    at 76 bpm; 111.5 bpm after a 2-beat pickup). If none puts every cut on a downbeat, (1)
    without that condition. The analysis then puts each cut within `cut_snap_16ths` of a bar
    line on it (`snap_to_bar_line`): with bikes.mp4's cuts a sixteenth off their downbeats, a
    beat tracker found 111.5 bpm in 5 of 12 songs (C = 0.7 and 1), with them on it in 11.
    """
    cuts = np.asarray(cut_times, dtype=np.float64)
    lo = max(config.tempo_min, bpm * (1 - config.cut_tempo_tolerance))
    hi = min(config.tempo_max, bpm * (1 + config.cut_tempo_tolerance))
    near = np.array([bpm]) if fixed else np.arange(np.ceil(lo * 2) / 2, hi + 1e-9, 0.5)
    if len(cuts) == 0 or len(near) == 0 or (config.cut_tempo_tolerance <= 0 and not fixed):
        return bpm, 0

    def octaves(tempo: float) -> float:
        return abs(math.log2(tempo / bpm))

    def misfit(grid: tuple[float, int]) -> float:  # ties: the least change of tempo
        return float(np.mean(cut_distances(*grid, cuts) ** 2)) + 1e-3 * octaves(grid[0])

    def on_downbeats(grid: tuple[float, int]) -> bool:
        return bool(cut_distances(*grid, cuts).max() <= 0.875)

    plain = min(((float(t), 0) for t in near), key=misfit)
    if on_downbeats(plain):
        return plain
    pickup = [g for g in product(near.tolist(), PICKUP_STARTS[1:]) if on_downbeats(g)]
    if pickup:
        return min(pickup, key=misfit)
    if config.cuts_set_tempo and not fixed:
        anywhere = np.arange(config.tempo_min, config.tempo_max + 1e-9, 0.5)
        wide = [g for g in product(anywhere.tolist(), PICKUP_STARTS) if on_downbeats(g)]
        if wide:
            return min(wide, key=lambda g: misfit(g) + config.cut_tempo_pull * octaves(g[0]))
    return plain


def snap_to_bar_line(sixteenth: int, within: int) -> int:
    """The nearest bar line's sixteenth when it is at most `within` sixteenths away, else
    `sixteenth` itself."""
    line = SIXTEENTHS_PER_BAR * round(sixteenth / SIXTEENTHS_PER_BAR)
    return line if abs(sixteenth - line) <= within else sixteenth


def bar_flow(times: np.ndarray, speed: np.ndarray, n_bars: int, bar_s: float) -> np.ndarray:
    """Mean speed of the frames inside each bar [m·bar_s, (m+1)·bar_s); the nearest frame's
    speed for a bar with no frame (a gap in a variable-frame-rate video)."""
    which = np.minimum((times / bar_s).astype(np.int64), n_bars - 1)
    total = np.bincount(which, weights=speed, minlength=n_bars)
    count = np.bincount(which, minlength=n_bars)
    out = np.empty(n_bars)
    for m in range(n_bars):
        if count[m]:
            out[m] = total[m] / count[m]
        else:
            out[m] = speed[int(np.argmin(np.abs(times - (m + 0.5) * bar_s)))]
    return out


def n_sixteenths_for(duration_s: float, tempo_bpm: float) -> int:
    """Number of sixteenths covering the video: ceil(duration / 60 · tempo · 4), at least 1."""
    return max(1, math.ceil(duration_s / 60.0 * tempo_bpm * 4 - 1e-9))


def analyze_motion(motion: Motion, config: AnalysisConfig = AnalysisConfig(),
                   tempo: float | None = None, source: str = "") -> VideoAnalysis:
    """The whole analysis after the streaming pass (pure): cuts, envelope, beats, tempo, grid."""
    if tempo is not None and not (20.0 <= tempo <= 300.0):
        raise VbgmError(f"tempo {tempo} bpm is out of range (20..300)")
    times = motion.times
    cuts = detect_cuts(motion, config)
    dt = float(np.median(np.diff(times)))
    env = impact_envelope(motion, cuts, config.envelope_smoothing_s / dt)
    speed = motion.speed.copy()
    for i in cuts:  # flow across a cut is not motion
        speed[i] = speed[i - 1]
    beat_idx, beat_w = pick_beats(times, env, config, times[cuts])
    start = 0
    if tempo is not None:  # the user's tempo; a pickup may still put the cuts on bar lines
        bpm, start = fit_grid_to_cuts(float(tempo), times[cuts], config, fixed=True)
        how = "given"
    elif motion.duration_s < config.min_tempo_duration_s or len(beat_idx) + len(cuts) == 0:
        bpm, how = float(config.default_tempo), "default"  # too short, or nothing to follow
    else:
        all_t = np.concatenate([times[beat_idx], times[cuts]])
        all_w = np.concatenate([beat_w, np.ones(len(cuts))])
        motion_bpm = estimate_tempo(times, env, all_t, all_w, config)
        bpm, start = fit_grid_to_cuts(motion_bpm, times[cuts], config)
        # "cuts": the cuts, not the motion, set it (they come faster than its bars)
        moved = abs(bpm / motion_bpm - 1) > config.cut_tempo_tolerance + 1e-9
        how = "cuts" if moved else "estimated"
    n16 = start + n_sixteenths_for(motion.duration_s, bpm)
    n_bars = -(-n16 // SIXTEENTHS_PER_BAR)
    bar_s, lead_s = 240.0 / bpm, start * 15.0 / bpm
    flows = bar_flow(times + lead_s, speed, n_bars, bar_s)
    bars = [Bar(index=m, start_s=round(m * bar_s - lead_s, 6), flow=float(flows[m]),
                density=density_class(float(flows[m]))) for m in range(n_bars)]
    # Snap to sixteenths; beats sharing a sixteenth merge (strongest weight, a cut wins).
    merged: dict[int, Beat] = {}
    events = [(i, float(w), False) for i, w in zip(beat_idx, beat_w)]
    events += [(i, 1.0, True) for i in cuts]
    for i, w, is_cut in events:
        t = float(times[i])
        s = min(start + int(round(t * bpm / 15.0)), n16 - 1)
        if is_cut:  # onto a bar line inside the song that no other cut holds, if near
            line = snap_to_bar_line(s, config.cut_snap_16ths)
            if (line < n16 and abs((line - start) * 15.0 / bpm - t) <= config.cut_snap_s
                    and not (line in merged and merged[line].is_cut)):
                s = line
        old = merged.get(s)
        if old is None or (is_cut, w) > (old.is_cut, old.weight):
            merged[s] = Beat(time_s=round(t, 6), sixteenth=s, weight=round(w, 6),
                             strength=strength_class(w), is_cut=is_cut)
    beats = [merged[s] for s in sorted(merged)]
    return VideoAnalysis(
        source=source, duration_s=motion.duration_s,
        fps=motion.n_frames / motion.duration_s, n_frames=motion.n_frames,
        width=motion.width, height=motion.height, tempo_bpm=bpm, tempo_source=how,
        n_sixteenths=n16, start=start, bars=bars, beats=beats,
        frame_times=times, frame_flow=speed, envelope=env,
        brightness=float(motion.brightness.mean()) if len(motion.brightness) else math.nan,
    )


def analyze(path: str | os.PathLike[str], config: AnalysisConfig = AnalysisConfig(),
            tempo: float | None = None, progress: bool = False) -> VideoAnalysis:
    """Analyse the video at `path` (see the module docstring). `tempo` (bpm) overrides the
    estimate. Raises VbgmError naming the file for anything that is not a usable video.

    Short inputs: a single-frame video (or an image) is an error; a video shorter than one bar
    gives one (partial) bar. A video shorter than `min_tempo_duration_s`, or one without any
    visual beat or cut (a still scene), gets `default_tempo` (tempo_source "default").
    """
    motion = read_motion(path, config, progress)
    return analyze_motion(motion, config, tempo, source=Path(path).name)


class AnalysisAhead:
    """A video's analysis in a forked child process, while this process starts up (imports
    torch, loads the model): on two cores the two overlap, where a thread would wait on the
    imports for the interpreter lock. `start` returns None where forking is not safe: off
    Linux, once torch is imported or another thread runs (a fork of a process whose OpenMP or
    other threads ran can hang), or when the fork fails.
    """

    def __init__(self, path: Path, tempo: float | None, progress: bool,
                 config: AnalysisConfig = AnalysisConfig()) -> None:
        import multiprocessing

        sys.stdout.flush()  # the child must not write this process's buffered output again
        sys.stderr.flush()
        self.path = path
        self.seconds = 0.0
        self._conn, child_end = multiprocessing.Pipe(duplex=False)
        self._process = multiprocessing.get_context("fork").Process(
            target=_analyze_in_child,
            args=(self._conn, child_end, path, tempo, progress, config, os.getpid()),
            daemon=True)
        try:
            self._process.start()
        finally:
            child_end.close()

    @classmethod
    def start(cls, path: str | os.PathLike[str], tempo: float | None = None,
              progress: bool = False, config: AnalysisConfig = AnalysisConfig()
              ) -> AnalysisAhead | None:
        """Start analysing `path` in a child process, or None where that is not safe."""
        import threading

        if (not sys.platform.startswith("linux") or "torch" in sys.modules
                or threading.active_count() > 1):
            return None
        try:
            return cls(Path(path), tempo, progress, config)
        except OSError:  # no fork (memory, process limit): analysed in this process instead
            return None

    def ready(self) -> bool:
        """Whether `result` would return at once (the child answered or died)."""
        return self._conn.poll()

    def result(self) -> VideoAnalysis:
        """Wait for the analysis; the child's VbgmError is raised here. `seconds`: its time."""
        try:
            kind, value, self.seconds = self._conn.recv()
        except EOFError:  # the child died without an answer (killed, out of memory)
            self._process.join(1.0)
            code = self._process.exitcode
            self.cancel()
            how = f"killed by signal {-code}" if code is not None and code < 0 else \
                f"exit status {code}"
            raise VbgmError(f"{self.path}: the analysis process ended without a result "
                            f"({how})") from None
        self.cancel()
        if kind == "error":
            raise VbgmError(value)
        if kind == "crash":  # a bug, not bad input: as loud as it would be in this process
            raise RuntimeError(f"analysing {self.path} failed in the child process:\n{value}")
        return value

    def cancel(self) -> None:
        """Stop the child if it still runs (nothing to clean: it writes no file)."""
        if self._process.is_alive():
            self._process.kill()
        self._process.join()
        self._conn.close()


def _die_with_parent(parent: int) -> None:
    """Have the kernel end this process when its parent ends (Linux; elsewhere nothing), so a
    `kill -9` of the program leaves no analysis running."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it ended before the request
        os._exit(1)


def _analyze_in_child(reader, conn, path: Path, tempo: float | None, progress: bool,
                      config: AnalysisConfig, parent: int) -> None:
    import signal
    import time
    import traceback

    # Ctrl-C reaches the whole process group: the child dies quietly, the parent reports it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    reader.close()  # only the parent reads: a dead parent then breaks the pipe
    _die_with_parent(parent)
    start = time.perf_counter()
    try:
        result = ("ok", analyze(path, config, tempo=tempo, progress=progress))
    except VbgmError as exc:
        result = ("error", str(exc))
    except Exception:  # noqa: BLE001 - reported by the parent
        result = ("crash", traceback.format_exc())
    try:
        conn.send((*result, time.perf_counter() - start))
    except OSError:  # the parent is gone
        pass
    os._exit(0)  # no exit handlers: they belong to the parent
