"""Form planning (vbgm.structure): sections at cuts, re-played bars, slots of a re-played bar."""

from __future__ import annotations

import numpy as np
from vbgm.song import bar_length
from vbgm.structure import (
    PHRASE_BARS,
    SLOT_WEIGHT,
    Group,
    bar_share,
    fit_slots,
    form_sections,
    match_density,
    phrase_chords,
    plan_repeats,
    plan_sections,
    replay_groups,
    thin,
)

from vbgm import harmony


def _bars(*bars: float) -> np.ndarray:
    """Cut times in sixteenths from positions in bars."""
    return np.array([b * 16 for b in bars])


# ------------------------------------------------------------------------------ plan_sections
def test_sections_start_on_the_bar_line_nearest_each_cut():
    assert plan_sections(16, np.array([])) == [0]
    # 4.3 bars -> bar 4; 9.7 bars -> bar 10; given out of order.
    assert plan_sections(16, _bars(9.7, 4.3)) == [0, 4, 10]
    # Two cuts on the same bar line make one boundary; every cut makes one, however close.
    assert plan_sections(16, _bars(4.1, 3.8)) == [0, 4]
    assert plan_sections(16, _bars(4, 5, 9, 15)) == [0, 4, 5, 9, 15]
    assert plan_sections(16, _bars(0.5, 2.5)) == [0, 1, 3]  # half a bar: the later line


def test_no_section_starts_at_or_after_the_end():
    # A cut at the very end rounds to the final bar line (16): never a section start.
    starts = plan_sections(16, _bars(15.8, 16, 0.2))
    assert starts == [0] and all(s < 16 for s in starts)


def test_the_form_keeps_sections_of_at_least_a_phrase():
    # Bar 5 is one bar after bar 4: dropped at min_bars 2, kept at 1.
    assert form_sections(16, [0, 4, 5, 9], min_bars=2) == [0, 4, 9]
    assert form_sections(16, [0, 4, 5, 9], min_bars=1) == [0, 4, 5, 9]
    # A cut in the first bar would make a section shorter than min_bars.
    assert form_sections(16, [0, 1, 6], min_bars=2) == [0, 6]
    # Cuts leaving fewer than min_bars after them are dropped.
    assert form_sections(16, [0, 8, 15], min_bars=2) == [0, 8]
    assert form_sections(16, [0, 8, 14], min_bars=3) == [0, 8]
    # A cut every bar (bikes.mp4 at the tempo its cuts set): one phrase runs on.
    assert form_sections(5, [0, 1, 2, 3, 4]) == [0]


# ------------------------------------------------------------------------------- plan_repeats
def _check_sources(source: np.ndarray) -> None:
    """Every re-played bar points back to an earlier bar that is itself new."""
    for b, s in enumerate(source):
        if s >= 0:
            assert s < b, (b, s)
            assert source[s] == -1, (b, s)


def test_repeats_in_one_section():
    n = 16
    source = plan_repeats(n, [0], cadence_bars=2)
    _check_sources(source)
    assert source[0] == source[1] == source[3] == -1  # the first phrase's bars 0, 1, 3 are new
    assert source[2] == 0  # bar 2 of the phrase re-plays bar 0
    assert source[7] == -1  # the last bar of each 8-bar period is new (the phrase-end variation)
    assert source[n - 1] == source[n - 2] == -1  # the cadence
    # The second phrase re-plays the first (bar 4 -> 0, 5 -> 1, 6 -> 2 -> 0).
    assert source[4:7].tolist() == [0, 1, 0]
    # With the default cadence the last bar is still new; so is each period's last bar.
    default = plan_repeats(n, [0])
    _check_sources(default)
    assert default[n - 1] == -1 and default[7] == -1


def test_a_bookend_last_bar_replays_its_sections_first_bar():
    """With `bookend` the song's last bar re-plays its section's opening (the V7 before it makes
    the cadence); other section ends and phrase ends stay new, and a song of one bar has none."""
    source = plan_repeats(16, [0, 8], np.repeat([1.0, 9.0], 8), bookend=True)  # no recall
    _check_sources(source)
    assert source[15] == 8 and source[7] == -1
    assert plan_repeats(4, [0], bookend=True).tolist() == [-1, -1, 0, 0]
    assert plan_repeats(1, [0], bookend=True).tolist() == [-1]
    assert plan_repeats(4, [0]).tolist() == [-1, -1, 0, -1]  # without it the last bar is new


