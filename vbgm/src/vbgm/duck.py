"""Ducking: lower the music where the video's own sound is loud (speech, a shout, an engine), so
that what is said stays intelligible when `--keep-audio` mixes it under the music.

The original sound's short-time RMS (50 ms windows every 10 ms) marks the loud frames: above an
absolute floor and above the clip's own background level by a margin, so steady room tone or wind
does not duck the whole clip. Over those frames the music's gain is `-amount_db`; it ramps down
linearly in dB over `attack_s` *before* a loud passage (look-ahead: the music is already down
when the first word starts), stays down for `hold_s` after it (no pumping between words) and
ramps back up over `release_s`. Linear ramps rather than one-pole filters mean the full depth is
reached, exactly, over every loud frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DuckConfig:
    """How much and how fast the music ducks.

    amount_db: how far the music is lowered under loud original sound (dB, > 0).
    floor_db: original sound quieter than this (short-time RMS, dBFS) never ducks.
    margin_db: ... nor sound less than this much above the clip's background level (its 20th
        percentile of short-time RMS).
    attack_s / hold_s / release_s: ramp down before, stay down after, ramp up after that.
    window_s / hop_s: the RMS analysis.
    """

    amount_db: float = 12.0
    floor_db: float = -45.0
    margin_db: float = 10.0
    attack_s: float = 0.08
    hold_s: float = 0.25
    release_s: float = 0.5
    window_s: float = 0.05
    hop_s: float = 0.01


def short_time_rms_db(audio: np.ndarray, sample_rate: int, window_s: float = 0.05,
                      hop_s: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """(frame centre times in s, RMS in dBFS per frame) of `audio` ((n,) or (n, channels)),
    channels averaged in power; -120 dB for digital silence."""
    x = np.asarray(audio, dtype=np.float64)
    power = (x ** 2).mean(axis=1) if x.ndim == 2 else x ** 2
    hop = max(1, round(hop_s * sample_rate))
    win = max(hop, round(window_s * sample_rate))
    n_frames = max(0, (len(power) - 1) // hop + 1)
    if n_frames == 0:
        return np.zeros(0), np.zeros(0)
    csum = np.concatenate([[0.0], np.cumsum(power)])
    centres = np.arange(n_frames) * hop
    lo = np.clip(centres - win // 2, 0, len(power))
    hi = np.clip(centres + win - win // 2, 0, len(power))
    mean = (csum[hi] - csum[lo]) / np.maximum(hi - lo, 1)
    return centres / sample_rate, 10 * np.log10(np.maximum(mean, 1e-12))


def loud_frames(level_db: np.ndarray, config: DuckConfig = DuckConfig()) -> np.ndarray:
    """Which frames of a short-time level (dBFS) are loud enough to duck under."""
    if len(level_db) == 0:
        return np.zeros(0, dtype=bool)
    background = float(np.percentile(level_db, 20))
    return level_db > max(config.floor_db, background + config.margin_db)


def _ramps(active: np.ndarray, before: int, hold: int, after: int) -> np.ndarray:
    """Depth 0..1 per frame: 1 on and `hold` frames after active frames, linear ramps over
    `before` frames leading into them and `after` frames following the hold."""
    n = len(active)
    idx = np.arange(n)
    if not active.any():
        return np.zeros(n)
    last = np.maximum.accumulate(np.where(active, idx, -(10 ** 9)))  # last active at or before
    nxt = np.minimum.accumulate(np.where(active, idx, 10 ** 9)[::-1])[::-1]  # next at or after
    since = np.maximum(idx - last - hold, 0)
    until = nxt - idx
    release = np.clip(1 - since / max(after, 1), 0, 1) if after > 0 else (since == 0) * 1.0
    attack = np.clip(1 - until / max(before, 1), 0, 1) if before > 0 else (until == 0) * 1.0
    return np.maximum(release, attack)


def duck_curve(original: np.ndarray, sample_rate: int, config: DuckConfig = DuckConfig()
               ) -> tuple[np.ndarray, np.ndarray]:
    """(frame times in s, music gain in dB: 0 or down to -amount_db) for the original sound
    `original` ((n,) or (n, channels) float at `sample_rate`)."""
    if not config.amount_db > 0 or not np.isfinite(config.amount_db):
        raise ValueError(f"the ducking amount must be a positive number of dB, "
                         f"got {config.amount_db}")
    times, level = short_time_rms_db(original, sample_rate, config.window_s, config.hop_s)
    frames = lambda s: round(s / config.hop_s)  # noqa: E731
    depth = _ramps(loud_frames(level, config), frames(config.attack_s), frames(config.hold_s),
                   frames(config.release_s))
    return times, -config.amount_db * depth


def gain_per_sample(times: np.ndarray, gain_db: np.ndarray, n: int, sample_rate: int
                    ) -> np.ndarray:
    """The curve `duck_curve` gives, as a linear gain for each of `n` samples (float32)."""
    if len(times) == 0:
        return np.ones(n, np.float32)
    db = np.interp(np.arange(n) / sample_rate, times, gain_db)
    return (10.0 ** (db / 20.0)).astype(np.float32)


def duck(music: np.ndarray, original: np.ndarray, sample_rate: int,
         config: DuckConfig = DuckConfig()) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """`music` ((n, 2)) lowered where `original` (the same length, aligned) is loud; returns the
    ducked music and the curve (times in s, gain in dB) for the analysis plot."""
    times, gain_db = duck_curve(original, sample_rate, config)
    gain = gain_per_sample(times, gain_db, len(music), sample_rate)
    return music * gain[:, None], (times, gain_db)
