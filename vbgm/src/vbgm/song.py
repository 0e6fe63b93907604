"""The plain data model every stage shares: a song as a quantised note array on a sixteenth grid.

A song is 4/4 at 16 positions per bar. Notes are held as one integer array (fast to build from
symusic's numpy export, fast to tokenise) rather than a list of objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SIXTEENTHS_PER_BAR = 16

# Instrument classes as LPD-5 merges them; the id is the CMT token value (0 = none).
INSTRUMENTS: tuple[str, ...] = ("drums", "piano", "guitar", "bass", "strings")
INSTRUMENT_IDS: dict[str, int] = {name: i + 1 for i, name in enumerate(INSTRUMENTS)}
DRUMS, PIANO, GUITAR, BASS, STRINGS = range(1, len(INSTRUMENTS) + 1)
# General MIDI level-1 percussion keys (Acoustic Bass Drum .. Open Triangle): a fact, not a fit.
GM_PERCUSSION = (35, 81)

# Genre codes of the CMT initial tokens.
GENRES: tuple[str, ...] = ("unknown", "metal", "country", "dance", "electronic", "pop", "rock")
GENRE_IDS: dict[str, int] = {name: i for i, name in enumerate(GENRES)}

# Columns of Song.notes.
ONSET, DURATION, PITCH, INSTRUMENT, VELOCITY = range(5)


def bar_length(n_sixteenths: int, bar: int, start: int = 0) -> int:
    """Sixteenths of bar `bar` (0-based) in a song of `n_sixteenths` starting on sixteenth
    `start` of bar 0: 16, fewer for a last bar cut short by the song's end (0 or less past the
    end) and for a pickup bar 0 (16 - start)."""
    return min(SIXTEENTHS_PER_BAR, n_sixteenths - bar * SIXTEENTHS_PER_BAR) \
        - (start if bar == 0 else 0)


def empty_notes() -> np.ndarray:
    """An empty (0, 5) note array."""
    return np.zeros((0, 5), dtype=np.int32)


@dataclass
class Song:
    """A quantised multi-track song.

    notes: int32 array (N, 5) with columns onset (absolute sixteenth), duration (sixteenths,
        1..16), pitch (MIDI 0..127), instrument (1..5, see INSTRUMENTS), velocity (1..127).
        Sorted by (onset, instrument, pitch).
    n_sixteenths: song length in sixteenths (>= last onset + 1), counted from bar 0's downbeat;
        drives the beat-position class.
    genre: genre code (GENRES index), 0 = unknown.
    start: the sixteenth of bar 0 the song starts on (no note before it): 0, or the rest of bar
        0 after a pickup (4 for a 3-beat pickup, 12 for a 1-beat one). Its audio and MIDI begin
        there.
    """

    notes: np.ndarray = field(default_factory=empty_notes)
    n_sixteenths: int = 0
    genre: int = 0
    start: int = 0

    @property
    def instruments(self) -> tuple[int, ...]:
        """Instrument ids present in the song, ascending."""
        return tuple(int(i) for i in np.unique(self.notes[:, INSTRUMENT]))

    @property
    def n_bars(self) -> int:
        """Number of bars the song spans."""
        return -(-self.n_sixteenths // SIXTEENTHS_PER_BAR)

    @property
    def length(self) -> int:
        """Sixteenths the song lasts (from its start, after any pickup rest)."""
        return self.n_sixteenths - self.start


def sort_notes(notes: np.ndarray) -> np.ndarray:
    """Return notes sorted by (onset, instrument, pitch, duration): the canonical order."""
    if len(notes) == 0:
        return notes
    order = np.lexsort((notes[:, DURATION], notes[:, PITCH], notes[:, INSTRUMENT], notes[:, ONSET]))
    return notes[order]


def normalize_notes(notes: np.ndarray) -> np.ndarray:
    """Return the canonical form of a note array: what `read_midi` and `decode` produce.

    Durations are clipped to 1..16 and velocities to 1..127; of notes sharing (onset, pitch,
    instrument) only the longest (then loudest) is kept; a note that would still sound when the
    same pitch of the same instrument starts again is shortened to end there (MIDI cannot hold two
    overlapping notes of one pitch on one channel); the result is in canonical order.
    """
    notes = np.asarray(notes, dtype=np.int32).reshape(-1, 5).copy()
    if len(notes) == 0:
        return notes
    notes[:, DURATION] = np.clip(notes[:, DURATION], 1, SIXTEENTHS_PER_BAR)
    notes[:, VELOCITY] = np.clip(notes[:, VELOCITY], 1, 127)
    # Group by (instrument, pitch, onset), longest then loudest first; keep each group's first.
    order = np.lexsort((-notes[:, VELOCITY], -notes[:, DURATION], notes[:, ONSET],
                        notes[:, PITCH], notes[:, INSTRUMENT]))
    notes = notes[order]
    key = notes[:, [INSTRUMENT, PITCH, ONSET]]
    first = np.ones(len(notes), dtype=bool)
    first[1:] = np.any(key[1:] != key[:-1], axis=1)
    notes = notes[first]
    # Same (instrument, pitch) rows are now adjacent and in onset order: cut at the next onset.
    same = np.all(notes[1:, [INSTRUMENT, PITCH]] == notes[:-1, [INSTRUMENT, PITCH]], axis=1)
    gap = notes[1:, ONSET] - notes[:-1, ONSET]
    cut = same & (notes[:-1, DURATION] > gap)
    notes[:-1, DURATION][cut] = gap[cut]
    return sort_notes(notes)