def test_sections_start_new_and_end_new():
    n, starts = 24, [0, 6, 15]
    levels = np.repeat([1.0, 5.0, 9.0], [6, 9, 9])  # three distinct motion levels: no recall
    source = plan_repeats(n, starts, levels)
    _check_sources(source)
    ends = [s - 1 for s in starts[1:]] + [n - 1]
    for s in starts:
        assert source[s] == -1, s
    for e in ends:
        assert source[e] == -1, e
    # Inside a section, its own bar 2 re-plays its bar 0.
    assert source[6 + 2] == 6 and source[15 + 2] == 15


def test_a_section_of_similar_motion_recalls_an_earlier_one():
    n, starts = 24, [0, 8, 16]
    levels = np.repeat([2.0, 8.0, 2.4], 8)  # the third section moves like the first
    source = plan_repeats(n, starts, levels, recall_tolerance=1.0, cadence_bars=1)
    _check_sources(source)
    assert source[8] == -1  # the second one differs: it starts new
    # The third re-plays the first, bar for bar (resolved to the first bar's own source), up to
    # its last bar: the section end and the song's last bar, new.
    first = [r if source[r] < 0 else source[r] for r in range(8)]
    for r in range(7):
        assert source[16 + r] == first[r], r
    assert source[23] == -1
    # A longer cadence keeps the recall off the song's last bars.
    assert (plan_repeats(n, starts, levels, cadence_bars=3)[21:] == -1).all()
    # With a tighter tolerance there is no recall: the third section starts new.
    assert plan_repeats(n, starts, levels, recall_tolerance=0.1)[16] == -1


def test_phrase_chords_follow_the_progression_and_cadence() -> None:
    def plan(n: int, starts: list[int] | None = None, minor: bool = False) -> str:
        return " ".join(phrase_chords(n, starts or [0], minor))

    assert plan(12) == "I bVII I V7 I vi IV V7 I bVII V7 I"  # ... V7, I at the end
    assert plan(32).split()[16:24] == "vi IV I V7 vi IV ii V7".split()  # A A B A
    assert plan(40).split()[24:28] == plan(40).split()[32:36] == ["I", "bVII", "I", "V7"]
    assert plan(16, [0, 6]).split()[6:9] == ["I", "bVII", "I"]  # a section starts a period
    assert plan(4) == "I bVII I I"  # bar 2 re-plays bar 0
    # A song shorter than a phrase is a cadence: its last bar the tonic, the one before V7.
    assert plan(2) == "V7 I" and plan(3) == "I V7 I" and plan(1) == "I"
    assert plan(2, minor=True) == "V7 i"
    assert plan(5) == "I bVII I V7 I"
    assert plan(7) == "I bVII I V7 I V7 I"  # not ... I-vi-I
    # Where the period had V7 already, a pre-dominant comes first: ii-V7-I, not V7-V7-I.
    assert plan(6) == "I bVII I ii V7 I"
    assert plan(6, minor=True) == "i bVII i iv V7 i"  # not v-V7
    assert plan(12, minor=True) == "i bVII i v i bVI bVII V7 i bVII V7 i"
    assert plan(24, minor=True).split()[16:20] == ["iv", "bVII", "bIII", "bVI"]
    periods = [*harmony.PHRASE_CHORDS.values(), *harmony.PHRASE_CHORDS_MINOR.values()]
    assert all(len(p) == 8 and set(p) <= set(harmony.CHORDS) for p in periods)
    assert set(harmony.SONG_FORM) == set(harmony.PHRASE_CHORDS) == set(harmony.PHRASE_CHORDS_MINOR)


def test_match_density_prefers_a_source_asked_for_the_same_density() -> None:
    n, starts = 8, [0]
    source = plan_repeats(n, starts)
    assert source[2] == 0
    level = np.array([6, 10, 10, 9, 6, 10, 7, 6])
    matched = match_density(source, starts, level)
    _check_sources(matched)
    assert matched[2] == 1  # bar 1 asked for 10 as bar 2 does; bar 0 for 6
    assert matched[4] == 0  # the planned source already matches: kept
    same = match_density(source, starts, np.full(n, 9))
    assert (same == source).all()  # equal densities: the plan as it was
    # With planned chords a bar re-plays only a bar with its chord, else it is new.
    chords = phrase_chords(n, starts)  # I bVII I V7 I vi V7 I
    keyed = match_density(source, starts, level, chords)
    _check_sources(keyed)
    for b, s in enumerate(keyed):
        assert s < 0 or chords[s] == chords[b], (b, s)
    assert keyed[2] == 0 and keyed[5] == -1  # bar 5 (vi): no earlier vi bar
    # A re-played bar may be the source (as it sounded): bar 4 (I, asked for 6) takes bar 0,
    # but asked for 10 it takes bar 2, which re-played bar 0 at 10.
    busier = match_density(source, starts, np.array([6, 10, 10, 9, 10, 10, 7, 6]), chords)
    assert busier[2] == 0 and busier[4] == 2


