"""Loopable music (`--loop`): music whose end leads back into its start, and audio that plays
seamlessly when repeated.

- The notes (`make_loop`): nothing sounds past the loop's end (a note that would is cut there;
  its release rings on in the audio and is folded back, below), the last bar is the key's
  dominant seventh chord (every pitched note of it moved to the nearest tone of V7, the bass to
  its root) and the first downbeat the tonic triad, so the seam is a V7 -> I cadence. The tempo
  grid is the song's own: the loop lasts exactly its whole number of sixteenths, so the grid
  runs on across the seam.
- The audio (`seamless`): the render is cut at the loop's length and the release tail that rings
  past it is added onto the beginning (where it would sound when the loop repeats), then the
  peak limiter runs circularly (the end sees the start as what follows it). No gap, no click,
  nothing cut off.

Done as a post-process on the sampler's Song, so the sampler's rules stay as they are; the same
effect from the sampler itself would need its ending rule (last bar tonic, the one before
dominant) to end on the dominant instead, so the model could voice the chord itself.
"""

from __future__ import annotations

import numpy as np

from vbgm.harmony import chord_tones, detect_key, diatonic_triad
from vbgm.render import db_to_gain, limit_peaks
from vbgm.song import (
    BASS,
    DRUMS,
    DURATION,
    INSTRUMENT,
    ONSET,
    PITCH,
    SIXTEENTHS_PER_BAR,
    Song,
    normalize_notes,
)


def song_key(song: Song) -> int:
    """The key finder's key (0..23) of a song's pitched notes, weighted by duration."""
    pitched = song.notes[song.notes[:, INSTRUMENT] != DRUMS]
    hist = np.bincount(pitched[:, PITCH] % 12, weights=pitched[:, DURATION], minlength=12)
    return detect_key(hist)[0]


def _snap(pitches: np.ndarray, pcs: tuple[int, ...], root_only: bool = False) -> np.ndarray:
    """Each pitch moved to the nearest pitch whose class is in `pcs` (the first only with
    `root_only`); ties go down."""
    targets = pcs[:1] if root_only else pcs
    out = pitches.copy()
    for i, p in enumerate(pitches):
        moves = sorted((abs(d), d) for d in range(-6, 7) if (p + d) % 12 in targets)
        out[i] = p + moves[0][1]
    return np.clip(out, 0, 127)


def make_loop(song: Song, key: int | None = None) -> tuple[Song, int]:
    """The song made loopable (see the module doc) and the key it cadences in (`key`, else the
    key finder's)."""
    n = song.n_sixteenths
    notes = song.notes[song.notes[:, ONSET] < n].copy()
    notes[:, DURATION] = np.minimum(notes[:, DURATION], n - notes[:, ONSET])
    key = song_key(Song(notes, n)) if key is None else int(key)
    pitched = notes[:, INSTRUMENT] != DRUMS
    bass = notes[:, INSTRUMENT] == BASS
    last = pitched & (notes[:, ONSET] >= (song.n_bars - 1) * SIXTEENTHS_PER_BAR)
    first = pitched & (notes[:, ONSET] == song.start)  # (after a pickup's rest)
    for sel, triad in ((last, chord_tones(key, "V7")), (first, diatonic_triad(key, 0))):
        for roots in (True, False):  # the bass plays the chord's root, the others its tones
            rows = sel & (bass == roots)
            notes[rows, PITCH] = _snap(notes[rows, PITCH], triad, root_only=roots)
    return Song(normalize_notes(notes), n, song.genre, song.start), key


def loop_samples(n_sixteenths: int, tempo_bpm: float, sample_rate: int) -> int:
    """Samples of one pass of the loop: its sixteenths at the tempo."""
    return round(n_sixteenths * 15.0 / tempo_bpm * sample_rate)


def fold_tail(audio: np.ndarray, n: int) -> np.ndarray:
    """`audio` ((m, channels)) as a loop of `n` samples: what rings past `n` is added onto the
    start (wrapping again if the tail is longer than the loop); silence pads a short render."""
    out = np.zeros((n, audio.shape[1]), np.float32)
    head = audio[:n]
    out[:len(head)] = head
    for start in range(n, len(audio), n):
        chunk = audio[start:start + n]
        out[:len(chunk)] += chunk
    return out


def circular_limiter_gain(audio: np.ndarray, sample_rate: int, ceiling_db: float = -1.0
                          ) -> np.ndarray:
    """Per-sample gain (n,) of `render.limit_peaks` run on the loop as if it repeated (the end
    sees the start after it), so the limited loop has no step at the seam."""
    n = len(audio)
    pad = min(n, 4096)  # far more than the limiter's look-around (2 x 5 ms)
    ext = np.concatenate([audio[n - pad:], audio, audio[:pad]])
    limited = limit_peaks(ext, sample_rate, ceiling_db)[pad:pad + n]
    src = ext[pad:pad + n]
    ch = np.argmax(np.abs(src), axis=1)
    rows = np.arange(n)
    num, den = limited[rows, ch].astype(np.float64), src[rows, ch].astype(np.float64)
    return np.where(np.abs(den) > 1e-9, num / np.where(den == 0, 1, den), 1.0).astype(np.float32)


def seamless(mix: np.ndarray, stems: list[np.ndarray], n: int, sample_rate: int,
             ceiling_db: float = -1.0) -> tuple[np.ndarray, list[np.ndarray]]:
    """The mix and its stems as loops of `n` samples (`fold_tail`), peak-limited circularly with
    the mix's gains applied to every stem too (so they still sum to the mix)."""
    looped = fold_tail(mix, n)
    gain = circular_limiter_gain(looped, sample_rate, ceiling_db)[:, None]
    ceiling = db_to_gain(ceiling_db)
    return (np.clip(looped * gain, -ceiling, ceiling),
            [fold_tail(s, n) * gain for s in stems])
