"""Musical form from the video: sections at its cuts, phrases that repeat, bars that are re-played.

Pure planning over bar indices, made before sampling:
- `plan_sections`: the video's cuts split the music into sections whose boundaries are the bar
  lines nearest to the cuts; `form_sections`: those the form follows (at least a phrase long).
- `plan_repeats`: inside a section, 4-bar phrases: bars 0, 1 and 3 of the first phrase are new,
  bar 2 re-plays bar 0; later phrases re-play the phrase before them, each 8-bar period's last bar
  new again (the variation at the phrase end). A section whose motion level is close to an
  earlier section's recalls that section's bars. The last bar of a section (its transition) and
  the last bar of the song (the cadence) are always new. `match_density` then lets a re-played
  bar take the earlier bar of its section (with its chord) whose requested density is closest.
- `replay_groups`: a re-played bar's note groups, fitted to the bar's own density and visual beats:
  weaker slots dropped or copies of neighbouring groups added until the count matches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vbgm.harmony import PHRASE_CHORDS, PHRASE_CHORDS_MINOR, SONG_FORM
from vbgm.song import SIXTEENTHS_PER_BAR

PHRASE_BARS = 4
PERIOD_BARS = 8
CADENCE_FROM_BARS = 5  # songs this long or longer end V7-I (`phrase_chords`)
FILL_FROM = 12  # the slot a fill starts at: the bar's last beat
PICKUP_CHORD = "V"  # a pickup bar's chord (`harmony.CHORDS`): it leads into the form's tonic
# Metrical weight of each sixteenth of a 4/4 bar: downbeat, half bar, beats, eighths, sixteenths.
SLOT_WEIGHT = np.array([5, 1, 2, 1, 3, 1, 2, 1, 4, 1, 2, 1, 3, 1, 2, 1])


def plan_sections(n_bars: int, cut_sixteenths: np.ndarray) -> list[int]:
    """First bar of every section: 0, then the bar line nearest to each cut (half a bar: the
    later), ascending; a cut nearest to bar 0's line or to the line after the last bar starts
    none. Every cut starts a section: its downbeat is where the new scene's accent falls
    (`video.snap_to_bar_line`)."""
    lines = np.floor(np.asarray(cut_sixteenths, dtype=np.float64) / SIXTEENTHS_PER_BAR + 0.5)
    return [0] + sorted({int(b) for b in lines if 0 < b < n_bars})


def form_sections(n_bars: int, starts: list[int], min_bars: int = PHRASE_BARS) -> list[int]:
    """The sections the form is planned over (phrases, repeats, groove, chords): `starts`
    without a boundary closer than `min_bars` (a phrase) to the previous one or leaving fewer
    than `min_bars` bars after it. A flurry of cuts (bikes.mp4: one every bar at 111.5 bpm)
    makes short sections inside one phrase that runs on: the cuts fall on its downbeats with
    their accents, and the phrase still repeats (one-bar sections would make every bar new)."""
    out = [0]
    for b in starts[1:]:
        if b - out[-1] >= min_bars and n_bars - b >= min_bars:
            out.append(b)
    return out


def section_of(starts: list[int], n_bars: int) -> np.ndarray:
    """Section index of every bar (n_bars,)."""
    sec = np.zeros(n_bars, dtype=np.int64)
    for i, s in enumerate(starts):
        sec[s:] = i
    return sec


def plan_repeats(n_bars: int, starts: list[int], bar_level: np.ndarray | None = None,
                 recall_tolerance: float = 1.0, cadence_bars: int = 1,
                 bookend: bool = False) -> np.ndarray:
    """Per bar, the earlier bar it re-plays, or -1 for a bar generated new (see module doc).

    bar_level: a per-bar motion level (e.g. the density control); a section whose mean level is
    within `recall_tolerance` of an earlier section's recalls that section's material.
    bookend: the song's last bar re-plays its section's first bar (the cadence is then the
    harmony's: the V7 before it resolves to the tonic the song opened with), not new material.
    """
    source = np.full(n_bars, -1, dtype=np.int64)
    bounds = list(starts) + [n_bars]
    levels = (np.asarray(bar_level, dtype=np.float64) if bar_level is not None
              else np.zeros(n_bars))
    section_levels: list[float] = []
    for s, e in zip(bounds[:-1], bounds[1:]):
        level = float(levels[s:e].mean()) if e > s and len(levels) >= e else 0.0
        # The first earlier section of similar motion and at least a phrase long, if any.
        recall = next(((bounds[j], bounds[j + 1] - bounds[j]) for j, lv in enumerate(section_levels)
                       if abs(lv - level) <= recall_tolerance
                       and bounds[j + 1] - bounds[j] >= PHRASE_BARS), None)
        section_levels.append(level)
        for r in range(e - s):
            b = s + r
            if bookend and b == n_bars - 1 and r > 0:
                source[b] = s
                continue
            if r % PERIOD_BARS == PERIOD_BARS - 1 or b == e - 1 or b >= n_bars - cadence_bars:
                continue  # a phrase end, a transition or the cadence: new material
            if recall is not None and r < recall[1] - 1:
                source[b] = recall[0] + r
            elif r >= PHRASE_BARS:
                source[b] = b - PHRASE_BARS
            elif r == 2:
                source[b] = b - 2
    # Re-play what the source bar played (a chain of copies resolves to its first bar).
    for b in range(n_bars):
        if source[b] >= 0 and source[source[b]] >= 0:
            source[b] = source[source[b]]
    return source


def phrase_chords(n_bars: int, starts: list[int], minor: bool = False) -> tuple[str, ...]:
    """Per bar, the symbol of its chord (`harmony.CHORDS`) when a key is requested: each
    section's 8-bar periods follow `harmony.PHRASE_CHORDS` (`PHRASE_CHORDS_MINOR` in a minor
    key) in the song form A A B A (`harmony.SONG_FORM`); the song ends on a cadence: its last
    bar is the tonic and, from five bars on, the one before it the dominant (V7), after a
    pre-dominant (ii in major, iv in minor) where the period had the dominant already (ii-V7-I,
    not V7-V7-I or v-V7-i). A song of four bars keeps its phrase's chords so that its bar 2
    can re-play bar 0: with I-IV-V7-I the clips' recurring bars fell from 30 % to 16 %
    (`bench_music.py`, C = 0.7, 3 seeds; three of its five clips are four bars long). A song
    shorter than a phrase is a cadence, V7-I (I-V7-I): on I-I the 2-bar clip's key was clearer
    than real 2-bar excerpts' (0.88 vs 0.74-0.80 at C = 0.7; V7-I 0.79)."""
    sec = section_of(starts, n_bars)
    r = np.arange(n_bars) - np.asarray(starts, dtype=np.int64)[sec]
    periods = PHRASE_CHORDS_MINOR if minor else PHRASE_CHORDS
    form = [SONG_FORM[(i // PERIOD_BARS) % len(SONG_FORM)] for i in r]
    chords = [periods[f][i % PERIOD_BARS] for f, i in zip(form, r)]
    if n_bars >= CADENCE_FROM_BARS or 2 <= n_bars < PHRASE_BARS:
        chords[-2] = "V7"
        if n_bars >= 3 and chords[-3] in ("V7", "v"):  # not the dominant twice
            chords[-3] = "iv" if minor else "ii"
    chords[-1] = "i" if minor else "I"
    return tuple(chords)


def match_density(source: np.ndarray, starts: list[int], level: np.ndarray,
                  chords: tuple[str, ...] | None = None,
                  beat_slots: list[frozenset[int]] | None = None) -> np.ndarray:
    """Re-point each re-played bar to the earlier bar of its section whose requested density
    (`level`, per bar) is closest to its own, the planned source winning ties (then the nearest).

    A re-played bar is fitted to its own density (`fit_slots`): from a source asked for the same
    density it keeps the source's rhythm whole, so the repeat is heard; from a much sparser or
    busier one it keeps the chords but not the rhythm. A source may itself be a re-played bar
    (as it sounded, fitted to its own density): a phrase that grows busier bar by bar then
    repeats its latest form. Phrase-end bars (fills) are not sources.
    chords: per bar, its planned chord (`phrase_chords`): a bar only re-plays one with the
    same chord, and is new when there is none.
    beat_slots: per bar, the slots of its visual beats (which a re-played bar adds as onsets and
    accents): among sources of equally close density, the one with the most alike beats.
    """
    out = source.copy()
    level = np.asarray(level, dtype=np.float64)
    if len(level) < len(source):
        return out
    beat_slots = beat_slots or [frozenset()] * len(source)
    sec = section_of(starts, len(source))
    for b in np.flatnonzero(source >= 0):
        planned = int(source[b])
        start = starts[sec[b]]
        cands = [k for k in range(start, b) if (k - start) % PERIOD_BARS != PERIOD_BARS - 1
                 ] + [planned]
        if chords is not None:
            cands = [k for k in cands if chords[k] == chords[b]]
        out[b] = (min(cands, key=lambda k: (abs(level[k] - level[b]),
                                            len(beat_slots[b] ^ beat_slots[k]),
                                            k != planned, b - k))
                  if cands else -1)
    return out


def plan_groove(n_bars: int, starts: list[int]) -> np.ndarray:
    """Per bar, the bar whose drum pattern it keeps, or -1 where the drums play freely: the first
    bar of each section sets the groove and the other bars keep it (the last bar of a period
    only until its last beat: then the fill that closes the period; see `is_fill`)."""
    groove = np.full(n_bars, -1, dtype=np.int64)
    bounds = list(starts) + [n_bars]
    for s, e in zip(bounds[:-1], bounds[1:]):
        groove[s + 1:e] = s
    return groove


def thin(links: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """Per-bar links (a source bar, or -1) with each kept with probability `share` (the rest
    -1: the bar is the model's own). share 1 keeps all and draws nothing from `rng`."""
    if share >= 1.0:
        return links
    return np.where(rng.random(len(links)) < share, links, -1)


def is_fill(n_bars: int, starts: list[int]) -> np.ndarray:
    """Per bar, whether it closes a period (the last bar of each 8 in a section, and the last
    bar of a section): its last beat is free, a fill leading on."""
    fill = np.zeros(n_bars, dtype=bool)
    bounds = list(starts) + [n_bars]
    for s, e in zip(bounds[:-1], bounds[1:]):
        fill[s + PERIOD_BARS - 1:e:PERIOD_BARS] = True
        fill[e - 1] = e - 1 > s
    return fill


@dataclass
class Group:
    """One onset group of a bar: its slot, instrument, and notes as (pitch, duration) token
    values (pitch + 1, duration class)."""

    slot: int
    instrument: int
    notes: list[tuple[int, int]]


def bar_share(onsets: int, length: int) -> int:
    """Onsets a bar of `length` sixteenths (`song.bar_length`) plays for `onsets` in a whole
    bar: a bar cut short by the song's end plays at the same rate (its share), not on all of its
    sixteenths. (Density classes are rates; the last bar of a 23-sixteenth clip asked for 10
    onsets had all 7 of its sixteenths struck, so its rhythm broke from the bar before.)"""
    if length >= SIXTEENTHS_PER_BAR:
        return onsets
    return round(onsets * length / SIXTEENTHS_PER_BAR)


def fit_slots(slots: list[int], want: int, required: list[int],
              last_slot: int = SIXTEENTHS_PER_BAR - 1,
              weights: dict[int, int] | None = None,
              previous: frozenset[int] = frozenset()) -> list[int]:
    """Choose about `want` onset slots up to `last_slot` for a re-played bar whose source used
    `slots`: the `required` ones (visual beats), then one in every quarter note (the source's
    strongest there, which is the beat itself when the source has it, else the beat: no beat
    goes without an onset), then the source's other slots by metrical weight, then the strongest
    free slots while still short.

    weights: notes the source plays on each of its slots; given, the source's slots with the
    most notes go first (then by metrical weight): a bar asked for fewer onsets drops a lone
    hi-hat before a chord, so that it still sounds as the bar it re-plays.
    previous: the onset slots of the bar before; among slots of equal notes (and among free
    slots) those go first: the rhythm runs on from bar to bar (groove consistency)."""
    notes = weights or {}

    def metrical(s: int) -> tuple[int, int, int]:
        return s not in previous, -SLOT_WEIGHT[s], s

    def heaviest(s: int) -> tuple[int, int, int, int]:
        return (-notes.get(s, 0),) + metrical(s)

    keep = {s for s in required if s <= last_slot}
    for q in range(0, last_slot + 1, 4):
        if not any(q <= k < q + 4 for k in keep):
            here = [s for s in slots if q <= s < q + 4 and s <= last_slot]
            keep.add(min(here, key=heaviest) if here else q)
    for pool, order in ((slots, heaviest), (range(last_slot + 1), metrical)):
        for s in sorted({s for s in pool if s <= last_slot and s not in keep}, key=order):
            if len(keep) >= want:
                break
            keep.add(s)
    return sorted(keep)


def replay_groups(groups: list[Group], slots: list[int], last_slot: int,
                  lightest: bool = False) -> list[Group]:
    """The groups of a re-played bar on the chosen `slots` (none after `last_slot`): a slot the
    source bar used keeps its groups; a new slot gets a copy of the groups at the nearest slot the
    source used (earlier first): the same chord or drum hit, moved. With `lightest`, only the
    one of them with the fewest notes (the lower instrument on a tie): an added onset is a
    variation (a hi-hat, a bass note), not a second copy of the whole beat."""
    by_slot: dict[int, list[Group]] = {}
    for g in groups:
        by_slot.setdefault(g.slot, []).append(g)
    used = sorted(by_slot)
    out: list[Group] = []
    for s in slots:
        if s > last_slot:
            continue
        if s in by_slot:
            out.extend(by_slot[s])
        elif used:
            near = by_slot[min(used, key=lambda u: (abs(u - s), u > s))]
            if lightest:
                near = [min(near, key=lambda g: (len(g.notes), g.instrument))]
            out.extend(Group(s, g.instrument, g.notes) for g in near)
    return out