def test_short_sections_are_not_recalled():
    # The first section is shorter than a phrase: nothing to recall, even at equal motion.
    n, starts = 12, [0, 3]
    assert 3 < PHRASE_BARS
    source = plan_repeats(n, starts, np.ones(n))
    _check_sources(source)
    assert source[3] == -1


# ---------------------------------------------------------------------------------- fit_slots
def _quarters_covered(slots: list[int], last_slot: int) -> bool:
    return all(any(q <= s < q + 4 for s in slots) for q in range(0, last_slot + 1, 4))


def test_fit_slots_keeps_required_and_one_per_quarter():
    out = fit_slots([0, 8], want=2, required=[3, 13])
    assert {3, 13} <= set(out)
    assert _quarters_covered(out, 15)
    # The beat at 3 covers the first quarter (the source's 0 is not needed at want 2), the source's
    # 8 the third, the empty second quarter gets its beat 4.
    assert out == [3, 4, 8, 13]
    # A quarter the source left empty gets its beat even when `want` is already met.
    assert fit_slots([0], want=1, required=[]) == [0, 4, 8, 12]


def test_fit_slots_drops_the_weakest_source_slots_first():
    slots = [0, 1, 4, 8, 12, 14]  # weights 5, 1, 3, 4, 3, 2
    assert fit_slots(slots, want=6, required=[]) == slots
    assert fit_slots(slots, want=5, required=[]) == [0, 4, 8, 12, 14]  # 1 goes first
    assert fit_slots(slots, want=4, required=[]) == [0, 4, 8, 12]  # then 14
    # In a quarter the strongest source slot stands for it: 6 (weight 2) over 5 and 7.
    assert fit_slots([5, 6, 7], want=1, required=[])[1] == 6


def test_fit_slots_with_weights_drops_the_lightest_source_slots_first():
    slots = [0, 2, 4, 8, 12, 14]  # metrical weights 5, 2, 3, 4, 3, 2
    # By metre alone 14 goes first (2 and 14 weigh the same, the earlier slot stays) ...
    assert fit_slots(slots, want=5, required=[]) == [0, 2, 4, 8, 12]
    # ... by notes the lone hi-hat on 2 goes, and the chord on 14 stays.
    notes = {0: 4, 2: 1, 4: 3, 8: 4, 12: 3, 14: 3}
    assert fit_slots(slots, want=5, required=[], weights=notes) == [0, 4, 8, 12, 14]
    # A quarter is still covered by the source's heaviest slot in it, then by metre.
    assert fit_slots([5, 6], want=1, required=[], weights={5: 3, 6: 1})[1] == 5
    assert fit_slots([5, 6], want=1, required=[], weights={5: 1, 6: 1})[1] == 6


def test_fit_slots_prefers_the_slots_of_the_bar_before():
    """Between slots of equal notes, and among free slots, those the bar before played go
    first: the rhythm runs on from bar to bar (groove consistency)."""
    slots = [0, 2, 4, 8, 12, 14]
    assert fit_slots(slots, want=5, required=[]) == [0, 2, 4, 8, 12]
    assert fit_slots(slots, want=5, required=[], previous=frozenset({0, 4, 8, 12, 14})) \
        == [0, 4, 8, 12, 14]
    # More notes still win: the chord on 14 stays though the bar before had 2.
    notes = {0: 4, 2: 1, 4: 3, 8: 4, 12: 3, 14: 3}
    assert fit_slots(slots, want=5, required=[], weights=notes, previous=frozenset({2})) \
        == [0, 4, 8, 12, 14]
    # An added free slot: the bar before's 6 rather than the first of the eighths, 2.
    assert fit_slots([0, 4, 8, 12], want=5, required=[]) == [0, 2, 4, 8, 12]
    assert fit_slots([0, 4, 8, 12], want=5, required=[], previous=frozenset({6})) \
        == [0, 4, 6, 8, 12]


