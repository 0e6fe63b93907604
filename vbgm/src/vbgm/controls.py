"""Measurements → CMT control classes: bar flow speed → density 5..17, beat weight → strength.

Density (a bar's class in the CMT tokens, 1 = empty bar, 17 = every sixteenth has an onset) is
DENSITY_FLOOR + the number of DENSITY_THRESHOLDS the bar's mean flow speed reaches, so it is
monotonic in speed. The floor is class 5 (four onsets, one a beat): a still scene asks for calm
music, not for silence (classes 1-4 leave beats without any onset; real multi-track songs have
1-9 % empty beats). Speed is in frame heights per second (flow measured at a fixed analysis
height and divided by it and by the frame interval), so the class depends neither on resolution
nor on frame rate.

How the thresholds were fitted (`benchmarks/fit_controls.py`, results in
`benchmarks/fits/controls_fit.json`, made with the earlier 16 thresholds and floor 1): 12 values
log-spaced (each ×1.56 the previous; perceived speed is roughly logarithmic) between
  - 0.007 = 2.5 × the 95th-percentile speed of a still scene with camera noise after H.264
    compression (0.0028): a tripod shot stays at the floor;
  - 1.0 = the fastest 2-s window (bars at 120 bpm) among the five real clips in
    ../shared/data/videos (bikes.mp4's pan, 1.03, to one significant figure): the fastest real
    footage reaches the top class.
On those clips, at their estimated tempi, this spreads the classes over the range (from the low
end: static-camera pedestrians, a hand-held object, a face in a moving car, a hand-held cup, up
to cycling with pans and cuts).
The reference instead uses 16 thresholds fitted on its own training videos in pixels per frame
at 360p (cmt-spec.md §4).

Strength (a visual beat's class; in training it is a note count, 0..10 here as in the reference)
is 1 + the number of STRENGTH_THRESHOLDS the beat's weight (0..1, relative to the video's
strongest impact; cuts weigh 1) reaches. The thresholds are the deciles of the visual-beat
weights of the five real clips (66 beats; cuts and each clip's strongest beat, weight 1 by
construction, left out; each clip counting equally), so the classes are used about equally often
on real footage; class 1 (the weakest tenth) is the class the generator drops, as the reference
does. Five clips are little data: the thresholds are a documented starting point, not a law.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vbgm.errors import VbgmError
from vbgm.request import check_seed
from vbgm.song import SIXTEENTHS_PER_BAR

# Frame heights per second; see the module docstring for the fit.
DENSITY_FLOOR = 5
DENSITY_THRESHOLDS: tuple[float, ...] = tuple(
    float(f"{x:.4g}") for x in np.geomspace(0.007, 1.0, 17 - DENSITY_FLOOR))
# Deciles of visual-beat weight on the real clips.
STRENGTH_THRESHOLDS: tuple[float, ...] = (0.27, 0.43, 0.49, 0.53, 0.54, 0.66, 0.74, 0.79, 0.88)


def density_class(flow: float) -> int:
    """Density class 5..17 of a bar whose mean flow speed is `flow` (frame heights per second)."""
    return DENSITY_FLOOR + int(np.searchsorted(DENSITY_THRESHOLDS, flow, side="right"))


def strength_class(weight: float) -> int:
    """Strength class of a visual beat of weight 0..1: 1..10, and 0 for weight <= 0."""
    if weight <= 0:
        return 0
    return 1 + int(np.searchsorted(STRENGTH_THRESHOLDS, weight, side="right"))


# The mode of the `--key auto` choice. Brightness (mean grey level 0..1) and motion (the median
# bar density class) each vote, centred and scaled on the real clips (brightness 0.41-0.67,
# median density 6-14); the sum decides: dark and calm footage gets a minor key, bright or
# lively footage a major one. Five clips do not make a law of taste: a documented default.
MODE_BRIGHTNESS = (0.45, 0.15)  # (centre, scale)
MODE_DENSITY = (10.0, 4.0)


def mode_score(brightness: float, densities: list[int]) -> float:
    """Positive for a major-sounding picture, negative for a minor one (see MODE_*)."""
    b = 0.0 if np.isnan(brightness) else (brightness - MODE_BRIGHTNESS[0]) / MODE_BRIGHTNESS[1]
    d = (float(np.median(densities)) - MODE_DENSITY[0]) / MODE_DENSITY[1] if densities else 0.0
    return b + d


def describe_mode(brightness: float, densities: list[int]) -> str:
    """The `--key auto` mode in words, with its reasons (for `vbgm analyze` and the console)."""
    score = mode_score(brightness, densities)
    light = "unknown" if np.isnan(brightness) else f"{brightness:.2f}"
    median = f"{float(np.median(densities)):g}" if densities else "none"
    return (f"{'major' if score >= 0 else 'minor'} (score {score:+.2f} from brightness {light} "
            f"vs {MODE_BRIGHTNESS[0]:g} and median density {median} vs {MODE_DENSITY[0]:g}: "
            "dark and calm → minor, bright or lively → major)")


def auto_key(brightness: float, densities: list[int], seed: int) -> int:
    """The key (0..23, see vbgm.harmony) `--key auto` picks: the mode from the picture
    (`mode_score`), the tonic drawn from the seed and the video's bar densities: the same seed
    and video, the same key; a batch of videos under one seed is not all in one key (with the
    seed alone, four clips scored with seed 0 were all in B major)."""
    check_seed(seed)
    tonic = int(np.random.default_rng([seed, 12, *(int(d) for d in densities)]).integers(12))
    return tonic + (12 if mode_score(brightness, densities) < 0 else 0)


def video_auto_key(analysis, seed: int) -> int:
    """`auto_key` of a `vbgm.video.VideoAnalysis`: its brightness and its bars' densities."""
    return auto_key(analysis.brightness, [b.density for b in analysis.bars], seed)


