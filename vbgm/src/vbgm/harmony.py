"""Keys, scales and triads: the music theory the metrics and the sampler share.

Keys are numbered 0..23: 0..11 = C..B major, 12..23 = C..B minor (tonic = key % 12). A key is
found by the Krumhansl–Kessler method: the Pearson correlation of a 12-bin pitch-class histogram
with the 24 rotated probe-tone profiles; the best correlation is the key's clarity.
"""

from __future__ import annotations

import numpy as np

from vbgm.errors import VbgmError

PITCH_CLASS_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
N_KEYS = 24

# Krumhansl & Kessler (1982) probe-tone ratings, tonic first.
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])

# Scale steps from the tonic: major and natural minor (the harmonic minor's raised 7th is
# admitted as a scale tone too, since minor-key music uses it at cadences).
# Intervals (semitones mod 12) that clash when sounding together: minor 2nd / minor 9th,
# tritone, major 7th. The dissonance measurement counts them; the sampler keeps them out of chords.
DISSONANT_INTERVALS = (1, 6, 11)

MAJOR_STEPS = (0, 2, 4, 5, 7, 9, 11)
MINOR_STEPS = (0, 2, 3, 5, 7, 8, 10)
MINOR_EXTRA = (11,)


def profile_logits(key: int) -> np.ndarray:
    """(12,) log of the key's Krumhansl-Kessler profile over its mean, by pitch class: a pull
    that favours the tonic, then the fifth and third, and disfavours tones outside the key
    (about +0.6, +0.4, ... down to -0.4), i.e. the emphasis a listener (and the key finder)
    hears a key by."""
    profile = KK_MINOR if is_minor(key) else KK_MAJOR
    return np.roll(np.log(profile / profile.mean()), key % 12)


def _profiles() -> np.ndarray:
    rows = [np.roll(KK_MAJOR, t) for t in range(12)] + [np.roll(KK_MINOR, t) for t in range(12)]
    p = np.array(rows)
    p = p - p.mean(axis=1, keepdims=True)
    return p / np.linalg.norm(p, axis=1, keepdims=True)


KEY_PROFILES = _profiles()  # (24, 12), zero-mean unit-norm rows


def key_name(key: int) -> str:
    """'C major', 'F# minor', ... for a key 0..23."""
    if not 0 <= key < N_KEYS:
        raise VbgmError(f"key must be 0..23, got {key}")
    return f"{PITCH_CLASS_NAMES[key % 12]} {'major' if key < 12 else 'minor'}"


_LETTERS = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
_MODES = {"": False, "maj": False, "major": False, "m": True, "min": True, "minor": True}


def parse_key(text: str) -> int:
    """A key 0..23 from words: a tonic letter, an optional sharp or flat (# ♯ b ♭ s), an
    optional mode ("major"/"maj", or "minor"/"min"/"m"; none = major), any case and spacing:
    "D minor", "Dm", "c#m", "Db", "F# major", "bb min". VbgmError for anything else."""
    t = "".join(str(text).split()).lower().replace("♯", "#").replace("♭", "b")
    if not t or t[0] not in _LETTERS:
        raise VbgmError(f"unknown key {text!r}; write e.g. 'D minor', 'Db', 'c#m' or 'auto'")
    pc, rest = _LETTERS[t[0]], t[1:]
    if rest[:1] in ("#", "s") and rest[:3] != "min":
        pc, rest = pc + 1, rest[1:]
    elif rest[:1] == "b":
        pc, rest = pc - 1, rest[1:]
    if rest not in _MODES:
        raise VbgmError(f"unknown key {text!r}; write e.g. 'D minor', 'Db', 'c#m' or 'auto'")
    return pc % 12 + (12 if _MODES[rest] else 0)


def is_minor(key: int) -> bool:
    return key >= 12