def test_fit_slots_adds_the_strongest_free_slots_when_short():
    out = fit_slots([0], want=6, required=[])
    assert len(out) == 6
    extra = sorted(set(out) - {0, 4, 8, 12})
    free = [s for s in range(16) if s not in (0, 4, 8, 12)]
    best = sorted(free, key=lambda s: (-SLOT_WEIGHT[s], s))[:2]
    assert extra == sorted(best) and all(SLOT_WEIGHT[s] == 2 for s in extra)


def test_fit_slots_respects_last_slot():
    out = fit_slots([0, 2, 6, 9, 14], want=8, required=[3, 10], last_slot=7)
    assert max(out) <= 7 and 3 in out and 10 not in out
    assert _quarters_covered(out, 7)
    assert fit_slots([0, 12], want=3, required=[], last_slot=0) == [0]


def test_bar_share_scales_a_short_bar_and_keeps_a_whole_one():
    assert bar_share(12, 16) == 12 and bar_share(12, 20) == 12  # a whole bar
    assert bar_share(12, 8) == 6 and bar_share(12, 3) == 2  # 12 * 8/16, 12 * 3/16 = 2.25
    assert bar_share(0, 8) == 0
    assert bar_length(23, 0) == 16 and bar_length(23, 1) == 7 and bar_length(32, 1) == 16


# ------------------------------------------------------------------------------ replay_groups
def test_replay_groups_keeps_and_copies_groups():
    drum = Group(0, 1, [(37, 1)])
    bass = Group(0, 4, [(41, 4)])
    chord = Group(8, 2, [(61, 8), (65, 8)])
    out = replay_groups([drum, bass, chord], [0, 4, 6, 8, 15], last_slot=15)
    by_slot = {s: [(g.instrument, g.notes) for g in out if g.slot == s] for s in (0, 4, 6, 8, 15)}
    # Slots the source used keep all their groups.
    assert by_slot[0] == [(1, [(37, 1)]), (4, [(41, 4)])]
    assert by_slot[8] == [(2, [(61, 8), (65, 8)])]
    # New slots copy the nearest used slot, the earlier one on a tie (4 is 4 from 0 and 8).
    assert by_slot[4] == by_slot[0]
    assert by_slot[6] == by_slot[8] and by_slot[15] == by_slot[8]
    assert [g.slot for g in out] == sorted(g.slot for g in out)
    # Nothing after last_slot; no source groups, nothing to copy.
    assert all(g.slot <= 5 for g in replay_groups([drum, chord], [0, 4, 8], last_slot=5))
    assert replay_groups([], [0, 4], last_slot=15) == []


def test_replay_groups_lightest_copies_one_group_to_a_new_slot():
    drum = Group(0, 1, [(37, 1), (43, 1)])
    bass = Group(0, 4, [(41, 4)])
    chord = Group(8, 2, [(61, 8), (65, 8)])
    out = replay_groups([drum, bass, chord], [0, 2, 8, 10], last_slot=15, lightest=True)
    by_slot = {s: [(g.instrument, g.notes) for g in out if g.slot == s] for s in (0, 2, 8, 10)}
    assert by_slot[0] == [(1, [(37, 1), (43, 1)]), (4, [(41, 4)])]  # kept whole
    assert by_slot[2] == [(4, [(41, 4)])]  # the bass note, not the whole beat
    assert by_slot[10] == by_slot[8]  # the only group there
    # On a tie in notes, the lower instrument (the drums before the bass).
    tied = replay_groups([Group(0, 4, [(41, 4)]), Group(0, 1, [(37, 1)])], [4], 15, lightest=True)
    assert [(g.slot, g.instrument) for g in tied] == [(4, 1)]


def test_thin_keeps_a_share_of_the_links_and_nothing_else() -> None:
    links = np.array([-1, -1, 0, 1, 0, 1, 2, -1] * 250)
    rng = np.random.default_rng(0)
    assert thin(links, 1.0, rng) is links  # share 1: everything, nothing drawn
    assert rng.random() == np.random.default_rng(0).random()
    kept = thin(links, 0.75, np.random.default_rng(1))
    assert set(np.flatnonzero(kept >= 0)) <= set(np.flatnonzero(links >= 0))  # never a new link
    assert np.array_equal(kept[kept >= 0], links[kept >= 0])  # kept links unchanged
    share = (kept >= 0).sum() / (links >= 0).sum()
    assert 0.72 < share < 0.78
    assert (thin(links, 0.0, np.random.default_rng(2)) == -1).all()
