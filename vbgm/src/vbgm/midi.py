"""MIDI files <-> `Song`: LPD-5 instrument merge, sixteenth-grid quantisation, skip reasons.

Reading works on whole tracks with symusic's numpy export (no per-note Python), so a typical file
takes about a millisecond.

Metre policy (the grid is 16 sixteenths per 4/4 bar, bar lines at multiples of 4 quarters from
tick 0): time signatures whose bar is 1, 2 or 4 quarters long (1/4, 2/4, 4/4, 2/2, ...) lie on that
grid and are accepted -- POP909 writes 1/4 throughout, which says nothing about the real metre, and
a 2/4 song tiles 4/4 bars. At the first time signature that is anything else (3/4, 6/8, 5/4, ...) or
that falls off the 4/4 bar grid, the song is *cut*: the leading section is kept when it has at least
`min_bars` bars, otherwise the song is skipped with reason "not-4/4". Cutting rather than skipping
keeps the many game/pop songs that switch metre late (a coda, a fill bar); re-aligning later 4/4
sections would need a bar count that drifting files do not give reliably, so they are dropped.
Tempo changes do not matter: the grid is in ticks.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vbgm.atomic import atomic_path
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
)
from vbgm.vocab import MAX_SIXTEENTHS

# Skip reasons (machine-readable; the message carries the detail).
UNREADABLE, EMPTY, NOT_44, TOO_LONG, TOO_LARGE, NO_NOTES = (
    "unreadable", "empty", "not-4/4", "too-long", "too-large", "no-notes-after-filter")

# GM program -> LPD-5 class id (drums are decided by the drum flag, not the program).
_PROGRAM_CLASS = np.full(128, 5, dtype=np.int32)  # strings = every other program
_PROGRAM_CLASS[0:24] = 2  # piano
_PROGRAM_CLASS[24:32] = 3  # guitar
_PROGRAM_CLASS[32:40] = 4  # bass

# Writing: track name and GM program per class (drums go on the drum channel).
TRACK_NAMES: tuple[str, ...] = ("Drums", "Piano", "Guitar", "Bass", "Strings")
GM_PROGRAMS: dict[int, int] = {1: 0, 2: 0, 3: 27, 4: 33, 5: 48}
# Ticks per quarter of written files (120 ticks per sixteenth).
WRITE_TPQ = 480


class SkipSong(VbgmError):
    """A file that is not used as training data. `reason` is one short machine-readable word."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class QuantizeConfig:
    """How a MIDI file becomes a Song.

    min_notes: an instrument class with this many notes or fewer is dropped (the reference's 20).
    min_bars: the shortest leading 4/4 section kept when the metre changes later.
    max_sixteenths: longer songs are skipped ("too-long"); the position table has 20,000 rows.
    max_file_bytes: larger files are not parsed ("too-large").
    trim_leading_bars: drop whole empty bars before the first note (keeps the bar grid).
    """

    min_notes: int = 20
    min_bars: int = 4
    max_sixteenths: int = MAX_SIXTEENTHS
    max_file_bytes: int = 16 * 2**20
    trim_leading_bars: bool = True


def read_midi(path: str | os.PathLike[str], config: QuantizeConfig | None = None) -> Song:
    """Read a MIDI file into a quantised 4/4 Song; raises SkipSong when it cannot be used."""
    return load_song(path, config)[0]


def load_song(path: str | os.PathLike[str],
              config: QuantizeConfig | None = None) -> tuple[Song, str]:
    """Like `read_midi`, plus a note on what was cut ("" when the whole file was used)."""
    import symusic

    config = config or QuantizeConfig()
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SkipSong(UNREADABLE, f"{path}: cannot read ({exc.strerror})") from exc
    if size == 0:
        raise SkipSong(EMPTY, f"{path}: empty file")
    if size > config.max_file_bytes:
        raise SkipSong(TOO_LARGE, f"{path}: {size} bytes, over the {config.max_file_bytes} limit")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SkipSong(UNREADABLE, f"{path}: cannot read ({exc.strerror})") from exc
    problem = check_chunks(data)
    if problem:
        raise SkipSong(UNREADABLE, f"{path}: {problem}")
    try:
        score = symusic.Score.from_midi(data)
    except Exception as exc:  # symusic raises plain RuntimeError/ValueError on bad bytes
        raise SkipSong(UNREADABLE, f"{path}: not a readable MIDI file ({exc})") from exc
    return score_to_song(score, config, name=str(path))


def check_chunks(data: bytes) -> str:
    """What is wrong with the chunk structure of MIDI bytes ("" if nothing).

    symusic 0.5.9 crashes the process on some truncated files instead of raising, so a file
    whose header is missing or whose last chunk runs past the end is refused before parsing.
    """
    if len(data) < 14 or data[:4] != b"MThd":
        return "not a MIDI file (no MThd header)"
    pos = 8 + int.from_bytes(data[4:8], "big")
    tracks = 0
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos + 4: pos + 8], "big")
        if data[pos: pos + 4] == b"MTrk":
            tracks += 1
        pos += 8 + length
    if pos > len(data):
        return f"truncated (a chunk runs {pos - len(data)} bytes past the end of the file)"
    if tracks == 0:
        return "no MTrk track chunk"
    return ""


