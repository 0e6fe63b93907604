"""The compound-word representation: exact rows on a hand-made song, round trips, junk decoding."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from vbgm.errors import VbgmError
from vbgm.song import Song, normalize_notes
from vbgm.tokens import ANY_INIT, decode, encode, init_tokens, p_beat, velocities
from vbgm.vocab import N_CLASSES


def song_of(rows: list[tuple[int, int, int, int]], n: int | None = None) -> Song:
    """Song from (onset, duration, pitch, instrument) rows, velocity 100."""
    notes = np.array([(*r, 100) for r in rows], dtype=np.int32).reshape(-1, 5)
    notes = normalize_notes(notes)
    end = int((notes[:, 0] + notes[:, 1]).max()) if len(notes) else 0
    return Song(notes=notes, n_sixteenths=end if n is None else n)


def test_encode_gives_the_spec_rows_for_a_small_song():
    # Bar 0: drums at slot 0 (2 notes), piano at slot 0 (1 note), bass at slot 4. Bar 1 is
    # empty; bar 2: one piano note at slot 15 lasting 20 (capped to 16).
    song = song_of([(0, 1, 36, 1), (0, 1, 42, 1), (0, 4, 60, 2), (4, 2, 40, 4),
                    (47, 20, 64, 2)])
    assert song.n_sixteenths == 47 + 16
    n = 63
    p = lambda i: 100 * i // n + 1  # noqa: E731
    expected = np.array([
        # barbeat type density pitch dur instr strength p_beat i_beat
        [17, 1, 3, 0, 0, 0, 0, p(0), 0],      # bar 0: onset slots {0, 4} -> 2 + 1
        [1, 1, 2, 0, 0, 1, 2, p(0), 0],       # drums at slot 0: 2 notes, 1 slot later
        [0, 2, 0, 37, 2, 1, 0, p(0), 0],
        [0, 2, 0, 43, 2, 1, 0, p(0), 0],
        [1, 1, 2, 0, 0, 2, 1, p(0), 0],       # piano, same slot: same density
        [0, 2, 0, 61, 5, 2, 0, p(0), 0],
        [5, 1, 1, 0, 0, 4, 1, p(4), 4],       # bass at slot 4: last slot -> density 1
        [0, 2, 0, 41, 3, 4, 0, p(4), 4],
        [17, 1, 1, 0, 0, 0, 0, p(16), 16],    # empty bar kept, density 1
        [17, 1, 2, 0, 0, 0, 0, p(32), 32],
        [16, 1, 1, 0, 0, 2, 1, p(47), 47],
        [0, 2, 0, 65, 17, 2, 0, p(47), 47],
        [17, 1, 1, 0, 0, 0, 0, p(48), 48],    # the last note sounds into bar 3
        [0, 0, 0, 0, 0, 0, 0, 0, 0],          # EOS
    ])
    np.testing.assert_array_equal(encode(song), expected)
    assert encode(song).dtype == np.int32


def test_empty_song_is_bars_then_eos():
    t = encode(Song(n_sixteenths=20))
    assert t[:, 0].tolist() == [17, 17, 0] and t[:, 2].tolist() == [1, 1, 0]


def test_p_beat_is_floor_and_capped():
    assert p_beat(np.array([0, 9, 10, 99]), 100).tolist() == [1, 10, 11, 100]
    assert p_beat(np.array([5]), 3).tolist() == [101]  # beyond the song: capped at 101


# Hypothesis songs: any notes, in canonical form, with the length read_midi gives them.
note_rows = arrays(np.int32, st.tuples(st.integers(0, 80), st.just(5)),
                   elements=st.integers(0, 400))


def to_song(raw: np.ndarray, pad: int = 0) -> Song:
    notes = raw.copy()
    notes[:, 1] = notes[:, 1] % 20 + 1        # durations 1..20 (capped to 16)
    notes[:, 2] %= 128
    notes[:, 3] = notes[:, 3] % 5 + 1
    notes[:, 4] = notes[:, 4] % 127 + 1
    notes = normalize_notes(notes)
    end = int((notes[:, 0] + notes[:, 1]).max()) if len(notes) else 1
    return Song(notes=notes, n_sixteenths=end + pad)


@settings(max_examples=150, deadline=None)
@given(note_rows)
def test_encode_decode_encode_is_identity(raw):
    song = to_song(raw)
    tokens = encode(song)
    back = decode(tokens)
    np.testing.assert_array_equal(back.notes[:, :4], song.notes[:, :4])
    assert back.n_sixteenths == song.n_sixteenths
    np.testing.assert_array_equal(encode(back), tokens)
    assert (tokens >= 0).all() and (tokens[:, :8].max(axis=0) < np.array(N_CLASSES[:8])).all()


@settings(max_examples=60, deadline=None)
@given(note_rows, st.integers(1, 40))
def test_trailing_silence_changes_only_p_beat_and_bars(raw, pad):
    song = to_song(raw, pad)
    tokens = encode(song)
    again = encode(decode(tokens))
    # The decoded song ends at its last note (or last bar): notes and beats are unchanged.
    notes = lambda t: t[(t[:, 1] == 2)][:, :7]  # noqa: E731
    np.testing.assert_array_equal(notes(again), notes(tokens))
    np.testing.assert_array_equal(decode(again).notes[:, :4], song.notes[:, :4])


def test_decode_repairs_generated_junk():
    rows = np.array([
        [0, 2, 0, 61, 5, 2, 0, 1, 0],    # note before any bar/beat: dropped
        [17, 1, 3, 0, 0, 0, 0, 1, 0],
        [0, 2, 0, 62, 5, 2, 0, 1, 0],    # note with no beat yet: dropped
        [5, 1, 2, 0, 0, 2, 1, 1, 4],     # beat at slot 4
        [0, 2, 0, 0, 5, 2, 0, 1, 4],     # pitch 0: dropped
        [0, 2, 0, 64, 0, 0, 0, 1, 4],    # duration class 0 -> 1, instrument 0 -> drums
        [17, 1, 1, 0, 0, 0, 0, 1, 16],
        [0, 2, 0, 65, 3, 3, 0, 1, 16],   # slot 4 still holds across the bar
        [0, 0, 0, 0, 0, 0, 0, 0, 0],     # EOS: the rest is ignored
        [0, 2, 0, 66, 3, 3, 0, 1, 16],
    ])
    song = decode(rows)
    assert song.notes[:, :4].tolist() == [[4, 1, 63, 1], [20, 2, 64, 3]]
    assert song.n_sixteenths == 22


def test_decode_rejects_wrong_shape():
    with pytest.raises(VbgmError, match="shape"):
        decode(np.zeros((4, 7), dtype=np.int32))


def test_velocities_follow_accents_and_strength():
    slots = np.array([0, 8, 4, 2, 1])
    v = velocities(slots, np.full(5, 2), np.ones(5, dtype=int))
    assert v[0] > v[1] > v[2] > v[3] > v[4]  # downbeat > half bar > beat > eighth > sixteenth
    assert velocities(np.array([4]), np.array([2]), np.array([4]))[0] > v[2]
    song = decode(encode(song_of([(s, 1, 60 + s, 2) for s in range(16)])))
    assert len(np.unique(song.notes[:, 4])) >= 4


def test_init_tokens_layout():
    rows = init_tokens(5, [1, 4])
    assert rows.tolist() == [[5, 0, 0], [0, 0, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0], [0, 0, 4],
                             [0, 0, 0]]
    assert ANY_INIT.tolist() == [[0, 0, 0], [0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 0, 3],
                                 [0, 0, 4], [0, 0, 5]]
    with pytest.raises(VbgmError, match="genre"):
        init_tokens(7, [])
    with pytest.raises(VbgmError, match="instrument"):
        init_tokens(0, [6])
