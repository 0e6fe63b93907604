"""Keys as the model sees them: the key token of the initial rows, transposition of token rows
and songs, and the two ways of training with keys (issue: key-aware model).

The reference never used its key slot (one class, always 0). A keyed model has 25 classes:
0 = any key, 1 + k for key k (0..23, `vbgm.harmony` numbering: majors 0..11, minors 12..23 by
tonic). `CMTConfig.keys` names the regime a model was trained with:

- "none": the reference's single class; the key is the sampler's business alone.
- "augment": every training window is transposed by a random -5..+6 semitones and its key
  token shifted to match, so the model learns every key from every song.
- "normalise": every song is transposed to C major / A minor (by -6..+5 semitones) and trained
  with that token; generation runs in C major / A minor and the song is transposed afterwards.

Drums are never transposed (their pitches name kit pieces).
"""

from __future__ import annotations

import numpy as np

from vbgm import harmony
from vbgm.errors import VbgmError
from vbgm.song import DRUMS, INSTRUMENT, PITCH, Song
from vbgm.vocab import INSTR, TYPE, TYPE_NOTE
from vbgm.vocab import PITCH as T_PITCH

REGIMES = ("none", "augment", "normalise")
N_KEY_TOKENS = 1 + harmony.N_KEYS  # any + 24 keys
ANY_KEY = 0
HOME = {False: 0, True: 12 + 9}  # C major, A minor
AUGMENT_SHIFTS = np.arange(-5, 7)  # twelve shifts: every tonic equally often


def check_regime(regime: str) -> str:
    if regime not in REGIMES:
        raise VbgmError(f"unknown key regime {regime!r}; choose from {', '.join(REGIMES)}")
    return regime


def n_key_classes(regime: str) -> int:
    """Classes of the initial rows' key column: 1 for the reference regime, else 25."""
    return 1 if check_regime(regime) == "none" else N_KEY_TOKENS


def key_token(key: int | None) -> int:
    """The initial-row key token of a key 0..23 (None or negative = any key)."""
    return ANY_KEY if key is None or key < 0 else 1 + int(key)


def shift_key(key: int, semitones: int) -> int:
    """The key `semitones` above `key`, same mode."""
    return (key % 12 + semitones) % 12 + (12 if harmony.is_minor(key) else 0)


def home_shift(key: int) -> int:
    """The transposition (-6..+5 semitones) that takes `key` to C major or A minor."""
    home = HOME[harmony.is_minor(key)]
    return (home - key + 6) % 12 - 6


def _fold(pitches: np.ndarray) -> np.ndarray:
    """Pitches moved by octaves into 0..127 (a transposition never drops a note)."""
    p = pitches.copy()
    p[p < 0] += 12 * (-(p[p < 0] // 12))
    p[p > 127] -= 12 * ((p[p > 127] - 116) // 12)
    return p


def transpose_rows(rows: np.ndarray, semitones: int) -> np.ndarray:
    """Token rows (T, 9) with every pitched (non-drum) note `semitones` higher (a copy)."""
    out = np.array(rows, copy=True)
    if semitones:
        notes = (out[:, TYPE] == TYPE_NOTE) & (out[:, INSTR] != DRUMS)
        out[notes, T_PITCH] = _fold(out[notes, T_PITCH] - 1 + semitones) + 1
    return out


def transpose_song(song: Song, semitones: int) -> Song:
    """The song with every pitched (non-drum) note `semitones` higher."""
    if not semitones:
        return song
    notes = song.notes.copy()
    pitched = notes[:, INSTRUMENT] != DRUMS
    notes[pitched, PITCH] = _fold(notes[pitched, PITCH] + semitones)
    return Song(notes=notes, n_sixteenths=song.n_sixteenths, genre=song.genre, start=song.start)


def window_key(regime: str, key: int, rng: np.random.Generator | None, dropout: bool
               ) -> tuple[int, int]:
    """(semitones, key token) for one training window of a song in `key` (-1 = unknown).

    Validation passes rng=None: no random transposition."""
    if regime == "none":
        return 0, ANY_KEY
    if key < 0:
        shift = 0
    elif regime == "normalise":
        shift = home_shift(key)
    else:
        shift = int(rng.choice(AUGMENT_SHIFTS)) if rng is not None else 0
    token = ANY_KEY if dropout or key < 0 else key_token(shift_key(key, shift))
    return shift, token


def generation_key(regime: str, key: int | None) -> tuple[int | None, int]:
    """(key to sample in, semitones to transpose the result by) for a requested key: a
    normalising model samples in C major / A minor and the song is transposed afterwards."""
    if regime != "normalise" or key is None:
        return key, 0
    shift = home_shift(key)
    return shift_key(key, shift), -shift