def score_to_song(score, config: QuantizeConfig | None = None,
                  name: str = "<score>") -> tuple[Song, str]:
    """Merge a tick-time symusic Score into a Song; returns (song, note on what was cut)."""
    config = config or QuantizeConfig()
    tpq = int(score.ticks_per_quarter)
    if tpq <= 0:
        raise SkipSong(UNREADABLE, f"{name}: ticks per quarter is {tpq}")
    parts = []
    for track in score.tracks:  # a loop over tracks only; notes stay in numpy
        if track.note_num() == 0:
            continue
        a = track.notes.numpy()
        cls = 1 if track.is_drum else int(_PROGRAM_CLASS[int(track.program) & 127])
        part = np.empty((len(a["time"]), 5), dtype=np.int64)
        part[:, ONSET] = a["time"]
        part[:, DURATION] = a["duration"]
        part[:, PITCH] = a["pitch"]
        part[:, INSTRUMENT] = cls
        part[:, VELOCITY] = a["velocity"]
        parts.append(part)
    if not parts:
        raise SkipSong(EMPTY, f"{name}: no notes")
    raw = np.concatenate(parts)
    raw = raw[(raw[:, PITCH] >= 0) & (raw[:, ONSET] >= 0)]
    cut_sixteenth, note, shift = _metre_limit(score, tpq, name, config)
    raw[:, ONSET] += shift  # a pickup ends where the first full bar begins

    # Ticks -> sixteenths, rounding half up; durations of 0 ticks become 1 sixteenth.
    notes = np.empty_like(raw)
    notes[:, ONSET] = (8 * raw[:, ONSET] + tpq) // (2 * tpq)
    notes[:, DURATION] = (8 * np.maximum(raw[:, DURATION], 0) + tpq) // (2 * tpq)
    notes[:, 2:] = raw[:, 2:]

    if cut_sixteenth is not None:
        first = int(notes[:, ONSET].min())
        if cut_sixteenth // SIXTEENTHS_PER_BAR - first // SIXTEENTHS_PER_BAR < config.min_bars:
            raise SkipSong(NOT_44, f"{name}: {note}, too little 4/4 music before it")
        notes = notes[notes[:, ONSET] < cut_sixteenth]

    notes = normalize_notes(notes)
    counts = np.bincount(notes[:, INSTRUMENT], minlength=len(INSTRUMENTS) + 1)
    notes = notes[counts[notes[:, INSTRUMENT]] > config.min_notes]
    if len(notes) == 0:
        raise SkipSong(NO_NOTES, f"{name}: no instrument has more than {config.min_notes} notes")
    start = shift * 4 // tpq  # the pickup's rest in bar 0
    if config.trim_leading_bars:
        first_bar = int(notes[:, ONSET].min()) // SIXTEENTHS_PER_BAR
        notes[:, ONSET] -= first_bar * SIXTEENTHS_PER_BAR
        start = start if first_bar == 0 else 0
    n = int((notes[:, ONSET] + notes[:, DURATION]).max())
    if n > config.max_sixteenths:
        raise SkipSong(TOO_LONG, f"{name}: {n} sixteenths, over the {config.max_sixteenths} limit")
    return Song(notes=notes, n_sixteenths=n, start=min(start, int(notes[:, ONSET].min()))), note


def _pickup_ticks(times: np.ndarray, quarters: np.ndarray, tpq: int) -> int:
    """Length in ticks of a pickup: leading bars shorter than 4/4 (e.g. a 1/4 bar) that end,
    inside the first 4 quarters and on a quarter, where the first 4/4 bar begins; 0 if none."""
    full = np.flatnonzero(quarters == 4.0)
    if len(full) == 0 or full[0] == 0:
        return 0
    p = int(times[full[0]])
    return p if 0 < p < 4 * tpq and p % tpq == 0 else 0


def _metre_limit(score, tpq: int, name: str,
                 config: QuantizeConfig) -> tuple[int | None, str, int]:
    """(the sixteenth where the 4/4 grid stops holding, or None: it holds to the end; why; the
    shift in ticks that puts a pickup at the end of bar 0, so the first full bar starts bar 1)."""
    ts = score.time_signatures.numpy()
    times = ts["time"].astype(np.int64)
    if len(times) == 0:
        return None, "", 0  # MIDI default: 4/4
    order = np.argsort(times, kind="stable")
    times, num, den = times[order], ts["numerator"][order].astype(int), ts["denominator"][order]
    den = den.astype(int)
    last_at_time = np.r_[times[1:] != times[:-1], True]  # several events at one tick: last wins
    times, num, den = times[last_at_time], num[last_at_time], den[last_at_time]
    quarters = np.divide(num * 4, den, out=np.zeros(len(num)), where=den > 0)
    pickup = _pickup_ticks(times, quarters, tpq)
    shift = 4 * tpq - pickup if pickup else 0
    if pickup:  # the pickup's own signatures are done with: the grid starts at its end
        keep = times >= pickup
        times, num, den, quarters = times[keep] + shift, num[keep], den[keep], quarters[keep]
    ok = np.isin(quarters, (1.0, 2.0, 4.0)) & (times % (4 * tpq) == 0)
    if ok.all():
        return None, "", shift
    i = int(np.argmin(ok))
    cut = int(times[i]) * 4 // tpq
    where = f"bar {cut // SIXTEENTHS_PER_BAR + 1}"
    return cut, (f"metre {num[i]}/{den[i]} at {where}" if times[i] % (4 * tpq) == 0 else
                 f"time signature off the 4/4 bar grid at {where}"), shift


