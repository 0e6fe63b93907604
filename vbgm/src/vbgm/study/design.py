"""What the study asks and in which order: the paper's six questions and a counterbalanced,
per-participant random order of videos and versions.

The versions of a video are shown in the order of one row of a Williams design (a balanced Latin
square: over a full cycle of participants every system appears equally often in every position
and directly after every other system), so that order effects average out of Table 2. The row is
chosen by (participant number + video index), the videos themselves come in a random order per
participant, and the systems are assigned to the square's symbols by a per-study random
permutation, so no position belongs to a system.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Question:
    """One 1-5 rating question: key (database column), group (Table 2 row), label, help text."""

    key: str
    group: str
    label: str
    text: str


QUESTIONS: tuple[Question, ...] = (
    Question("richness", "melodiousness", "Richness",
             "The music is rich and interesting, not monotonous."),
    Question("correctness", "melodiousness", "Correctness",
             "The music sounds right: no wrong notes or stumbling rhythm."),
    Question("structure", "melodiousness", "Structure",
             "The music has a clear structure (phrases, repetition, an ending)."),
    Question("rhythm", "compatibility", "Rhythm",
             "The music's rhythm fits the speed of the motion in the video."),
    Question("synchrony", "compatibility", "Synchrony",
             "The music's accents fall on the video's visual beats and cuts."),
    Question("video_structure", "compatibility", "Video structure",
             "The music changes where the video changes (scenes, sections)."),
)
QUESTION_KEYS = tuple(q.key for q in QUESTIONS)
GROUPS = ("melodiousness", "compatibility")
SCALE = (1, 2, 3, 4, 5)


def williams_rows(n: int) -> list[list[int]]:
    """The rows of a Williams design for n treatments: n rows for even n, 2n for odd n (the
    square and its mirror). Each row is a permutation of range(n)."""
    if n < 1:
        raise ValueError("a design needs at least one treatment")
    first, lo, hi = [0], 1, n - 1
    while len(first) < n:  # 0, 1, n-1, 2, n-2, ...
        first.append(lo)
        lo += 1
        if len(first) < n:
            first.append(hi)
            hi -= 1
    rows = [[(x + r) % n for x in first] for r in range(n)]
    if n % 2:
        rows += [row[::-1] for row in rows]
    return rows


def plan(participant: int, n_videos: int, systems: list[str], seed: int, code: str
         ) -> list[tuple[int, list[str]]]:
    """The pages of participant number `participant` (0, 1, ...): (video index, systems in the
    order shown) per page. `seed` is the study's; `code` (the participant's) seeds the random
    video order."""
    rng = random.Random(f"{seed}:{code}")
    videos = list(range(n_videos))
    rng.shuffle(videos)
    symbols = list(systems)
    random.Random(seed).shuffle(symbols)  # which system each symbol of the square stands for
    rows = williams_rows(len(systems))
    return [(v, [symbols[i] for i in rows[(participant + v) % len(rows)]]) for v in videos]