def key_correlations(histogram: np.ndarray) -> np.ndarray:
    """Pearson correlation (24,) of a 12-bin pitch-class histogram with each key's profile;
    all zeros for a flat or empty histogram (no key is suggested)."""
    h = np.asarray(histogram, dtype=np.float64).reshape(12)
    h = h - h.mean()
    norm = np.linalg.norm(h)
    if norm < 1e-12:
        return np.zeros(N_KEYS)
    return KEY_PROFILES @ (h / norm)


def detect_key(histogram: np.ndarray) -> tuple[int, float]:
    """(key 0..23, clarity = its correlation) of a pitch-class histogram; (0, 0.0) when flat."""
    r = key_correlations(histogram)
    k = int(np.argmax(r))
    return k, float(r[k])


def scale_pitch_classes(key: int) -> tuple[int, ...]:
    """Pitch classes of the key's scale (7 for major; 8 for minor: natural + raised 7th)."""
    tonic = key % 12
    steps = MAJOR_STEPS if key < 12 else MINOR_STEPS + MINOR_EXTRA
    return tuple(sorted((tonic + s) % 12 for s in steps))


def scale_mask(key: int) -> np.ndarray:
    """Boolean (12,) True on the key's scale tones."""
    m = np.zeros(12, dtype=bool)
    m[list(scale_pitch_classes(key))] = True
    return m


def diatonic_triad(key: int, degree: int) -> tuple[int, int, int]:
    """Pitch classes (root, third, fifth) of the triad on scale degree 0..6 of the key
    (natural minor; degree 4 of a minor key takes the raised third: the dominant is major)."""
    tonic = key % 12
    steps = MAJOR_STEPS if key < 12 else MINOR_STEPS
    idx = [(degree + i) % 7 for i in (0, 2, 4)]
    pcs = [(tonic + steps[i]) % 12 for i in idx]
    if key >= 12 and degree == 4:
        pcs[1] = (tonic + 11) % 12  # V in minor: raised leading tone
    return pcs[0], pcs[1], pcs[2]


MAJOR_TRIAD = (0, 4, 7)
MINOR_TRIAD = (0, 3, 7)
DOMINANT_SEVENTH = (0, 4, 7, 10)
# The chords a planned progression may hold, by symbol: (root in semitones above the tonic, the
# chord's intervals above its root). Roman numerals as pop harmony writes them: upper case a
# major chord, lower case a minor one, "b" a root a semitone below the major scale's degree
# (a minor key's VI and VII are bVI and bVII). Tones come out root, third, fifth (, seventh).
# The dominant is always V7: its seventh is the key's own 4th degree, which tells the key from
# its dominant's (a bare V triad pulls the key finder to the dominant key, whose scale shares
# six of the key's seven tones).
CHORDS = {
    "I": (0, MAJOR_TRIAD), "i": (0, MINOR_TRIAD), "ii": (2, MINOR_TRIAD),
    "IV": (5, MAJOR_TRIAD), "iv": (5, MINOR_TRIAD), "V": (7, MAJOR_TRIAD),
    "V7": (7, DOMINANT_SEVENTH),
    "v": (7, MINOR_TRIAD), "vi": (9, MINOR_TRIAD), "bIII": (3, MAJOR_TRIAD),
    "bVI": (8, MAJOR_TRIAD), "bVII": (10, MAJOR_TRIAD),
}


def chord_tones(key: int, symbol: str) -> tuple[int, ...]:
    """Pitch classes (root, third, fifth[, seventh]) of a planned chord (`CHORDS`) in a key;
    in a minor key too, V7 keeps its major third (the raised leading tone)."""
    root, intervals = CHORDS[symbol]
    return tuple((key + root + i) % 12 for i in intervals)


