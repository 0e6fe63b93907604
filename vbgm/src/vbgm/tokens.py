"""The CMT compound-word representation: Song <-> (T, 9) token rows, and the initial rows.

Per bar: a Bar row, then per (slot, instrument) group in time order (instrument id breaks ties)
a Beat row and the group's Note rows (by pitch); one all-zero EOS row ends the song. Columns are
in model order (`vocab.py`):

- Bar:  barbeat 17, type 1, density 1 + distinct onset slots in the bar (1 = empty bar).
- Beat: barbeat slot+1, type 1, density 1 + distinct onset slots later in the bar, instrument,
  strength = number of notes of that instrument starting there (capped at 19, the vocabulary's
  top class; the real corpus never reaches it).
- Note: type 2, pitch+1, min(16, duration)+1, instrument.
- Every row but EOS: p_beat = floor(100 * i / n) + 1 (capped at 101) and i_beat = i, where i is
  the row's absolute sixteenth (a Bar's is its first sixteenth, a Note's its onset) and
  n = song.n_sixteenths. The reference used floor in training and round in generation; floor is
  used everywhere here (the published weights were trained with it).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from vbgm.errors import VbgmError
from vbgm.song import (
    DURATION,
    INSTRUMENT,
    INSTRUMENTS,
    ONSET,
    PITCH,
    SIXTEENTHS_PER_BAR,
    VELOCITY,
    Song,
    normalize_notes,
    sort_notes,
)
from vbgm.vocab import (
    BAR,
    BARBEAT,
    DENSITY,
    I_BEAT,
    INSTR,
    N_CLASSES,
    N_FIELDS,
    N_INIT,
    P_BEAT,
    STRENGTH,
    TYPE,
    TYPE_EOS,
    TYPE_METRIC,
    TYPE_NOTE,
)
from vbgm.vocab import DURATION as T_DURATION
from vbgm.vocab import PITCH as T_PITCH

MAX_STRENGTH = N_CLASSES[STRENGTH] - 1
MAX_P_BEAT = N_CLASSES[P_BEAT] - 1  # 101


def p_beat(i: np.ndarray, n: int) -> np.ndarray:
    """Beat-position class floor(100 * i / n) + 1, capped at 101 (one rule everywhere)."""
    return np.minimum(100 * np.asarray(i, dtype=np.int64) // max(int(n), 1) + 1, MAX_P_BEAT)


def encode(song: Song) -> np.ndarray:
    """Tokenise a song into (T, 9) int32 rows in model column order, EOS row included.

    The notes are first put in canonical form (`normalize_notes`); `n_sixteenths` is raised to
    cover every note if it is short.
    """
    notes = normalize_notes(song.notes)
    if len(notes) and (notes[:, PITCH].min() < 0 or notes[:, PITCH].max() > 127
                       or notes[:, INSTRUMENT].min() < 1
                       or notes[:, INSTRUMENT].max() > len(INSTRUMENTS)
                       or notes[:, ONSET].min() < 0):
        raise VbgmError("song has notes outside pitch 0..127, instrument 1..5 or before time 0")
    end = int((notes[:, ONSET] + notes[:, DURATION]).max()) if len(notes) else 0
    n = max(int(song.n_sixteenths), end, 1)
    n_bars = -(-n // SIXTEENTHS_PER_BAR)
    onset, instr = notes[:, ONSET].astype(np.int64), notes[:, INSTRUMENT].astype(np.int64)
    note_bar = onset // SIXTEENTHS_PER_BAR

    # Groups = runs of equal (onset, instrument) in canonical order.
    starts = np.flatnonzero(np.r_[True, (onset[1:] != onset[:-1]) | (instr[1:] != instr[:-1])]) \
        if len(notes) else np.zeros(0, dtype=np.int64)
    group_of_note = np.cumsum(np.isin(np.arange(len(notes)), starts)) - 1
    g_onset, g_instr = onset[starts], instr[starts]
    g_bar = g_onset // SIXTEENTHS_PER_BAR
    g_size = np.diff(np.r_[starts, len(notes)])

    # Distinct onset slots: per bar (Bar density) and how many come later in the bar (Beat).
    slots = np.unique(onset)
    slot_bar = slots // SIXTEENTHS_PER_BAR
    per_bar = np.bincount(slot_bar, minlength=n_bars)
    bar_first = np.cumsum(per_bar) - per_bar  # index in `slots` of each bar's first slot
    rank = np.searchsorted(slots, g_onset)
    later = bar_first[g_bar] + per_bar[g_bar] - rank - 1

    # Row of every token: bars, groups and notes interleave in time order.
    bars = np.arange(n_bars)
    bar_row = bars + np.searchsorted(g_bar, bars) + np.searchsorted(note_bar, bars)
    group_row = g_bar + 1 + np.arange(len(starts)) + starts
    note_row = note_bar + 1 + group_of_note + 1 + np.arange(len(notes))
    out = np.zeros((n_bars + len(starts) + len(notes) + 1, N_FIELDS), dtype=np.int32)

    i_bar = bars * SIXTEENTHS_PER_BAR
    out[bar_row, BARBEAT] = BAR
    out[bar_row, TYPE] = TYPE_METRIC
    out[bar_row, DENSITY] = per_bar + 1
    out[bar_row, P_BEAT] = p_beat(i_bar, n)
    out[bar_row, I_BEAT] = i_bar

    out[group_row, BARBEAT] = g_onset % SIXTEENTHS_PER_BAR + 1
    out[group_row, TYPE] = TYPE_METRIC
    out[group_row, DENSITY] = later + 1
    out[group_row, INSTR] = g_instr
    out[group_row, STRENGTH] = np.minimum(g_size, MAX_STRENGTH)
    out[group_row, P_BEAT] = p_beat(g_onset, n)
    out[group_row, I_BEAT] = g_onset

    out[note_row, TYPE] = TYPE_NOTE
    out[note_row, T_PITCH] = notes[:, PITCH] + 1
    out[note_row, T_DURATION] = np.minimum(notes[:, DURATION], SIXTEENTHS_PER_BAR) + 1
    out[note_row, INSTR] = instr
    out[note_row, P_BEAT] = p_beat(onset, n)
    out[note_row, I_BEAT] = onset
    return out  # the last row stays all zero: EOS


# Velocity model of decoded notes: a per-instrument base, a metric accent by slot (downbeat,
# half bar, quarter, eighth, sixteenth) and a lift for groups with more notes (strength).
_BASE_VELOCITY = np.array([0, 92, 78, 76, 86, 68])
_SLOT_ACCENT = np.array([14, -8, -2, -8, 6, -8, -2, -8, 10, -8, -2, -8, 6, -8, -2, -8])


def velocities(slot: np.ndarray, instrument: np.ndarray, strength: np.ndarray) -> np.ndarray:
    """Velocity per note from its slot in the bar, its instrument and its group's strength:
    downbeats and beats louder than off-beats, fuller onsets louder than single notes."""
    lift = 3 * (np.clip(strength, 1, 6) - 1)
    v = _BASE_VELOCITY[instrument] + _SLOT_ACCENT[slot % SIXTEENTHS_PER_BAR] + lift
    return np.clip(v, 30, 127)


def decode(tokens: np.ndarray) -> Song:
    """Rebuild a Song from token rows (model column order), tolerating generated junk.

    Reference rules: the bar counter starts at -1 and steps at every Bar row; a Beat row sets the
    slot, which holds until the next Beat (even across a Bar); a Note row sounds at
    16 * bar + slot; the first EOS row (type 0) ends the song. Repairs: a note with instrument 0 is
    played by the drums (as the reference's generator does); notes before any Bar or Beat, with
    pitch 0 or out-of-range fields are dropped; duration class 0 or 1 becomes one sixteenth;
    identical notes are merged and same-pitch overlaps shortened (`normalize_notes`).
    Velocities follow `velocities()`. n_sixteenths = the end of the last note, or the start of
    the last bar + 1 when trailing bars are empty.
    """
    t = np.asarray(tokens)
    if t.ndim != 2 or t.shape[1] != N_FIELDS:
        raise VbgmError(f"tokens must be an array (T, {N_FIELDS}), got shape {t.shape}")
    t = t.astype(np.int64)
    eos = np.flatnonzero(t[:, TYPE] == TYPE_EOS)
    if len(eos):
        t = t[: eos[0]]
    metric = t[:, TYPE] == TYPE_METRIC
    is_bar = metric & (t[:, BARBEAT] == BAR)
    is_beat = metric & (t[:, BARBEAT] >= 1) & (t[:, BARBEAT] <= SIXTEENTHS_PER_BAR)
    bar = np.cumsum(is_bar) - 1
    # Forward-fill the last Beat's slot and strength onto every row.
    last_beat = np.maximum.accumulate(np.where(is_beat, np.arange(len(t)), -1))
    has_beat = last_beat >= 0
    slot = np.where(has_beat, t[np.maximum(last_beat, 0), BARBEAT] - 1, -1)
    strength = np.where(has_beat, t[np.maximum(last_beat, 0), STRENGTH], 1)

    sel = (t[:, TYPE] == TYPE_NOTE) & has_beat & (bar >= 0)
    sel &= (t[:, T_PITCH] >= 1) & (t[:, T_PITCH] <= 128)
    r = t[sel]
    instr = r[:, INSTR].copy()
    instr[(instr < 1) | (instr > len(INSTRUMENTS))] = 1  # the reference's repair: drums
    notes = np.zeros((len(r), 5), dtype=np.int32)
    notes[:, ONSET] = bar[sel] * SIXTEENTHS_PER_BAR + slot[sel]
    notes[:, DURATION] = np.clip(r[:, T_DURATION] - 1, 1, SIXTEENTHS_PER_BAR)
    notes[:, PITCH] = r[:, T_PITCH] - 1
    notes[:, INSTRUMENT] = instr
    notes[:, VELOCITY] = velocities(slot[sel], instr, strength[sel])
    notes = normalize_notes(notes)
    end = int((notes[:, ONSET] + notes[:, DURATION]).max()) if len(notes) else 0
    n_bars = int(is_bar.sum())
    n = max(end, (n_bars - 1) * SIXTEENTHS_PER_BAR + 1 if n_bars else 0)
    return Song(notes=sort_notes(notes), n_sixteenths=n)


def init_tokens(genre: int, instruments: Iterable[int], key_token: int = 0) -> np.ndarray:
    """The seven (genre, key, instrument) conditioning rows: (genre, 0, 0), (0, key_token, 0),
    then (0, 0, k) for k = 1..5 when instrument k is present and (0, 0, 0) when absent.
    key_token: 0 = any key (the reference's only value), 1 + k for key k (`vbgm.keys`)."""
    if not 0 <= int(genre) < 7:
        raise VbgmError(f"genre code must be 0..6, got {genre}")
    present = {int(k) for k in instruments}
    if not present <= set(range(1, len(INSTRUMENTS) + 1)):
        raise VbgmError(f"instrument ids must be 1..5, got {sorted(present)}")
    rows = np.zeros((N_INIT, 3), dtype=np.int64)
    rows[0, 0] = int(genre)
    rows[1, 1] = int(key_token)
    for k in present:
        rows[1 + k, 2] = k
    return rows


# The "any" request and the conditioning dropout: genre unknown, all five instruments.
ANY_INIT = init_tokens(0, range(1, len(INSTRUMENTS) + 1))
ANY_INIT.flags.writeable = False
