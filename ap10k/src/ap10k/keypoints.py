"""The 17 AP-10K keypoints: names, flip pairs, skeleton, OKS sigmas, body halves and limb sides.

This module is the single source of truth for the skeleton; everything else (dataset checks,
augmentation, evaluation, drawing) imports from here. Indices are 0-based in keypoint order.

Annotation convention of AP-10K (paper §3): for unguligrade and digitigrade animals the point
named "hip" marks the anatomical knee (stifle) and "knee" the ankle (hock); the front leg is
labelled the same way ("shoulder" where the leg leaves the body, "elbow" at the carpus). Plantigrade
animals (bears, primates) follow anatomy.
"""

from __future__ import annotations

import numpy as np

NAMES: tuple[str, ...] = (
    "left_eye", "right_eye", "nose", "neck", "root_of_tail",
    "left_shoulder", "left_elbow", "left_front_paw",
    "right_shoulder", "right_elbow", "right_front_paw",
    "left_hip", "left_knee", "left_back_paw",
    "right_hip", "right_knee", "right_back_paw",
)
NUM_KEYPOINTS = len(NAMES)
INDEX: dict[str, int] = {name: i for i, name in enumerate(NAMES)}

# Left/right pairs swapped by a horizontal flip.
FLIP_PAIRS: tuple[tuple[int, int], ...] = (
    (0, 1), (5, 8), (6, 9), (7, 10), (11, 14), (12, 15), (13, 16),
)

# Skeleton edges, 0-based. The JSON files store the same edges 1-based (SKELETON_1BASED).
SKELETON: tuple[tuple[int, int], ...] = (
    (0, 1), (0, 2), (1, 2), (2, 3), (3, 4), (3, 5), (5, 6), (6, 7), (3, 8), (8, 9), (9, 10),
    (4, 11), (11, 12), (12, 13), (4, 14), (14, 15), (15, 16),
)
SKELETON_1BASED: tuple[tuple[int, int], ...] = tuple((a + 1, b + 1) for a, b in SKELETON)

# Per-keypoint OKS sigmas of AP-10K (what its evaluation used; COCO's are for humans).
SIGMAS: np.ndarray = np.array(
    [0.025, 0.025, 0.026, 0.035, 0.035, 0.079, 0.072, 0.062, 0.079, 0.072, 0.062,
     0.107, 0.087, 0.089, 0.107, 0.087, 0.089],
    dtype=np.float64,
)
SIGMAS.setflags(write=False)

# Half-body augmentation groups. The published AP-10K list puts right_front_paw (10) in the lower
# half while left_front_paw (7) is upper; that asymmetry is a slip (a flip would move a keypoint
# between halves), so here right_front_paw is upper like its mirror. LOWER_BODY_PUBLISHED keeps the
# published grouping for anyone reproducing the official training bit for bit.
UPPER_BODY: tuple[int, ...] = (0, 1, 2, 3, 5, 6, 7, 8, 9, 10)
LOWER_BODY: tuple[int, ...] = (4, 11, 12, 13, 14, 15, 16)
UPPER_BODY_PUBLISHED: tuple[int, ...] = (0, 1, 2, 3, 5, 6, 7, 8, 9)
LOWER_BODY_PUBLISHED: tuple[int, ...] = (4, 10, 11, 12, 13, 14, 15, 16)

# Side of each keypoint for drawing: left limbs and right limbs get different colours.
LEFT: tuple[int, ...] = (0, 5, 6, 7, 11, 12, 13)
RIGHT: tuple[int, ...] = (1, 8, 9, 10, 14, 15, 16)
CENTRE: tuple[int, ...] = (2, 3, 4)


def flip_permutation() -> np.ndarray:
    """Index array `perm` such that `kps[perm]` swaps every left keypoint with its right mirror."""
    perm = np.arange(NUM_KEYPOINTS)
    for a, b in FLIP_PAIRS:
        perm[a], perm[b] = b, a
    return perm


def side(index: int) -> str:
    """'left', 'right' or 'centre' for one keypoint index."""
    if index in LEFT:
        return "left"
    if index in RIGHT:
        return "right"
    return "centre"


def edge_side(a: int, b: int) -> str:
    """Colour group of a skeleton edge: a limb edge takes its side, a cross-body edge is centre.

    An edge touching one side and the midline (neck→left_shoulder, root_of_tail→left_hip,
    left_eye→nose) belongs to that side; eye→eye is centre.
    """
    sides = {side(a), side(b)} - {"centre"}
    return sides.pop() if len(sides) == 1 else "centre"