# The chords of the 8-bar periods in a requested key. A section takes them in the 32-bar song
# form, A A B A (`SONG_FORM`), again from the start when it is longer: A is I-bVII-I-V7 |
# I-vi-IV-V7 in major, i-bVII-i-v | i-bVI-bVII-V7 in minor; B answers it away from the tonic, as
# a bridge does, vi-IV-I-V7 | vi-IV-ii-V7 in major, iv-bVII-bIII-bVI | iv-bVI-V7-V7 in minor
# (down the circle of fifths). Period A's tonic starts every phrase and holds three bars in
# eight, so the key is heard rather than only its scale, and the bars the phrase form re-plays
# (`structure.plan_repeats`: bar 2 re-plays bar 0, a phrase the one before) mostly keep their
# source's chord. With B a long video no longer loops one progression: the 30-bar clip's 4-bar
# windows were as clear in key as 0.866 at C = 0.7, with B 0.837 (real excerpts 0.73-0.82).
# B alternating with A (ABAB) took it to 0.826, but left 16-bar songs half as self-similar as the
# data's first 16 bars (Table 1 at C = 0, structureness -5 % -> -19 % over 3 x 60 songs).
# - Major borrows bVII from the parallel minor (Bb-C in C major, the rock and film "backdoor"
#   return to the tonic): the flat seventh is the tone outside the major scale that real songs
#   sound most (3.2 % of the time in major keys, `../shared/data/midi`, excerpts of the clips'
#   length), and without any such tone the songs' keys were clearer than any real folder's
#   (key clarity 0.88 vs 0.74-0.83 at C = 0.7; with bVII 0.84, and 0.83 at C = 1, where IV had
#   0.88; the key still found in 94 % of 480 songs, 95 % with IV; `bench_music.py`,
#   `bench_keys.py`).
# - In minor the dominant (whose leading tone belongs to the parallel major key, as do all four
#   tones of its V7) comes only at period A's end, after the Aeolian bVI-bVII; mid-period the
#   natural minor's own chords answer the tonic: bVII, and the minor v as a half cadence. With
#   i-bVI-i-bVII | i-bVI-iv-V7 (bVI and iv hold the tonic too) the tonic sounded in six bars of
#   eight and the 30-bar minor clip was clearer in key than any real folder's excerpts of its
#   length (0.93 vs 0.77-0.86 at C = 0.7; now 0.825), at a cost: the key found in 90 % of minor
#   songs instead of 95 % (120 songs of `bench_keys.py`, 4 seeds; 93 % of the minor songs over
#   8 seeds). i-bVI-i-bVII had been chosen
#   over i-iv-i-bVII for its key (88.9 vs 85.6 % of 90 songs, before the key correction). A
#   borrowed bII or IV in bar 1 made the clips use more pitch classes than real excerpts of
#   their length do and was not kept.
PHRASE_CHORDS = {"A": ("I", "bVII", "I", "V7", "I", "vi", "IV", "V7"),
                 "B": ("vi", "IV", "I", "V7", "vi", "IV", "ii", "V7")}
PHRASE_CHORDS_MINOR = {"A": ("i", "bVII", "i", "v", "i", "bVI", "bVII", "V7"),
                       "B": ("iv", "bVII", "bIII", "bVI", "iv", "bVI", "V7", "V7")}
SONG_FORM = "AABA"


def degree_of(key: int, pitch_class: int) -> int | None:
    """Scale degree 0..6 of a pitch class in the key (natural scales), None if not diatonic."""
    tonic = key % 12
    steps = MAJOR_STEPS if key < 12 else MINOR_STEPS
    step = (pitch_class - tonic) % 12
    if key >= 12 and step == 11:
        return 6  # the raised 7th stands for degree 7
    return steps.index(step) if step in steps else None


def chord_for(key: int, pitch_classes: list[int]) -> tuple[int, int, int]:
    """The diatonic triad that best explains some pitch classes (the sampler gives a bar's first
    pitched note): the one holding most of them, ties broken by the first as root, then by the
    common degrees I, V, IV, vi."""
    order = (0, 4, 3, 5, 1, 2, 6)
    best, best_score = diatonic_triad(key, 0), -1.0
    low = pitch_classes[0] if pitch_classes else None
    for rank, degree in enumerate(order):
        triad = diatonic_triad(key, degree)
        score = sum(pc in triad for pc in pitch_classes) + 0.5 * (low == triad[0]) - 0.01 * rank
        if score > best_score:
            best, best_score = triad, score
    return best
