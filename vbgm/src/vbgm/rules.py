"""The sampler's rules: what each candidate may sample next, and what a sampled token becomes.

A candidate is a `Plan` (fixed before sampling: the controls drawn with probability C, the
sections and which bars re-play earlier ones) and a `State` (where it is: bar, slot, group, key,
chord, what each bar played). Two functions drive it:

- `allowed(state, plan) -> masks`: boolean masks per sampled field, composed from small rules,
  each its own function: `grammar` (a well-formed, forward-moving song that ends on time) with
  `new_slots` (where the next onset may go: the bar's density, its visual beats, its groove),
  `beat_coverage` (an onset on every beat), `register` (each instrument inside its measured pitch
  range; drums on the corpus's GM kit), `polyphony` (no more notes at once than the corpus's
  instruments play), `accent` (a visual beat on drums is kick + crash, not a pile of kit
  pieces), `forced_chord` (notes forced by a visual beat are chord tones), `no_clusters` (no
  semitone, tritone or major seventh inside one chord but a V7's own tritone) and, in a planned
  progression (a requested key), `bass_root` (the first bass note of each beat is the chord's
  root) and `low_voice` (other parts' low notes are root or fifth). Once a note's pitch is
  drawn, `length_allowed` keeps a tone outside the chord short (`note_length`).
- `pitch_bias(state, plan) -> additive logits`: the harmony rule, a soft pull towards the bar's
  chord (on its beats; between them as `Rules.key_offbeat` says), the requested key's profile,
  and `voicing_bias` (a chord spreads over its tones, its third first).
- `advance(state, plan, sampled) -> row`: accepts a sampled token, or replaces it by a control
  (a visual beat, a bar density), a groove hit or the next row of a re-played bar.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vbgm import harmony, vocab
from vbgm.corpus_stats import CorpusStats
from vbgm.song import BASS, DRUMS, GUITAR, PIANO, SIXTEENTHS_PER_BAR, STRINGS, bar_length
from vbgm.structure import (
    FILL_FROM,
    PERIOD_BARS,
    PHRASE_BARS,
    PICKUP_CHORD,
    Group,
    bar_share,
    fit_slots,
    form_sections,
    is_fill,
    match_density,
    phrase_chords,
    plan_groove,
    plan_repeats,
    plan_sections,
    replay_groups,
    thin,
)
from vbgm.tokens import MAX_P_BEAT

SAMPLED = (vocab.TYPE, vocab.BARBEAT, vocab.DENSITY, vocab.PITCH, vocab.DURATION, vocab.INSTR,
           vocab.STRENGTH)
# What `advance` reads of a drawn token, by its type: the sampler draws no other field.
READS: dict[int, tuple[int, ...]] = {
    vocab.TYPE_NOTE: (vocab.PITCH, vocab.DURATION),
    vocab.TYPE_METRIC: (vocab.BARBEAT, vocab.DENSITY, vocab.INSTR, vocab.STRENGTH),
    vocab.TYPE_EOS: (),
}
# Density of the first Bar when it is not controlled: it has no model prediction (training never
# predicts the first row), so a typical value of the training data is used.
FREE_FIRST_DENSITY = 9
# A visual beat of this strength class or more is an accent (kick + crash) on drums.
ACCENT_CLASS = 6
KICKS, CRASHES = (36, 35), (49, 57)  # General MIDI keys, the preferred one first
# Pitches a key is inferred from before the harmony rule starts (when no key is requested).
KEY_AFTER_NOTES = 6
LONG_NOTE = 8  # sixteenths: a held note (`restrike_bias`)
CALM_ONSETS = 6  # a bar asked for this few onsets holds its chords (`held_in_calm_bars`)
CHORD_PARTS = (PIANO, GUITAR, STRINGS)  # the instruments that play chords and melody
COLOR_PULL = 2.0  # logits against a chromatic tone beyond a song's first `Rules.colors`
BASS_BELOW = 60  # the bass stays below middle C, as real bass lines do (1 % of their notes above)
BASS_ROOT_BELOW = 48  # and a root on a beat below C3 (real bass lines' median is near D2)
LOW_VOICE_BELOW = 48  # below C3 another instrument plays the bass's part: its chord's root or fifth
# Default pulls towards a requested key, on the beats (between them `Rules.key_offbeat` of
# that): its Krumhansl-Kessler profile's log (`harmony.profile_logits`; 1: tonic +0.6 logits,
# tones outside the key about -0.4) and the chords of its planned progression (1 logit off the
# chord). The keyed model learns the scale from its key token; the planned chords (with the
# bass on their roots) make the key heard. Measured over the 90 songs of bench_keys.py: a
# profile pull of 1.5 found the key no more often (80 %), a chord pull of 1.5 no more (84 % vs
# 86 %); without the profile pull 10 pitch classes sounded in a clip's song and 10 % of the notes
# left the scale (bench_music.py, C = 0.7); the earlier profile pull of 3 made a drone on the
# tonic (3-4 pitch classes in a song).
REQUESTED_KEY_PULL = 1.0
REQUESTED_KEY_CHORD_PULL = 1.0


@dataclass(frozen=True)
class Rules:
    """Which musical rules the sampler applies (each can be switched off to measure it).

    registers: pitch ranges per instrument and the drum kit, from the corpus statistics.
    drum_accents: a visual beat on drums is kick (+ crash when strong), not `strength` pieces.
    beat_coverage: every quarter note of a bar gets an onset (when the bar plans enough slots).
    chord_tones: each bar has a chord (from its first pitched note; the cadence's at the end):
        notes forced by a visual beat are its tones, and no chord holds a cluster.
    harmony: strength (logits) of the pull towards the scale of the key the music has shown
        so far, when no key is requested (a requested key pulls by its profile, `key_pull`).
        With the hotter pitch temperature of `SamplingConfig` (1.8): more pitches, kept in the
        scale (Table 1's pitch entropy from 33 % to 12-16 % below the data's).
    chord: strength of the pull towards the bar's chord on its quarter notes (half as strong on
        the other sixteenths, where passing tones belong). Off by default: with the shipped
        model it made the music simpler and more consonant than real songs
        (`benchmarks/bench_music.py`; the model card has the figures).
    repeats: bars re-play earlier bars as `structure.plan_repeats` plans (phrases, sections:
        here and below those of the form, `structure.form_sections`).
    groove: the drums keep the pattern (and the bar its rhythm) of the section's first bar
        through the section, up to each period's fill (`structure.plan_groove`), visual beats
        merged in as accents.
    density_floor: lowest density class the model may choose for a bar (5 = one onset a beat).
    key_pull: pull towards a requested key's scale (0: the model alone keeps the key).
    key_chord_pull: pull towards the chords of the phrase progression in a requested key.
    bass_roots: with a requested key, the first bass note of each beat is its bar's chord root
        (`bass_root`) and a low note of another instrument its root or fifth (`low_voice`).
    passing_length: with a requested key, a note outside its bar's chord (a passing or
        neighbour tone) lasts at most this many sixteenths (`note_length`; 0 = off): the long
        notes, which the key is heard by, are chord tones.
    key_offbeat: share of a requested key's pulls between the beats (0, the default: passing
        tones free, and short, `passing_length`; 0.5 kept 2 % of the notes outside the scale,
        real songs' excerpts have 3.5-6 %).
    voicing: pull (logits) away from a pitch class a chord already holds while it lacks one of
        its chord's tones (`voicing_bias`): chords, not octaves of one note.
    third: pull (logits) towards the chord's third while a chord lacks it (`voicing_bias`).
    leading_tone: pull (logits) towards V7's third, the leading tone, on the first note of a
        chord part's group in a V7 bar that has not sounded it (`leading_tone_bias`): the key's
        profile pulls the seventh degree least, and only 17 % of the clips' V7 bars sounded it;
        with 2, 58 % (5 clips x 3 seeds, C = 0.7), scale consistency unchanged (0.966 / 0.967);
        the requested key found in 90 % of 120 songs against 92 % (`bench_keys.py --seeds 4`:
        2 songs, within its noise). Pulling every bar's third (1) reached 38 % but made the
        clips' songs more diatonic (scale consistency 0.975).
    key_keep: while the music so far is heard in another key than the requested one, the pull
        (logits per unit of profile) towards the tones that tell the two apart (`key_correction`).
        The misses it answers were songs whose long notes (strings holding the fifth) outweighed
        the tonic: heard in the dominant's key or the minor key of the third. With 2,
        `bench_keys.py` found 96 % of 480 songs in the requested key (89.8 % without; 1: 92.5 %
        of 120 songs where none had 87.5 %), notes in the scale and pitch classes unchanged.
    restrike: with a requested key, the pull (logits) against a piano, guitar or strings note
        on the top pitch of its instrument's previous group when that note was long (half a bar
        or more, `restrike_bias`): a held note struck again and again is a drone. In the clips'
        songs (6 clips x 3 seeds, C = 0.7) 11 % of such long top notes were struck again, real
        excerpts 2-8 %; with 1.5, 3 % (0.75: 8 %). Its cost: Table 1 at C = 0 over 3 x 60 songs,
        structureness -6.9 -> -10.9 % and grooving similarity +9.4 -> +10.2 % of the data's.
    colors: with a requested key, how many pitch classes outside the key's scale and the bar's
        chord (chromatic passing and neighbour tones) a song may sound: the first it plays;
        others are pulled away by `COLOR_PULL` logits (`color_bias`; 0 = off). Real excerpts
        of the clips' length use 7-8 pitch classes, their few chromatic tones recurring; with
        free passing tones the clips' songs used 8.6 (C = 0.7) to 8.8 (C = 1), a stray Eb,
        C# or Ab in a quarter to a half of the major songs. A song shorter than a phrase
        (four bars) may sound none (`color_budget`): the 2-bar clip's songs used 8 pitch
        classes where real 2-bar excerpts use 5-6.
    calm_hold: in a bar asked for at most `CALM_ONSETS` onsets, a piano, guitar or strings
        chord tone on a quarter note lasts at least this many sixteenths (`held_in_calm_bars`;
        0 = off): calm video, held chords. The sparse clips' songs at C = 1 held 2.8-2.9
        pitches at a time (real excerpts 3.4-5.2); with 4, 3.1-3.3; 8 made their keys clearer
        than real excerpts' (`bench_music.py`, 6 seeds).
    bookend: in a song of at most this many bars (0 = none), the last bar re-plays its
        section's first bar (`structure.plan_repeats`), the V7 before it making the cadence: a
        short clip's riff returns as the video ends. Longer songs end on a bar of their own:
        with the bookend in Table 1's 16-bar songs their structureness rose from -5 % to +20 %
        of the data's at C = 0 and from +14 % to +56 % at C = 0.7 (`vbgm evaluate table1
        --n 20`).
    repeat_share, groove_share: at C = 0, the share of the planned re-played bars and of the
        bars keeping the section's groove that do so (`structure.thin`, drawn per bar; the
        others are the model's own); at control degree C, share + (1 - share) * C, so the form
        is followed fully at C = 1, as the controls are. With every re-play kept, 88 % of the
        bars of free 16-bar songs recurred (the data's 19 %): Table 1 at C = 0 had
        structureness +110 % and grooving similarity +17 % over the data's; at 0.8 / 0.2,
        +7 % and +11 % (C = 0.7: +7 %, +6 %; `vbgm evaluate table1 --n 60`, mean of seeds
        0-2), the clips' recurring bars 29 % at C = 0.7 (real excerpts 15-31 %;
        `bench_music.py`; C = 1 unchanged).
    """

    registers: bool = True
    drum_accents: bool = True
    beat_coverage: bool = True
    chord_tones: bool = True
    harmony: float = 2.0
    chord: float = 0.0
    repeats: bool = True
    groove: bool = True
    density_floor: int = 5
    key_pull: float = REQUESTED_KEY_PULL
    key_chord_pull: float = REQUESTED_KEY_CHORD_PULL
    bass_roots: bool = True
    voicing: float = 2.5
    key_offbeat: float = 0.0
    passing_length: int = 2
    third: float = 2.0
    leading_tone: float = 2.0
    key_keep: float = 2.0
    restrike: float = 1.5
    colors: int = 2
    calm_hold: int = 4
    bookend: int = PERIOD_BARS
    repeat_share: float = 0.8
    groove_share: float = 0.2


@dataclass
class Plan:
    """What one candidate must do, fixed before sampling.

    density: per bar, the forced density class, 0 where the model chooses; requested: the
    video's density class per bar, forced or not.
    beats: (M, 2) visual beats (sixteenth, strength class) to place, ascending.
    sections: first bar of each section (one at every cut: `plan_sections`; the form follows
    those at least a phrase apart, `form_sections`); source: per bar, the bar it re-plays or -1;
    groove: per bar, the bar whose drum pattern it keeps, or -1; fill: per bar, whether it
    keeps it only until its last beat.
    rhythm: instruments that carry visual beats. key: 0..23 when requested, else None;
    chords: then each bar's chord symbol (`structure.phrase_chords`, `harmony.CHORDS`).
    free_plan: the ablated model (no density/strength attributes): groups and bars end freely.
    """

    n: int
    density: np.ndarray
    beats: np.ndarray
    sections: list[int]
    source: np.ndarray
    instruments: tuple[int, ...]
    rhythm: tuple[int, ...]
    key: int | None
    stats: CorpusStats
    rules: Rules
    groove: np.ndarray
    fill: np.ndarray
    requested: np.ndarray
    chords: tuple[str, ...] | None = None
    free_plan: bool = False
    start: int = 0  # the sixteenth of bar 0 the song starts on (after a pickup's rest)

    @property
    def n_bars(self) -> int:
        return -(-self.n // SIXTEENTHS_PER_BAR)

    @property
    def last_bar(self) -> int:
        return self.n_bars - 1

    def last_slot(self, bar: int) -> int:
        """Last usable slot of a bar (the last bar may be partial)."""
        return bar_length(self.n, bar) - 1

    def first_slot(self, bar: int) -> int:
        """First usable slot of a bar (bar 0 of a song with a pickup starts later)."""
        return self.start if bar == 0 else 0


def make_plan(n: int, bar_density: np.ndarray, beats: np.ndarray, cuts: np.ndarray,
              instruments: tuple[int, ...], rhythm: tuple[int, ...], key: int | None,
              control: float, rng: np.random.Generator, stats: CorpusStats,
              rules: Rules = Rules(), free_plan: bool = False, start: int = 0) -> Plan:
    """Draw each control with probability `control` (once, up front: reproducible and
    independent of the model) and plan the sections and re-played bars. `start`: the sixteenth
    of bar 0 the song starts on; after a pickup (start > 0) the form starts at bar 1 (its
    first section, phrase, groove and chord), and the pickup bar plays the dominant leading
    into it."""
    n_bars = -(-n // SIXTEENTHS_PER_BAR)
    requested = np.zeros(n_bars, dtype=np.int64)
    m = min(len(bar_density), n_bars)
    requested[:m] = np.asarray(bar_density, dtype=np.int64)[:m]
    on = (requested > 0) & (rng.random(n_bars) < control)
    density = np.where(on, requested, 0)
    beats = np.asarray(beats, dtype=np.int64).reshape(-1, 2)
    beats = beats[beats[:, 1] > 0]
    beats = beats[rng.random(len(beats)) < control]
    bar_of = beats[:, 0] // SIXTEENTHS_PER_BAR
    beat_slots = [frozenset((beats[bar_of == b, 0] % SIXTEENTHS_PER_BAR).tolist())
                  for b in range(n_bars)]
    # The form, over the bars from the first whole one (bar 1 after a pickup).
    first = int(start > 0 and n_bars > 1)
    bars = n_bars - first
    sections = plan_sections(n_bars, cuts)  # every cut's bar line, the pickup's included
    form = form_sections(bars, [0] + [s - first for s in sections if s > first])
    none = np.full(bars, -1, dtype=np.int64)
    chords = phrase_chords(bars, form, harmony.is_minor(key)) if key is not None else None
    source = (match_density(plan_repeats(bars, form, requested[first:],
                                         bookend=bars <= rules.bookend), form,
                            requested[first:], chords, beat_slots[first:])
              if rules.repeats and not free_plan else none)
    drums_and_more = DRUMS in instruments and len(instruments) > 1 and DRUMS in rhythm
    groove = plan_groove(bars, form) if rules.groove and not free_plan and drums_and_more \
        else none
    fill = is_fill(bars, form)
    if first:  # the pickup bar before it: its own, on the dominant
        source, groove = (np.r_[-1, np.where(x >= 0, x + first, -1)] for x in (source, groove))
        fill = np.r_[False, fill]
        chords = None if chords is None else (PICKUP_CHORD, *chords)
    # Drawn last, so that the draws above do not depend on the shares; none at C = 1.
    source = thin(source, rules.repeat_share + (1.0 - rules.repeat_share) * control, rng)
    groove = thin(groove, rules.groove_share + (1.0 - rules.groove_share) * control, rng)
    return Plan(n=n, density=density, beats=beats, sections=sections, source=source,
                instruments=tuple(instruments), rhythm=tuple(rhythm), key=key, stats=stats,
                rules=rules, groove=groove, fill=fill,
                requested=requested, chords=chords, free_plan=free_plan, start=start)


@dataclass
class State:
    """Where one candidate is. `bars` keeps every bar's groups (for re-playing them)."""

    bar: int = -1
    slot: int = -1
    instr: int = 0
    notes_left: int = 0
    forced: bool = False  # the current group is a visual beat's
    group_pitches: list[int] = field(default_factory=list)
    slot_instruments: set[int] = field(default_factory=set)
    slots_left: int = 0  # onset slots the bar still plans
    covered: np.ndarray = field(default_factory=lambda: np.zeros(4, dtype=bool))  # beats on
    next_beat: int = 0  # first visual beat not yet placed
    forced_left: list[int] = field(default_factory=list)  # instruments still owed to it
    script: list[np.ndarray] = field(default_factory=list)  # forced rows still to come
    replaying: bool = False
    groove: list[Group] = field(default_factory=list)  # the bar's drum groups still to place
    open_slots: list[int] = field(default_factory=list)  # its other onset slots still to take
    bar_has_groove: bool = False  # the drums of this bar follow the groove
    key: int | None = None
    chord: tuple[int, ...] | None = None
    pc_weight: np.ndarray = field(default_factory=lambda: np.zeros(12))
    n_pitched: int = 0
    bars: dict[int, list[Group]] = field(default_factory=dict)
    done: bool = False
    n_forced_beats: int = 0
    colors: list[int] = field(default_factory=list)  # chromatic pitch classes sounded so far


def make_row(plan: Plan, barbeat: int, typ: int, density: int, pitch: int, duration: int,
             instr: int, strength: int, i: int) -> np.ndarray:
    """One token row in model column order, with its beat-position class; a note's duration
    class is clipped so that it ends by the song's end."""
    p = min(100 * i // plan.n + 1, MAX_P_BEAT)
    if typ == vocab.TYPE_NOTE:
        duration = min(duration, max(1, min(SIXTEENTHS_PER_BAR, plan.n - i)) + 1)
    return np.array([barbeat, typ, density, pitch, duration, instr, strength, p, i],
                    dtype=np.int64)


def rules_instruments(state: State, plan: Plan) -> np.ndarray:
    """Instrument values (6,) a new group may take: the requested ones, but not the drums in a
    bar whose drums play the groove."""
    ins = np.zeros(vocab.N_CLASSES[vocab.INSTR], dtype=bool)
    ins[list(plan.instruments)] = True
    if state.bar_has_groove and ins.sum() > 1:
        ins[DRUMS] = False
    return ins


def time_of(state: State, barbeat: int) -> int:
    """Absolute sixteenth of a metrical token with this barbeat value."""
    if barbeat == vocab.BAR:
        return (state.bar + 1) * SIXTEENTHS_PER_BAR
    return state.bar * SIXTEENTHS_PER_BAR + barbeat - 1


def next_beat_index(state: State, plan: Plan) -> int:
    """Index into plan.beats of the next visual beat still to place: beats behind the current
    slot are passed (the grammar never steps over one; a bar without room can)."""
    here = state.bar * SIXTEENTHS_PER_BAR + state.slot
    i = state.next_beat
    while i < len(plan.beats) and not state.forced_left and plan.beats[i, 0] < here:
        i += 1
    return i


def pending_beat(state: State, plan: Plan) -> int | None:
    """The sixteenth of the next visual beat still to place, or None."""
    i = next_beat_index(state, plan)
    return int(plan.beats[i, 0]) if i < len(plan.beats) else None


# ---------------------------------------------------------------------------------- the rules
def grammar(state: State, plan: Plan) -> dict[int, np.ndarray]:
    """A well-formed song: Beat then exactly `strength` Notes of its instrument with distinct
    pitches; time moves forward; a bar holds as many onset slots as its density plans and never
    skips a pending visual beat; only the requested instruments; nothing past the last
    sixteenth; EOS only in the last bar. In a re-played bar whose rows are all out, only the next
    Bar (or EOS) may follow."""
    m = {col: np.ones(vocab.N_CLASSES[col], dtype=bool) for col in SAMPLED}
    typ, bb = m[vocab.TYPE], m[vocab.BARBEAT]
    if not plan.free_plan and plan.rules.density_floor > 1:
        # Bars the model plans itself are never near-silent: calm music, not none.
        m[vocab.DENSITY][1: plan.rules.density_floor] = False
    if state.replaying:
        typ[:] = False
        last = state.bar >= plan.last_bar
        typ[vocab.TYPE_EOS] = last
        typ[vocab.TYPE_METRIC] = not last
        bb[:] = False
        bb[vocab.BAR] = True
        return m
    if state.notes_left > 0:
        typ[:] = False
        typ[vocab.TYPE_NOTE] = True
    else:
        typ[vocab.TYPE_NOTE] = plan.free_plan and state.instr > 0
        typ[vocab.TYPE_EOS] = False  # decided below, with the metrical choices
    m[vocab.PITCH][0] = False
    m[vocab.PITCH][state.group_pitches] = False
    onset = state.bar * SIXTEENTHS_PER_BAR + state.slot
    longest = max(1, min(SIXTEENTHS_PER_BAR, plan.n - onset))
    m[vocab.DURATION][:2] = False  # classes 0 and 1 are no length
    m[vocab.DURATION][longest + 2:] = False
    m[vocab.STRENGTH][0] = False
    ins = rules_instruments(state, plan)
    m[vocab.INSTR] = ins
    bb[0] = False
    beat = pending_beat(state, plan)
    beat_slots = pending_beat_slots(state, plan)
    free = state.slots_left - len(beat_slots)
    new = new_slots(state, plan, beat_slots, free)
    bb[1:SIXTEENTHS_PER_BAR + 1] = new
    if state.slot >= 0 and _later_instruments(state, ins):
        bb[state.slot + 1] = True  # another instrument on the same slot (in id order)
    room = (not plan.free_plan and free > 0 and bool(new.any())) \
        or bool(beat_slots) or bool(state.groove) or bool(state.open_slots)
    bb[vocab.BAR] = state.bar < plan.last_bar and not room
    if state.notes_left == 0:
        typ[vocab.TYPE_EOS] = (state.bar >= plan.last_bar and state.slot >= 0 and not room
                               and beat is None) or not bb.any()
        typ[vocab.TYPE_METRIC] = bb.any()
    return m


def new_slots(state: State, plan: Plan, beat_slots: list[int], free: int) -> np.ndarray:
    """Slots (16,) the next new onset slot of the bar may take. The model's own slots: the bar's
    plan less the slots its visual beats will take (`free`), each leaving room after it for the
    own slots and beats still to come, and (`beat_coverage`) no beat left without an onset; a
    waiting visual beat is never stepped over. In a groove bar: the groove's next slot only."""
    last_slot = plan.last_slot(state.bar)
    slots = np.arange(SIXTEENTHS_PER_BAR)
    if state.bar_has_groove:
        upcoming = [g.slot for g in state.groove[:1]] + state.open_slots[:1]
        return (slots == min(upcoming)) & (slots > state.slot) if upcoming \
            else np.zeros(SIXTEENTHS_PER_BAR, dtype=bool)
    new = (slots > state.slot) & (slots >= plan.first_slot(state.bar)) & (slots <= last_slot)
    if not plan.free_plan:
        beats_after = np.array([sum(b > x for b in beat_slots) for x in slots])
        new &= (free > 0) & (last_slot - slots >= free - 1 + beats_after)
    covering = plan.rules.beat_coverage and not plan.free_plan
    if covering:
        new &= beat_coverage(state, plan, beat_slots, free)
    if beat_slots:
        b = beat_slots[0]
        # The beat takes none of the model's own slots: after it, room for all of them still,
        # and no beat of the bar left behind without an onset.
        skipped = [q for q in range(4) if state.slot < 4 * q < b and not state.covered[q]]
        reach = plan.free_plan or (last_slot - b >= free + sum(x > b for x in beat_slots)
                                   and not (covering and skipped))
        new[b:] = False
        new[b] = reach or not new.any()
    return new


def _later_instruments(state: State, allowed_instruments: np.ndarray) -> list[int]:
    """Allowed instruments that may still join the current slot: groups of one slot come in
    instrument-id order, as in the training data."""
    top = max(state.slot_instruments, default=0)
    return [int(k) for k in np.flatnonzero(allowed_instruments) if k > top]


def pending_beat_slots(state: State, plan: Plan) -> list[int]:
    """Slots of the current bar that visual beats still have to take, ascending."""
    bar_start = state.bar * SIXTEENTHS_PER_BAR
    here = bar_start + state.slot
    out: list[int] = []
    for s in plan.beats[state.next_beat:, 0]:
        if s >= bar_start + SIXTEENTHS_PER_BAR:
            break
        if s > here or (s == here and state.forced_left):
            out.append(int(s) - bar_start)
    return sorted(set(out))


def beat_coverage(state: State, plan: Plan, beat_slots: list[int], free: int) -> np.ndarray:
    """Slots (16,) the model's next own onset slot may take so that every beat (quarter note)
    of the bar has an onset on it, the steady pulse a listener (and a beat tracker) finds the
    tempo by: it may not step over a beat still without one, and once its `free` slots are just
    enough for the beats left, it must take one of them. A visual beat on a beat covers it."""
    beats = np.arange(0, SIXTEENTHS_PER_BAR, 4)
    covered = state.covered.copy()
    covered[[s // 4 for s in beat_slots if s % 4 == 0]] = True
    open_b = (~covered) & (beats <= plan.last_slot(state.bar)) & (beats > state.slot)
    ok = np.ones(SIXTEENTHS_PER_BAR, dtype=bool)
    if not open_b.any():
        return ok
    ok[beats[open_b][0] + 1:] = False
    if free <= int(open_b.sum()):
        ok &= np.isin(np.arange(SIXTEENTHS_PER_BAR), beats[open_b])
    return ok


def register(state: State, plan: Plan) -> np.ndarray:
    """Pitch token values (129,) the current instrument may play: its measured range (for the
    bass, below middle C), or the corpus's drum kit (General MIDI percussion keys) for drums."""
    m = np.zeros(vocab.N_CLASSES[vocab.PITCH], dtype=bool)
    m[1:] = plan.stats.pitch_mask(state.instr)
    if state.instr == BASS:
        m &= _PITCH < BASS_BELOW
    return m


def polyphony(instr: int, plan: Plan) -> np.ndarray:
    """Strength values (20,) an instrument's group may take: at most the corpus's 99th
    percentile of notes it starts together (a bass plays one or two)."""
    m = np.zeros(vocab.N_CLASSES[vocab.STRENGTH], dtype=bool)
    m[1: max(plan.stats.chord_p99[instr], 1) + 1] = True
    return m


def group_cap(instr: int, slot: int, plan: Plan) -> int:
    """Most notes a sampled group may start: the corpus's 99th percentile (`polyphony`); a bass
    two only on a bar's downbeat, elsewhere one. Real bass lines start two notes together at
    1-3 % of their onsets; the model's bass did at 31 % (now 3 %)."""
    cap = int(np.flatnonzero(polyphony(instr, plan))[-1])
    return min(cap, 1) if instr == BASS and slot % SIXTEENTHS_PER_BAR != 0 else cap


def forced_strength(instr: int, strength: int, plan: Plan) -> int:
    """Notes a visual beat of this strength class puts on an instrument: on drums an accent
    (kick, + crash when strong), on others at most the corpus's usual (90th percentile) chord."""
    if instr == DRUMS and plan.rules.drum_accents:
        return 2 if strength >= ACCENT_CLASS else 1
    cap = plan.stats.chord_p90[instr] if plan.rules.registers else 10
    return int(max(1, min(strength, cap)))


def accent(state: State, plan: Plan) -> np.ndarray | None:
    """Pitch values for the notes of a visual beat on drums: the kick first, then a crash."""
    if not (state.forced and state.instr == DRUMS and plan.rules.drum_accents):
        return None
    keys = KICKS if not state.group_pitches else CRASHES
    m = np.zeros(vocab.N_CLASSES[vocab.PITCH], dtype=bool)
    m[[k + 1 for k in keys]] = True
    return m


_PITCH = np.arange(vocab.N_CLASSES[vocab.PITCH]) - 1  # MIDI pitch of each pitch value
_PC = _PITCH % 12  # pitch class of each pitch value


def forced_chord(state: State, plan: Plan) -> np.ndarray | None:
    """Pitch values of chord tones (else scale tones) for notes forced by a visual beat."""
    if not state.forced or state.instr == DRUMS or not plan.rules.chord_tones \
            or state.key is None:
        return None
    if state.chord is not None:
        return np.isin(_PC, state.chord)
    return harmony.scale_mask(state.key)[_PC]


def no_clusters(state: State, plan: Plan) -> np.ndarray | None:
    """Pitch values that make no m2/M7 or tritone with the notes already in this chord, except
    between two tones of the bar's chord (the tritone of a V7 is the chord itself)."""
    if state.instr == DRUMS or not plan.rules.chord_tones or not state.group_pitches:
        return None
    chord = set(state.chord or ())
    bad = np.zeros(12, dtype=bool)
    for v in state.group_pitches:
        for iv in harmony.DISSONANT_INTERVALS:
            pc = (v - 1 + iv) % 12
            bad[pc] |= not (pc in chord and (v - 1) % 12 in chord)
    return ~bad[_PC]


def bass_root(state: State, plan: Plan) -> np.ndarray | None:
    """Pitch values of the chord root below C3 for the first bass note of each beat (the
    first note of the bar's first bass group in that quarter note, on it or syncopated) when the
    bars follow a planned progression (a requested key): the model alone holds one pedal note
    through every chord."""
    if (state.instr != BASS or plan.chords is None or not plan.rules.bass_roots
            or state.chord is None or state.group_pitches or not _first_in_beat(state)):
        return None
    return (_PC == state.chord[0]) & (_PITCH < BASS_ROOT_BELOW)


def _first_in_beat(state: State) -> bool:
    """Whether the current group (the bar's last) is its instrument's first in its quarter note."""
    groups = state.bars.get(state.bar, [])[:-1]
    return not any(g.instrument == state.instr and g.slot // 4 == state.slot // 4 for g in groups)


def low_voice(state: State, plan: Plan) -> np.ndarray | None:
    """Pitch values a piano, guitar or strings note may take in a planned progression: below C3
    only its bar's chord root or fifth (what a bass would play there: strings low in the mix
    carrying the third make a major key sound like the minor key of its third)."""
    if (state.instr not in CHORD_PARTS or plan.chords is None or not plan.rules.bass_roots
            or state.chord is None):
        return None
    return (_PITCH >= LOW_VOICE_BELOW) | np.isin(_PC, (state.chord[0], state.chord[2]))


def note_length(state: State, plan: Plan, pitch: int) -> np.ndarray | None:
    """Duration values (18,) the next note may take once its pitch value is drawn: in a planned
    progression a pitch outside its bar's chord is a passing or neighbour tone, at most
    `Rules.passing_length` sixteenths; a chord tone (or drum hit) may last any length."""
    if (plan.rules.passing_length <= 0 or plan.chords is None or state.notes_left <= 0
            or state.instr == DRUMS or state.chord is None or pitch < 1
            or (pitch - 1) % 12 in state.chord):
        return None
    m = np.zeros(vocab.N_CLASSES[vocab.DURATION], dtype=bool)
    m[2: plan.rules.passing_length + 2] = True  # value d + 1 = d sixteenths
    return m


def voicing_bias(state: State, plan: Plan) -> np.ndarray | None:
    """Additive pitch logits against the pitch classes a piano/guitar/strings chord already holds
    while one of the bar's chord tones is still missing from it: a chord, not octaves; and
    towards the chord's third while it lacks it (`Rules.third`): the third tells a major chord
    from a minor one, and so a key from its parallel (root and fifth alone are both)."""
    if (plan.rules.voicing <= 0 or state.instr not in CHORD_PARTS or not state.group_pitches
            or state.chord is None):
        return None
    have = {(v - 1) % 12 for v in state.group_pitches}
    if set(state.chord) <= have:
        return None
    bias = np.where(np.isin(_PC, sorted(have)), -plan.rules.voicing, 0.0)
    if state.chord[1] not in have:
        bias[_PC == state.chord[1]] += plan.rules.third
    bias[0] = 0.0
    return bias


def leading_tone_bias(state: State, plan: Plan) -> np.ndarray | None:
    """Additive pitch logits (129,) towards the leading tone (V7's third) for the first note
    of a piano, guitar or strings group in a planned V7 bar that has not sounded it yet
    (`Rules.leading_tone`): the key's profile pulls the seventh degree least of the scale, so
    the dominant sounded without it in most bars."""
    if (plan.rules.leading_tone <= 0 or plan.chords is None or plan.chords[state.bar] != "V7"
            or state.instr not in CHORD_PARTS or state.chord is None or state.group_pitches):
        return None
    sounded = {(p - 1) % 12 for g in state.bars.get(state.bar, []) if g.instrument != DRUMS
               for p, _ in g.notes}
    if state.chord[1] in sounded:
        return None
    bias = np.where(_PC == state.chord[1], plan.rules.leading_tone, 0.0)
    bias[0] = 0.0
    return bias


def pitch_bias(state: State, plan: Plan) -> np.ndarray | None:
    """Additive pitch logits (129,) pulling towards the key's scale and the bar's chord (on its
    quarter notes; between them half as hard, or `Rules.key_offbeat` of it for a requested key);
    a bass on a quarter note leans on the root; plus `voicing_bias` and `restrike_bias`. None
    when harmony is off, the instrument is drums or no key is known yet."""
    w, c = plan.rules.harmony, plan.rules.chord
    if plan.key is not None:  # a requested key pulls by its own profile (`key_pull`)
        w, c = 0.0, max(c, plan.rules.key_chord_pull)
    voicing = _added(voicing_bias(state, plan), restrike_bias(state, plan),
                     color_bias(state, plan), leading_tone_bias(state, plan))
    if not _pulls(plan) or state.instr == DRUMS or state.key is None:
        return voicing
    strong = state.slot % 4 == 0
    # Between beats the pulls weaken (passing tones): to a half, or to `key_offbeat` of their
    # strength for a requested key's pulls.
    weak = plan.rules.key_offbeat if plan.key is not None else 0.5
    bias = np.where(harmony.scale_mask(state.key)[_PC], 0.0, -w)
    share = 1.0 if strong else weak
    if plan.key is not None and share > 0:  # a requested key: its profile's emphasis, tonic first
        # (between the beats, with `key_offbeat` 0, there is no pull to correct)
        pull = plan.rules.key_pull * harmony.profile_logits(state.key)
        correction = key_correction(state, plan)
        if correction is not None:
            pull = pull + correction
        bias += share * pull[_PC]
    if state.chord is not None:
        bias -= np.where(np.isin(_PC, state.chord), 0.0, c * share)
        if state.instr == BASS and strong:
            bias += np.where(_PC == state.chord[0], 0.5 * c, 0.0)
    if voicing is not None:
        bias += voicing
    bias[0] = 0.0
    return bias


def _added(*biases: np.ndarray | None) -> np.ndarray | None:
    """The sum of optional biases (None when all are)."""
    present = [b for b in biases if b is not None]
    return sum(present[1:], present[0]) if present else None


def _previous_group(state: State) -> Group | None:
    """The current instrument's last group with notes before the current one, in this bar or
    the two before it."""
    for bar in (state.bar, state.bar - 1, state.bar - 2):
        groups = state.bars.get(bar, [])
        if bar == state.bar:
            groups = groups[:-1]
        for group in reversed(groups):
            if group.instrument == state.instr and group.notes:
                return group
    return None


def restrike_bias(state: State, plan: Plan) -> np.ndarray | None:
    """Pitch logits (129,) against striking again the top pitch of a piano, guitar or strings
    part's previous group when that note lasted `LONG_NOTE` sixteenths or more (`Rules.restrike`,
    with a requested key's plan): a long note struck again and again is a drone (a four-bar clip
    held the tonic in piano and strings through I-IV-I-I). None when it does not apply."""
    if (plan.rules.restrike <= 0 or plan.chords is None or state.instr not in CHORD_PARTS
            or state.notes_left <= 0):
        return None
    previous = _previous_group(state)
    if previous is None:
        return None
    value, duration = max(previous.notes)  # the top note (pitch value, duration value)
    if duration - 1 < LONG_NOTE:
        return None
    bias = np.zeros(vocab.N_CLASSES[vocab.PITCH])
    bias[value] = -plan.rules.restrike
    return bias


def chromatic(state: State) -> np.ndarray:
    """Boolean (12,): the pitch classes outside the key's scale and the bar's chord (a bar's
    chord may borrow a tone from outside the scale: bVII's flat seventh is not chromatic
    there); none without a key."""
    if state.key is None:
        return np.zeros(12, dtype=bool)
    out = ~harmony.scale_mask(state.key)
    out[list(state.chord or ())] = False
    return out


def color_budget(plan: Plan) -> int:
    """How many chromatic pitch classes a song may sound freely: `Rules.colors`, none in a song
    shorter than a phrase (real excerpts of two bars use 5-6 pitch classes, not the scale and
    more)."""
    return plan.rules.colors if plan.n_bars >= PHRASE_BARS else 0


def color_bias(state: State, plan: Plan) -> np.ndarray | None:
    """Pitch logits (129,) against a chromatic tone (`chromatic`) other than the song's first
    `Rules.colors` ones, once it has sounded that many, with a requested key: its chromatic
    tones recur, as real songs' do, rather than every semitone turning up once."""
    if (plan.rules.colors <= 0 or plan.key is None or state.instr == DRUMS or state.key is None
            or len(state.colors) < color_budget(plan)):
        return None
    stray = chromatic(state)
    stray[state.colors] = False
    bias = np.where(stray[_PC], -COLOR_PULL, 0.0)
    bias[0] = 0.0
    return bias


def key_correction(state: State, plan: Plan) -> np.ndarray | None:
    """Pitch-class logits (12,) that steer a song back to its requested key while the key
    finder hears the music so far (`State.pc_weight`) in another one: the requested key's
    profile minus the heard key's (`harmony.profile_logits`), times `Rules.key_keep`: the tones
    the requested key stresses more are lifted, those the heard one stresses more lowered (C
    major heard as G major: F and C up, B and F# down). None while the key is heard."""
    if plan.key is None or plan.rules.key_keep <= 0 or state.n_pitched < KEY_AFTER_NOTES:
        return None
    heard = harmony.detect_key(state.pc_weight)[0]
    if heard == plan.key:
        return None
    return plan.rules.key_keep * (harmony.profile_logits(plan.key)
                                  - harmony.profile_logits(heard))


def _pulls(plan: Plan) -> bool:
    """Whether pitches are pulled (pitch_bias): a chord pull, a requested key's, or the scale
    pull of music without one."""
    if plan.key is not None:
        return plan.rules.key_pull > 0 or plan.rules.key_chord_pull > 0 or plan.rules.chord > 0
    return plan.rules.harmony > 0 or plan.rules.chord > 0


def _chords(plan: Plan) -> bool:
    """Whether bars keep a chord (the chord-tone masks, the pulls and the cadence need one)."""
    return plan.rules.chord_tones or _pulls(plan)


def _narrow(mask: np.ndarray, extra: np.ndarray | None) -> np.ndarray:
    """mask & extra, unless that leaves nothing (then the rule yields to the grammar)."""
    if extra is None:
        return mask
    both = mask & extra
    return both if both.any() else mask


def allowed(state: State, plan: Plan) -> dict[int, np.ndarray]:
    """Boolean masks per sampled field for the next token: the grammar narrowed by each rule."""
    m = grammar(state, plan)
    if state.replaying:
        return m
    if state.notes_left > 0:
        p = m[vocab.PITCH]
        if plan.rules.registers:
            p = _narrow(p, register(state, plan))
        for rule in (accent, forced_chord, no_clusters, bass_root, low_voice):
            p = _narrow(p, rule(state, plan))
        m[vocab.PITCH] = p
    elif plan.rules.registers and not plan.free_plan:
        # The strength of a Beat depends on the instrument sampled with it: cap by the widest
        # of the allowed instruments here, and clamp per instrument in `advance`.
        caps = [polyphony(k, plan) for k in plan.instruments]
        m[vocab.STRENGTH] = _narrow(m[vocab.STRENGTH], np.logical_or.reduce(caps))
    return m


def held_in_calm_bars(state: State, plan: Plan, pitch: int) -> np.ndarray | None:
    """Duration values (18,) of a piano, guitar or strings note on a quarter note of a calm bar
    (asked for at most `CALM_ONSETS` onsets): at least `Rules.calm_hold` sixteenths, a held
    chord under sparse notes. Passing tones (outside a planned chord) keep their own length."""
    if (plan.rules.calm_hold <= 0 or state.instr not in CHORD_PARTS or state.notes_left <= 0
            or pitch < 1 or state.slot % 4 != 0
            or not 0 < plan.requested[state.bar] - 1 <= CALM_ONSETS
            or (state.chord is not None and (pitch - 1) % 12 not in state.chord)):
        return None
    m = np.zeros(vocab.N_CLASSES[vocab.DURATION], dtype=bool)
    m[plan.rules.calm_hold + 1:] = True  # value d + 1 = d sixteenths
    return m


def length_allowed(state: State, plan: Plan, durations: np.ndarray, pitch: int) -> np.ndarray:
    """The duration mask of the next token once its pitch value is drawn (`note_length`,
    `held_in_calm_bars`)."""
    return _narrow(_narrow(durations, note_length(state, plan, pitch)),
                   held_in_calm_bars(state, plan, pitch))


# ------------------------------------------------------------------------------- advancing
def start(state: State, plan: Plan) -> np.ndarray:
    """The first token: the Bar of bar 0."""
    density = int(plan.density[0]) if plan.density[0] > 0 else FREE_FIRST_DENSITY
    return _accept_bar(state, plan, density)


def advance(state: State, plan: Plan, sampled: dict[int, int]) -> np.ndarray | None:
    """Turn one sampled token into the row fed back to the model (forcing controls and
    re-played rows), or None at the end of the song."""
    if state.script:
        return _replay_next(state, plan)
    typ = sampled[vocab.TYPE]
    if typ == vocab.TYPE_EOS:
        state.done = True
        return None
    if typ == vocab.TYPE_NOTE:
        return _accept_note(state, plan, sampled[vocab.PITCH], sampled[vocab.DURATION])
    barbeat = sampled[vocab.BARBEAT]
    if state.groove and time_of(state, barbeat) >= \
            state.bar * SIXTEENTHS_PER_BAR + state.groove[0].slot:
        return _force_group(state, plan, state.groove.pop(0))
    state.next_beat = next_beat_index(state, plan)
    beat = pending_beat(state, plan)
    if beat is not None and time_of(state, barbeat) >= beat \
            and beat < (state.bar + 1) * SIXTEENTHS_PER_BAR:
        return _force_beat(state, plan, beat)
    if barbeat == vocab.BAR:
        return _accept_bar(state, plan, sampled[vocab.DENSITY])
    slot = barbeat - 1
    instr = sampled[vocab.INSTR]
    allowed_instruments = rules_instruments(state, plan)
    if slot == state.slot:
        later = _later_instruments(state, allowed_instruments)
        if instr not in later and later:
            instr = later[0]
    elif not allowed_instruments[instr]:
        instr = int(np.flatnonzero(allowed_instruments)[0])
    strength = sampled[vocab.STRENGTH]
    if plan.rules.registers and not plan.free_plan:
        strength = min(strength, group_cap(instr, slot, plan))
    return _accept_beat(state, plan, slot, instr, strength, forced=False)


def _update_harmony(state: State, pitch: int, duration: int) -> None:
    """After a pitched note (sampled or re-played): the key (inferred once from the first notes
    when none was requested) and the bar's chord (from its first pitched note)."""
    pc = pitch % 12
    state.pc_weight[pc] += duration
    state.n_pitched += 1
    if state.key is None and state.n_pitched >= KEY_AFTER_NOTES:
        state.key = harmony.detect_key(state.pc_weight)[0]
    if state.chord is None and state.key is not None:
        state.chord = harmony.chord_for(state.key, [pc])


def _accept_note(state: State, plan: Plan, value: int, duration: int) -> np.ndarray:
    state.notes_left = max(state.notes_left - 1, 0)
    state.group_pitches.append(value)
    state.bars[state.bar][-1].notes.append((value, duration))
    if state.instr != DRUMS:
        pc = (value - 1) % 12
        if (plan.key is not None and len(state.colors) < color_budget(plan)
                and pc not in state.colors and chromatic(state)[pc]):
            state.colors.append(pc)
        _update_harmony(state, value - 1, duration - 1)
    i = state.bar * SIXTEENTHS_PER_BAR + state.slot
    return make_row(plan, 0, vocab.TYPE_NOTE, 0, value, duration, state.instr, 0, i)


def _cadence_chord(state: State, plan: Plan) -> tuple[int, ...] | None:
    """The last bar rests on the tonic triad, the one before on the dominant; with a requested
    key, every bar takes its chord from the plan (`structure.phrase_chords`), so the key is
    heard, not only its scale."""
    if state.key is None or not _chords(plan):
        return None
    if plan.chords is not None:
        return harmony.chord_tones(state.key, plan.chords[state.bar])
    if state.bar == plan.last_bar:
        return harmony.diatonic_triad(state.key, 0)
    if state.bar == plan.last_bar - 1:
        return harmony.diatonic_triad(state.key, 4)
    return None


def _accept_bar(state: State, plan: Plan, density: int) -> np.ndarray:
    state.bar += 1
    state.slot, state.instr = -1, 0
    state.slot_instruments = set()
    state.covered = np.zeros(4, dtype=bool)
    state.covered[: -(-plan.first_slot(state.bar) // 4)] = True  # a pickup's rest: no beats
    state.bars[state.bar] = []
    state.replaying = False
    state.groove, state.open_slots, state.bar_has_groove = [], [], False
    if state.key is None and plan.key is not None:
        state.key = plan.key
    state.chord = _cadence_chord(state, plan)
    i = state.bar * SIXTEENTHS_PER_BAR
    source = int(plan.source[state.bar]) if state.bar < len(plan.source) else -1
    if source >= 0 and state.bars.get(source):
        rows = _replay_rows(state, plan, source)
        if rows:
            density = len({int(r[vocab.I_BEAT]) for r in rows}) + 1
            state.script, state.replaying = rows, True
            return make_row(plan, vocab.BAR, vocab.TYPE_METRIC, density, 0, 0, 0, 0, i)
    if plan.density[state.bar] > 0:
        density = int(plan.density[state.bar])
    density = int(np.clip(density, 1, vocab.N_CLASSES[vocab.DENSITY] - 1))
    room = bar_length(plan.n, state.bar, plan.start)
    if plan.free_plan:
        state.slots_left = room
    else:  # the plan as it fits: its visual beats all get a slot, the last bar sounds
        state.slots_left = max(bar_share(density - 1, room), len(pending_beat_slots(state, plan)),
                               int(state.bar == plan.last_bar))
        density = state.slots_left + 1
    groove = int(plan.groove[state.bar])
    if any(g.instrument == DRUMS for g in state.bars.get(groove, [])):
        hits, open_slots = _groove_bar(state, plan, groove)
        slots = set(open_slots) | {g.slot for g in hits}
        state.slots_left = len(slots)
        if plan.fill[state.bar]:  # the groove until the last beat, then a fill
            hits = [g for g in hits if g.slot < FILL_FROM]
            open_slots = [s for s in open_slots if s < FILL_FROM]
            # The fill keeps the rhythm's count of onsets, or its visual beats' if more.
            late = len({s for s in slots if s >= FILL_FROM})
            state.slots_left += max(0, len(pending_beat_slots(state, plan)) - late)
        density = state.slots_left + 1
        state.groove, state.open_slots = hits, open_slots
        state.bar_has_groove = bool(hits or open_slots)
    return make_row(plan, vocab.BAR, vocab.TYPE_METRIC, density, 0, 0, 0, 0, i)


def _take_beats(state: State, plan: Plan, until: int = SIXTEENTHS_PER_BAR
                ) -> list[tuple[int, int]]:
    """The visual beats of the current bar before slot `until` as (slot, strength), taken off
    the queue (and counted as placed: the caller gives each an onset)."""
    bar_start = state.bar * SIXTEENTHS_PER_BAR
    out: list[tuple[int, int]] = []
    while state.next_beat < len(plan.beats) \
            and plan.beats[state.next_beat, 0] < bar_start + until:
        s, strength = (int(x) for x in plan.beats[state.next_beat])
        if s >= bar_start:
            out.append((s - bar_start, strength))
        state.next_beat += 1
    state.n_forced_beats += len(out)
    return out


def _kit_key(keys: tuple[int, ...], plan: Plan) -> int:
    """The first of `keys` the corpus's kit has (else the first)."""
    return next((k for k in keys if k in plan.stats.kit), keys[0])


def _accents(groups: list[Group], beats: list[tuple[int, int]], plan: Plan) -> list[Group]:
    """Drum groups with every visual beat made an accent: the kick, + a crash when strong,
    added to the drum hit already on its slot or as a hit of their own."""
    out = [Group(g.slot, g.instrument, list(g.notes)) for g in groups]
    kick, crash = _kit_key(KICKS, plan), _kit_key(CRASHES, plan)
    for slot, strength in beats:
        keys = [kick] + ([crash] if strength >= ACCENT_CLASS else [])
        hit = next((g for g in out if g.slot == slot and g.instrument == DRUMS), None)
        if hit is None:
            hit = Group(slot, DRUMS, [])
            out.append(hit)
        have = {p for p, _ in hit.notes}
        hit.notes += [(k + 1, 2) for k in keys if k + 1 not in have]
    return sorted(out, key=lambda g: (g.slot, g.instrument))


def _notes_per_slot(groups: list[Group]) -> dict[int, int]:
    """How many notes a bar's groups play on each of its slots (`structure.fit_slots`'s
    weights)."""
    out: dict[int, int] = {}
    for g in groups:
        out[g.slot] = out.get(g.slot, 0) + len(g.notes)
    return out


def _slots_before(state: State) -> frozenset[int]:
    """The onset slots of the bar before the current one (none before the first)."""
    return frozenset(g.slot for g in state.bars.get(state.bar - 1, []))


def _groove_bar(state: State, plan: Plan, groove: int) -> tuple[list[Group], list[int]]:
    """This bar's rhythm as (drum hits, other onset slots): the groove bar's onset slots, fitted
    to this bar's density when it is controlled (weakest slots dropped first, strongest free ones
    added); its drum pattern on them, with the bar's visual beats as accents; the other slots
    are the model's to fill (with anything but drums)."""
    # A fill bar leaves the visual beats of its last beat to the fill (forced there as usual).
    beats = _take_beats(state, plan, FILL_FROM if plan.fill[state.bar] else SIXTEENTHS_PER_BAR)
    last = plan.last_slot(state.bar)
    source = state.bars[groove]
    rhythm = sorted({g.slot for g in source})
    want = state.slots_left if plan.density[state.bar] > 0 else sum(s <= last for s in rhythm)
    # Fitted as a re-played bar of the same source is (`_replay_rows`): the bars of a section
    # then share their slots, dropping or adding the same ones as their densities differ.
    slots = fit_slots(rhythm, want, [s for s, _ in beats], last, _notes_per_slot(source),
                      _slots_before(state))
    drums = [g for g in source if g.instrument == DRUMS]
    drum_slots = {g.slot for g in drums} | {s for s, _ in beats}
    hits = replay_groups(drums, [s for s in slots if s in drum_slots], last)
    if plan.rules.drum_accents:
        hits = _accents(hits, beats, plan)
    taken = {g.slot for g in hits}
    return hits, [s for s in slots if s not in taken]


def _force_group(state: State, plan: Plan, group: Group) -> np.ndarray:
    """Place a drum hit of the groove: its Beat row now, its notes as the next forced rows."""
    row = _accept_beat(state, plan, group.slot, group.instrument, len(group.notes), forced=True)
    state.notes_left = 0
    i = state.bar * SIXTEENTHS_PER_BAR + group.slot
    state.script = [make_row(plan, 0, vocab.TYPE_NOTE, 0, p, d, group.instrument, 0, i)
                    for p, d in group.notes]
    return row


def _accept_beat(state: State, plan: Plan, slot: int, instr: int, strength: int,
                 forced: bool) -> np.ndarray:
    if slot != state.slot:
        state.slots_left -= 1
        state.slot_instruments = set()
    state.slot, state.instr, state.forced = slot, instr, forced
    state.slot_instruments.add(instr)
    if state.bar_has_groove:
        state.open_slots = [s for s in state.open_slots if s != slot]
        state.bar_has_groove = bool(state.groove or state.open_slots) or not plan.fill[state.bar]
    state.covered[slot // 4] |= slot % 4 == 0
    state.notes_left = 1 if plan.free_plan else strength
    state.group_pitches = []
    state.bars[state.bar].append(Group(slot, instr, []))
    i = state.bar * SIXTEENTHS_PER_BAR + slot
    density = max(state.slots_left, 0) + 1  # slots still to come in the bar, + 1
    return make_row(plan, slot + 1, vocab.TYPE_METRIC, density, 0, 0, instr, strength, i)


def _force_beat(state: State, plan: Plan, sixteenth: int) -> np.ndarray:
    """Place the pending visual beat for the next rhythm instrument."""
    if not state.forced_left:
        state.forced_left = list(plan.rhythm)
    instr = state.forced_left.pop(0)
    strength = forced_strength(instr, int(plan.beats[state.next_beat, 1]), plan)
    if not state.forced_left:
        state.next_beat += 1
    assert sixteenth // SIXTEENTHS_PER_BAR == state.bar, "a visual beat is placed in its bar"
    slot = sixteenth % SIXTEENTHS_PER_BAR
    if slot != state.slot:  # the beat's slot was kept free in the bar's plan, else it is extra
        state.slots_left = max(state.slots_left, 1)
    state.n_forced_beats += 1
    return _accept_beat(state, plan, slot, instr, strength, forced=True)


def _rhythm_on_beats(out: list[Group], groups: list[Group], beat_slots: list[int],
                     plan: Plan) -> list[Group]:
    """Groups to add so that every visual beat of a re-played bar sounds on a rhythm instrument:
    the nearest of the source bar's groups of that instrument, moved to the beat."""
    extra = []
    for k in plan.rhythm:
        own = [g for g in groups if g.instrument == k]
        have = {g.slot for g in out if g.instrument == k}
        extra += replay_groups(own, [s for s in beat_slots if s not in have], SIXTEENTHS_PER_BAR)
    return extra


def _replay_rows(state: State, plan: Plan, source: int) -> list[np.ndarray]:
    """The rows of the current bar re-playing bar `source`, fitted to this bar's density and
    its visual beats (which all land on onsets: a new slot gets the nearest group's notes, and
    a drum accent when drums carry the beats). Empty when the source bar played nothing."""
    bar_start = state.bar * SIXTEENTHS_PER_BAR
    beats_here = _take_beats(state, plan)
    groups = state.bars[source]
    used = sorted({g.slot for g in groups})
    required = sorted({s for s, _ in beats_here})
    # The source's own rhythm when it was asked for the same density (as much as the control
    # wants) and this bar is whole, else fitted to this bar's density (its share, `bar_share`,
    # in a bar cut short by the song's end).
    last = plan.last_slot(state.bar)
    same = (plan.requested[state.bar] == plan.requested[source]
            and last == SIXTEENTHS_PER_BAR - 1)
    want = (bar_share(int(plan.density[state.bar]) - 1, last + 1)
            if plan.density[state.bar] > 0 and not same else sum(s <= last for s in used))
    slots = fit_slots(used, want, required, last, _notes_per_slot(groups), _slots_before(state))
    out = replay_groups(groups, slots, last, lightest=True)
    if DRUMS in plan.rhythm and plan.rules.drum_accents:
        out = _accents(out, beats_here, plan)
    else:  # each visual beat gets a rhythm instrument's chord from the bar, if it has one
        out += _rhythm_on_beats(out, groups, [s for s, _ in beats_here], plan)
    out.sort(key=lambda g: (g.slot, g.instrument))
    slot_list = sorted({g.slot for g in out})
    rows = []
    for g in out:
        i = bar_start + g.slot
        later = len(slot_list) - slot_list.index(g.slot) - 1
        rows.append(make_row(plan, g.slot + 1, vocab.TYPE_METRIC, later + 1, 0, 0,
                             g.instrument, len(g.notes), i))
        rows += [make_row(plan, 0, vocab.TYPE_NOTE, 0, p, d, g.instrument, 0, i)
                 for p, d in g.notes]
    return rows


def _replay_next(state: State, plan: Plan) -> np.ndarray:
    """The next row of a re-played bar, with the state following it."""
    row = state.script.pop(0)
    slot = int(row[vocab.I_BEAT]) - state.bar * SIXTEENTHS_PER_BAR
    if row[vocab.TYPE] == vocab.TYPE_METRIC:
        state.slot, state.instr = slot, int(row[vocab.INSTR])
        state.covered[slot // 4] |= slot % 4 == 0
        state.bars[state.bar].append(Group(slot, state.instr, []))
    else:
        state.bars[state.bar][-1].notes.append((int(row[vocab.PITCH]), int(row[vocab.DURATION])))
        if state.instr != DRUMS:
            _update_harmony(state, int(row[vocab.PITCH]) - 1, int(row[vocab.DURATION]) - 1)
    return row