def auto_key_without_video(seed: int) -> int:
    """`--key auto` for music without a video (`vbgm compose`): a major key (nothing to read a
    mood from), its tonic from the seed."""
    return auto_key(float("nan"), [], seed)


@dataclass
class Controls:
    """What the video asks of the music, on the sixteenth grid.

    n_sixteenths: the music's length (the video's length at its tempo), counted from bar 0's
        downbeat.
    start: the sixteenth of bar 0 the music starts on: 0, or 4, 8, 12 for a pickup (the video
        opens 3, 2, 1 beats before bar 1, so that its cuts fall on bar lines).
    bar_density: per bar, the density class 1..17 (0 = no control for that bar).
    beats: (M, 2) int array of (sixteenth, strength class 0..10), ascending; strength 0 beats are
        not forced.
    cuts: sixteenths of the video's hard cuts: the music's sections start at the nearest bar
        lines.
    """

    n_sixteenths: int
    start: int = 0
    bar_density: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    beats: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    cuts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        if self.n_sixteenths < 1:
            raise VbgmError(f"music length must be at least one sixteenth, got {self.n_sixteenths}")
        if not 0 <= self.start < min(SIXTEENTHS_PER_BAR, self.n_sixteenths):
            raise VbgmError(f"the music must start inside its first bar, not on sixteenth "
                            f"{self.start}")
        self.bar_density = np.asarray(self.bar_density, dtype=np.int64).reshape(-1)
        self.beats = np.asarray(self.beats, dtype=np.int64).reshape(-1, 2)
        keep = (self.beats[:, 0] >= self.start) & (self.beats[:, 0] < self.n_sixteenths)
        beats = self.beats[keep]
        self.beats = beats[np.argsort(beats[:, 0], kind="stable")]
        self.cuts = np.sort(np.asarray(self.cuts, dtype=np.int64).reshape(-1))

    @property
    def n_bars(self) -> int:
        return -(-self.n_sixteenths // SIXTEENTHS_PER_BAR)

    @classmethod
    def from_analysis(cls, analysis) -> Controls:
        """Controls from a `vbgm.video.VideoAnalysis`."""
        beats = [(b.sixteenth, b.strength) for b in analysis.beats]
        return cls(n_sixteenths=analysis.n_sixteenths, start=analysis.start,
                   bar_density=[b.density for b in analysis.bars],
                   beats=np.array(beats, dtype=np.int64).reshape(-1, 2),
                   cuts=np.array([b.sixteenth for b in analysis.beats if b.is_cut],
                                 dtype=np.int64))