def key_signature_sharps(key: int) -> int:
    """Sharps (> 0) or flats (< 0) of a key 0..23 (`vbgm.harmony` numbering), -6..5: a minor key
    takes its relative major's signature; Gb rather than F#."""
    major_tonic = key % 12 if key < 12 else (key + 3) % 12
    return (major_tonic * 7 + 6) % 12 - 6


def section_name(index: int) -> str:
    """'A', 'B', ... for the index-th section (numbers past Z)."""
    return chr(ord("A") + index) if index < 26 else str(index + 1)


def song_to_score(song: Song, tempo_bpm: float = 120.0, programs: dict[int, int] | None = None,
                  key: int | None = None, cut_times: Sequence[float] = (),
                  sections: Sequence[int] = ()):
    """A symusic Score (tick time) of the song: one named track per present instrument class,
    GM programs from `programs` (default GM_PROGRAMS), drums on the drum channel, the tempo, a
    4/4 time signature and the notes' own velocities. A song with a pickup (`Song.start` > 0)
    starts at tick 0 with a bar of its pickup's beats (e.g. 2/4), then 4/4 from bar 1.

    For DAWs and notation programs also: the key signature of `key` (0..23, None = unknown: none
    written) and markers "cut N" at `cut_times` (seconds of the video, which starts at tick 0:
    where the cut is, though its accent was put on the nearest sixteenth or bar line) and
    "section X" at `sections` (bars)."""
    import symusic

    if tempo_bpm <= 0:
        raise VbgmError(f"tempo must be positive, got {tempo_bpm}")
    programs = {**GM_PROGRAMS, **(programs or {})}
    tick = WRITE_TPQ // 4
    score = symusic.Score(WRITE_TPQ)
    score.tempos.append(symusic.Tempo(0, float(tempo_bpm)))
    pickup = (SIXTEENTHS_PER_BAR - song.start) % SIXTEENTHS_PER_BAR  # sixteenths before bar 1
    if pickup:  # in quarters when it is whole beats (2/4), else in sixteenths (6/16)
        num, den = (pickup // 4, 4) if pickup % 4 == 0 else (pickup, 16)
        score.time_signatures.append(symusic.TimeSignature(0, num, den))
    score.time_signatures.append(symusic.TimeSignature(pickup * tick, 4, 4))
    if key is not None:
        score.key_signatures.append(
            symusic.KeySignature(0, key_signature_sharps(int(key)), int(key >= 12)))
    marks = [(max(0, int(s) * SIXTEENTHS_PER_BAR - song.start) * tick,
              f"section {section_name(i)}") for i, s in enumerate(sections)]
    marks += [(round(float(t) * tempo_bpm / 60.0 * WRITE_TPQ), f"cut {i}")
              for i, t in enumerate(cut_times, 1)]
    for time, text in sorted(marks):
        score.markers.append(symusic.TextMeta(time, text))
    notes = song.notes
    for k in song.instruments:
        sel = notes[notes[:, INSTRUMENT] == k]
        track = symusic.Track(name=TRACK_NAMES[k - 1], program=programs[k], is_drum=k == 1)
        track.notes = symusic.Note.from_numpy(
            time=np.ascontiguousarray((sel[:, ONSET] - song.start) * tick, dtype=np.int32),
            duration=np.ascontiguousarray(sel[:, DURATION] * tick, dtype=np.int32),
            pitch=np.ascontiguousarray(np.clip(sel[:, PITCH], 0, 127), dtype=np.int8),
            velocity=np.ascontiguousarray(np.clip(sel[:, VELOCITY], 1, 127), dtype=np.int8),
        )
        score.tracks.append(track)
    return score


def track_score(score, index: int):
    """A copy of `score` with only its track `index` (tempo, metre, key and markers kept): the
    MIDI of one stem."""
    one = score.copy()
    one.tracks = [one.tracks[index]]
    return one


def write_midi(song: Song, path: str | os.PathLike[str], tempo_bpm: float = 120.0,
               programs: dict[int, int] | None = None) -> Path:
    """Write the song as a standard MIDI file (atomically); returns the path."""
    path = Path(path)
    score = song_to_score(song, tempo_bpm, programs)
    with atomic_path(path) as tmp:
        score.dump_midi(str(tmp))
    return path
